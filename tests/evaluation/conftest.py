"""Shared fixtures of the evaluation tests: one tiny random SegDecNet and a run directory around it.

Built once per session (building and saving the 15.6M-parameter network takes seconds). The model is
randomly initialised: the tests check files, sizes and the agreement of numbers, not model quality.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeData, write_folder

INPUT = 64  # network input width and height (the smallest SegDecNet accepts)
IMAGE_SHAPE = (72, 88)  # (h, w) of the files on disk: not the input size, so resizing is exercised


@dataclass(frozen=True)
class TinyRun:
    """A run directory as kerasdec fit leaves it (config.json + model_*.keras), without training."""

    run_dir: Path
    data: FakeData  # test split: 3 ok, 3 defect (2 with masks, 1 image-label only)
    model: object  # the in-memory model saved as model_final.keras and model_best.keras


@pytest.fixture(scope="session")
def tiny_model():
    import keras

    from kerasdec.models.segdec import SegDecNet

    keras.utils.set_random_seed(0)
    model = SegDecNet(input_channels=1)
    model(np.zeros((1, INPUT, INPUT, 1), np.float32))  # build
    return model


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_model) -> TinyRun:
    """config.json names a data root that no longer exists: evaluate_run needs data_root (moved data)."""
    from kerasdec.config import DataConfig, RunConfig

    base = tmp_path_factory.mktemp("tiny_run")
    data = write_folder(base / "data", counts={"train": (2, 2, 1), "test": (3, 3, 2)}, shape=IMAGE_SHAPE)
    cfg = RunConfig(data=DataConfig(dataset="folder", root=str(base / "moved-away"), width=INPUT,
                                    height=INPUT, channels=1))
    run_dir = base / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict()), encoding="utf-8")
    tiny_model.save(run_dir / "model_final.keras")
    shutil.copy(run_dir / "model_final.keras", run_dir / "model_best.keras")
    return TinyRun(run_dir, data, tiny_model)
