"""The ``model.fit`` loop: one machine (all local GPUs under ``--distribute mirrored``)."""

from __future__ import annotations

import logging
import sys

import keras
import tensorflow as tf

from kerasdec.config import RunConfig
from kerasdec.models.segdec import SegDecNet
from kerasdec.training.model import build_model
from kerasdec.training.resume import Progress
from kerasdec.training.run import RunData

log = logging.getLogger(__name__)


class FitLoop:
    """A ``run.Loop`` that trains with Keras' own ``model.fit``."""

    shard = None  # whole batches
    is_chief = True

    def build(self, cfg: RunConfig) -> SegDecNet:
        with make_strategy(cfg.train.distribute).scope():
            return build_model(cfg)

    def train(self, model: SegDecNet, data: RunData, cfg: RunConfig, progress: Progress,
              callbacks: list[keras.callbacks.Callback]) -> None:
        model.fit(data.train_ds, epochs=cfg.train.epochs, initial_epoch=progress.epoch, callbacks=callbacks,
                  shuffle=False, verbose=1 if sys.stdout.isatty() else 2)  # the sampler orders epochs


def make_strategy(distribute: str) -> tf.distribute.Strategy:
    """MirroredStrategy over all local GPUs for "mirrored", else the default (one device)."""
    if distribute == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
        log.info("MirroredStrategy over %d replicas", strategy.num_replicas_in_sync)
        return strategy
    return tf.distribute.get_strategy()
