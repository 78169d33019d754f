"""The cluster of a multi-worker run, read from the standard ``TF_CONFIG`` variable and checked.

No TensorFlow here: a malformed or inconsistent TF_CONFIG fails within a second, with one line naming
the field, before TensorFlow starts (which would otherwise wait for peers that can never answer).

TF_CONFIG (one JSON object, the same ``cluster`` on every worker, its own ``task`` on each)::

    {"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type": "worker", "index": 0}}

Task types: ``worker`` and, optionally, one ``chief`` (without it, worker 0 is the chief).
"""

from __future__ import annotations

import json
import math
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from kerasdec.echo import SHOWN_CHARS, shown

TF_CONFIG = "TF_CONFIG"
TIMEOUT_ENV = "KERASDEC_CLUSTER_TIMEOUT"  # seconds to wait for peers (startup and every collective)
DEFAULT_TIMEOUT = 300.0
TASK_TYPES = ("chief", "worker")  # parameter servers and evaluators are not used by kerasdec


@dataclass(frozen=True)
class Cluster:
    """The checked cluster: ``jobs`` maps task type → addresses; this process is ``task_type:task_index``."""

    jobs: dict[str, tuple[str, ...]]
    task_type: str
    task_index: int

    @property
    def workers(self) -> tuple[str, ...]:
        """Every training task in rank order: the chief (if any), then the workers."""
        return (*self.jobs.get("chief", ()), *self.jobs.get("worker", ()))

    @property
    def rank(self) -> int:
        """This task's position in ``workers`` (0 = the chief)."""
        return self.task_index + (len(self.jobs.get("chief", ())) if self.task_type == "worker" else 0)

    @property
    def is_chief(self) -> bool:
        """The chief writes the run directory; every other worker writes only to a scratch folder."""
        return self.rank == 0

    @property
    def address(self) -> str:
        """This task's own host:port."""
        return self.jobs[self.task_type][self.task_index]


def _fail(field: str, reason: str) -> None:
    raise ValueError(f"{TF_CONFIG} {field}: {reason}")


def parse_tf_config(text: str | None) -> Cluster:
    """Parse and check a TF_CONFIG JSON string.

    Raises:
        ValueError: unset, not JSON, a missing or malformed ``cluster`` or ``task``, an unknown task
            type, an index out of range, a bad or repeated address (the message names the field).

    Example:
        >>> text = '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}'
        >>> parse_tf_config(text).rank
        1
    """
    if not text or not text.strip():
        _fail("is not set", "expected a JSON object with 'cluster' and 'task' (--distribute multiworker)")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        _fail("is not valid JSON", f"{err.msg} at character {err.pos}")
    except RecursionError:  # json.loads recurses per level of nesting
        _fail("is nested too deeply", "expected a JSON object with 'cluster' and 'task'")
    if not isinstance(config, dict):
        _fail("is not a JSON object", f"found {type(config).__name__}")
    jobs = _check_jobs(config.get("cluster"))
    task = config.get("task")
    if not isinstance(task, dict):
        _fail("'task'", f"missing or not an object (found {shown(task)}); expected "
              '{"type": "worker", "index": N}')
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in jobs:
        _fail("'task.type'", f"{shown(task_type)} is not a job of 'cluster' ({sorted(jobs)})")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(jobs[task_type]):
        _fail("'task.index'", f"{shown(index)} is out of range; 'cluster.{task_type}' has "
              f"{len(jobs[task_type])} address(es), so expected 0..{len(jobs[task_type]) - 1}")
    return Cluster(jobs, task_type, index)


def _check_jobs(cluster: object) -> dict[str, tuple[str, ...]]:
    if not isinstance(cluster, dict) or not cluster:
        _fail("'cluster'", f"missing or empty (found {shown(cluster)}); expected "
              '{"worker": ["host:port", ...]}')
    jobs: dict[str, tuple[str, ...]] = {}
    for job, addresses in cluster.items():
        if job not in TASK_TYPES:
            name = job if len(job) <= SHOWN_CHARS else shown(job)
            _fail(f"'cluster.{name}'", f"unsupported task type; expected some of {TASK_TYPES}")
        if not isinstance(addresses, list) or not addresses:
            _fail(f"'cluster.{job}'", f"expected a non-empty list of \"host:port\", found {shown(addresses)}")
        for i, address in enumerate(addresses):
            split_address(address, f"'cluster.{job}[{i}]'")
        jobs[job] = tuple(addresses)
    if len(jobs.get("chief", ())) > 1:
        _fail("'cluster.chief'", f"{len(jobs['chief'])} addresses; expected exactly one chief")
    seen: dict[str, str] = {}
    for job, addresses in jobs.items():
        for i, address in enumerate(addresses):
            if address in seen:
                _fail(f"'cluster.{job}[{i}]'", f"{address} is also {seen[address]}; each task needs its "
                      "own host:port")
            seen[address] = f"'cluster.{job}[{i}]'"
    return jobs


def split_address(address: object, field: str) -> tuple[str, int]:
    """"host:port" → (host, port); ValueError naming ``field`` otherwise."""
    host, _, port = address.rpartition(":") if isinstance(address, str) else ("", "", "")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        _fail(field, f"{shown(address)} is not \"host:port\" with a port in 1..65535")
    return host.strip("[]"), int(port)


def check_port_free(cluster: Cluster) -> None:
    """Fail now, naming the field, when this task's port is already taken on this machine.

    Raises:
        ValueError: another process listens on the port of ``cluster.address``.
    """
    field = f"'cluster.{cluster.task_type}[{cluster.task_index}]'"
    _, port = split_address(cluster.address, field)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a TIME_WAIT leftover is no conflict
        try:
            sock.bind(("", port))
        except OSError as err:
            _fail(field, f"port {port} of {cluster.address} is already in use on this machine "
                  f"({err.strerror}); stop what uses it or choose another port")


def cluster_timeout(environ: Mapping[str, str] | None = None) -> float:
    """Seconds a worker waits for its peers (KERASDEC_CLUSTER_TIMEOUT, default 300).

    Raises:
        ValueError: the variable is not a positive number.
    """
    value = (os.environ if environ is None else environ).get(TIMEOUT_ENV, "")
    if not value.strip():
        return DEFAULT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{TIMEOUT_ENV}={shown(value)}; expected a positive number of seconds")
    return seconds


def check_new_run(run_dir: str | None, environ: Mapping[str, str] | None = None) -> tuple[Cluster, float]:
    """``read_cluster`` for a new multi-worker run, which needs an explicit run directory.

    Raises:
        ValueError: no ``run_dir``; everything ``read_cluster`` raises.
    """
    if run_dir is None:
        raise ValueError("--distribute multiworker needs --run-dir: the chief writes the run there and every "
                         "worker resumes from it (a folder on a filesystem all workers share)")
    return read_cluster(environ)


def read_cluster(environ: Mapping[str, str] | None = None) -> tuple[Cluster, float]:
    """The checked cluster from TF_CONFIG (own port free) and the peer timeout, before TensorFlow starts."""
    environ = os.environ if environ is None else environ
    cluster = parse_tf_config(environ.get(TF_CONFIG))
    timeout = cluster_timeout(environ)
    check_port_free(cluster)
    return cluster, timeout
