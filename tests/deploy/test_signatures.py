"""The SavedModel's signatures, called in a fresh process that has only TensorFlow (no kerasdec).

Before the in-graph checks, a (1, 128, 128) request made the loading process abort inside oneDNN's
convolution (exit 134); the test below sends that and every other malformed request and asserts that
each is an InvalidArgumentError stating the rule, that the process survives, and that it answers the
next good request.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf

import kerasdec
from kerasdec.deploy import signatures
from kerasdec.deploy.saved_model import metadata
from kerasdec.inference.contract import ModelInfo
from kerasdec.inference.runners import load

SIZE = 64  # conftest's input size

# A fresh interpreter with TensorFlow only. Each case: (name, signature, input name, kind): kind "array"
# = the array of that name in the .npz, else a list of base64 strings. After every case the good request
# is sent again.
SERVE_SCRIPT = r"""
import base64, json, sys
import numpy as np, tensorflow as tf
folder, cases_file = sys.argv[1], sys.argv[2]
loaded = tf.saved_model.load(folder)
cases = json.load(open(cases_file))
arrays = np.load(cases_file + ".npz")
good = tf.constant(arrays["good"])
report = {"kerasdec_imported": "kerasdec" in sys.modules, "signatures": sorted(loaded.signatures),
          "inputs": {k: repr(f.structured_input_signature[1]) for k, f in loaded.signatures.items()},
          "metadata": {k: v.numpy().decode() if v.dtype == tf.string else v.numpy().item()
                       for k, v in loaded.signatures["metadata"](request=tf.constant(0.0)).items()},
          "cases": []}
for name, signature, key, kind in cases:
    if kind == "array":
        value = tf.constant(arrays[name])
    else:
        value = tf.constant([base64.b64decode(b) for b in kind], tf.string)
    entry = {"name": name}
    try:
        out = loaded.signatures[signature](**{key: value})
        entry["shapes"] = {k: v.shape.as_list() for k, v in out.items()}
    except tf.errors.InvalidArgumentError as err:
        entry["error"] = err.message.split("\n")[0]
    entry["next_score"] = loaded.signatures["serving_default"](image=good)["score"].numpy().tolist()
    report["cases"].append(entry)
