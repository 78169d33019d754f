"""Timing helpers of ``kerasdec bench``: the compiled step and forward pass of one model on one batch,
timed calls, the machine's name, peak memory, and the row every measurement becomes."""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from kerasdec.config import DOWNSCALE, RunConfig


def synthetic_batch(cfg: RunConfig, seed: int = 0) -> tuple[np.ndarray, dict, dict]:
    """One random (x, y, sample_weight) batch in the layout kerasdec.data.pipeline feeds training.

    Args:
        cfg: gives the input size, channels and batch size.
        seed: seeds numpy's generator.

    Returns:
        x (B, H, W, C) float32 in [0, 1]; y {"seg": (B, H/8, W/8, 1) 0/1, "decision": (B, 1) 0/1};
        sample_weight {"seg": ones like y["seg"], "decision": ones (B, 1)}.
    """
    rng = np.random.default_rng(seed)
    b, h, w = cfg.train.batch_size, cfg.data.height, cfg.data.width
    x = rng.random((b, h, w, cfg.data.channels), dtype=np.float32)
    seg = (rng.random((b, h // DOWNSCALE, w // DOWNSCALE, 1)) < 0.05).astype(np.float32)
    decision = seg.max(axis=(1, 2))  # (B, 1)
    weights = {"seg": np.ones_like(seg), "decision": np.ones_like(decision)}
    return x, {"seg": seg, "decision": decision}, weights


class ModelTimer:
    """Run the compiled training step and the forward pass of one model on one batch, on demand.

    ``train(n)`` / ``forward(n)`` run n steps and return seconds per step, synchronised once at the
    end (the loss or the outputs are read back). Used for interleaved comparisons, where the caller
    alternates this timer with another framework's in rounds.

    Args:
        model: a compiled, built SegDecNet (``training.model.build_model``).
        batch: (x, y, sample_weight) in the training layout (``synthetic_batch``).
        jit_forward: XLA for the forward pass; None = the model's own ``jit_compile`` setting.
    """

    def __init__(self, model: keras.Model, batch: tuple, jit_forward: bool | None = None) -> None:
        self.model = model
        self.batch = batch
        dataset = tf.data.Dataset.from_tensors(batch).repeat()
        self._iterator = iter(model.distribute_strategy.experimental_distribute_dataset(dataset))
        model.make_train_function()
        jit = bool(model.jit_compile) if jit_forward is None else jit_forward
        self._forward = tf.function(lambda x: model(x, training=False), jit_compile=jit)
        self._x = tf.convert_to_tensor(batch[0])

    def train(self, steps: int) -> float:
        """Seconds per training step over ``steps`` steps (``fit``'s own compiled step)."""
        start = time.perf_counter()
        for _ in range(steps):
            logs = self.model.train_function(self._iterator)
        float(logs["loss"])  # waits for the last step
        return (time.perf_counter() - start) / steps

    def forward(self, steps: int) -> float:
        """Seconds per forward pass (inference) over ``steps`` passes."""
        start = time.perf_counter()
        for _ in range(steps):
            outputs = self._forward(self._x)
        np.asarray(outputs["decision"])  # waits for the last pass
        return (time.perf_counter() - start) / steps


def timed_calls(call: Callable[[], Any], repeats: int, warmup: int = 2) -> list[float]:
    """Milliseconds of each of ``repeats`` calls of ``call``, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - start))
    return times


def row(kind: str, variant: str, jit: bool | None, size: tuple[int, int, int], batch: int,
         all_ms: list[float], **extra: Any) -> dict[str, Any]:
    median = float(np.median(all_ms))
    return {"kind": kind, "variant": variant, "jit": jit, "width": size[0], "height": size[1],
            "channels": size[2], "batch_size": batch, "median_ms": median,
            "images_per_s": 1000.0 * batch / median, "all_ms": [float(t) for t in all_ms], **extra}


def device_name() -> str:
    """"GPU: <name>" for the first visible GPU, else "CPU: <model name> (<n> logical cores)"."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"GPU: {details.get('device_name', gpus[0].name)} ({len(gpus)} visible)"
    name = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                  if line.startswith("model name")]
        name = models[0] if models else name
    return f"CPU: {name} ({os.cpu_count()} logical cores)"


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
