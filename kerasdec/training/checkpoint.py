"""Resumable training state: weights, optimizer variables, sampler state and the best score so far.

Keras's BackupAndRestore restores weights and optimizer but not Python state (the sampler's counts and
RNG, the best validation AP), so the whole state is saved here, atomically, after every epoch.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import keras
import numpy as np

log = logging.getLogger(__name__)

WEIGHTS = "weights.weights.h5"
OPTIMIZER = "optimizer.npz"
STATE = "state.json"


def save_state(model: keras.Model, folder: Path, state: dict[str, Any]) -> None:
    """Write weights, optimizer variables and ``state`` (JSON) to ``folder``, replacing the last ones.

    state.json is written last: a folder whose state.json names epoch e holds epoch e's weights.
    """
    folder.mkdir(parents=True, exist_ok=True)
    tmp_weights = folder / f"tmp-{WEIGHTS}"
    model.save_weights(tmp_weights)
    os.replace(tmp_weights, folder / WEIGHTS)
    tmp_opt = folder / f"tmp-{OPTIMIZER}"
    with open(tmp_opt, "wb") as f:
        np.savez(f, *[np.asarray(v.numpy()) for v in model.optimizer.variables])
    os.replace(tmp_opt, folder / OPTIMIZER)
    tmp_state = folder / f"tmp-{STATE}"
    tmp_state.write_text(json.dumps(state, indent=1))
    os.replace(tmp_state, folder / STATE)


def load_state(model: keras.Model, folder: Path) -> dict[str, Any]:
    """Restore what ``save_state`` wrote into a built, compiled model; returns the JSON state.

    Raises:
        FileNotFoundError: the folder holds no complete checkpoint.
        ValueError: the optimizer state does not match this model's optimizer.
    """
    if not (folder / STATE).is_file():
        raise FileNotFoundError(f"No training checkpoint in {folder}: expected {folder / STATE}; "
                                "was the run interrupted before its first epoch ended?")
    state = json.loads((folder / STATE).read_text())
    model.load_weights(folder / WEIGHTS)
    with np.load(folder / OPTIMIZER) as saved:
        values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    variables = model.optimizer.variables
    if len(values) != len(variables):
        raise ValueError(f"{folder / OPTIMIZER} holds {len(values)} optimizer variables; this run's "
                         f"optimizer has {len(variables)} (precision or optimizer changed?)")
    for var, value in zip(variables, values):
        var.assign(value)
    log.info("Restored the state after epoch %d from %s", state["epoch"] + 1, folder)
    return state


class SaveState(keras.callbacks.Callback):
    """Saves the resumable state after every epoch (sampler state and best score included)."""

    def __init__(self, folder: Path, sampler: Any, tracker: dict[str, Any]):
        super().__init__()
        self.folder = Path(folder)
        self.sampler = sampler
        self.tracker = tracker  # shared with the validation callback: best_val_ap, best_epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        state = {"epoch": epoch, "sampler": self.sampler.state_dict(), **self.tracker}
        save_state(self.model, self.folder, state)
