"""Image- and pixel-level metrics against hand-computed values, brute force and scikit-learn."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from kerasdec.evaluation.metrics import (
    average_precision,
    bootstrap_intervals,
    bootstrap_resamples,
    image_metrics,
    join_folds,
    pr_points,
    roc_points,
    summary_line,
)
from kerasdec.evaluation.pixel import PixelMetrics


def test_sklearn_doc_example_by_hand():
    m = image_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    # Points (t, TP, FP): (.8,1,0) (.4,1,1) (.35,2,1) (.1,2,2); AP = .5·1 + .5·2/3.
    assert m["ap"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert m["auc"] == pytest.approx(0.75)
    # F = 2TP/(2TP+FP+FN): 2/3, 1/2, 4/5, 2/3 → best at .35; stored: midway to the next lower score .1.
    assert m["threshold_score"] == 0.35 and m["f_measure"] == pytest.approx(0.8)
    assert m["threshold"] == pytest.approx(0.225) and m["threshold_margin"] == pytest.approx(0.125)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 1, 0, 1)
    assert (m["tpr"], m["tnr"], m["accuracy"]) == (1.0, 0.5, 0.75)
    assert (m["fp_at_05"], m["fn_at_05"]) == (0, 1)
    assert (m["threshold_at_fn0"], m["fp_at_fn0"]) == (0.35, 1)
    assert (m["n_pos"], m["n_neg"]) == (2, 2)


def test_tied_scores_by_hand():
    m = image_metrics([1, 0, 1, 0, 1], [0.9, 0.5, 0.5, 0.5, 0.2])
    # The three 0.5 scores form one point: (.9,1,0) (.5,2,2) (.2,3,2).
    assert m["ap"] == pytest.approx((1 + 0.5 + 0.6) / 3)
    assert m["auc"] == pytest.approx(0.5)  # 2 wins + 2 half-ties + 0 of 6 pairs
    assert (m["threshold_score"], m["threshold"]) == (0.2, 0.1)  # below the lowest score: midway to 0
    assert (m["fp"], m["fn"]) == (2, 0)
    assert (m["tpr"], m["tnr"], m["accuracy"]) == (1.0, 0.0, 0.6)
    assert (m["fp_at_05"], m["fn_at_05"]) == (2, 1)
    assert (m["threshold_at_fn0"], m["fp_at_fn0"]) == (0.2, 2)


def test_f_measure_tie_takes_lowest_threshold():
    # F at (.9,1,0) = 2/3 and at (.2,2,2) = 4/6 = 2/3: the lower threshold wins, giving FN = 0.
    m = image_metrics([1, 0, 0, 1], [0.9, 0.6, 0.5, 0.2])
    assert (m["threshold_score"], m["threshold"]) == (0.2, 0.1) and (m["fp"], m["fn"]) == (2, 0)
    assert m["f_measure"] == pytest.approx(2 / 3)


def test_perfect_separation_and_fn0_with_tie_at_lowest_positive():
    m = image_metrics(np.array([False, False, True, True]), [0.1, 0.2, 0.7, 0.9])
    assert (m["ap"], m["auc"], m["threshold_score"]) == (1.0, 1.0, 0.7)
    assert (m["fp"], m["fn"], m["fp_at_fn0"]) == (0, 0, 0)
    assert m["threshold"] == pytest.approx(0.45)
    assert m["accuracy"] == 1.0
    # A negative tied with the lowest positive counts as a false positive (score >= threshold).
    m = image_metrics([1, 0, 1, 0], [0.8, 0.3, 0.3, 0.1])
    assert (m["threshold_at_fn0"], m["fp_at_fn0"]) == (0.3, 1)


def test_threshold_is_never_an_evaluated_score_and_keeps_fp_fn():
    # The case: the F-best score 0.47987871 must not be the threshold itself, or float
    # rounding in another runtime flips that image. Midway to the next lower score 0.31 instead.
    labels = np.array([1, 1, 0, 0, 1, 0]).astype(bool)
    scores = np.array([0.9, 0.47987871, 0.31, 0.25, 0.2, 0.01])
    m = image_metrics(labels, scores)
    assert m["threshold_score"] == 0.47987871 and (m["fp"], m["fn"]) == (0, 1)
    assert m["threshold"] == pytest.approx((0.47987871 + 0.31) / 2)
    for jitter in (-0.08, 0.08):  # any score error below the margin keeps every decision
        moved = scores + np.sign(jitter) * min(abs(jitter), 0.999 * m["threshold_margin"])
        assert ((moved >= m["threshold"]) == (scores >= m["threshold_score"])).all()
    adjacent = np.nextafter(0.5, 0.0)  # nothing lies between: the F-best score itself is kept
    assert image_metrics([1, 0], [0.5, adjacent])["threshold"] == 0.5


def test_plain_python_types():
    m = image_metrics([0, 1, 1, 0], [0.2, 0.9, 0.4, 0.4])
    for key, value in m.items():
        assert type(value) in (int, float), key


def _brute_force_best(labels: np.ndarray, scores: np.ndarray) -> tuple[float, int, int]:
    best = None
    for t in sorted(set(scores.tolist())):  # ascending: the first maximum is the lowest threshold
        tp = int(np.sum(labels & (scores >= t)))
        fp = int(np.sum(~labels & (scores >= t)))
        fn = int(labels.sum()) - tp
        f = Fraction(2 * tp, 2 * tp + fp + fn)
        if best is None or f > best[0]:
            best = (f, t, fp, fn)
    return best[1], best[2], best[3]


@pytest.mark.parametrize("seed", range(20))
def test_random_lists_with_ties_match_sklearn_and_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 60))
    labels = rng.random(n) < 0.4
    labels[:2] = [True, False]
    scores = np.round(rng.random(n) + 0.3 * labels, 1)  # one decimal: many ties
    m = image_metrics(labels, scores)
    assert m["ap"] == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert m["auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert average_precision(labels, scores) == m["ap"]
    assert (m["threshold_score"], m["fp"], m["fn"]) == _brute_force_best(labels, scores)
    assert m["threshold"] not in scores and m["threshold"] < m["threshold_score"]
    decided = scores >= m["threshold"]  # the stored threshold gives the F-best point's FP and FN
    assert (int(np.sum(decided & ~labels)), int(np.sum(~decided & labels))) == (m["fp"], m["fn"])
    assert m["threshold_margin"] == pytest.approx(np.min(np.abs(scores - m["threshold"])))
    lowest = scores[labels].min()
    assert m["fp_at_fn0"] == int(np.sum(~labels & (scores >= lowest)))


def test_curve_points_for_plots():
    recall, precision = pr_points([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    np.testing.assert_allclose(recall, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(precision, [1, 1, 0.5, 2 / 3, 0.5])
    fpr, tpr = roc_points([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])


@pytest.mark.parametrize("labels", [[1, 1, 1], [0, 0]])
def test_one_class_is_an_error(labels):
    n_pos = sum(labels)
    message = (f"labels contain only one class ({n_pos} positive, {len(labels) - n_pos} negative images); "
               "AP, AUC and the F-measure threshold need both defective and defect-free images")
    with pytest.raises(ValueError) as info:
        image_metrics(labels, np.linspace(0, 1, len(labels)))
    assert str(info.value) == message


@pytest.mark.parametrize("labels, scores, fragment", [
    ([0, 1], [0.5], "1-D of equal length"),
    ([], [], "empty"),
    ([0, 2], [0.1, 0.2], "labels must be 0/1"),
    ([0, 1], [0.1, float("nan")], "NaN or infinite"),
])
def test_malformed_inputs(labels, scores, fragment):
    with pytest.raises(ValueError, match=fragment):
        image_metrics(labels, scores)


def test_join_folds_by_hand():
    a = image_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])  # ap .8333, auc .75, fp 1 fn 0
    b = image_metrics([1, 0, 1, 0, 1], [0.9, 0.5, 0.5, 0.5, 0.2])  # ap .7, auc .5, fp 2 fn 0
    a["pixel_ap"] = 0.5
    joined = join_folds([a, b])
    assert joined["n_folds"] == 2
    assert joined["ap"] == pytest.approx((0.5 + 0.5 * 2 / 3 + 0.7) / 2)
    assert joined["auc"] == pytest.approx(0.625)
    assert (joined["fp"], joined["fn"], joined["n_pos"], joined["n_neg"]) == (3, 0, 5, 4)
    assert (joined["fp_at_05"], joined["fn_at_05"], joined["fp_at_fn0"]) == (2, 2, 3)
    assert joined["tpr"] == 1.0 and joined["tnr"] == pytest.approx(1 / 4)
    assert joined["accuracy"] == pytest.approx(6 / 9)
    assert joined["fold_thresholds"] == pytest.approx([0.225, 0.1])
    assert joined["threshold"] == pytest.approx(0.1625)
    assert "pixel_ap" not in joined  # only averaged when every fold has it
    assert "f_measure" not in joined


def test_join_folds_rejects_bad_input():
    with pytest.raises(ValueError, match="no folds"):
        join_folds([])
    with pytest.raises(ValueError, match=r"fold 0 lacks keys \['auc'"):
        join_folds([{"ap": 1.0}])


def test_pixel_metrics_match_sklearn_on_quantised_heatmaps():
    rng = np.random.default_rng(3)
    bins = 50
    masks = [(rng.random((6, 7)) < 0.3).astype(np.uint8) * 255 for _ in range(3)]
    heatmaps = [np.clip(rng.random((6, 7)) * 0.8 + 0.2 * (mk > 0), 0, 0.999) for mk in masks]
    heatmaps[0][0, 0] = 1.0  # the top value falls into the top level
    accumulator = PixelMetrics(bins)
    for mask, heatmap in zip(masks, heatmaps):
        accumulator.update(mask, heatmap)
    result = accumulator.result()
    y = np.concatenate([mk.ravel() > 0 for mk in masks])
    levels = np.minimum(np.floor(np.concatenate([h.ravel() for h in heatmaps]) * bins), bins - 1)
    assert result["pixel_ap"] == pytest.approx(average_precision_score(y, levels), abs=1e-12)
    assert result["pixel_auc"] == pytest.approx(roc_auc_score(y, levels), abs=1e-12)
    t, fp, fn = _brute_force_best(y, levels)
    tp = int(y.sum()) - fn
    assert result["pixel_dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert result["pixel_threshold"] == t / bins
    assert result["n_pixel_images"] == 3


def test_pixel_metrics_errors():
    acc = PixelMetrics(bins=10)
    with pytest.raises(ValueError, match=r"mask shape \(4, 4\) and heatmap shape \(8, 8\)"):
        acc.update(np.zeros((4, 4)), np.zeros((8, 8)))
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        acc.update(np.zeros((4, 4)), np.full((4, 4), 1.5))
    acc.update(np.zeros((4, 4), np.uint8), np.full((4, 4), 0.3))
    with pytest.raises(ValueError, match="the 1 masks accumulated have 0 defect and 16 background pixels"):
        acc.result()


# ------------------------------------------------------------------------------ bootstrap intervals
def _scored(n_pos: int, n_neg: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping classes: defective scores N(1.5, 1), defect-free N(0, 1), squashed to (0, 1)."""
    rng = np.random.default_rng(seed)
    logits = np.r_[rng.normal(1.5, 1.0, n_pos), rng.normal(0.0, 1.0, n_neg)]
    labels = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    order = rng.permutation(labels.size)  # classes interleaved, as in a real split
    return labels[order], 1 / (1 + np.exp(-logits[order]))


