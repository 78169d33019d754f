"""Validation during training: exact image-level AP (numpy), best-model checkpoint, TensorBoard.

TensorBoard gets, per validated epoch: the AP scalar (Keras' TensorBoard callback writes
``logs["val_ap"]`` as ``epoch_ap`` of the validation run), the PR curve through TensorBoard's
PR-curve plugin (``tensorboard.plugins.pr_curve``, tag ``validation/pr_curve``) and heatmap overlays.
Epochs that are not validated log no AP, so the scalars hold no NaN points (one exception: ValidateAP).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from kerasdec.evaluation.figures import overlay as figure_overlay
from kerasdec.evaluation.metrics import average_precision
from kerasdec.inference.runners import sigmoid
from kerasdec.models.saving import save_model

log = logging.getLogger(__name__)

PR_CURVE_TAG = "validation/pr_curve"
PR_THRESHOLDS = 201  # the plugin's default resolution


class ValidateAP(keras.callbacks.Callback):
    """On the epochs ``_due`` selects: AP on the validation set into ``logs["val_ap"]``.

    Epochs without validation put no ``val_ap`` into the logs: no NaN scalar in TensorBoard, an empty
    cell in history.csv (training.history.HistoryLog writes the union of the keys). An AP above the
    best so far saves the model to ``best_path``; ``tracker`` (shared with the checkpoint callback, so a
    resumed run keeps its best) holds best_val_ap and best_epoch.
    """

    def __init__(self, dataset: tf.data.Dataset, labels: np.ndarray, every: int, epochs: int,
                 best_path: Path, tracker: dict[str, Any], tb_dir: Path | None = None, n_images: int = 4):
        super().__init__()
        self.dataset, self.labels = dataset, np.asarray(labels, dtype=bool)
        self.every, self.epochs = every, epochs
        self.best_path, self.tracker = Path(best_path), tracker
        self.writer = tf.summary.create_file_writer(str(tb_dir)) if tb_dir else None
        self.n_images = n_images

    def _due(self, epoch: int) -> bool:
        """As published (docs/method.md#evaluation): epoch indices 0, V, 2V, ... (0-based) and the last."""
        return epoch % self.every == 0 or epoch + 1 == self.epochs

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs if logs is not None else {}
        if not self._due(epoch):
            return
        out = self.model.predict(self.dataset, verbose=0)
        scores = sigmoid(out["decision"][:, 0])
        ap = average_precision(self.labels, scores)
        logs["val_ap"] = ap
        log.info("epoch %d: validation AP %.4f", epoch + 1, ap)
        if ap > self.tracker.get("best_val_ap", -math.inf):
            self.tracker.update(best_val_ap=ap, best_epoch=epoch)
            save_model(self.model, self.best_path)  # atomic: a kill mid-save keeps the previous best
        if self.writer is not None:
            self._write_pictures(epoch, scores, np.asarray(out["seg"]))

    def _write_pictures(self, epoch: int, scores: np.ndarray, seg: np.ndarray) -> None:
        images = next(iter(self.dataset.take(1)))[0].numpy()[: self.n_images]  # (k, H, W, C)
        with self.writer.as_default(step=epoch):
            tf.summary.experimental.write_raw_pb(pr_curve_summary(self.labels, scores), step=epoch)
            tf.summary.image("validation/overlays", overlays(images, seg[: len(images)]),
                             max_outputs=self.n_images, step=epoch)
        self.writer.flush()


def overlays(images: np.ndarray, seg_logits: np.ndarray) -> np.ndarray:
    """Images (k, H, W, C) in [0, 1] with the heatmap drawn as in the HTML report: (k, H, W, 3) RGB."""
    pictures = [figure_overlay(np.round(image * 255.0).astype(np.uint8), sigmoid(seg[..., 0]))
                for image, seg in zip(images, seg_logits)]  # BGR uint8, as for cv2.imwrite
    return np.stack(pictures)[..., ::-1].astype(np.float32) / 255.0


def pr_curve_summary(labels: np.ndarray, scores: np.ndarray, tag: str = PR_CURVE_TAG) -> bytes:
    """A serialized Summary for TensorBoard's PR-curve plugin (201 thresholds in [0, 1]) under ``tag``."""
    from tensorboard.plugins.pr_curve import summary as pr_curve

    summary = pr_curve.pb(tag, labels=np.asarray(labels, bool), predictions=np.asarray(scores, np.float32),
                          num_thresholds=PR_THRESHOLDS)
    summary.value[0].tag = tag  # pb() names it "<tag>/pr_curves"; keep the tag we document
    return summary.SerializeToString()
