"""Image- and pixel-level metrics (image level: docs/method.md#evaluation), in plain numpy (no
tensorflow, no scikit-learn).

Conventions shared by every function here:

* A score at or above a threshold is a positive decision (``score >= threshold``).
* Tied scores form one operating point, as in scikit-learn's ``precision_recall_curve`` and
  ``roc_curve``: AP equals ``sklearn.metrics.average_precision_score`` and AUC equals
  ``sklearn.metrics.roc_auc_score``, ties included.
* The best operating point maximises the F-measure 2·TP / (2·TP + FP + FN) over the points of the
  PR curve; when several points reach the maximum, the lowest score wins (as ``np.argmax`` over
  scikit-learn's ascending thresholds picks it in the reference implementation).
* The stored ``threshold`` is the MIDPOINT between that point's score (``threshold_score``, the
  lowest score called defective) and the next lower score of the evaluation (0 below the lowest),
  never an evaluated image's own score: a runtime whose scores differ by less than
  ``threshold_margin`` (half that gap) cannot tip an evaluated image across it (an image sitting
  exactly on the threshold flipped between TF, SavedModel and TFLite by float rounding). The
  decisions, and so FP / FN, are those of the F-best point.
* TPR, TNR and accuracy are counted at the best threshold.

Pixel-level metrics (pixel AP, AUC and Dice) are in ``kerasdec.evaluation.pixel``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

# Keys join_folds treats specially; every other key is dropped from the joined dict.
_MEAN_KEYS = ("ap", "auc", "pixel_ap", "pixel_auc", "pixel_dice")
_SUM_KEYS = ("fp", "fn", "tp", "tn", "fp_at_05", "fn_at_05", "fp_at_fn0", "n_pos", "n_neg")


def _check_labels_scores(labels: Sequence[Any], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"labels and scores must be 1-D of equal length; got shapes {y.shape} and {s.shape}")
    if y.size == 0:
        raise ValueError("labels and scores are empty; expected at least one positive and one negative")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0/1 or bool; found values {np.unique(y)[:5].tolist()}")
    if not np.isfinite(s).all():
        raise ValueError(f"scores contain {int((~np.isfinite(s)).sum())} NaN or infinite values")
    y = y.astype(bool)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        raise ValueError(
            f"labels contain only one class ({n_pos} positive, {y.size - n_pos} negative images); "
            "AP, AUC and the F-measure threshold need both defective and defect-free images")
    return y, s


def score_curve(labels: Sequence[Any], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Operating points of a ranking: one per distinct score, highest threshold first.

    Args:
        labels: 0/1 (or bool) ground truth, 1 = defective.
        scores: higher = more likely defective.

    Returns:
        (thresholds, tps, fps): thresholds descending; tps/fps = number of positives/negatives with
        ``score >= threshold``.

    Raises:
        ValueError: mismatched or empty inputs, labels not 0/1, non-finite scores, only one class.
    """
    y, s = _check_labels_scores(labels, scores)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    ends = np.r_[np.flatnonzero(np.diff(s_sorted)), s.size - 1]  # last index of each tie group
    tps = np.cumsum(y_sorted)[ends]
    fps = ends + 1 - tps
    return s_sorted[ends], tps.astype(np.int64), fps.astype(np.int64)


def ap_from_curve(tps: np.ndarray, fps: np.ndarray) -> float:
    """Step-wise AP from cumulative TP/FP counts ordered by descending threshold."""
    precision = tps / (tps + fps)
    recall_step = np.diff(tps, prepend=0) / tps[-1]
    return float(np.sum(recall_step * precision))


def auc_from_curve(tps: np.ndarray, fps: np.ndarray) -> float:
    """ROC AUC (trapezoids from (0, 0)) from cumulative TP/FP counts ordered by descending threshold."""
    tpr = np.r_[0, tps] / tps[-1]
    fpr = np.r_[0, fps] / fps[-1]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def best_f_from_curve(tps: np.ndarray, fps: np.ndarray) -> tuple[int, float]:
    """Index of the F-maximising point (lowest threshold among ties) and its F-measure."""
    n_pos = tps[-1]
    f = 2 * tps / (tps + fps + n_pos)  # = 2TP / (2TP + FP + FN), exact ratio of integers
    best = int(np.flatnonzero(f == f.max())[-1])
    return best, float(f[best])


