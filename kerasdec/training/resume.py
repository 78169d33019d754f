"""Continuing a run: its own config (with a moved data root), a check that the data is the run's,
and the training progress restored from the newest checkpoint."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import keras

from kerasdec.config import RunConfig
from kerasdec.data.sampling import FrequencySampler
from kerasdec.echo import shown
from kerasdec.files import remove_temporaries
from kerasdec.rundir import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    FINISHED_FILE,
    SAMPLES_FILE,
    read_run_config,
    read_samples,
    samples_difference,
    write_run_config,
)
from kerasdec.training.checkpoint import load_state

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Progress:
    """Where training stands: the next epoch, the best validation AP so far, the history rows."""

    epoch: int = 0  # the first epoch still to train (0-based)
    tracker: dict = dataclasses.field(default_factory=dict)  # best_val_ap, best_epoch
    history: list = dataclasses.field(default_factory=list)  # rows of history.csv


def restore(model: keras.Model, run_dir: Path, sampler: FrequencySampler) -> Progress:
    """Load the run's newest checkpoint into the model and the sampler; return where training stands."""
    state = load_state(model, run_dir / CHECKPOINT_DIR)
    sampler.load_state_dict(state["sampler"])
    return Progress(epoch=state["epoch"] + 1,
                    tracker={k: state[k] for k in ("best_val_ap", "best_epoch") if k in state},
                    history=list(state.get("history", [])))


def open_resumed(resume: Path | str, data_root: Path | str | None,
                 tidy: bool = True) -> tuple[Path, RunConfig]:
    """An unfinished run directory and its own config, with ``data_root`` (resolved) when given.

    ``tidy`` deletes what interrupted writes left in it; False for a process that only reads the run
    (a non-chief worker of a multi-worker run).

    Raises:
        FileNotFoundError: no config.json there, or the stored data root is gone and no new one given.
        FileExistsError: the run is finished (finished.json exists).
        ValueError: config.json is corrupt, or holds a relative data root (written by an older
            kerasdec) and no ``data_root`` was given.
    """
    run_dir = Path(resume).resolve()
    stored = read_run_config(run_dir)
    if stored is None:
        raise FileNotFoundError(f"--resume {run_dir}: no {CONFIG_FILE} there; expected a run directory "
                                "written by `kerasdec fit`")
    if (run_dir / FINISHED_FILE).exists():
        raise FileExistsError(f"--resume {run_dir}: this run already finished ({FINISHED_FILE} exists); "
                              "start a new run instead")
    root = stored.data.root
    if data_root is not None:
        root = str(Path(data_root).expanduser().resolve())
    elif root is not None and not Path(root).is_absolute():
        raise ValueError(f"{run_dir / CONFIG_FILE} stores the relative data root {shown(root)}, which would "
                         "follow the current directory; give the dataset folder with --data-root")
    elif root is not None and not Path(root).exists():
        raise FileNotFoundError(f"The run's data root {root} does not exist (moved?); give its new place "
                                "with --data-root")
    for folder in (run_dir, run_dir / CHECKPOINT_DIR) if tidy else ():
        if removed := remove_temporaries(folder):
            log.info("Removed %d temporary file(s) of an interrupted write in %s", len(removed), folder)
    data = dataclasses.replace(stored.data, root=root)
    return run_dir, dataclasses.replace(stored, data=data, run_dir=str(run_dir))


def adopt_data(run_dir: Path, cfg: RunConfig, manifest: dict[str, list], moved: bool) -> None:
    """Check that the data found is the run's (samples.json); record a moved root in config.json.

    Raises:
        ValueError: a split's samples differ from those the run was trained with.
    """
    stored = read_samples(run_dir)
    if stored is None:
        log.warning("%s has no %s (written by an older kerasdec): the data cannot be checked", run_dir,
                    SAMPLES_FILE)
    elif (difference := samples_difference(run_dir, stored, manifest, cfg.data.root)) is not None:
        raise ValueError(f"{difference}; expected the dataset the run used (--data-root)")
    if moved:
        write_run_config(run_dir, cfg)
        log.info("The run's data root is now %s (recorded in %s)", cfg.data.root, run_dir / CONFIG_FILE)



