"""Checkpoints are atomic as a set, survive a failure in every step of a save, and name damaged files;
history.csv is rewritten whole; training stops at the first non-finite loss or weight. Tiny models only.
"""

from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path

import keras
import numpy as np
import pytest

from kerasdec.files import TMP_PREFIX
from kerasdec.training import checkpoint
from kerasdec.training.callbacks import StopOnNonFinite
from kerasdec.training.checkpoint import SaveState, latest_checkpoint, load_state, save_state
from kerasdec.training.history import HistoryLog, read_history


def _model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(8, 4)).astype("float32"), rng.normal(size=(8, 1)).astype("float32")


def _train(model: keras.Model, epochs: int = 1, callbacks=()) -> None:
    model.fit(*_data(), batch_size=2, epochs=epochs, verbose=0, shuffle=False, callbacks=list(callbacks))


def _snapshot(model: keras.Model) -> list[np.ndarray]:
    return [np.array(v.numpy()) for v in [*model.weights, *model.optimizer.variables]]


def _assert_restored(folder: Path, expected: list[np.ndarray], epoch: int) -> None:
    fresh = _model(seed=1)
    state = load_state(fresh, folder)
    assert state["epoch"] == epoch and state["sampler"] == {"epoch": epoch}
    for got, want in zip(_snapshot(fresh), expected):
        np.testing.assert_array_equal(got, want)


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(TMP_PREFIX)]


class _Boom(Exception):
    """Stands for a kill in the middle of a step."""


def _break_weights(monkeypatch, model):
    original = model.save_weights

    def half_then_fail(path, *args, **kwargs):
        original(path, *args, **kwargs)
        Path(path).write_bytes(Path(path).read_bytes()[:100])  # a truncated file, then the "kill"
        raise _Boom

    monkeypatch.setattr(model, "save_weights", half_then_fail)


def _break(monkeypatch, step: str, model) -> None:
    """Make one step of save_state fail half-way."""
    if step == "weights":
        _break_weights(monkeypatch, model)
    elif step == "optimizer":
        monkeypatch.setattr(checkpoint, "write_optimizer", lambda m, path: (path.write_bytes(b"PK\x03\x04"),
                                                                            _raise())[1])
    elif step == "state":
        monkeypatch.setattr(checkpoint.json, "dumps", lambda *a, **k: _raise())
    elif step == "rename":
        monkeypatch.setattr(os, "rename", lambda *a: _raise())
    elif step == "cleanup":  # the new checkpoint is in place; deleting the old one fails
        monkeypatch.setattr(checkpoint, "remove", lambda *a: _raise())


def _raise():
    raise _Boom


@pytest.mark.parametrize("step", ["weights", "optimizer", "state", "rename", "cleanup"])
def test_a_failure_in_any_step_of_a_save_leaves_a_complete_checkpoint(tmp_path, monkeypatch, step):
    folder = tmp_path / "checkpoint"
    model = _model()
    _train(model)
    save_state(model, folder, {"epoch": 0, "sampler": {"epoch": 0}})
    first = _snapshot(model)
    _train(model)  # epoch 1 changes every weight and the momentum
    second = _snapshot(model)
    with monkeypatch.context() as patch:
        _break(patch, step, model)
        with pytest.raises(_Boom):
            save_state(model, folder, {"epoch": 1, "sampler": {"epoch": 1}})
    if step == "cleanup":
        assert latest_checkpoint(folder).name == "epoch-0002"
        _assert_restored(folder, second, epoch=1)
    else:
        assert latest_checkpoint(folder).name == "epoch-0001"
        _assert_restored(folder, first, epoch=0)
        assert _leftovers(folder) == []  # the half-written set was removed
    # The next save succeeds and leaves exactly one checkpoint, whatever was left over.
    save_state(model, folder, {"epoch": 2, "sampler": {"epoch": 2}})
    assert sorted(p.name for p in folder.iterdir()) == ["epoch-0003"]


def test_what_a_kill_leaves_is_ignored_and_cleaned(tmp_path):
    folder = tmp_path / "checkpoint"
    model = _model()
    save_state(model, folder, {"epoch": 0, "sampler": {"epoch": 0}})
    expected = _snapshot(model)
    killed = folder / f"{TMP_PREFIX}123-abcd-epoch-0002"  # a kill -9 in the middle of the next save
    killed.mkdir()
    (killed / checkpoint.WEIGHTS).write_bytes(b"\x89HDF\r\n")
    assert latest_checkpoint(folder).name == "epoch-0001"
    _assert_restored(folder, expected, epoch=0)
    save_state(model, folder, {"epoch": 1, "sampler": {"epoch": 1}})
    assert sorted(p.name for p in folder.iterdir()) == ["epoch-0002"]


