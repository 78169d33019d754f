"""One real SegDecNet and ONE SavedModel export shared by the export tests (the network has ~15.6M
parameters, a ~60 MB SavedModel: each extra export costs seconds)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kerasdec.config import DataConfig
from kerasdec.export.saved_model import export_saved_model
from kerasdec.models.segdec import SegDecNet

SIZE = 64  # smallest input the three pooling stages of the decision net handle comfortably


@pytest.fixture(scope="session")
def data_cfg() -> DataConfig:
    return DataConfig(width=SIZE, height=SIZE, channels=1)


@pytest.fixture(scope="session")
def threshold() -> float:
    """The threshold the shared export records in metadata.json."""
    return 0.3


@pytest.fixture(scope="session")
def model() -> keras.Model:
    keras.utils.set_random_seed(5)
    net = SegDecNet(input_channels=1)
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
    decision, seg = np.asarray(out["decision"]), np.asarray(out["seg"])
    return {"decision": decision, "seg": seg, "score": 1 / (1 + np.exp(-decision)),
            "heatmap": 1 / (1 + np.exp(-seg))}


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory, model: keras.Model, data_cfg: DataConfig,
             threshold: float):
    """The shared export: base_dir/1 with a threshold and a source; returns the version folder."""
    base = tmp_path_factory.mktemp("saved_models") / "segdec"
    return export_saved_model(model, base, data_cfg=data_cfg, threshold=threshold,
                              metadata={"source": "runs/demo/model_best.keras"})
