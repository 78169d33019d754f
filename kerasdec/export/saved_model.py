"""Export a SegDecNet as a TensorFlow Serving SavedModel: base_dir/<integer version>/ + metadata.json.

The "serving_default" signature takes ``image``: float32 (B, H, W, C) in [0, 1], already resized to
the model's input size (metadata.json ``width`` × ``height``; the graph accepts any H and W that are
multiples of 8 and at least 64, and fails with an InvalidArgumentError naming the rule otherwise),
and returns

- ``score``   (B, 1)           sigmoid of the decision logit: probability that the image is defective;
- ``decision`` (B, 1)          the decision logit;
- ``seg``     (B, H/8, W/8, 1) segmentation logits;
- ``heatmap`` (B, H/8, W/8, 1) sigmoid of ``seg``.

Check an export without a server: ``saved_model_cli show --dir saved_models/segdec/1 --all``, or
``tf.saved_model.load(d).signatures["serving_default"](image=x)``.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

import kerasdec
from kerasdec.config import DataConfig
from kerasdec.models.segdec import DOWNSCALE, MIN_SIZE  # H, W multiples of 8 and >= 64

logger = logging.getLogger(__name__)

SIGNATURE = "serving_default"
ENDPOINT = "serve"  # the first endpoint of an ExportArchive is also exported as "serving_default"
METADATA_FILE = "metadata.json"
FOLDER_MODE = 0o755  # permissions of a version folder (readable by a TF Serving user)
OUTPUTS = {
    "score": "(B, 1) float32: sigmoid(decision), probability that the image is defective",
    "decision": "(B, 1) float32: decision logit",
    "seg": "(B, H/8, W/8, 1) float32: segmentation logits",
    "heatmap": "(B, H/8, W/8, 1) float32: sigmoid(seg), per-cell defect probability",
}
OVERRIDABLE = {"source", "dataset"}  # metadata keys a caller may set (e.g. dataset None when unknown)
INPUT_DESCRIPTION = ("(B, H, W, C) float32 in [0, 1], already resized to height x width; "
                     f"H and W must be multiples of {DOWNSCALE}, at least {MIN_SIZE}")


def export_saved_model(model: keras.Model, base_dir: Path | str, *, data_cfg: DataConfig,
                       threshold: float = 0.5, version: int | None = None,
                       metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as SavedModel version ``base_dir/<version>/`` with a metadata.json beside.

    The version is written to a hidden temporary sibling folder and renamed at the end, so a failed
    export leaves no half-written version that TF Serving could pick up.

    Args:
        model: a built SegDecNet (or any model returning {"decision", "seg"} logits).
        base_dir: the model's base path (TF Serving ``--model_base_path``); created if missing.
        data_cfg: the data settings the model was trained with (input width, height, channels).
        threshold: decision threshold on ``score`` recorded in metadata.json, in [0, 1].
        version: integer version folder (>= 1); None = 1 + the highest existing integer folder.
        metadata: extra JSON-serialisable keys for metadata.json, e.g. {"source": "runs/x"}; they
            may not replace the keys this function writes, except "source" (default None) and
            "dataset" (default data_cfg.dataset).

    Returns:
        The version folder written.

    Raises:
        FileExistsError: the version folder already exists (it is never overwritten).
        ValueError: bad threshold, version or metadata keys, or the model's input_channels differ
            from data_cfg.channels.

    Example:
        >>> export_saved_model(model, "saved_models/segdec", data_cfg=cfg.data, threshold=0.31)
        PosixPath('saved_models/segdec/1')
    """
    _check_arguments(model, data_cfg, threshold, version)
    base = Path(base_dir)
    base.mkdir(parents=True, exist_ok=True)
    version = next_version(base) if version is None else version
    final = base / str(version)
    if final.exists():
        raise FileExistsError(f"version folder {final} already exists; exporting never overwrites: "
                              f"pass another --version or leave it out to use {next_version(base)}")
    info = _metadata(data_cfg, threshold, version, metadata or {})
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=base))  # not an integer: Serving skips it
    try:
        archive = _archive(model, data_cfg.channels)
        archive.write_out(str(tmp), verbose=False)
        (tmp / METADATA_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        tmp.chmod(FOLDER_MODE)  # mkdtemp makes it owner-only; a server may run as another user
        _rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("exported SavedModel version %d to %s", version, final)
    return final


def next_version(base_dir: Path | str) -> int:
    """1 + the highest integer-named folder in ``base_dir`` (1 when there is none)."""
    base = Path(base_dir)
    if not base.is_dir():
        return 1
    versions = [int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def read_metadata(version_dir: Path | str) -> dict[str, Any]:
    """The metadata.json of an exported version folder.

    Raises:
        FileNotFoundError: ``version_dir`` has no metadata.json (not written by export_saved_model).
    """
    path = Path(version_dir) / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; expected a version folder written by "
                                f"kerasdec export (saved_model.pb + {METADATA_FILE})")
    return json.loads(path.read_text(encoding="utf-8"))


def serving_outputs(model: keras.Model, image: tf.Tensor) -> dict[str, tf.Tensor]:
    """The serving signature's computation: checks H, W % 8 and maps the model's logits to outputs."""
    hw = tf.shape(image)[1:3]
    resize = "resize images to the model's input size (metadata.json width x height) first"
    checks = [
        tf.debugging.assert_equal(hw % DOWNSCALE, tf.zeros_like(hw), message=(
            f"image height and width must be multiples of {DOWNSCALE}; {resize}")),
        tf.debugging.assert_greater_equal(hw, MIN_SIZE, message=(
            f"image height and width must be at least {MIN_SIZE}; {resize}")),
    ]
    with tf.control_dependencies(checks):
        image = tf.identity(image)
    out = model(image, training=False)
    decision, seg = out["decision"], out["seg"]  # (B, 1), (B, H/8, W/8, 1)
    return {"score": tf.sigmoid(decision), "decision": decision, "seg": seg, "heatmap": tf.sigmoid(seg)}


def _archive(model: keras.Model, channels: int) -> keras.export.ExportArchive:
    # No archive.track(model): add_endpoint already tracks every variable the endpoint uses, and
    # track() stores each weight a second time (Keras issue #23553: 2x files, 2x memory in Serving).
    # track() is only needed for non-variable resources such as lookup tables, which SegDecNet has none of.
    archive = keras.export.ExportArchive()
    spec = tf.TensorSpec([None, None, None, channels], tf.float32, name="image")
    archive.add_endpoint(ENDPOINT, lambda image: serving_outputs(model, image), input_signature=[spec])
    return archive


def _rename(tmp: Path, final: Path) -> None:
    try:
        os.rename(tmp, final)  # atomic on one file system; fails if final appeared meanwhile
    except OSError as err:
        raise FileExistsError(f"version folder {final} appeared during the export; not overwritten") from err


def _check_arguments(model: keras.Model, data_cfg: DataConfig, threshold: float, version: int | None) -> None:
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold={threshold}; expected a score threshold in [0, 1]")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise ValueError(f"version={version!r}; expected an integer >= 1 or None (next free version)")
    channels = getattr(model, "input_channels", data_cfg.channels)
    if channels != data_cfg.channels:
        raise ValueError(f"model input_channels={channels} but data_cfg.channels={data_cfg.channels}; "
                         f"expected the data settings the model was trained with")


def _metadata(data_cfg: DataConfig, threshold: float, version: int, extra: dict[str, Any]) -> dict[str, Any]:
    info: dict[str, Any] = {
        "format": "tf_saved_model",
        "version": version,
        "width": data_cfg.width,
        "height": data_cfg.height,
        "channels": data_cfg.channels,
        "threshold": float(threshold),
        "dataset": data_cfg.dataset,
        "kerasdec_version": kerasdec.__version__,
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "source": None,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "signature": SIGNATURE,
        "input": {"name": "image", "description": INPUT_DESCRIPTION},
        "outputs": dict(OUTPUTS),
    }
    clash = sorted(set(extra) & (set(info) - OVERRIDABLE))
    if clash:
        raise ValueError(f"metadata keys {clash} would replace keys written by the exporter; "
                         f"expected other names (or {sorted(OVERRIDABLE)})")
    info.update(extra)
    json.dumps(info)  # fail before writing anything if an extra value is not JSON-serialisable
    return info
