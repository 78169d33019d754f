"""experiments/: the KSDD protocol end to end as a script, never overwriting, and the protocol plans."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fakes import TINY_MODEL, with_tiny_model, write_ksdd

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
sys.path.insert(0, str(EXPERIMENTS))  # the scripts import their sibling module ``protocol``

import ablation  # noqa: E402
import dagm  # noqa: E402
import ksdd  # noqa: E402
import ksdd2  # noqa: E402
import mixed  # noqa: E402
import protocol  # noqa: E402
import severstal  # noqa: E402

QUICK = ["--epochs", "1", "--width", "64", "--height", "64"]
N = 2  # positives per fold run: the fake has 4 per training fold (6 kos folders × 4 parts, 1 defective each)


# `python experiments/NAME.py ARGS` on the tiny network: every run of a protocol comes from protocol.build,
# given TINY_MODEL by tests/fakes.py with_tiny_model before the script runs as __main__.
TINY_SCRIPT = """
import runpy, sys
sys.path[:0] = sys.argv[1:3]  # tests/ (fakes) and experiments/ (protocol, as the script imports it)
import protocol
from fakes import with_tiny_model
protocol.build = with_tiny_model(protocol.build)
sys.argv = sys.argv[3:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _script(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    paths = [str(Path(__file__).parents[1]), str(EXPERIMENTS)]
    return subprocess.run([sys.executable, "-c", TINY_SCRIPT, *paths, str(EXPERIMENTS / name), *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture
def tiny_protocols(monkeypatch: pytest.MonkeyPatch) -> None:
    """A protocol's main() called in this process trains the tiny network (as TINY_SCRIPT does)."""
    monkeypatch.setattr(protocol, "build", with_tiny_model(protocol.build))


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def ksdd_protocol(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """`python experiments/ksdd.py` on a fake KSDD (6 folders × 4 parts; every fold's train and test
    hold both classes), one N, one epoch at 64×64: (data root, OUT, the finished process)."""
    work = tmp_path_factory.mktemp("ksdd_protocol")
    root = write_ksdd(work / "KSDD", n_folders=6, parts=4).root
    out = work / "results"
    done = _script("ksdd.py", "--data-root", str(root), "--out", str(out), "--positives", str(N), *QUICK,
                   cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]
    return root, out, done


def test_ksdd_protocol_joins_three_fold_runs_into_the_table(ksdd_protocol):
    root, out, done = ksdd_protocol
    assert done.stdout.strip().splitlines()[-1] == str(out / "table.md")
    runs = [out / f"ksdd-N{N}-fold{k}" for k in range(3)]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [r.name for r in runs]
    tested = []
    for k, run in enumerate(runs):
        cfg = json.loads((run / "config.json").read_text())
        assert (cfg["data"]["fold"], cfg["data"]["positives"], cfg["train"]["epochs"]) == (k, N, 1)
        assert cfg["model"]["seg_filters"] == list(TINY_MODEL.seg_filters)  # TINY_SCRIPT's
        assert (cfg["data"]["width"], cfg["data"]["height"], cfg["data"]["root"]) == (64, 64, str(root))
        with open(run / "results.csv", newline="") as f:
            tested += [r["name"] for r in csv.DictReader(f)]
    assert sorted(tested) == sorted(f"kos{i:02d}/Part{k}" for i in range(1, 7) for k in range(4))
    folds = [json.loads((run / "metrics.json").read_text()) for run in runs]
    with open(out / "table.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert list(row) == ["N", "AP", "AUC", "FP", "FN", "published AP"]
    assert int(row["N"]) == N and row["published AP"] == "–"  # the paper has no N = 2
    assert float(row["AP"]) == pytest.approx(100 * np.mean([m["ap"] for m in folds]), abs=1e-9)
    assert float(row["AUC"]) == pytest.approx(100 * np.mean([m["auc"] for m in folds]), abs=1e-9)
    assert int(row["FP"]) == sum(m["fp"] for m in folds)
    assert int(row["FN"]) == sum(m["fn"] for m in folds)
    ap = 100 * np.mean([m["ap"] for m in folds])
    assert f"| {N} | {ap:.2f} |" in (out / "table.md").read_text()


def test_ksdd_protocol_never_overwrites_out(ksdd_protocol):
    root, out, _ = ksdd_protocol
    before = _snapshot(out)
    again = _script("ksdd.py", "--data-root", str(root), "--out", str(out), "--positives", str(N), *QUICK,
                    cwd=out.parent)
    assert again.returncode == 1
    assert f"--out {out} holds a finished protocol (table.md)" in again.stderr
    assert _snapshot(out) == before


def test_out_holding_another_plan_is_refused(tmp_path):
    def rows(n: int) -> list:
        return ksdd.plan(ksdd.make_parser().parse_args(["--data-root", "D", "--out", "x", "--positives",
                                                        str(n)]))

    out = tmp_path / "out"
    protocol.open_out(out, rows(2))
    assert json.loads((out / "protocol.json").read_text())["ksdd-N2-fold0"]["data"]["positives"] == 2
    protocol.open_out(out, rows(2))  # the same plan: resumable
    with pytest.raises(FileExistsError, match=r"holds another plan .*\['ksdd-N2-fold0', 'ksdd-N2-fold1'"):
        protocol.open_out(out, rows(3))
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"already exists and is not empty \(no protocol.json\)"):
        protocol.open_out(tmp_path / "foreign", rows(2))


def test_missing_positives_fail_before_any_run(ksdd_protocol, tmp_path, capsys):
    root, _, _ = ksdd_protocol
    out = tmp_path / "results"
    with pytest.raises(SystemExit) as exit_info:
        ksdd.main(["--data-root", str(root), "--out", str(out), "--positives", str(N), "33", *QUICK])
    assert exit_info.value.code == 1
    assert "positives=33 kos folders but only 4 training folders" in capsys.readouterr().err
    assert not out.exists()


SWITCHES = [("train", "dynamic_balance"), ("train", "gradient_adjustment"), ("data", "frequency_sampling"),
            ("data", "weighted_seg")]


def _flat(cfg) -> dict[tuple[str, str], object]:
    return {(section, k): v for section, values in cfg.to_dict().items() if isinstance(values, dict)
            for k, v in values.items()}


def test_ablation_rows_differ_exactly_in_the_four_switches_added_in_order(tmp_path):
    args = ablation.make_parser().parse_args(["--dataset", "ksdd", "--data-root", "D", "--out", "x"])
    rows = ablation.plan(args)
    assert [r.label["switches"] for r in rows] == [
        "none", "+ dynamic balance", "+ gradient adjustment", "+ frequency sampling",
        "+ distance-transform weights"]
    assert [len(r.runs) for r in rows] == [3] * 5  # the three KSDD folds per row
    for k in range(3):
        flats = [_flat(list(r.runs.values())[k]) for r in rows]
        assert all(not flats[0][s] for s in SWITCHES)
        for i in range(4):
            changed = {key for key in flats[i] if flats[i][key] != flats[i + 1][key]}
            assert changed == {SWITCHES[i]} and flats[i + 1][SWITCHES[i]] is True
        full = protocol.build("ksdd", args, 33, fold=k)  # the published preset, all switches on
        assert flats[4] == _flat(full) and full.data.fold == k and full.train.epochs == 35
    assert rows[0].published == {"AP": 99.77, "FP": 0, "FN": 1} and rows[2].published == {}
    with pytest.raises(ValueError, match="n_on=5; expected 0..4"):
        ablation.with_switches(full, 5)


def test_dagm_plan_adds_a_joined_row_that_reuses_the_class_runs():
    args = dagm.make_parser().parse_args(["--data-root", "D", "--out", "x", "--categories", "1", "3",
                                          "--epochs", "2"])
    rows = dagm.plan(args)
    assert [r.label["class"] for r in rows] == [1, 3, "all"]
    runs = protocol.unique_runs(rows)
    assert list(runs) == ["dagm-class1", "dagm-class3"]
    assert [cfg.data.category for cfg in runs.values()] == [1, 3]
    assert all(cfg.train.epochs == 2 and cfg.train.lr == 0.01 for cfg in runs.values())
    clash = dataclasses.replace(rows[0], runs={"dagm-class1": runs["dagm-class3"]})
    with pytest.raises(ValueError, match="run name 'dagm-class1' is used for two different configs"):
        protocol.unique_runs([rows[0], clash])


def test_resume_skips_finished_runs_and_completes_an_interrupted_one(ksdd_protocol, tmp_path):
    """A copy of the finished protocol, as if killed during fold 2's final evaluation: the second call
    keeps folds 0 and 1 untouched, completes fold 2 from its checkpoint and writes the table."""
    root, out, _ = ksdd_protocol
    again = tmp_path / "results"
    shutil.copytree(out, again)
    for name in ("table.md", "table.csv", "summary.json", f"ksdd-N{N}-fold2/finished.json",
                 f"ksdd-N{N}-fold2/metrics.json"):
        (again / name).unlink()
    before = _snapshot(again)
    done = _script("ksdd.py", "--data-root", str(root), "--out", str(again), "--positives", str(N), *QUICK,
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    after = _snapshot(again)
    for k in (0, 1):  # finished runs: not a byte rewritten
        kept = {p: v for p, v in before.items() if p.startswith(f"ksdd-N{N}-fold{k}/")}
        assert kept and all(after[p] == v for p, v in kept.items())
    assert (again / f"ksdd-N{N}-fold2" / "finished.json").is_file()
    assert "was interrupted: resuming it" in done.stderr
    history = (again / f"ksdd-N{N}-fold2" / "history.csv").read_text().splitlines()
    assert len(history) == 2  # one epoch, not trained again
    assert (again / "table.md").read_text() == (out / "table.md").read_text().replace(str(out), str(again))


def test_split_dir_gives_each_row_its_published_file(tmp_path):
    for name in ("KSDD/split_10_10.pyb", "STEEL/split_1000_1000.pyb", "KSDD2/split_16.pyb",
                 "DAGM/split_5.pyb", "KSDD/split_33_0.pyb"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    base = ["--data-root", "D", "--out", "x", "--split-dir", str(tmp_path)]
    rows = ksdd.plan(ksdd.make_parser().parse_args([*base, "--positives", "10"]))
    for k, cfg in enumerate(rows[0].runs.values()):
        assert cfg.data.split_file == str(tmp_path / "KSDD/split_10_10.pyb") and cfg.data.fold == k
        assert (cfg.data.positives, cfg.train.epochs) == (None, 90)  # the file fixes images, N epochs
    sev_rows = severstal.plan(severstal.make_parser().parse_args([*base, "--positives", "1000"]))
    (sev,) = sev_rows[0].runs.values()
    assert sev.data.split_file.endswith("STEEL/split_1000_1000.pyb") and sev.train.test_model == "best"
    ab = ablation.plan(ablation.make_parser().parse_args([*base, "--dataset", "severstal"]))
    assert all(c.data.split_file.endswith("split_1000_1000.pyb") and c.train.epochs == 50
               for r in ab for c in r.runs.values())
    with pytest.raises(FileNotFoundError, match=r"KSDD/split_5_5.pyb: no such published split file"):
        ksdd.plan(ksdd.make_parser().parse_args([*base, "--positives", "5"]))


def test_mixed_sweep_levels_presets_and_split_files(tmp_path):
    for name in ("KSDD2/split_0.pyb", "KSDD2/split_16.pyb", "KSDD/split_33_0.pyb"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    args = mixed.make_parser().parse_args(["--dataset", "ksdd2", "--data-root", "D", "--out", "x"])
    rows = mixed.plan(args)
    assert [r.label["segmented"] for r in rows] == [0, 16, 53, 126, 246, "full"]
    cfgs = [next(iter(r.runs.values())) for r in rows]
    assert [c.data.segmented for c in cfgs] == [0, 16, 53, 126, 246, None]
    assert [c.train.dynamic_balance for c in cfgs] == [False] + [True] * 5  # M = 0: no dynamic balance
    assert rows[-1].published == {"AP": 95.4} and cfgs[0].data.decision_target == "mask_max"
    split = mixed.make_parser().parse_args(["--dataset", "ksdd2", "--data-root", "D", "--out", "x",
                                            "--split-dir", str(tmp_path), "--segmented", "0", "16", "full"])
    files = [next(iter(r.runs.values())).data.split_file for r in mixed.plan(split)]
    assert files == [str(tmp_path / "KSDD2/split_0.pyb"), str(tmp_path / "KSDD2/split_16.pyb"), None]
    k = mixed.plan(mixed.make_parser().parse_args(["--dataset", "ksdd", "--data-root", "D", "--out", "x",
                                                   "--split-dir", str(tmp_path), "--segmented", "0"]))
    fold0 = k[0].runs["ksdd-M0-fold0"]
    assert fold0.data.split_file.endswith("KSDD/split_33_0.pyb")
    assert (fold0.train.lr, fold0.train.delta, fold0.train.dynamic_balance) == (0.01, 1.0, False)


def test_every_protocol_runs_as_a_module(tmp_path, capsys):
    # `kerasdec experiment` is gone (the library never imports experiments/): each protocol is
    # `python -m experiments.NAME` (or `python experiments/NAME.py`) from a checkout.
    env = {**os.environ, "PYTHONPATH": str(EXPERIMENTS.parent)}
    done = subprocess.run([sys.executable, "-m", "experiments.mixed", "--help"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--split-dir" in done.stdout and "--segmented" in done.stdout
    for module in (ksdd, ksdd2, dagm, severstal, ablation, mixed):
        with pytest.raises(SystemExit) as stopped:
            module.main(["--help"])
        assert stopped.value.code == 0 and "--split-dir" in capsys.readouterr().out, module.__name__
    out = tmp_path / "k2"
    with pytest.raises(SystemExit) as stopped:
        ksdd2.main(["--data-root", str(tmp_path / "none"), "--out", str(out)])
    assert stopped.value.code == 1 and not out.exists()  # the data is checked before anything is written


def test_smoke_runs_the_whole_protocol_on_synthetic_data(synthetic_root, tmp_path, tiny_protocols):
    """`python -m experiments.mixed --smoke`: three KSDD2 rows, one synthetic run (their settings are equal
    once on synthetic data; M = 0 would add a second run, without dynamic balance), a table."""
    out = tmp_path / "smoke"
    table = mixed.main(["--dataset", "ksdd2", "--smoke", "--segmented", "16", "53", "full", "--data-root",
                        str(synthetic_root), "--out", str(out)])
    assert table == out / "table.md"
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["smoke-1"]
    run = json.loads((out / "smoke-1" / "config.json").read_text())
    assert (run["data"]["dataset"], run["data"]["width"], run["train"]["epochs"]) == ("synthetic", 64, 1)
    assert run["model"]["seg_filters"] == list(TINY_MODEL.seg_filters)
    metrics = json.loads((out / "smoke-1" / "metrics.json").read_text())
    with open(out / "table.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["segmented"] for r in rows] == ["16", "53", "full"]
    assert all(float(r["AP"]) == pytest.approx(100 * metrics["ap"]) for r in rows)
    assert "SMOKE RUN" in (out / "table.md").read_text()
