"""Crash-safe writers and readers (kerasdec/files.py)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from kerasdec import files


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(files.TMP_PREFIX))


def test_write_text_replaces_atomically_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    files.write_text(target, "old")
    files.write_text(target, "new")
    assert target.read_text() == "new"
    assert _leftovers(tmp_path) == []


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old state")
    with pytest.raises(OSError, match="No space"):
        with files.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert target.read_text() == "old state"
    assert _leftovers(tmp_path) == []


def test_no_overwrite_refuses_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "model.tflite"
    files.write_bytes(target, b"first", overwrite=False)
    with pytest.raises(FileExistsError, match="never overwritten"):
        files.write_bytes(target, b"second", overwrite=False)
    assert target.read_bytes() == b"first"
    assert _leftovers(tmp_path) == []


def test_folder_is_renamed_whole_and_never_replaced(tmp_path: Path) -> None:
    target = tmp_path / "epoch-1"
    with files.atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "weights.h5").write_bytes(b"w")
    assert (target / "weights.h5").read_bytes() == b"w"
    with pytest.raises(FileExistsError):
        with files.atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "weights.h5").write_bytes(b"other")
    assert (target / "weights.h5").read_bytes() == b"w"
    assert _leftovers(tmp_path) == []


def test_temporary_keeps_the_suffix(tmp_path: Path) -> None:
    with files.atomic_path(tmp_path / "model_final.keras") as tmp:
        assert tmp.suffix == ".keras" and tmp.parent == tmp_path and tmp.name.startswith(".tmp-")
        tmp.write_bytes(b"zip")


def test_read_json_names_a_corrupt_file(tmp_path: Path) -> None:
    bad = tmp_path / "config.json"
    bad.write_text('{"data": ')
    with pytest.raises(ValueError, match=r"config\.json is not valid JSON"):
        files.read_json(bad)
