"""Building blocks of SegDecNet (docs/method.md#network): FeatureNorm, GradientMultiplier, ConvBlock.

Every layer stores its constructor arguments in ``get_config`` and is registered for ``.keras``
saving under the package name ``kerasdec``. The model code needs the TensorFlow backend of Keras
(it uses ``tf`` ops directly); importing this module under another backend raises ImportError.
"""

from __future__ import annotations

import logging
from typing import Any

import keras

logger = logging.getLogger(__name__)


def require_tensorflow_backend() -> None:
    """Fail fast when Keras runs on a backend other than TensorFlow.

    Raises:
        ImportError: naming the active backend and how to select TensorFlow.
    """
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ImportError(
            f"kerasdec.models needs the TensorFlow backend of Keras, but KERAS_BACKEND is {backend!r}; "
            "set KERAS_BACKEND=tensorflow in the environment (before Python imports keras)")


require_tensorflow_backend()

import tensorflow as tf  # noqa: E402  (only after the backend check, so the error above comes first)

from kerasdec.models.rowconv import row_gemm_conv2d, use_row_gemm  # noqa: E402


def wide_dtype() -> str:
    """The dtype of statistics, logits and losses: float64 under a float64 policy, else float32.

    Never below float32 (a float16 variance over a large map overflows), and never below the policy
    either: under ``float64`` (equivalence checks against a float64 reference) every part of the
    network and of the loss runs in float64.
    """
    return "float64" if keras.config.dtype_policy().compute_dtype == "float64" else "float32"


@keras.saving.register_keras_serializable(package="kerasdec")
class FeatureNorm(keras.layers.Layer):
    """Per-sample, per-channel normalisation over H and W with a trainable scale and bias.

    ``y = scale * (x - mean) / sqrt(std + epsilon) + bias`` where ``std`` is the unbiased (n − 1)
    standard deviation over the H×W positions of one sample and channel. The square root is of
    ``std + epsilon``, not of the variance (as published). For a 1×1 map n − 1 is floored at 1, so
    the output is finite (the published network returns NaN there). No running statistics.

    Statistics and output are float32 under float32 and mixed policies (a float16 variance over a
    large map overflows) and float64 under a float64 policy, unless ``dtype`` is given explicitly.

    Args:
        epsilon: added to the standard deviation before the square root. Default 0.001.
        **kwargs: standard Layer arguments (name, dtype, ...). ``dtype`` defaults to
            :func:`wide_dtype` ("float32"; "float64" under a float64 policy).

    Example:
        >>> y = FeatureNorm(name="norm")(np.random.rand(2, 16, 16, 8).astype("float32"))
    """

    def __init__(self, epsilon: float = 0.001, **kwargs: Any) -> None:
        if kwargs.get("dtype") is None:
            kwargs["dtype"] = wide_dtype()
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape: tuple) -> None:
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"FeatureNorm {self.name!r}: input shape {tuple(input_shape)} has an unknown "
                             "channel count; expected a known last dimension")
        self.scale = self.add_weight(shape=(channels,), initializer="ones", name="scale")
        self.bias = self.add_weight(shape=(channels,), initializer="zeros", name="bias")

    def call(self, x: tf.Tensor) -> tf.Tensor:
        dtype = tf.float64 if self.compute_dtype == "float64" else tf.float32  # float64: gradient checks
        x = tf.cast(x, dtype)  # (B, H, W, C)
        n = tf.cast(tf.shape(x)[1] * tf.shape(x)[2], dtype)
        mean = tf.reduce_mean(x, axis=(1, 2), keepdims=True)  # (B, 1, 1, C)
        centred = x - mean
        variance = tf.reduce_sum(tf.square(centred), axis=(1, 2), keepdims=True) / tf.maximum(n - 1.0, 1.0)
        # sqrt has an infinite derivative at 0 (a 1×1 or constant map): take it only where positive,
        # so the gradient there is 0 instead of NaN; the forward value is the exact formula.
        positive = variance > 0.0
        std = tf.where(positive, tf.sqrt(tf.where(positive, variance, 1.0)), 0.0)  # (B, 1, 1, C)
        # scale / sqrt(std + eps) is formed on the (B, 1, 1, C) statistics, so the full-size map sees
        # one multiply-add instead of a multiply, a division and an add (same formula, fewer passes).
        factor = tf.cast(self.scale, dtype) * tf.math.rsqrt(std + self.epsilon)  # (B, 1, 1, C)
        return centred * factor + tf.cast(self.bias, dtype)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="kerasdec")
