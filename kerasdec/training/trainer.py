"""fit(config) → run directory: the one place that joins data, model and callbacks."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kerasdec.config import RunConfig
from kerasdec.data import pipeline, sources
from kerasdec.data.samples import Sample
from kerasdec.data.sampling import FrequencySampler
from kerasdec.data.sharding import ShardView
from kerasdec.models.rowconv import released_custom_gradients
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
    SAMPLER_FILE,
    SAMPLES_FILE,
    TENSORBOARD_DIR,
    atomic_path,
    check_writable,
    new_run_folder,
    remove,
    resolve_paths,
    write_json,
    write_run_config,
)
from kerasdec.training import callbacks as kcb
from kerasdec.training.checkpoint import SaveState, model_bytes
from kerasdec.training.history import HistoryLog, plot_history
from kerasdec.training.resume import Progress, adopt_data, open_resumed, restore
from kerasdec.training.validation import ValidateAP

log = logging.getLogger(__name__)

RUNS_DIR = Path("runs")  # parent of the run directories when --run-dir is not given


def fit(cfg: RunConfig, *, resume: Path | str | None = None, data_root: Path | str | None = None,
        callbacks: Sequence[keras.callbacks.Callback] = ()) -> Path:
    """Train SegDecNet end to end, evaluate it on the test split, and return the run directory.

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

    Example:
        >>> run_dir = fit(RunConfig())  # the synthetic default, a few minutes on a CPU
    """
    from kerasdec.training import multiworker  # imports this module

    if multiworker.requested(cfg, resume):
        return multiworker.fit(cfg, resume=resume, data_root=data_root, callbacks=callbacks)
    if resume is None:
        cfg = resolve_paths(cfg)
        check_run_dir_free(cfg.run_dir)
        check_writable(Path(cfg.run_dir).parent if cfg.run_dir else RUNS_DIR.resolve())
    else:
        run_dir, cfg = open_resumed(resume, data_root)
    with precision_policy(cfg.train.precision), released_custom_gradients():  # no model kept after fit
        keras.utils.set_random_seed(cfg.seed)
        data = prepare_data(cfg)  # every file decoded once: bad data fails before a run folder exists
        if resume is None:
            cfg = resolve_epochs(cfg, data.sampler.epoch_size)  # --steps → epochs, stored in config.json
            run_dir, cfg = create_run(cfg, data.manifest)
        else:
            adopt_data(run_dir, cfg, data.manifest, moved=data_root is not None)
        with make_strategy(cfg.train.distribute).scope():
            model = build_model(cfg)
        progress = Progress()
        if resume is not None:
            progress = restore(model, run_dir, data.sampler)
        if progress.epoch < cfg.train.epochs:  # else only the final save and evaluation are left to do
            data.sampler.current_epoch = progress.epoch  # Keras may open the first iterator before callbacks
            log.info("Run directory %s", run_dir)
            model.fit(data.train_ds, epochs=cfg.train.epochs, initial_epoch=progress.epoch,
                      callbacks=[*training_callbacks(cfg, run_dir, data, progress), *callbacks],
                      shuffle=False, verbose=1 if sys.stdout.isatty() else 2)  # the sampler orders epochs
        return finish_run(model, run_dir, cfg, data.test, data.sampler)


@dataclasses.dataclass
class RunData:
    """The data side of a run: the sampler, both datasets, the validation labels, the test samples."""

    sampler: FrequencySampler
    train_ds: tf.data.Dataset
    val_ds: tf.data.Dataset
    val_labels: np.ndarray
    test: list[Sample]
    manifest: dict[str, list]  # split -> [[name, is_positive, is_segmented], ...] (samples.json)


def prepare_data(cfg: RunConfig, shard: tuple[int, int] | None = None) -> RunData:
    """List the splits, check them, and build the sampler and datasets (decoding every image once).

    ``shard`` = (rank, n_workers): the training dataset holds only this worker's share of each global
    batch (kerasdec.data.sharding), batched per worker.
    """
    val_name = sources.validation_split(cfg.data)
    splits = {name: sources.load_split(cfg.data, name, cfg.seed) for name in ("train", val_name, "test")}
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


def finish_run(model: keras.Model, run_dir: Path, cfg: RunConfig, test: list[Sample],
               sampler: FrequencySampler) -> Path:
    """Evaluate the model ``cfg.train.test_model`` selects on the test split; save it carrying its
    threshold (and the final model), the sampler state and curves; mark the run finished.

    finished.json comes last: a run killed anywhere in here is unfinished, and ``--resume`` redoes this
    step from the last checkpoint (the weights after the last epoch), first deleting what an interrupted
    evaluation left.
    """
    from kerasdec.evaluation.evaluate import evaluate_model

    remove_evaluation(run_dir)  # what an interrupted final evaluation left
    which, tested = select_test_model(model, run_dir, cfg.train.test_model)
    metrics = evaluate_model(tested, test, cfg.data, run_dir, batch_size=cfg.train.batch_size,
                             record={"test_model": which})
    tested.set_threshold(metrics["threshold"])  # the tested model's file carries its decision threshold
    for name, saved in {MODEL_FINAL: model, MODEL_FILES[which]: tested}.items():
        with atomic_path(run_dir / name, size_hint=model_bytes(saved)) as tmp:
            saved.save(tmp)
    write_json(run_dir / SAMPLER_FILE, sampler.state_dict())
    plot_history(run_dir / HISTORY_FILE, run_dir / CURVES_FILE)
    write_json(run_dir / FINISHED_FILE, {"epochs": cfg.train.epochs, "test_ap": metrics["ap"],
                                         "test_model": which,
                                         "finished": datetime.now().isoformat(timespec="seconds")})
    log.info("Test AP %.4f, AUC %.4f (%s model); results in %s", metrics["ap"], metrics["auc"], which,
             run_dir)
    return run_dir


def select_test_model(model: keras.Model, run_dir: Path, which: str) -> tuple[str, keras.Model]:
    """("final", model), or ("best", the best-validation model loaded from the run) for which="best"."""
    if which == "best" and (run_dir / MODEL_BEST).is_file():
        from kerasdec.deploy.modelfile import load_model

        return "best", load_model(run_dir / MODEL_BEST)
    if which == "best":
        log.warning("No %s in %s (no validation AP was ever finite): testing the final model", MODEL_BEST,
                    run_dir)
    return "final", model


def remove_evaluation(run_dir: Path) -> None:
    """Delete the test-evaluation files of an unfinished run (they are redone, identically)."""
    from kerasdec.evaluation.evaluate import FIGURES_DIR, OUTPUT_FILES

    for name in (*OUTPUT_FILES, FIGURES_DIR):
        remove(run_dir / name)


def build_model(cfg: RunConfig) -> SegDecNet:
    """SegDecNet compiled with its optimizer (plain SGD as published, or Adam) and built (model and
    optimizer) so that fit traces once."""
    model = SegDecNet(input_channels=cfg.data.channels, gradient_adjustment=cfg.train.gradient_adjustment)
    jit = "auto" if cfg.train.jit is None else cfg.train.jit
    optimizers = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam}
    model.compile(optimizer=optimizers[cfg.train.optimizer](learning_rate=cfg.train.lr), jit_compile=jit)
    model.build_for_training((cfg.data.height, cfg.data.width, cfg.data.channels))
    return model


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
    previous, previous_floatx = keras.config.dtype_policy(), keras.config.floatx()
    keras.config.set_dtype_policy(precision)
    if precision == "float64":  # the optimizer's learning rate and the metrics take floatx
        keras.config.set_floatx("float64")
    try:
        yield precision
    finally:
        keras.config.set_dtype_policy(previous)
        keras.config.set_floatx(previous_floatx)
