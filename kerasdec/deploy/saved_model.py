"""Write a SegDecNet as a TF Serving SavedModel with three signatures, and read one back.

Signatures (names and rules in kerasdec/inference/contract.py, computation in signatures.py):

- ``serving_default``: ``image`` float32 in [0, 1], (B, H, W, C) or (B, H, W) for grayscale, any
  H × W (resized in the graph to the trained size) → score, is_defective, heatmap (at the request's
  size), decision, seg, image_size.
- ``serving_bytes``: ``image_bytes`` string (B,) of PNG / JPEG / BMP files → the same outputs.
- ``metadata``: ``request`` (any float, ignored: TF Serving's REST API needs an input) → threshold,
  input_height, input_width, input_channels, dataset, kerasdec_version (scalars).

A malformed request is an InvalidArgumentError naming the rule, never a crash. ``metadata.json``
beside saved_model.pb holds the same facts for tools that read files (TF Serving ignores it).
Check an export without a server: ``saved_model_cli show --dir saved_models/segdec/1 --all``.
"""

from __future__ import annotations

import datetime
import logging
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from kerasdec.deploy import signatures
from kerasdec.files import write_json
from kerasdec.inference.contract import (
    INPUT_BYTES,
    INPUT_IMAGE,
    INPUT_METADATA,
    METADATA_FILE,
    METADATA_RULE,
    OUTPUTS,
    SIGNATURE_BYTES,
    SIGNATURE_IMAGE,
    SIGNATURE_METADATA,
    ModelInfo,
    bytes_rule,
    image_rule,
)
from kerasdec.models.rowconv import native_convolutions
from kerasdec.version import __version__

logger = logging.getLogger(__name__)


def write_saved_model(model: keras.Model, folder: Path | str, info: ModelInfo,
                      extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as a SavedModel into the new folder ``folder``, with metadata.json.

    Publishing (version numbers, the hidden temporary folder, the final rename) is the caller's:
    see kerasdec/deploy/export.py.

    Args:
        model: a built SegDecNet whose input_channels equal ``info.channels``.
        folder: must not exist yet.
        info: input size, channels, threshold and dataset the signatures are built with.
        extra: more JSON keys for metadata.json (source, model_file, ...); may not replace its keys.

    Returns:
        ``folder``.

    Raises:
        ValueError: channel mismatch or clashing metadata keys (before anything is written).
        OSError: the write failed (disk full, read-only): the message names the folder.
    """
    folder = Path(folder)
    channels = getattr(model, "input_channels", info.channels)
    if channels != info.channels:
        raise ValueError(f"model input_channels={channels} but the export says channels={info.channels}; "
                         "expected the channels the model was trained with")
    meta = metadata(info, extra or {})
    # The exported graph is traced with tf.nn.conv2d everywhere: it may be served on a GPU (cuDNN), where
    # the CPU training path's row-GEMM convolution has no place. (The .tflite files are converted from
    # their own fixed-size trace, likewise plain: tflite.write_fixed_saved_model.)
    with native_convolutions():
        archive = _archive(model, info)
        try:
            archive.write_out(str(folder), verbose=False)
        except tf.errors.OpError as err:  # TensorFlow's file system reports a full disk this way
            raise OSError(f"{folder}: could not write the SavedModel ({err.message.strip()})") from err
    write_json(folder / METADATA_FILE, meta)
    return folder


def metadata(info: ModelInfo, extra: dict[str, Any]) -> dict[str, Any]:
    """metadata.json of a SavedModel version: ``info`` plus versions, signatures and ``extra``."""
    meta: dict[str, Any] = {
        "format": "tf_saved_model", **info.to_dict(),
        "kerasdec_version": __version__, "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "signatures": {SIGNATURE_IMAGE: image_rule(info.channels, info.max_pixels),
                       SIGNATURE_BYTES: bytes_rule(info.max_pixels),
                       SIGNATURE_METADATA: METADATA_RULE},
        "outputs": dict(OUTPUTS),
    }
    clash = sorted(set(extra) & set(meta))
    if clash:
        raise ValueError(f"metadata keys {clash} would replace keys written by the exporter; expected "
                         "other names")
    return {**meta, **extra}


def _archive(model: keras.Model, info: ModelInfo) -> keras.export.ExportArchive:
    # No archive.track(model): add_endpoint tracks every variable an endpoint uses, and track() would
    # store each weight a second time (Keras issue #23553: 2x files, 2x memory in TF Serving).
    size = (info.height, info.width)
    kwargs = {"channels": info.channels, "size_hw": size, "threshold": info.threshold,
              "max_pixels": info.max_pixels}
    archive = keras.export.ExportArchive()
    archive.add_endpoint(
        SIGNATURE_IMAGE, lambda image: signatures.serve_images(model, image, **kwargs),
        input_signature=[tf.TensorSpec(None, tf.float32, name=INPUT_IMAGE)])  # any rank: checked inside
    archive.add_endpoint(
        SIGNATURE_BYTES, lambda image_bytes: signatures.serve_bytes(model, image_bytes, **kwargs),
        input_signature=[tf.TensorSpec(None, tf.string, name=INPUT_BYTES)])
    # TF Serving's REST API refuses a signature without inputs ("Failed to get input map for
    # signature", json_tensor.cc), so metadata takes one input of any value, and ignores it.
    archive.add_endpoint(SIGNATURE_METADATA, lambda request: _metadata_outputs(info),
                         input_signature=[tf.TensorSpec(None, tf.float32, name=INPUT_METADATA)])
    return archive


def _metadata_outputs(info: ModelInfo) -> dict[str, tf.Tensor]:
    """The ``metadata`` signature's outputs (scalars; "" for an unknown dataset)."""
    return {"threshold": tf.constant(info.threshold, tf.float32),
            "input_height": tf.constant(info.height, tf.int32),
            "input_width": tf.constant(info.width, tf.int32),
            "input_channels": tf.constant(info.channels, tf.int32),
            "dataset": tf.constant(info.dataset or "", tf.string),
            "kerasdec_version": tf.constant(__version__, tf.string)}
