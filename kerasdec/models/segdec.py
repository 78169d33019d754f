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

from kerasdec.config import DOWNSCALE, MIN_SIZE  # H, W multiples of 8 (three MaxPool2), >= 64 (six)
from kerasdec.models.layers import ConvBlock, GradientMultiplier, require_tensorflow_backend

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
        # Logits stay float32 (conv included: a 1×1 conv over 1024 channels is cheap).
        self.head = ConvBlock(1, 1, relu=False, dtype="float32", name="seg_head")

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
                                        dtype="float32", name="decision_head")

    def call(self, inputs: list[tf.Tensor]) -> tf.Tensor:
        volume, seg = inputs
        x = tf.concat([volume, tf.cast(seg, volume.dtype)], axis=-1)  # (B, h, w, 1025)
        x = self.gradient_multiplier(x)
        for stage in self.stages:
            x = stage(x)
        x = tf.cast(x, tf.float32)  # (B, h/8, w/8, 32)
        seg = tf.cast(seg, tf.float32)
        pooled_seg = tf.concat([tf.reduce_max(seg, axis=(1, 2)), tf.reduce_mean(seg, axis=(1, 2))], -1)
        pooled_seg = self.gradient_multiplier(pooled_seg)  # (B, 2)
        features = [tf.reduce_max(x, axis=(1, 2)), tf.reduce_mean(x, axis=(1, 2)), pooled_seg]
        return self.dense(tf.concat(features, axis=-1))  # (B, 66) → (B, 1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "multiplier": self.multiplier}


@keras.saving.register_keras_serializable(package="kerasdec")
class SegDecNet(SegDecTrainingMixin, keras.Model):
    """Segmentation stage + decision stage: images → {"decision": (B, 1), "seg": (B, H/8, W/8, 1)}.

    Both outputs are float32 logits under any dtype policy. Non-trainable variables set by the
    callbacks of kerasdec.training.callbacks: ``seg_loss_weight``, ``cls_loss_weight`` and the
    gradient multiplier (``gradient_multiplier``).

    Args:
        input_channels: 1 (grayscale) or 3 (colour). Default 1.
        gradient_adjustment: start with m = 0 (decision loss stops at the segmentation stage).
            Default True.
        **kwargs: standard Model arguments.

    Example:
        >>> model = SegDecNet(input_channels=1)
        >>> out = model(np.zeros((2, 128, 192, 1), "float32"))  # decision (2, 1), seg (2, 16, 24, 1)
    """

    def __init__(self, input_channels: int = 1, gradient_adjustment: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if input_channels < 1:
            raise ValueError(f"input_channels={input_channels}; expected a positive channel count")
        self.input_channels = int(input_channels)
        self.gradient_adjustment = bool(gradient_adjustment)
        self.segmentation_net = SegmentationNet(self.input_channels, name="segmentation")
        self.decision_net = DecisionNet(0.0 if self.gradient_adjustment else 1.0, name="decision")
        self._init_training_state()

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
                "gradient_adjustment": self.gradient_adjustment}
