"""tf.data pipeline: batch contract, weights, cardinality, epochs from the sampler, caching, errors."""

from __future__ import annotations

import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf

from kerasdec.config import DataConfig
from kerasdec.data.decode import read_image, read_mask
from kerasdec.data.pipeline import ElementLoader, make_eval_dataset, make_train_dataset
from kerasdec.data.samples import Sample
from kerasdec.data.sampling import FrequencySampler
from kerasdec.data.targets import make_element

CFG = DataConfig(height=64, width=64, channels=1, w_pos=4.0, p=1.0)
N_SAMPLES = 12  # 0, 1, 3 segmented positives; 2 image-label-only positive; 4..11 negatives
BATCH = 3


def _value(i: int) -> int:
    return 10 + 20 * i  # each image is constant with its own grey value, to identify it in a batch


def _write_dataset(root: Path) -> list[Sample]:
    samples = []
    for i in range(N_SAMPLES):
        image_path = root / f"{i:02d}.png"
        cv2.imwrite(str(image_path), np.full((64, 96), _value(i), dtype=np.uint8))
        positive, mask_path = i < 4, None
        if i in (0, 1, 3):
            mask = np.zeros((64, 96), dtype=np.uint8)
            mask[8 + i:40, 12:60 + i] = 255
            mask_path = root / f"{i:02d}_GT.png"
            cv2.imwrite(str(mask_path), mask)
        samples.append(Sample(name=f"{i:02d}", image_path=image_path, is_positive=positive,
                              is_segmented=i != 2, mask_path=mask_path))
    return samples


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> list[Sample]:
    return _write_dataset(tmp_path_factory.mktemp("pipeline"))


def _sampler(samples: list[Sample], seed: int = 3) -> FrequencySampler:
    return FrequencySampler([s.is_positive for s in samples], seed=seed)


def _collect(ds: tf.data.Dataset) -> tuple[list[int], list]:
    """Sample order (recovered from the grey values) and the batches as numpy."""
    batches = [tf.nest.map_structure(lambda t: t.numpy(), b) for b in ds]
    order = [(round(float(x.mean()) * 255) - 10) // 20 for b in batches for x in b[0]]
    return order, batches


def _expected(sample: Sample):
    image = read_image(sample.image_path, CFG.channels)
    return make_element(image, read_mask(sample, image.shape[:2]), sample, CFG)


def test_train_batches_follow_the_contract(samples):
    sampler = _sampler(samples)
    ds = make_train_dataset(samples, CFG, BATCH, sampler)
    n_batches = math.ceil(sampler.epoch_size / BATCH)
    assert sampler.epoch_size == 8 and int(ds.cardinality()) == n_batches == 3
    order, batches = _collect(ds)
    assert len(batches) == n_batches
    assert [b[0].shape[0] for b in batches] == [3, 3, 2]  # the last partial batch is kept
    assert order == sampler.indices(0).tolist()
    x, y, w = batches[0]
    assert x.shape == (3, 64, 64, 1) and y["seg"].shape == w["seg"].shape == (3, 8, 8, 1)
    assert y["decision"].shape == w["decision"].shape == (3, 1)
    for array in (x, y["seg"], y["decision"], w["seg"], w["decision"]):
        assert array.dtype == np.float32
    flat = [(x[j], y["seg"][j], y["decision"][j], w["seg"][j], w["decision"][j])
            for x, y, w in batches for j in range(x.shape[0])]
    for index, (xj, seg, label, seg_w, dec_w) in zip(order, flat):
        expected = _expected(samples[index])
        np.testing.assert_allclose(xj, expected.image, atol=1e-6)
        np.testing.assert_allclose(seg, expected.seg, atol=1e-6)
        np.testing.assert_allclose(seg_w, expected.seg_weight, atol=1e-6)
        assert label[0] == float(samples[index].is_positive) and dec_w[0] == 1.0
        if index == 2:
            assert seg_w.max() == 0.0  # image-label-only positive: no segmentation loss
        elif index >= 4:
            np.testing.assert_array_equal(seg_w, np.ones((8, 8, 1)))  # negatives
            np.testing.assert_array_equal(seg, np.zeros((8, 8, 1)))
        else:
            assert seg.max() > 0.5 and seg_w.max() > 1.0  # weighted defect pixels


def test_each_iteration_reads_current_epoch_and_is_seeded(samples):
    sampler = _sampler(samples, seed=11)
    ds = make_train_dataset(samples, CFG, BATCH, sampler)
    orders = []
    for epoch in (0, 1, 2):
        sampler.current_epoch = epoch
        orders.append(_collect(ds)[0])
        assert orders[-1] == sampler.indices(epoch).tolist()
    assert orders[0] != orders[1]
    twin = _sampler(samples, seed=11)
    twin_ds = make_train_dataset(samples, CFG, BATCH, twin)
    twin.current_epoch = 1
    _, a = _collect(twin_ds)
    sampler.current_epoch = 1
    _, b = _collect(ds)
    for batch_a, batch_b in zip(a, b):
        tf.nest.map_structure(np.testing.assert_array_equal, batch_a, batch_b)


def test_eval_every_sample_once_in_order(samples):
    ds = make_eval_dataset(samples, CFG, batch_size=5)
    assert int(ds.cardinality()) == 3
    order, batches = _collect(ds)
    assert order == list(range(N_SAMPLES))
    assert [b[0].shape[0] for b in batches] == [5, 5, 2]
    labels = np.concatenate([b[1]["decision"][:, 0] for b in batches])
    np.testing.assert_array_equal(labels, [1, 1, 1, 1] + [0] * 8)
    assert _collect(ds)[0] == order


def test_decoded_elements_are_cached(tmp_path):
    samples = _write_dataset(tmp_path)
    cached = make_eval_dataset(samples, CFG, batch_size=4)
    uncached = make_eval_dataset(samples, CFG, batch_size=4, cache_bytes=0)
    first = _collect(cached)[1]
    _collect(uncached)
    samples[5].image_path.unlink()  # from now on only the cache can provide image 5
    again = _collect(cached)[1]
    for batch_a, batch_b in zip(first, again):
        tf.nest.map_structure(np.testing.assert_array_equal, batch_a, batch_b)
    with pytest.raises(tf.errors.OpError, match=re.escape(str(samples[5].image_path))):
        _collect(uncached)


def test_missing_files_fail_when_the_dataset_is_built(tmp_path):
    samples = _write_dataset(tmp_path)
    samples[7].image_path.unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(samples[7].image_path))):
        make_train_dataset(samples, CFG, BATCH, _sampler(samples))
    samples = _write_dataset(tmp_path)
    samples[1].mask_path.unlink()
    message = "Mask file not found: " + re.escape(str(samples[1].mask_path))
    with pytest.raises(FileNotFoundError, match=message):
        make_eval_dataset(samples, CFG, BATCH)


