"""A "same" convolution computed as one matrix product per kernel row: the 15×15×1024 block on CPUs.

Why: the profiler (benchmarks/README.md) shows 2/3 of a CPU training step in the 15×15 convolution
(64 → 1024 channels), where oneDNN's direct convolution reaches only a third of this machine's matmul
rate and reorders the 59 MB kernel on every call. Written as matrix products it runs at the matmul
rate: for kernel row a (offset d = a − k//2), every output row i gets ``cols[i + d] @ W[a]``, where
``cols`` (B, H, W, k·C) holds the k horizontally shifted copies of the input side by side and
``W[a]`` is the (k·C, O) slice of the kernel. Rows of the input that fall into the zero padding are
never multiplied (at a 16×16 map that skips 23% of the work). The backward pass is written by hand
in the same form (three matmuls per kernel row), because TensorFlow's automatic one would turn each
slice into a full-size zero tensor.

It is the same linear map as ``tf.nn.conv2d(x, kernel, 1, "SAME")`` (odd k); only the order of the
floating-point sums differs (≈1e-6 relative in float32). Its transient memory grows with
k × H × W × O per image, so it is used only where the map is small (``MAX_POSITIONS``), the shape is
static, and no GPU is visible (cuDNN is better there); everything else keeps ``tf.nn.conv2d``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import tensorflow as tf

logger = logging.getLogger(__name__)

MIN_KERNEL = 9  # only large kernels: the 5×5 blocks are fine in oneDNN
MAX_POSITIONS = 4096  # H·W of the conv's input at most (a 64×64 map: 512×512 images); ~250 MB/image
_enabled = [True]


@contextlib.contextmanager
def native_convolutions() -> Iterator[None]:
    """Within the block, models traced use ``tf.nn.conv2d`` everywhere (e.g. for a portable graph)."""
    previous = _enabled[0]
    _enabled[0] = False
    try:
        yield
    finally:
        _enabled[0] = previous


@contextlib.contextmanager
def released_custom_gradients() -> Iterator[None]:
    """Forget, at the end of the block, the gradient functions registered inside it.

    Why: every trace of :func:`row_gemm_conv2d` in a graph (``tf.custom_gradient``) registers its
    backward function in TensorFlow's global gradient registry under a new name, and never removes
    it. That function closes over the traced graph and through it the model's variables, so every
    model trained in a process stayed in memory (measured: 80–95 MB per 64×64 model, ~60 MB of it
    the weights; ``keras.backend.clear_session()`` does not free it). The registered function is only
    called while a gradient is being traced; once a training function is traced it is not needed.
    Uses TensorFlow's private registry (``ops._gradient_registry``); if that ever moves, this does
    nothing (with a debug message) and models are kept as before.
    """
    registry = _gradient_registry()
    before = set(registry) if registry is not None else set()
    try:
        yield
    finally:
        if registry is not None:
            for name in set(registry) - before:
                if name.startswith("CustomGradient-"):
                    del registry[name]


def _gradient_registry() -> dict | None:
    from tensorflow.python.framework import ops  # private: see released_custom_gradients

    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    if not isinstance(registry, dict):
        logger.debug("TensorFlow's gradient registry not found; traced gradients are not released")
        return None
    return registry


def use_row_gemm(input_shape: tf.TensorShape | tuple, kernel_size: int) -> bool:
    """Whether :func:`row_gemm_conv2d` should replace ``tf.nn.conv2d`` for this input and kernel.

    Args:
        input_shape: (B, H, W, C) as known at trace time.
        kernel_size: the square, odd kernel size k.

    Returns:
        True for k >= MIN_KERNEL (odd), a static H·W <= MAX_POSITIONS, no visible GPU, and not
        inside :func:`native_convolutions`.
    """
    shape = tf.TensorShape(input_shape)
    if not _enabled[0] or kernel_size < MIN_KERNEL or kernel_size % 2 == 0 or shape.rank != 4:
        return False
    height, width, channels = shape[1], shape[2], shape[3]
    if height is None or width is None or channels is None or height * width > MAX_POSITIONS:
        return False
    return not tf.config.list_logical_devices("GPU")


def _row_ranges(height: int, k: int) -> list[tuple[int, int, int, int]]:
    """(kernel row a, first input row, end input row, first output row) of every useful kernel row."""
    ranges = []
    for a in range(k):
        d = a - k // 2
        lo, hi = max(0, d), height + min(0, d)
        if hi > lo:
            ranges.append((a, lo, hi, lo - d))
    return ranges


@tf.custom_gradient
def row_gemm_conv2d(x: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """``tf.nn.conv2d(x, kernel, strides=1, padding="SAME")`` for an odd k×k kernel, as matmuls.

    Args:
        x: (B, H, W, C) with static H, W, C.
        kernel: (k, k, C, O), same dtype as ``x``.

    Returns:
        (B, H, W, O).

    Example:
        >>> y = row_gemm_conv2d(tf.ones((1, 16, 16, 64)), tf.ones((15, 15, 64, 1024)))
    """
    _, height, width, channels = x.shape
    k, outputs = kernel.shape[0], kernel.shape[-1]
    p, kc = k // 2, k * channels
    padded = tf.pad(x, [[0, 0], [0, 0], [p, p], [0, 0]])  # (B, H, W + 2p, C)
    cols = tf.concat([padded[:, :, b:b + width, :] for b in range(k)], axis=-1)  # (B, H, W, k·C)
    rows_kernel = tf.reshape(kernel, (k, kc, outputs))  # W[a]: (k·C, O)
    ranges = _row_ranges(height, k)

    def band(tensor: tf.Tensor, lo: int, hi: int, depth: int) -> tf.Tensor:
        return tf.reshape(tensor[:, lo:hi], (-1, depth))  # (B·(hi − lo)·W, depth)

    def unband(matrix: tf.Tensor, lo: int, hi: int, depth: int) -> tf.Tensor:
        rows = tf.reshape(matrix, (-1, hi - lo, width, depth))
        return tf.pad(rows, [[0, 0], [lo, height - hi], [0, 0], [0, 0]])  # back to H rows

    parts = []
    for a, lo, hi, out_lo in ranges:
        product = tf.matmul(band(cols, lo, hi, kc), rows_kernel[a])  # (·, O)
        parts.append(unband(product, out_lo, out_lo + hi - lo, outputs))
    y = tf.add_n(parts)  # (B, H, W, O)

    def grad(dy: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.name_scope("row_gemm_conv2d_grad"):  # named, so profiles can attribute the backward pass
            return _grad(dy)

    def _grad(dy: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        d_kernel = [tf.zeros((kc, outputs), kernel.dtype)] * k
        d_cols = []
        for a, lo, hi, out_lo in ranges:
            dy_band = band(dy, out_lo, out_lo + hi - lo, outputs)  # (·, O)
            d_kernel[a] = tf.matmul(band(cols, lo, hi, kc), dy_band, transpose_a=True)  # (k·C, O)
            d_cols.append(unband(tf.matmul(dy_band, rows_kernel[a], transpose_b=True), lo, hi, kc))
        d_cols = tf.add_n(d_cols)  # (B, H, W, k·C)
        d_padded = tf.add_n([tf.pad(d_cols[..., b * channels:(b + 1) * channels],
                                    [[0, 0], [0, 0], [b, k - 1 - b], [0, 0]]) for b in range(k)])
        return d_padded[:, :, p:p + width, :], tf.reshape(tf.stack(d_kernel), kernel.shape)

    return y, grad
