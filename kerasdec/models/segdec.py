"""The two-stage SegDecNet (shared/METHOD.md §1) and its training step (§2), as Keras 3 subclassed models.

``SegmentationNet`` maps images (B, H, W, C) to a 1024-channel volume and segmentation logits at
1/8 resolution; ``DecisionNet`` maps both to an image-level decision logit; ``SegDecNet`` composes
them, checks its input and trains with ``model.fit`` through an overridden ``train_step``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import keras

from kerasdec.config import DOWNSCALE, MIN_SIZE, check_input_size  # H, W multiples of 8, >= 64
from kerasdec.models.layers import ConvBlock, GradientMultiplier, require_tensorflow_backend, wide_dtype

require_tensorflow_backend()

import tensorflow as tf  # noqa: E402  (after the backend check)

from kerasdec.models.step import SegDecTrainingMixin  # noqa: E402

logger = logging.getLogger(__name__)

# Segmentation stage: (filters, kernel) per conv block, "pool" = MaxPool2 (METHOD.md §1).
SEGMENTATION_STAGES = ((32, 5), "pool", (64, 5), (64, 5), (64, 5), "pool",
                       (64, 5), (64, 5), (64, 5), (64, 5), "pool", (1024, 15))
# Decision stage on the 1025-channel concat: each block is preceded by a MaxPool2.
DECISION_BLOCKS = ((8, 5), (16, 5), (32, 5))


def check_input_shape(shape: tuple, channels: int) -> None:
    """Validate a SegDecNet input shape; unknown (None) dimensions are not checked.

    Args:
        shape: the input's shape, expected (B, H, W, C).
        channels: the channel count C the model was built for.

    Raises:
        ValueError: naming the shape received and the rule it breaks.
    """
    shape = tuple(shape)
    if len(shape) != 4:
        raise ValueError(f"SegDecNet input has shape {shape} ({len(shape)}-D); expected a 4-D batch "
                         "(B, H, W, C) of images")
    _, height, width, found = shape
    if found is not None and found != channels:
        raise ValueError(f"SegDecNet input has shape {shape} with {found} channels; expected C = "
                         f"{channels} (input_channels={channels})")
    if any(d is not None and d % DOWNSCALE for d in (height, width)):
        raise ValueError(f"SegDecNet input has shape {shape}; H and W must be divisible by {DOWNSCALE}")
    if any(d is not None and d < MIN_SIZE for d in (height, width)):
        raise ValueError(f"SegDecNet input has shape {shape}; H and W must be at least {MIN_SIZE} "
                         "(the decision stage pools the 1/8 map three more times)")


@keras.saving.register_keras_serializable(package="kerasdec")
class SegmentationNet(keras.Model):
    """Images (B, H, W, C) → (volume (B, H/8, W/8, 1024), seg logits (B, H/8, W/8, 1) float32).

    Args:
        input_channels: channels C of the input images. Default 1.
        **kwargs: standard Model arguments (name, dtype, ...).
    """

    def __init__(self, input_channels: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.input_channels = int(input_channels)
        stages, n_block, n_pool = [], 0, 0
        for stage in SEGMENTATION_STAGES:
            if stage == "pool":
                n_pool += 1
                stages.append(keras.layers.MaxPooling2D(2, name=f"pool{n_pool}"))
            else:
                n_block += 1
                stages.append(ConvBlock(*stage, name=f"block{n_block}"))
        self.stages = stages
        # Logits stay float32 (conv included: a 1×1 conv over 1024 channels is cheap); float64 under float64.
        self.head = ConvBlock(1, 1, relu=False, dtype=wide_dtype(), name="seg_head")

    def call(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        for stage in self.stages:
            x = stage(x)
        volume = x  # (B, H/8, W/8, 1024)
        seg = self.head(volume)  # (B, H/8, W/8, 1) float32
        return volume, seg

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "input_channels": self.input_channels}


@keras.saving.register_keras_serializable(package="kerasdec")
class DecisionNet(keras.Model):
    """[volume (B, h, w, 1024), seg logits (B, h, w, 1)] → decision logit (B, 1) float32.

    A GradientMultiplier sits on the 1025-channel concat and on the two pooled seg values, so with
    m = 0 the decision loss does not reach the segmentation stage.

    Args:
        multiplier: initial gradient multiplier m (0 = gradient adjustment on). Default 0.0.
        **kwargs: standard Model arguments.
    """

    def __init__(self, multiplier: float = 0.0, **kwargs: Any) -> None:
        kwargs.setdefault("autocast", False)  # keep the float32 seg logits float32 on entry
        super().__init__(**kwargs)
        self.multiplier = float(multiplier)
        self.gradient_multiplier = GradientMultiplier(self.multiplier, name="gradient_multiplier")
        stages = []
        for i, (filters, kernel) in enumerate(DECISION_BLOCKS, start=1):
            stages.append(keras.layers.MaxPooling2D(2, name=f"pool{i}"))
            stages.append(ConvBlock(filters, kernel, name=f"block{i}"))
        self.stages = stages
        limit = 1.0 / math.sqrt(2 * DECISION_BLOCKS[-1][0] + 2)  # U(±1/sqrt(fan_in)), fan_in = 66
        uniform = keras.initializers.RandomUniform(-limit, limit)
        self.dense = keras.layers.Dense(1, kernel_initializer=uniform, bias_initializer=uniform,
                                        dtype=wide_dtype(), name="decision_head")

    def call(self, inputs: list[tf.Tensor]) -> tf.Tensor:
        volume, seg = inputs
        x = tf.concat([volume, tf.cast(seg, volume.dtype)], axis=-1)  # (B, h, w, 1025)
        x = self.gradient_multiplier(x)
        for stage in self.stages:
            x = stage(x)
        x = tf.cast(x, self.dense.compute_dtype)  # (B, h/8, w/8, 32), float32 (float64 under float64)
        seg = tf.cast(seg, self.dense.compute_dtype)
        pooled_seg = tf.concat([tf.reduce_max(seg, axis=(1, 2)), tf.reduce_mean(seg, axis=(1, 2))], -1)
        pooled_seg = self.gradient_multiplier(pooled_seg)  # (B, 2)
        features = [tf.reduce_max(x, axis=(1, 2)), tf.reduce_mean(x, axis=(1, 2)), pooled_seg]
        return self.dense(tf.concat(features, axis=-1))  # (B, 66) → (B, 1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "multiplier": self.multiplier}


@keras.saving.register_keras_serializable(package="kerasdec")
class SegDecNet(SegDecTrainingMixin, keras.Model):
    """Segmentation stage + decision stage: images → {"decision": (B, 1), "seg": (B, H/8, W/8, 1)}.

    Both outputs are float32 logits under any dtype policy (float64 under a float64 policy).
    Non-trainable variables set by the callbacks of kerasdec.training.callbacks: ``seg_loss_weight``,
    ``cls_loss_weight`` and the gradient multiplier (``gradient_multiplier``).

    The model also knows how it is deployed (keras-hub keeps its image size in the config the same
    way): ``input_height`` × ``input_width``, the size it is trained at (recorded by
    ``build_for_training`` when not given), and ``threshold``, the decision threshold on the score
    (set by ``kerasdec fit`` after its test evaluation). Both travel in the .keras file, so predict
    and export need nothing else. The network itself accepts any multiple of 8 (>= 64).

    Args:
        input_channels: 1 (grayscale) or 3 (colour). Default 1.
        gradient_adjustment: start with m = 0 (decision loss stops at the segmentation stage).
            Default True.
        input_height: training input height H (multiple of 8, >= 64); None = not known yet.
        input_width: training input width W; given together with ``input_height``.
        threshold: decision threshold on sigmoid(decision) in [0, 1]; None = not evaluated yet.
        **kwargs: standard Model arguments.

    Example:
        >>> model = SegDecNet(input_channels=1)
        >>> out = model(np.zeros((2, 128, 192, 1), "float32"))  # decision (2, 1), seg (2, 16, 24, 1)
    """

    def __init__(self, input_channels: int = 1, gradient_adjustment: bool = True,
                 input_height: int | None = None, input_width: int | None = None,
                 threshold: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if input_channels < 1:
            raise ValueError(f"input_channels={input_channels}; expected a positive channel count")
        self.input_channels = int(input_channels)
        self.gradient_adjustment = bool(gradient_adjustment)
        self.input_height: int | None = None
        self.input_width: int | None = None
        if (input_height is None) != (input_width is None):
            raise ValueError(f"input_height={input_height}, input_width={input_width}; expected both "
                             "(the size the model is trained at) or neither")
        if input_height is not None:
            self.set_input_size(input_height, input_width)
        self.threshold: float | None = None
        if threshold is not None:
            self.set_threshold(threshold)
        self.segmentation_net = SegmentationNet(self.input_channels, name="segmentation")
        self.decision_net = DecisionNet(0.0 if self.gradient_adjustment else 1.0, name="decision")
        self._init_training_state()

    def set_input_size(self, height: int, width: int) -> None:
        """Record the (height, width) the model is trained at; it travels in the .keras file.

        Raises:
            ValueError: a side that is not a multiple of 8 or below 64.
        """
        check_input_size(int(width), int(height), " (SegDecNet input size)")
        self.input_height, self.input_width = int(height), int(width)

    def set_threshold(self, threshold: float) -> None:
        """Record the decision threshold on the score (sigmoid of the decision logit).

        ``kerasdec fit`` sets the F-best midpoint threshold of its test evaluation before the final
        save, so model_final.keras carries it to predict and export.

        Raises:
            ValueError: ``threshold`` outside [0, 1] (or not finite).
        """
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"threshold={threshold}; expected a score threshold in [0, 1]")
        self.threshold = float(threshold)

    def build_for_training(self, input_shape: tuple[int, ...]) -> None:
        """Record the training input size (if not given) and build; see SegDecTrainingMixin."""
        if self.input_height is None and len(input_shape) in (3, 4):
            self.set_input_size(*tuple(input_shape)[-3:-1])
        super().build_for_training(input_shape)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SegDecNet:
        model = cls(**config)
        model._size_from_build_shape = "input_height" not in config  # saved before the size was recorded
        return model

    def build_from_config(self, config: dict[str, Any]) -> None:
        """On loading: a file saved before the input size was recorded takes it from its build shape
        (``build_for_training`` builds at the training size)."""
        shape = (config or {}).get("input_shape")
        legacy = getattr(self, "_size_from_build_shape", False)
        if legacy and shape is not None and len(shape) == 4 and None not in shape[1:3]:
            try:
                self.set_input_size(shape[1], shape[2])
            except ValueError:
                pass  # built at a size the rule rejects: leave it unknown (callers then ask for it)
        super().build_from_config(config)

    @property
    def gradient_multiplier(self) -> keras.Variable:
        """The multiplier m (0.0 = gradient adjustment on, 1.0 = off), a non-trainable variable."""
        return self.decision_net.gradient_multiplier.m

    def set_gradient_adjustment(self, enabled: bool) -> None:
        """Assign m = 0 (enabled) or 1 (disabled); a compiled step sees it without retracing."""
        self.gradient_adjustment = bool(enabled)
        self.gradient_multiplier.assign(0.0 if enabled else 1.0)

    def call(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        check_input_shape(x.shape, self.input_channels)
        volume, seg = self.segmentation_net(x)  # (B, H/8, W/8, 1024), (B, H/8, W/8, 1)
        decision = self.decision_net([volume, seg])  # (B, 1)
        return {"decision": decision, "seg": seg}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "input_channels": self.input_channels,
                "gradient_adjustment": self.gradient_adjustment, "input_height": self.input_height,
                "input_width": self.input_width, "threshold": self.threshold}
