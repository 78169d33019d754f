from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from kerasdec.cli import main
from kerasdec.config import DataConfig, RunConfig
from kerasdec.export.deploy import calibration_images
from kerasdec.export.tflite import run_tflite


@pytest.fixture
def run_dir(tmp_path, model, folder_root) -> Path:
    """A run directory as ``kerasdec fit`` leaves it, reduced to what export reads."""
    run = tmp_path / "run"
    run.mkdir()
    cfg = RunConfig(data=DataConfig(dataset="folder", root=str(folder_root), width=64, height=64), seed=3)
    (run / "config.json").write_text(json.dumps(cfg.to_dict()))
    (run / "metrics.json").write_text(json.dumps({"ap": 1.0, "threshold": 0.42}))
    model.save(run / "model_final.keras")
    return run


def test_export_run_dir_to_saved_model_and_int8(run_dir, tmp_path, images):
    base = tmp_path / "saved_models" / "segdec"
    result = CliRunner().invoke(main, ["export", str(run_dir), "--out", str(base), "--tflite", "int8",
                                       "--calibration-images", "4"])
    assert result.exit_code == 0, result.output
    assert result.output.split() == [str(base / "1"), str(base / "1" / "segdec_int8.tflite")]
    meta = json.loads((base / "1" / "metadata.json").read_text())
    assert meta["threshold"] == 0.42 and meta["threshold_from"] == str((run_dir / "metrics.json").resolve())
    assert meta["source"] == str(run_dir.resolve()) and meta["dataset"] == "folder"
    assert meta["model_file"] == str((run_dir / "model_final.keras").resolve())
    lite = json.loads((base / "1" / "segdec_int8.metadata.json").read_text())
    assert (lite["mode"], lite["check_images"], lite["threshold"]) == ("int8", 4, 0.42)
    assert run_tflite(base / "1" / "segdec_int8.tflite", images[:1])["score"].shape == (1, 1)

    again = CliRunner().invoke(main, ["export", str(run_dir), "--out", str(base), "--version", "1"])
    assert again.exit_code == 1
    assert f"version folder {base / '1'} already exists" in again.output


def test_calibration_images_spread_over_the_training_split(folder_root):
    cfg = DataConfig(dataset="folder", root=str(folder_root), width=64, height=64)
    x = calibration_images(cfg, seed=0, count=4)
    assert x.shape == (4, 64, 64, 1) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and len({a.tobytes() for a in x}) == 4
    assert len(calibration_images(cfg, seed=0, count=100)) == 9  # all 5 ok + 4 defect images


def test_source_errors_come_before_loading_or_writing(tmp_path):
    (tmp_path / "m").mkdir()
    path = tmp_path / "m" / "model.keras"
    path.write_bytes(b"not read: the size check comes first")
    result = CliRunner().invoke(main, ["export", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert f"no config.json beside {path} to give the input size; pass width and height" in result.output
    assert not (tmp_path / "out").exists()
    int8 = CliRunner().invoke(main, ["export", str(path), "--out", str(tmp_path / "out"), "--width", "64",
                                     "--height", "64", "--tflite", "int8"])
    assert int8.exit_code == 1
    assert f"int8 needs calibration images from the training data, but {path} has no config.json" \
        in int8.output
    missing = CliRunner().invoke(main, ["export", str(tmp_path), "--model", "best"])
    assert missing.exit_code == 1 and f"{tmp_path / 'model_best.keras'} not found" in missing.output
    assert not (tmp_path / "out").exists()
