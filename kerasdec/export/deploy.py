"""Export a trained model for deployment: a run directory or a .keras file → SavedModel (+ TFLite).

This is what ``kerasdec export`` calls. The SavedModel goes to ``base_dir/<version>/`` (TF Serving
layout); each TFLite file goes into that version folder as ``<base name>_<mode>.tflite`` with its
``<base name>_<mode>.metadata.json`` (TF Serving reads only saved_model.pb and variables/ there).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kerasdec.config import DataConfig, RunConfig
from kerasdec.rundir import CONFIG_FILE, model_path, read_run_config, stored_threshold

if TYPE_CHECKING:
    import keras

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5  # when neither a threshold nor an evaluation of the exported model is given
DEFAULT_CALIBRATION_IMAGES = 32  # int8 calibration images drawn from the training split


@dataclass(frozen=True)
class ExportSource:
    """A model to export with what its export needs.

    Attributes:
        model: the loaded Keras model.
        model_file: the .keras file it was loaded from.
        data_cfg: input size and channels (and, from a run, the dataset for int8 calibration).
        threshold: decision threshold recorded in metadata.json.
        threshold_from: where the threshold came from (a metrics.json, "argument" or "default").
        seed: the run's seed (train split for calibration), None without a run config.json.
    """

    model: keras.Model
    model_file: Path
    data_cfg: DataConfig
    threshold: float
    threshold_from: str
    seed: int | None


def load_source(source: Path | str, *, which: str = "final", threshold: float | None = None,
                data_root: Path | str | None = None, width: int | None = None,
                height: int | None = None) -> ExportSource:
    """Load a run directory's model_<which>.keras, or a .keras file, with its data settings.

    A .keras file with a config.json beside it (inside a run directory) is treated like its run.
    The threshold is ``threshold`` if given, else the F-best threshold of the evaluation of that model
    (run_dir/metrics.json for "final", run_dir/evaluate-test-best/metrics.json for "best"), else 0.5.

    Args:
        source: a run directory (config.json + model_<which>.keras) or a .keras file.
        which: "final" or "best" (run directories only).
        threshold: overrides the stored threshold.
        data_root: overrides the dataset root of config.json (for int8 calibration).
        width: input width for a .keras file without config.json (required there).
        height: input height for a .keras file without config.json (required there).

    Returns:
        The :class:`ExportSource`.

    Raises:
        FileNotFoundError: the source or the run's model file is missing.
        ValueError: bad ``which``; a bare .keras file without width and height.
    """
    import keras

    import kerasdec.models.segdec  # noqa: F401  (registers the classes for load_model)

    model_file = _model_file(source, which)
    cfg = read_run_config(model_file.parent)
    if cfg is None and (width is None or height is None):
        raise ValueError(f"no config.json beside {model_file} to give the input size; pass width and "
                         "height (--width/--height: the size the model was trained at)")
    model = keras.saving.load_model(model_file)
    data_cfg = _data_config(cfg, model, model_file, data_root, width, height)
    value, origin = _threshold(model_file, threshold)
    return ExportSource(model, model_file, data_cfg, value, origin, cfg.seed if cfg else None)


def calibration_images(data_cfg: DataConfig, seed: int, count: int = DEFAULT_CALIBRATION_IMAGES,
                       batch_size: int = 8) -> np.ndarray:
    """``count`` training images spread evenly over the training split, as the network sees them.

    Returns:
        (N, height, width, channels) float32 in [0, 1], N = min(count, training images).
    """
    from kerasdec.data.pipeline import make_eval_dataset
    from kerasdec.data.sources import load_split

    samples = load_split(data_cfg, "train", seed)
    picks = np.unique(np.linspace(0, len(samples) - 1, min(count, len(samples))).round().astype(int))
    dataset = make_eval_dataset([samples[i] for i in picks], data_cfg, batch_size)
    return np.concatenate([np.asarray(x) for x, _, _ in dataset])  # (N, H, W, C)


def export_source(source: Path | str, base_dir: Path | str, *, which: str = "final",
                  version: int | None = None, tflite_modes: Sequence[str] = (),
                  threshold: float | None = None, data_root: Path | str | None = None,
                  width: int | None = None, height: int | None = None,
                  calibration_count: int = DEFAULT_CALIBRATION_IMAGES) -> dict[str, Path]:
    """Export ``source`` (see :func:`load_source`) as SavedModel version ``base_dir/<version>`` and
    convert it to TFLite in each of ``tflite_modes``.

    Returns:
        {"saved_model": version folder, <mode>: .tflite path, ...} in the order written.

    Raises:
        ValueError: int8 requested for a source without a run config.json (no training data to
            calibrate on), or the errors of :func:`load_source`, ``export_saved_model`` and
            ``export_tflite``.

    Example:
        >>> export_source("runs/ksdd-1", "saved_models/segdec", tflite_modes=["float16", "int8"])
    """
    from kerasdec.export.saved_model import export_saved_model
    from kerasdec.export.tflite import export_tflite

    if version is not None and (Path(base_dir) / str(version)).exists():  # before the slow model load
        raise FileExistsError(f"version folder {Path(base_dir) / str(version)} already exists; exporting "
                              "never overwrites: pass another --version or leave it out")
    model_file = _model_file(source, which)
    if "int8" in tflite_modes and not (model_file.parent / CONFIG_FILE).is_file():
        raise ValueError(f"int8 needs calibration images from the training data, but {model_file} "
                         "has no config.json beside it; export a run directory instead")
    src = load_source(source, which=which, threshold=threshold, data_root=data_root, width=width,
                      height=height)
    extra = {"source": str(Path(source).resolve()), "model_file": str(src.model_file.resolve()),
             "threshold_from": src.threshold_from}
    if src.seed is None:
        extra["dataset"] = None  # a bare .keras file does not say what it was trained on
    written = {"saved_model": export_saved_model(src.model, base_dir, data_cfg=src.data_cfg,
                                                 threshold=src.threshold, version=version, metadata=extra)}
    name = Path(base_dir).resolve().name
    for mode in tflite_modes:
        images = calibration_images(src.data_cfg, src.seed, calibration_count) if mode == "int8" else None
        out = written["saved_model"] / f"{name}_{mode}.tflite"
        written[mode] = export_tflite(written["saved_model"], out, mode, representative_images=images)
    return written


def _model_file(source: Path | str, which: str) -> Path:
    path = Path(source)
    if which not in ("final", "best"):
        raise ValueError(f"which={which!r}; expected 'final' or 'best'")
    model_file = model_path(path, which) if path.is_dir() else path
    if not model_file.is_file() or model_file.suffix != ".keras":
        raise FileNotFoundError(f"{model_file} not found; expected a run directory (config.json + "
                                f"model_{which}.keras) or a .keras file")
    return model_file


def _data_config(cfg: RunConfig | None, model: keras.Model, model_file: Path, data_root: Path | str | None,
                 width: int | None, height: int | None) -> DataConfig:
    """The run's data settings (root and size overridable), or a minimal one for a bare .keras file."""
    if cfg is not None:
        data = cfg.data if data_root is None else dataclasses.replace(cfg.data, root=str(data_root))
        return dataclasses.replace(data, width=width or data.width, height=height or data.height)
    return DataConfig(dataset="folder", root=str(model_file.parent), width=width, height=height,
                      channels=int(getattr(model, "input_channels", 1)))


def _threshold(model_file: Path, threshold: float | None) -> tuple[float, str]:
    if threshold is not None:
        return float(threshold), "argument"
    stored, where = stored_threshold(model_file)
    if stored is not None:
        return stored, str(where.resolve())
    logger.warning("no evaluation of %s found; recording the default threshold %s", model_file,
                   DEFAULT_THRESHOLD)
    return DEFAULT_THRESHOLD, "default"
