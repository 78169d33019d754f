"""Efficiency figures of ``kerasdec bench``: FLOPs per image from SegDecNet's layer shapes, and the
machine's measured matmul rate they are compared with."""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf

from kerasdec.models.segdec import DECISION_BLOCKS, SEGMENTATION_STAGES


def _taps(size: int, k: int) -> int:
    """Kernel taps inside the map, summed over the output positions of one axis ("same" padding)."""
    p = k // 2
    return sum(min(i + p, size - 1) - max(i - p, 0) + 1 for i in range(size))


def model_flops(width: int, height: int, channels: int = 1) -> dict[str, float]:
    """FLOPs per image of SegDecNet's convolutions and head, from the layer shapes.

    Counts 2 FLOPs per multiply-add that touches the image, not the zero padding (at a 16×16 map the
    15×15 kernel's padded taps would add 70%): a convolution costs 2·C_in·C_out·taps(H)·taps(W).
    Training step: forward + gradient w.r.t. the weights (same count) + gradient w.r.t. the inputs
    (same count, except for the first convolution, whose input needs none).

    Returns:
        {"forward": FLOPs, "train": FLOPs, "conv15_share": the 15×15×1024 block's share of forward}.
    """
    h, w, c = height, width, channels
    convs = []
    for stage in SEGMENTATION_STAGES:
        if stage == "pool":
            h, w = h // 2, w // 2
            continue
        filters, k = stage
        convs.append(2.0 * _taps(h, k) * _taps(w, k) * c * filters)
        c = filters
    big = convs[-1]
    convs.append(2.0 * h * w * c * 1)  # seg head: 1×1, 1024 → 1
    c = c + 1
    for filters, k in DECISION_BLOCKS:
        h, w = h // 2, w // 2
        convs.append(2.0 * _taps(h, k) * _taps(w, k) * c * filters)
        c = filters
    forward = sum(convs) + 2.0 * (2 * c + 2)
    return {"forward": forward, "train": 3 * forward - convs[0], "conv15_share": big / forward}


def matmul_gflops(dtype: tf.DType = tf.float32, n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of an n×n×n ``tf.matmul`` on this machine (median of ``repeats``)."""
    a = tf.random.uniform((n, n), dtype=tf.float32)
    a = tf.cast(a, dtype)
    matmul = tf.function(lambda x: tf.matmul(x, x))
    np.asarray(matmul(a))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.asarray(tf.cast(matmul(a)[0, 0], tf.float32))
        times.append(time.perf_counter() - start)
    return 2.0 * n ** 3 / float(np.median(times)) / 1e9
