"""Issue 20, family 3: a result says what data it came from. `kerasdec evaluate` checks the data against
the run's samples.json (as `fit --resume` does), evaluates other data only when asked (--other-data),
records the data root, and such an evaluation never gives a model its threshold: export takes a threshold
only from the run's own test evaluation (or --threshold) and names where it came from."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from fakes import write_folder

from kerasdec.cli import main
from kerasdec.data.sources import load_split
from kerasdec.files import write_json
from kerasdec.inference import runners
from kerasdec.inference.threshold import export_threshold, stored_threshold
from kerasdec.rundir import read_run_config


def _invoke(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def _one_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.fixture(scope="module")
def run(tiny_run, tmp_path_factory) -> Path:
    """The tiny run with the samples.json fit writes (its data at tiny_run.data.root) and fit's metrics.json:
    final is the tested model and carries no threshold here; model_best.keras was never evaluated."""
    run_dir = tmp_path_factory.mktemp("provenance") / "run"
    shutil.copytree(tiny_run.run_dir, run_dir, ignore=shutil.ignore_patterns("evaluate-*"))
    cfg = read_run_config(run_dir)
    data = dataclasses.replace(cfg.data, root=str(tiny_run.data.root))
    write_json(run_dir / "config.json", dataclasses.replace(cfg, data=data, run_dir=str(run_dir)).to_dict())
    write_json(run_dir / "samples.json", {split: [[s.name, s.is_positive, s.is_segmented]
                                                  for s in load_split(data, split, cfg.seed)]
                                          for split in ("train", "test")})
    write_json(run_dir / "metrics.json", {"test_model": "final", "threshold": 0.25, "ap": 1.0})
    return run_dir


@pytest.fixture(scope="module")
def other_root(tmp_path_factory) -> Path:
    """Another dataset of the same layout (other images, other counts)."""
    counts = {"train": (2, 2, 1), "test": (4, 2, 1)}
    return write_folder(tmp_path_factory.mktemp("other") / "data", counts=counts, shape=(72, 88), seed=7).root


def test_evaluate_refuses_data_that_is_not_the_runs(run, other_root):
    line = _one_line(_invoke("evaluate", run, "--data-root", other_root, "--model", "best"))
    # same names in part, but bad001 has no mask there: a different sample for the run ([name, label, mask])
    assert line == (f"Error: The data under {other_root.resolve()} is not this run's: its test split has 6 "
                    "images, the run was trained with 6 (e.g. 'test/defect/bad001' missing; see "
                    f"{run / 'samples.json'}); expected the run's data (--data-root where it is now), or "
                    "pass --other-data to evaluate other data (recorded as such; its threshold is never used "
                    "by export or predict)")
    assert not list(run.glob("evaluate-*"))


def test_other_data_is_evaluated_on_request_recorded_and_never_sets_a_threshold(run, other_root, tiny_run,
                                                                              tmp_path):
    # The sequence: evaluate RUN --data-root OTHER, then export RUN --model best.
    result = _invoke("evaluate", run, "--data-root", other_root, "--model", "best", "--other-data")
    assert result.exit_code == 0, result.output
    other = run / "evaluate-test-best"
    metrics = json.loads((other / "metrics.json").read_text())
    assert (metrics["run_data"], metrics["data_root"]) == (False, str(other_root.resolve()))
    assert (metrics["model"], metrics["split"]) == ("best", "test")
    assert stored_threshold(run / "model_best.keras") == (None, None)
    line = _one_line(_invoke("export", run, "--model", "best", "--out", tmp_path / "out"))
    assert line == (f"Error: {run / 'model_best.keras'} carries no decision threshold and its run has no "
                    "test evaluation of it on the run's own data; an export takes its threshold only from "
                    f"there: run `kerasdec evaluate {run} --model best` first, or give --threshold")
    assert not any((tmp_path / "out").glob("[0-9]*"))  # nothing published
    # predict still runs, at the default threshold, and says so (the runner records where it came from)
    assert runners.load(run, which="best").info.threshold_from == "default"

    # An evaluation of the run's own data gives model_best its threshold; export takes it from there.
    result = _invoke("evaluate", run, "--model", "best")  # config.json's root: the run's data
    assert result.exit_code == 0, result.output
    own = run / "evaluate-test-best-2" / "metrics.json"
    own_metrics = json.loads(own.read_text())
    assert (own_metrics["run_data"], own_metrics["data_root"]) == (True, str(tiny_run.data.root))
    assert stored_threshold(run / "model_best.keras") == (own_metrics["threshold"], own)
    assert export_threshold(run / "model_best.keras", None, None) == (own_metrics["threshold"], str(own))
    assert runners.load(run, which="best").info.threshold_from == str(own.resolve())


def test_export_takes_a_carried_threshold_or_the_argument_and_names_its_source(run, tmp_path):
    final = run / "model_final.keras"
    assert export_threshold(final, 0.25, None) == (0.25, str((run / "metrics.json").resolve()))  # fit's own
    assert export_threshold(final, 0.7, None) == (0.7, "model")  # carried, its evaluation not beside it
    assert export_threshold(final, 0.7, 0.4) == (0.4, "argument")
    lone = tmp_path / "model.keras"
    shutil.copy(final, lone)
    with pytest.raises(ValueError, match=r"model.keras carries no decision threshold .* or give --threshold"):
        export_threshold(lone, None, None)


def test_an_unchecked_evaluation_never_sets_a_threshold(run, tmp_path):
    old = tmp_path / "old-run"  # a run written before samples.json existed
    shutil.copytree(run, old, ignore=shutil.ignore_patterns("evaluate-*", "samples.json"))
    result = _invoke("evaluate", old, "--model", "best")
    assert result.exit_code == 0, result.output
    assert json.loads((old / "evaluate-test-best" / "metrics.json").read_text())["run_data"] is None
    assert stored_threshold(old / "model_best.keras") == (None, None)


def test_export_records_the_data_it_calibrates_and_checks_on(run, other_root, tiny_run, caplog):
    import logging

    from kerasdec.deploy import export

    cfg = read_run_config(run)
    assert export._data_record(cfg, None, run, ()) == {"data_root": str(tiny_run.data.root), "run_data": True}
    with caplog.at_level(logging.WARNING, logger="kerasdec.deploy.export"):
        record = export._data_record(cfg, other_root, run, ("int8",))
    assert record == {"data_root": str(other_root), "run_data": False}
    assert "The export calibrates and checks on it anyway" in caplog.text
