"""``--distribute multiworker``: one ``kerasdec fit`` per worker, the cluster given by TF_CONFIG.

Keras 3's ``model.fit`` fails under ``tf.distribute.MultiWorkerMirroredStrategy`` (keras-team/keras
#20585: "Attempt to convert a value (PerReplica...) with an unsupported type"), so this mode drives
SegDecNet's own step in a small loop: every worker computes the gradients of the summed loss of ITS
share of the global batch (``SegDecNet.compute_step_gradients``), ``strategy.run`` sums gradients and
losses over the workers (collective all-reduce over gRPC), and each worker applies the same update to
its own copy of the model. Everything else is the run lifecycle of run.py, as on one machine: the
same callbacks (sampler epoch, λ, gradient multiplier, non-finite guard, validation, history,
checkpoint, TensorBoard), here driven through a ``keras.callbacks.CallbackList``, and the same finish.

The model lives outside the strategy's scope (plain variables, identical on every worker: same seed,
and the chief's weights are broadcast once), so validation, saving and the evaluation are those of a
single-machine run. The chief (``chief`` task, else worker 0) writes the run directory; the others
write the same files into a scratch folder that is removed at the end. ``--resume`` on every worker
reads the chief's run directory: it must be on a filesystem all workers share.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import keras
import tensorflow as tf

from kerasdec.config import RunConfig
from kerasdec.rundir import read_run_config
from kerasdec.training import run
from kerasdec.training.cluster import TIMEOUT_ENV, Cluster, check_new_run, read_cluster
from kerasdec.training.model import build_model
from kerasdec.training.resume import Progress
from kerasdec.training.run import RunData

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
    """``fit.fit`` for one worker of the TF_CONFIG cluster; returns the (chief's) run directory.

    Raises:
        ValueError: a malformed TF_CONFIG or KERASDEC_CLUSTER_TIMEOUT, a port in use, no --run-dir;
            everything ``fit.fit`` raises.
        ConnectionError: the peers were not reachable within the timeout, or a worker died.
    """
    # The cluster and the run's folder are checked before TensorFlow runs: bad settings fail in a second.
    cluster, timeout = read_cluster() if resume is not None else check_new_run(cfg.run_dir)
    start = run.open_run(cfg, resume, data_root, is_chief=cluster.is_chief)
    try:
        with startup_watchdog(cluster, timeout):
            strategy = make_strategy(cluster, timeout)
        log.info("Worker %d of %d (%s, chief: %s)", cluster.rank, len(cluster.workers), cluster.address,
                 cluster.is_chief)
        return run.run(start, StrategyLoop(cluster, strategy), callbacks)
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError) as err:
        raise ConnectionError(
            f"Worker {cluster.rank} ({cluster.address}) lost its peers or did not reach them within "
            f"{timeout:g} s ({TIMEOUT_ENV}): {type(err).__name__}: {err.message.splitlines()[0]}; restart "
            f"every worker with `kerasdec fit --resume {start.run_dir or start.cfg.run_dir}`") from err


class StrategyLoop:
    """A ``run.Loop``: the model outside the strategy's scope, each step summed over the workers."""

    def __init__(self, cluster: Cluster, strategy: tf.distribute.Strategy) -> None:
        self.strategy = strategy
        self.shard = (cluster.rank, len(cluster.workers))
        self.is_chief = cluster.is_chief

    def build(self, cfg: RunConfig) -> keras.Model:
        return build_model(cfg)  # plain variables, identical on every worker (same seed)

    def train(self, model: keras.Model, data: RunData, cfg: RunConfig, progress: Progress,
              callbacks: list[keras.callbacks.Callback]) -> None:
        broadcast_from_chief(self.strategy, model, self.is_chief)  # the chief's (restored) weights
        train_epochs(model, make_train_step(model, self.strategy), data, cfg, progress, callbacks)


# The watcher of startup_watchdog: a separate small process, because nothing in this one can run while
# TensorFlow waits. argv: parent pid, seconds, the line. Its stdin closes when the parent joined (or died).
_WATCHER = """
import os, select, signal, sys
pid, seconds, line = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
if not select.select([sys.stdin], [], [], seconds)[0]:
    sys.stderr.write(line + "\\n")
    sys.stderr.flush()
    try:
        os.kill(pid, signal.SIGALRM)
    except ProcessLookupError:
        pass
"""
WATCHDOG_GRACE_S = 10.0  # the process's own alarm, should the watcher not run, fires this much later


@contextlib.contextmanager
def startup_watchdog(cluster: Cluster, timeout: float) -> Iterator[None]:
    """Bound joining the cluster by ``timeout`` seconds: the process then ends (SIGALRM, exit 142) after
    one line on stderr saying which worker gave up on which peers.

    TensorFlow waits for its peers inside C++ without releasing Python (no exception, no thread or
    signal handler runs meanwhile), so only the signal's default action can end the wait, and the line
    comes from a watcher process started here, which sends the signal after writing it; the process's
    own alarm is the fallback. Leaving the block (joined, or failed otherwise) closes the watcher's
    stdin: it then ends without a word.
    """
    log.info("Joining the cluster %s as %s; giving up after %g s (%s)", list(cluster.workers),
             cluster.address, timeout, TIMEOUT_ENV)
    peers = [address for address in cluster.workers if address != cluster.address]
    line = (f"Error: worker {cluster.rank} ({cluster.address}) did not reach its peers {peers} within "
            f"{timeout:g} s ({TIMEOUT_ENV}); expected every worker of TF_CONFIG to be started within that "
            "time: start them, or raise the timeout")
    watcher = subprocess.Popen([sys.executable, "-c", _WATCHER, str(os.getpid()), str(timeout), line],
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    previous = signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.setitimer(signal.ITIMER_REAL, timeout + WATCHDOG_GRACE_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        watcher.stdin.close()
        try:
            watcher.wait(timeout=WATCHDOG_GRACE_S)
        except subprocess.TimeoutExpired:
            watcher.kill()


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
        return model.record_step(values)  # global-batch sums, as on one machine

    return step


def train_epochs(model: keras.Model, step, data: RunData, cfg: RunConfig, progress: Progress,
                 callbacks: list[keras.callbacks.Callback]) -> None:
    """The epochs from ``progress.epoch`` on, calling the callbacks where ``model.fit`` would."""
    hooks = keras.callbacks.CallbackList(callbacks, model=model)
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
