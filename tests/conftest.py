"""Shared fixtures: tiny datasets written in each real on-disk layout (see tests/fakes.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Make ``from fakes import ...`` work however pytest was started (tests/ has no __init__.py).
sys.path.insert(0, str(Path(__file__).parent))

from fakes import (  # noqa: E402
    FakeData,
    write_dagm,
    write_folder,
    write_ksdd,
    write_ksdd2,
    write_severstal,
    write_synthetic,
)


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
