"""fit(): the run directory, refusing to overwrite, resume = uninterrupted, reproducibility."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from kerasdec.cli import main
from kerasdec.config import DataConfig, RunConfig, TrainConfig
from kerasdec.models.segdec import SegDecNet
from kerasdec.rundir import new_folder, new_run_folder
from kerasdec.training.trainer import fit, precision_policy
from kerasdec.training.validation import overlays

LOSS_COLUMNS = ("loss", "seg_loss", "cls_loss", "lambda")


def _history(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def _tensorboard_tags(folder: Path) -> set[str]:
    import tensorflow as tf

    tags = set()
    for events in folder.rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            tags.update(value.tag for value in event.summary.value)
    return tags


def _config(root: Path, run_dir: Path, epochs: int = 3) -> RunConfig:
    return RunConfig(data=DataConfig(dataset="folder", root=str(root), width=64, height=64),
                     train=TrainConfig(epochs=epochs, lr=0.01, batch_size=2, validate_every=1),
                     seed=5, run_dir=str(run_dir))


def test_cli_fit_writes_a_complete_run_directory_and_never_overwrites(folder_data, tmp_path):
    run_dir = tmp_path / "run"
    args = ["fit", "--dataset", "folder", "--data-root", str(folder_data.root), "--width", "64",
            "--height", "64", "--epochs", "2", "--batch-size", "2", "--validate-every", "1",
            "--run-dir", str(run_dir)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == str(run_dir)
    for name in ("config.json", "model_final.keras", "model_best.keras", "history.csv", "curves.png",
                 "sampler.json", "metrics.json", "results.csv", "checkpoint/epoch-0002/state.json",
                 "samples.json", "finished.json"):
        assert (run_dir / name).is_file(), name
    tags = _tensorboard_tags(run_dir / "tensorboard")
    # Keras writes val_ap to the validation writer as "epoch_ap"
    assert {"epoch_loss", "epoch_seg_loss", "epoch_cls_loss", "epoch_lambda", "epoch_ap"} <= tags
    assert {"validation/pr_curve", "validation/overlays"} <= tags  # pictures, not only scalars
    cfg = RunConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    assert (cfg.data.dataset, cfg.data.width, cfg.train.epochs) == ("folder", 64, 2)
    assert cfg.run_dir == str(run_dir.resolve()) and Path(cfg.data.root).is_absolute()

    history = _history(run_dir)
    assert [row["epoch"] for row in history] == ["0", "1"]
    assert [float(row["lambda"]) for row in history] == [1.0, 0.5]
    assert all(np.isfinite(float(row[c])) for row in history for c in (*LOSS_COLUMNS, "val_ap"))

    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("ap", "auc", "threshold", "fp", "fn", "fp_at_fn0", "tpr", "tnr", "n_pos", "n_neg"):
        assert key in metrics, key
    test_names = set(folder_data.names["test"])
    assert (metrics["n_pos"], metrics["n_neg"]) == (2, 3)
    with open(run_dir / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {row["name"] for row in rows} == test_names
    assert set(rows[0]) >= {"name", "score", "label", "decision"}

    evaluated = CliRunner().invoke(main, ["evaluate", str(run_dir)])  # same model, same numbers
    assert evaluated.exit_code == 0, evaluated.output
    again_metrics = json.loads((run_dir / "evaluate-test-final" / "metrics.json").read_text())
    for key in ("ap", "auc", "threshold", "fp", "fn", "fp_at_fn0"):
        assert again_metrics[key] == pytest.approx(metrics[key], abs=1e-6), key

    before = (run_dir / "model_final.keras").stat().st_mtime_ns
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1 and "already exists and is not empty" in again.output
    assert (run_dir / "model_final.keras").stat().st_mtime_ns == before


@pytest.mark.parametrize("bad", ["train/ok/good004", "test/defect/bad001"])
def test_a_corrupt_image_stops_the_run_before_anything_is_written(folder_data, tmp_path, bad):
    folder_data.paths[bad].write_bytes(b"not an image" * 10)
    with pytest.raises(ValueError, match=f"{folder_data.paths[bad]} is not a readable image"):
        fit(_config(folder_data.root, tmp_path / "run"))
    assert not (tmp_path / "run").exists()  # the same --run-dir can be used once the file is fixed


class _Interrupt(keras.callbacks.Callback):
    """Stops training the hard way (as a killed process would) after epoch ``at`` was saved."""

    def __init__(self, at: int):
        super().__init__()
        self.at = at

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt


def test_resume_equals_an_uninterrupted_run_and_runs_are_reproducible(folder_root, tmp_path):
    straight = fit(_config(folder_root, tmp_path / "straight"))
    interrupted = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        fit(_config(folder_root, interrupted), callbacks=[_Interrupt(at=1)])
    assert not (interrupted / "model_final.keras").exists()
    assert [row["epoch"] for row in _history(interrupted)] == ["0", "1"]
    fit(RunConfig(), resume=interrupted)  # the run's own config.json is used

    a, b = _history(straight), _history(interrupted)
    assert [row["epoch"] for row in b] == ["0", "1", "2"]
    for row_a, row_b in zip(a, b):
        for column in (*LOSS_COLUMNS, "val_ap"):
            assert float(row_b[column]) == pytest.approx(float(row_a[column]), rel=1e-5, abs=1e-7), column
    model_a = keras.saving.load_model(straight / "model_final.keras")
    model_b = keras.saving.load_model(interrupted / "model_final.keras")
    for wa, wb in zip(model_a.weights, model_b.weights):
        np.testing.assert_allclose(wb.numpy(), wa.numpy(), rtol=1e-5, atol=1e-6, err_msg=wa.path)
    assert json.loads((interrupted / "sampler.json").read_text()) == \
        json.loads((straight / "sampler.json").read_text())
    with pytest.raises(FileExistsError, match="already finished"):
        fit(RunConfig(), resume=interrupted)


def test_precision_policy_is_scoped_and_auto_means_float32_on_cpu():
    assert keras.config.dtype_policy().name == "float32"
    with precision_policy("mixed_bfloat16") as chosen:
        assert chosen == keras.config.dtype_policy().name == "mixed_bfloat16"
        assert SegDecNet()(np.zeros((1, 64, 64, 1), np.float32))["decision"].dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"
    with precision_policy("auto") as chosen:
        assert chosen == "float32"  # no GPU here; mixed_float16 where one is visible


def test_new_folders_never_reuse_an_existing_one(tmp_path):
    first = new_folder(tmp_path / "runs", "synthetic-20261125-101500")
    (first / "keep.txt").write_text("earlier run")
    second = new_folder(tmp_path / "runs", "synthetic-20261125-101500")
    third = new_folder(tmp_path / "runs", "synthetic-20261125-101500")
    assert [p.name for p in (first, second, third)] == [
        "synthetic-20261125-101500", "synthetic-20261125-101500-2", "synthetic-20261125-101500-3"]
    assert (first / "keep.txt").read_text() == "earlier run" and not any(second.iterdir())
    assert new_run_folder(tmp_path / "runs", "ksdd").name.startswith("ksdd-20")


def test_tensorboard_overlays_show_the_heatmap_where_the_defect_is():
    images = np.full((2, 64, 96, 1), 0.5, np.float32)
    seg = np.full((2, 8, 12, 1), -8.0, np.float32)
    seg[:, :, 6:] = 8.0  # right half: probability ~1
    pictures = overlays(images, seg)
    assert pictures.shape == (2, 64, 96, 3) and pictures.dtype == np.float32
    assert 0.0 <= pictures.min() and pictures.max() <= 1.0
    left, right = pictures[:, :, :40].mean(axis=(0, 1, 2)), pictures[:, :, 56:].mean(axis=(0, 1, 2))
    assert right[0] > right[2] and left[2] > left[0]  # RGB: red where the defect is, blue elsewhere
