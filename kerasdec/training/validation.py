"""Validation during training: exact image-level AP (numpy), best-model checkpoint, TensorBoard pictures."""

from __future__ import annotations

import io
import logging
import math
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from kerasdec.evaluation.evaluate import sigmoid
from kerasdec.evaluation.figures import overlay as figure_overlay
from kerasdec.evaluation.metrics import average_precision, pr_points
from kerasdec.rundir import atomic_path

log = logging.getLogger(__name__)


class ValidateAP(keras.callbacks.Callback):
    """Every ``every`` epochs and at the last epoch: AP on the validation set into ``logs["val_ap"]``.

    Epochs without validation log NaN (every row of history.csv has the same columns). An AP above the
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
        return (epoch + 1) % self.every == 0 or epoch + 1 == self.epochs

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs if logs is not None else {}
        if not self._due(epoch):
            logs["val_ap"] = math.nan
            return
        out = self.model.predict(self.dataset, verbose=0)
        scores = sigmoid(out["decision"][:, 0])
        ap = average_precision(self.labels, scores)
        logs["val_ap"] = ap
        log.info("epoch %d: validation AP %.4f", epoch + 1, ap)
        if ap > self.tracker.get("best_val_ap", -math.inf):
            self.tracker.update(best_val_ap=ap, best_epoch=epoch)
            with atomic_path(self.best_path) as tmp:  # a kill mid-save keeps the previous best
                self.model.save(tmp)
        if self.writer is not None:
            self._write_pictures(epoch, scores, np.asarray(out["seg"]))

    def _write_pictures(self, epoch: int, scores: np.ndarray, seg: np.ndarray) -> None:
        images = next(iter(self.dataset.take(1)))[0].numpy()[: self.n_images]  # (k, H, W, C)
        with self.writer.as_default(step=epoch):
            tf.summary.image("validation/pr_curve", _pr_curve_png(self.labels, scores)[None], step=epoch)
            tf.summary.image("validation/overlays", overlays(images, seg[: len(images)]),
                             max_outputs=self.n_images, step=epoch)
        self.writer.flush()


def overlays(images: np.ndarray, seg_logits: np.ndarray) -> np.ndarray:
    """Images (k, H, W, C) in [0, 1] with the heatmap drawn as in the HTML report: (k, H, W, 3) RGB."""
    pictures = [figure_overlay(np.round(image * 255.0).astype(np.uint8), sigmoid(seg[..., 0]))
                for image, seg in zip(images, seg_logits)]  # BGR uint8, as for cv2.imwrite
    return np.stack(pictures)[..., ::-1].astype(np.float32) / 255.0


def _pr_curve_png(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recall, precision = pr_points(labels, scores)
    fig, ax = plt.subplots(figsize=(4, 4), dpi=80)
    ax.step(recall, precision, where="post")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="validation PR")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return tf.image.decode_png(buf.getvalue(), channels=3).numpy().astype(np.float32) / 255.0