def test_corrupt_image_and_mask_of_another_size_fail_before_training(tmp_path):
    # Preloading (the default) decodes every sample when the dataset is built: a corrupt negative
    # that the sampler would first draw in a late epoch still fails now, as a plain ValueError.
    samples = _write_dataset(tmp_path)
    samples[6].image_path.write_bytes(b"not a png at all" * 8)
    unreadable = re.escape(str(samples[6].image_path)) + " is not a readable image"
    with pytest.raises(ValueError, match=unreadable):
        make_train_dataset(samples, CFG, BATCH, _sampler(samples))
    with pytest.raises(ValueError, match=unreadable):
        make_eval_dataset(samples, CFG, BATCH)
    # Without preloading the same message arrives from iteration, wrapped by tf.numpy_function.
    with pytest.raises(tf.errors.InvalidArgumentError, match=unreadable):
        _collect(make_eval_dataset(samples, CFG, BATCH, preload=False))
    samples = _write_dataset(tmp_path)
    cv2.imwrite(str(samples[3].mask_path), np.zeros((32, 96), dtype=np.uint8))
    message = re.escape(f"Mask {samples[3].mask_path} is 96x32 (WxH) but its image "
                        f"{samples[3].image_path} is 96x64")
    with pytest.raises(ValueError, match=message):
        make_train_dataset(samples, CFG, BATCH, _sampler(samples))
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        _collect(make_train_dataset(samples, CFG, BATCH, _sampler(samples), preload=False))


def test_bad_arguments(samples):
    with pytest.raises(ValueError, match="batch_size=0; expected >= 1"):
        make_eval_dataset(samples, CFG, 0)
    with pytest.raises(ValueError, match="samples is empty"):
        make_eval_dataset([], CFG, 2)
    with pytest.raises(ValueError, match="sampler covers 11 samples but samples has 12"):
        make_train_dataset(samples, CFG, 2, FrequencySampler([True] + [False] * 10, seed=0))


def test_published_targets_from_an_antialiased_mask(tmp_path):
    # The reference reads a mask as gray value / 255, resizes it, averages 17×17 windows (stride 8,
    # reflect padding 8) and takes the maximum of that 1/8 map as the decision target. A 1-px
    # antialiased scratch has no pixel above 127, so the binary rule would see no defect at all.
    image = np.full((80, 80), 100, np.uint8)
    mask = np.zeros((80, 80), np.uint8)
    cv2.line(mask, (5, 12), (70, 60), 255, 1, cv2.LINE_AA)
    mask = (mask * 0.45).astype(np.uint8)  # faint: at most 114
    assert cv2.imwrite(str(tmp_path / "i.png"), image) and cv2.imwrite(str(tmp_path / "m.png"), mask)
    sample = Sample(name="i", image_path=tmp_path / "i.png", mask_path=tmp_path / "m.png", is_positive=True)
    cfg = DataConfig(height=64, width=64, mask_values="gray", decision_target="mask_max", weighted_seg=False)
    loader = ElementLoader([sample], cfg, cache_bytes=0)
    _, seg, _, label, _ = loader(0)
    full = cv2.resize(mask, (64, 64)) / 255.0  # the reference's steps, written out
    padded = np.pad(full, 8, mode="reflect")
    expected = np.array([[padded[8 * r:8 * r + 17, 8 * c:8 * c + 17].mean() for c in range(8)]
                         for r in range(8)])
    np.testing.assert_allclose(seg[:, :, 0], expected, rtol=1e-6, atol=1e-7)
    assert label[0] == pytest.approx(expected.max(), rel=1e-6) and 0 < label[0] < 0.2
    binary = ElementLoader([sample], DataConfig(height=64, width=64, decision_target="mask_max"), 0)(0)
    assert binary[1].max() == 0 and binary[3][0] == 1.0  # binary rule: no defect pixel, target 1
