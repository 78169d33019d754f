"""Training-time augmentation: a geometry drawn from a group, and brightness/contrast jitter.

Every draw is a stateless function of (seed, sample index, epoch): the same seed gives the same
batches, another epoch gives another draw, and a resumed run (whose sampler continues at the saved
epoch) sees exactly the draws of an uninterrupted one. No random state lives in the pipeline.

The geometry is applied to the DECODED image and mask (numpy, before resizing), so the 1/8 target
and the weight map are then built from the transformed mask by the usual code (targets.py): the
1/8 downsizing (reflect pad 8, 17×17 window, stride 8) is not symmetric under a flip of its output
grid, so transforming the 1/8 maps instead would shift them by one input pixel.

Transform ids 0..7: rotate by ``t % 4`` quarter turns (counter-clockwise), then flip left-right if
``t >= 4``. Groups (config.GEOMETRIES) are subsets of these ids.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# Transform ids of each geometry group (see the module docstring for the id convention).
GROUPS: dict[str, tuple[int, ...]] = {
    "none": (0,),
    "rot180": (0, 2),
    "flips": (0, 2, 4, 6),  # identity, 180°, left-right flip, up-down flip (= 180° then left-right)
    "d4": (0, 1, 2, 3, 4, 5, 6, 7),
}


def transform(array: np.ndarray, t: int) -> np.ndarray:
    """Apply transform id ``t`` (0..7) to an (h, w) or (h, w, C) array; returns a contiguous copy.

    Example:
        >>> transform(np.arange(4).reshape(2, 2), 4).tolist()  # left-right flip
        [[1, 0], [3, 2]]
    """
    if not 0 <= t < 8:
        raise ValueError(f"transform id {t}; expected 0..7")
    out = np.rot90(array, k=t % 4, axes=(0, 1))
    if t >= 4:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def draw_key(seed: int | tf.Tensor, index: tf.Tensor, epoch: tf.Tensor) -> tf.Tensor:
    """Stateless RNG key (2,) int64 of one (seed, sample index, epoch)."""
    key = tf.stack([tf.cast(seed, tf.int64), tf.constant(0x5EED, tf.int64)])
    key = tf.random.experimental.stateless_fold_in(key, tf.cast(epoch, tf.int64))
    return tf.random.experimental.stateless_fold_in(key, tf.cast(index, tf.int64))


def draw_transform(key: tf.Tensor, geometry: str) -> tf.Tensor:
    """A transform id (int64 scalar) drawn uniformly from the group ``geometry``."""
    group = tf.constant(GROUPS[geometry], tf.int64)
    pick = tf.random.stateless_uniform([], seed=key, minval=0, maxval=len(GROUPS[geometry]),
                                       dtype=tf.int64)
    return tf.gather(group, pick)


def jitter(x: tf.Tensor, key: tf.Tensor, amplitude: float) -> tf.Tensor:
    """Brightness ± amplitude and contrast ×(1 ± amplitude) about the image mean; clipped to [0, 1].

    Args:
        x: (H, W, C) float32 image in [0, 1].
        key: stateless RNG key (2,) from :func:`draw_key`.
        amplitude: half-width of both uniform draws; 0 returns ``x`` unchanged.

    Returns:
        (H, W, C) float32 in [0, 1].
    """
    if amplitude == 0:
        return x
    key = tf.random.experimental.stateless_fold_in(key, 1)  # apart from the geometry draw
    brightness, contrast = tf.unstack(tf.random.stateless_uniform(
        [2], seed=key, minval=-amplitude, maxval=amplitude))
    mean = tf.reduce_mean(x)
    return tf.clip_by_value((x - mean) * (1.0 + contrast) + mean + brightness, 0.0, 1.0)
