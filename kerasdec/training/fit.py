"""``fit(config)`` → run directory: the run lifecycle (run.py) with the loop the run asks for."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras

from kerasdec.config import RunConfig
from kerasdec.training import multiworker, run
from kerasdec.training.trainer import FitLoop


def fit(cfg: RunConfig, *, resume: Path | str | None = None, data_root: Path | str | None = None,
        callbacks: Sequence[keras.callbacks.Callback] = ()) -> Path:
    """Train SegDecNet end to end, evaluate it on the test split, and return the run directory.

    ``--distribute multiworker`` runs (new, or resumed from their own config.json) train through
    ``multiworker.StrategyLoop``; every other run through ``trainer.FitLoop`` (``model.fit``).

    Args:
        cfg: the run's settings (ignored when resuming: the run's own config.json is used). Paths are
            resolved against the current directory and stored absolute.
        resume: an unfinished run directory: continue after its last checkpoint, or complete a run whose
            final save or evaluation was interrupted.
        data_root: with ``resume``, where the run's dataset is now (it moved); checked to hold the same
            samples, then recorded in config.json.
        callbacks: extra Keras callbacks, run after kerasdec's own.

    Returns:
        The run directory (config.json, samples.json, model_final.keras, model_best.keras, history.csv,
        curves.png, sampler.json, tensorboard/, checkpoint/, the test evaluation: metrics.json,
        results.csv, ..., and, written last, finished.json).

    Raises:
        FileExistsError: the requested run directory exists, or the resumed run already finished.
        FileNotFoundError: missing data, or a resumed run without config.json or checkpoint.
        ValueError: bad data, or data that is not the resumed run's; a damaged checkpoint.
        FloatingPointError: the loss or the weights became non-finite (the last checkpoint is kept).
        OSError: a write failed (disk full, read-only folder); the message names the path.
        ConnectionError: multi-worker only: the peers were not reachable, or a worker died.

    Example:
        >>> run_dir = fit(RunConfig())  # the synthetic default, a few minutes on a CPU
    """
    if multiworker.requested(cfg, resume):
        return multiworker.fit(cfg, resume=resume, data_root=data_root, callbacks=callbacks)
    return run.run(run.open_run(cfg, resume, data_root), FitLoop(), callbacks)
