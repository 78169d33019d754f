"""`import kerasdec` then `kerasdec.load_model(path)`: no other import, no TensorFlow before it is needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from kerasdec.models.saving import ModelFileError, read_model_config

SCRIPT = r"""
import json, sys
import kerasdec
light = "tensorflow" not in sys.modules and "keras" not in sys.modules
model = kerasdec.load_model(sys.argv[1])
import keras
again = keras.saving.get_registered_object("kerasdec>SegDecNet")  # keras.saving.load_model finds it now
print(json.dumps({"light": light, "class": type(model).__name__, "again": again.__name__,
                  "size": [model.input_height, model.input_width], "channels": model.input_channels}))
"""


def test_import_kerasdec_is_enough_to_load_a_model_and_stays_light(tiny_run):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny_run.run_dir / "model_final.keras")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"light": True, "class": "SegDecNet", "again": "SegDecNet", "size": [64, 64],
                      "channels": 1}


def test_read_model_config_names_the_file(tiny_run, tmp_path):
    config = read_model_config(tiny_run.run_dir / "model_final.keras")
    assert (config["input_channels"], config["input_height"], config["threshold"]) == (1, 64, None)
    with pytest.raises(FileNotFoundError, match=rf"model file {tmp_path / 'none.keras'} not found"):
        read_model_config(tmp_path / "none.keras")
    (tmp_path / "text.keras").write_text("not a zip")
    with pytest.raises(ModelFileError, match=rf"{tmp_path / 'text.keras'} is not a readable .keras file"):
        read_model_config(tmp_path / "text.keras")
