"""Resumable training state: weights, optimizer variables, sampler state, best score and history.

Keras's BackupAndRestore restores weights and optimizer but not Python state (the sampler's counts and
RNG, the best validation AP), so the whole state is saved here after every epoch, atomically AS A SET:
each checkpoint is written into a new hidden folder, which is renamed to ``checkpoint/epoch-NNNN``
only once all three files are on disk; the older checkpoints are deleted after that. A kill at any
moment therefore leaves at least one complete checkpoint (after the first epoch), and the newest
``epoch-NNNN`` folder is always complete.
"""

from __future__ import annotations

import json
import logging
import re
import zipfile
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kerasdec.files import TMP_PREFIX, atomic_path, read_json, remove
from kerasdec.models.saving import model_bytes

log = logging.getLogger(__name__)

WEIGHTS = "weights.weights.h5"
OPTIMIZER = "optimizer.npz"
STATE = "state.json"
EPOCH_PREFIX = "epoch-"  # checkpoint/epoch-0003 holds the state after 3 epochs (state["epoch"] == 2)
_EPOCH_FOLDER = re.compile(rf"{EPOCH_PREFIX}(\d+)")


def epoch_folder(folder: Path, epoch: int) -> Path:
    """folder/epoch-NNNN for the checkpoint taken after ``epoch`` (0-based) ended."""
    return Path(folder) / f"{EPOCH_PREFIX}{epoch + 1:04d}"


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint folder under ``folder``, or None when there is none."""
    folder = Path(folder)
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir()
             and (m := _EPOCH_FOLDER.fullmatch(p.name))] if folder.is_dir() else []
    return max(found)[1] if found else None


def save_state(model: keras.Model, folder: Path, state: dict[str, Any]) -> Path:
    """Write weights, optimizer variables and ``state`` as a new checkpoint folder; returns it.

    The folder is renamed into place only when complete; older checkpoints are deleted afterwards.

    Args:
        model: a built, compiled model.
        folder: the run's checkpoint/ folder.
        state: JSON-serialisable; must hold "epoch" (0-based, the epoch that just ended).

    Raises:
        OSError: a write failed (the message names the path; a full disk, the space): the previous
            checkpoint is untouched.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = epoch_folder(folder, int(state["epoch"]))
    with atomic_path(target, size_hint=model_bytes(model)) as tmp:
        tmp.mkdir()
        model.save_weights(tmp / WEIGHTS)
        write_optimizer(model, tmp / OPTIMIZER)
        (tmp / STATE).write_text(json.dumps(state, indent=1), encoding="utf-8")
    for old in folder.iterdir():
        if old != target and (_EPOCH_FOLDER.fullmatch(old.name) or old.name.startswith(TMP_PREFIX)):
            _delete(old)
    return target


def write_optimizer(model: keras.Model, path: Path) -> None:
    """The optimizer's variables, in order, as arr_0, arr_1, ... of an .npz file."""
    with open(path, "wb") as f:
        np.savez(f, *[np.asarray(v.numpy()) for v in model.optimizer.variables])


def _delete(path: Path) -> None:
    """Rename to a hidden name first, so a half-deleted folder never looks like a checkpoint."""
    hidden = path.with_name(f"{TMP_PREFIX}old-{path.name}")
    if not path.name.startswith(TMP_PREFIX):
        path.rename(hidden)
        path = hidden
    remove(path)


def load_state(model: keras.Model, folder: Path) -> dict[str, Any]:
    """Restore the newest checkpoint under ``folder`` into a built, compiled model; returns its state.

    Raises:
        FileNotFoundError: the folder holds no complete checkpoint.
        ValueError: a checkpoint file is damaged (truncated, not what kerasdec wrote), or the optimizer
            state does not match this model's optimizer; the message names the file.
    """
    found = latest_checkpoint(folder)
    if found is None:
        raise FileNotFoundError(f"No training checkpoint in {folder}: expected {folder}/{EPOCH_PREFIX}NNNN/"
                                f"{STATE}; was the run interrupted before its first epoch ended?")
    state = read_json(found / STATE)
    try:
        model.load_weights(found / WEIGHTS)
    except (OSError, ValueError, KeyError) as err:  # h5py: "truncated file", "bad object header", ...
        raise _damaged(found / WEIGHTS, err) from err
    try:
        with np.load(found / OPTIMIZER) as saved:
            values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise _damaged(found / OPTIMIZER, err) from err
    variables = model.optimizer.variables
    if len(values) != len(variables):
        raise ValueError(f"{found / OPTIMIZER} holds {len(values)} optimizer variables; this run's "
                         f"optimizer has {len(variables)} (precision or optimizer changed?)")
    for var, value in zip(variables, values):
        var.assign(value)
    log.info("Restored the state after epoch %d from %s", state["epoch"] + 1, found)
    return state


def _damaged(path: Path, err: Exception) -> ValueError:
    reason = " ".join(str(err).split())[:200]
    return ValueError(f"Checkpoint file {path} is damaged ({type(err).__name__}: {reason}); expected the "
                      "complete file kerasdec wrote. It cannot be resumed: start a new run")


class SaveState(keras.callbacks.Callback):
    """Saves the resumable state after every epoch (sampler state, best score and history included).

    Args:
        folder: the run's checkpoint/ folder.
        sampler: the frequency-of-use sampler (its ``state_dict`` is saved).
        tracker: shared with the validation callback: best_val_ap, best_epoch.
        history: the rows of history.csv so far (shared with the history writer).
    """

    def __init__(self, folder: Path, sampler: Any, tracker: dict[str, Any], history: list[dict[str, float]]):
        super().__init__()
        self.folder = Path(folder)
        self.sampler = sampler
        self.tracker = tracker
        self.history = history

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        state = {"epoch": epoch, "sampler": self.sampler.state_dict(), **self.tracker,
                 "history": self.history}
        save_state(self.model, self.folder, state)
