"""Evaluate a model on a split: metrics.json, results.csv, PR/ROC plots, per-image figures, index.html.

``evaluate_model`` is what ``kerasdec fit`` runs on the test split at the end of training;
``evaluate_run`` (``kerasdec evaluate RUN_DIR``) reloads a run's model and does the same into a new
folder of the run, so the two give the same numbers for the same model and split (up to the float32
rounding jitter of TensorFlow's CPU kernels between calls, ~1e-7 on a score). Every file is written
under a temporary name and renamed (kerasdec.files): a kill leaves whole files or none.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from kerasdec.config import DataConfig
from kerasdec.data.samples import Sample
from kerasdec.determinism import deterministic
from kerasdec.evaluation.metrics import bootstrap_intervals, image_metrics, summary_line
from kerasdec.evaluation.report import ImageRow, write_index
from kerasdec.files import new_folder, write_image, write_json, write_text
from kerasdec.inference.runners import as_runner, load, predict_batches
from kerasdec.rundir import (
    CONFIG_FILE,
    METRICS_FILE,
    RESULTS_FILE,
    SAMPLES_FILE,
    compare_samples,
    evaluation_folder,
    model_path,
    read_run_config,
    tested_model,
)

logger = logging.getLogger(__name__)

OUTPUT_FILES = (METRICS_FILE, RESULTS_FILE, "pr_curve.png", "roc_curve.png", "index.html")
FIGURES_DIR = "figures"


def predict_samples(model: Any, samples: Sequence[Sample], data_cfg: DataConfig, batch_size: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Scores (N,) and segmentation heatmaps (N, H/8, W/8) as probabilities, in sample order.

    ``model`` is a runner (any artifact) or a Keras SegDecNet; images are decoded as in training.
    """
    from kerasdec.data.pipeline import make_eval_dataset

    runner = as_runner(model, (data_cfg.height, data_cfg.width))
    return predict_batches(runner, make_eval_dataset(samples, data_cfg, batch_size))


def outcome(label: bool, decision: bool) -> str:
    """"TP", "FP", "FN" or "TN"."""
    return ("T" if label == decision else "F") + ("P" if decision else "N")


def has_pixel_truth(sample: Sample) -> bool:
    """Whether a ground-truth mask is known: a mask file or RLE, or a negative (all zero)."""
    return sample.mask_path is not None or bool(sample.rle) or not sample.is_positive


def choose_figures(tags: Sequence[str], n_figures: int, seed: int) -> list[int]:
    """Indices to draw: every mistake plus a seeded sample of ``n_figures`` correct images, sorted."""
    mistakes = [i for i, t in enumerate(tags) if t in ("FP", "FN")]
    correct = [i for i, t in enumerate(tags) if t in ("TP", "TN")]
    rng = np.random.default_rng(seed)
    picked = rng.choice(correct, size=min(n_figures, len(correct)), replace=False) if correct else []
    return sorted(mistakes + [int(i) for i in picked])


def _figure_name(index: int, name: str) -> str:
    return f"{FIGURES_DIR}/{index:05d}_{re.sub(r'[^A-Za-z0-9._-]+', '_', name)[:80]}.png"


def _draw(sample: Sample, image: np.ndarray, mask: np.ndarray | None, heatmap: np.ndarray, score: float,
          tag: str, threshold: float, data_cfg: DataConfig) -> np.ndarray:
    """The evaluation figure of one image, at the network's input size."""
    from kerasdec.data import targets
    from kerasdec.evaluation.figures import sample_figure

    size_wh = (data_cfg.width, data_cfg.height)
    shown = None if mask is None else cv2.resize(mask, size_wh, interpolation=cv2.INTER_NEAREST)  # (H, W)
    return sample_figure(targets.input_image(image, data_cfg), shown, heatmap, title=sample.name, tag=tag,
                         subtitle=f"score {score:.4f}  t={threshold:.3g}  {tag}")


