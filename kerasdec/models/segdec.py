"""The two-stage SegDecNet (docs/method.md#network) and its training step
(docs/method.md#loss-and-schedule), as Keras 3 subclassed models.

``SegmentationNet`` maps images (B, H, W, C) to a volume (1024 channels published) and segmentation
logits at 1/8 resolution; ``DecisionNet`` maps both to an image-level decision logit; ``SegDecNet`` composes
them, checks its input and trains with ``model.fit`` through an overridden ``train_step``. The
network's size (widths, repeats, kernels per stage) is a constructor argument whose default is the
published network; tests train a tiny one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import keras

from kerasdec.config import (  # H, W multiples of 8, >= 64; the published sizes
    DECISION_FILTERS,
    DECISION_KERNELS,
    DOWNSCALE,
    MIN_SIZE,
    SEGMENTATION_BLOCKS,
    SEGMENTATION_FILTERS,
    SEGMENTATION_KERNELS,
    check_input_size,
    check_sizes,
)
from kerasdec.models.layers import ConvBlock, GradientMultiplier, require_tensorflow_backend, wide_dtype

require_tensorflow_backend()

import tensorflow as tf  # noqa: E402  (after the backend check)

from kerasdec.models.step import SegDecTrainingMixin  # noqa: E402

logger = logging.getLogger(__name__)



def segmentation_layout(filters: Sequence[int], blocks: Sequence[int],
                        kernels: Sequence[int]) -> tuple[tuple[int, int] | str, ...]:
    """The segmentation stage as (filters, kernel) per conv block and "pool" for each MaxPool2.

    Example:
        >>> segmentation_layout((8, 16, 16, 32), (1, 2, 1, 1), (3, 3, 3, 9))
        ((8, 3), 'pool', (16, 3), (16, 3), 'pool', (16, 3), 'pool', (32, 9))
    """
    layout: list[tuple[int, int] | str] = []
    for stage, (f, n, k) in enumerate(zip(filters, blocks, kernels)):
        layout += ["pool"] * (stage > 0) + [(int(f), int(k))] * int(n)
    return tuple(layout)


# The published network as a layout (docs/method.md#network): 9 conv blocks, 3 pools; 3 decision blocks.
SEGMENTATION_STAGES = segmentation_layout(SEGMENTATION_FILTERS, SEGMENTATION_BLOCKS, SEGMENTATION_KERNELS)
DECISION_BLOCKS = tuple(zip(DECISION_FILTERS, DECISION_KERNELS))


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
    """Images (B, H, W, C) → (volume (B, H/8, W/8, F), seg logits (B, H/8, W/8, 1) float32), where
    F = filters[-1] (1024 published).

    Args:
        input_channels: channels C of the input images. Default 1.
        filters: output channels of the 4 stages (a MaxPool2 between stages). Default published.
        blocks: conv blocks per stage. Default published (1, 3, 4, 1).
        kernels: square kernel size per stage. Default published (5, 5, 5, 15).
        **kwargs: standard Model arguments (name, dtype, ...).
    """

    def __init__(self, input_channels: int = 1, filters: Sequence[int] = SEGMENTATION_FILTERS,
                 blocks: Sequence[int] = SEGMENTATION_BLOCKS, kernels: Sequence[int] = SEGMENTATION_KERNELS,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.input_channels = int(input_channels)
        for name, values in (("filters", filters), ("blocks", blocks), ("kernels", kernels)):
            check_sizes(name, values, 4, odd=name == "kernels")
        self.filters, self.blocks, self.kernels = tuple(filters), tuple(blocks), tuple(kernels)
        stages, n_block, n_pool = [], 0, 0
        for stage in segmentation_layout(self.filters, self.blocks, self.kernels):
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
        volume = x  # (B, H/8, W/8, F)
        seg = self.head(volume)  # (B, H/8, W/8, 1) float32
        return volume, seg

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "input_channels": self.input_channels, "filters": list(self.filters),
                "blocks": list(self.blocks), "kernels": list(self.kernels)}


@keras.saving.register_keras_serializable(package="kerasdec")
class DecisionNet(keras.Model):
    """[volume (B, h, w, F), seg logits (B, h, w, 1)] → decision logit (B, 1) float32.

    A GradientMultiplier sits on the (F + 1)-channel concat and on the two pooled seg values, so with
    m = 0 the decision loss does not reach the segmentation stage.

    Args:
        multiplier: initial gradient multiplier m (0 = gradient adjustment on). Default 0.0.
        filters: output channels of the 3 blocks (each after a MaxPool2). Default published (8, 16, 32).
        kernels: square kernel size per block. Default published (5, 5, 5).
        **kwargs: standard Model arguments.
    """

    def __init__(self, multiplier: float = 0.0, filters: Sequence[int] = DECISION_FILTERS,
                 kernels: Sequence[int] = DECISION_KERNELS, **kwargs: Any) -> None:
        kwargs.setdefault("autocast", False)  # keep the float32 seg logits float32 on entry
        super().__init__(**kwargs)
        self.multiplier = float(multiplier)
        check_sizes("filters", filters, 3)
        check_sizes("kernels", kernels, 3, odd=True)
        self.filters, self.kernels = tuple(filters), tuple(kernels)
        self.gradient_multiplier = GradientMultiplier(self.multiplier, name="gradient_multiplier")
        stages = []
        for i, (n_filters, kernel) in enumerate(zip(self.filters, self.kernels), start=1):
            stages.append(keras.layers.MaxPooling2D(2, name=f"pool{i}"))
            stages.append(ConvBlock(n_filters, kernel, name=f"block{i}"))
        self.stages = stages
        # U(±1/sqrt(fan_in)), fan_in = max and mean of the last block's features + 2 seg values (66)
        limit = 1.0 / math.sqrt(2 * self.filters[-1] + 2)
        uniform = keras.initializers.RandomUniform(-limit, limit)
        self.dense = keras.layers.Dense(1, kernel_initializer=uniform, bias_initializer=uniform,
                                        dtype=wide_dtype(), name="decision_head")

    def call(self, inputs: list[tf.Tensor]) -> tf.Tensor:
        volume, seg = inputs
        x = tf.concat([volume, tf.cast(seg, volume.dtype)], axis=-1)  # (B, h, w, F + 1)
        x = self.gradient_multiplier(x)
        for stage in self.stages:
            x = stage(x)
        x = tf.cast(x, self.dense.compute_dtype)  # (B, h/8, w/8, filters[-1]); float64 under float64
        seg = tf.cast(seg, self.dense.compute_dtype)
        pooled_seg = tf.concat([tf.reduce_max(seg, axis=(1, 2)), tf.reduce_mean(seg, axis=(1, 2))], -1)
        pooled_seg = self.gradient_multiplier(pooled_seg)  # (B, 2)
        features = [tf.reduce_max(x, axis=(1, 2)), tf.reduce_mean(x, axis=(1, 2)), pooled_seg]
        return self.dense(tf.concat(features, axis=-1))  # (B, 2·filters[-1] + 2) → (B, 1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "multiplier": self.multiplier, "filters": list(self.filters),
                "kernels": list(self.kernels)}


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
        seg_filters, seg_blocks, seg_kernels: the segmentation stage's size (SegmentationNet's
            filters, blocks, kernels). Default: the published network.
        decision_filters, decision_kernels: the decision stage's size (DecisionNet's filters, kernels).
            Default: the published network. kerasdec.config.ModelConfig holds all five for a run.
        **kwargs: standard Model arguments.

    Raises:
        ValueError: a bad channel count, input size, threshold or network size, naming the argument.

    Example:
        >>> model = SegDecNet(input_channels=1)
        >>> out = model(np.zeros((2, 128, 192, 1), "float32"))  # decision (2, 1), seg (2, 16, 24, 1)
        >>> tiny = SegDecNet(seg_filters=(8, 8, 8, 16), seg_blocks=(1, 1, 1, 1))  # a fast test network
    """

    def __init__(self, input_channels: int = 1, gradient_adjustment: bool = True,
                 input_height: int | None = None, input_width: int | None = None,
                 threshold: float | None = None, seg_filters: Sequence[int] = SEGMENTATION_FILTERS,
                 seg_blocks: Sequence[int] = SEGMENTATION_BLOCKS,
                 seg_kernels: Sequence[int] = SEGMENTATION_KERNELS,
                 decision_filters: Sequence[int] = DECISION_FILTERS,
                 decision_kernels: Sequence[int] = DECISION_KERNELS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if input_channels < 1:
            raise ValueError(f"input_channels={input_channels}; expected a positive channel count")
        sizes = {"seg_filters": seg_filters, "seg_blocks": seg_blocks, "seg_kernels": seg_kernels,
                 "decision_filters": decision_filters, "decision_kernels": decision_kernels}
        for name, values in sizes.items():  # named as the caller gave them (ModelConfig's fields)
            check_sizes(name, values, 4 if name.startswith("seg_") else 3, odd=name.endswith("kernels"))
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
        self.segmentation_net = SegmentationNet(self.input_channels, seg_filters, seg_blocks, seg_kernels,
                                                name="segmentation")
        self.decision_net = DecisionNet(0.0 if self.gradient_adjustment else 1.0, decision_filters,
                                        decision_kernels, name="decision")
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
        volume, seg = self.segmentation_net(x)  # (B, H/8, W/8, seg_filters[-1]), (B, H/8, W/8, 1)
        decision = self.decision_net([volume, seg])  # (B, 1)
        return {"decision": decision, "seg": seg}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "input_channels": self.input_channels,
                "gradient_adjustment": self.gradient_adjustment, "input_height": self.input_height,
                "input_width": self.input_width, "threshold": self.threshold, **self.sizes()}

    def sizes(self) -> dict[str, list[int]]:
        """The network's size as ModelConfig's fields (lists, as in the .keras file's config)."""
        seg, decision = self.segmentation_net, self.decision_net
        return {"seg_filters": list(seg.filters), "seg_blocks": list(seg.blocks),
                "seg_kernels": list(seg.kernels), "decision_filters": list(decision.filters),
                "decision_kernels": list(decision.kernels)}
