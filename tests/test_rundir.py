"""The run directory's layout (kerasdec/rundir.py): model file names and config.json."""

from __future__ import annotations

from pathlib import Path

import pytest

from kerasdec import rundir


def test_read_run_config_names_a_corrupt_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"data": ')
    with pytest.raises(ValueError, match=r"config\.json"):
        rundir.read_run_config(tmp_path)


def test_model_path_names() -> None:
    assert rundir.model_path("r", "final") == Path("r") / "model_final.keras"
    assert rundir.model_path("r", "best") == Path("r") / "model_best.keras"
    with pytest.raises(ValueError, match="which='last'"):
        rundir.model_path("r", "last")
