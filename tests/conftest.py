"""Shared fixtures: tiny datasets written in each real on-disk layout (see tests/fakes.py), one tiny
random SegDecNet in a run directory, `kerasdec fit` on the tiny network, and the trained no-flag
`kerasdec fit` run (the published network)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

# Make ``from fakes import ...`` work however pytest was started (tests/ has no __init__.py).
sys.path.insert(0, str(Path(__file__).parent))

from fakes import (  # noqa: E402
    TINY_MODEL,
    FakeData,
    tiny_segdec,
    with_tiny_model,
    write_dagm,
    write_folder,
    write_ksdd,
    write_ksdd2,
    write_severstal,
    write_synthetic,
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Start the long pole first: the first file that needs the trained default run (~4 min of training)
    runs first, any other file that needs it runs last. With the two pytest-xdist workers of setup.cfg
    (--dist loadfile: a file's tests stay in one worker) the run trains while the other worker goes
    through the rest, and is done by the time a later file reads it (``default_run``)."""
    needs = [item for item in items if "default_run" in item.fixturenames]
    first = {item.nodeid for item in needs if item.path == needs[0].path} if needs else set()
    last = {item.nodeid for item in needs} - first
    rank = {nodeid: 0 for nodeid in first} | {nodeid: 2 for nodeid in last}
    items.sort(key=lambda item: rank.get(item.nodeid, 1))  # stable: the order within each part is kept


@pytest.fixture
def tiny_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    """`kerasdec fit` run in this process trains TINY_MODEL (fakes.with_tiny_model): every flag is read
    as the CLI reads it."""
    import kerasdec.cli

    monkeypatch.setattr(kerasdec.cli, "build_fit_config", with_tiny_model(kerasdec.cli.build_fit_config))


@pytest.fixture
def ksdd_data(tmp_path: Path) -> FakeData:
    """KolektorSDD: 6 kos folders × 3 parts (64×32), 4 defective images."""
    return write_ksdd(tmp_path / "KSDD")


@pytest.fixture
def ksdd_root(ksdd_data: FakeData) -> Path:
    return ksdd_data.root


@pytest.fixture
def ksdd2_data(tmp_path: Path) -> FakeData:
    """KolektorSDD2: train 3 positive + 5 negative, test 2 + 3, colour 64×32."""
    return write_ksdd2(tmp_path / "KSDD2")


@pytest.fixture
def ksdd2_root(ksdd2_data: FakeData) -> Path:
    return ksdd2_data.root


@pytest.fixture
def dagm_data(tmp_path: Path) -> FakeData:
    """DAGM Class1: Train 3 positive + 5 negative, Test 2 + 3, 64×64, with Labels.txt."""
    return write_dagm(tmp_path / "DAGM", category=1)


@pytest.fixture
def dagm_root(dagm_data: FakeData) -> Path:
    return dagm_data.root


@pytest.fixture
def severstal_data(tmp_path: Path) -> FakeData:
    """Severstal: 6 positive (some with two class rows) + 6 negative images of 32×64."""
    return write_severstal(tmp_path / "severstal")


@pytest.fixture
def severstal_root(severstal_data: FakeData) -> Path:
    return severstal_data.root


@pytest.fixture
def folder_data(tmp_path: Path) -> FakeData:
    """Own-data layout: train 5 ok + 4 defect (3 with masks), test 3 ok + 2 defect (2 with masks)."""
    return write_folder(tmp_path / "folder")


@pytest.fixture
def folder_root(folder_data: FakeData) -> Path:
    return folder_data.root


@pytest.fixture
def synthetic_root(tmp_path: Path) -> Path:
    """Synthetic dataset, seed 0, 64×64: train 4 defect + 6 ok, test 3 defect + 3 ok."""
    return write_synthetic(tmp_path / "synthetic")



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
    """A random SegDecNet of the size TINY_MODEL: what evaluate and predict do with a model does not
    depend on its size (the deploy tests export the published network: tests/deploy/conftest.py)."""
    import keras

    keras.utils.set_random_seed(0)
    model = tiny_segdec(input_channels=1, input_height=INPUT, input_width=INPUT)  # as kerasdec fit records it
    model(np.zeros((1, INPUT, INPUT, 1), np.float32))  # build
    return model


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_model) -> TinyRun:
    """config.json names a data root that no longer exists: evaluate_run needs data_root (moved data)."""
    from kerasdec.config import DataConfig, RunConfig

    base = tmp_path_factory.mktemp("tiny_run")
    data = write_folder(base / "data", counts={"train": (2, 2, 1), "test": (3, 3, 2)}, shape=IMAGE_SHAPE)
    cfg = RunConfig(data=DataConfig(dataset="folder", root=str(base / "moved-away"), width=INPUT,
                                    height=INPUT, channels=1), model=TINY_MODEL)
    run_dir = base / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict()), encoding="utf-8")
    tiny_model.save(run_dir / "model_final.keras")
    shutil.copy(run_dir / "model_final.keras", run_dir / "model_best.keras")
    return TinyRun(run_dir, data, tiny_model)


@dataclass(frozen=True)
class DefaultRun:
    """The no-flag `kerasdec fit` run, shared by every test that needs a TRAINED model."""

    exit_code: int
    output: str  # what the command printed (its last line is the run directory)
    run_dir: Path | None  # None when fit failed (the tests that need it then fail on exit_code)
    cache: Path  # the KERASDEC_CACHE the synthetic data was generated into: set it to read the data again


@pytest.fixture(scope="session")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> DefaultRun:
    """`kerasdec fit` with no flags (synthetic, 128 px, 10 epochs), run ONCE per session (~4 min).

    The published network, necessarily: no flag is the point (what a new user runs first, and the
    README promises its AP). tests/training/test_default_run.py asserts what it produces; the deploy
    tests use it wherever decisions matter (int8 flips, the same decisions across runtimes and sizes).
    """
    from click.testing import CliRunner

    from kerasdec.cli import main

    # Each pytest-xdist worker has its own session: the first that needs the run trains it (holding a
    # lock in the folder the workers share); another one waits for it and reads what it recorded.
    shared = tmp_path_factory.getbasetemp()
    shared = shared.parent if os.environ.get("PYTEST_XDIST_WORKER") else shared
    base, record = shared / "default_run", shared / "default_run" / "record.json"
    with open(shared / "default_run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not record.is_file():
            base.mkdir(exist_ok=True)  # a run killed before its record: start again
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("KERASDEC_CACHE", str(base / "cache"))
                patch.chdir(base)
                result = CliRunner().invoke(main, ["fit"])
            record.write_text(json.dumps({"exit_code": result.exit_code, "output": result.output}))
        recorded = json.loads(record.read_text())
    lines = recorded["output"].strip().splitlines()
    run_dir = (base / lines[-1]).resolve() if recorded["exit_code"] == 0 and lines else None
    return DefaultRun(recorded["exit_code"], recorded["output"], run_dir, base / "cache")
