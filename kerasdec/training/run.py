"""The run lifecycle, once: check the run's folder, prepare the data, create (or resume) the run
directory, build the model, train through a loop, then test the selected model and finish.

Only the loop varies (``Loop``): ``trainer.FitLoop`` (``model.fit``, one machine) or
``multiworker.StrategyLoop`` (``strategy.run`` over a TF_CONFIG cluster); ``fit.fit`` chooses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

import keras
import numpy as np
import tensorflow as tf

from kerasdec.config import RunConfig
from kerasdec.data import pipeline, sources
from kerasdec.data.samples import Sample
from kerasdec.data.sampling import FrequencySampler
from kerasdec.data.sharding import ShardView
from kerasdec.determinism import deterministic
from kerasdec.evaluation import evaluate
from kerasdec.evaluation.metrics import summary_line
from kerasdec.files import check_writable, remove, write_json
from kerasdec.inference.runners import KerasRunner, as_runner, load
from kerasdec.models.rowconv import released_custom_gradients
from kerasdec.models.saving import save_model
from kerasdec.models.segdec import SegDecNet
from kerasdec.recipes import resolve_epochs
from kerasdec.rundir import (
    CHECKPOINT_DIR,
    CURVES_FILE,
    FINISHED_FILE,
    HISTORY_FILE,
    MODEL_BEST,
    MODEL_FILES,
    MODEL_FINAL,
    RUNS_DIR,
    SAMPLER_FILE,
    TENSORBOARD_DIR,
    check_run_dir_free,
    create_run,
    resolve_paths,
)
from kerasdec.training import callbacks as kcb
from kerasdec.training.checkpoint import SaveState
from kerasdec.training.history import HistoryLog, plot_history
from kerasdec.training.model import precision_policy
from kerasdec.training.resume import Progress, adopt_data, open_resumed, restore
from kerasdec.training.validation import ValidateAP

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RunData:
    """The data side of a run: the sampler, both datasets, the validation labels, the test samples."""

    sampler: FrequencySampler
    train_ds: tf.data.Dataset
    val_ds: tf.data.Dataset
    val_labels: np.ndarray
    test: list[Sample]
    manifest: dict[str, list]  # split -> [[name, is_positive, is_segmented], ...] (samples.json)


class Loop(Protocol):
    """What varies between the training modes: where the model lives and how epochs run."""

    shard: tuple[int, int] | None  # (rank, workers): this worker's share of each batch; None = whole batches
    is_chief: bool  # writes the run directory (other workers write into a scratch folder)

    def build(self, cfg: RunConfig) -> SegDecNet:
        """The compiled, built model (``model.build_model``) where this loop needs it."""

    def train(self, model: SegDecNet, data: RunData, cfg: RunConfig, progress: Progress,
              callbacks: list[keras.callbacks.Callback]) -> None:
        """The epochs from ``progress.epoch`` on, calling ``callbacks`` as ``model.fit`` does."""


@dataclasses.dataclass(frozen=True)
class Start:
    """A run that passed the checks made before anything slow (``open_run``)."""

    cfg: RunConfig  # paths resolved; a resumed run's own config (with its new data root)
    run_dir: Path | None  # the resumed run's directory; None for a new run (created once its data is read)
    moved: bool = False  # resumed with a new data root, to be recorded in config.json


def open_run(cfg: RunConfig, resume: Path | str | None, data_root: Path | str | None,
             is_chief: bool = True) -> Start:
    """A new run whose folder is free and writable, or a resumed run's own settings (no TensorFlow).

    Raises:
        FileExistsError: the requested run directory exists, or the resumed run already finished.
        FileNotFoundError, ValueError, OSError: see ``resume.open_resumed`` and ``files.check_writable``.
    """
    if resume is not None:
        run_dir, cfg = open_resumed(resume, data_root, tidy=is_chief)
        return Start(cfg, run_dir, moved=data_root is not None)
    cfg = resolve_paths(cfg)
    if is_chief:
        check_run_dir_free(cfg.run_dir)
        check_writable(Path(cfg.run_dir).parent if cfg.run_dir else RUNS_DIR.resolve())
    return Start(cfg, None)


def run(start: Start, loop: Loop, callbacks: Sequence[keras.callbacks.Callback] = ()) -> Path:
    """Prepare the data, create or adopt the run directory, train through ``loop``, finish (chief).

    Returns:
        The run directory (see ``fit.fit`` for what it holds).
    """
    cfg = start.cfg
    with (precision_policy(cfg.train.precision), released_custom_gradients(),  # no model kept after fit
          deterministic(cfg.train.deterministic)):
        keras.utils.set_random_seed(cfg.seed)
        data = prepare_data(cfg, loop.shard)  # every file decoded once: bad data fails before a run exists
        if start.run_dir is not None:
            run_dir = start.run_dir
            adopt_data(run_dir, cfg, data.manifest, moved=loop.is_chief and start.moved)
        else:  # on every worker alike: they must agree on the number of epochs
            cfg = resolve_epochs(cfg, data.sampler.epoch_size)  # --steps → epochs, stored in config.json
            run_dir, cfg = create_run(cfg, data.manifest) if loop.is_chief else (Path(cfg.run_dir), cfg)
        model = loop.build(cfg)
        progress = restore(model, run_dir, data.sampler) if start.run_dir is not None else Progress()
        if progress.epoch < cfg.train.epochs:  # else only the final save and evaluation are left to do
            log.info("Run directory %s", run_dir)
            with output_folder(run_dir, loop.is_chief) as out:
                own = training_callbacks(cfg, out, data, progress)
                data.sampler.current_epoch = progress.epoch  # Keras may open an iterator before callbacks
                loop.train(model, data, cfg, progress, [*own, *callbacks])
        if not loop.is_chief:
            return run_dir
        return finish_run(model, run_dir, cfg, data.test, data.sampler)


def prepare_data(cfg: RunConfig, shard: tuple[int, int] | None = None) -> RunData:
    """List the splits, check them, and build the sampler and datasets (decoding every image once).

    ``shard`` = (rank, n_workers): the training dataset holds only this worker's share of each global
    batch (kerasdec.data.sharding), batched per worker.
    """
    val_name = sources.validation_split(cfg.data)
    splits = sources.load_splits(cfg.data, ("train", val_name, "test"), cfg.seed)
    for name in {val_name, "test"}:
        require_both_classes(splits[name], name)
    train, val = splits["train"], splits[val_name]
    sampler = FrequencySampler([s.is_positive for s in train], seed=cfg.seed,
                               frequency=cfg.data.frequency_sampling, batch_size=cfg.train.batch_size,
                               drop_last=cfg.train.drop_last)  # counts only negatives trained on
    view = sampler if shard is None else ShardView(sampler, cfg.train.batch_size, *shard, cfg.train.drop_last)
    batch = cfg.train.batch_size if shard is None else view.batch_size
    train_ds = pipeline.make_train_dataset(train, cfg.data, batch, view, drop_remainder=cfg.train.drop_last)
    val_ds = pipeline.make_eval_dataset(val, cfg.data, cfg.train.batch_size)
    if val_name != "test":
        pipeline.check_decodable(splits["test"], cfg.data)
    log.info("Training on %d images (%d positive), validating on %s (%d images)", len(train),
             sum(s.is_positive for s in train), val_name, len(val))
    manifest = {name: [[s.name, s.is_positive, s.is_segmented] for s in samples]
                for name, samples in splits.items()}
    return RunData(sampler, train_ds, val_ds, np.array([s.is_positive for s in val]), splits["test"],
                   manifest)


def require_both_classes(samples: list[Sample], split: str) -> None:
    """AP needs positives and negatives: say so before training rather than after."""
    n_pos = sum(s.is_positive for s in samples)
    if n_pos == 0 or n_pos == len(samples):
        raise ValueError(f"The {split} split has {n_pos} defective and {len(samples) - n_pos} defect-free "
                         "images; evaluation needs both")


@contextlib.contextmanager
def output_folder(run_dir: Path, is_chief: bool) -> Iterator[Path]:
    """The run directory for the chief; a scratch folder, removed afterwards, for the other workers
    (they write the same files, which nobody reads)."""
    if is_chief:
        yield run_dir
        return
    scratch = Path(tempfile.mkdtemp(prefix="kerasdec-worker-"))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def training_callbacks(cfg: RunConfig, run_dir: Path, data: RunData,
                       progress: Progress) -> list[keras.callbacks.Callback]:
    """kerasdec's callbacks, in order: the guard precedes everything that saves at an epoch's end."""
    hint = (f"The checkpoint of the last good epoch is kept: continue with `kerasdec fit --resume {run_dir}` "
            "(if it recurs at the same batch the settings diverge: start a new run with a lower --lr)")
    return [
        kcb.SamplerEpoch(data.sampler),
        kcb.LossBalance(cfg.train.epochs, cfg.train.delta, cfg.train.dynamic_balance),
        kcb.GradientAdjustment(cfg.train.gradient_adjustment),
        kcb.StopOnNonFinite(hint),
        ValidateAP(data.val_ds, data.val_labels, cfg.train.validate_every, cfg.train.epochs,
                   run_dir / MODEL_BEST, progress.tracker, tb_dir=run_dir / TENSORBOARD_DIR / "validation"),
        HistoryLog(run_dir / HISTORY_FILE, progress.history),
        SaveState(run_dir / CHECKPOINT_DIR, data.sampler, progress.tracker, progress.history),
        keras.callbacks.TensorBoard(str(run_dir / TENSORBOARD_DIR), profile_batch=0),
    ]


def finish_run(model: SegDecNet, run_dir: Path, cfg: RunConfig, test: list[Sample],
               sampler: FrequencySampler) -> Path:
    """Evaluate the model ``cfg.train.test_model`` selects on the test split; save it carrying its
    threshold (and the final model), the sampler state and curves; mark the run finished.

    finished.json comes last: a run killed anywhere in here is unfinished, and ``--resume`` redoes this
    step from the last checkpoint (the weights after the last epoch), first deleting what an interrupted
    evaluation left.
    """
    # What an interrupted final evaluation left (it is redone, identically):
    for name in (*evaluate.OUTPUT_FILES, evaluate.FIGURES_DIR):
        remove(run_dir / name)
    which, tested = select_test_model(model, run_dir, cfg.train.test_model)
    record = {"test_model": which, "data_root": cfg.data.root, "run_data": True}  # the run's own test split
    metrics = evaluate.evaluate_model(tested, test, cfg.data, run_dir, batch_size=cfg.train.batch_size,
                                      record=record)
    tested.model.set_threshold(metrics["threshold"])  # the tested model's file carries its decision threshold
    for name, saved in {MODEL_FINAL: model, MODEL_FILES[which]: tested.model}.items():
        save_model(saved, run_dir / name)
    write_json(run_dir / SAMPLER_FILE, sampler.state_dict())
    plot_history(run_dir / HISTORY_FILE, run_dir / CURVES_FILE)
    write_json(run_dir / FINISHED_FILE, {"epochs": cfg.train.epochs, "test_ap": metrics["ap"],
                                         "test_model": which,
                                         "finished": datetime.now().isoformat(timespec="seconds")})
    log.info("Test %s (%s model); results in %s", summary_line(metrics), which, run_dir)
    return run_dir


def select_test_model(model: SegDecNet, run_dir: Path, which: str) -> tuple[str, KerasRunner]:
    """("final", model), or ("best", the best-validation model loaded from the run) for which="best",
    as a Keras runner (``.model`` is the Keras model)."""
    if which == "best" and (run_dir / MODEL_BEST).is_file():
        return "best", load(run_dir / MODEL_BEST, need_threshold=False)
    if which == "best":
        log.warning("No %s in %s (no validation AP was ever finite): testing the final model", MODEL_BEST,
                    run_dir)
    return "final", as_runner(model)
