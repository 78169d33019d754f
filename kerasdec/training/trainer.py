"""fit(config) → run directory: the one place that joins data, model and callbacks."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kerasdec.config import RunConfig
from kerasdec.data import pipeline, sources
from kerasdec.data.samples import Sample
from kerasdec.data.sampling import FrequencySampler
from kerasdec.models.segdec import SegDecNet
from kerasdec.rundir import (
    CHECKPOINT_DIR,
    CURVES_FILE,
    HISTORY_FILE,
    MODEL_BEST,
    MODEL_FINAL,
    SAMPLER_FILE,
    TENSORBOARD_DIR,
    new_run_folder,
    read_run_config,
    write_run_config,
)
from kerasdec.training import callbacks as kcb
from kerasdec.training.checkpoint import SaveState, load_state
from kerasdec.training.history import plot_history
from kerasdec.training.validation import ValidateAP

log = logging.getLogger(__name__)

def fit(cfg: RunConfig, *, resume: Path | str | None = None,
        callbacks: Sequence[keras.callbacks.Callback] = ()) -> Path:
    """Train SegDecNet end to end, evaluate it on the test split, and return the run directory.

    Args:
        cfg: the run's settings (ignored when resuming: the run's own config.json is used).
        resume: an interrupted run directory to continue after its last finished epoch.
        callbacks: extra Keras callbacks, run after kerasdec's own.

    Returns:
        The run directory (config.json, model_final.keras, model_best.keras, history.csv, curves.png,
        sampler.json, tensorboard/, checkpoint/, and the test evaluation: metrics.json, results.csv, ...).

    Raises:
        FileExistsError: the requested run directory exists, or the resumed run already finished.

    Example:
        >>> run_dir = fit(RunConfig())  # the synthetic default, a few minutes on a CPU
    """
    if resume is None:
        check_run_dir_free(cfg.run_dir)
    else:
        run_dir, cfg = open_resumed(resume)
    with precision_policy(cfg.train.precision):
        keras.utils.set_random_seed(cfg.seed)
        data = prepare_data(cfg)  # every file decoded once: bad data fails before a run folder exists
        if resume is None:
            run_dir, cfg = create_run(cfg)
        with make_strategy(cfg.train.distribute).scope():
            model = build_model(cfg)
        tracker: dict = {}
        initial_epoch = 0
        if resume is not None:
            state = load_state(model, run_dir / CHECKPOINT_DIR)
            data.sampler.load_state_dict(state["sampler"])
            tracker = {k: state[k] for k in ("best_val_ap", "best_epoch") if k in state}
            initial_epoch = state["epoch"] + 1
        data.sampler.current_epoch = initial_epoch  # Keras may open the first iterator before callbacks
        own = [
            kcb.SamplerEpoch(data.sampler),
            kcb.LossBalance(cfg.train.epochs, cfg.train.delta, cfg.train.dynamic_balance),
            kcb.GradientAdjustment(cfg.train.gradient_adjustment),
            ValidateAP(data.val_ds, data.val_labels, cfg.train.validate_every, cfg.train.epochs,
                       run_dir / MODEL_BEST, tracker, tb_dir=run_dir / TENSORBOARD_DIR / "validation"),
            SaveState(run_dir / CHECKPOINT_DIR, data.sampler, tracker),
            keras.callbacks.CSVLogger(str(run_dir / HISTORY_FILE), append=resume is not None),
            keras.callbacks.TensorBoard(str(run_dir / TENSORBOARD_DIR), profile_batch=0),
        ]
        log.info("Run directory %s", run_dir)
        model.fit(data.train_ds, epochs=cfg.train.epochs, initial_epoch=initial_epoch,
                  callbacks=[*own, *callbacks], shuffle=False,
                  verbose=1 if sys.stdout.isatty() else 2)  # the sampler already orders each epoch
        return finish_run(model, run_dir, cfg, data.test, data.sampler)


@dataclasses.dataclass
class RunData:
    """The data side of a run: the sampler, both datasets, the validation labels, the test samples."""

    sampler: FrequencySampler
    train_ds: tf.data.Dataset
    val_ds: tf.data.Dataset
    val_labels: np.ndarray
    test: list[Sample]


def prepare_data(cfg: RunConfig) -> RunData:
    """List the splits, check them, and build the sampler and datasets (decoding every image once)."""
    val_name = sources.validation_split(cfg.data)
    splits = {name: sources.load_split(cfg.data, name, cfg.seed) for name in ("train", val_name, "test")}
    for name in {val_name, "test"}:
        require_both_classes(splits[name], name)
    train, val = splits["train"], splits[val_name]
    sampler = FrequencySampler([s.is_positive for s in train], seed=cfg.seed,
                               frequency=cfg.data.frequency_sampling)
    train_ds = pipeline.make_train_dataset(train, cfg.data, cfg.train.batch_size, sampler)
    val_ds = pipeline.make_eval_dataset(val, cfg.data, cfg.train.batch_size)
    if val_name != "test":
        pipeline.check_decodable(splits["test"], cfg.data)
    log.info("Training on %d images (%d positive), validating on %s (%d images)", len(train),
             sum(s.is_positive for s in train), val_name, len(val))
    return RunData(sampler, train_ds, val_ds, np.array([s.is_positive for s in val]), splits["test"])


def finish_run(model: keras.Model, run_dir: Path, cfg: RunConfig, test: list[Sample],
               sampler: FrequencySampler) -> Path:
    """Save the final model, sampler state and curves; evaluate on the test split into run_dir."""
    from kerasdec.evaluation.evaluate import evaluate_model

    model.save(run_dir / MODEL_FINAL)
    (run_dir / SAMPLER_FILE).write_text(json.dumps(sampler.state_dict()))
    plot_history(run_dir / HISTORY_FILE, run_dir / CURVES_FILE)
    metrics = evaluate_model(model, test, cfg.data, run_dir, batch_size=cfg.train.batch_size)
    model.set_threshold(metrics["threshold"])  # deploy: the model file carries its decision threshold
    model.save(run_dir / MODEL_FINAL)  # again, now with the threshold (predict/export read it from here)
    log.info("Test AP %.4f, AUC %.4f (final model); results in %s", metrics["ap"], metrics["auc"], run_dir)
    return run_dir


def build_model(cfg: RunConfig) -> SegDecNet:
    """SegDecNet compiled with plain SGD and built (model and optimizer) so that fit traces once."""
    model = SegDecNet(input_channels=cfg.data.channels, gradient_adjustment=cfg.train.gradient_adjustment)
    jit = "auto" if cfg.train.jit is None else cfg.train.jit
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=cfg.train.lr), jit_compile=jit)
    model.build_for_training((cfg.data.height, cfg.data.width, cfg.data.channels))
    return model


def open_resumed(resume: Path | str) -> tuple[Path, RunConfig]:
    """An interrupted run directory and its own config (refused when missing or already finished)."""
    run_dir = Path(resume)
    stored = read_run_config(run_dir)
    if stored is None:
        raise FileNotFoundError(f"--resume {run_dir}: no config.json there; expected a run directory "
                                "written by `kerasdec fit`")
    if (run_dir / MODEL_FINAL).exists():
        raise FileExistsError(f"--resume {run_dir}: this run already finished (model_final.keras "
                              "exists); start a new run instead")
    return run_dir, stored


def check_run_dir_free(run_dir: str | None) -> None:
    """Refuse an explicit run directory that exists and holds anything: runs are never overwritten."""
    if run_dir is not None and Path(run_dir).exists() and any(Path(run_dir).iterdir()):
        raise FileExistsError(f"--run-dir {run_dir} already exists and is not empty; choose another "
                              f"folder, or continue that run with --resume {run_dir}")


def create_run(cfg: RunConfig) -> tuple[Path, RunConfig]:
    """Create the run directory (cfg.run_dir, or a new runs/<dataset>-<time>) and its config.json."""
    if cfg.run_dir is None:
        run_dir = new_run_folder(Path("runs"), cfg.data.dataset)
    else:
        check_run_dir_free(cfg.run_dir)
        run_dir = Path(cfg.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    cfg = dataclasses.replace(cfg, run_dir=str(run_dir))
    write_run_config(run_dir, cfg)
    return run_dir, cfg


def require_both_classes(samples: list[Sample], split: str) -> None:
    """AP needs positives and negatives: say so before training rather than after."""
    n_pos = sum(s.is_positive for s in samples)
    if n_pos == 0 or n_pos == len(samples):
        raise ValueError(f"The {split} split has {n_pos} defective and {len(samples) - n_pos} defect-free "
                         "images; evaluation needs both")


def make_strategy(distribute: str) -> tf.distribute.Strategy:
    """MirroredStrategy over all local GPUs for "mirrored", else the default (one device)."""
    if distribute == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
        log.info("MirroredStrategy over %d replicas", strategy.num_replicas_in_sync)
        return strategy
    return tf.distribute.get_strategy()


@contextlib.contextmanager
def precision_policy(precision: str) -> Iterator[str]:
    """Set the Keras dtype policy for the block ("auto": mixed_float16 on a GPU), then restore it."""
    if precision == "auto":
        precision = "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield precision
    finally:
        keras.config.set_dtype_policy(previous)
