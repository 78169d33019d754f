"""The export self-check: does an artifact keep the float model's decisions on held-out images?

Each artifact (the SavedModel, each .tflite) is run through its runner on images of the test (or
validation) split that were NOT used for int8 calibration, and compared with the Keras model it was
exported from: AP on those images, max and mean |score error|, and decisions (score >= threshold)
that differ. A float artifact (SavedModel, TFLite float32 / float16) may flip none; a quantised one
(dynamic, int8) at most ``MAX_FLIP_FRACTION`` of them.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

MAX_FLIP_FRACTION = 0.01  # quantised artifacts: at most 1% of the held-out decisions may flip
FLOAT_TOLERANCE = {"saved_model": 1e-4, "float32": 1e-4, "float16": 5e-3}  # max |score error|


class ExportCheckError(RuntimeError):
    """An artifact failed its self-check; nothing of the export was published."""


@dataclass(frozen=True)
class CheckReport:
    """How one artifact compares with the Keras model on the held-out images."""

    artifact: str  # "saved_model" or a TFLite mode
    images: int  # held-out images compared
    held_out: str  # where they came from, e.g. "synthetic test split"
    threshold: float
    ap: float | None  # the artifact's AP on them (None when they lack both classes or labels)
    reference_ap: float | None  # the Keras model's AP on them
    max_score_error: float
    mean_score_error: float
    flipped: int  # decisions that differ from the Keras model's
    allowed_flips: int
    max_allowed_score_error: float | None  # float artifacts only

    @property
    def passed(self) -> bool:
        within = self.max_allowed_score_error is None or self.max_score_error <= self.max_allowed_score_error
        return self.flipped <= self.allowed_flips and within and math.isfinite(self.max_score_error)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "passed": self.passed}

    def line(self) -> str:
        ap = "n/a" if self.ap is None else f"{self.ap:.4f} (Keras {self.reference_ap:.4f})"
        return (f"{self.artifact}: {self.flipped}/{self.images} decisions flipped (allowed "
                f"{self.allowed_flips}), max |score error| {self.max_score_error:.3g}, mean "
                f"{self.mean_score_error:.3g}, AP {ap} on the {self.held_out}")


def compare(artifact: str, scores: np.ndarray, reference: np.ndarray, labels: np.ndarray | None,
            threshold: float, held_out: str) -> CheckReport:
    """The :class:`CheckReport` of ``scores`` against the reference (Keras) scores of the same images."""
    from kerasdec.evaluation.metrics import average_precision

    error = np.abs(np.asarray(scores, np.float64) - np.asarray(reference, np.float64))
    flipped = int(np.sum((scores >= threshold) != (reference >= threshold)))
    both = labels is not None and 0 < int(np.sum(labels)) < len(labels)
    quantised = artifact not in FLOAT_TOLERANCE
    return CheckReport(
        artifact=artifact, images=len(scores), held_out=held_out, threshold=float(threshold),
        ap=average_precision(labels, scores) if both and np.isfinite(scores).all() else None,
        reference_ap=average_precision(labels, reference) if both else None,
        max_score_error=float(error.max()) if np.isfinite(error).all() else math.inf,
        mean_score_error=float(error.mean()) if np.isfinite(error).all() else math.inf, flipped=flipped,
        allowed_flips=int(math.floor(MAX_FLIP_FRACTION * len(scores))) if quantised else 0,
        max_allowed_score_error=None if quantised else FLOAT_TOLERANCE[artifact])


def require_passed(report: CheckReport) -> CheckReport:
    """Log the report; raise ExportCheckError when it failed."""
    if not report.passed:
        limit = ("" if report.max_allowed_score_error is None
                 else f", max |score error| allowed {report.max_allowed_score_error:g}")
        raise ExportCheckError(f"self-check failed, nothing exported: {report.line()}{limit}")
    logger.info("self-check passed: %s", report.line())
    return report
