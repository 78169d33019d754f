"""TFLite conversion of the tiny model and the LiteRT runner (int8 on a trained model: test_trained.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from kerasdec.deploy import tflite
from kerasdec.deploy.check import FLOAT_TOLERANCE
from kerasdec.inference.runners import TFLiteRunner, load, sigmoid
from kerasdec.models.rowconv import use_row_gemm

SIZE = 64


@pytest.fixture(scope="module")
def converted(model, info, tmp_path_factory):
    """float32 and float16 conversions of the tiny model, with the metadata the exporter writes."""
    out = tmp_path_factory.mktemp("tflite")
    fixed = tflite.write_fixed_saved_model(model, info, out / "fixed")
    paths = {}
    for mode in ("float32", "float16"):
        paths[mode] = out / f"segdec_{mode}.tflite"
        paths[mode].write_bytes(tflite.convert(fixed, mode))
        meta = {**info.to_dict(), "mode": mode}
        (out / f"segdec_{mode}.metadata.json").write_text(json.dumps(meta))
    return paths


@pytest.mark.parametrize("mode, atol", [("float32", 1e-5), ("float16", 5e-3)])
def test_runner_scores_and_heatmaps_match_keras(converted, images, keras_outputs, mode, atol):
    runner = load(converted[mode])
    assert isinstance(runner, TFLiteRunner) and runner.info.threshold == 0.3
    scores, heatmaps = runner.predict(images)
    assert scores.shape == (len(images),) and heatmaps.shape == (len(images), SIZE // 8, SIZE // 8)
    np.testing.assert_allclose(scores, keras_outputs["score"], atol=atol, rtol=0)
    np.testing.assert_allclose(heatmaps, sigmoid(keras_outputs["seg"]), atol=10 * atol, rtol=0)


@pytest.mark.parametrize("mode", ["float32", "float16"])
def test_every_convolution_is_one_conv2d_for_mobile_delegates(converted, model, images, keras_outputs,
                                                              tflite_ops, mode):
    """The 15x15x1024 block is one CONV_2D, not the CPU training path's row matmuls (before: 16
    FULLY_CONNECTED, 32 STRIDED_SLICE, 15 PAD and no 15x15 filter), and the scores still pass the
    export self-check's float tolerance."""
    read_ops, plain_filters = tflite_ops
    assert use_row_gemm((1, SIZE // 8, SIZE // 8, 64), 15)  # the block's 8x8 map takes the matmul path
    ops = read_ops(converted[mode])
    assert (1024, 15, 15, 64) in ops.conv_filters
    assert ops.conv_filters == plain_filters(model)  # each Conv2D layer is exactly one CONV_2D
    assert ops.counts["CONV_2D"] == 13 and ops.counts["PAD"] == 0
    assert ops.counts["FULLY_CONNECTED"] == 1  # the decision head's Dense layer only
    assert ops.counts["STRIDED_SLICE"] <= 2  # the outputs' batch slices; row-GEMM adds 2 per kernel row
    scores, _ = load(converted[mode]).predict(images)
    np.testing.assert_allclose(scores, keras_outputs["score"], atol=FLOAT_TOLERANCE[mode], rtol=0)


def test_the_file_has_a_fixed_input_and_the_runner_enforces_it(converted, images):
    raw = Interpreter(model_path=str(converted["float32"])).get_signature_runner("serving_default")
    assert list(raw.get_input_details()["image"]["shape"]) == [1, SIZE, SIZE, 1]
    assert sorted(raw.get_output_details()) == ["decision", "score", "seg"]
    runner = load(converted["float32"])
    for bad in (np.zeros((1, 2 * SIZE, 2 * SIZE, 1), np.float32), np.zeros((SIZE, SIZE, 1), np.float32),
                np.zeros((0, SIZE, SIZE, 1), np.float32), np.zeros((1, SIZE, SIZE, 3), np.float32)):
        with pytest.raises(ValueError, match=r"takes images of shape \(B >= 1, 64, 64, 1\) float32"):
            runner.predict(bad)
    assert runner.predict(images[:2])[0].shape == (2,)  # a batch is run image by image


def test_float16_stores_half_the_bytes(converted):
    sizes = {mode: path.stat().st_size for mode, path in converted.items()}
    assert sizes["float16"] < 0.6 * sizes["float32"]
    types = {np.dtype(t["dtype"]).name for t in
             Interpreter(model_path=str(converted["float16"])).get_tensor_details()}
    assert "float16" in types


def test_runner_refuses_a_file_whose_metadata_does_not_match(converted, tmp_path):
    copy = tmp_path / "m.tflite"
    copy.write_bytes(converted["float32"].read_bytes())
    with pytest.raises(FileNotFoundError, match=r"m\.metadata\.json not found"):
        load(copy)
    meta = json.loads(converted["float32"].with_name("segdec_float32.metadata.json").read_text())
    (tmp_path / "m.metadata.json").write_text(json.dumps({**meta, "width": 128}))
    with pytest.raises(ValueError, match=r"input shape \(1, 64, 64, 1\) but its metadata says \(1, 64, 128"):
        load(copy)
    with pytest.raises(ValueError, match=r"exported for 128x64 \(WxH\); 64x64 was requested"):
        load(copy, size_hw=(64, 64))


def test_conversion_argument_errors(tmp_path):
    with pytest.raises(ValueError, match=r"mode='int4'; expected one of \('float32', 'float16', 'dynamic'"):
        tflite.convert(tmp_path, "int4")
    with pytest.raises(ValueError, match=r"mode='int8' needs calibration images"):
        tflite.convert(tmp_path, "int8")