def test_bootstrap_interval_contains_the_point_estimate_and_is_recorded():
    labels, scores = _scored(12, 28, seed=3)
    point = image_metrics(labels, scores)
    ci = bootstrap_intervals(labels, scores)
    assert ci["bootstrap"] == {"resamples": 2000, "seed": 0, "method": "stratified percentile"}
    for key in ("ap", "auc", "f_measure"):
        low, high = ci[f"{key}_ci95"]
        assert 0.0 <= low < point[key] < high <= 1.0, (key, low, point[key], high)
        assert high - low > 0.05, key  # 12 defective images: far from a point


def test_bootstrap_is_identical_for_identical_inputs_and_follows_the_seed():
    labels, scores = _scored(12, 28, seed=4)
    first = bootstrap_intervals(labels, scores)
    assert bootstrap_intervals(list(labels), list(scores)) == first  # bit for bit, lists or arrays
    values = bootstrap_resamples(labels, scores)  # the interval: their 2.5th and 97.5th percentiles
    for column, key in enumerate(("ap_ci95", "auc_ci95", "f_measure_ci95")):
        assert first[key] == np.percentile(values[:, column], [2.5, 97.5]).tolist(), key
    other = bootstrap_intervals(labels, scores, seed=1)
    assert other["bootstrap"]["seed"] == 1 and other["ap_ci95"] != first["ap_ci95"]


