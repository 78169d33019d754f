"""Convert an exported SavedModel version to TFLite (float32, float16 or full int8) and check it.

How the fixed input shape is obtained: the serving signature accepts any (B, H, W, C); the exporter
wraps it in a tf.function with the fixed signature (1, height, width, channels) read from
metadata.json, saves that wrapper as a temporary SavedModel and converts it with
``tf.lite.TFLiteConverter.from_saved_model`` (``from_concrete_functions`` gave wrong outputs). The
.tflite therefore takes ONE image of exactly the exported size, float32 in [0, 1]; its outputs and
the "serving_default" signature name are the SavedModel's. In int8 mode the weights and activations
are int8 but the input and outputs stay float32 (quantize/dequantize ops at the edges), so every mode
is called the same way::

    from ai_edge_litert.interpreter import Interpreter
    runner = Interpreter(model_path="model_int8.tflite").get_signature_runner("serving_default")
    runner(image=x)["score"]   # x: (1, height, width, channels) float32

After conversion the .tflite is run on a few images (``representative_images`` when given, else
seeded uniform noise) and its ``score`` compared with the SavedModel's; the largest absolute
difference must stay within ``DEFAULT_TOLERANCES[mode]`` (float32 1e-4: only summation order
differs; float16 2e-3: weights rounded to 11 significant bits; int8 0.15: 8-bit activations of a
network whose FeatureNorm divides by per-image statistics; these are score differences, in [0, 1]).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from kerasdec.export.saved_model import SIGNATURE, read_metadata

logger = logging.getLogger(__name__)

MODES = ("float32", "float16", "int8")
DEFAULT_TOLERANCES = {"float32": 1e-4, "float16": 2e-3, "int8": 0.15}  # max |score difference|


class TFLiteCheckError(RuntimeError):
    """The converted model's scores differ from the reference by more than the tolerance."""


