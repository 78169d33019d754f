"""kerasdec bench: the result dict, precision handling and the CLI table / JSON (tiny 64×64 runs)."""

import json
import math
import os
import subprocess
import sys

import keras
import pytest
import tensorflow as tf
from click.testing import CliRunner

from kerasdec.bench import TIMING_KEYS, benchmark
from kerasdec.cli import main

TINY = {"width": 64, "height": 64, "steps": 2, "warmup": 1}


@pytest.fixture(scope="module")
def float32_result():
    return benchmark(batch_size=2, precision="float32", **TINY)


def test_result_has_positive_finite_timings_consistent_with_the_batch(float32_result):
    r = float32_result
    for key in TIMING_KEYS:
        assert isinstance(r[key], float) and math.isfinite(r[key]) and r[key] > 0, key
    assert r["train_images_per_s"] == pytest.approx(2 * 1000 / r["train_ms_per_step"])
    assert r["predict_images_per_s"] == pytest.approx(2 * 1000 / r["predict_ms_per_batch"])
    assert r["first_train_step_s"] > r["train_ms_per_step"] / 1000  # the first call also traces
    assert math.isfinite(r["train_loss"]) and r["train_loss"] > 0
    assert r["host_peak_rss_growth_mb"] >= 0 and r["host_peak_rss_mb"] >= r["host_peak_rss_growth_mb"]
    settings = ("width", "height", "channels", "batch_size", "steps", "warmup")
    assert [r[k] for k in settings] == [64, 64, 1, 2, 2, 1]
    assert r["params"] > 15_000_000  # the 15×15×1024 block alone has 14.7 M weights
    assert (r["tensorflow"], r["keras"]) == (tf.__version__, keras.__version__)
    json.dumps(r)  # serialisable as it stands


def test_device_and_memory_fields_follow_the_hardware(float32_result):
    gpu = bool(tf.config.list_physical_devices("GPU"))
    assert float32_result["device"].startswith("GPU: " if gpu else "CPU: ")
    assert (float32_result["gpu_peak_mb"] is None) is not gpu
    assert float32_result["jit"] is gpu  # "auto": XLA only with a GPU


_BF16_SCRIPT = """
import json, keras
from kerasdec.bench import benchmark
before = keras.config.dtype_policy().name
r = benchmark(batch_size=1, precision="mixed_bfloat16", jit=False, **%r)
print(json.dumps({"before": before, "after": keras.config.dtype_policy().name, "result": r}))
"""


def test_mixed_bfloat16_computes_in_bfloat16_with_float32_outputs_and_restores_the_policy():
    # In a fresh process, as `kerasdec bench` runs. On this CPU, after a hundred-odd models have
    # been built in one process, a bf16 training step sometimes turns the segmentation weights
    # into NaN (seen 7 times in runs 125-146 of one process, never in a fresh one; TF 2.21,
    # oneDNN bf16). That is recorded in the README; this test checks the benchmark itself.
    done = subprocess.run([sys.executable, "-c", _BF16_SCRIPT % (TINY,)], capture_output=True,
                          text=True, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    out = json.loads(done.stdout.strip().splitlines()[-1])
    r = out["result"]
    assert out["after"] == out["before"] == "float32"
    assert r["precision"] == "mixed_bfloat16"
    assert (r["compute_dtype"], r["variable_dtype"]) == ("bfloat16", "float32")
    assert r["output_dtypes"] == {"decision": "float32", "seg": "float32"}
    assert r["train_images_per_s"] == pytest.approx(1000 / r["train_ms_per_step"])
    assert r["jit"] is False and math.isfinite(r["train_loss"])


def test_bad_arguments_are_refused_before_any_work():
    with pytest.raises(ValueError, match=r"steps=0, warmup=1; expected steps >= 1 and warmup >= 0"):
        benchmark(steps=0, warmup=1)
    with pytest.raises(ValueError, match=r"width=100; expected a multiple of 8, at least 64"):
        benchmark(width=100)
    with pytest.raises(ValueError, match=r"precision='half'"):
        benchmark(precision="half")


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