def _pixels_and_figures(samples: Sequence[Sample], heatmaps: np.ndarray, scores: np.ndarray,
                        tags: Sequence[str], figure_ids: set[int], data_cfg: DataConfig, out: Path,
                        threshold: float) -> tuple[dict[str, Any], dict[int, str]]:
    """Accumulate pixel metrics over images with known masks and write the chosen figures.

    Pixel metrics are computed only when some positive has a mask; they are then taken over every
    image with a known mask (negatives count as all-zero masks), at the mask's original size.
    """
    from kerasdec.data.decode import read_image, read_mask
    from kerasdec.evaluation.pixel import PixelMetrics

    with_pixels = any(s.is_positive and has_pixel_truth(s) for s in samples)
    pixels, figures = PixelMetrics(), {}
    for i, sample in enumerate(samples):
        if not (i in figure_ids or (with_pixels and has_pixel_truth(sample))):
            continue
        image = read_image(sample.image_path, data_cfg.channels, data_cfg.max_pixels)  # (h, w, C) uint8
        mask = (read_mask(sample, image.shape[:2], max_pixels=data_cfg.max_pixels)
                if has_pixel_truth(sample) else None)  # (h, w) 0/255 at the original size
        if with_pixels and mask is not None:
            heat = cv2.resize(heatmaps[i].astype(np.float32), (mask.shape[1], mask.shape[0]),
                              interpolation=cv2.INTER_LINEAR)  # (h, w) at the mask's size
            pixels.update(mask, np.clip(heat, 0.0, 1.0))
        if i in figure_ids:
            figures[i] = _figure_name(i, sample.name)
            figure = _draw(sample, image, mask, heatmaps[i], float(scores[i]), tags[i], threshold, data_cfg)
            write_image(out / figures[i], figure)
    if not with_pixels:
        return {}, figures
    try:
        return pixels.result(), figures
    except ValueError as err:  # e.g. every mask empty: image-level results are still valid
        logger.warning("pixel metrics skipped: %s", err)
        return {}, figures


def _write_results(path: Path, samples: Sequence[Sample], scores: np.ndarray, decisions: np.ndarray) -> None:
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["name", "score", "label", "decision"])
    for sample, score, decision in zip(samples, scores, decisions):
        writer.writerow([sample.name, repr(float(score)), int(sample.is_positive), int(decision)])
    write_text(path, table.getvalue())


@deterministic()  # the same inputs give the same scores, whatever the load
def evaluate_model(model: Any, samples: Sequence[Sample], data_cfg: DataConfig, out_dir: Path | str, *,
                   batch_size: int = 8, n_figures: int = 20, seed: int = 0,
                   record: dict[str, Any] | None = None) -> dict[str, Any]:
    """Predict ``samples`` and write the evaluation files into ``out_dir``.

    Writes metrics.json (``image_metrics``, the 95% bootstrap intervals of ``bootstrap_intervals``,
    pixel_* keys when positives have masks, and n_images), results.csv (name, score, label, decision at
    the F-best threshold), pr_curve.png, roc_curve.png, figures/ (every FP and FN plus ``n_figures``
    seeded correct images) and index.html.

    Args:
        model: a runner (kerasdec/inference/runners.py) or a SegDecNet.
        samples: the images to evaluate; both classes must be present.
        data_cfg: the input size, channels and targets the model was trained with.
        out_dir: created if missing; may hold other files (a run directory) but none of OUTPUT_FILES.
        batch_size: prediction batch size (results depend on it only through float rounding).
        n_figures: how many correctly classified images get a figure besides the mistakes (default 20).
        seed: seeds the choice of those images (default 0).
        record: extra keys stored in metrics.json, e.g. which model of a run was tested.

    Returns:
        The metrics dict written to metrics.json.

    Raises:
        FileExistsError: ``out_dir`` already holds one of OUTPUT_FILES or figures/ (never overwritten).
        ValueError: only one class among ``samples``, or empty ``samples``.
    """
    out = Path(out_dir)
    existing = [n for n in (*OUTPUT_FILES, FIGURES_DIR) if (out / n).exists()]
    if existing:
        raise FileExistsError(f"{out} already holds evaluation output {existing}; expected a folder "
                              "without them (evaluation never overwrites): choose another out_dir")
    scores, heatmaps = predict_samples(model, samples, data_cfg, batch_size)
    labels = np.array([s.is_positive for s in samples])
    metrics: dict[str, Any] = image_metrics(labels, scores)
    metrics.update(bootstrap_intervals(labels, scores))  # 95% intervals over test images, fixed seed
    decisions = scores >= metrics["threshold"]
    tags = [outcome(bool(y), bool(d)) for y, d in zip(labels, decisions)]
    (out / FIGURES_DIR).mkdir(parents=True)
    figure_ids = set(choose_figures(tags, n_figures, seed))
    pixel, figures = _pixels_and_figures(samples, heatmaps, scores, tags, figure_ids, data_cfg, out,
                                         metrics["threshold"])
    metrics.update(pixel, n_images=len(samples))
    from kerasdec.evaluation.figures import plot_curves

    plot_curves(labels, scores, metrics, out)
    _write_results(out / RESULTS_FILE, samples, scores, decisions)
    written = {**metrics, **(record or {})}
    write_json(out / METRICS_FILE, written)
    rows = [ImageRow(s.name, float(sc), int(y), int(d), t, figures.get(i))
            for i, (s, sc, y, d, t) in enumerate(zip(samples, scores, labels, decisions, tags))]
    write_index(out, rows, metrics, title=f"kerasdec evaluation: {out.name}")
    logger.info("%s; written to %s", summary_line(metrics), out)
    return written


