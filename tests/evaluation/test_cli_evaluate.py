"""`kerasdec evaluate` and `kerasdec predict` through click's CliRunner."""

from __future__ import annotations

import csv
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
