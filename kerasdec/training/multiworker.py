"""``--distribute multiworker``: one ``kerasdec fit`` per worker, the cluster given by TF_CONFIG.

Keras 3's ``model.fit`` fails under ``tf.distribute.MultiWorkerMirroredStrategy`` (keras-team/keras
#20585: "Attempt to convert a value (PerReplica...) with an unsupported type"), so this mode drives
SegDecNet's own step in a small loop: every worker computes the gradients of the summed loss of ITS
share of the global batch (``SegDecNet.compute_step_gradients``), ``strategy.run`` sums gradients and
losses over the workers (collective all-reduce over gRPC), and each worker applies the same update to
its own copy of the model. The per-epoch work is the normal trainer's: the same callbacks
(``trainer.training_callbacks``: sampler epoch, λ, gradient multiplier, non-finite guard, validation,
history, checkpoint, TensorBoard) driven through a ``keras.callbacks.CallbackList``, and
``trainer.finish_run``.

The model lives outside the strategy's scope (plain variables, identical on every worker: same seed,
and the chief's weights are broadcast once), so validation, saving and the evaluation are those of a
single-machine run. The chief (``chief`` task, else worker 0) writes the run directory; the others
write the same files into a scratch folder that is removed at the end. ``--resume`` on every worker
reads the chief's run directory: it must be on a filesystem all workers share.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import keras
import tensorflow as tf

from kerasdec.config import RunConfig
from kerasdec.files import check_writable
from kerasdec.models.rowconv import released_custom_gradients
from kerasdec.recipes import resolve_epochs
from kerasdec.rundir import read_run_config, resolve_paths
from kerasdec.training import trainer
from kerasdec.training.cluster import TIMEOUT_ENV, Cluster, check_new_run, read_cluster
from kerasdec.training.resume import Progress, adopt_data, open_resumed, restore

log = logging.getLogger(__name__)


def requested(cfg: RunConfig, resume: Path | str | None) -> bool:
    """Whether this run (a new one, or the resumed run's own config.json) uses --distribute multiworker."""
    if resume is None:
        return cfg.train.distribute == "multiworker"
    try:
        stored = read_run_config(Path(resume).resolve())
    except ValueError:
        return False  # the normal path reports the damaged config.json
    return stored is not None and stored.train.distribute == "multiworker"


def fit(cfg: RunConfig, *, resume: Path | str | None = None, data_root: Path | str | None = None,
        callbacks: Sequence[keras.callbacks.Callback] = ()) -> Path:
    """``trainer.fit`` for one worker of the TF_CONFIG cluster; returns the (chief's) run directory.

    Raises:
        ValueError: a malformed TF_CONFIG or KERASDEC_CLUSTER_TIMEOUT, a port in use, no --run-dir;
            everything ``trainer.fit`` raises.
        ConnectionError: the peers were not reachable within the timeout, or a worker died.
    """
    if resume is not None:
        cluster, timeout = read_cluster()  # before TensorFlow runs: bad settings fail in a second
        run_dir, cfg = open_resumed(resume, data_root, tidy=cluster.is_chief)
    else:
        cluster, timeout = check_new_run(cfg.run_dir)
        cfg = resolve_paths(cfg)
        run_dir = Path(cfg.run_dir)
        if cluster.is_chief:
            trainer.check_run_dir_free(cfg.run_dir)
            check_writable(run_dir.parent)
    try:
        return _run(cluster, timeout, cfg, run_dir, resume, data_root, callbacks)
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError) as err:
        raise ConnectionError(
            f"Worker {cluster.rank} ({cluster.address}) lost its peers or did not reach them within "
            f"{timeout:g} s ({TIMEOUT_ENV}): {type(err).__name__}: {err.message.splitlines()[0]}; restart "
            f"every worker with `kerasdec fit --resume {run_dir}`") from err


def _run(cluster: Cluster, timeout: float, cfg: RunConfig, run_dir: Path, resume: Path | str | None,
         data_root: Path | str | None, callbacks: Sequence[keras.callbacks.Callback]) -> Path:
    with startup_watchdog(cluster, timeout):
        strategy = make_strategy(cluster, timeout)
    log.info("Worker %d of %d (%s, chief: %s)", cluster.rank, len(cluster.workers), cluster.address,
             cluster.is_chief)
    with trainer.precision_policy(cfg.train.precision), released_custom_gradients():
        keras.utils.set_random_seed(cfg.seed)
        data = trainer.prepare_data(cfg, shard=(cluster.rank, len(cluster.workers)))
        if resume is None:  # on every worker alike: they must agree on the number of epochs
            cfg = resolve_epochs(cfg, data.sampler.epoch_size)  # --steps → epochs, as trainer.fit does
        if resume is None and cluster.is_chief:
            run_dir, cfg = trainer.create_run(cfg, data.manifest)
        elif resume is not None:
            adopt_data(run_dir, cfg, data.manifest, moved=cluster.is_chief and data_root is not None)
        model = trainer.build_model(cfg)
        progress = restore(model, run_dir, data.sampler) if resume is not None else Progress()
        broadcast_from_chief(strategy, model, cluster.is_chief)
        if progress.epoch < cfg.train.epochs:
            out_dir = run_dir if cluster.is_chief else Path(tempfile.mkdtemp(prefix="kerasdec-worker-"))
            try:
                own = trainer.training_callbacks(cfg, out_dir, data, progress)
                train_epochs(model, make_train_step(model, strategy), data, cfg, progress,
                             [*own, *callbacks])
            finally:
                if not cluster.is_chief:
                    shutil.rmtree(out_dir, ignore_errors=True)
        if not cluster.is_chief:
            return run_dir
        return trainer.finish_run(model, run_dir, cfg, data.test, data.sampler)


