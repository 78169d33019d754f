"""fit(): the run directory, refusing to overwrite, resume after faults = uninterrupted, reproducibility."""

from __future__ import annotations

import csv
import dataclasses
import errno
import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from fakes import TINY_MODEL, write_folder

from kerasdec.cli import main
from kerasdec.config import DataConfig, RunConfig, TrainConfig
from kerasdec.evaluation import evaluate
from kerasdec.files import new_folder
from kerasdec.models.segdec import SegDecNet
from kerasdec.rundir import new_run_folder
from kerasdec.training import checkpoint
from kerasdec.training.fit import fit
from kerasdec.training.model import precision_policy
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
                     seed=5, run_dir=str(run_dir), model=TINY_MODEL)


def test_cli_fit_writes_a_complete_run_directory_and_never_overwrites(folder_data, tmp_path, tiny_cli,
                                                                      caplog):
    run_dir = tmp_path / "run"
    args = ["fit", "--dataset", "folder", "--data-root", str(folder_data.root), "--width", "64",
            "--height", "64", "--epochs", "2", "--batch-size", "2", "--validate-every", "1",
            "--run-dir", str(run_dir)]
    with caplog.at_level(logging.INFO, logger="kerasdec.training.run"):
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
    assert (cfg.data.dataset, cfg.data.width, cfg.train.epochs, cfg.model) == ("folder", 64, 2, TINY_MODEL)
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
    low, high = metrics["ap_ci95"]  # the summary fit logs: intervals and the class counts
    assert (f"Test AP {metrics['ap']:.4f} (95% {low:.2f}-{high:.2f}), AUC {metrics['auc']:.4f} (95% "
            in caplog.text) and "on 5 images (2 defective, 3 defect-free) (final model)" in caplog.text
    with open(run_dir / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {row["name"] for row in rows} == test_names
    assert set(rows[0]) >= {"name", "score", "label", "decision"}

    evaluated = CliRunner().invoke(main, ["evaluate", str(run_dir)])  # same model, same numbers
    assert evaluated.exit_code == 0, evaluated.output
    again_metrics = json.loads((run_dir / "evaluate-test-final" / "metrics.json").read_text())
    assert metrics["run_data"] is again_metrics["run_data"] is True  # checked against samples.json
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


class _Poison(keras.callbacks.Callback):
    """Turns one weight into NaN at the start of batch ``batch`` of epoch ``epoch`` (as a bad step would)."""

    def __init__(self, epoch: int, batch: int):
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, -1

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.current, batch) == (self.epoch, self.batch):
            self.model.weights[0].assign(np.full(self.model.weights[0].shape, np.nan, "float32"))


def _disk_full_at_second_checkpoint(monkeypatch):
    """The second checkpoint's optimizer file hits a full disk (its weights file is already written)."""
    calls = []
    original = checkpoint.write_optimizer

    def write(model, path):
        calls.append(path)
        if len(calls) == 2:
            path.write_bytes(b"PK")
            raise OSError(errno.ENOSPC, "No space left on device")
        original(model, path)

    monkeypatch.setattr(checkpoint, "write_optimizer", write)


def _killed_during_evaluation(monkeypatch):
    def evaluate_model(model, samples, data_cfg, out_dir, **kwargs):
        (Path(out_dir) / "results.csv").write_text("name,score\nhalf a li")
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate, "evaluate_model", evaluate_model)


