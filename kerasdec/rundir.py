"""The run directory as a contract: its file names (defined here once), its config.json, and where a
run's models and evaluations are. No tensorflow: the CLI and the exporters use this before any model
is loaded. Writing goes through kerasdec.files (atomic).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

from kerasdec.config import RunConfig
from kerasdec.echo import shown
from kerasdec.files import new_folder, read_json, write_json

# The files of a run directory (`kerasdec fit`); docs/run-directory.md#the-run-directory describes each.
CONFIG_FILE = "config.json"  # RunConfig.to_dict() as JSON
MODEL_FINAL = "model_final.keras"  # the model after the last epoch
MODEL_BEST = "model_best.keras"  # the model of the best validation AP
MODEL_FILES = {"final": MODEL_FINAL, "best": MODEL_BEST}
METRICS_FILE = "metrics.json"  # test evaluation written by fit / evaluate
RESULTS_FILE = "results.csv"  # per-image scores of that evaluation
HISTORY_FILE = "history.csv"  # per-epoch losses, λ, validation AP
CURVES_FILE = "curves.png"  # plot of history.csv
SAMPLER_FILE = "sampler.json"  # the frequency-of-use sampler's final state
SAMPLES_FILE = "samples.json"  # the samples of each split the run used; --resume checks the data against it
CHECKPOINT_DIR = "checkpoint"  # what --resume needs: checkpoint/epoch-NNNN/ (see training/checkpoint.py)
FINISHED_FILE = "finished.json"  # written LAST by fit: only a run holding it is finished
TENSORBOARD_DIR = "tensorboard"  # TensorBoard event files
RUNS_DIR = Path("runs")  # parent of the run directories when --run-dir is not given


def model_path(run_dir: Path | str, which: str | None = None) -> Path:
    """run_dir/model_final.keras ("final") or run_dir/model_best.keras ("best"); None = the model the
    run's test evaluation used (:func:`tested_model`), the one that carries the threshold.

    Raises:
        ValueError: ``which`` is neither "final" nor "best".
    """
    which = tested_model(run_dir) if which is None else which
    if which not in MODEL_FILES:
        raise ValueError(f"which={which!r}; expected one of {sorted(MODEL_FILES)}")
    return Path(run_dir) / MODEL_FILES[which]


def tested_model(run_dir: Path | str) -> str:
    """"final" or "best": the model `kerasdec fit` evaluated on the test split (metrics.json's
    "test_model"; "final" for runs without one, unfinished runs and runs made before it was recorded).
    """
    metrics = Path(run_dir) / METRICS_FILE
    tested = read_json(metrics).get("test_model", "final") if metrics.is_file() else "final"
    return tested if tested in MODEL_FILES else "final"


def evaluation_folder(split: str, which: str) -> str:
    """The name of the folder `kerasdec evaluate` writes into a run: evaluate-<split>-<which>."""
    return f"evaluate-{split}-{which}"


def read_run_config(folder: Path | str) -> RunConfig | None:
    """The RunConfig stored in ``folder``/config.json, or None when the folder has none.

    Raises:
        ValueError: config.json is corrupt or holds unknown keys (message names the file).
    """
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        return RunConfig.from_dict(read_json(path))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: {err}") from err


def write_run_config(folder: Path | str, cfg: RunConfig) -> Path:
    """Write ``cfg`` as ``folder``/config.json (atomically); returns the path."""
    return write_json(Path(folder) / CONFIG_FILE, cfg.to_dict())


def resolve_paths(cfg: RunConfig) -> RunConfig:
    """``cfg`` with its data root, split file and run directory absolute and resolved.

    A relative path follows the current directory: stored as typed, a later evaluate or resume started
    elsewhere would read other data. config.json therefore only ever holds resolved paths.
    """
    def resolved(value: str | None) -> str | None:
        return None if value is None else str(Path(value).expanduser().resolve())

    data = dataclasses.replace(cfg.data, root=resolved(cfg.data.root),
                               split_file=resolved(cfg.data.split_file))
    return dataclasses.replace(cfg, data=data, run_dir=resolved(cfg.run_dir))


def read_samples(run_dir: Path | str) -> dict[str, list] | None:
    """The run's samples.json ({split: [[name, is_positive, is_segmented], ...]}); None for runs made
    before it was written.

    Raises:
        ValueError: the file is corrupt (message names it).
    """
    path = Path(run_dir) / SAMPLES_FILE
    return read_json(path) if path.is_file() else None


def samples_difference(run_dir: Path | str, stored: dict[str, list], found: dict[str, list],
                       root: str | None) -> str | None:
    """None when every split of ``found`` holds exactly the samples ``stored`` (samples.json) records for
    it; otherwise one line saying how the data under ``root`` differs (``fit --resume`` and
    ``evaluate`` check the data with it)."""
    for split, rows in found.items():
        before = stored.get(split) or []
        if before == rows:
            continue
        old, now = {tuple(r) for r in before}, {tuple(r) for r in rows}
        missing, extra = sorted(old - now), sorted(now - old)
        example = (f"e.g. {shown(missing[0][0])} missing" if missing else
                   f"e.g. {shown(extra[0][0])} not in the run" if extra else "a different order")
        return (f"The data under {root} is not this run's: its {split} split has {len(rows)} images, the run "
                f"was trained with {len(before)} ({example}; see {Path(run_dir) / SAMPLES_FILE})")
    return None


def compare_samples(run_dir: Path | str, found: dict[str, list], root: str | None
                    ) -> tuple[bool | None, str | None]:
    """Whether ``found`` ({split: rows}) are the run's own samples: (True, None); (False, how they differ);
    (None, None) for a run without samples.json (they cannot be checked)."""
    stored = read_samples(run_dir)
    if stored is None:
        return None, None
    difference = samples_difference(run_dir, stored, found, root)
    return difference is None, difference


def new_run_folder(parent: Path, dataset: str) -> Path:
    """A new parent/<dataset>-<date>-<time>[-k] folder for a training run."""
    return new_folder(parent, f"{dataset}-{datetime.now():%Y%m%d-%H%M%S}")


def check_run_dir_free(run_dir: str | None) -> None:
    """Refuse an explicit run directory that exists and holds anything: runs are never overwritten."""
    if run_dir is not None and Path(run_dir).exists() and any(Path(run_dir).iterdir()):
        raise FileExistsError(f"--run-dir {run_dir} already exists and is not empty; choose another "
                              f"folder, or continue that run with --resume {run_dir}")


def create_run(cfg: RunConfig, manifest: dict[str, list]) -> tuple[Path, RunConfig]:
    """Create the run directory (cfg.run_dir, or a new runs/<dataset>-<time>): samples.json, then
    config.json, whose presence makes the folder a run that ``--resume`` accepts."""
    if cfg.run_dir is None:
        run_dir = new_run_folder(RUNS_DIR.resolve(), cfg.data.dataset)
    else:
        check_run_dir_free(cfg.run_dir)
        run_dir = Path(cfg.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    cfg = dataclasses.replace(cfg, run_dir=str(run_dir))
    write_json(run_dir / SAMPLES_FILE, manifest)
    write_run_config(run_dir, cfg)
    return run_dir, cfg