class GradientMultiplier(keras.layers.Layer):
    """Identity in the forward pass; multiplies the gradient by ``m`` in the backward pass.

    ``y = x * m + stop_gradient(x) * (1 - m)``. ``m`` is a non-trainable scalar variable, so a
    callback can ``assign`` it and an already compiled step sees the new value without retracing.
    With m = 0 the gradient through the layer is exactly zero.

    Args:
        multiplier: initial value of m. Default 1.0 (gradient passes unchanged).
        **kwargs: standard Layer arguments.
    """

    def __init__(self, multiplier: float = 1.0, **kwargs: Any) -> None:
        kwargs.setdefault("autocast", False)  # pass float32 inputs through as float32
        super().__init__(**kwargs)
        self.multiplier = float(multiplier)
        self.m = self.add_weight(shape=(), initializer=keras.initializers.Constant(self.multiplier),
                                 trainable=False, dtype="float32", name="m")
        self.built = True

    def call(self, x: tf.Tensor) -> tf.Tensor:
        m = tf.cast(self.m, x.dtype)
        return x * m + tf.stop_gradient(x) * (1.0 - m)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "multiplier": self.multiplier}


@keras.saving.register_keras_serializable(package="kerasdec")
class ConvBlock(keras.layers.Layer):
    """Conv2D (no bias, "same") → FeatureNorm → ReLU: the Block(c, k) of docs/method.md#network.

    Kernels start from an untruncated normal with σ = sqrt(2 / (fan_in + fan_out)), where the fans
    include k² (Keras' VarianceScaling with mode "fan_avg" computes exactly these fans).

    Args:
        filters: output channels c.
        kernel_size: square kernel size k.
        relu: apply the ReLU (False for the segmentation head). Default True.
        epsilon: FeatureNorm epsilon. Default 0.001.
        **kwargs: standard Layer arguments.
    """

    def __init__(self, filters: int, kernel_size: int, relu: bool = True, epsilon: float = 0.001,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.relu = bool(relu)
        self.epsilon = float(epsilon)
        init = keras.initializers.VarianceScaling(scale=1.0, mode="fan_avg",
                                                  distribution="untruncated_normal")
        self.conv = keras.layers.Conv2D(self.filters, self.kernel_size, padding="same", use_bias=False,
                                        kernel_initializer=init, dtype=self.dtype_policy, name="conv")
        self.norm = FeatureNorm(self.epsilon, name="norm")

    def build(self, input_shape: tuple) -> None:
        self.conv.build(input_shape)
        self.norm.build(tuple(input_shape[:-1]) + (self.filters,))

    def call(self, x: tf.Tensor) -> tf.Tensor:
        if use_row_gemm(x.shape, self.kernel_size):  # the 15×15 block on a CPU: see rowconv.py
            dtype = self.conv.compute_dtype
            y = row_gemm_conv2d(tf.cast(x, dtype), tf.cast(self.conv.kernel, dtype))
        else:
            y = self.conv(x)
        y = self.norm(y)  # (B, H, W, filters) float32
        if self.relu:
            y = tf.nn.relu(y)
        return tf.cast(y, self.compute_dtype)  # low precision between blocks under mixed precision

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "relu": self.relu, "epsilon": self.epsilon}
