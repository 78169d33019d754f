"""--distribute multiworker: two worker processes on 127.0.0.1 train exactly what one process trains.

Each worker is a fresh `kerasdec fit` process (MultiWorkerMirroredStrategy must be created before
TensorFlow runs any op), bounded in time and killed in a finally. One single-process run with the same
global batch is shared by the tests (module fixture).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest
from fakes import TINY_MODEL, write_folder

from kerasdec.config import DataConfig, RunConfig, TrainConfig

WORKER_TIMEOUT = 150  # s, per worker process (a 2-epoch run takes ~40 s here under load)
# A worker: `kerasdec fit` in a fresh process, on the tiny network (tests/fakes.py with_tiny_model)
WORKER = ("import kerasdec.cli as cli; from fakes import with_tiny_model; "
          "cli.build_fit_config = with_tiny_model(cli.build_fit_config); cli.main()")
FLAGS = ["--dataset", "folder", "--width", "64", "--height", "64", "--epochs", "2", "--lr", "0.01",
         "--batch-size", "3", "--validate-every", "1", "--seed", "5", "--dilate", "1", "--w-pos", "1"]
# 8 samples an epoch in global batches of 3, 3, 2: each worker takes 2 a step; worker 1 gets padding


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_folder(tmp_path_factory.mktemp("mw") / "data").root


@pytest.fixture(scope="module")
def reference(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same run on one machine, one process (= FLAGS, with the folder's default small recipe: its
    augmentation draws depend on seed, sample and epoch only, so the workers must draw them alike)."""
    from kerasdec.training.fit import fit

    cfg = RunConfig(data=DataConfig(dataset="folder", root=str(dataset), width=64, height=64,
                                    augment_geometry="flips", augment_jitter=0.1),
                    train=TrainConfig(epochs=2, lr=0.01, batch_size=3, validate_every=1), seed=5,
                    run_dir=str(tmp_path_factory.mktemp("mw") / "reference"), model=TINY_MODEL)
    return fit(cfg)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _pythonpath() -> str:
    """The checkout and tests/ (for fakes), then the caller's PYTHONPATH."""
    here = Path(__file__).parents
    return os.pathsep.join([str(here[2]), str(here[1]), os.environ.get("PYTHONPATH", "")])


