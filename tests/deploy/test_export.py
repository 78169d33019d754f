"""`kerasdec export` on the tiny run: one checked version published at once, or nothing at all.

Issue 11 cases covered here: a failed export publishes no version (missing data root, failed
self-check), a full disk and a read-only --out folder give one line naming the path, a .keras that is
not a kerasdec model or is truncated gives one line naming the file, stale hidden folders are cleaned.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from kerasdec.cli import main
from kerasdec.deploy import check
from kerasdec.deploy.data import spread
from kerasdec.deploy.export import clean_stale
from kerasdec.files import TMP_PREFIX


def _export(*args: str):
    return CliRunner().invoke(main, ["export", *map(str, args)])


def _one_line(result) -> str:
    """The error line of a failed command; asserts there is exactly one and no traceback."""
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def _published(base: Path) -> list[str]:
    return sorted(p.name for p in base.iterdir()) if base.exists() else []


@pytest.fixture(scope="module")
def published(tiny_run, tmp_path_factory):
    """The tiny run exported once (SavedModel only; TFLite modes: test_trained.py): (result, base).

    The tiny run was never evaluated, so the export is given its threshold (it never takes a default)."""
    base = tmp_path_factory.mktemp("export") / "segdec"
    result = _export(tiny_run.run_dir, "--out", base, "--data-root", tiny_run.data.root, "--threshold", 0.5)
    return result, base


def test_a_run_is_published_as_one_checked_version(published, tiny_run):
    result, base = published
    assert result.exit_code == 0, result.output
    version = base / "1"
    assert result.output.split() == [str(version)]
    assert _published(base) == ["1"]  # no hidden folder left
    assert {"saved_model.pb", "variables", "metadata.json", "assets.extra"} <= set(os.listdir(version))
    meta = json.loads((version / "metadata.json").read_text())
    assert (meta["threshold"], meta["threshold_from"], meta["dataset"]) == (0.5, "argument", "folder")
    assert meta["model_file"] == str((tiny_run.run_dir / "model_final.keras").resolve())
    saved_check = meta["self_check"]["saved_model"]
    assert saved_check["passed"] and saved_check["flipped"] == 0 and saved_check["images"] == 6
    assert saved_check["max_score_error"] <= 1e-4
    assert saved_check["held_out"] == "folder test split (6 images)"
    assert meta["tflite"] == []


def test_the_warmup_request_is_a_readable_prediction_log(published):
    prediction_log_pb2 = pytest.importorskip("tensorflow_serving.apis.prediction_log_pb2")
    _, base = published
    records = list(tf.data.TFRecordDataset(str(base / "1" / "assets.extra" / "tf_serving_warmup_requests")))
    assert len(records) == 1
    log = prediction_log_pb2.PredictionLog.FromString(records[0].numpy())
    request = log.predict_log.request
    assert request.model_spec.signature_name == "serving_default"
    image = tf.make_ndarray(request.inputs["image"])
    assert image.shape == (1, 64, 64, 1) and image.dtype == np.float32
    assert 0 <= image.min() <= image.max() <= 1


def test_an_existing_version_is_refused_before_loading(published, tiny_run):
    _, base = published
    before = (base / "1" / "saved_model.pb").read_bytes()
    line = _one_line(_export(tiny_run.run_dir, "--out", base, "--version", "1"))
    assert line == f"Error: version folder {base / '1'} already exists; exporting never overwrites: pass " \
                   "another --version or leave it out"
    assert (base / "1" / "saved_model.pb").read_bytes() == before


def test_int8_without_its_data_publishes_nothing(tiny_run, tmp_path):
    base = tmp_path / "segdec"
    line = _one_line(_export(tiny_run.run_dir, "--out", base, "--tflite", "int8"))  # config root moved away
    assert "moved-away" in line
    assert _published(base) == []


def test_a_bare_keras_file_cannot_be_quantised(tiny_run, tmp_path):
    lone = tmp_path / "lone" / "model.keras"
    lone.parent.mkdir()
    shutil.copy(tiny_run.run_dir / "model_final.keras", lone)
    line = _one_line(_export(lone, "--out", tmp_path / "out", "--tflite", "dynamic", "--tflite", "int8"))
    assert line == (f"Error: --tflite dynamic/int8 needs the training and held-out images of a run, but "
                    f"{lone} has no config.json beside it; export the run directory instead")
    assert not (tmp_path / "out").exists()
    gone = tmp_path / "gone"
    gone.mkdir()
    assert _one_line(_export(gone, "--out", tmp_path / "out", "--model", "best")) == \
        f"Error: {gone / 'model_best.keras'} not found; expected a run directory (config.json + " \
        "model_best.keras) or a .keras file"
    assert not (tmp_path / "out").exists()


def test_a_failed_self_check_publishes_nothing(tiny_run, tmp_path, monkeypatch):
    def fails_its_check(model, info, staging, work, *args):
        (staging / "variables").mkdir(parents=True)  # half a version, as when int8 fails after the SavedModel
        (staging / "saved_model.pb").write_bytes(b"servable if published")
        work.mkdir()
        report = check.compare("int8", np.array([0.9, 0.1]), np.array([0.1, 0.9]), None, 0.5, "2 images")
        check.require_passed(report)

    monkeypatch.setattr("kerasdec.deploy.export.build_version", fails_its_check)
    base = tmp_path / "segdec"
    line = _one_line(_export(tiny_run.run_dir, "--out", base, "--data-root", tiny_run.data.root,
                             "--threshold", 0.5))
    assert line.startswith("Error: self-check failed, nothing exported: int8: 2/2 decisions flipped")
    assert _published(base) == []  # neither the version nor a hidden folder


def test_a_full_disk_gives_one_line_and_publishes_nothing(tiny_run, tmp_path, monkeypatch):
    class FullDisk:
        def write_out(self, filepath, verbose=False):
            Path(filepath, "variables").mkdir(parents=True)
            raise tf.errors.ResourceExhaustedError(None, None, f"{filepath}/variables: No space left")

    monkeypatch.setattr("kerasdec.deploy.saved_model._archive", lambda model, info: FullDisk())
    base = tmp_path / "segdec"
    line = _one_line(_export(tiny_run.run_dir, "--out", base, "--data-root", tiny_run.data.root,
                             "--threshold", 0.5))
    assert "could not write the SavedModel" in line and "No space left" in line
    assert str(base) in line
    assert _published(base) == []


def test_a_read_only_out_folder_gives_one_line(tiny_run, tmp_path, monkeypatch):
    base = tmp_path / "segdec"
    base.mkdir()
    monkeypatch.setattr("kerasdec.deploy.export.writable", lambda folder: False)  # root ignores chmod
    assert _one_line(_export(tiny_run.run_dir, "--out", base)) == \
        f"Error: --out {base} is not writable; expected a folder kerasdec can write versions into"
    monkeypatch.undo()

    def refuse(self, *args, **kwargs):
        raise PermissionError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    line = _one_line(_export(tiny_run.run_dir, "--out", tmp_path / "new" / "segdec"))
    assert line == f"Error: {tmp_path / 'new' / 'segdec'}: Read-only file system"


@pytest.mark.parametrize("command", ["export", "evaluate", "predict"])
def test_a_model_file_that_is_not_kerasdecs_or_is_truncated_gives_one_line(tiny_run, tmp_path, command):
    run = tmp_path / "run"
    shutil.copytree(tiny_run.run_dir, run, ignore=shutil.ignore_patterns("evaluate-*"))
    model_file = run / "model_final.keras"
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    other.save(model_file)
    args = {"export": ["export", run, "--out", tmp_path / "out"], "evaluate": ["evaluate", run],
            "predict": ["predict", run, tiny_run.data.root, "--out", tmp_path / "pred"]}[command]
    line = _one_line(CliRunner().invoke(main, [str(a) for a in args]))
    assert line == f"Error: {model_file} holds a Sequential model, not a kerasdec SegDecNet; expected a " \
                   "model_*.keras written by kerasdec fit"
    data = (tiny_run.run_dir / "model_final.keras").read_bytes()
    model_file.write_bytes(data[: len(data) // 2])  # a copy cut short, or a kill during a save
    line = _one_line(CliRunner().invoke(main, [str(a) for a in args]))
    assert line.startswith(f"Error: {model_file} is not a readable .keras file (BadZipFile")
    assert line.endswith("it may be truncated or corrupt: save or copy it again")
    assert not (tmp_path / "out").exists() and not (tmp_path / "pred").exists()
    assert not list(run.glob("evaluate-*"))  # a failed evaluate leaves no folder


def test_stale_hidden_folders_of_killed_exports_are_removed(tmp_path):
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead = int(done.stdout)  # a process that has exited
    old = time.time() - 3600
    folders = {"dead-old": f"{TMP_PREFIX}{dead}-abcd1234-version",
               "alive-old": f"{TMP_PREFIX}{os.getpid()}-x",
               "dead-new": f"{TMP_PREFIX}{dead}-ef567890-tflite-source", "no-pid-old": f"{TMP_PREFIX}3-abc"}
    for key, name in folders.items():
        (tmp_path / name / "variables").mkdir(parents=True)
        if key.endswith("old"):
            os.utime(tmp_path / name, (old, old))
    (tmp_path / "1").mkdir()
    removed = clean_stale(tmp_path)
    assert sorted(p.name for p in removed) == sorted([folders["dead-old"], folders["no-pid-old"]]) or \
        sorted(p.name for p in removed) == [folders["dead-old"]]  # pid 3 may be alive on this machine
    assert (tmp_path / folders["alive-old"]).exists() and (tmp_path / folders["dead-new"]).exists()
    assert (tmp_path / "1").exists()


def test_calibration_and_check_samples_spread_over_both_classes():
    from kerasdec.data.samples import Sample

    samples = [Sample(image_path=f"{i}.png", is_positive=i % 4 == 0, name=str(i)) for i in range(160)]
    picked = spread(samples, 100)
    assert len(picked) == 100 and sum(s.is_positive for s in picked) == 25  # in proportion (40 of 160)
    assert len({s.name for s in picked}) == 100
    assert spread(samples[:7], 100) == samples[:7]  # fewer than asked: all
    few = [Sample(image_path="p.png", is_positive=True, name="p")] + samples[1:4]
    assert sum(s.is_positive for s in spread(few * 50, 10)) >= 1  # the rare class is never dropped


def test_check_report_counts_flips_and_errors():
    reference = np.array([0.1, 0.4, 0.6, 0.9])
    labels = np.array([False, False, True, True])
    same = check.compare("float32", reference + 1e-6, reference, labels, 0.5, "x")
    assert same.passed and same.flipped == 0 and same.ap == same.reference_ap == 1.0
    flipped = check.compare("float16", np.array([0.1, 0.55, 0.6, 0.9]), reference, labels, 0.5, "x")
    assert not flipped.passed and flipped.flipped == 1 and flipped.max_score_error == pytest.approx(0.15)
    many = np.linspace(0, 1, 200)
    one = many.copy()
    one[100] = 1.0 - one[100]  # one decision of 200 flips: within 1% for a quantised artifact
    assert check.compare("int8", one, many, None, 0.5, "x").passed
    one[90] = 1.0 - one[90]
    assert check.compare("int8", one, many, None, 0.5, "x").passed  # 2 of 200 = 1%: still allowed
    one[80] = 1.0 - one[80]
    assert not check.compare("int8", one, many, None, 0.5, "x").passed
    with pytest.raises(check.ExportCheckError, match=r"self-check failed, nothing exported: int8: 3/200"):
        check.require_passed(check.compare("int8", one, many, None, 0.5, "x"))
