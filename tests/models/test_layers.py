"""FeatureNorm, GradientMultiplier and ConvBlock against the formulas of docs/method.md#network."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasdec.models.layers import ConvBlock, FeatureNorm, GradientMultiplier


def numpy_feature_norm(x: np.ndarray, scale: np.ndarray, bias: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    """The formula of docs/method.md#network in float64: scale·(x − mean)/sqrt(std_unbiased + eps) + bias."""
    x = x.astype(np.float64)
    mean = x.mean(axis=(1, 2), keepdims=True)
    std = x.std(axis=(1, 2), ddof=1, keepdims=True)
    return scale * (x - mean) / np.sqrt(std + eps) + bias


@pytest.fixture
def restore_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_feature_norm_matches_numpy_formula():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(3, 5, 7, 4)) * rng.uniform(0.01, 5.0, size=(3, 1, 1, 4))).astype("float32")
    layer = FeatureNorm(name="norm")
    layer.build(x.shape)
    scale, bias = rng.normal(size=4), rng.normal(size=4)
    layer.set_weights([scale.astype("float32"), bias.astype("float32")])
    np.testing.assert_allclose(layer(x).numpy(), numpy_feature_norm(x, scale, bias), atol=1e-5, rtol=1e-5)


def test_feature_norm_uses_sqrt_of_std_not_of_variance():
    x = np.array([0.0, 0.0, 4.0, 4.0], "float32").reshape(1, 2, 2, 1)  # unbiased std = 4/sqrt(3)
    y = FeatureNorm(epsilon=0.0)(x).numpy().ravel()
    std = 4.0 / np.sqrt(3.0)
    np.testing.assert_allclose(y, np.array([-2.0, -2.0, 2.0, 2.0]) / np.sqrt(std), rtol=1e-6)


def test_feature_norm_is_finite_on_a_1x1_map_with_finite_gradients():
    x = tf.constant(np.random.default_rng(1).normal(size=(2, 1, 1, 3)).astype("float32"))
    layer = FeatureNorm()
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * tf.constant([1.0, 2.0, 3.0]))
    grads = tape.gradient(loss, [x] + layer.trainable_variables)
    np.testing.assert_array_equal(y.numpy(), np.zeros((2, 1, 1, 3)))  # (x − mean) = 0 → bias = 0
    for g in grads:
        assert np.all(np.isfinite(g.numpy()))
    np.testing.assert_array_equal(grads[2].numpy(), [2.0, 4.0, 6.0])  # d/d bias, summed over the batch


def test_feature_norm_stays_float32_under_mixed_precision(restore_policy):
    keras.mixed_precision.set_global_policy("mixed_float16")
    # A float16 sum of squares over this map overflows (4096 · 200² > 65504); float32 does not.
    x = (np.random.default_rng(5).normal(size=(1, 64, 64, 1)) * 200.0).astype("float16")
    layer = FeatureNorm()
    y = layer(tf.constant(x))
    assert layer.compute_dtype == "float32" and y.dtype == tf.float32
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.sum(np.square(x - x.mean(), dtype=np.float16), dtype=np.float16))
    expected = numpy_feature_norm(x.astype(np.float32), np.ones(1), np.zeros(1))
    np.testing.assert_allclose(y.numpy(), expected, atol=1e-4, rtol=1e-4)


def test_feature_norm_config_round_trip():
    layer = FeatureNorm(epsilon=0.01, name="fn")
    clone = FeatureNorm.from_config(layer.get_config())
    assert clone.epsilon == 0.01 and clone.name == "fn" and clone.dtype_policy.name == "float32"


def test_gradient_multiplier_forward_identity_backward_scaled():
    x = tf.constant(np.random.default_rng(2).normal(size=(2, 3)).astype("float32"))
    layer = GradientMultiplier(0.25)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(3.0 * y)
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), np.full((2, 3), 0.75))
    assert not layer.m.trainable and layer.trainable_variables == []


def test_gradient_multiplier_variable_changes_without_retrace():
    layer = GradientMultiplier(0.0)
    traces = []

    @tf.function
    def grad(x):
        traces.append(1)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x))
        return tape.gradient(loss, x)

    x = tf.ones((4,))
    np.testing.assert_array_equal(grad(x).numpy(), np.zeros(4))
    layer.m.assign(1.0)
    np.testing.assert_array_equal(grad(x).numpy(), np.ones(4))
    assert len(traces) == 1
    assert GradientMultiplier.from_config(layer.get_config()).multiplier == 0.0


def test_conv_block_initialiser_is_untruncated_normal_with_fan_avg_sigma():
    keras.utils.set_random_seed(3)
    block = ConvBlock(64, 5, name="block")
    y = block(np.random.default_rng(3).random((1, 8, 8, 32)).astype("float32"))
    kernel = block.conv.kernel.numpy()
    sigma = np.sqrt(2.0 / (25 * 32 + 25 * 64))
    assert kernel.shape == (5, 5, 32, 64) and block.conv.bias is None
    assert abs(kernel.std() / sigma - 1.0) < 0.02 and abs(kernel.mean()) < 0.01 * sigma
    assert np.abs(kernel).max() > 3.0 * sigma  # a truncated normal would stop at 2σ
    assert y.shape == (1, 8, 8, 64) and float(tf.reduce_min(y)) == 0.0  # ReLU applied
    assert [v.path.split("/", 1)[1] for v in block.trainable_variables] == [
        "conv/kernel", "norm/scale", "norm/bias"]


def test_conv_block_without_relu_and_config_round_trip():
    block = ConvBlock(1, 1, relu=False, epsilon=0.002, name="head")
    y = block(np.random.default_rng(4).random((2, 8, 8, 16)).astype("float32"))
    assert float(tf.reduce_min(y)) < 0.0  # normalised logits keep their sign
    clone = ConvBlock.from_config(block.get_config())
    assert (clone.filters, clone.kernel_size, clone.relu) == (1, 1, False)
    assert (clone.epsilon, clone.name) == (0.002, "head")