print(json.dumps(report))
"""


def _png(image: np.ndarray) -> str:
    return base64.b64encode(cv2.imencode(".png", image)[1].tobytes()).decode()


def _run_cases(folder, tmp_path, good, cases):
    """Write the cases, run SERVE_SCRIPT on ``folder``, return its report (the process must exit 0)."""
    arrays = {"good": good}
    spec = []
    for name, signature, key, value in cases:
        if isinstance(value, list):  # a list of base64 strings for serving_bytes
            spec.append([name, signature, key, value])
        else:
            arrays[name] = np.asarray(value)
            spec.append([name, signature, key, "array"])
    cases_file = tmp_path / "cases.json"
    cases_file.write_text(json.dumps(spec))
    np.savez(str(cases_file) + ".npz", **arrays)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)  # the default oneDNN kernels, under which the abort happened
    done = subprocess.run([sys.executable, "-c", SERVE_SCRIPT, str(folder), str(cases_file)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_malformed_request_is_an_invalid_argument_and_the_process_survives(exported, images, tmp_path,
                                                                                  keras_outputs):
    gray = (images[0, ..., 0] * 255).astype(np.uint8)
    ok_png = _png(gray)
    cases = [  # (name, signature, input, value) and the start of the message expected (None = accepted)
        ("rank 3, no channel axis: a valid grayscale batch", "serving_default", "image",
         np.zeros((1, 128, 128), np.float32), None),
        ("rank 5", "serving_default", "image", np.zeros((1, SIZE, SIZE, 1, 1), np.float32), "wrong rank"),
        ("rank 2", "serving_default", "image", np.zeros((SIZE, SIZE), np.float32), "wrong rank"),
        ("scalar", "serving_default", "image", np.float32(0.5), "wrong rank"),
        ("3 channels", "serving_default", "image", np.zeros((1, SIZE, SIZE, 3), np.float32),
         "wrong channel count"),
        ("empty batch", "serving_default", "image", np.zeros((0, SIZE, SIZE, 1), np.float32),
         "empty dimension"),
        ("zero width", "serving_default", "image", np.zeros((1, SIZE, 0, 1), np.float32), "empty dimension"),
        ("NaN", "serving_default", "image", np.full((1, SIZE, SIZE, 1), np.nan, np.float32),
         "NaN or infinite"),
        ("infinity", "serving_default", "image", np.full((1, 8, 8), np.inf, np.float32), "NaN or infinite"),
        ("unscaled 0-255", "serving_default", "image", np.full((1, SIZE, SIZE, 1), 255.0, np.float32),
         "values outside [0, 1]"),
        ("negative", "serving_default", "image", np.full((1, SIZE, SIZE), -0.5, np.float32),
         "values outside [0, 1]"),
        ("tiny 3x5 image", "serving_default", "image", np.full((2, 3, 5, 1), 0.5, np.float32), None),
        ("bytes: not an image", "serving_bytes", "image_bytes", [ok_png, base64.b64encode(b"hello").decode()],
         "holds data that is not a PNG, JPEG or BMP"),
        ("bytes: empty string", "serving_bytes", "image_bytes", [""], "holds data that is not a PNG"),
        ("bytes: empty batch", "serving_bytes", "image_bytes", [], "image_bytes is empty"),
        ("bytes: truncated PNG", "serving_bytes", "image_bytes",
         [base64.b64encode(base64.b64decode(ok_png)[:60]).decode()], "Invalid PNG data"),
        ("bytes: a good PNG and a colour JPEG", "serving_bytes", "image_bytes",
         [ok_png, base64.b64encode(cv2.imencode(".jpg", np.full((40, 30, 3), 99, np.uint8))[1]).decode()],
         None),
    ]
    report = _run_cases(exported, tmp_path, images[:1], [c[:4] for c in cases])
    assert not report["kerasdec_imported"]
    assert report["signatures"] == ["metadata", "serving_bytes", "serving_default"]
    assert "shape=<unknown>" in report["inputs"]["serving_default"]  # any rank reaches the checks
    assert report["metadata"] == {"threshold": pytest.approx(0.3), "input_height": SIZE, "input_width": SIZE,
                                  "input_channels": 1, "dataset": "synthetic",
                                  "kerasdec_version": kerasdec.__version__}
    good_score = keras_outputs["score"][:1].tolist()
    by_name = {entry["name"]: entry for entry in report["cases"]}
    for name, signature, _, _, expected in cases:
        entry = by_name[name]
        np.testing.assert_allclose(entry["next_score"], good_score, atol=1e-5, err_msg=name)  # still serving
        if expected is None:
            assert "error" not in entry, (name, entry)
            continue
        assert expected in entry.get("error", "ACCEPTED"), (name, entry)
        if signature == "serving_default":
            assert "expected `image` float32 of shape (B, H, W, 1) or (B, H, W) with B >= 1" in entry["error"]
        elif "PNG data" not in expected:
            assert "expected `image_bytes` string of shape (B,), B >= 1" in entry["error"], entry
    assert by_name["rank 3, no channel axis: a valid grayscale batch"]["shapes"]["heatmap"] == [1, 128, 128]
    assert by_name["tiny 3x5 image"]["shapes"]["heatmap"] == [2, 3, 5]  # heatmap at the request's size
    assert by_name["bytes: a good PNG and a colour JPEG"]["shapes"]["image_size"] == [2, 2]


def test_outputs_at_the_trained_size_equal_keras(exported, images, keras_outputs):
    loaded = tf.saved_model.load(str(exported))
    out = {k: v.numpy() for k, v in loaded.signatures["serving_default"](image=tf.constant(images)).items()}
    n = len(images)
    assert {k: v.shape for k, v in out.items()} == {
        "score": (n,), "is_defective": (n,), "decision": (n,), "seg": (n, SIZE // 8, SIZE // 8),
        "heatmap": (n, SIZE, SIZE), "image_size": (n, 2)}
    for key in ("score", "decision", "seg"):
        np.testing.assert_allclose(out[key], keras_outputs[key], atol=1e-5, rtol=0, err_msg=key)
    assert (out["is_defective"] == (out["score"] >= np.float32(0.3))).all()
    assert np.ptp(out["score"]) > 0  # the images give different scores: the check compares something
    assert (out["image_size"] == [SIZE, SIZE]).all()


@pytest.mark.parametrize("channels", [1, 3])
def test_bytes_decode_pixel_for_pixel_as_training(channels):
    """Training reads files with cv2.imdecode (kerasdec.data.decode.read_image): same pixels in the graph."""
    from kerasdec.data.decode import read_image

    rng = np.random.default_rng(3)
    sources = {"colour": rng.integers(0, 256, (70, 90, 3), dtype=np.uint8),
               "gray": rng.integers(0, 256, (70, 90), dtype=np.uint8)}
    for (name, image), suffix in itertools.product(sources.items(), (".png", ".jpg", ".bmp")):
        data = cv2.imencode(suffix, image)[1].tobytes()
        ours = signatures.decode_file(tf.constant(data), channels).numpy()
        path = Path(tempfile.mkdtemp()) / f"x{suffix}"
        path.write_bytes(data)
        assert np.array_equal(ours, read_image(path, channels)), (name, suffix)


def test_in_graph_resize_is_training_resize_within_one_grey_level():
    rng = np.random.default_rng(3)
    gray = rng.integers(0, 256, (70, 90), dtype=np.uint8)
    for size in ((64, 64), (128, 96), (35, 120)):  # down, up, mixed
        ours = tf.image.resize(tf.constant(gray[..., None], tf.float32), size, method="bilinear")
        ours = np.clip(np.round(ours.numpy()[..., 0]), 0, 255)
        theirs = cv2.resize(gray, size[::-1], interpolation=cv2.INTER_LINEAR).astype(np.float64)
        assert np.abs(ours - theirs).max() <= 1, size  # cv2 is 8-bit fixed point: one grey level at most
        assert np.mean(ours != theirs) < 0.2, size
    same = tf.image.resize(tf.constant(gray[None, ..., None] / 255.0, tf.float32), (70, 90)).numpy()
    assert np.array_equal(same[0, ..., 0], (gray / 255.0).astype(np.float32))  # trained size: identity


def test_metadata_json(exported, info):
    meta = json.loads((exported / "metadata.json").read_text())
    assert (meta["height"], meta["width"], meta["channels"], meta["threshold"]) == (SIZE, SIZE, 1, 0.3)
    assert meta["dataset"] == "synthetic" and meta["source"] == "runs/demo/model_best.keras"
    assert meta["kerasdec_version"] == kerasdec.__version__ and meta["format"] == "tf_saved_model"
    assert set(meta["signatures"]) == {"serving_default", "serving_bytes", "metadata"}
    assert set(meta["outputs"]) == {"score", "is_defective", "heatmap", "decision", "seg", "image_size"}
    assert load(exported).info == ModelInfo.from_metadata(meta, "metadata.json")  # what the runner reads
    with pytest.raises(ValueError, match=r"metadata keys \['width'\] would replace keys written"):
        metadata(info, {"width": 3})


def test_each_weight_is_stored_once(exported, model):
    stored = tf.train.load_checkpoint(str(exported / "variables" / "variables")).get_variable_to_shape_map()
    values = sum(int(np.prod(shape)) for name, shape in stored.items() if "VARIABLE_VALUE" in name)
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert trainable <= values <= model.count_params()  # not twice (Keras issue #23553)


def test_the_exported_graph_uses_plain_convolutions(exported, model):
    """On a CPU the model trains its 15x15 block as row matmuls (kerasdec/models/rowconv.py); the
    exported graph must hold tf.nn.conv2d instead (GPU servers, TFLite's CONV_2D)."""
    from tensorflow.core.protobuf import saved_model_pb2

    from kerasdec.models.rowconv import use_row_gemm

    assert use_row_gemm((1, 8, 8, 64), 15)  # the tiny model's 15x15 block would take the matmul path
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((exported / "saved_model.pb").read_bytes())
    ops = [node.op for graph in saved.meta_graphs for fn in graph.graph_def.library.function
           for node in fn.node_def]
    assert ops.count("MatMul") <= 3  # one Dense head per image signature at most, not 15 per conv
    assert ops.count("Conv2D") >= 13
