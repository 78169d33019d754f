"""Callbacks that drive the training state of SegDecNet from outside the compiled step.

Each assigns a variable (or sets an attribute) that the step or the input pipeline reads, so a
compiled ``train_step`` picks up the new value without retracing.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import keras
import numpy as np

from kerasdec.training.schedules import loss_weights

logger = logging.getLogger(__name__)


class LossBalance(keras.callbacks.Callback):
    """Assign ``model.seg_loss_weight`` and ``model.cls_loss_weight`` at each epoch start.

    With dynamic balance: λ = 1 − e/E and δ·(1 − λ); without: 1 and δ (docs/method.md#loss-and-schedule).
    ``epoch`` is the absolute epoch number, so a resumed ``fit(initial_epoch=k)`` continues the schedule.

    Args:
        epochs: total number of epochs E.
        delta: δ, the weight of the classification loss.
        dynamic_balance: anneal λ (True) or keep the weights fixed (False). Default True.
    """

    def __init__(self, epochs: int, delta: float, dynamic_balance: bool = True) -> None:
        super().__init__()
        loss_weights(0, epochs, delta, dynamic_balance)  # validate the arguments now
        self.epochs = int(epochs)
        self.delta = float(delta)
        self.dynamic_balance = bool(dynamic_balance)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        seg_w, cls_w = loss_weights(epoch, self.epochs, self.delta, self.dynamic_balance)
        self.model.seg_loss_weight.assign(seg_w)
        self.model.cls_loss_weight.assign(cls_w)
        logger.debug("epoch %d: seg weight %.4f, cls weight %.4f", epoch, seg_w, cls_w)


class GradientAdjustment(keras.callbacks.Callback):
    """Set the gradient multiplier m at the start of training: 0 when enabled, 1 when off.

    Args:
        enabled: stop the decision loss at the segmentation stage (docs/method.md#network). Default True.
    """

    def __init__(self, enabled: bool = True) -> None:
        super().__init__()
        self.enabled = bool(enabled)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.model.set_gradient_adjustment(self.enabled)


class SamplerEpoch(keras.callbacks.Callback):
    """Tell the frequency-of-use sampler which epoch starts (``sampler.current_epoch = epoch``).

    The pipeline reads ``sampler.current_epoch`` when the epoch's iterator starts. Keras may create
    the first iterator before any callback runs (under a distribution strategy), so set
    ``sampler.current_epoch = initial_epoch`` before calling ``fit`` as well.

    Args:
        sampler: any object with an integer attribute ``current_epoch``.
    """

    def __init__(self, sampler: Any) -> None:
        super().__init__()
        self.sampler = sampler

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.sampler.current_epoch = int(epoch)


class StopOnNonFinite(keras.callbacks.Callback):
    """Stop training with FloatingPointError at the first non-finite loss or weight.

    Checked after every batch (the epoch's running mean of the loss turns non-finite with the first
    bad batch) and, at the end of each epoch, on every weight (a step can turn the weights into NaN on
    the last batch, before the loss shows it). Place it BEFORE the callbacks that save anything at
    the epoch's end, so the last checkpoint stays the last good one.

    Args:
        hint: appended to the message, e.g. how to resume from the last checkpoint.
    """

    def __init__(self, hint: str = "") -> None:
        super().__init__()
        self.hint = hint
        self.epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = int(epoch)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise FloatingPointError(f"Training loss became {float(loss)} at epoch {self.epoch + 1}, batch "
                                     f"{int(batch) + 1}; training stopped. {self.hint}".strip())

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        bad = [v.path for v in self.model.weights if not np.all(np.isfinite(np.asarray(v.numpy())))]
        if bad:
            raise FloatingPointError(f"{len(bad)} weight(s) became non-finite during epoch {int(epoch) + 1} "
                                     f"(e.g. {bad[0]}); training stopped. {self.hint}".strip())
