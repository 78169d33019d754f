"""Augmentation in the training pipeline: image, target and weights transformed alike; draws keyed by
(seed, sample index, epoch), so same seed = same batches and a restart continues identically."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf

from kerasdec.config import DataConfig
from kerasdec.data import augment
from kerasdec.data.pipeline import make_eval_dataset, make_train_dataset
from kerasdec.data.samples import Sample
from kerasdec.data.sampling import FrequencySampler
from kerasdec.data.targets import distance_weights, downsize

CFG = DataConfig(height=64, width=64, channels=1, w_pos=4.0, p=1.0, augment_geometry="d4")
N_POS, N_NEG = 6, 6


def _shape(i: int) -> np.ndarray:
    """An L-shaped defect with no symmetry, so every one of the 8 transforms gives another mask."""
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[8:48, 10 + i:18 + i] = 255
    mask[40:48, 10 + i:40] = 255
    return mask


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> list[Sample]:
    """Positives whose image is the mask drawn in grey 60 + 20 i (the value names the sample)."""
    root: Path = tmp_path_factory.mktemp("augment")
    out = []
    for i in range(N_POS + N_NEG):
        mask = _shape(i) if i < N_POS else np.zeros((64, 64), np.uint8)
        image = np.where(mask > 0, 60 + 20 * i, 0).astype(np.uint8)
        cv2.imwrite(str(root / f"{i}.png"), image)
        mask_path = None
        if i < N_POS:
            mask_path = root / f"{i}_GT.png"
            cv2.imwrite(str(mask_path), mask)
        out.append(Sample(name=str(i), image_path=root / f"{i}.png", is_positive=i < N_POS,
                          is_segmented=True, mask_path=mask_path))
    return out


def _epoch(ds: tf.data.Dataset, sampler: FrequencySampler, epoch: int) -> list:
    sampler.current_epoch = epoch
    return [tf.nest.map_structure(lambda t: t.numpy(), b) for b in ds]


def _elements(batches: list) -> list[tuple[np.ndarray, ...]]:
    return [(x[j, :, :, 0], y["seg"][j, :, :, 0], w["seg"][j, :, :, 0])
            for x, y, w in batches for j in range(x.shape[0])]


def _assert_same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for batch_a, batch_b in zip(a, b):
        tf.nest.map_structure(np.testing.assert_array_equal, batch_a, batch_b)


def test_transform_ids_form_the_groups():
    square = np.arange(9).reshape(3, 3)
    images = {t: augment.transform(square, t).tobytes() for t in range(8)}
    assert len(set(images.values())) == 8  # eight distinct elements of D4
    np.testing.assert_array_equal(augment.transform(square, 6), square[::-1])  # up-down flip
    np.testing.assert_array_equal(augment.transform(square, 2), square[::-1, ::-1])


def test_image_mask_and_weights_transformed_identically(samples):
    sampler = FrequencySampler([s.is_positive for s in samples], seed=1)
    ds = make_train_dataset(samples, CFG, 4, sampler)
    seen = set()
    for epoch in range(3):
        for x, seg, weight in _elements(_epoch(ds, sampler, epoch)):
            mask = (x > 0).astype(np.float32)  # the image IS its mask, transformed with it
            np.testing.assert_allclose(seg, downsize(mask), atol=1e-6)
            np.testing.assert_allclose(weight, downsize(distance_weights(mask, 4.0, 1.0)), atol=1e-5)
            if seg.max() > 0:
                seen.add(mask.tobytes())
    assert len(seen) > N_POS  # the positives came in more than one orientation


def test_same_seed_same_batches_other_epoch_or_seed_other_draw(samples):
    def pipeline(seed):
        sampler = FrequencySampler([s.is_positive for s in samples], seed=0)
        return sampler, make_train_dataset(samples, CFG, 4, sampler, seed=seed)

    (s1, d1), (s2, d2), (s3, d3) = pipeline(5), pipeline(5), pipeline(6)
    first = _epoch(d1, s1, 0)
    _assert_same(first, _epoch(d2, s2, 0))
    other_seed = _epoch(d3, s3, 0)  # same sampler seed: same order, other augmentation draws
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, other_seed))

    def by_sample(batches):  # grey value of the defect → image, independent of the sampling order
        return {int(round(x.max() * 255)): x.tobytes() for x, _, _ in _elements(batches) if x.max() > 0}

    e0, e1 = by_sample(first), by_sample(_epoch(d1, s1, 1))
    assert e0.keys() == e1.keys() and any(e0[k] != e1[k] for k in e0)


def test_resume_equals_uninterrupted(samples):
    cfg = dataclasses.replace(CFG, augment_geometry="flips", augment_jitter=0.2)
    flags = [s.is_positive for s in samples]
    sampler = FrequencySampler(flags, seed=2)
    ds = make_train_dataset(samples, cfg, 4, sampler)
    straight = [_epoch(ds, sampler, e) for e in range(3)]

    first = FrequencySampler(flags, seed=2)
    _epoch(make_train_dataset(samples, cfg, 4, first), first, 0)
    first.current_epoch = 1
    state = first.state_dict()  # what a checkpoint after epoch 0 stores
    resumed = FrequencySampler(flags, seed=2)
    resumed.load_state_dict(state)  # a new process: new sampler, new pipeline
    resumed_ds = make_train_dataset(samples, cfg, 4, resumed)
    for epoch in (1, 2):
        _assert_same(straight[epoch], _epoch(resumed_ds, resumed, epoch))


def test_jitter_touches_the_image_only_and_evaluation_is_never_augmented(samples):
    cfg = dataclasses.replace(CFG, augment_geometry="none", augment_jitter=0.3)
    plain = dataclasses.replace(CFG, augment_geometry="none")
    flags = [s.is_positive for s in samples]
    runs = {}
    for name, c in (("jitter", cfg), ("plain", plain)):
        sampler = FrequencySampler(flags, seed=0)
        runs[name] = _epoch(make_train_dataset(samples, c, 4, sampler), sampler, 0)
    for (xj, yj, wj), (xp, yp, wp) in zip(runs["jitter"], runs["plain"]):
        tf.nest.map_structure(np.testing.assert_array_equal, (yj, wj), (yp, wp))
        assert not np.allclose(xj, xp) and 0.0 <= xj.min() and xj.max() <= 1.0
    evaluated = [b for b in make_eval_dataset(samples, cfg, 4)]
    again = [b for b in make_eval_dataset(samples, plain, 4)]
    for a, b in zip(evaluated, again):
        np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())


@pytest.mark.parametrize("geometry, side", [("d4", 128), ("rot180", 64)])
def test_config_rejects_rotation_of_non_square_inputs(geometry, side):
    if geometry == "d4":
        with pytest.raises(ValueError, match="augment_geometry='d4'.*square"):
            DataConfig(width=side, height=64, augment_geometry=geometry)
    else:
        assert DataConfig(width=128, height=side, augment_geometry=geometry).augment_geometry == "rot180"
    with pytest.raises(ValueError, match="augment_jitter"):
        DataConfig(augment_jitter=0.9)