def test_bootstrap_of_a_perfect_separation_is_one():
    labels = [1, 0, 1, 0, 0, 1, 0, 0]
    scores = [0.9, 0.2, 0.8, 0.3, 0.1, 0.95, 0.3, 0.05]
    ci = bootstrap_intervals(labels, scores)
    assert ci["ap_ci95"] == ci["auc_ci95"] == ci["f_measure_ci95"] == [1.0, 1.0]


def test_more_test_images_give_a_narrower_interval():
    """Ten times the images of the same distribution: widths shrink ~1/sqrt(10) (measured 0.29-0.51 of
    the small set's, mean over six sets each); one small set alone varies too much to compare."""
    def mean_widths(n_pos: int, n_neg: int) -> np.ndarray:
        cis = [bootstrap_intervals(*_scored(n_pos, n_neg, seed=seed), resamples=200) for seed in range(6)]
        return np.mean([[np.diff(ci[k])[0] for k in ("ap_ci95", "auc_ci95", "f_measure_ci95")] for ci in cis],
                       axis=0)

    small, large = mean_widths(12, 28), mean_widths(120, 280)
    assert (large < 0.7 * small).all(), (small, large)


def test_every_resample_keeps_both_classes_and_equals_image_metrics_on_the_drawn_images():
    """The counting shortcut equals image_metrics on images drawn explicitly with the same generator:
    positives then negatives, one (resamples, n) block each (one chunk). Ties included."""
    labels = np.array([1, 0, 1, 0, 0, 1, 0, 1, 0, 0])
    scores = np.array([0.9, 0.5, 0.5, 0.7, 0.1, 0.3, 0.5, 0.7, 0.2, 0.3])
    values = bootstrap_resamples(labels, scores, resamples=50, seed=7)
    rng = np.random.default_rng(7)
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    pos_draws = rng.integers(0, pos.size, (50, pos.size))
    neg_draws = rng.integers(0, neg.size, (50, neg.size))
    distinct = set()
    for row, (p, n) in enumerate(zip(pos_draws, neg_draws)):
        drawn = np.r_[pos[p], neg[n]]
        assert (labels[drawn].sum(), (1 - labels[drawn]).sum()) == (4, 6)  # the class counts are kept
        expected = image_metrics(labels[drawn], scores[drawn])  # raises if a class were missing
        assert values[row].tolist() == pytest.approx([expected["ap"], expected["auc"], expected["f_measure"]],
                                                     abs=1e-12), row
        distinct.add(tuple(values[row]))
    assert len(distinct) > 10  # the resamples differ from one another


