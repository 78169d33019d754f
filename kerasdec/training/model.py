"""The SegDecNet a run trains: compiled with its optimizer and built, under the run's dtype policy."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import keras
import tensorflow as tf

from kerasdec.config import RunConfig
from kerasdec.models.segdec import SegDecNet


def build_model(cfg: RunConfig) -> SegDecNet:
    """SegDecNet compiled with its optimizer (plain SGD as published, or Adam) and built (model and
    optimizer) so that fit traces once."""
    model = SegDecNet(input_channels=cfg.data.channels, gradient_adjustment=cfg.train.gradient_adjustment,
                      **dataclasses.asdict(cfg.model))  # the network's size: published by default
    jit = "auto" if cfg.train.jit is None else cfg.train.jit
    optimizers = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam}
    model.compile(optimizer=optimizers[cfg.train.optimizer](learning_rate=cfg.train.lr), jit_compile=jit)
    model.build_for_training((cfg.data.height, cfg.data.width, cfg.data.channels))
    return model


@contextlib.contextmanager
def precision_policy(precision: str) -> Iterator[str]:
    """Set the Keras dtype policy for the block ("auto": mixed_float16 on a GPU), then restore it."""
    if precision == "auto":
        precision = "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"
    previous, previous_floatx = keras.config.dtype_policy(), keras.config.floatx()
    keras.config.set_dtype_policy(precision)
    if precision == "float64":  # the optimizer's learning rate and the metrics take floatx
        keras.config.set_floatx("float64")
    try:
        yield precision
    finally:
        keras.config.set_dtype_policy(previous)
        keras.config.set_floatx(previous_floatx)