def evaluate_run(run_dir: Path | str, *, data_root: Path | str | None = None, split: str = "test",
                 which: str | None = None, batch_size: int | None = None, n_figures: int = 20,
                 other_data: bool = False) -> Path:
    """Evaluate a training run's model into a new folder run_dir/evaluate-<split>-<which>[-k].

    The samples found are checked against the run's samples.json, as ``fit --resume`` does: data that
    is not the run's is refused unless ``other_data``. metrics.json records the model, the split, the
    data root and ``run_data`` (True: the run's own samples; False: other data; None: a run without
    samples.json, unchecked). Only an evaluation with ``run_data`` True can give a model its threshold
    (kerasdec/inference/threshold.py).

    Args:
        run_dir: a folder written by ``kerasdec fit`` (config.json, model_final.keras, model_best.keras).
        data_root: overrides the dataset root stored in config.json (data moved or another machine).
        split: "test" or "val" ("val" falls back to the split training validated on, which is the
            test split for datasets without a validation split; the folder is named after the split used).
        which: "final" or "best" model; None = the one the run's test evaluation used.
        batch_size: prediction batch size; None = the run's training batch size, as ``fit`` uses for
            its test evaluation, so that the numbers match it to the last digit.
        n_figures: correctly classified images drawn besides the mistakes.
        other_data: evaluate data whose samples differ from the run's (``--other-data``).

    Returns:
        The new evaluation folder.

    Raises:
        FileNotFoundError: config.json or the model file is missing (message names it).
        ValueError: bad ``split`` or ``which``; a model file that is corrupt or not kerasdec's; data that
            is not the run's without ``other_data``.
        OSError: the run directory is read-only or the disk is full (no folder is left behind).
    """
    from kerasdec.data.sources import load_split, validation_split
    from kerasdec.models.saving import read_model_config

    run = Path(run_dir)
    which = tested_model(run) if which is None else which
    if split not in ("test", "val"):
        raise ValueError(f"split={split!r}; expected 'test' or 'val'")
    if which not in ("final", "best"):
        raise ValueError(f"which={which!r}; expected 'final' or 'best'")
    for needed in (run / CONFIG_FILE, model_path(run, which)):
        if not needed.is_file():
            raise FileNotFoundError(f"{needed} not found; expected a run directory written by kerasdec fit")
    read_model_config(model_path(run, which))  # a truncated or foreign model file fails first
    cfg = read_run_config(run)
    data_cfg = cfg.data if data_root is None else dataclasses.replace(
        cfg.data, root=str(Path(data_root).expanduser().resolve()))
    used = validation_split(data_cfg) if split == "val" else "test"
    if used != split:
        logger.warning("dataset %r has no validation split; evaluating on %r, as training validated",
                       data_cfg.dataset, used)
    samples = load_split(data_cfg, used, cfg.seed)
    record = {"model": which, "split": used, "data_root": data_cfg.root,
              "run_data": run_data(run, used, samples, data_cfg.root, other_data)}
    out = new_folder(run, evaluation_folder(used, which))  # before the slow steps: a read-only run fails now
    try:
        # At the run's input size (its data is prepared at that size); the threshold is the evaluation's own.
        runner = load(model_path(run, which), size_hw=(data_cfg.height, data_cfg.width), need_threshold=False)
        evaluate_model(runner, samples, data_cfg, out, batch_size=batch_size or cfg.train.batch_size,
                       n_figures=n_figures, seed=cfg.seed, record=record)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # a failed evaluation leaves no folder behind
        raise
    return out


def run_data(run: Path, split: str, samples: Sequence[Sample], root: str | None,
             other_data: bool) -> bool | None:
    """Whether ``samples`` are the run's own ``split`` (samples.json): True, False (only with
    ``other_data``, with a warning) or None (a run without samples.json: unchecked, with a warning).

    Raises:
        ValueError: the samples differ from the run's and ``other_data`` is False.
    """
    found = {split: [[s.name, s.is_positive, s.is_segmented] for s in samples]}
    own, difference = compare_samples(run, found, root)
    if own is None:
        logger.warning("%s has no %s (written by an older kerasdec): the data cannot be checked; this "
                       "evaluation will not give a model its threshold", run, SAMPLES_FILE)
        return None
    if own:
        return True
    if not other_data:
        raise ValueError(f"{difference}; expected the run's data (--data-root where it is now), or pass "
                         "--other-data to evaluate other data (recorded as such; its threshold is never "
                         "used by export or predict)")
    logger.warning("%s. Evaluating it anyway (--other-data): metrics.json records its root and "
                   "run_data false; its threshold is never used by export or predict", difference)
    return False

