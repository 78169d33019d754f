"""kerasdec.bench: FLOPs from the layer shapes, settings validation, the Markdown table; pipeline output."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kerasdec.bench.flops import model_flops
from kerasdec.bench.suite import SuiteConfig, markdown_table
from kerasdec.config import DataConfig
from kerasdec.data import pipeline, synthetic, targets
from kerasdec.data.decode import read_image
from kerasdec.data.sampling import FrequencySampler


def test_flops_follow_the_layer_shapes():
    f = model_flops(128, 128)
    # the 15×15×1024 conv at a 16×16 map: every output sees taps(16, 15) = 184 rows and columns
    taps = sum(min(i + 7, 15) - max(i - 7, 0) + 1 for i in range(16))
    assert taps == 184
    big = 2 * taps * taps * 64 * 1024
    assert f["conv15_share"] == pytest.approx(big / f["forward"])
    first = 2 * sum(min(i + 2, 127) - max(i - 2, 0) + 1 for i in range(128)) ** 2 * 1 * 32
    assert f["train"] == pytest.approx(3 * f["forward"] - first)
    # away from the borders every tap counts: a large map tends to 2·k²·Cin·Cout per position
    large = model_flops(1600, 1600)
    assert large["conv15_share"] > f["conv15_share"] > 0.5
    assert model_flops(128, 256)["forward"] > f["forward"]


def test_suite_config_rejects_bad_settings():
    with pytest.raises(ValueError, match="width=100; expected a multiple of 8"):
        SuiteConfig(sizes=((100, 128, 1),))
    with pytest.raises(ValueError, match="precision='half'"):
        SuiteConfig(precisions=("half",))
    with pytest.raises(ValueError, match="repeats=0"):
        SuiteConfig(repeats=0)
    with pytest.raises(ValueError, match="tflite_modes"):
        SuiteConfig(tflite_modes=("int4",))


def test_markdown_table_marks_missing_values_and_failed_exports():
    base = {"jit": None, "width": 64, "height": 64, "channels": 1, "batch_size": 1, "median_ms": 4.0,
            "images_per_s": 250.0, "all_ms": [4.0]}
    rows = [{**base, "kind": "train", "variant": "float32", "jit": False, "gflops_per_image": 1.5,
             "achieved_gflops": 12.0, "matmul_fraction": 0.25},
            {**base, "kind": "tflite", "variant": "int8", "median_ms": math.nan,
             "error": "TFLiteCheckError: x"}]
    machine = {"device": "CPU: test", "tensorflow": "2", "matmul_gflops": {"float32": 48.0, "bfloat16": 96.0},
               "load_average_start": 1.0, "load_average_end": 2.0}
    lines = markdown_table({"machine": machine, "rows": rows}).splitlines()
    assert lines[0].startswith("CPU: test; TensorFlow 2; matmul 48 GFLOP/s float32, 96 bfloat16")
    assert lines[4] == "| train | float32 | off | 64×64×1 | 1 | 4.0 | 250 | 1.5 | 12.0 | 25% |"
    assert lines[5] == "| tflite | int8 | - | 64×64×1 | 1 | failed | TFLiteCheckError: x | - | - | - |"


def test_pipeline_images_equal_numpy_float_conversion_exactly(tmp_path):
    # Images cross into tf.data as uint8 and become float32 in a TF op: bit for bit targets.to_float.
    # The images are those the pipeline benchmark writes: synthetic colour surfaces at the input size.
    cfg = DataConfig(width=64, height=72, channels=3)
    samples = synthetic.list_samples(tmp_path, "train", 0, (72, 64), channels=3, train_defect=2, train_ok=2,
                                     test_defect=0, test_ok=0)
    assert read_image(samples[0].image_path, 3).std(axis=2).max() > 0  # colour, not grey in 3 channels
    sampler = FrequencySampler([s.is_positive for s in samples], seed=0)
    ds = pipeline.make_train_dataset(samples, cfg, 2, sampler)
    order = sampler.indices(0)
    xs = np.concatenate([x.numpy() for x, _, _ in ds])
    for x, index in zip(xs, order):
        expected = targets.to_float(targets.input_image(read_image(samples[index].image_path, 3), cfg))
        np.testing.assert_array_equal(x, expected)
