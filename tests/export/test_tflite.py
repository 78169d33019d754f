from __future__ import annotations

import json

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from kerasdec.export import tflite
from kerasdec.export.tflite import (
    DEFAULT_TOLERANCES,
    TFLiteCheckError,
    check_tflite,
    export_tflite,
    run_tflite,
)

SAVED_MODEL_KEYS = {"format", "version", "width", "height", "channels", "threshold", "dataset",
                    "kerasdec_version", "tensorflow_version", "keras_version", "source", "created",
                    "signature", "input", "outputs"}
TFLITE_KEYS = SAVED_MODEL_KEYS | {"mode", "tolerance", "max_abs_diff", "check_images", "input_shape",
                                  "saved_model"}


@pytest.fixture(scope="module")
def converted(exported, images, tmp_path_factory):
    """float32, float16 and int8 conversions of the shared export, each converted once."""
    out = tmp_path_factory.mktemp("tflite")
    return {mode: export_tflite(exported, out / f"segdec_{mode}.tflite", mode,
                                representative_images=images if mode == "int8" else None)
            for mode in ("float32", "float16", "int8")}


def _tensor_types(path) -> set[str]:
    return {np.dtype(t["dtype"]).name for t in Interpreter(model_path=str(path)).get_tensor_details()}


@pytest.mark.parametrize("mode, atol", [("float32", 1e-4), ("float16", 2e-3), ("int8", 0.15)])
def test_tflite_scores_match_keras(converted, images, keras_outputs, mode, atol):
    out = run_tflite(converted[mode], images)
    assert sorted(out) == ["decision", "heatmap", "score", "seg"]
    assert out["score"].shape == (len(images), 1) and out["seg"].shape == keras_outputs["seg"].shape
    np.testing.assert_allclose(out["score"], keras_outputs["score"], atol=atol, rtol=0)
    assert atol == DEFAULT_TOLERANCES[mode]
    if mode == "float32":
        np.testing.assert_allclose(out["seg"], keras_outputs["seg"], atol=1e-3, rtol=0)


def test_tflite_has_fixed_input_and_the_serving_signature(converted, data_cfg):
    runner = Interpreter(model_path=str(converted["float32"])).get_signature_runner("serving_default")
    image = runner.get_input_details()["image"]
    assert list(image["shape"]) == [1, data_cfg.height, data_cfg.width, data_cfg.channels]
    assert image["dtype"] == np.float32  # also for int8: quantize/dequantize inside the model


def test_modes_store_float32_float16_int8_weights(converted):
    sizes = {mode: path.stat().st_size for mode, path in converted.items()}
    assert sizes["float16"] < 0.6 * sizes["float32"] and sizes["int8"] < 0.35 * sizes["float32"]
    assert "float16" not in _tensor_types(converted["float32"])
    assert "float16" in _tensor_types(converted["float16"])
    assert "int8" in _tensor_types(converted["int8"])


@pytest.mark.parametrize("mode", ["float32", "float16", "int8"])
def test_metadata_beside_the_tflite(converted, exported, mode):
    meta = json.loads(converted[mode].with_name(f"segdec_{mode}.metadata.json").read_text())
    assert set(meta) == TFLITE_KEYS
    assert meta["mode"] == mode and meta["format"] == "tflite"
    assert meta["tolerance"] == DEFAULT_TOLERANCES[mode]
    assert set(meta["max_abs_diff"]) == {"score", "decision", "seg", "heatmap"}
    assert 0 <= meta["max_abs_diff"]["score"] <= meta["tolerance"]
    saved = json.loads((exported / "metadata.json").read_text())
    assert {k: meta[k] for k in ("width", "height", "channels", "threshold", "source")} == \
        {k: saved[k] for k in ("width", "height", "channels", "threshold", "source")}


def test_self_check_raises_on_a_wrong_reference(converted, images, keras_outputs):
    wrong = {**keras_outputs, "score": keras_outputs["score"] + 0.5}
    with pytest.raises(TFLiteCheckError, match=r"max \|score difference\| 0\.5\d* > tolerance 0\.0001"):
        check_tflite(converted["float32"], images, wrong, tolerance=1e-4)
    diffs = check_tflite(converted["float32"], images, keras_outputs, tolerance=1e-4)
    assert diffs["score"] <= 1e-4


def test_failed_check_writes_nothing(exported, converted, tmp_path, monkeypatch):
    def wrong_reference(saved_model_dir, probe):
        return {"score": np.full((len(probe), 1), 2.0, np.float32)}  # no score is 2

    content = converted["float32"].read_bytes()
    monkeypatch.setattr(tflite, "_convert", lambda *args: content)  # skip converting again
    monkeypatch.setattr(tflite, "saved_model_outputs", wrong_reference)
    with pytest.raises(TFLiteCheckError, match="TFLite self-check failed on 2 images"):
        export_tflite(exported, tmp_path / "m.tflite", check_images=2)
    assert list(tmp_path.iterdir()) == []


def test_argument_errors_before_converting(exported, converted, images, tmp_path):
    with pytest.raises(ValueError, match=r"mode='int8' needs representative_images"):
        export_tflite(exported, tmp_path / "a.tflite", "int8")
    with pytest.raises(ValueError, match=r"mode='int4'; expected one of \('float32', 'float16', 'int8'\)"):
        export_tflite(exported, tmp_path / "a.tflite", "int4")
    with pytest.raises(ValueError, match=r"representative_images has shape \(6, 32, 32, 1\); expected"):
        export_tflite(exported, tmp_path / "a.tflite", "int8", images[:, :32, :32])
    with pytest.raises(ValueError, match=r"representative_images range \[0\.0, 255\.0\]; expected \[0, 1\]"):
        export_tflite(exported, tmp_path / "a.tflite", "int8", np.where(images > 0.5, 255.0, 0.0))
    with pytest.raises(ValueError, match=r"out_path=.*a\.bin; expected a file name ending in \.tflite"):
        export_tflite(exported, tmp_path / "a.bin")
    with pytest.raises(FileExistsError, match=rf"{converted['float32']} already exists"):
        export_tflite(exported, converted["float32"])
    with pytest.raises(FileNotFoundError, match=r"metadata\.json not found"):
        export_tflite(tmp_path, tmp_path / "a.tflite")
    assert list(tmp_path.iterdir()) == []
