"""Speed and memory of SegDecNet on synthetic tensors: the numbers behind "faster than the reference".

``benchmark(...)`` builds and compiles the model exactly as ``kerasdec fit`` does
(``training.model.build_model`` under ``precision_policy``) and times the same compiled functions
``fit`` and ``predict`` call, on one random batch kept in memory (no dataset, no decoding):

* training: ``model.train_function(iterator)``, the function ``fit`` calls once per step, fed from a
  repeated ``tf.data`` dataset through the model's distribution strategy, as ``fit`` does. The first
  call (tracing, plus XLA compilation under ``jit``) is timed alone as ``first_train_step_s``; then
  ``warmup`` untimed steps; then ``steps`` steps timed together, with one synchronisation at the end
  (the loss is read back), so the device can overlap steps as it does in ``fit``. Callbacks and the
  progress bar are left out: they cost the same in any precision.
* inference: ``model.predict_function``, the function ``predict`` calls per batch, on the batch
  already converted to a tensor; same first / warmup / timed scheme, reading the outputs back.
* memory: ``host_peak_rss_mb`` is the peak resident size of the whole process (``ru_maxrss``, so it
  includes TensorFlow itself and anything run earlier in the process); ``host_peak_rss_growth_mb`` is
  how much this benchmark raised that peak (0 when an earlier, larger peak already covered it: run one
  configuration per process for a clean figure). ``gpu_peak_mb`` is TensorFlow's allocator peak on
  GPU:0 (``tf.config.experimental.get_memory_info``), None without a GPU.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from kerasdec.config import DataConfig, RunConfig, TrainConfig
from kerasdec.models.rowconv import released_custom_gradients
from kerasdec.models.segdec import DOWNSCALE
from kerasdec.training.model import build_model, precision_policy

log = logging.getLogger(__name__)

# Keys of every benchmark() result whose value is a positive, finite number.
TIMING_KEYS = ("build_s", "first_train_step_s", "train_ms_per_step", "train_images_per_s",
               "first_predict_s", "predict_ms_per_batch", "predict_images_per_s", "host_peak_rss_mb")


def benchmark(width: int = 128, height: int = 128, channels: int = 1, batch_size: int = 2,
              precision: str = "auto", jit: bool | None = None, steps: int = 10, warmup: int = 2,
              seed: int = 0) -> dict[str, Any]:
    """Time training and inference of SegDecNet at one input size, precision and XLA setting.

    Args:
        width: input width W (multiple of 8, at least 64). Default 128 (the synthetic preset).
        height: input height H (multiple of 8, at least 64). Default 128.
        channels: 1 or 3. Default 1.
        batch_size: images per step. Default 2.
        precision: "auto" (mixed_float16 on a GPU, float32 otherwise), "float32", "mixed_float16" or
            "mixed_bfloat16". Default "auto". The global Keras dtype policy is restored afterwards.
        jit: XLA compilation; None = Keras "auto" (on when a GPU is visible). Default None.
        steps: timed steps (training) and timed batches (inference), >= 1. Default 10.
        warmup: untimed steps after the first (tracing) call, >= 0. Default 2.
        seed: seeds the random batch. Default 0.

    Returns:
        A JSON-serialisable dict: the settings (width, height, channels, batch_size, steps, warmup,
        precision = the resolved policy name, precision_requested, jit = the resolved flag), the
        environment (device, tensorflow, keras), the model (params, compute_dtype, variable_dtype,
        output_dtypes, train_loss = mean loss of the timed steps), the timings of TIMING_KEYS
        (seconds, milliseconds, images per second), host_peak_rss_growth_mb (>= 0) and gpu_peak_mb
        (None without a GPU).

    Raises:
        ValueError: a bad size, channel count, batch size, precision, steps or warmup (the message
            names the argument).

    Example:
        >>> benchmark(64, 64, batch_size=1, precision="mixed_bfloat16", steps=2, warmup=1)["compute_dtype"]
        'bfloat16'
    """
    if steps < 1 or warmup < 0:
        raise ValueError(f"steps={steps}, warmup={warmup}; expected steps >= 1 and warmup >= 0")
    data = dataclasses.replace(DataConfig(), width=width, height=height, channels=channels)
    train = dataclasses.replace(TrainConfig(), batch_size=batch_size, precision=precision, jit=jit)
    cfg = RunConfig(data=data, train=train, seed=seed)
    rss_before = peak_rss_mb()
    gpu = reset_gpu_peak()
    with precision_policy(cfg.train.precision) as resolved, released_custom_gradients():
        log.info("Benchmarking %dx%dx%d, batch %d, %s, jit=%s", width, height, channels, batch_size,
                 resolved, "auto" if jit is None else jit)
        start = time.perf_counter()
        model = build_model(cfg)
        result = {"build_s": time.perf_counter() - start}
        batch = synthetic_batch(cfg, seed)
        result.update(time_training(model, batch, steps, warmup))
        result.update(time_inference(model, batch[0], steps, warmup))
        result.update(describe_model(model))
    rss_after = peak_rss_mb()
    result.update(
        width=width, height=height, channels=channels, batch_size=batch_size, steps=steps, warmup=warmup,
        precision=resolved, precision_requested=precision, jit=bool(model.jit_compile),
        device=device_name(), tensorflow=tf.__version__, keras=keras.__version__,
        host_peak_rss_mb=rss_after, host_peak_rss_growth_mb=max(0.0, rss_after - rss_before),
        gpu_peak_mb=gpu_peak_mb() if gpu else None)
    return result


def synthetic_batch(cfg: RunConfig, seed: int = 0) -> tuple[np.ndarray, dict, dict]:
    """One random (x, y, sample_weight) batch in the training layout (METHOD.md contract 2).

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


