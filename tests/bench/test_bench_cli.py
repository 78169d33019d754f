"""`kerasdec bench`: the rows, the table and the files it writes, and its flag errors (tiny 64×64 runs)."""

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from kerasdec.cli import main


def test_cli_quick_has_rows_per_precision_and_pipeline_writes_json_markdown_never_overwrites(tmp_path):
    # `kerasdec bench --quick` is the suite's smoke test: structure, not timings.
    out, md = tmp_path / "bench.json", tmp_path / "bench.md"
    args = ["bench", "--dataset", "ksdd2", "--quick", "--precision", "float32", "--precision",
            "mixed_bfloat16", "--no-jit", "--json", str(out), "--markdown", str(md)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    table = [line.split("|")[1:-1] for line in result.output.splitlines() if line.startswith("| ")]
    cells = [[c.strip() for c in row] for row in table]
    assert cells[0][:3] == ["what", "variant", "XLA"]
    assert [row[:5] for row in cells[1:]] == [
        ["train", "float32", "off", "64×64×3", "1"], ["forward", "float32", "off", "64×64×3", "1"],
        ["train", "mixed_bfloat16", "off", "64×64×3", "1"],
        ["forward", "mixed_bfloat16", "off", "64×64×3", "1"],
        ["pipeline", "cached", "-", "64×64×3", "1"], ["pipeline", "cold", "-", "64×64×3", "1"]]
    written = json.loads(out.read_text())
    assert set(written) == {"machine", "settings", "rows"}
    assert set(written["machine"]["matmul_gflops"]) == {"float32", "bfloat16"}
    rows = written["rows"]
    assert [(r["kind"], r["variant"]) for r in rows][:2] == [("train", "float32"), ("forward", "float32")]
    for r in rows:
        assert len(r["all_ms"]) == 1 and r["median_ms"] == r["all_ms"][0]  # --quick: one repeat
        assert r["images_per_s"] == pytest.approx(1000 / r["median_ms"])
        assert ("gflops_per_image" in r) is (r["kind"] in ("train", "forward"))
    assert md.read_text().splitlines()[2] == result.output.splitlines()[
        result.output.splitlines().index(md.read_text().splitlines()[0]) + 2]
    before = out.read_text()
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1 and f"--json {out} already exists" in again.output
    assert out.read_text() == before


def test_cli_flag_errors_name_the_flag():
    result = CliRunner().invoke(main, ["bench", "--dataset", "ksdd2", "--height", "60"])
    assert result.exit_code == 2 and "height=60; expected a multiple of 8, at least 64" in result.output
    result = CliRunner().invoke(main, ["bench", "--steps", "0"])
    assert result.exit_code == 2 and "--steps" in result.output
    result = CliRunner().invoke(main, ["bench", "--size", "128by128"])
    assert result.exit_code == 2 and "expected WxH or WxHxC" in result.output
    result = CliRunner().invoke(main, ["bench", "--size", "128x100"])
    assert result.exit_code == 2 and "height=100; expected a multiple of 8" in result.output


def test_cli_quick_export_times_every_artifact_written_by_the_deploy_code(tmp_path):
    # The path users run: the SavedModel and the TFLite files of an untrained model, each timed through
    # its runner (kerasdec.inference), after the model and pipeline rows.
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(main, ["bench", "--quick", "--export", "--json", str(out)])
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text())
    assert written["machine"]["device"].startswith(("CPU: ", "GPU: "))
    rows = written["rows"]
    assert [(r["kind"], r["variant"]) for r in rows] == [
        ("train", "float32"), ("forward", "float32"), ("pipeline", "cached"), ("pipeline", "cold"),
        ("savedmodel", "float32"), ("tflite", "float32"), ("tflite", "float16"), ("tflite", "int8")]
    for r in rows[4:]:
        assert "error" not in r, r
        assert (r["width"], r["height"], r["channels"], r["batch_size"], r["jit"]) == (64, 64, 1, 1, None)
        assert len(r["all_ms"]) == 5 and all(math.isfinite(t) and t > 0 for t in r["all_ms"])  # >= 5 repeats
        assert r["median_ms"] == pytest.approx(float(np.median(r["all_ms"])))
        assert r["images_per_s"] == pytest.approx(1000 / r["median_ms"])
    megabytes = {r["variant"]: r["file_mb"] for r in rows if r["kind"] == "tflite"}
    assert 55 < megabytes["float32"] < 70  # 15.6 M float32 weights
    assert megabytes["float16"] < 0.6 * megabytes["float32"]
    assert megabytes["int8"] < 0.35 * megabytes["float32"]
    table = [line.split("|")[1:4] for line in result.output.splitlines() if line.startswith("| ")]
    assert [[c.strip() for c in cells] for cells in table[-4:]] == [
        ["savedmodel", "float32", "-"], ["tflite", "float32", "-"], ["tflite", "float16", "-"],
        ["tflite", "int8", "-"]]
