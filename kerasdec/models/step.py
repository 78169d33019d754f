"""The SegDecNet training step (docs/method.md#loss-and-schedule), kept apart from the network definition.

L = seg_w · L_seg + cls_w · L_cls, where L_seg and L_cls are per-sample losses SUMMED over the batch
and seg_w, cls_w are non-trainable variables assigned by callbacks (λ and δ(1 − λ) with the
dynamically balanced loss); losses and weights are float32 (float64 under a float64 policy). Under a
tf.distribute strategy each replica differentiates the sum over its part of the batch and the
optimizer sums gradients across replicas: the global-batch sum.
"""

from __future__ import annotations

import logging
from typing import Any

import keras

from kerasdec.models.layers import require_tensorflow_backend, wide_dtype

require_tensorflow_backend()

import tensorflow as tf  # noqa: E402  (after the backend check)

logger = logging.getLogger(__name__)

METRIC_NAMES = ("loss", "seg_loss", "cls_loss", "lambda")  # logged per epoch (and val_* by evaluate)


def summed_losses(outputs: dict[str, tf.Tensor], y: dict[str, tf.Tensor],
                  sample_weight: dict[str, tf.Tensor] | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """Segmentation and classification losses, each summed over the batch.

    Args:
        outputs: model outputs {"decision": (B, 1) logits, "seg": (B, h, w, 1) logits}.
        y: targets {"decision": (B, 1) 0/1, "seg": (B, h, w, 1) in [0, 1]}.
        sample_weight: {"decision": (B, 1), "seg": (B, h, w, 1) pixel weights}; None = all ones.

    Returns:
        (L_seg, L_cls) scalars, float32 (float64 when the logits are): L_seg = Σ_b mean_pixels(w · CE),
        L_cls = Σ_b w · CE.
    """
    sample_weight = sample_weight or {}
    dtype = tf.float64 if outputs["seg"].dtype == tf.float64 else tf.float32  # never below float32
    seg_logits = tf.cast(outputs["seg"], dtype)
    seg_ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(y["seg"], dtype),
                                                     logits=seg_logits)  # (B, h, w, 1)
    if sample_weight.get("seg") is not None:
        seg_ce = seg_ce * tf.cast(sample_weight["seg"], dtype)
    dec_logits = tf.cast(outputs["decision"], dtype)
    cls_ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(y["decision"], dtype),
                                                     logits=dec_logits)  # (B, 1)
    if sample_weight.get("decision") is not None:
        cls_ce = cls_ce * tf.cast(sample_weight["decision"], dtype)
    seg_loss = tf.reduce_sum(tf.reduce_mean(seg_ce, axis=(1, 2, 3)))
    return seg_loss, tf.reduce_sum(cls_ce)


class SegDecTrainingMixin:
    """train_step / test_step / metrics for a keras.Model whose call returns {"decision", "seg"}."""

    def _init_training_state(self) -> None:
        constant = keras.initializers.Constant(1.0)
        self.seg_loss_weight = self.add_weight(shape=(), initializer=constant, trainable=False,
                                               dtype=wide_dtype(), name="seg_loss_weight")
        self.cls_loss_weight = self.add_weight(shape=(), initializer=constant, trainable=False,
                                               dtype=wide_dtype(), name="cls_loss_weight")
        self._step_trackers = [keras.metrics.Mean(name=name) for name in METRIC_NAMES]

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        # Only our trackers: Keras resets them each epoch and reads them (summed over replicas) for logs.
        return list(getattr(self, "_step_trackers", []))

    def build_for_training(self, input_shape: tuple[int, ...]) -> None:
        """Create the model's and the optimizer's variables so ``fit`` traces its step once.

        Call after ``compile`` (inside ``strategy.scope()`` when distributing).

        Args:
            input_shape: (H, W, C) or (B, H, W, C); the batch size is ignored.

        Raises:
            ValueError: if the model is not compiled or the shape has the wrong rank.
        """
        shape = tuple(int(d) for d in input_shape)
        if len(shape) not in (3, 4):
            raise ValueError(f"input_shape={shape}; expected (H, W, C) or (B, H, W, C)")
        if getattr(self, "optimizer", None) is None:
            raise ValueError("build_for_training needs a compiled model; "
                             "call model.compile(optimizer=...) first")
        self(tf.zeros((1,) + shape[-3:], tf.float32))
        self.optimizer.build(self.trainable_variables)

    def _step_losses(self, data: Any, training: bool) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        outputs = self(x, training=training)
        seg_loss, cls_loss = summed_losses(outputs, y, sample_weight)
        seg_w = tf.cast(self.seg_loss_weight.value, seg_loss.dtype)
        cls_w = tf.cast(self.cls_loss_weight.value, seg_loss.dtype)
        loss = seg_w * seg_loss + cls_w * cls_loss
        return {"loss": loss, "seg_loss": seg_loss, "cls_loss": cls_loss, "lambda": seg_w}, loss

    def record_step(self, values: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Add one step's values (``compute_step_gradients``' second result) to the epoch's trackers;
        returns the running means, the logs of the step. Called by ``train_step``, ``test_step`` and
        the multi-worker loop (after it summed the values over the workers).
        """
        # Tracker variables are summed over replicas when read: scale the per-replica sums by the
        # replica count so the epoch mean is the mean of global-batch sums (λ is the same everywhere).
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        for tracker in self._step_trackers:
            value = values[tracker.name]
            tracker.update_state(value if tracker.name == "lambda" else value * replicas)
        return {tracker.name: tracker.result() for tracker in self._step_trackers}

    def compute_step_gradients(self, data: Any) -> tuple[list[tf.Tensor], dict[str, tf.Tensor]]:
        """Gradients of the summed, weighted loss of ``data`` (loss-scaled under mixed_float16) and the
        step's logged values; ``train_step`` applies them (the multi-worker loop sums them first)."""
        with tf.GradientTape() as tape:
            values, loss = self._step_losses(data, training=True)
            scaled = self.optimizer.scale_loss(loss)
        return tape.gradient(scaled, self.trainable_variables), values

    def train_step(self, data: Any) -> dict[str, tf.Tensor]:
        """One SGD step on the summed, weighted loss (loss-scaled under mixed_float16)."""
        gradients, values = self.compute_step_gradients(data)
        self.optimizer.apply(gradients, self.trainable_variables)
        return self.record_step(values)

    def test_step(self, data: Any) -> dict[str, tf.Tensor]:
        """The same losses as train_step, without updating anything but the trackers."""
        values, _ = self._step_losses(data, training=False)
        return self.record_step(values)