def test_bootstrap_resamples_more_than_one_chunk_and_rejects_bad_counts():
    labels, scores = _scored(12, 28, seed=6)
    values = bootstrap_resamples(labels, scores, resamples=601)
    assert values.shape == (601, 3) and np.isfinite(values).all() and len(np.unique(values[:, 0])) > 100
    assert (values[:, 0] != values[0, 0]).any() and (values[300:, 0] != values[0, 0]).any()
    with pytest.raises(ValueError, match="resamples=0; expected a whole number of at least 1"):
        bootstrap_resamples(labels, scores, resamples=0)
    with pytest.raises(ValueError, match="only one class"):
        bootstrap_intervals([1, 1], [0.2, 0.3])


def test_summary_line_shows_intervals_and_counts():
    labels, scores = _scored(12, 28, seed=3)
    metrics = {**image_metrics(labels, scores), **bootstrap_intervals(labels, scores)}
    line = summary_line(metrics)
    low, high = metrics["ap_ci95"]
    assert line.startswith(f"AP {metrics['ap']:.4f} (95% {low:.2f}-{high:.2f}), AUC {metrics['auc']:.4f} ")
    assert f"F {metrics['f_measure']:.4f} (95% " in line
    assert line.endswith("on 40 images (12 defective, 28 defect-free)")
    assert "95%" not in summary_line(image_metrics(labels, scores))  # older metrics: no interval, no error
