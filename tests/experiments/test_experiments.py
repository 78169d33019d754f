"""experiments/: the KSDD protocol end to end as a script, never overwriting, and the protocol plans."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fakes import write_ksdd

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
sys.path.insert(0, str(EXPERIMENTS))  # the scripts import their sibling module ``protocol``

import ablation  # noqa: E402
import dagm  # noqa: E402
import ksdd  # noqa: E402
import protocol  # noqa: E402

QUICK = ["--epochs", "1", "--width", "64", "--height", "64"]
N = 2  # positives per fold run: the fake has 4 per training fold (6 kos folders × 4 parts, 1 defective each)


def _script(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, str(EXPERIMENTS / name), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


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
    assert f"--out {out} already exists and is not empty" in again.stderr
    assert _snapshot(out) == before


def test_missing_positives_fail_before_any_run(ksdd_protocol, tmp_path, capsys):
    root, _, _ = ksdd_protocol
    out = tmp_path / "results"
    with pytest.raises(SystemExit) as exit_info:
        ksdd.main(["--data-root", str(root), "--out", str(out), "--positives", str(N), "33", *QUICK])
    assert exit_info.value.code == 1
    assert "positives=33 but only 4 positive training images are available" in capsys.readouterr().err
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
