"""Targets and weights (docs/method.md#targets-and-weights) against arrays computed by hand or by
explicit loops."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from kerasdec.config import DataConfig
from kerasdec.data.samples import Sample
from kerasdec.data.targets import (
    dilate,
    distance_weights,
    downsize,
    make_element,
    resize,
    seg_targets,
)


def _reflect(i: int, n: int) -> int:
    """Index into a length-n axis reflected about its edges without repeating the edge."""
    while i < 0 or i >= n:
        i = -i if i < 0 else 2 * (n - 1) - i
    return i


def _downsize_loops(m: np.ndarray, f: int = 8) -> np.ndarray:
    h, w = m.shape
    k = 2 * f + 1
    out = np.zeros((h // f, w // f))
    for oy in range(h // f):
        for ox in range(w // f):
            total = 0.0
            for dy in range(k):
                for dx in range(k):
                    # window (oy, ox) starts at padded row oy*f, i.e. original row oy*f - f
                    total += m[_reflect(oy * f - f + dy, h), _reflect(ox * f - f + dx, w)]
            out[oy, ox] = total / (k * k)
    return out


def test_downsize_equals_explicit_loops():
    rng = np.random.default_rng(0)
    m = rng.random((16, 24)).astype(np.float32)
    out = downsize(m)
    assert out.shape == (2, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, _downsize_loops(m), rtol=0, atol=1e-6)


def test_downsize_hand_computed_single_pixel():
    # A single 1 at (0, 0) of an 8x8 map: reflection without repeating the edge keeps one copy
    # of it inside the 17x17 window of output (0, 0) → 1/289.
    m = np.zeros((8, 8), dtype=np.float32)
    m[0, 0] = 1.0
    assert downsize(m)[0, 0] == pytest.approx(1 / 289)
    # A 1 at (1, 1) is mirrored to (-1, 1), (1, -1), (-1, -1): four copies → 4/289.
    m = np.zeros((8, 8), dtype=np.float32)
    m[1, 1] = 1.0
    assert downsize(m)[0, 0] == pytest.approx(4 / 289)
    assert np.allclose(downsize(np.ones((16, 16))), 1.0)


def test_downsize_rejects_sizes_not_divisible():
    with pytest.raises(ValueError, match=r"divisible by 8"):
        downsize(np.zeros((12, 16)))


def _brute_force_distance(fg: np.ndarray) -> np.ndarray:
    bg = np.argwhere(~fg)
    d = np.zeros(fg.shape)
    for y, x in np.argwhere(fg):
        d[y, x] = np.sqrt(((bg - (y, x)) ** 2).sum(axis=1)).min()
    return d


def test_distance_weights_of_rectangle_equal_brute_force():
    mask = np.zeros((20, 24), dtype=np.float32)
    mask[4:13, 5:20] = 1.0  # 9 x 15 rectangle away from the border
    d = _brute_force_distance(mask > 0)
    assert d.max() == 5.0  # centre row of 9 rows: 5 pixels to the nearest background row
    expected = 3.0 * (d / d.max()) ** 2
    expected[mask == 0] = 1.0
    got = distance_weights(mask, w_pos=3.0, p=2.0)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert got[4, 5] == pytest.approx(3.0 * (1 / 5) ** 2)  # corner pixel: distance 1
    assert got[8, 12] == pytest.approx(3.0)  # centre: distance = max


def test_distance_weights_soft_edges_are_foreground_and_empty_mask_gives_ones():
    mask = np.zeros((10, 10), dtype=np.float32)
    mask[3:7, 3:7] = 0.2  # soft but nonzero: foreground
    w = distance_weights(mask, w_pos=1.0, p=1.0)
    assert w[3, 3] == pytest.approx(0.5) and w[4, 4] == pytest.approx(1.0) and w[0, 0] == 1.0
    np.testing.assert_array_equal(distance_weights(np.zeros((8, 8))), np.ones((8, 8)))


def test_dilate_equals_neighbourhood_max():
    rng = np.random.default_rng(1)
    mask = np.where(rng.random((12, 14)) < 0.05, 255, 0).astype(np.uint8)
    for d in (3, 5):
        r = d // 2
        padded = np.pad(mask, r)
        expected = np.zeros_like(mask)
        for y in range(mask.shape[0]):
            for x in range(mask.shape[1]):
                expected[y, x] = padded[y:y + d, x:x + d].max()
        np.testing.assert_array_equal(dilate(mask, d), expected)
    np.testing.assert_array_equal(dilate(mask, 1), mask)
    single = np.zeros((5, 5), dtype=np.uint8)
    single[2, 2] = 255
    assert dilate(single, 3).sum() == 9 * 255 and dilate(single, 3)[1:4, 1:4].min() == 255


def test_resize_bilinear_hand_computed():
    # Half-pixel centres: output x of 4 maps to source (x + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25,
    # clamped to [0, 1] → weights 0, 0.25, 0.75, 1 of the right pixel.
    row = np.array([[0.0, 1.0], [0.0, 1.0]], dtype=np.float32)
    np.testing.assert_allclose(resize(row, (4, 4)), np.tile([0.0, 0.25, 0.75, 1.0], (4, 1)), atol=1e-6)
    mask = np.array([[0, 255], [0, 255]], dtype=np.uint8)
    got = resize(mask, (4, 4))
    assert got.dtype == np.uint8
    np.testing.assert_allclose(got, np.tile([0, 63.75, 191.25, 255], (4, 1)), atol=1)
    image = np.zeros((6, 10, 1), dtype=np.uint8)
    assert resize(image, (8, 16)).shape == (8, 16, 1)  # channel axis kept


def _sample(positive: bool, segmented: bool = True) -> Sample:
    return Sample(name="s", image_path=Path("s.png"), is_positive=positive, is_segmented=segmented)


def test_seg_targets_dilate_full_resolution_then_resize():
    cfg = DataConfig(height=64, width=64, dilate=3, weighted_seg=False)
    # 256 → 64 bilinear samples source pixels 4k+1 and 4k+2 only; a lone pixel at (40, 80) falls
    # between samples, so resizing before dilating would lose it; dilating first keeps it.
    mask = np.zeros((256, 256), dtype=np.uint8)
    mask[40, 80] = 255
    seg, weight = seg_targets(mask, _sample(True), cfg)
    full = cv2.resize(cv2.dilate(mask, np.ones((3, 3), np.uint8)), (64, 64),
                      interpolation=cv2.INTER_LINEAR) / 255.0
    assert seg.shape == weight.shape == (8, 8, 1)
    assert seg.max() > 0
    np.testing.assert_allclose(seg[:, :, 0], _downsize_loops(full), atol=1e-6)
    other = cv2.dilate(cv2.resize(mask, (64, 64), interpolation=cv2.INTER_LINEAR), np.ones((3, 3), np.uint8))
    assert other.max() == 0  # the other order would give an empty target
    np.testing.assert_array_equal(weight, np.ones((8, 8, 1)))


def _rect_mask() -> np.ndarray:
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[16:48, 20:40] = 255
    return mask


def test_weights_per_kind_of_sample():
    cfg = DataConfig(height=64, width=64, w_pos=5.0, p=1.0)
    mask = _rect_mask()
    seg_pos, w_pos = seg_targets(mask, _sample(True), cfg)
    full_w = distance_weights(mask / 255.0, 5.0, 1.0)
    np.testing.assert_allclose(w_pos[:, :, 0], _downsize_loops(full_w), atol=1e-5)
    assert w_pos.max() > 1.0  # the defect centre weighs more than the background
    np.testing.assert_allclose(seg_pos[:, :, 0], _downsize_loops(mask / 255.0), atol=1e-6)
    _, w_label_only = seg_targets(mask, _sample(True, segmented=False), cfg)
    np.testing.assert_array_equal(w_label_only, np.zeros((8, 8, 1)))
    seg_neg, w_neg = seg_targets(np.zeros((64, 64), np.uint8), _sample(False), cfg)
    np.testing.assert_array_equal(w_neg, np.ones((8, 8, 1)))
    np.testing.assert_array_equal(seg_neg, np.zeros((8, 8, 1)))
    _, w_off = seg_targets(mask, _sample(True), DataConfig(height=64, width=64, weighted_seg=False))
    np.testing.assert_array_equal(w_off, np.ones((8, 8, 1)))


def test_make_element_shapes_dtypes_and_values():
    cfg = DataConfig(height=64, width=96, channels=3)
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (128, 192, 3), dtype=np.uint8)
    mask = np.zeros((128, 192), dtype=np.uint8)
    el = make_element(image, mask, _sample(False), cfg)
    assert el.image.shape == (64, 96, 3) and el.seg.shape == el.seg_weight.shape == (8, 12, 1)
    assert el.label.shape == el.label_weight.shape == (1,)
    for array in (el.image, el.seg, el.seg_weight, el.label, el.label_weight):
        assert array.dtype == np.float32
    expected = cv2.resize(image, (96, 64), interpolation=cv2.INTER_LINEAR) / 255.0
    np.testing.assert_allclose(el.image, expected, atol=1e-6)
    assert el.label[0] == 0.0 and el.label_weight[0] == 1.0
    same = make_element(image[:64, :96], mask[:64, :96], _sample(True, segmented=False), cfg)
    np.testing.assert_allclose(same.image, image[:64, :96] / 255.0, atol=1e-6)  # no resize needed
    assert same.label[0] == 1.0 and same.seg_weight.max() == 0.0
    with pytest.raises(ValueError, match=r"expected \(h, w, 3\)"):
        make_element(image[:, :, :1], mask, _sample(False), cfg)
    assert math.isclose(float(el.image.max()), float(expected.max()), abs_tol=1e-6)
