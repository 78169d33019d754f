"""evaluate_model / evaluate_run on a tiny random SegDecNet: every file, its content and its links."""

from __future__ import annotations

import csv
import json
import logging
import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from kerasdec.config import RunConfig
from kerasdec.data.decode import read_mask
from kerasdec.data.sources import load_split
from kerasdec.evaluation.evaluate import evaluate_model, evaluate_run, new_folder, predict_samples
from kerasdec.evaluation.metrics import bootstrap_intervals, image_metrics

REQUIRED_KEYS = {"ap", "auc", "threshold", "fp", "fn", "fp_at_fn0", "tpr", "tnr", "n_pos", "n_neg",
                 "fp_at_05", "fn_at_05", "accuracy", "pixel_ap", "pixel_dice", "n_images",
                 "ap_ci95", "auc_ci95", "f_measure_ci95", "bootstrap"}


def _config(run) -> RunConfig:
    cfg = RunConfig.from_dict(json.loads((run.run_dir / "config.json").read_text()))
    return replace(cfg, data=replace(cfg.data, root=str(run.data.root)))


def _results(folder: Path) -> list[dict[str, str]]:
    with (folder / "results.csv").open(newline="") as f:
        return list(csv.DictReader(f))


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.rows = 0
        self.thumbs = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attrs = dict(attrs)
        self.links += [attrs[k] for k in ("src", "href") if k in attrs]
        self.thumbs += tag == "img" and attrs.get("class") == "thumb"
        self.rows += tag == "tr"


@pytest.fixture(scope="module")
def evaluated(tiny_run) -> Path:
    return evaluate_run(tiny_run.run_dir, data_root=tiny_run.data.root)


def test_evaluate_run_writes_every_file(tiny_run, evaluated):
    # -k suffix when another test (e.g. the CLI's) evaluated the shared run first
    assert evaluated.parent == tiny_run.run_dir
    assert re.fullmatch(r"evaluate-test-final(-\d+)?", evaluated.name)
    for name in ("metrics.json", "results.csv", "pr_curve.png", "roc_curve.png", "index.html"):
        assert (evaluated / name).is_file(), name
    metrics = json.loads((evaluated / "metrics.json").read_text())
    assert REQUIRED_KEYS <= set(metrics)
    assert (metrics["n_pos"], metrics["n_neg"], metrics["n_images"]) == (3, 3, 6)
    assert metrics["n_pixel_images"] == 5  # 3 ok (all-zero masks) + 2 masked; the unmasked defect is left out
    rows = _results(evaluated)
    recomputed = image_metrics([int(r["label"]) for r in rows], [float(r["score"]) for r in rows])
    assert {k: metrics[k] for k in recomputed} == recomputed
    intervals = bootstrap_intervals([int(r["label"]) for r in rows], [float(r["score"]) for r in rows])
    assert {k: metrics[k] for k in intervals} == intervals  # the images' own bootstrap, seed 0
    assert metrics["bootstrap"] == {"resamples": 2000, "seed": 0, "method": "stratified percentile"}
    for key in ("ap", "auc", "f_measure"):
        low, high = metrics[f"{key}_ci95"]
        assert 0.0 <= low <= metrics[key] <= high <= 1.0, key
    for name in ("pr_curve.png", "roc_curve.png"):
        assert cv2.imread(str(evaluated / name)).shape == (450, 450, 3)


def test_results_csv_rows(tiny_run, evaluated):
    rows = _results(evaluated)
    assert list(rows[0]) == ["name", "score", "label", "decision"]
    assert [r["name"] for r in rows] == tiny_run.data.names["test"]
    threshold = json.loads((evaluated / "metrics.json").read_text())["threshold"]
    for r in rows:
        assert int(r["label"]) == (r["name"] in tiny_run.data.positives)
        assert int(r["decision"]) == (float(r["score"]) >= threshold)


def test_figures_for_mistakes_and_sample(tiny_run, evaluated, tmp_path):
    figures = sorted((evaluated / "figures").iterdir())
    assert len(figures) == 6  # n_figures=20 > correct images: every image drawn
    for path in figures:
        # header 44 px over four 128×128 panels (64 px input scaled up to the 128 px minimum side)
        assert cv2.imread(str(path)).shape == (44 + 128, 4 * 128, 3)
    rows = _results(evaluated)
    mistakes = [i for i, r in enumerate(rows) if r["label"] != r["decision"]]
    cfg = _config(tiny_run)
    out = evaluate_model(tiny_run.model, load_split(cfg.data, "test", 0), cfg.data, tmp_path / "one",
                         n_figures=1)
    drawn = sorted(int(p.name[:5]) for p in (tmp_path / "one" / "figures").iterdir())
    assert set(mistakes) <= set(drawn) and len(drawn) == len(mistakes) + min(1, 6 - len(mistakes))
    assert out["fp"] + out["fn"] == len(mistakes)


def test_index_html_links_exist(evaluated):
    parser = _Links()
    parser.feed((evaluated / "index.html").read_text(encoding="utf-8"))
    assert parser.links, "the page links nothing"
    for link in parser.links:
        assert not link.startswith(("/", "http", "file:")), link
        assert (evaluated / link).is_file(), link
    assert parser.thumbs == 6
    assert {"metrics.json", "results.csv", "pr_curve.png", "roc_curve.png"} <= set(parser.links)
    html = (evaluated / "index.html").read_text(encoding="utf-8")
    assert "function sortBy" in html and "sortBy(1,true)" in html  # the score column sorts numerically
    metrics = json.loads((evaluated / "metrics.json").read_text())
    for key in ("ap", "auc", "f_measure"):  # each beside its value, as stored
        low, high = metrics[f"{key}_ci95"]
        assert f"<th>{key}</th><td>{metrics[key]:.4f}  (95% interval {low:.4f} to {high:.4f})</td>" in html
    assert "6 images: 3 defective, 3 defect-free. The 95% intervals" in html
    assert "over 2000 bootstrap resamples" in html and "seed 0" in html


