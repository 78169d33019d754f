from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import kerasdec
from kerasdec.config import DataConfig
from kerasdec.export import saved_model as sm
from kerasdec.export.saved_model import export_saved_model, next_version, read_metadata

SIZE = 64  # conftest's input size

# Runs in a fresh interpreter: only TensorFlow, no kerasdec, no Keras model classes.
LOAD_SCRIPT = r"""
import json, sys
import numpy as np, tensorflow as tf
version_dir, data = sys.argv[1], sys.argv[2]
x = np.load(data)["x"]
loaded = tf.saved_model.load(version_dir)
fn = loaded.signatures["serving_default"]
out = {k: v.numpy() for k, v in fn(image=tf.constant(x)).items()}
wide = fn(image=tf.zeros((1, 64, 128, 1)))  # another multiple of 8 is accepted
errors = []
for bad in [(1, 68, 64, 1), (1, 64, 100, 1), (1, 32, 64, 1)]:
    try:
        fn(image=tf.zeros(bad))
        errors.append(None)
    except tf.errors.InvalidArgumentError as err:
        errors.append(err.message)
spec = fn.structured_input_signature[1]["image"]
np.savez(data + ".out.npz", **out)
print(json.dumps({"signatures": sorted(loaded.signatures), "outputs": sorted(fn.structured_outputs),
                  "input": [spec.name, spec.shape.as_list(), spec.dtype.name],
                  "wide_seg": wide["seg"].shape.as_list(), "errors": errors}))
"""


def test_fresh_process_serving_default_equals_keras(exported, images, keras_outputs, tmp_path):
    data = tmp_path / "x.npz"
    np.savez(data, x=images)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(exported), str(data)],
                          capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["signatures"] == ["serve", "serving_default"]
    assert report["outputs"] == ["decision", "heatmap", "score", "seg"]
    assert report["input"] == ["image", [None, None, None, 1], "float32"]
    assert report["wide_seg"] == [1, 8, 16, 1]
    not8, not8_w, small = report["errors"]
    assert "image height and width must be multiples of 8; resize images" in not8
    assert "image height and width must be multiples of 8; resize images" in not8_w
    assert "image height and width must be at least 64; resize images" in small
    out = dict(np.load(str(data) + ".out.npz"))
    n = len(images)
    shapes = {"score": (n, 1), "decision": (n, 1), "seg": (n, SIZE // 8, SIZE // 8, 1),
              "heatmap": (n, SIZE // 8, SIZE // 8, 1)}
    for key, shape in shapes.items():
        assert out[key].shape == shape, key
        np.testing.assert_allclose(out[key], keras_outputs[key], atol=1e-5, rtol=0, err_msg=key)
    assert np.ptp(out["score"]) > 0  # the images give different scores: the check compares something


def test_metadata_json_has_the_documented_keys(exported, threshold):
    meta = json.loads((exported / "metadata.json").read_text())
    assert set(meta) == {"format", "version", "width", "height", "channels", "threshold", "dataset",
                         "kerasdec_version", "tensorflow_version", "keras_version", "source", "created",
                         "signature", "input", "outputs"}
    assert (meta["version"], meta["width"], meta["height"], meta["channels"]) == (1, SIZE, SIZE, 1)
    assert meta["threshold"] == threshold and meta["signature"] == "serving_default"
    assert meta["source"] == "runs/demo/model_best.keras"
    assert meta["kerasdec_version"] == kerasdec.__version__
    assert datetime.datetime.fromisoformat(meta["created"]).tzinfo is not None
    assert set(meta["outputs"]) == {"score", "decision", "seg", "heatmap"}
    assert meta["input"]["name"] == "image"
    assert read_metadata(exported) == meta
    assert (exported / "saved_model.pb").is_file() and (exported / "variables").is_dir()
    assert exported.stat().st_mode & 0o777 == 0o755  # not mkdtemp's owner-only 0o700


def test_each_weight_is_stored_once(exported, model):
    stored = tf.train.load_checkpoint(str(exported / "variables" / "variables")).get_variable_to_shape_map()
    values = sum(int(np.prod(shape)) for name, shape in stored.items() if "VARIABLE_VALUE" in name)
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert trainable <= values <= model.count_params()  # not twice (Keras issue #23553)


def test_versions_increment_and_an_existing_version_is_never_overwritten(exported, model, data_cfg):
    base = exported.parent
    pb = exported / "saved_model.pb"
    before = (pb.stat().st_mtime_ns, pb.read_bytes())
    with pytest.raises(FileExistsError, match=rf"version folder {base / '1'} already exists"):
        export_saved_model(model, base, data_cfg=data_cfg, version=1)
    assert (pb.stat().st_mtime_ns, pb.read_bytes()) == before
    second = export_saved_model(model, base, data_cfg=data_cfg)
    assert second == base / "2" and read_metadata(second)["version"] == 2
    assert read_metadata(second)["source"] is None
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]  # no temporary folder left


def test_next_version_counts_only_integer_folders(tmp_path):
    assert next_version(tmp_path / "missing") == 1
    for name in ("1", "7", "tmp", ".tmp-9-abc", "12x"):
        (tmp_path / name).mkdir()
    (tmp_path / "20").write_text("a file, not a version")
    assert next_version(tmp_path) == 8


def test_failed_export_leaves_no_version_folder(tmp_path, model, data_cfg, monkeypatch):
    class Broken:
        def write_out(self, path, verbose=False):
            (Path(path) / "saved_model.pb").write_bytes(b"half")
            raise OSError("disk full")

    monkeypatch.setattr(sm, "_archive", lambda model, channels: Broken())
    with pytest.raises(OSError, match="disk full"):
        export_saved_model(model, tmp_path, data_cfg=data_cfg)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs, message", [
    ({"threshold": 1.5}, r"threshold=1.5; expected a score threshold in \[0, 1\]"),
    ({"version": 0}, r"version=0; expected an integer >= 1 or None"),
    ({"version": "3"}, r"version='3'; expected an integer >= 1 or None"),
    ({"metadata": {"width": 3}}, r"metadata keys \['width'\] would replace keys written by the exporter"),
    ({"data_cfg": DataConfig(width=SIZE, height=SIZE, channels=3)},
     r"model input_channels=1 but data_cfg.channels=3"),
])
def test_bad_arguments_are_rejected_before_writing(tmp_path, model, data_cfg, kwargs, message):
    kwargs = {"data_cfg": data_cfg, **kwargs}
    with pytest.raises(ValueError, match=message):
        export_saved_model(model, tmp_path / "segdec", **kwargs)
    assert not any((tmp_path / "segdec").glob("*"))


def test_read_metadata_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path / 'metadata.json'} not found"):
        read_metadata(tmp_path)