def test_disk_full_names_the_path_and_the_space_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoint"
    model = _model()
    save_state(model, folder, {"epoch": 0, "sampler": {"epoch": 0}})
    expected = _snapshot(model)
    h5py_text = "Can't synchronously write data (file write failed: errno = 28, error message = " \
                "'No space left on device', total write size = 2048)"  # h5py's OSError has no errno
    for error in (OSError(errno.ENOSPC, "No space left on device"), OSError(h5py_text)):
        monkeypatch.setattr(model, "save_weights", lambda *a, error=error, **k: (_ for _ in ()).throw(error))
        with pytest.raises(OSError) as caught:
            save_state(model, folder, {"epoch": 1, "sampler": {"epoch": 1}})
        assert caught.value.errno == errno.ENOSPC
        message = str(caught.value)
        assert f"Could not write {folder / 'epoch-0002'}: No space left on device" in message
        assert "MB needed" in message and "MB free there" in message and "errno = 28" not in message
    # Too little free space is found before anything is written.
    monkeypatch.setattr(checkpoint, "model_bytes", lambda m: 1 << 60)
    with pytest.raises(OSError, match=r"No space left on device \(about \d+ MB needed"):
        save_state(model, folder, {"epoch": 1, "sampler": {"epoch": 1}})
    assert [p.name for p in folder.iterdir()] == ["epoch-0001"]
    _assert_restored(folder, expected, epoch=0)


@pytest.mark.parametrize("damage", ["weights", "optimizer", "state"])
def test_a_damaged_checkpoint_is_one_error_naming_the_file(tmp_path, damage):
    folder = tmp_path / "checkpoint"
    saved = save_state(_model(), folder, {"epoch": 0, "sampler": {"epoch": 0}})
    names = {"weights": checkpoint.WEIGHTS, "optimizer": checkpoint.OPTIMIZER, "state": checkpoint.STATE}
    name = names[damage]
    path = saved / name
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # truncated
    expected = "is not valid JSON" if damage == "state" else "is damaged"
    with pytest.raises(ValueError, match=f"{path}.* {expected}|{path} {expected}"):
        load_state(_model(), folder)


def test_no_checkpoint_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="No training checkpoint in"):
        load_state(_model(), tmp_path / "checkpoint")


def test_history_is_rewritten_whole_and_a_redone_epoch_replaces_its_row(tmp_path, monkeypatch):
    path = tmp_path / "history.csv"
    rows: list = []
    log = HistoryLog(path, rows)
    log.on_epoch_end(0, {"loss": 2.0, "val_ap": math.nan})
    log.on_epoch_end(1, {"loss": 1.0, "val_ap": 0.5})
    assert path.read_text() == "epoch,loss,val_ap\n0,2.0,nan\n1,1.0,0.5\n"
    restored = HistoryLog(path, [dict(r) for r in rows[:1]])  # resumed from the checkpoint of epoch 0
    restored.on_epoch_end(1, {"loss": 1.5, "val_ap": 0.25})
    history = read_history(path)
    assert history["epoch"] == [0.0, 1.0] and history["loss"] == [2.0, 1.5]
    assert math.isnan(history["val_ap"][0]) and history["val_ap"][1] == 0.25
    monkeypatch.setattr(Path, "write_bytes", lambda *a: _raise())  # a failure never leaves a torn file
    with pytest.raises(_Boom):
        restored.on_epoch_end(2, {"loss": 1.0, "val_ap": 0.3})
    assert path.read_text() == "epoch,loss,val_ap\n0,2.0,nan\n1,1.5,0.25\n"
    assert _leftovers(tmp_path) == []


class _Sampler:
    def state_dict(self):
        return {"epoch": "any"}


class _Poison(keras.callbacks.Callback):
    """Turns one weight into NaN at the start (or the end) of batch ``batch`` of epoch ``epoch``."""

    def __init__(self, epoch: int, batch: int, at_end: bool = False):
        super().__init__()
        self.epoch, self.batch, self.at_end = epoch, batch, at_end

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def _poison(self, batch):
        if (self.current, batch) == (self.epoch, self.batch):
            weight = self.model.weights[0]
            weight.assign(np.full(weight.shape, np.nan, "float32"))

    def on_train_batch_begin(self, batch, logs=None):
        if not self.at_end:
            self._poison(batch)

    def on_train_batch_end(self, batch, logs=None):
        if self.at_end:
            self._poison(batch)


@pytest.mark.parametrize("at_end, message", [
    (False, r"Training loss became nan at epoch 2, batch 3; training stopped\. Resume"),
    (True, r"1 weight\(s\) became non-finite during epoch 2 \(e\.g\. .*kernel\); training stopped\. Resume"),
])
def test_non_finite_training_stops_and_keeps_the_last_good_checkpoint(tmp_path, at_end, message):
    model = _model()
    folder, history = tmp_path / "checkpoint", tmp_path / "history.csv"
    rows: list = []
    guard_first = [_Poison(epoch=1, batch=3 if at_end else 2, at_end=at_end), StopOnNonFinite("Resume."),
                   HistoryLog(history, rows), SaveState(folder, _Sampler(), {}, rows)]
    with pytest.raises(FloatingPointError, match=message):
        _train(model, epochs=3, callbacks=guard_first)
    state = json.loads((latest_checkpoint(folder) / checkpoint.STATE).read_text())
    assert state["epoch"] == 0 and [r["epoch"] for r in state["history"]] == [0]
    assert [int(e) for e in read_history(history)["epoch"]] == [0]
    fresh = _model(seed=1)
    load_state(fresh, folder)
    assert all(np.isfinite(v.numpy()).all() for v in fresh.weights)
