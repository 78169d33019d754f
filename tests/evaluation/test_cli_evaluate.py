"""`kerasdec evaluate` and `kerasdec predict` through click's CliRunner."""

from __future__ import annotations

import csv
import errno
from pathlib import Path

import cv2
import numpy as np
from click.testing import CliRunner

from kerasdec.cli import main


def test_evaluate_command_prints_new_folder(tiny_run):
    runner = CliRunner()
    args = ["evaluate", str(tiny_run.run_dir), "--data-root", str(tiny_run.data.root), "--model", "final"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    out = Path(result.stdout.strip().splitlines()[-1])
    assert out.parent == tiny_run.run_dir and out.name.startswith("evaluate-test-final")
    assert (out / "metrics.json").is_file() and (out / "index.html").is_file()


def test_evaluate_command_errors(tiny_run, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["evaluate", str(tmp_path)])
    assert result.exit_code == 1 and "config.json not found" in result.output
    result = runner.invoke(main, ["evaluate", str(tiny_run.run_dir), "--split", "train"])
    assert result.exit_code == 2 and "'train' is not one of 'test', 'val'" in result.output


def test_predict_command(tiny_run, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "one.png"), np.full((40, 56), 128, np.uint8))
    cv2.imwrite(str(images / "two.png"), np.full((96, 72), 30, np.uint8))
    runner = CliRunner()
    out_dir = tmp_path / "pred"
    result = runner.invoke(main, ["predict", str(tiny_run.run_dir), str(images), "--out", str(out_dir),
                                  "--threshold", "0.0"])
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip().splitlines()[-1]) == out_dir
    with (out_dir / "scores.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [Path(r["path"]).name for r in rows] == ["one.png", "two.png"]
    assert all(r["decision"] == "1" for r in rows)  # --threshold 0 calls every image defective
    assert cv2.imread(str(out_dir / rows[1]["overlay"])).shape == (96, 72, 3)
    again = runner.invoke(main, ["predict", str(tiny_run.run_dir), str(images), "--out", str(out_dir)])
    assert again.exit_code == 1 and "exists and is not empty" in again.output
    missing = runner.invoke(main, ["predict", str(tiny_run.run_dir), str(images)])
    assert missing.exit_code == 2 and "Missing option '--out'" in missing.output


def test_evaluate_into_a_read_only_run_gives_one_line(tiny_run, monkeypatch):
    def read_only(parent, name):
        raise PermissionError(errno.EROFS, "Read-only file system", str(parent / name))

    monkeypatch.setattr("kerasdec.evaluation.evaluate.new_folder", read_only)
    args = ["evaluate", str(tiny_run.run_dir), "--data-root", str(tiny_run.data.root)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    folder = tiny_run.run_dir / "evaluate-test-final"
    assert result.output.strip() == f"Error: {folder}: Read-only file system"


def test_a_failed_evaluate_leaves_no_folder(tiny_run, monkeypatch):
    def disk_full(model, samples, data_cfg, out, **kwargs):
        (out / "figures").mkdir()
        raise OSError(errno.ENOSPC, "No space left on device", str(out / "figures" / "00001_x.png"))

    monkeypatch.setattr("kerasdec.evaluation.evaluate.evaluate_model", disk_full)
    before = sorted(p.name for p in tiny_run.run_dir.iterdir())
    args = ["evaluate", str(tiny_run.run_dir), "--data-root", str(tiny_run.data.root)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert result.output.strip().endswith("00001_x.png: No space left on device")
    assert sorted(p.name for p in tiny_run.run_dir.iterdir()) == before  # no empty evaluate-test-final-N/