def midpoint_threshold(thresholds: np.ndarray, best: int) -> float:
    """The midpoint between ``thresholds[best]`` and the next lower distinct score (or 0).

    Args:
        thresholds: the distinct scores, descending (``score_curve``).
        best: index of the chosen operating point.

    Returns:
        A threshold strictly between the two scores, so ``score >= threshold`` decides every
        evaluated image as ``score >= thresholds[best]`` does; ``thresholds[best]`` itself only when
        the two are adjacent float64 values (nothing lies between; the decisions must not change).
    """
    upper = float(thresholds[best])
    lower = float(thresholds[best + 1]) if best + 1 < len(thresholds) else 0.0
    middle = lower + (upper - lower) / 2.0
    return middle if lower < middle < upper else upper


def average_precision(labels: Sequence[Any], scores: Sequence[float]) -> float:
    """Step-wise average precision, equal to ``sklearn.metrics.average_precision_score``.

    Args:
        labels: 0/1 ground truth per image.
        scores: one score per image.

    Returns:
        AP in [0, 1].

    Raises:
        ValueError: see ``score_curve``.

    Example:
        >>> average_precision([0, 1, 1], [0.1, 0.8, 0.4])
        1.0
    """
    _, tps, fps = score_curve(labels, scores)
    return ap_from_curve(tps, fps)


def pr_points(labels: Sequence[Any], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) of every operating point, starting at recall 0 / precision 1 (for plotting)."""
    _, tps, fps = score_curve(labels, scores)
    return np.r_[0.0, tps / tps[-1]], np.r_[1.0, tps / (tps + fps)]


def roc_points(labels: Sequence[Any], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) of every operating point, starting at (0, 0) (for plotting)."""
    _, tps, fps = score_curve(labels, scores)
    return np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]]


def image_metrics(labels: Sequence[Any], scores: Sequence[float], *, fixed_threshold: float = 0.5
                  ) -> dict[str, float | int]:
    """All image-level numbers of docs/method.md#evaluation as plain Python floats and ints.

    Args:
        labels: 0/1 ground truth per image (1 = defective).
        scores: sigmoid of the decision logit per image.
        fixed_threshold: the fixed operating point reported as fp_at_05 / fn_at_05 (default 0.5).

    Returns:
        ap, auc; threshold (midpoint below the F-measure-best score, see the module docstring),
        threshold_score (that F-best score), threshold_margin (threshold_score − threshold: the
        distance from the threshold to the nearest evaluated score), f_measure, tp, fp, fn, tn,
        tpr, tnr, accuracy (all at that threshold); fp_at_05, fn_at_05 (at ``fixed_threshold``);
        threshold_at_fn0 (the lowest positive score) and fp_at_fn0 (negatives scoring at or above
        it); n_pos, n_neg.

    Raises:
        ValueError: only one class present, or malformed inputs (see ``score_curve``).
    """
    thresholds, tps, fps = score_curve(labels, scores)
    y, s = np.asarray(labels).astype(bool), np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(tps[-1]), int(fps[-1])
    best, f_measure = best_f_from_curve(tps, fps)
    tp, fp = int(tps[best]), int(fps[best])
    fn, tn = n_pos - tp, n_neg - fp
    lowest_positive = float(s[y].min())
    threshold = midpoint_threshold(thresholds, best)
    return {
        "ap": ap_from_curve(tps, fps), "auc": auc_from_curve(tps, fps),
        "threshold": threshold, "threshold_score": float(thresholds[best]),
        "threshold_margin": float(thresholds[best]) - threshold, "f_measure": f_measure,
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "tpr": tp / n_pos, "tnr": tn / n_neg, "accuracy": (tp + tn) / (n_pos + n_neg),
        "fp_at_05": int(np.sum(~y & (s >= fixed_threshold))),
        "fn_at_05": int(np.sum(y & (s < fixed_threshold))),
        "threshold_at_fn0": lowest_positive, "fp_at_fn0": int(np.sum(~y & (s >= lowest_positive))),
        "n_pos": n_pos, "n_neg": n_neg,
    }


