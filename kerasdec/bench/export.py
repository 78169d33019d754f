"""Latency of the deployable artifacts: the SavedModel and each TFLite file, one image at a time.

``export_artifacts`` writes a seeded, untrained SegDecNet with kerasdec's own exporters
(``deploy.saved_model.write_saved_model``; ``deploy.tflite.write_fixed_saved_model`` and ``convert``
per mode, int8 calibrated on seeded noise images); ``export_rows`` times each artifact through its
runner (kerasdec.inference.runners, the path ``kerasdec predict`` and the export self-check take) on
one image (batch 1, the TFLite files' fixed shape), the TFLite interpreter on every core. A TFLite
mode whose conversion fails, or whose runtime is not installed, is a row with its error instead of a
time.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kerasdec.bench.timing import row, timed_calls
from kerasdec.config import DataConfig, RunConfig, TrainConfig
from kerasdec.deploy import tflite
from kerasdec.deploy.data import probe_images
from kerasdec.deploy.saved_model import write_saved_model
from kerasdec.inference.contract import DEFAULT_THRESHOLD, ModelInfo
from kerasdec.inference.runners import SavedModelRunner, TFLiteRunner
from kerasdec.training.model import build_model, precision_policy

log = logging.getLogger(__name__)

TFLITE_MODES = ("float32", "float16", "int8")  # what ``kerasdec bench --export`` converts and times


def export_artifacts(cfg: RunConfig, folder: Path, modes: tuple[str, ...],
                     seed: int = 0) -> tuple[ModelInfo, dict[str, Any]]:
    """Export a seeded SegDecNet into ``folder``: the SavedModel and one .tflite per mode.

    Returns:
        (its ModelInfo, {"saved_model": version folder, <mode>: .tflite path or the error message}).
    """
    keras.utils.set_random_seed(seed)
    model = build_model(cfg)
    info = ModelInfo(cfg.data.height, cfg.data.width, cfg.data.channels, DEFAULT_THRESHOLD, "default")
    out: dict[str, Any] = {"saved_model": write_saved_model(model, folder / "segdec", info)}
    if modes:
        fixed = tflite.write_fixed_saved_model(model, info, folder / "fixed")
        calibration = np.concatenate(probe_images(info.height, info.width, info.channels, seed=seed).batches)
    for mode in modes:
        path = folder / f"segdec_{mode}.tflite"
        try:
            path.write_bytes(tflite.convert(fixed, mode, calibration if mode in tflite.CALIBRATED else None))
            out[mode] = path
        except Exception as err:  # a failed mode is a row with its error, not the end of the benchmark
            log.warning("TFLite %s export failed: %s", mode, err)
            out[mode] = f"{type(err).__name__}: {err}"
    return info, out


def export_rows(size: tuple[int, int, int], modes: tuple[str, ...], repeats: int) -> list[dict[str, Any]]:
    """SavedModel and TFLite rows at one size (float32 model, one image per call, ``repeats`` >= 5)."""
    width, height, channels = size
    run = RunConfig(data=DataConfig(width=width, height=height, channels=channels),
                    train=TrainConfig(precision="float32"))
    repeats = max(repeats, 5)
    x = np.random.default_rng(0).random((1, height, width, channels), dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="kerasdec-bench-export-") as tmp, precision_policy("float32"):
        info, artifacts = export_artifacts(run, Path(tmp), modes)
        runner = SavedModelRunner(artifacts["saved_model"], info)
        rows = [row("savedmodel", "float32", None, size, 1, timed_calls(lambda: runner.predict(x), repeats))]
        for mode in modes:
            rows.append(_tflite_row(artifacts[mode], mode, info, x, size, repeats))
    return rows


def _tflite_row(artifact: Path | str, mode: str, info: ModelInfo, x: np.ndarray, size: tuple[int, int, int],
                repeats: int) -> dict[str, Any]:
    try:
        if isinstance(artifact, str):
            raise RuntimeError(artifact)
        runner = TFLiteRunner(artifact, info, threads=os.cpu_count())
    except (RuntimeError, ImportError) as err:  # conversion failed, or ai-edge-litert is not installed
        error = str(err) if isinstance(err, RuntimeError) else f"{type(err).__name__}: {err}"
        return {**row("tflite", mode, None, size, 1, [float("nan")]), "error": error}
    times = timed_calls(lambda: runner.predict(x), repeats)
    return row("tflite", mode, None, size, 1, times, file_mb=artifact.stat().st_size / 1e6)
