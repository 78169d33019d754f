"""The row-GEMM convolution equals tf.nn.conv2d (values and both gradients); where it is used."""

from __future__ import annotations

import contextlib
import gc
import weakref

import numpy as np
import pytest
import tensorflow as tf

from kerasdec.models import rowconv
from kerasdec.models.layers import ConvBlock, FeatureNorm
from kerasdec.models.rowconv import native_convolutions, row_gemm_conv2d, use_row_gemm


def conv_and_grads(conv, x: tf.Tensor, kernel: tf.Tensor, dy: tf.Tensor) -> list[np.ndarray]:
    with tf.GradientTape() as tape:
        tape.watch([x, kernel])
        y = conv(x, kernel)
        loss = tf.reduce_sum(y * dy)
    return [y.numpy(), *(g.numpy() for g in tape.gradient(loss, [x, kernel]))]


@pytest.mark.parametrize("shape,k", [((2, 6, 5, 3), 9), ((1, 16, 12, 4), 15), ((2, 4, 4, 2), 15)])
def test_values_and_gradients_equal_conv2d(shape, k):
    # (2, 4, 4, 2) with k = 15: the map is smaller than the kernel, so some kernel rows see only
    # padding; their gradient must be exactly zero, as conv2d's is.
    rng = np.random.default_rng(k)
    x = tf.constant(rng.normal(size=shape).astype("float32"))
    kernel = tf.constant(rng.normal(size=(k, k, shape[-1], 5)).astype("float32"))
    dy = tf.constant(rng.normal(size=shape[:3] + (5,)).astype("float32"))
    ours = conv_and_grads(row_gemm_conv2d, x, kernel, dy)
    reference = conv_and_grads(lambda a, b: tf.nn.conv2d(a, b, 1, "SAME"), x, kernel, dy)
    for got, want in zip(ours, reference):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    unused = [a for a in range(k) if abs(a - k // 2) >= shape[1]]
    assert all(not ours[2][a].any() for a in unused)


def test_runs_in_bfloat16_close_to_float32():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 8, 8, 4)).astype("float32")
    kernel = rng.normal(size=(9, 9, 4, 6)).astype("float32")
    y16 = row_gemm_conv2d(tf.cast(x, tf.bfloat16), tf.cast(kernel, tf.bfloat16))
    assert y16.dtype == tf.bfloat16
    want = tf.nn.conv2d(x, kernel, 1, "SAME").numpy()
    np.testing.assert_allclose(tf.cast(y16, tf.float32).numpy(), want, atol=0.05 * np.abs(want).max())


def test_used_only_for_large_odd_kernels_on_small_static_maps_without_gpu(monkeypatch):
    gpu = bool(tf.config.list_logical_devices("GPU"))
    assert use_row_gemm((2, 16, 16, 64), 15) is not gpu
    assert not use_row_gemm((2, 16, 16, 64), 5)  # the 5×5 blocks keep oneDNN
    assert not use_row_gemm((2, None, None, 64), 15)  # e.g. a SavedModel signature of any size
    assert not use_row_gemm((2, 128, 64, 64), 15)  # above MAX_POSITIONS: memory grows with the map
    with native_convolutions():
        assert not use_row_gemm((2, 16, 16, 64), 15)
    assert use_row_gemm((2, 16, 16, 64), 15) is not gpu
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: ["GPU:0"])
    assert not use_row_gemm((2, 16, 16, 64), 15)  # cuDNN on a GPU


def test_conv_block_gives_the_same_output_and_kernel_gradient_either_way():
    block = ConvBlock(6, 9, name="big")
    x = tf.constant(np.random.default_rng(2).random((2, 8, 8, 3)).astype("float32"))
    assert use_row_gemm(x.shape, 9) or tf.config.list_logical_devices("GPU")

    def run():
        with tf.GradientTape() as tape:
            y = block(x)
            loss = tf.reduce_sum(y * tf.range(6, dtype=tf.float32))
        return y.numpy(), tape.gradient(loss, block.conv.kernel).numpy()

    fast = run()
    with native_convolutions():
        native = run()
    for got, want in zip(fast, native):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_feature_norm_gradient_matches_finite_differences():
    # The cheaper formulation (scale·rsqrt on the statistics, one multiply-add on the map) keeps the
    # analytic gradient of the published formula: compare with central differences in float64.
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 4, 5, 3)) * rng.uniform(0.5, 3.0, size=(2, 1, 1, 3))
    layer = FeatureNorm(dtype="float64")
    layer.build(x.shape)
    layer.set_weights([rng.normal(size=3), rng.normal(size=3)])
    theoretical, numerical = tf.test.compute_gradient(layer, [tf.constant(x)], delta=1e-6)
    np.testing.assert_allclose(theoretical[0], numerical[0], rtol=1e-5, atol=1e-7)
    assert rowconv.MAX_POSITIONS >= 32 * 32  # 256×256 inputs (a 32×32 map) take the fast path


def _trace_training(layer: ConvBlock, x: tf.Tensor) -> weakref.ref:
    """Trace and run one kernel-gradient step; return a weak reference to the traced graph."""
    @tf.function
    def step(x: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x) * tf.range(3, dtype=tf.float32))
        return tape.gradient(loss, layer.conv.kernel)

    assert float(tf.reduce_sum(tf.abs(step(x)))) > 0
    return weakref.ref(step.get_concrete_function(x).graph)


def _traced_graph_kept(release: bool) -> bool:
    """Whether a training graph traced through the row-GEMM gradient (and with it the weights it
    captured) stays alive once its layer and function are dropped."""
    block = rowconv.released_custom_gradients() if release else contextlib.nullcontext()
    with block:
        x = tf.constant(np.random.default_rng(3).random((1, 8, 8, 2)).astype("float32"))
        assert use_row_gemm(x.shape, 9)
        layer = ConvBlock(3, 9, name="big")
        layer(x)  # built outside the traced function
        graph = _trace_training(layer, x)
        del layer
    gc.collect()
    return graph() is not None


def test_models_trained_inside_the_block_are_freed_after_it():
    assert _traced_graph_kept(release=False)  # TensorFlow's gradient registry holds the traced graph
    assert not _traced_graph_kept(release=True)