def join_folds(fold_metrics: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Join per-fold ``image_metrics`` dicts the way KSDD results are reported (docs/method.md#evaluation).

    ap, auc (and pixel_ap, pixel_auc, pixel_dice when every fold has them) are averaged over folds;
    tp, fp, fn, tn, fp_at_05, fn_at_05, fp_at_fn0, n_pos, n_neg are summed; tpr, tnr and accuracy are
    recomputed from the summed counts (so each fold is counted at its own best threshold); threshold is
    the mean of the folds' thresholds and fold_thresholds lists them; n_folds is added. Other keys
    (f_measure, threshold_at_fn0, ...) have no meaning across folds and are left out.

    Args:
        fold_metrics: one dict per fold, as returned by ``image_metrics`` (plus optional pixel keys).

    Returns:
        The joined dict.

    Raises:
        ValueError: empty list, or a fold missing one of the averaged/summed image-level keys.
    """
    if not fold_metrics:
        raise ValueError("join_folds got no folds; expected a list of image_metrics dicts")
    required = ("ap", "auc", "threshold", *_SUM_KEYS)
    for i, m in enumerate(fold_metrics):
        missing = [k for k in required if k not in m]
        if missing:
            raise ValueError(f"fold {i} lacks keys {missing}; expected image_metrics output")
    joined: dict[str, Any] = {"n_folds": len(fold_metrics)}
    for key in _MEAN_KEYS:
        if all(key in m for m in fold_metrics):
            joined[key] = float(np.mean([m[key] for m in fold_metrics]))
    for key in _SUM_KEYS:
        joined[key] = int(sum(m[key] for m in fold_metrics))
    thresholds = [float(m["threshold"]) for m in fold_metrics]
    joined["threshold"] = float(np.mean(thresholds))
    joined["fold_thresholds"] = thresholds
    n_pos, n_neg = joined["n_pos"], joined["n_neg"]
    joined["tpr"] = (n_pos - joined["fn"]) / n_pos
    joined["tnr"] = (n_neg - joined["fp"]) / n_neg
    joined["accuracy"] = (n_pos + n_neg - joined["fp"] - joined["fn"]) / (n_pos + n_neg)
    return joined


# ------------------------------------------------------------------------------ bootstrap intervals
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
BOOTSTRAP_METHOD = "stratified percentile"
_BOOTSTRAP_CHUNK = 250  # resamples drawn at a time (bounds memory); fixed, so the draws never depend on it
_INTERVAL_KEYS = (("ap", "ap_ci95"), ("auc", "auc_ci95"), ("f_measure", "f_measure_ci95"))


def _counts_per_group(groups: np.ndarray, n_groups: int) -> np.ndarray:
    """(B, n_groups) number of times each tie group occurs in each row of ``groups`` (B, n)."""
    rows = np.arange(groups.shape[0])[:, None] * n_groups
    flat = np.bincount((rows + groups).ravel(), minlength=groups.shape[0] * n_groups)
    return flat.reshape(groups.shape[0], n_groups)


def bootstrap_resamples(labels: Sequence[Any], scores: Sequence[float], *,
                        resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """AP, AUC and the best F-measure of ``resamples`` stratified bootstrap resamples of the images.

    Each resample draws, with replacement, as many defective images from the defective ones and as
    many defect-free images from the defect-free ones as the evaluation holds, so every resample has
    both classes in the evaluation's proportions and AP is always defined. A resample's numbers are
    those ``image_metrics`` gives on the resampled images (ties and all): its operating points are
    built from per-image draw counts and passed to ``ap_from_curve``, ``auc_from_curve`` and
    ``best_f_from_curve``, the functions of the point estimate. The draws come from
    ``np.random.default_rng(seed)``, so the same labels and scores in the same order give the same
    resamples on every machine.

    Args:
        labels: 0/1 ground truth per image (1 = defective).
        scores: one score per image.
        resamples: how many resamples (at least 1).
        seed: the generator's seed.

    Returns:
        (resamples, 3) float64: the columns are AP, AUC and the best F-measure.

    Raises:
        ValueError: see ``score_curve``; ``resamples`` below 1.
    """
    y, s = _check_labels_scores(labels, scores)
    if int(resamples) != resamples or resamples < 1:
        raise ValueError(f"resamples={resamples!r}; expected a whole number of at least 1")
    order = np.argsort(-s, kind="mergesort")
    starts = np.r_[True, np.diff(s[order]) != 0]  # first image of each tie group, descending scores
    group = np.empty(s.size, dtype=np.int64)
    group[order] = np.cumsum(starts) - 1  # tie group of every image, 0 = the highest score
    n_groups = int(group.max()) + 1
    pos_groups, neg_groups = group[y], group[~y]
    rng = np.random.default_rng(seed)
    out = np.empty((int(resamples), 3))
    for start in range(0, int(resamples), _BOOTSTRAP_CHUNK):
        b = min(_BOOTSTRAP_CHUNK, int(resamples) - start)
        tp_counts = _counts_per_group(pos_groups[rng.integers(0, pos_groups.size, (b, pos_groups.size))],
                                      n_groups)
        fp_counts = _counts_per_group(neg_groups[rng.integers(0, neg_groups.size, (b, neg_groups.size))],
                                      n_groups)
        drawn = (tp_counts + fp_counts) > 0  # groups without a drawn image are no operating point
        tps, fps = np.cumsum(tp_counts, axis=1), np.cumsum(fp_counts, axis=1)
        for row in range(b):
            t, f = tps[row, drawn[row]], fps[row, drawn[row]]
            out[start + row] = ap_from_curve(t, f), auc_from_curve(t, f), best_f_from_curve(t, f)[1]
    return out


def bootstrap_intervals(labels: Sequence[Any], scores: Sequence[float], *,
                        resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> dict[str, Any]:
    """95% percentile intervals of AP, AUC and the best F-measure from ``bootstrap_resamples``.

    Returns:
        ap_ci95, auc_ci95, f_measure_ci95 as [low, high] (the 2.5th and 97.5th percentiles of the
        resamples, numpy's linear interpolation) and bootstrap: {"resamples", "seed", "method"}.

    Raises:
        ValueError: see ``bootstrap_resamples``.
    """
    values = bootstrap_resamples(labels, scores, resamples=resamples, seed=seed)
    low, high = np.percentile(values, [2.5, 97.5], axis=0)
    result: dict[str, Any] = {key: [float(lo), float(hi)]
                              for (_, key), lo, hi in zip(_INTERVAL_KEYS, low, high)}
    result["bootstrap"] = {"resamples": int(resamples), "seed": int(seed), "method": BOOTSTRAP_METHOD}
    return result


def summary_line(metrics: dict[str, Any]) -> str:
    """One line for logs: AP, AUC and F with their 95% intervals (when present), FP, FN, the image counts.

    Example: ``AP 0.9731 (95% 0.93-1.00), AUC 0.9911 (95% 0.97-1.00), F 0.9167 (95% 0.82-1.00),
    FP 0 FN 2 at threshold 0.4125 on 40 images (12 defective, 28 defect-free)``.
    """
    parts = []
    for (key, ci_key), name in zip(_INTERVAL_KEYS, ("AP", "AUC", "F")):
        ci = metrics.get(ci_key)
        parts.append(f"{name} {metrics[key]:.4f}" + (f" (95% {ci[0]:.2f}-{ci[1]:.2f})" if ci else ""))
    n_pos, n_neg = metrics["n_pos"], metrics["n_neg"]
    return (f"{', '.join(parts)}, FP {metrics['fp']} FN {metrics['fn']} at threshold "
            f"{metrics['threshold']:.4g} on {n_pos + n_neg} images ({n_pos} defective, {n_neg} defect-free)")
