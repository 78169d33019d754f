"""The full ``kerasdec bench`` table: model, input pipeline and exported artifacts, medians over repeats.

Rows (each a dict, JSON-serialisable; see ``Row keys`` below):

* ``train`` / ``forward``: the compiled training step ``fit`` runs and the forward pass, per input
  size × precision × XLA setting, on one random batch in memory (``timing.ModelTimer``); each repeat
  times ``steps`` steps, the row gives the median over ``repeats``.
* ``pipeline``: the input pipeline alone (``pipeline.py``), ``cached`` and ``cold``.
* ``savedmodel`` / ``tflite``: one image through the exported SavedModel and each .tflite file
  (``export.py``).

Efficiency: FLOPs per image from the layer shapes (``flops.model_flops``; 2 per multiply-add that
touches the image), achieved FLOP/s of every model row, and its share of the matmul rate measured in
the same process (``flops.matmul_gflops``: a 2048² ``tf.matmul`` in float32 and bfloat16).

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
from typing import Any

import numpy as np
import tensorflow as tf

from kerasdec.bench.export import TFLITE_MODES, export_rows
from kerasdec.bench.flops import matmul_gflops, model_flops
from kerasdec.bench.pipeline import pipeline_rows
from kerasdec.bench.timing import ModelTimer, device_name, peak_rss_mb, row, synthetic_batch
from kerasdec.config import PRECISIONS, DataConfig, RunConfig, TrainConfig, check_input_size
from kerasdec.models.rowconv import released_custom_gradients
from kerasdec.training.model import build_model, precision_policy

log = logging.getLogger(__name__)


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
        timer = ModelTimer(model, synthetic_batch(run))
        used_jit = bool(model.jit_compile)
        peak = matmul["bfloat16" if "bfloat16" in resolved else "float32"]
        for kind, call in (("train", timer.train), ("forward", timer.forward)):
            first_s = call(1)  # trace (and compile under XLA) + one step
            if cfg.warmup:
                call(cfg.warmup)
            all_ms = [1000 * call(cfg.steps) for _ in range(cfg.repeats)]
            per_image = flops[kind]
            achieved = per_image * cfg.batch_size / (float(np.median(all_ms)) / 1000) / 1e9
            rows.append(row(kind, resolved, used_jit, size, cfg.batch_size, all_ms,
                             gflops_per_image=per_image / 1e9, achieved_gflops=achieved,
                             matmul_fraction=achieved / peak, first_call_s=first_s,
                             peak_rss_mb=peak_rss_mb()))
            log.info("%s %s jit=%s %dx%d: %.1f ms", kind, resolved, used_jit, width, height,
                     rows[-1]["median_ms"])
    return rows


def run_suite(cfg: SuiteConfig) -> dict[str, Any]:
    """Measure every row of ``cfg``; returns {"machine": {...}, "rows": [...]} (JSON-serialisable).

    Example:
        >>> run_suite(SuiteConfig(sizes=((64, 64, 1),), steps=1, repeats=1))["rows"][0]["kind"]
        'train'
    """
    matmul = {"float32": matmul_gflops(tf.float32), "bfloat16": matmul_gflops(tf.bfloat16)}
    machine = {"device": device_name(), "tensorflow": tf.__version__, "cpu_count": os.cpu_count(),
               "matmul_gflops": matmul, "load_average_start": os.getloadavg()[0]}
    rows: list[dict[str, Any]] = []
    for size in cfg.sizes:
        for precision in dict.fromkeys(cfg.precisions) if cfg.model else ():
            for jit in dict.fromkeys(cfg.jits):
                rows += model_rows(size, precision, jit, cfg, matmul)
        if cfg.pipeline:
            rows += pipeline_rows(size, cfg.batch_size, cfg.pipeline_images, cfg.repeats)
        if cfg.export:
            rows += export_rows(size, cfg.tflite_modes, cfg.repeats)
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
