"""kerasdec's side of the fidelity harness. EVERY use of kerasdec is in this file (the rest of
benchmarks/fidelity only talks to it): the published presets, ``fit`` (its tf.data pipeline,
FrequencySampler, callbacks that set λ and the gradient multiplier, ``model.fit`` with the overridden
train_step, validation, the final test), the sampler for the rules check, and the weight export that
benchmarks/compare_torch.py uses (kernels HWIO under the names torch_segdec.load_weights reads).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # this checkout's kerasdec
sys.path.insert(0, str(HERE.parent))

from compare_torch import weights as kerasdec_weights  # noqa: E402

from kerasdec.config import RunConfig  # noqa: E402
from kerasdec.data.sampling import FrequencySampler  # noqa: E402
from kerasdec.presets import preset  # noqa: E402
from kerasdec.training.fit import fit  # noqa: E402

__all__ = ["FrequencySampler", "RunConfig", "StepTap", "fit", "kerasdec_weights", "published_config",
           "run_float64", "run_float32"]


def published_config(layout: str, root: Path, size_wh: tuple[int, int], seed: int, run_dir: Path,
                     **train: Any) -> RunConfig:
    """The published preset of ``layout`` (DAGM: ICPR 2020, KSDD2: 2021, KSDD: ICPR 2020) at another
    input size, with TrainConfig fields overridden by ``train`` (epochs, batch_size, precision, ...)."""
    data: dict[str, Any] = {"root": str(root), "width": size_wh[0], "height": size_wh[1]}
    if layout == "dagm":
        data["category"] = 1
    if layout == "ksdd" and "split_file" in train:
        data["split_file"] = str(train.pop("split_file"))
    cfg = preset(layout, **data)
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **train), seed=seed,
                               run_dir=str(run_dir))


def worker_settings(cfg: RunConfig) -> dict[str, Any]:
    """The settings the PyTorch rendition needs, read from kerasdec's config (the same recipe)."""
    d, t = cfg.data, cfg.train
    return {"layout": d.dataset, "root": d.root, "category": d.category, "width": d.width, "height": d.height,
            "channels": d.channels, "dilate": d.dilate, "w_pos": d.w_pos, "p": d.p,
            "frequency": d.frequency_sampling, "lr": t.lr, "delta": t.delta, "epochs": t.epochs,
            "batch_size": t.batch_size, "validate_every": t.validate_every,
            "dynamic_balance": t.dynamic_balance, "gradient_adjustment": t.gradient_adjustment,
            "decision_target": d.decision_target, "weighted_seg": d.weighted_seg}


class StepTap(keras.callbacks.Callback):
    """Records what every training step of ``fit`` did and hands it to ``on_step``.

    At the start of training it wraps the model's own ``train_step`` so that the step also returns
    the pixel sum of every image of its batch (``fp0``..``fp{B-1}``; -1 pads a short batch), then
    re-creates the train function (Keras binds ``train_step`` when ``fit`` starts). The step itself is
    kerasdec's, unchanged. Callbacks given to ``fit`` run after kerasdec's own, so at ``on_epoch_begin``
    λ and m are already assigned and at ``on_epoch_end`` ``val_ap`` is already in the logs.
    """

    def __init__(self, batch_size: int, on_begin: Callable, on_epoch: Callable, on_step: Callable,
                 on_validation: Callable) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.on_begin, self.on_epoch = on_begin, on_epoch
        self.on_step, self.on_validation = on_step, on_validation
        self.epoch, self.previous_means = 0, {}

    def on_train_begin(self, logs=None) -> None:
        model, size = self.model, self.batch_size
        original = model.train_step

        def tapped(data):
            logs = original(data)
            sums = tf.reduce_sum(tf.cast(data[0], tf.float64), axis=[1, 2, 3])  # (b,)
            sums = tf.pad(sums, [[0, size - tf.shape(sums)[0]]], constant_values=-1.0)
            return {**logs, **{f"fp{i}": sums[i] for i in range(size)}}

        model.train_step = tapped
        model.train_function = None
        model.make_train_function()
        self.on_begin(model)

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.epoch, self.previous_means = epoch, {}
        m = self.model
        self.on_epoch(epoch, float(m.seg_loss_weight.numpy()), float(m.cls_loss_weight.numpy()),
                      float(m.gradient_multiplier.numpy()))

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        logs = {k: float(np.asarray(v)) for k, v in (logs or {}).items()}
        k = batch + 1  # the logs hold running means over the epoch: recover this step's values
        step = {}
        for name in ("loss", "seg_loss", "cls_loss"):
            step[name] = k * logs[name] - (k - 1) * self.previous_means.get(name, 0.0)
            self.previous_means[name] = logs[name]
        fingerprints = [logs[f"fp{i}"] for i in range(self.batch_size) if logs[f"fp{i}"] >= 0]
        self.on_step(self.model, self.epoch, batch, fingerprints, step, logs["lambda"])

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self.on_validation(epoch, (logs or {}).get("val_ap"))


def run_float64(cfg: RunConfig, tap: StepTap) -> Path:
    """``fit`` in float64 with TensorFlow's deterministic kernels; returns the run directory."""
    tf.config.experimental.enable_op_determinism()
    assert cfg.train.precision == "float64", cfg.train.precision
    return fit(cfg, callbacks=[tap])


def run_float32(cfg: RunConfig) -> dict[str, Any]:
    """A whole published run as a user runs it (float32); the finished run's test AP and history."""
    run_dir = fit(cfg)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"test_ap": metrics["ap"], "run_dir": str(run_dir)}
