"""The deployment contract on a TRAINED model: the default `kerasdec fit` run, exported with int8.

- TF Serving's REST row format, emulated as TF Serving builds tensors from JSON (incl. {"b64": ...}),
  sent to the SavedModel in a process WITHOUT kerasdec: equal to Keras to 1e-5 at the trained size,
  and the same decisions for images of other sizes as Keras gives them after training's resize;
- int8 keeps the held-out decisions (<= 1% flipped) and the threshold is never an evaluated score;
- `kerasdec predict` gives the same decisions from the run, its .keras, the SavedModel and the .tflite.
"""

from __future__ import annotations

import base64
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

import kerasdec
from kerasdec.cli import main
from kerasdec.inference.runners import KerasRunner, keras_info
from kerasdec.rundir import read_run_config

# The ~4 min default run (shared with test_default_run.py): a trained published network, the one users
# deploy, where int8 flips and the decisions across runtimes mean something.
pytestmark = pytest.mark.slow
SIZE = 128
N_IMAGES = 12  # test images sent through REST and predict (all 120 go through the export self-check)

# TF Serving's REST layer, as json_tensor.cc does it, in a process that has only TensorFlow: a row-format
# body {"signature_name": s, "instances": [{input: value}, ...]} becomes one tensor per input by stacking
# the rows (a {"b64": ...} value is base64-decoded into a string); the response is
# {"predictions": [{output: row}, ...]}, every output split along its first (batch) dimension. A columnar
# body {"inputs": {input: value}} gets {"outputs": {output: value}} (the metadata's scalars need it).
REST_SCRIPT = r"""
import base64, json, sys
import numpy as np, tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])

def tensor(value, spec):
    if spec.dtype == tf.string:
        return tf.constant(value, tf.string)
    return tf.constant(np.array(value, dtype=spec.dtype.as_numpy_dtype))

def b64(value):
    return base64.b64decode(value["b64"]) if isinstance(value, dict) and set(value) == {"b64"} else value

responses = []
for body in json.load(open(sys.argv[2])):
    fn = loaded.signatures[body.get("signature_name", "serving_default")]
    specs = fn.structured_input_signature[1]
    if "inputs" in body:  # columnar: one value per input, outputs returned whole
        out = fn(**{name: tensor(b64(v), specs[name]) for name, v in body["inputs"].items()})
        responses.append({"outputs": {k: v.numpy().tolist() if v.dtype != tf.string else v.numpy().decode()
                                      for k, v in out.items()}})
        continue
    columns = {}
    for row in body["instances"]:
        for name, value in row.items():
            columns.setdefault(name, []).append(b64(value))
    outputs = {k: v.numpy() for k, v in fn(**{n: tensor(v, specs[n]) for n, v in columns.items()}).items()}
    assert len({len(v) for v in outputs.values()}) == 1, "row format needs one batch size"
    responses.append({"predictions": [{k: v[i].tolist() for k, v in outputs.items()}
                                      for i in range(len(body["instances"]))]})
print(json.dumps({"kerasdec_imported": "kerasdec" in sys.modules, "responses": responses}))
"""


