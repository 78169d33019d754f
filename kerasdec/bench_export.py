"""Latency of the deployable artifacts: the SavedModel and each TFLite file, one image at a time.

``export_artifacts`` exports an (untrained, seeded) SegDecNet with kerasdec's own exporters
(``export.saved_model.export_saved_model``, ``export.tflite.export_tflite``) into a folder;
``time_savedmodel`` and ``time_tflite`` time the "serving_default" signature on one image
(batch 1, the TFLite files' fixed shape), median over repeats. A TFLite mode whose conversion or
self-check fails is reported with its error instead of a time.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from kerasdec.config import DataConfig, RunConfig

log = logging.getLogger(__name__)


def _median_ms(call, repeats: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - start))
    return times


def export_artifacts(cfg: RunConfig, folder: Path, modes: tuple[str, ...], seed: int = 0) -> dict[str, Any]:
    """Export a seeded SegDecNet as SavedModel + one .tflite per mode under ``folder``.

    Returns:
        {"saved_model": version dir, "tflite": {mode: path or None}, "errors": {mode: message}}.
    """
    import keras

    from kerasdec.export.saved_model import export_saved_model
    from kerasdec.export.tflite import export_tflite
    from kerasdec.training.model import build_model

    keras.utils.set_random_seed(seed)
    model = build_model(cfg)
    version = export_saved_model(model, folder / "segdec", data_cfg=cfg.data, threshold=0.5)
    rng = np.random.default_rng(seed)
    images = rng.random((8, cfg.data.height, cfg.data.width, cfg.data.channels), dtype=np.float32)
    out: dict[str, Any] = {"saved_model": version, "tflite": {}, "errors": {}}
    for mode in modes:
        try:
            out["tflite"][mode] = export_tflite(version, version / f"model_{mode}.tflite", mode,
                                                representative_images=images if mode == "int8" else None)
        except Exception as err:  # a failed mode is a row with its error, not the end of the benchmark
            log.warning("TFLite %s export failed: %s", mode, err)
            out["tflite"][mode], out["errors"][mode] = None, f"{type(err).__name__}: {err}"
    return out


def time_savedmodel(version_dir: Path, data: DataConfig, repeats: int) -> list[float]:
    """Milliseconds per call of the SavedModel's serving signature on one image."""
    fn = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    x = tf.constant(np.random.default_rng(0).random((1, data.height, data.width, data.channels),
                                                    dtype=np.float32))
    return _median_ms(lambda: fn(image=x)["score"].numpy(), repeats)


def time_tflite(path: Path, data: DataConfig, repeats: int) -> list[float]:
    """Milliseconds per call of a .tflite's signature runner on one image (all cores)."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path), num_threads=os.cpu_count()).get_signature_runner(
        "serving_default")
    x = np.random.default_rng(0).random((1, data.height, data.width, data.channels), dtype=np.float32)
    return _median_ms(lambda: runner(image=x)["score"], repeats)