@contextlib.contextmanager
def startup_watchdog(cluster: Cluster, timeout: float) -> Iterator[None]:
    """Bound joining the cluster by ``timeout`` seconds: the process then ends (SIGALRM, exit 142).

    TensorFlow waits for its peers inside C++ without releasing Python (no exception, no thread or
    signal handler runs meanwhile), so only the signal's default action can end the wait.
    """
    log.info("Joining the cluster %s as %s; giving up after %g s (%s)", list(cluster.workers),
             cluster.address, timeout, TIMEOUT_ENV)
    previous = signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def make_strategy(cluster: Cluster, timeout: float) -> tf.distribute.MultiWorkerMirroredStrategy:
    """MultiWorkerMirroredStrategy from TF_CONFIG whose waits are bounded by ``timeout`` seconds.

    The coordination service (TF's own, on the chief) gets ``timeout`` to see every worker register
    and at the final shutdown barrier; every collective (the gradient all-reduce) gets ``timeout``.
    """
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.eager import context

    milliseconds = int(timeout * 1000)
    leader = "chief" if "chief" in cluster.jobs else "worker"
    context.context().configure_coordination_service(
        service_type="standalone", service_leader=f"/job:{leader}/replica:0/task:0",
        cluster_register_timeout_in_ms=milliseconds, shutdown_barrier_timeout_in_ms=milliseconds,
        coordinated_jobs=[coordination_config_pb2.CoordinatedJob(name=job, num_tasks=len(addresses))
                          for job, addresses in cluster.jobs.items()])
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.RING, timeout_seconds=timeout)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    log.info("MultiWorkerMirroredStrategy over %d workers (peer timeout %g s)",
             strategy.num_replicas_in_sync, timeout)
    return strategy


def _all_reduce_sum(values: object) -> object:
    return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, values)


def _local(strategy: tf.distribute.Strategy, value: object) -> object:
    """The one local replica's value of a ``strategy.run`` result (one replica per worker)."""
    return tf.nest.map_structure(lambda v: strategy.experimental_local_results(v)[0], value)


def broadcast_from_chief(strategy: tf.distribute.Strategy, model: keras.Model, is_chief: bool) -> None:
    """Give every worker the chief's trainable weights (a sum in which the others contribute zeros)."""
    variables = model.trainable_variables

    def chiefs_weights():  # in the replica context: tensors on the worker's device
        mine = [tf.identity(v.value) if is_chief else tf.zeros(v.shape, v.dtype) for v in variables]
        return _all_reduce_sum(mine)

    @tf.function
    def broadcast():
        for variable, value in zip(variables, _local(strategy, strategy.run(chiefs_weights))):
            variable.assign(value)

    broadcast()


def make_train_step(model: keras.Model, strategy: tf.distribute.Strategy):
    """A compiled step: local gradients, summed over the workers, applied; returns the step's logs."""
    variables = model.trainable_variables

    def summed_gradients(batch):  # in the worker's replica context (its device scope)
        gradients, values = model.compute_step_gradients(batch)
        sums = {k: v for k, v in values.items() if k != "lambda"}  # λ is the same on every worker
        gradients, sums = _all_reduce_sum((gradients, sums))
        return gradients, {**sums, "lambda": values["lambda"]}

    @tf.function
    def step(batch):
        gradients, values = _local(strategy, strategy.run(summed_gradients, args=(batch,)))
        model.optimizer.apply(gradients, variables)
        return model._record_step(values)  # global-batch sums, as on one machine

    return step


def train_epochs(model: keras.Model, step, data: trainer.RunData, cfg: RunConfig, progress: Progress,
                 callbacks: list[keras.callbacks.Callback]) -> None:
    """The epochs from ``progress.epoch`` on, calling the callbacks where ``model.fit`` would."""
    hooks = keras.callbacks.CallbackList(callbacks, model=model)
    data.sampler.current_epoch = progress.epoch
    logs: dict[str, float] = {}
    hooks.on_train_begin()
    for epoch in range(progress.epoch, cfg.train.epochs):
        model.reset_metrics()
        hooks.on_epoch_begin(epoch)  # sets the sampler's epoch: the dataset's iterator reads it
        for batch_index, batch in enumerate(data.train_ds):
            hooks.on_train_batch_begin(batch_index)
            logs = {name: float(value) for name, value in step(batch).items()}
            hooks.on_train_batch_end(batch_index, logs)
        logs = dict(logs)
        hooks.on_epoch_end(epoch, logs)
        log.info("Epoch %d/%d: %s", epoch + 1, cfg.train.epochs,
                 ", ".join(f"{k} {v:.4g}" for k, v in logs.items()))
        if model.stop_training:
            break
    hooks.on_train_end(logs)