def _start_workers(args: list[str], logs: Path, stack: ExitStack) -> list[subprocess.Popen]:
    """Two `kerasdec fit` workers on free local ports; each is killed when ``stack`` closes."""
    addresses = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    procs = []
    for index in range(2):
        scratch = logs / f"tmp{index}"  # the worker's TMPDIR: its scratch run folder goes here
        scratch.mkdir(parents=True, exist_ok=True)
        tf_config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TMPDIR": str(scratch),
               "KERASDEC_CLUSTER_TIMEOUT": "60", "TF_CPP_MIN_LOG_LEVEL": "2",
               "PYTHONPATH": _pythonpath()}
        out = open(logs / f"worker{index}.log", "w")
        stack.callback(out.close)
        proc = subprocess.Popen(["timeout", "-s", "KILL", str(WORKER_TIMEOUT), sys.executable, "-c", WORKER,
                                 "fit", *args],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        stack.callback(proc.wait)
        stack.callback(_kill, proc)
        procs.append(proc)
    return procs


def _signal(proc: subprocess.Popen, sig: int) -> None:
    """Signal the worker's process group (`timeout` and the Python process it runs)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass


def _kill(proc: subprocess.Popen) -> None:
    _signal(proc, signal.SIGKILL)


def _wait_all(procs: list[subprocess.Popen], logs: Path) -> None:
    for index, proc in enumerate(procs):
        code = proc.wait(timeout=WORKER_TIMEOUT + 10)
        assert code == 0, (logs / f"worker{index}.log").read_text()[-3000:]


def _wait_for(condition, procs: list[subprocess.Popen], timeout: float = WORKER_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "worker ended early"
        time.sleep(0.05)


def _weights(run_dir: Path) -> list[np.ndarray]:
    import keras

    import kerasdec.models.segdec  # noqa: F401  (registers the classes)

    return [w.numpy() for w in keras.saving.load_model(run_dir / "model_final.keras").weights]


def _layout(run_dir: Path) -> list[str]:
    """Relative paths; event files (named by time, host and pid) as their folder and a counter."""
    paths = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*"))
    return [str(Path(p).parent / "events") if "tfevents" in Path(p).name else p for p in paths]


def _history(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def _assert_same_run(run_dir: Path, reference: Path, resumed: bool = False) -> None:
    # Measured: 1.2e-7 at most. Float tolerance, as summed losses can amplify rounding: with a partial
    # last batch kept, the one-process run and its rerun with oneDNN's kernels off were 1.2e-4 apart.
    for a, b in zip(_weights(run_dir), _weights(reference), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    rows, expected = _history(run_dir), _history(reference)
    assert [r["epoch"] for r in rows] == [r["epoch"] for r in expected] == ["0", "1"]
    for row, want in zip(rows, expected):
        for column in ("loss", "seg_loss", "cls_loss", "lambda", "val_ap"):
            assert float(row[column]) == pytest.approx(float(want[column]), rel=1e-4, abs=1e-6), column
    if resumed:  # each process run adds its own TensorBoard event files, as on one machine
        assert sorted(set(_layout(run_dir))) == sorted(set(_layout(reference)))
    else:
        assert _layout(run_dir) == _layout(reference)


def test_two_workers_train_what_one_process_trains_and_only_the_chief_writes(dataset, reference, tmp_path):
    run_dir = tmp_path / "run"
    with ExitStack() as stack:
        procs = _start_workers([*FLAGS, "--data-root", str(dataset), "--distribute", "multiworker",
                                "--run-dir", str(run_dir)], tmp_path, stack)
        _wait_all(procs, tmp_path)
    for index in range(2):  # both print the run directory; the worker's scratch folder is gone
        assert (tmp_path / f"worker{index}.log").read_text().strip().splitlines()[-1] == str(run_dir)
        assert not list((tmp_path / f"tmp{index}").glob("kerasdec-worker-*"))
    assert json.loads((run_dir / "config.json").read_text())["train"]["distribute"] == "multiworker"
    _assert_same_run(run_dir, reference)  # one writer: one set of files, as on one machine


def test_a_killed_worker_then_both_resumed_continue_from_the_last_epoch(dataset, reference, tmp_path):
    run_dir = tmp_path / "run"
    with ExitStack() as stack:
        procs = _start_workers([*FLAGS, "--data-root", str(dataset), "--distribute", "multiworker",
                                "--run-dir", str(run_dir)], tmp_path / "first", stack)
        # Worker 1 is frozen once it ended epoch 1 (the chief cannot finish a step of epoch 2 without
        # it), then killed once the chief's checkpoint of epoch 1 is complete.
        _wait_for(lambda: "Epoch 1/2:" in (tmp_path / "first" / "worker1.log").read_text(), procs)
        _signal(procs[1], signal.SIGSTOP)
        _wait_for((run_dir / "checkpoint" / "epoch-0001").is_dir, procs[:1])
        _kill(procs[1])
        started = time.monotonic()
        code = procs[0].wait(timeout=WORKER_TIMEOUT)  # the chief notices that its peer is gone, and stops
        log = (tmp_path / "first" / "worker0.log").read_text()
        assert code != 0 and time.monotonic() - started < 70, log
        assert "lost its peers" in log and "restart every worker with `kerasdec fit --resume" in log
    assert not (run_dir / "finished.json").exists()
    with ExitStack() as stack:
        procs = _start_workers(["--resume", str(run_dir)], tmp_path / "second", stack)
        _wait_all(procs, tmp_path / "second")
    _assert_same_run(run_dir, reference, resumed=True)


def test_a_worker_whose_peers_never_come_gives_up_after_the_timeout(dataset, tmp_path):
    tf_config = {"cluster": {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]},
                 "task": {"type": "worker", "index": 0}}
    env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "KERASDEC_CLUSTER_TIMEOUT": "3",
           "PYTHONPATH": _pythonpath()}
    started = time.monotonic()
    command = ["timeout", "-s", "KILL", "60", sys.executable, "-c", "from kerasdec.cli import main; main()",
               "fit", *FLAGS, "--data-root", str(dataset), "--distribute", "multiworker", "--run-dir",
               str(tmp_path / "run")]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=70)
    assert result.returncode == -signal.SIGALRM or result.returncode == 128 + signal.SIGALRM, result.stderr
    assert "giving up after 3 s (KERASDEC_CLUSTER_TIMEOUT)" in result.stderr
    own, peer = tf_config["cluster"]["worker"]
    assert result.stderr.strip().splitlines()[-1] == (  # the last word is why it ended (issue 20)
        f"Error: worker 0 ({own}) did not reach its peers ['{peer}'] within 3 s (KERASDEC_CLUSTER_TIMEOUT); "
        "expected every worker of TF_CONFIG to be started within that time: start them, or raise the timeout")
    assert time.monotonic() - started < 40 and not (tmp_path / "run").exists()


@pytest.mark.parametrize("tf_config, message", [
    ("{", "TF_CONFIG is not valid JSON: Expecting property name enclosed in double quotes at character 1"),
    ("[]", "TF_CONFIG is not a JSON object: found list"),
    ('{"task": {"type": "worker", "index": 0}}', "TF_CONFIG 'cluster': missing or empty"),
    ('{"cluster": {"worker": ["a:1"]}}', "TF_CONFIG 'task': missing or not an object"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}',
     "TF_CONFIG 'task.type': 'chief' is not a job of 'cluster' (['worker'])"),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}',
     "TF_CONFIG 'task.index': 2 is out of range; 'cluster.worker' has 2 address(es), so expected 0..1"),
    ('{"cluster": {"worker": ["a:1", "a:1"]}, "task": {"type": "worker", "index": 0}}',
     "TF_CONFIG 'cluster.worker[1]': a:1 is also 'cluster.worker[0]'; each task needs its own host:port"),
    ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}',
     "TF_CONFIG 'cluster.worker[0]': 'a' is not \"host:port\" with a port in 1..65535"),
    ('{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}',
     "TF_CONFIG 'cluster.ps': unsupported task type; expected some of ('chief', 'worker')"),
    ('{"cluster": {"chief": ["a:1", "b:2"]}, "task": {"type": "chief", "index": 0}}',
     "TF_CONFIG 'cluster.chief': 2 addresses; expected exactly one chief"),
    (None, "TF_CONFIG is not set: expected a JSON object with 'cluster' and 'task'"),
])
def test_a_bad_tf_config_is_one_line_naming_the_field(tf_config, message):
    from kerasdec.training.cluster import parse_tf_config

    with pytest.raises(ValueError) as err:
        parse_tf_config(tf_config)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_ranks_chief_and_timeout():
    from kerasdec.training.cluster import DEFAULT_TIMEOUT, cluster_timeout, parse_tf_config

    text = '{"cluster": {"chief": ["c:1"], "worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}'
    cluster = parse_tf_config(text)
    assert (cluster.rank, cluster.is_chief, cluster.address, cluster.workers) == (2, False, "b:1",
                                                                                   ("c:1", "a:1", "b:1"))
    assert parse_tf_config(text.replace('"worker", "index": 1', '"chief", "index": 0')).is_chief
    assert cluster_timeout({}) == DEFAULT_TIMEOUT == 300
    assert cluster_timeout({"KERASDEC_CLUSTER_TIMEOUT": "7"}) == 7
    with pytest.raises(ValueError, match=r"KERASDEC_CLUSTER_TIMEOUT='-1'; expected a positive number"):
        cluster_timeout({"KERASDEC_CLUSTER_TIMEOUT": "-1"})


def test_cli_refuses_a_port_in_use_and_a_missing_run_dir_in_seconds(dataset, tmp_path):
    from click.testing import CliRunner

    from kerasdec.cli import main

    with socket.socket() as busy:
        busy.bind(("", 0))
        busy.listen()
        port = busy.getsockname()[1]
        tf_config = {"cluster": {"worker": [f"127.0.0.1:{port}", "127.0.0.1:1"]},
                     "task": {"type": "worker", "index": 0}}
        args = ["fit", *FLAGS, "--data-root", str(dataset), "--distribute", "multiworker"]
        started = time.monotonic()
        result = CliRunner().invoke(main, [*args, "--run-dir", str(tmp_path / "run")],
                                    env={"TF_CONFIG": json.dumps(tf_config)})
        assert result.exit_code == 1 and result.stderr.count("\n") == 1
        assert result.stderr.startswith(f"Error: TF_CONFIG 'cluster.worker[0]': port {port} of "
                                        f"127.0.0.1:{port} is already in use on this machine")
        result = CliRunner().invoke(main, args, env={"TF_CONFIG": json.dumps(tf_config)})
        assert result.exit_code == 1 and "--distribute multiworker needs --run-dir" in result.stderr
        assert time.monotonic() - started < 5 and not (tmp_path / "run").exists()


def test_each_worker_gets_its_slice_of_every_global_batch_padded_to_equal_length():
    from kerasdec.data.sharding import PAD, shard_indices

    indices = np.arange(10, 18)  # 8 samples, global batch 3: [10 11 12] [13 14 15] [16 17]
    shards = [shard_indices(indices, 3, rank, 2).tolist() for rank in range(2)]
    assert shards == [[10, 11, 13, 14, 16, 17], [12, PAD, 15, PAD, PAD, PAD]]
    assert shard_indices(indices, 4, 1, 4).tolist() == [11, 15]
    assert shard_indices(indices, 3, 1, 2, drop_last=True).tolist() == [12, PAD, 15, PAD]
