"""Convert a SegDecNet to TFLite (LiteRT) with a fixed 1 × H × W × C float32 input.

The converted function is the network alone at the trained size (``signatures.core_outputs``:
score (1,), decision (1,), seg (1, H/8, W/8)), traced with plain convolutions
(``rowconv.native_convolutions``): the 15×15 block is one CONV_2D, the op mobile GPU/NPU delegates
accelerate, not the CPU training path's row matmuls (at 64 px: 16 FULLY_CONNECTED, 32 STRIDED_SLICE
and 15 PAD). It costs CPU time: float32 at 128 px, batch 1, LiteRT's XNNPACK with 2 threads on the
development machine (busy), interleaved medians: 134-159 ms as CONV_2D, 94-100 ms as row matmuls.
Request checks and resizing stay in the SavedModel and in the runner (kerasdec/inference/runners.py),
which refuses any other input shape. Conversion goes through a temporary SavedModel and
``TFLiteConverter.from_saved_model`` (``from_concrete_functions`` gave wrong outputs). Modes (``MODES``):

- ``float32``: no quantisation.
- ``float16``: float16 weights, float32 arithmetic.
- ``dynamic``: dynamic-range quantisation: int8 weights, activations quantised on the fly per
  tensor and batch, float32 elsewhere (no calibration data needed).
- ``int8``: full-integer quantisation calibrated on training images, except the FeatureNorm
  normalisations, which stay float32 (see ``FLOAT_OPS``): an int8 (x − mean) / sqrt(std + eps) of a
  per-image statistic loses the decision (measured: docs/deploying.md#tflite-litert).

The input and outputs are float32 in every mode (quantise / dequantise at the edges), so every file
is called the same way; whether a file keeps the decisions is what the export self-check measures
(kerasdec/deploy/check.py).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kerasdec.deploy.signatures import core_outputs
from kerasdec.inference.contract import INPUT_IMAGE, SIGNATURE_IMAGE, TFLITE_MODES, ModelInfo
from kerasdec.models.rowconv import native_convolutions

logger = logging.getLogger(__name__)

MODES = TFLITE_MODES
CALIBRATED = ("int8",)  # modes that need calibration images from the training split
QUANTISED = ("dynamic", "int8")  # modes allowed to flip up to 1% of the held-out decisions


def write_fixed_saved_model(model: keras.Model, info: ModelInfo, folder: Path | str) -> Path:
    """The network alone with the fixed input (1, H, W, C) and plain convolutions as a SavedModel: what
    every mode converts.

    Written once per export into a temporary folder and converted once per mode.

    Raises:
        OSError: the write failed (disk full, read-only): the message names the folder.
    """
    shape = (1, info.height, info.width, info.channels)
    with native_convolutions():  # traced (add_endpoint) and saved (write_out) inside: tf.nn.conv2d only
        archive = keras.export.ExportArchive()
        archive.add_endpoint(SIGNATURE_IMAGE, lambda image: core_outputs(model, image),
                             input_signature=[tf.TensorSpec(shape, tf.float32, name=INPUT_IMAGE)])
        try:
            archive.write_out(str(folder), verbose=False)
        except tf.errors.OpError as err:  # TensorFlow's file system reports a full disk this way
            raise OSError(f"{folder}: could not write the network for TFLite conversion "
                          f"({err.message.strip()})") from err
    return Path(folder)


def convert(fixed_dir: Path | str, mode: str, calibration: np.ndarray | None = None,
            float_ops: tuple[str, ...] | None = None) -> bytes:
    """The .tflite content of the SavedModel written by :func:`write_fixed_saved_model`.

    Args:
        fixed_dir: that SavedModel.
        mode: one of MODES.
        calibration: (N, H, W, C) float32 in [0, 1] training images (required for int8).
        float_ops: int8 only: TFLite op types kept in float32; None = ``FLOAT_OPS``, () = none
            (full-integer int8).

    Raises:
        ValueError: unknown mode, or int8 without calibration images.
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}; expected one of {MODES}")
    if mode in CALIBRATED and (calibration is None or len(calibration) == 0):
        raise ValueError(f"mode={mode!r} needs calibration images (N, H, W, C) from the training split")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(fixed_dir), signature_keys=[SIGNATURE_IMAGE])
    if mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode == "int8":
        return _int8(converter, calibration, FLOAT_OPS if float_ops is None else float_ops)
    return converter.convert()


# TFLite op types of FeatureNorm's normalisation that int8 keeps in float32: the division by
# sqrt(std + eps) and the statistics feeding it (see the module docstring).
FLOAT_OPS = ("MEAN", "SUB", "SQUARE", "SUM", "DIV", "SQRT", "RSQRT", "MUL", "ADD", "MAXIMUM",
             "GREATER", "SELECT_V2", "SQUARED_DIFFERENCE")


def _int8(converter: tf.lite.TFLiteConverter, calibration: np.ndarray, float_ops: tuple[str, ...]) -> bytes:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: _representative(calibration)
    with warnings.catch_warnings():  # calibration runs the deprecated tf.lite.Interpreter
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
        if not float_ops:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            return converter.convert()
        options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=list(float_ops))
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=lambda: _representative(calibration[:1]),
            debug_options=options)
        return debugger.get_nondebug_quantized_model()


def _representative(images: np.ndarray) -> Iterator[dict[str, np.ndarray]]:
    for i in range(len(images)):
        yield {INPUT_IMAGE: images[i:i + 1].astype(np.float32)}
