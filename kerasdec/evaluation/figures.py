"""Pictures: heatmap overlays, per-image evaluation panels (OpenCV) and PR/ROC plots (matplotlib).

Per-image panels are composed with OpenCV (fast, no figure state); the two curve plots use
matplotlib's object API on an Agg canvas created inside the function, so importing this module never
selects a matplotlib backend and no pyplot global state is touched.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from kerasdec.evaluation.metrics import pr_points, roc_points
from kerasdec.files import atomic_path

logger = logging.getLogger(__name__)

TAG_COLOURS = {"TP": (0, 160, 0), "TN": (90, 90, 90), "FP": (0, 0, 220), "FN": (0, 120, 255)}  # BGR
FONT = cv2.FONT_HERSHEY_SIMPLEX


def to_bgr(image: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1) grayscale or (H, W, 3) RGB uint8 → (H, W, 3) BGR uint8 for OpenCV."""
    image = np.asarray(image, dtype=np.uint8)
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)


def heatmap_colours(heatmap: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Defect probabilities (h, w[, 1]) in [0, 1] → JET colours (H, W, 3) BGR at ``size_hw`` (bilinear)."""
    heat = np.asarray(heatmap, dtype=np.float32).reshape(np.shape(heatmap)[:2])
    heat = cv2.resize(heat, (size_hw[1], size_hw[0]), interpolation=cv2.INTER_LINEAR)
    return cv2.applyColorMap(np.clip(heat * 255.0 + 0.5, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """Blend the heatmap's colours over an image, at the image's size.

    Args:
        image: (H, W), (H, W, 1) or RGB (H, W, 3) uint8.
        heatmap: (h, w[, 1]) probabilities in [0, 1], any size (upsampled bilinearly to H × W).
        alpha: weight of the heatmap colours (default 0.4).

    Returns:
        (H, W, 3) BGR uint8, ready for cv2.imwrite.
    """
    base = to_bgr(image)
    colours = heatmap_colours(heatmap, base.shape[:2])
    return cv2.addWeighted(base, 1.0 - alpha, colours, alpha, 0.0)


def put_label(image: np.ndarray, text: str, colour: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Write one line of text at the top left, on a dark box, in place; returns the image."""
    scale = max(0.35, min(1.0, image.shape[1] / 640))
    (w, h), base = cv2.getTextSize(text, FONT, scale, 1)
    cv2.rectangle(image, (0, 0), (min(w + 6, image.shape[1]), h + base + 6), (0, 0, 0), cv2.FILLED)
    cv2.putText(image, text, (3, h + 3), FONT, scale, colour, 1, cv2.LINE_AA)
    return image


def _panel_size(size_hw: tuple[int, int], min_side: int, max_side: int) -> tuple[int, int]:
    """Scale so the longer side lies within [min_side, max_side], keeping the aspect ratio."""
    h, w = size_hw
    scale = min(max(max(h, w), min_side), max_side) / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def sample_figure(image: np.ndarray, mask: np.ndarray | None, heatmap: np.ndarray, *, title: str,
                  subtitle: str, tag: str, min_side: int = 128, max_side: int = 384) -> np.ndarray:
    """Four panels (input, ground truth, heatmap, overlay) under a two-line header.

    Panels are placed in a row for tall or square images and in a column for wide ones.

    Args:
        image: (H, W, C) uint8 network input (grayscale or RGB).
        mask: (H, W) ground truth (nonzero = defect), or None when the image has no pixel label
            (the panel then says so).
        heatmap: (h, w[, 1]) segmentation probabilities in [0, 1].
        title: first header line (the image name).
        subtitle: second header line (score, threshold, tag).
        tag: "TP", "FP", "FN" or "TN": colours the header.
        min_side: the longer side of a panel is at least this many pixels (default 128).
        max_side: and at most this many (default 384).

    Returns:
        (rows, cols, 3) BGR uint8 figure.
    """
    ph, pw = _panel_size(image.shape[:2], min_side, max_side)
    base = cv2.resize(to_bgr(image), (pw, ph), interpolation=cv2.INTER_LINEAR)
    if mask is None:
        truth = np.full_like(base, 40)
        put_label(truth, "no mask")
    else:
        truth = cv2.resize(to_bgr(np.where(np.asarray(mask) > 0, 255, 0).astype(np.uint8)), (pw, ph),
                           interpolation=cv2.INTER_NEAREST)
    colours = heatmap_colours(heatmap, (ph, pw))
    blended = cv2.addWeighted(base, 0.6, colours, 0.4, 0.0)
    panels = [base, truth, colours, blended]
    body = np.concatenate(panels, axis=1 if ph >= pw else 0)
    header = np.zeros((44, body.shape[1], 3), np.uint8)
    header[:] = TAG_COLOURS.get(tag, (60, 60, 60))
    for line, y in ((title, 18), (subtitle, 38)):
        cv2.putText(header, line, (4, y), FONT, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([header, body], axis=0)


def _new_figure(size: tuple[float, float] = (4.5, 4.5)) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(figure)  # attaches itself as figure.canvas: no global backend selection
    return figure


def plot_curves(labels: Sequence[Any], scores: Sequence[float], metrics: dict[str, Any],
                out_dir: Path | str) -> tuple[Path, Path]:
    """Write pr_curve.png (step-wise, with the F-best point) and roc_curve.png into ``out_dir`` (atomically).

    Args:
        labels: 0/1 ground truth per image.
        scores: one score per image.
        metrics: the ``image_metrics`` dict (ap, auc, threshold, tp, fp, fn, n_pos, n_neg).
        out_dir: an existing folder.

    Returns:
        (pr_path, roc_path).
    """
    out = Path(out_dir)
    recall, precision = pr_points(labels, scores)
    fpr, tpr = roc_points(labels, scores)
    best_p = metrics["tp"] / max(1, metrics["tp"] + metrics["fp"])
    best_r = metrics["tp"] / metrics["n_pos"]
    figure = _new_figure()
    ax = figure.add_subplot()
    ax.step(recall, precision, where="pre", label=f"AP = {metrics['ap']:.4f}")
    ax.plot([best_r], [best_p], "o", color="tab:red",
            label=f"best F = {metrics.get('f_measure', float('nan')):.3f} at t = {metrics['threshold']:.3g}")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.01), ylim=(0, 1.01), title="Precision-recall")
    ax.legend(loc="lower left")
    figure.tight_layout()
    with atomic_path(out / "pr_curve.png") as tmp:
        figure.savefig(tmp)
    figure = _new_figure()
    ax = figure.add_subplot()
    ax.plot(fpr, tpr, label=f"AUC = {metrics['auc']:.4f}")
    ax.plot([0, 1], [0, 1], ":", color="gray")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01),
           title="ROC")
    ax.legend(loc="lower right")
    figure.tight_layout()
    with atomic_path(out / "roc_curve.png") as tmp:
        figure.savefig(tmp)
    return out / "pr_curve.png", out / "roc_curve.png"
