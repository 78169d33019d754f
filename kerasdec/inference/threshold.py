"""Which decision threshold a model uses: the argument, else the model's own (``kerasdec fit`` stores
the F-best threshold of its test evaluation in the tested model's file), else the one its run's
evaluation found (model files saved before models carried it), else DEFAULT_THRESHOLD."""

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
    """The F-best threshold found when this run's model was evaluated on the test split, and where.

    run_dir/metrics.json (written by ``kerasdec fit``) belongs to the model its "test_model" names
    (model_final.keras when absent); the other model's is run_dir/evaluate-test-<which>/metrics.json
    (``kerasdec evaluate --model <which>``). (None, None) for another file name or when there is no
    such evaluation.
    """
    model_file = Path(model_file)
    which = {name: key for key, name in MODEL_FILES.items()}.get(model_file.name)
    if which is None:
        return None, None
    metrics = model_file.parent / METRICS_FILE
    if tested_model(model_file.parent) != which:
        metrics = model_file.parent / evaluation_folder("test", which) / METRICS_FILE
    if not metrics.is_file():
        return None, None
    stored = read_json(metrics)
    return (float(stored["threshold"]), metrics) if "threshold" in stored else (None, None)