def time_training(model: keras.Model, batch: tuple, steps: int, warmup: int) -> dict[str, float]:
    """Time ``model.train_function`` (the step ``fit`` runs) on a repeated batch; see the module doc."""
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    iterator = iter(model.distribute_strategy.experimental_distribute_dataset(dataset))
    model.make_train_function()
    start = time.perf_counter()
    float(model.train_function(iterator)["loss"])  # trace (and compile) + one step, synchronised
    first = time.perf_counter() - start
    for _ in range(warmup):
        float(model.train_function(iterator)["loss"])
    for tracker in model.metrics:  # the reported loss is the mean over the timed steps only
        tracker.reset_state()
    start = time.perf_counter()
    for _ in range(steps):
        logs = model.train_function(iterator)
    loss = float(logs["loss"])  # waits for the last step
    seconds = (time.perf_counter() - start) / steps
    batch_size = int(batch[0].shape[0])
    return {"first_train_step_s": first, "train_ms_per_step": 1000 * seconds,
            "train_images_per_s": batch_size / seconds, "train_loss": loss}


def time_inference(model: keras.Model, x: np.ndarray, steps: int, warmup: int) -> dict[str, Any]:
    """Time ``model.predict_function`` (what ``predict`` runs per batch) on one in-memory batch."""
    data = [(tf.convert_to_tensor(x),)]
    model.make_predict_function()

    def run() -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in model.predict_function(data).items()}  # synchronised

    start = time.perf_counter()
    outputs = run()
    first = time.perf_counter() - start
    for _ in range(warmup):
        run()
    start = time.perf_counter()
    for _ in range(steps):
        outputs = run()
    seconds = (time.perf_counter() - start) / steps
    return {"first_predict_s": first, "predict_ms_per_batch": 1000 * seconds,
            "predict_images_per_s": x.shape[0] / seconds,
            "output_dtypes": {k: str(v.dtype) for k, v in sorted(outputs.items())}}


def describe_model(model: keras.Model) -> dict[str, Any]:
    """Parameter count and the dtypes the model computes in and stores its variables in."""
    return {"params": int(model.count_params()), "compute_dtype": model.compute_dtype,
            "variable_dtype": model.variable_dtype}


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


def reset_gpu_peak() -> bool:
    """Reset TensorFlow's peak-memory counter of GPU:0; False when no GPU is visible."""
    if not tf.config.list_physical_devices("GPU"):
        return False
    tf.config.experimental.reset_memory_stats("GPU:0")
    return True


def gpu_peak_mb() -> float:
    """Peak bytes TensorFlow allocated on GPU:0 since the last reset, in MiB."""
    return tf.config.experimental.get_memory_info("GPU:0")["peak"] / (1024 * 1024)
