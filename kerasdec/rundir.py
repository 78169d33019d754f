"""The run directory's files that several commands read: its config and its evaluated threshold.

No tensorflow here: the CLI and the exporters use these before any model is loaded.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from kerasdec.config import RunConfig

CONFIG_FILE = "config.json"  # RunConfig.to_dict() as JSON


def read_run_config(folder: Path | str) -> RunConfig | None:
    """The RunConfig stored in ``folder``/config.json, or None when the folder has none."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        return None
    return RunConfig.from_dict(json.loads(path.read_text(encoding="utf-8")))


def write_run_config(folder: Path | str, cfg: RunConfig) -> Path:
    """Write ``cfg`` as ``folder``/config.json; returns the path."""
    path = Path(folder) / CONFIG_FILE
    path.write_text(json.dumps(cfg.to_dict(), indent=2), encoding="utf-8")
    return path


def new_folder(parent: Path, name: str) -> Path:
    """Create and return parent/name, or parent/name-2, -3, ... if taken (never reuses a folder)."""
    parent.mkdir(parents=True, exist_ok=True)
    for k in range(1, 10_000):
        candidate = parent / (name if k == 1 else f"{name}-{k}")
        try:
            candidate.mkdir(parents=False)
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"{parent / name} and 9,998 numbered variants exist; remove some")


def new_run_folder(parent: Path, dataset: str) -> Path:
    """A new parent/<dataset>-<date>-<time>[-k] folder for a training run."""
    return new_folder(parent, f"{dataset}-{datetime.now():%Y%m%d-%H%M%S}")


def stored_threshold(model_file: Path | str) -> tuple[float | None, Path | None]:
    """The F-best threshold found when this run's model was evaluated on the test split, and where.

    model_final.keras → run_dir/metrics.json (written by ``kerasdec fit``); model_best.keras →
    run_dir/evaluate-test-best/metrics.json (written by ``kerasdec evaluate --model best``).
    (None, None) for another file name or when there is no such evaluation.
    """
    model_file = Path(model_file)
    candidates = {"model_final.keras": model_file.parent / "metrics.json",
                  "model_best.keras": model_file.parent / "evaluate-test-best" / "metrics.json"}
    metrics = candidates.get(model_file.name)
    if metrics is None or not metrics.is_file():
        return None, None
    stored = json.loads(metrics.read_text(encoding="utf-8"))
    return (float(stored["threshold"]), metrics) if "threshold" in stored else (None, None)
