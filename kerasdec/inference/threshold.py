"""Which decision threshold a model uses: the argument, else the model's own (``kerasdec fit`` stores
the F-best threshold of its test evaluation in the tested model's file), else the one its run's own
test evaluation of it found (``kerasdec evaluate RUN --model M``, on the run's own samples), else
DEFAULT_THRESHOLD (predict, with a warning). An export never takes the default: :func:`export_threshold`.

An evaluation of other data (``kerasdec evaluate --other-data``, metrics.json ``run_data`` false) or
of unchecked data (a run without samples.json: ``run_data`` null) never gives a model its threshold."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kerasdec.files import read_json
from kerasdec.inference.contract import DEFAULT_THRESHOLD
from kerasdec.rundir import METRICS_FILE, MODEL_FILES, evaluation_folder, tested_model

logger = logging.getLogger(__name__)


def resolve_threshold(model: Any, model_file: Path | None, threshold: float | None,
                      need_threshold: bool = True) -> tuple[float, str]:
    """(threshold, where from): the argument, else the model's own, else its run's evaluation, else 0.5
    (with a warning when ``need_threshold``: a caller that decides by it)."""
    if threshold is not None:
        return float(threshold), "argument"
    if getattr(model, "threshold", None) is not None:
        return float(model.threshold), "model"
    stored, where = stored_threshold(model_file) if model_file is not None else (None, None)
    if stored is not None:
        return stored, str(where.resolve())
    if need_threshold:
        logger.warning("%s carries no threshold and has no evaluation: using %s", model_file or "the model",
                       DEFAULT_THRESHOLD)
    return DEFAULT_THRESHOLD, "default"


def stored_threshold(model_file: Path | str) -> tuple[float | None, Path | None]:
    """The F-best threshold found when this run's model was evaluated on the run's own test split, and
    where.

    run_dir/metrics.json (written by ``kerasdec fit``) belongs to the model its "test_model" names
    (model_final.keras when absent); the other model's is the first of run_dir/evaluate-test-<which>,
    -2, -3, ... whose metrics.json says ``run_data`` true (``kerasdec evaluate --model <which>`` on the
    run's own samples). (None, None) for another file name or when there is no such evaluation.
    """
    model_file = Path(model_file)
    which = {name: key for key, name in MODEL_FILES.items()}.get(model_file.name)
    if which is None:
        return None, None
    run = model_file.parent
    if tested_model(run) == which:
        candidates = [run / METRICS_FILE]
    else:
        candidates = [folder / METRICS_FILE for folder in _evaluations(run, evaluation_folder("test", which))]
    for metrics in candidates:
        stored = read_json(metrics) if metrics.is_file() else {}
        own = metrics.parent == run or stored.get("run_data") is True
        if own and "threshold" in stored:
            return float(stored["threshold"]), metrics
        if metrics.is_file() and not own:
            logger.info("not taking the threshold of %s: it evaluated %s", metrics,
                        "other data" if stored.get("run_data") is False else "unchecked data")
    return None, None


def _evaluations(run: Path, name: str) -> list[Path]:
    """run/name, run/name-2, run/name-3, ... that exist, in that order."""
    def number(folder: Path) -> int:
        suffix = folder.name[len(name):]
        return 1 if not suffix else int(suffix[1:]) if suffix[1:].isdigit() else 0
    folders = [p for p in run.glob(f"{name}*") if p.is_dir() and number(p) >= 1]
    return sorted(folders, key=number)


def export_threshold(model_file: Path, carried: float | None, threshold: float | None) -> tuple[float, str]:
    """The threshold an export records and where it comes from; never a default.

    Args:
        model_file: the exported .keras file.
        carried: the threshold the file carries (its config's "threshold"), or None.
        threshold: ``--threshold``, or None.

    Returns:
        (threshold, origin): "argument"; the run's metrics.json whose threshold the model carries; "model"
        (a carried threshold whose evaluation is not beside the file); or the metrics.json of the run's
        own test evaluation of this model.

    Raises:
        ValueError: none of these: the message says how to get one.
    """
    if threshold is not None:
        return float(threshold), "argument"
    metrics = model_file.parent / METRICS_FILE
    if carried is not None:
        which = {name: key for key, name in MODEL_FILES.items()}.get(model_file.name)
        if which is not None and tested_model(model_file.parent) == which and metrics.is_file() \
                and read_json(metrics).get("threshold") == carried:
            return float(carried), str(metrics.resolve())
        return float(carried), "model"
    stored, where = stored_threshold(model_file)
    if stored is not None:
        return stored, str(where.resolve())
    which = {name: key for key, name in MODEL_FILES.items()}.get(model_file.name, "final")
    raise ValueError(f"{model_file} carries no decision threshold and its run has no test evaluation of it "
                     "on the run's own data; an export takes its threshold only from there: run "
                     f"`kerasdec evaluate {model_file.parent} --model {which}` first, or give --threshold")