@pytest.fixture(scope="module")
def trained(trained_export):
    """The trained model in this process, its test images (uint8, 128 px) and Keras' answers on them."""
    run = trained_export.run_dir
    model = kerasdec.load_model(run / "model_final.keras")
    runner = KerasRunner(model, keras_info(model, run / "model_final.keras"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KERASDEC_CACHE", str(trained_export.cache))
        from kerasdec.data.sources import load_split

        cfg = read_run_config(run)
        samples = load_split(cfg.data, "test", cfg.seed)
    picks = np.linspace(0, len(samples) - 1, N_IMAGES).round().astype(int)
    samples = [samples[i] for i in picks]
    pixels = np.stack([cv2.imread(str(s.image_path), cv2.IMREAD_GRAYSCALE) for s in samples])  # (N, 128, 128)
    return {"runner": runner, "samples": samples, "pixels": pixels, "keras": _keras(runner, pixels)}


def _keras(runner, pixels: np.ndarray) -> dict[str, np.ndarray]:
    """Keras on uint8 images resized as training resizes them (cv2 INTER_LINEAR), /255."""
    x = np.stack([cv2.resize(p, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR) for p in pixels])
    out = runner.model.predict_on_batch(x[..., None].astype(np.float32) / 255.0)
    decision, seg = np.asarray(out["decision"])[:, 0], np.asarray(out["seg"])[..., 0]
    score = 1 / (1 + np.exp(-decision.astype(np.float64)))
    return {"score": score, "decision": decision, "seg": seg, "is_defective": score >= runner.info.threshold}


def _b64_png(image: np.ndarray) -> dict[str, str]:
    return {"b64": base64.b64encode(cv2.imencode(".png", image)[1].tobytes()).decode()}


def _rest(version_dir: Path, bodies: list[dict], tmp_path: Path) -> list[dict[str, np.ndarray]]:
    """Send the bodies through REST_SCRIPT; each response as {output: stacked array}."""
    requests = tmp_path / "requests.json"
    requests.write_text(json.dumps(bodies))  # JSON on the wire: floats, lists, base64 strings
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", REST_SCRIPT, str(version_dir), str(requests)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert not report["kerasdec_imported"]
    def stacked(rows: list[dict]) -> dict[str, np.ndarray]:
        return {key: np.array([row[key] for row in rows]) for key in rows[0]}

    return [response if "outputs" in response else stacked(response["predictions"])
            for response in report["responses"]]


def test_rest_row_format_equals_keras_and_keeps_decisions_at_other_sizes(trained_export, trained, tmp_path):
    pixels, keras_out = trained["pixels"], trained["keras"]
    big = np.stack([cv2.resize(p, (256, 256), interpolation=cv2.INTER_LINEAR) for p in pixels])
    odd = np.stack([cv2.resize(p, (200, 96), interpolation=cv2.INTER_LINEAR) for p in pixels])  # (96, 200)
    bodies = [
        {"instances": [{"image": (p[..., None] / 255.0).tolist()} for p in pixels]},  # trained size, floats
        {"signature_name": "serving_bytes", "instances": [{"image_bytes": _b64_png(p)} for p in pixels]},
        {"instances": [{"image": (p / 255.0).tolist()} for p in big]},  # (B, H, W): no channel axis
        {"signature_name": "serving_bytes", "instances": [{"image_bytes": _b64_png(p)} for p in odd]},
        {"signature_name": "metadata", "inputs": {"request": 0}},
    ]
    version = trained_export.written["saved_model"]
    floats, files, floats_big, files_odd, meta = _rest(version, bodies, tmp_path)
    threshold = trained["runner"].info.threshold
    assert meta["outputs"] == {"threshold": pytest.approx(threshold, abs=1e-7), "input_height": SIZE,
                               "input_width": SIZE, "input_channels": 1, "dataset": "synthetic",
                               "kerasdec_version": kerasdec.__version__}
    for response in (floats, files):  # the trained size: equal to Keras (scores to 1e-5; the logits,
        np.testing.assert_allclose(response["score"], keras_out["score"], atol=1e-5, rtol=0)  # up to ±8,
        for key in ("decision", "seg"):  # to 1e-5 relative: oneDNN sums in another order per batch)
            np.testing.assert_allclose(response[key], keras_out[key], atol=1e-5, rtol=1e-5, err_msg=key)
        assert (response["is_defective"] == keras_out["is_defective"]).all()
        assert response["heatmap"].shape == (N_IMAGES, SIZE, SIZE)
    assert floats_big["heatmap"].shape == (N_IMAGES, 256, 256)  # at the request's own size
    assert (files_odd["image_size"] == [96, 200]).all()
    assert files_odd["heatmap"].shape == (N_IMAGES, SIZE, SIZE)
    for response, images in ((floats_big, big), (files_odd, odd)):  # other sizes: the decisions training's
        expected = _keras(trained["runner"], images)  # resize gives (cv2 -> 128, as kerasdec predict)
        assert (response["is_defective"] == expected["is_defective"]).all()
        # within a grey level of training's resize, so the scores move little: measured up to 0.03 near
        # score 0.5, where the sigmoid is steepest (the margin of the threshold to the nearest test score
        # can be smaller than that: it was 1.5e-4 in one trained run, where scores moved by 2e-3)
        assert np.abs(response["score"] - expected["score"]).max() < 0.05
    assert 0 < keras_out["is_defective"].sum() < N_IMAGES  # both decisions occur: the test compares something


def test_int8_keeps_the_held_out_decisions_and_the_threshold_is_no_score(trained_export):
    run, version = trained_export.run_dir, trained_export.written["saved_model"]
    metrics = json.loads((run / "metrics.json").read_text())
    with (run / "results.csv").open(newline="") as f:
        results = list(csv.DictReader(f))
    scores = np.array([float(r["score"]) for r in results])
    labels = np.array([r["label"] == "1" for r in results])
    threshold = metrics["threshold"]
    assert threshold not in scores and 0 < metrics["threshold_margin"] == pytest.approx(
        np.abs(scores - threshold).min())
    decided = scores >= threshold
    assert (int(np.sum(decided & ~labels)), int(np.sum(~decided & labels))) == (metrics["fp"], metrics["fn"])
    meta = json.loads((version / "metadata.json").read_text())
    # travelled in the .keras; the export names the evaluation it came from (the run's own test evaluation)
    assert (meta["threshold"], meta["threshold_from"]) == (threshold, str((run / "metrics.json").resolve()))
    saved = meta["self_check"]["saved_model"]
    assert saved["passed"] and saved["flipped"] == 0 and saved["max_score_error"] <= 1e-4
    int8 = json.loads(trained_export.written["int8"].with_name("segdec_int8.metadata.json").read_text())
    report = int8["self_check"]
    assert report["held_out"] == "synthetic test split (120 images)" and report["images"] == 120
    assert report["reference_ap"] == pytest.approx(metrics["ap"], abs=1e-6)  # the same images as fit's test
    assert report["passed"] and report["flipped"] <= 1  # <= 1% of 120
    assert report["ap"] >= report["reference_ap"] - 0.02
    assert int8["threshold"] == threshold and int8["input_shape"] == [1, SIZE, SIZE, 1]


def test_int8_holds_each_convolution_as_one_conv2d(trained_export, trained, tflite_ops):
    """The exported int8 file (128 px: the 15x15 block on a 16x16 map, where training uses row matmuls)
    has one CONV_2D per Conv2D layer, the 15x15x1024 one included, and no row-GEMM ops."""
    read_ops, plain_filters = tflite_ops
    ops = read_ops(trained_export.written["int8"])
    assert (1024, 15, 15, 64) in ops.conv_filters
    assert ops.conv_filters == plain_filters(trained["runner"].model)  # one CONV_2D per Conv2D layer
    assert ops.counts["PAD"] == 0 and ops.counts["FULLY_CONNECTED"] <= 1 and ops.counts["STRIDED_SLICE"] <= 2


def test_predict_gives_the_same_decisions_from_every_artifact(trained_export, trained, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for sample in trained["samples"]:
        (folder / Path(sample.image_path).name).write_bytes(Path(sample.image_path).read_bytes())
    version = trained_export.written["saved_model"]
    sources = {"run": trained_export.run_dir, "keras": trained_export.run_dir / "model_final.keras",
               "saved_model": version.parent, "tflite": trained_export.written["int8"]}
    decisions = {}
    for name, source in sources.items():
        args = ["predict", str(source), str(folder), "--out", str(tmp_path / name)]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        with (tmp_path / name / "scores.csv").open(newline="") as f:
            decisions[name] = {Path(r["path"]).name: r["decision"] for r in csv.DictReader(f)}
    assert len(decisions["run"]) == N_IMAGES and set(decisions["run"].values()) == {"0", "1"}
    assert decisions["run"] == decisions["keras"] == decisions["saved_model"]
    flipped = sum(decisions["tflite"][k] != v for k, v in decisions["run"].items())
    int8 = json.loads(trained_export.written["int8"].with_name("segdec_int8.metadata.json").read_text())
    assert flipped <= int8["self_check"]["flipped"]  # these images are among the 120 the export checked
    expected = {Path(s.image_path).name: str(int(d)) for s, d in
                zip(trained["samples"], trained["keras"]["is_defective"])}
    assert decisions["run"] == expected