def test_evaluate_run_equals_in_memory_evaluation(tiny_run, evaluated, tmp_path, caplog):
    """What fit writes (evaluate_model on the in-memory model) equals evaluate on the saved model."""
    cfg = _config(tiny_run)
    # fit evaluates with the training batch size; evaluate_run uses it too by default.
    with caplog.at_level(logging.INFO, logger="kerasdec.evaluation.evaluate"):
        direct = evaluate_model(tiny_run.model, load_split(cfg.data, "test", cfg.seed), cfg.data,
                                tmp_path / "e", batch_size=cfg.train.batch_size)
    low, high = direct["ap_ci95"]
    assert f"AP {direct['ap']:.4f} (95% {low:.2f}-{high:.2f}), AUC {direct['auc']:.4f} (95% " in caplog.text
    assert f"on 6 images (3 defective, 3 defect-free); written to {tmp_path / 'e'}" in caplog.text
    saved = json.loads((evaluated / "metrics.json").read_text())
    assert set(saved) == set(direct) | {"model", "split", "data_root", "run_data"}  # what evaluate records
    assert saved["run_data"] is None  # the tiny run has no samples.json: its data could not be checked
    for key, value in direct.items():
        if isinstance(value, (int, dict)):  # counts; the bootstrap's settings
            assert saved[key] == value, key
        else:  # TF/oneDNN outputs can differ by a float32 ulp between calls; pixel levels may flip
            assert saved[key] == pytest.approx(value, rel=1e-4 if key.startswith("pixel") else 1e-6), key
    assert [r["decision"] for r in _results(tmp_path / "e")] == [r["decision"] for r in _results(evaluated)]


def test_pixel_metrics_at_mask_size(tiny_run, evaluated):
    cfg = _config(tiny_run)
    samples = load_split(cfg.data, "test", cfg.seed)
    _, heatmaps = predict_samples(tiny_run.model, samples, cfg.data, batch_size=cfg.train.batch_size)
    labels, levels = [], []
    for sample, heat in zip(samples, heatmaps):
        if sample.is_positive and sample.mask_path is None:
            continue
        mask = read_mask(sample, (72, 88))
        up = cv2.resize(heat.astype(np.float32), (88, 72), interpolation=cv2.INTER_LINEAR)
        labels.append(mask.ravel() > 0)
        levels.append(np.minimum(np.floor(np.clip(up, 0, 1).astype(np.float64).ravel() * 10_000), 9_999))
    metrics = json.loads((evaluated / "metrics.json").read_text())
    expected = average_precision_score(np.concatenate(labels), np.concatenate(levels))
    assert metrics["pixel_ap"] == pytest.approx(expected, rel=1e-4)  # up to float32 ulps between calls
    assert 0.0 < metrics["pixel_dice"] <= 1.0


def test_new_folder_every_time_and_never_overwrite(tiny_run, evaluated, caplog, tmp_path):
    with caplog.at_level(logging.WARNING):
        first = evaluate_run(tiny_run.run_dir, data_root=tiny_run.data.root, split="val", which="best")
    assert first.name == "evaluate-test-best"  # the folder dataset validates on test
    assert "has no validation split" in caplog.text
    second = evaluate_run(tiny_run.run_dir, data_root=tiny_run.data.root, split="val", which="best")
    assert second.name == "evaluate-test-best-2" and (second / "metrics.json").is_file()
    (tmp_path / "e").mkdir()
    (tmp_path / "e-2").mkdir()
    assert new_folder(tmp_path, "e") == tmp_path / "e-3" and (tmp_path / "e-3").is_dir()
    cfg = _config(tiny_run)
    with pytest.raises(FileExistsError, match=r"already holds evaluation output \['metrics.json'"):
        evaluate_model(tiny_run.model, load_split(cfg.data, "test", 0), cfg.data, first)


def test_bad_arguments(tiny_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="moved-away"):  # the stored root is gone
        evaluate_run(tiny_run.run_dir)
    with pytest.raises(ValueError, match="split='train'; expected 'test' or 'val'"):
        evaluate_run(tiny_run.run_dir, split="train")
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        evaluate_run(tmp_path)
    cfg = _config(tiny_run)
    negatives = [s for s in load_split(cfg.data, "test", 0) if not s.is_positive]
    with pytest.raises(ValueError, match=r"only one class \(0 positive, 3 negative images\)"):
        evaluate_model(tiny_run.model, negatives, cfg.data, tmp_path / "neg")


def test_every_output_file_is_written_under_a_temporary_name_and_renamed(tiny_run, tmp_path, monkeypatch):
    import os

    renamed, real = [], os.replace

    def spy(src, dst):
        renamed.append(Path(dst))
        return real(src, dst)

    monkeypatch.setattr("kerasdec.files.os.replace", spy)
    cfg = _config(tiny_run)
    out = tmp_path / "e"
    evaluate_model(tiny_run.model, load_split(cfg.data, "test", cfg.seed), cfg.data, out,
                   batch_size=cfg.train.batch_size)
    written = {p for p in out.rglob("*") if p.is_file()}
    assert {p.name for p in written} >= {"metrics.json", "results.csv", "pr_curve.png", "roc_curve.png",
                                         "index.html"}
    assert any(p.parent.name == "figures" for p in written)
    assert written <= set(renamed)  # every file, figures included, arrived by a rename
    assert not [p for p in out.rglob("*") if p.name.startswith(".tmp-")]
