"""The only tf.data code: sample indices → decode/cache → targets → (x, y, sample_weight) → batch.

Elements follow the shared batch contract:
``x`` (H, W, C) float32 in [0, 1]; ``y = {"seg": (H/8, W/8, 1), "decision": (1,)}``;
``sample_weight = {"seg": (H/8, W/8, 1), "decision": (1,)}`` (segmentation weight 0 for
image-label-only positives). Only Python ints cross into tf.data; decoding and targets run in
numpy/OpenCV inside ``tf.numpy_function``. Missing files are found when the dataset is built
(``FileNotFoundError``), and by default every image is decoded once then too (``preload``), so a
corrupt image or a mask of the wrong size is a ``ValueError`` naming the file before training starts,
not a crash in a later epoch when the sampler first draws it. Without preloading such an error
surfaces from iteration as a ``tf.errors.InvalidArgumentError`` containing the same text.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tensorflow as tf

from kerasdec.config import DataConfig
from kerasdec.data import augment, targets
from kerasdec.data.decode import read_image, read_mask
from kerasdec.data.samples import Sample

logger = logging.getLogger(__name__)

DEFAULT_CACHE_BYTES = 2 * 1024**3  # decoded images + targets kept in memory per dataset (2 GiB)
PREFETCH = tf.data.AUTOTUNE  # batches prefetched


class ElementLoader:
    """Sample index → the five float32 arrays of one element, cached in memory under a byte budget.

    The cache holds the uint8 image at input size and the (deterministic) targets; once the budget
    is used up, further samples are decoded on every read.

    Args:
        samples: the sample list the indices refer to.
        cfg: input size and target settings.
        cache_bytes: memory budget of the cache in bytes (0 = no caching).
    """

    def __init__(self, samples: Sequence[Sample], cfg: DataConfig,
                 cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.samples = list(samples)
        self.cfg = cfg
        self.cache_bytes = int(cache_bytes)
        self.cached_bytes = 0
        self._cache: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}  # key: (index, transform id)
        self._lock = threading.Lock()  # tf.data calls us from several threads

    def _compute(self, index: int, t: int) -> tuple[np.ndarray, ...]:
        sample = self.samples[index]
        image = read_image(sample.image_path, self.cfg.channels, self.cfg.max_pixels)  # (h, w, C) uint8
        dataset = f"{self.cfg.dataset} {self.cfg.root}"  # irregular masks: one warning per dataset
        gray = self.cfg.mask_values == "gray"  # the published presets: soft edges kept
        mask = read_mask(sample, image.shape[:2], dataset, self.cfg.max_pixels, gray)  # (h, w) uint8
        if t:  # geometry augmentation: transform the decoded pair, then build targets as usual
            image, mask = augment.transform(image, t), augment.transform(mask, t)
        image8 = targets.input_image(image, self.cfg)  # (H, W, C) uint8
        element = targets.make_element(image8, mask, sample, self.cfg)
        return image8, element.seg, element.seg_weight, element.label, element.label_weight

    def __call__(self, index: int | np.integer | np.ndarray) -> tuple[np.ndarray, ...]:
        """Return (image, seg, seg_weight, label, label_weight) as float32 arrays for one index."""
        image8, *rest = self.element(index)
        return (targets.to_float(image8), *rest)

    def element(self, index: int | np.integer | np.ndarray,
                t: int | np.integer | np.ndarray = 0) -> tuple[np.ndarray, ...]:
        """Like ``__call__`` but the image stays uint8 (H, W, C): what crosses into tf.data (4× fewer
        bytes through the GIL-holding ``numpy_function``; the float conversion runs as a TF op).
        ``t`` = geometry transform id (augment.py; 0 = identity), applied before the targets."""
        if int(index) < 0:  # sharding.PAD: fills a worker's slice of a short batch, contributes no loss
            image8, seg, seg_weight, label, label_weight = self.element(0)
            return image8, seg, np.zeros_like(seg_weight), label, np.zeros_like(label_weight)
        key = (int(index), int(t))
        entry = self._cache.get(key)
        if entry is None:
            entry = self._compute(*key)
            size = sum(a.nbytes for a in entry)
            with self._lock:
                if key not in self._cache and self.cached_bytes + size <= self.cache_bytes:
                    self._cache[key] = entry
                    self.cached_bytes += size
        return entry

    def preload(self) -> None:
        """Decode every sample once (filling the cache up to its budget); raise on the first bad file.

        Raises:
            ValueError: a corrupt image or a mask of another size than its image (file named).
        """
        logger.info("Decoding %d images (input %dx%d)", len(self.samples), self.cfg.width, self.cfg.height)
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # OpenCV releases the GIL
            for _ in pool.map(self, range(len(self.samples))):
                pass


def check_files(samples: Sequence[Sample]) -> None:
    """Raise FileNotFoundError naming the first missing image or mask file of ``samples``."""
    for sample in samples:
        for kind, path in (("image", sample.image_path), ("mask", sample.mask_path)):
            if path is not None and not Path(path).is_file():
                raise FileNotFoundError(f"{kind.capitalize()} file not found: {path} (sample "
                                        f"{sample.name!r}); expected an existing {kind} file")


def check_decodable(samples: Sequence[Sample], cfg: DataConfig) -> None:
    """Decode every sample once without keeping anything: bad files fail now, not after training.

    Raises:
        FileNotFoundError: a missing image or mask file.
        ValueError: a corrupt image or a mask of another size than its image (file named).
    """
    check_files(samples)
    ElementLoader(samples, cfg, cache_bytes=0).preload()


def _map_elements(ds: tf.data.Dataset, loader: ElementLoader, cfg: DataConfig,
                  batch_size: int, seed: int | None = None, drop_remainder: bool = False) -> tf.data.Dataset:
    """(index, epoch) elements → batches; with a ``seed``, the augmentation of ``cfg`` keyed by
    (seed, index, epoch); without one (evaluation) none."""
    h, w, c = cfg.height, cfg.width, cfg.channels
    shapes = [(h, w, c), (h // 8, w // 8, 1), (h // 8, w // 8, 1), (1,), (1,)]
    augmenting = seed is not None
    geometry = cfg.augment_geometry if augmenting else "none"
    amplitude = cfg.augment_jitter if augmenting else 0.0

    def load(index: tf.Tensor, epoch: tf.Tensor):
        key = augment.draw_key(seed or 0, index, epoch)
        t = augment.draw_transform(key, geometry) if geometry != "none" else tf.constant(0, tf.int64)
        arrays = tf.numpy_function(loader.element, [index, t], [tf.uint8] + [tf.float32] * 4,
                                   name="load_element")
        for array, shape in zip(arrays, shapes):
            array.set_shape(shape)
        image8, seg, seg_weight, label, label_weight = arrays
        x = tf.cast(image8, tf.float32) / 255.0  # = targets.to_float, outside the GIL
        x = augment.jitter(x, key, amplitude)  # image only; targets untouched
        return x, {"seg": seg, "decision": label}, {"seg": seg_weight, "decision": label_weight}

    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(PREFETCH)


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}; expected >= 1")


def make_train_dataset(samples: Sequence[Sample], cfg: DataConfig, batch_size: int, sampler,
                       cache_bytes: int = DEFAULT_CACHE_BYTES, preload: bool = True,
                       seed: int | None = None, drop_remainder: bool = False) -> tf.data.Dataset:
    """One epoch of training batches per iteration, in the order ``sampler`` draws.

    Each new iteration (Keras creates one per epoch) reads ``sampler.current_epoch`` afresh and
    yields the batches of ``sampler.indices(sampler.current_epoch)``; the last batch may be partial.

    Args:
        samples: the training samples; the sampler's indices refer to this list.
        cfg: input size and target settings.
        batch_size: samples per batch.
        sampler: a :class:`kerasdec.data.sampling.FrequencySampler` over ``samples``.
        cache_bytes: memory budget for decoded images and targets (default 2 GiB).
        preload: decode every sample now (default), so bad files fail here, not epochs later.
        seed: key of the augmentation draws (``cfg.augment_geometry``, ``cfg.augment_jitter``), with
            the sample index and the epoch; None = ``sampler.seed``.
        drop_remainder: drop an incomplete last batch (the published loader does; TrainConfig.drop_last).

    Returns:
        tf.data.Dataset of (x, y, sample_weight) batches with cardinality ceil(epoch_size / batch_size)
        (floor with ``drop_remainder``).

    Raises:
        FileNotFoundError: an image or mask file is missing.
        ValueError: ``batch_size`` < 1, the sampler was built for another number of samples, an epoch
            smaller than one batch with ``drop_remainder``, or
            (with ``preload``) a corrupt image or a mask of the wrong size.
    """
    _check_batch_size(batch_size)
    if sampler.n_samples != len(samples):
        raise ValueError(f"sampler covers {sampler.n_samples} samples but samples has {len(samples)}; "
                         "expected a sampler built from these samples")
    if drop_remainder and sampler.epoch_size < batch_size:
        raise ValueError(f"an epoch has {sampler.epoch_size} images, fewer than batch_size={batch_size}: "
                         "dropping the incomplete last batch leaves nothing to train on; expected a "
                         "smaller --batch-size")
    check_files(samples)
    loader = ElementLoader(samples, cfg, cache_bytes)
    if preload:
        loader.preload()

    def generate():  # called anew for every iteration of the dataset
        epoch = sampler.current_epoch
        logger.debug("train dataset: iterating epoch %d", epoch)
        for index in sampler.indices(epoch):
            yield int(index), epoch

    spec = (tf.TensorSpec((), tf.int64), tf.TensorSpec((), tf.int64))  # (sample index, epoch)
    ds = tf.data.Dataset.from_generator(generate, output_signature=spec)
    ds = ds.apply(tf.data.experimental.assert_cardinality(sampler.epoch_size))
    return _map_elements(ds, loader, cfg, batch_size, sampler.seed if seed is None else seed, drop_remainder)


def make_eval_dataset(samples: Sequence[Sample], cfg: DataConfig, batch_size: int,
                      cache_bytes: int = DEFAULT_CACHE_BYTES, preload: bool = True) -> tf.data.Dataset:
    """Every sample once, in list order, batched (the last batch may be partial).

    Args:
        samples: the samples to evaluate.
        cfg: input size and target settings.
        batch_size: samples per batch.
        cache_bytes: memory budget for decoded images and targets (default 2 GiB).
        preload: decode every sample now (default), so bad files fail here with a plain ValueError.

    Returns:
        tf.data.Dataset of (x, y, sample_weight) batches with cardinality ceil(len(samples) / batch_size).

    Raises:
        FileNotFoundError: an image or mask file is missing.
        ValueError: ``samples`` is empty, ``batch_size`` < 1, or (with ``preload``) a corrupt image
            or a mask of the wrong size.
    """
    _check_batch_size(batch_size)
    if not samples:
        raise ValueError("samples is empty; expected at least one sample to evaluate")
    check_files(samples)
    loader = ElementLoader(samples, cfg, cache_bytes)
    if preload:
        loader.preload()
    indices = np.arange(len(samples), dtype=np.int64)
    ds = tf.data.Dataset.from_tensor_slices((indices, np.zeros_like(indices)))  # (index, epoch 0)
    return _map_elements(ds, loader, cfg, batch_size)
