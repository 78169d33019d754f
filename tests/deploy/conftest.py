"""Fixtures of the deploy tests, each built once per session.

- a random published SegDecNet (64 px, threshold 0.3) and ONE SavedModel of it: shapes and contracts;
- the TRAINED default run (tests/conftest.py ``default_run``) exported once with int8: everything
  where decisions matter (int8 flips, the same decisions across runtimes and request sizes).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pytest

from kerasdec.deploy.saved_model import write_saved_model
from kerasdec.inference.contract import ModelInfo
from kerasdec.models.segdec import SegDecNet

SIZE = 64  # the smallest input SegDecNet takes
THRESHOLD = 0.3


@pytest.fixture(scope="session")
def info() -> ModelInfo:
    return ModelInfo(SIZE, SIZE, 1, THRESHOLD, dataset="synthetic")


@pytest.fixture(scope="session")
def model() -> keras.Model:
    """The published network (at 64 px): what users export, so the SavedModel and TFLite tests see its
    15×15×1024 convolution (plain convolutions in the exported graph, its float16 and int8 conversion)."""
    keras.utils.set_random_seed(5)
    net = SegDecNet(input_channels=1, input_height=SIZE, input_width=SIZE, threshold=THRESHOLD)
    net(np.zeros((1, SIZE, SIZE, 1), np.float32))  # build
    return net


@pytest.fixture(scope="session")
def images() -> np.ndarray:
    """Smooth random images in [0, 1] (more image-like than white noise): (6, 64, 64, 1)."""
    rng = np.random.default_rng(11)
    coarse = rng.random((6, SIZE // 8, SIZE // 8, 1), dtype=np.float32)
    smooth = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)
    return np.clip(0.8 * smooth + 0.2 * rng.random(smooth.shape, dtype=np.float32), 0, 1)


@pytest.fixture(scope="session")
def keras_outputs(model: keras.Model, images: np.ndarray) -> dict[str, np.ndarray]:
    out = model(images, training=False)
    decision, seg = np.asarray(out["decision"])[:, 0], np.asarray(out["seg"])[..., 0]
    return {"decision": decision, "seg": seg, "score": 1 / (1 + np.exp(-decision))}


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory, model: keras.Model, info: ModelInfo) -> Path:
    """The tiny model as one SavedModel folder (written directly, without the publishing steps)."""
    folder = tmp_path_factory.mktemp("saved_models") / "segdec-1"
    return write_saved_model(model, folder, info, {"source": "runs/demo/model_best.keras"})


@dataclass(frozen=True)
class TFLiteOps:
    """What a .tflite file computes: op counts and the filter shapes (O, kh, kw, I) of its CONV_2D ops."""

    counts: Counter
    conv_filters: list[tuple[int, ...]]


def read_tflite_ops(path: Path) -> TFLiteOps:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    shapes = {t["index"]: tuple(int(d) for d in t["shape"]) for t in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()  # LiteRT's only op list (name, input and output tensor indices)
    return TFLiteOps(Counter(op["op_name"] for op in ops),
                     sorted(shapes[op["inputs"][1]] for op in ops if op["op_name"] == "CONV_2D"))


def plain_conv_filters(model: keras.Model) -> list[tuple[int, ...]]:
    """The CONV_2D filter shapes a .tflite of ``model`` holds when each Conv2D is one CONV_2D: Keras
    kernels (kh, kw, I, O) as TFLite's (O, kh, kw, I)."""
    kernels = [tuple(w.shape) for w in model.weights if len(w.shape) == 4]
    return sorted((o, kh, kw, i) for kh, kw, i, o in kernels)


@pytest.fixture(scope="session")
def tflite_ops():
    """``read_tflite_ops(path)`` and ``plain_conv_filters(model)`` (a fixture: test modules cannot import
    each other's helpers here)."""
    return read_tflite_ops, plain_conv_filters


@dataclass(frozen=True)
class TrainedExport:
    """The default run exported by ``export_source`` with ``--tflite int8``."""

    run_dir: Path
    cache: Path  # KERASDEC_CACHE holding the synthetic data
    written: dict[str, Path]  # {"saved_model": version folder, "int8": .tflite}


@pytest.fixture(scope="session")
def trained_export(default_run, tmp_path_factory: pytest.TempPathFactory) -> TrainedExport:
    from kerasdec.deploy.export import export_source

    assert default_run.exit_code == 0, default_run.output
    base = tmp_path_factory.mktemp("trained") / "segdec"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KERASDEC_CACHE", str(default_run.cache))
        written = export_source(default_run.run_dir, base, tflite_modes=["int8"])
    return TrainedExport(default_run.run_dir, default_run.cache, written)