def export_tflite(saved_model_dir: Path | str, out_path: Path | str, mode: str = "float32",
                  representative_images: np.ndarray | None = None, *, tolerance: float | None = None,
                  check_images: int = 4, seed: int = 0) -> Path:
    """Convert SavedModel version ``saved_model_dir`` to ``out_path`` (.tflite) and self-check it.

    Writes ``out_path`` and ``<stem>.metadata.json`` beside it (the SavedModel's metadata keys plus
    mode, tolerance, the measured max differences per output and the input shape). Nothing is
    written when the conversion or the check fails.

    Args:
        saved_model_dir: a version folder written by ``export_saved_model`` (with metadata.json).
        out_path: the .tflite file to write; an existing file is never overwritten.
        mode: "float32", "float16" (float16 weights) or "int8" (full integer quantisation).
        representative_images: (N, height, width, channels) float32 in [0, 1]; the int8 calibration
            set (required for int8) and the first ``check_images`` are the check inputs.
        tolerance: max |score difference| allowed by the check; None = DEFAULT_TOLERANCES[mode].
        check_images: number of images the check runs (uniform noise when none are given).
        seed: seed of the noise check images.

    Returns:
        ``out_path``.

    Raises:
        FileExistsError: ``out_path`` or its metadata file exists.
        FileNotFoundError: ``saved_model_dir`` has no metadata.json.
        ValueError: unknown mode, int8 without representative images, images of the wrong shape.
        TFLiteCheckError: the converted model failed the numeric check (message has the difference).

    Example:
        >>> export_tflite("saved_models/segdec/1", "saved_models/segdec/1/model_float16.tflite", "float16")
    """
    out, meta_path = _output_paths(out_path)
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}; expected one of {MODES}")
    info = read_metadata(saved_model_dir)
    shape = (1, info["height"], info["width"], info["channels"])
    images = _check_images(representative_images, shape, mode)
    tolerance = DEFAULT_TOLERANCES[mode] if tolerance is None else tolerance
    content = _convert(Path(saved_model_dir), shape, mode, images)
    probe = images[:check_images] if images is not None else _noise(check_images, shape, seed)
    reference = saved_model_outputs(saved_model_dir, probe)
    diffs = check_tflite(content, probe, reference, tolerance)
    info.update(format="tflite", mode=mode, tolerance=tolerance, max_abs_diff=diffs,
                check_images=len(probe), input_shape=list(shape), saved_model=str(saved_model_dir),
                created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    _write_new(out, content)
    meta_path.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    logger.info("wrote %s (%s, %.1f MB, max score diff %.2g)", out, mode, len(content) / 1e6, diffs["score"])
    return out


def run_tflite(model: bytes | Path | str, images: np.ndarray) -> dict[str, np.ndarray]:
    """Run a kerasdec .tflite (file or bytes) on (N, H, W, C) images one at a time; outputs stacked."""
    from ai_edge_litert.interpreter import Interpreter

    kwargs = {"model_content": model} if isinstance(model, bytes) else {"model_path": str(model)}
    runner = Interpreter(**kwargs).get_signature_runner(SIGNATURE)
    outs = [runner(image=images[i:i + 1].astype(np.float32)) for i in range(len(images))]
    return {key: np.concatenate([o[key] for o in outs]) for key in outs[0]}


def saved_model_outputs(saved_model_dir: Path | str, images: np.ndarray) -> dict[str, np.ndarray]:
    """The SavedModel's "serving_default" outputs for (N, H, W, C) float32 images."""
    fn = tf.saved_model.load(str(saved_model_dir)).signatures[SIGNATURE]
    return {key: value.numpy() for key, value in fn(image=tf.constant(images, tf.float32)).items()}


def check_tflite(model: bytes | Path | str, images: np.ndarray, reference: dict[str, np.ndarray],
                 tolerance: float) -> dict[str, float]:
    """Compare a .tflite's outputs on ``images`` with ``reference`` (e.g. the SavedModel's outputs).

    Returns:
        The max absolute difference per output key present in both.

    Raises:
        TFLiteCheckError: max |score difference| > ``tolerance``; the message gives both.
    """
    got = run_tflite(model, images)
    diffs = {key: float(np.max(np.abs(got[key] - np.asarray(reference[key]))))
             for key in sorted(got) if key in reference}
    if "score" not in diffs or not diffs["score"] <= tolerance:  # `not <=` also catches NaN
        raise TFLiteCheckError(f"TFLite self-check failed on {len(images)} images: max |score difference| "
                               f"{diffs.get('score')} > tolerance {tolerance} (all max differences: {diffs})")
    return diffs


def _convert(saved_model_dir: Path, shape: tuple[int, ...], mode: str, images: np.ndarray | None) -> bytes:
    loaded = tf.saved_model.load(str(saved_model_dir))
    serve = loaded.signatures[SIGNATURE]
    module = tf.Module()
    module.loaded = loaded  # tracks the variables so the wrapper saves them too
    module.serve = tf.function(lambda image: serve(image=image),
                               input_signature=[tf.TensorSpec(shape, tf.float32, name="image")])
    with tempfile.TemporaryDirectory(prefix="kerasdec-tflite-") as tmp:
        tf.saved_model.save(module, tmp, signatures={SIGNATURE: module.serve})
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=[SIGNATURE])
        if mode == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif mode == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: _representative(images)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        with warnings.catch_warnings():  # int8 calibration runs the deprecated tf.lite.Interpreter
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
            return converter.convert()


def _representative(images: np.ndarray) -> Iterator[dict[str, np.ndarray]]:
    for i in range(len(images)):
        yield {"image": images[i:i + 1]}


def _check_images(images: Any, shape: tuple[int, ...], mode: str) -> np.ndarray | None:
    if images is None:
        if mode == "int8":
            raise ValueError("mode='int8' needs representative_images: (N, height, width, channels) "
                             "float32 in [0, 1] from the training data, for calibration")
        return None
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[1:] != shape[1:] or len(images) == 0:
        raise ValueError(f"representative_images has shape {images.shape}; expected (N >= 1, "
                         f"{shape[1]}, {shape[2]}, {shape[3]}) as in the SavedModel's metadata.json")
    if images.min() < 0.0 or images.max() > 1.0:
        raise ValueError(f"representative_images range [{images.min()}, {images.max()}]; expected [0, 1]")
    return images


def _noise(count: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((count, *shape[1:]), dtype=np.float32)


def _output_paths(out_path: Path | str) -> tuple[Path, Path]:
    out = Path(out_path)
    if out.suffix != ".tflite":
        raise ValueError(f"out_path={out}; expected a file name ending in .tflite")
    meta = out.with_name(out.stem + ".metadata.json")
    for path in (out, meta):
        if path.exists():
            raise FileExistsError(f"{path} already exists; exporting never overwrites: "
                                  f"choose another out_path")
    return out, meta


def _write_new(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)  # O_EXCL: never overwrite
    with os.fdopen(fd, "wb") as f:
        f.write(content)
