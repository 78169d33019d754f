"""The full ``kerasdec bench`` table: model, input pipeline and exported artifacts, medians over repeats.

Rows (each a dict, JSON-serialisable; see ``Row keys`` below):

* ``train`` / ``forward``: the compiled training step ``fit`` runs and the forward pass, per input
  size × precision × XLA setting, on one random batch in memory (``bench.ModelTimer``); each repeat
  times ``steps`` steps, the row gives the median over ``repeats``.
* ``pipeline``: the input pipeline alone (``bench_pipeline``), ``cached`` and ``cold``.
* ``savedmodel`` / ``tflite``: one image through the exported SavedModel and each .tflite file
  (``bench_export``).

Efficiency: FLOPs per image from the layer shapes (``model_flops``; 2 per multiply-add, padding
counted, as usual), achieved FLOP/s of every model row, and its share of the matmul rate measured in
the same process (``matmul_gflops``: a 2048² ``tf.matmul`` in float32 and bfloat16).

Row keys: kind, variant (precision, "cached"/"cold", TFLite mode), jit (None where it does not
apply), width, height, channels, batch_size, median_ms (per step or batch), images_per_s, all_ms;
model rows also gflops_per_image, achieved_gflops, matmul_fraction, first_call_s (tracing, plus XLA
compilation, plus one step) and peak_rss_mb (the whole process's peak so far); tflite rows file_mb;
a failed export has error instead of a time.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from kerasdec import bench, bench_export, bench_pipeline
from kerasdec.config import PRECISIONS, DataConfig, RunConfig, TrainConfig, check_input_size
from kerasdec.models.rowconv import released_custom_gradients
from kerasdec.models.segdec import DECISION_BLOCKS, SEGMENTATION_STAGES
from kerasdec.training.model import build_model, precision_policy

log = logging.getLogger(__name__)

TFLITE_MODES = ("float32", "float16", "int8")


@dataclasses.dataclass(frozen=True)
class SuiteConfig:
    """What ``run_suite`` measures."""

    sizes: tuple[tuple[int, int, int], ...] = ((128, 128, 1),)  # (width, height, channels) each
    batch_size: int = 2  # images per training step / forward batch (pipeline rows too)
    precisions: tuple[str, ...] = ("auto",)  # Keras dtype policies, one set of model rows each
    jits: tuple[bool | None, ...] = (None,)  # XLA settings; None = Keras "auto" (on with a GPU)
    steps: int = 5  # steps per repeat
    warmup: int = 2  # untimed steps after the first (tracing) call
    repeats: int = 3  # repeats; rows give the median
    model: bool = True  # add the training-step and forward rows
    pipeline: bool = True  # add the input-pipeline rows
    pipeline_images: int = 32  # images written for the pipeline rows (half defective)
    export: bool = False  # add SavedModel and TFLite rows (converting takes minutes per size)
    tflite_modes: tuple[str, ...] = TFLITE_MODES  # TFLite files exported and timed

    def __post_init__(self) -> None:
        if not self.sizes:
            raise ValueError("sizes is empty; expected at least one (width, height, channels)")
        for width, height, channels in self.sizes:
            check_input_size(width, height)
            if channels not in (1, 3):
                raise ValueError(f"channels={channels}; expected 1 or 3")
        for precision in self.precisions:
            if precision not in PRECISIONS:
                raise ValueError(f"precision={precision!r}; expected one of {PRECISIONS}")
        if min(self.batch_size, self.steps, self.repeats, self.pipeline_images - 1) < 1 or self.warmup < 0:
            raise ValueError(f"batch_size={self.batch_size}, steps={self.steps}, repeats={self.repeats}, "
                             f"warmup={self.warmup}, pipeline_images={self.pipeline_images}; expected "
                             "batch_size, steps, repeats >= 1, warmup >= 0, pipeline_images >= 2")
        unknown = set(self.tflite_modes) - set(TFLITE_MODES)
        if unknown:
            raise ValueError(f"tflite_modes {sorted(unknown)}; expected some of {TFLITE_MODES}")


def _taps(size: int, k: int) -> int:
    """Kernel taps inside the map, summed over the output positions of one axis ("same" padding)."""
    p = k // 2
    return sum(min(i + p, size - 1) - max(i - p, 0) + 1 for i in range(size))


def model_flops(width: int, height: int, channels: int = 1) -> dict[str, float]:
    """FLOPs per image of SegDecNet's convolutions and head, from the layer shapes (METHOD.md §1).

    Counts 2 FLOPs per multiply-add that touches the image, not the zero padding (at a 16×16 map the
    15×15 kernel's padded taps would add 70%): a convolution costs 2·C_in·C_out·taps(H)·taps(W).
    Training step: forward + gradient w.r.t. the weights (same count) + gradient w.r.t. the inputs
    (same count, except for the first convolution, whose input needs none).

    Returns:
        {"forward": FLOPs, "train": FLOPs, "conv15_share": the 15×15×1024 block's share of forward}.
    """
    h, w, c = height, width, channels
    convs = []
    for stage in SEGMENTATION_STAGES:
        if stage == "pool":
            h, w = h // 2, w // 2
            continue
        filters, k = stage
        convs.append(2.0 * _taps(h, k) * _taps(w, k) * c * filters)
        c = filters
    big = convs[-1]
    convs.append(2.0 * h * w * c * 1)  # seg head: 1×1, 1024 → 1
    c = c + 1
    for filters, k in DECISION_BLOCKS:
        h, w = h // 2, w // 2
        convs.append(2.0 * _taps(h, k) * _taps(w, k) * c * filters)
        c = filters
    forward = sum(convs) + 2.0 * (2 * c + 2)
    return {"forward": forward, "train": 3 * forward - convs[0], "conv15_share": big / forward}


def matmul_gflops(dtype: tf.DType = tf.float32, n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of an n×n×n ``tf.matmul`` on this machine (median of ``repeats``)."""
    a = tf.random.uniform((n, n), dtype=tf.float32)
    a = tf.cast(a, dtype)
    matmul = tf.function(lambda x: tf.matmul(x, x))
    np.asarray(matmul(a))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.asarray(tf.cast(matmul(a)[0, 0], tf.float32))
        times.append(time.perf_counter() - start)
    return 2.0 * n ** 3 / float(np.median(times)) / 1e9


def _row(kind: str, variant: str, jit: bool | None, size: tuple[int, int, int], batch: int,
         all_ms: list[float], **extra: Any) -> dict[str, Any]:
    median = float(np.median(all_ms))
    return {"kind": kind, "variant": variant, "jit": jit, "width": size[0], "height": size[1],
            "channels": size[2], "batch_size": batch, "median_ms": median,
            "images_per_s": 1000.0 * batch / median, "all_ms": [float(t) for t in all_ms], **extra}


def model_rows(size: tuple[int, int, int], precision: str, jit: bool | None, cfg: SuiteConfig,
               matmul: dict[str, float]) -> list[dict[str, Any]]:
    """Training-step and forward rows of one size × precision × XLA setting."""
    width, height, channels = size
    run = RunConfig(data=DataConfig(width=width, height=height, channels=channels),
                    train=TrainConfig(batch_size=cfg.batch_size, precision=precision, jit=jit))
    flops = model_flops(width, height, channels)
    rows = []
    with precision_policy(run.train.precision) as resolved, released_custom_gradients():
        model = build_model(run)
        timer = bench.ModelTimer(model, bench.synthetic_batch(run))
        used_jit = bool(model.jit_compile)
        peak = matmul["bfloat16" if "bfloat16" in resolved else "float32"]
        for kind, call in (("train", timer.train), ("forward", timer.forward)):
            first_s = call(1)  # trace (and compile under XLA) + one step
            if cfg.warmup:
                call(cfg.warmup)
            all_ms = [1000 * call(cfg.steps) for _ in range(cfg.repeats)]
            per_image = flops[kind]
            achieved = per_image * cfg.batch_size / (float(np.median(all_ms)) / 1000) / 1e9
            rows.append(_row(kind, resolved, used_jit, size, cfg.batch_size, all_ms,
                             gflops_per_image=per_image / 1e9, achieved_gflops=achieved,
                             matmul_fraction=achieved / peak, first_call_s=first_s,
                             peak_rss_mb=bench.peak_rss_mb()))
            log.info("%s %s jit=%s %dx%d: %.1f ms", kind, resolved, used_jit, width, height,
                     rows[-1]["median_ms"])
    return rows


def pipeline_rows(size: tuple[int, int, int], cfg: SuiteConfig) -> list[dict[str, Any]]:
    """Cached and cold rows of the input pipeline at one size (one row each, medians over repeats)."""
    width, height, channels = size
    results = [bench_pipeline.pipeline_benchmark(width, height, channels, cfg.batch_size,
                                                 n_images=cfg.pipeline_images, epochs=1, seed=i)
               for i in range(cfg.repeats)]
    rows = []
    for mode in ("cached", "cold"):
        all_ms = [1000 * cfg.batch_size / r[f"{mode}_images_per_s"] for r in results]  # ms per batch
        rows.append(_row("pipeline", mode, None, size, cfg.batch_size, all_ms))
    return rows


def export_rows(size: tuple[int, int, int], cfg: SuiteConfig) -> list[dict[str, Any]]:
    """SavedModel and TFLite rows at one size (float32 model, one image per call)."""
    width, height, channels = size
    run = RunConfig(data=DataConfig(width=width, height=height, channels=channels),
                    train=TrainConfig(precision="float32"))
    repeats = max(cfg.repeats, 5)
    with tempfile.TemporaryDirectory(prefix="kerasdec-bench-export-") as tmp, precision_policy("float32"):
        out = bench_export.export_artifacts(run, Path(tmp), cfg.tflite_modes)
        rows = [_row("savedmodel", "float32", None, size, 1,
                     bench_export.time_savedmodel(out["saved_model"], run.data, repeats))]
        for mode, path in out["tflite"].items():
            if path is None:
                failed = _row("tflite", mode, None, size, 1, [float("nan")])
                rows.append({**failed, "error": out["errors"][mode]})
            else:
                times = bench_export.time_tflite(path, run.data, repeats)
                megabytes = Path(path).stat().st_size / 1e6
                rows.append(_row("tflite", mode, None, size, 1, times, file_mb=megabytes))
    return rows


def run_suite(cfg: SuiteConfig) -> dict[str, Any]:
    """Measure every row of ``cfg``; returns {"machine": {...}, "rows": [...]} (JSON-serialisable).

    Example:
        >>> run_suite(SuiteConfig(sizes=((64, 64, 1),), steps=1, repeats=1))["rows"][0]["kind"]
        'train'
    """
    matmul = {"float32": matmul_gflops(tf.float32), "bfloat16": matmul_gflops(tf.bfloat16)}
    machine = {"device": bench.device_name(), "tensorflow": tf.__version__, "cpu_count": os.cpu_count(),
               "matmul_gflops": matmul, "load_average_start": os.getloadavg()[0]}
    rows: list[dict[str, Any]] = []
    for size in cfg.sizes:
        for precision in dict.fromkeys(cfg.precisions) if cfg.model else ():
            for jit in dict.fromkeys(cfg.jits):
                rows += model_rows(size, precision, jit, cfg, matmul)
        if cfg.pipeline:
            rows += pipeline_rows(size, cfg)
        if cfg.export:
            rows += export_rows(size, cfg)
    machine["load_average_end"] = os.getloadavg()[0]
    return {"machine": machine, "settings": dataclasses.asdict(cfg), "rows": rows}


def markdown_table(result: dict[str, Any]) -> str:
    """The rows as a Markdown table, under one line naming the machine and its matmul rate."""
    m = result["machine"]
    head = (f"{m['device']}; TensorFlow {m['tensorflow']}; matmul {m['matmul_gflops']['float32']:.0f} "
            f"GFLOP/s float32, {m['matmul_gflops']['bfloat16']:.0f} bfloat16; load average "
            f"{m['load_average_start']:.1f} → {m['load_average_end']:.1f}")
    lines = [head, "", "| what | variant | XLA | input W×H×C | batch | median ms | images/s | GFLOP/image | "
             "GFLOP/s | of matmul |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        jit = "-" if r["jit"] is None else ("on" if r["jit"] else "off")
        flops = [f"{r['gflops_per_image']:.1f}", f"{r['achieved_gflops']:.1f}",
                 f"{100 * r['matmul_fraction']:.0f}%"] if "gflops_per_image" in r else ["-", "-", "-"]
        timing = ([f"{r['median_ms']:.1f}", f"{r['images_per_s']:.3g}"] if "error" not in r
                  else ["failed", r["error"][:60]])
        shape = f"{r['width']}×{r['height']}×{r['channels']}"
        lines.append("| " + " | ".join([r["kind"], r["variant"], jit, shape, str(r["batch_size"]), *timing,
                                        *flops]) + " |")
    return "\n".join(lines)