def test_resume_after_faults_equals_an_uninterrupted_run(folder_data, tmp_path, monkeypatch, tiny_cli):
    straight = fit(_config(folder_data.root, tmp_path / "straight", epochs=2))
    runner, run = CliRunner(), tmp_path / "run"
    monkeypatch.chdir(tmp_path)  # relative --data-root and --run-dir: stored resolved
    with monkeypatch.context() as patch:  # 1. disk full in the middle of the second checkpoint
        _disk_full_at_second_checkpoint(patch)
        result = runner.invoke(main, ["fit", "--dataset", "folder", "--data-root", "folder", "--width", "64",
                                      "--height", "64", "--epochs", "2", "--lr", "0.01", "--batch-size", "2",
                                      "--validate-every", "1", "--seed", "5", "--dilate", "1", "--w-pos", "1",
                                      "--recipe", "published",  # = _config: no augmentation
                                      "--run-dir", "run"])  # = _config: the folder preset's dilate, w_pos
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"Error: Could not write {run / 'checkpoint' / 'epoch-0002'}: No space "
                                    "left on device (about ") and result.stderr.count("\n") == 1
    stored = json.loads((run / "config.json").read_text())
    assert (stored["data"]["root"], stored["run_dir"]) == (str(folder_data.root), str(run))
    assert sorted(p.name for p in (run / "checkpoint").iterdir()) == ["epoch-0001"]

    moved = folder_data.root.rename(tmp_path / "moved")  # 2. the data moved: --data-root, checked
    result = runner.invoke(main, ["fit", "--resume", "run"])
    assert result.exit_code == 1
    assert "does not exist (moved?); give its new place with --data-root" in result.stderr
    write_folder(tmp_path / "other", counts={"train": (6, 4, 3), "test": (3, 2, 2)})
    result = runner.invoke(main, ["fit", "--resume", "run", "--data-root", "other"])
    assert result.exit_code == 1 and ("is not this run's: its train split has 10 images, the run was trained"
                                      " with 9 (e.g. 'train/ok/good005' not in the run") in result.stderr
    assert json.loads((run / "config.json").read_text()) == stored

    with pytest.raises(FloatingPointError, match=r"loss became nan at epoch 2, batch 2; training stopped\. "
                                                 r"The checkpoint of the last good epoch is kept"):
        fit(RunConfig(), resume=run, data_root="moved", callbacks=[_Poison(epoch=1, batch=1)])  # 3. NaN
    assert json.loads((run / "config.json").read_text())["data"]["root"] == str(moved)  # recorded
    assert sorted(p.name for p in (run / "checkpoint").iterdir()) == ["epoch-0001"]

    with monkeypatch.context() as patch:  # 4. killed during the final evaluation
        _killed_during_evaluation(patch)
        with pytest.raises(KeyboardInterrupt):
            fit(RunConfig(), resume=run)
    # the final model is saved after the evaluation (it carries the threshold): neither is there yet
    assert not (run / "model_final.keras").exists() and not (run / "finished.json").exists()

    result = runner.invoke(main, ["fit", "--resume", "run"])  # 5. completes it: nothing left to train
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(run) and (run / "finished.json").is_file()
    assert "Epoch " not in result.output

    # deterministic (the default): the resumed run is the uninterrupted one, bit for bit
    a, b = _history(straight), _history(run)
    assert [row["epoch"] for row in b] == ["0", "1"]
    for row_a, row_b in zip(a, b):
        for column in (*LOSS_COLUMNS, "val_ap"):
            assert row_b[column] == row_a[column], column
    model_a = keras.saving.load_model(straight / "model_final.keras")
    model_b = keras.saving.load_model(run / "model_final.keras")
    for wa, wb in zip(model_a.weights, model_b.weights):
        assert wb.numpy().tobytes() == wa.numpy().tobytes(), wa.path
    metrics_a, metrics_b = (json.loads((r / "metrics.json").read_text()) for r in (straight, run))
    roots = metrics_a.pop("data_root"), metrics_b.pop("data_root")  # each records the data it scored
    assert metrics_b == metrics_a and roots[0] != roots[1]
    samplers = [json.loads((r / "sampler.json").read_text()) for r in (straight, run)]
    assert samplers[0] == samplers[1]
    with open(run / "results.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 5  # the half-written one was replaced

    result = runner.invoke(main, ["fit", "--resume", "run"])  # 6. finished: refused, nothing touched
    assert result.exit_code == 1 and "this run already finished (finished.json exists)" in result.stderr


@pytest.mark.parametrize("how", ["immutable", "read-only"])
def test_fit_into_a_folder_it_cannot_write_is_one_line_before_any_work(folder_root, tmp_path, how):
    locked = tmp_path / "locked"
    locked.mkdir()
    command = (["chattr", "+i", str(locked)] if how == "immutable" else
               ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(locked)])
    if os.geteuid() != 0 or shutil.which(command[0]) is None or subprocess.run(command).returncode != 0:
        pytest.skip(f"needs root and {command[0]}")
    try:
        args = ["fit", "--dataset", "folder", "--data-root", str(folder_root), "--width", "64",
                "--height", "64", "--run-dir", str(locked / "run")]
        result = CliRunner().invoke(main, args)
    finally:
        subprocess.run(["chattr", "-i", str(locked)] if how == "immutable" else ["umount", str(locked)])
    reason = "Operation not permitted" if how == "immutable" else "Read-only file system"
    assert result.exit_code == 1
    assert result.stderr == (f"Error: Cannot write into {locked}: {reason}; expected a writable folder "
                             "(choose another with --run-dir)\n")
    assert "Decoding" not in result.output and not (locked / "run").exists()


def test_precision_policy_is_scoped_and_auto_means_float32_on_cpu():
    assert keras.config.dtype_policy().name == "float32"
    with precision_policy("mixed_bfloat16") as chosen:
        assert chosen == keras.config.dtype_policy().name == "mixed_bfloat16"
        tiny = SegDecNet(**dataclasses.asdict(TINY_MODEL))
        assert tiny(np.zeros((1, 64, 64, 1), np.float32))["decision"].dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"
    with precision_policy("auto") as chosen:
        assert chosen == "float32"  # no GPU here; mixed_float16 where one is visible
    with precision_policy("float64"):  # equivalence checks: the learning rate and metrics too
        assert keras.config.floatx() == "float64"
        assert keras.optimizers.SGD(learning_rate=0.01).learning_rate.numpy() == 0.01  # not float32's
    assert keras.config.floatx() == "float32" and keras.config.dtype_policy().name == "float32"


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
