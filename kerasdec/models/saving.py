"""The ``.keras`` file of a SegDecNet: saved atomically, loaded with one clear error for every way the
file can be wrong. The input size (``input_height``, ``input_width``), the channels and the decision
``threshold`` are constructor arguments of SegDecNet, so they travel inside the file.

A ``.keras`` file is a zip of config.json (the model's class and constructor arguments) and the
weights. Keras' own ``load_model`` reports a truncated file as "File not found", another package's
model as a TypeError or KeyError deep inside deserialisation, and cannot find ``SegDecNet`` unless
``kerasdec.models.segdec`` was imported. :func:`load_model` checks the zip and its config first (no
TensorFlow needed for that), then registers the kerasdec classes and loads.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from kerasdec.files import atomic_path

MODEL_CLASS = "kerasdec>SegDecNet"  # registered_name in config.json of every kerasdec model file
# Sizes a .keras file declares for its members, refused above these before anything is read: the file may
# come from elsewhere, and a zip member can declare (and decompress to) far more than the file holds.
MAX_CONFIG_BYTES = 16 * 2**20  # config.json of a SegDecNet is about 10 KB
MAX_MEMBER_BYTES = 8 * 2**30  # the published network's weights are about 63 MB


class ModelFileError(ValueError):
    """A .keras file that is missing, truncated, corrupt or not a kerasdec model (message names it)."""


def read_model_config(path: Path | str) -> dict[str, Any]:
    """The ``config.json`` of a kerasdec ``.keras`` file, checked without loading any weights.

    Returns:
        The SegDecNet constructor arguments (input_channels, input_height, input_width, threshold, ...).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ModelFileError: not a zip (truncated or corrupt), no config.json, or not a kerasdec SegDecNet.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} not found; expected a .keras file written by kerasdec")
    try:
        with zipfile.ZipFile(path) as archive:
            _check_sizes(archive, path)
            if archive.testzip() is not None:
                raise zipfile.BadZipFile("a member fails its CRC check")
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, OSError, KeyError, UnicodeDecodeError, json.JSONDecodeError,
            RecursionError) as err:
        raise ModelFileError(f"{path} is not a readable .keras file ({_reason(err)}); it may be truncated "
                             "or corrupt: save or copy it again") from err
    found = (config.get("registered_name") or config.get("class_name")) if isinstance(config, dict) else None
    if found != MODEL_CLASS:
        raise ModelFileError(f"{path} holds a {found or 'non-Keras'} model, not a kerasdec SegDecNet; "
                             "expected a model_*.keras written by kerasdec fit")
    return dict(config.get("config") or {})


def _check_sizes(archive: zipfile.ZipFile, path: Path) -> None:
    for info in archive.infolist():
        limit = MAX_CONFIG_BYTES if info.filename == "config.json" else MAX_MEMBER_BYTES
        if info.file_size > limit:
            raise ModelFileError(f"{path}: its member {info.filename[:80]} declares {info.file_size:,} "
                                 f"bytes, more than the {limit:,} a kerasdec model file holds; expected a "
                                 ".keras file written by kerasdec")


def load_model(path: Path | str) -> Any:
    """Load a kerasdec ``.keras`` file as a SegDecNet (imports TensorFlow).

    ``kerasdec.load_model`` is this function; ``keras.saving.load_model`` also works once
    ``kerasdec.models.segdec`` has been imported (that import registers the classes).

    Args:
        path: a model_final.keras / model_best.keras of a run, or a copy of one.

    Returns:
        The SegDecNet, with ``input_height``, ``input_width`` and ``threshold`` as saved.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ModelFileError: the file is truncated, corrupt or not a kerasdec model (message names it).

    Example:
        >>> model = kerasdec.load_model("runs/synthetic-1/model_final.keras")
        >>> model.input_height, model.input_width, model.threshold
    """
    read_model_config(path)
    import keras

    import kerasdec.models.segdec  # noqa: F401  (registers the classes for load_model)

    try:
        return keras.saving.load_model(Path(path), compile=False)
    except Exception as err:  # h5py, zip and deserialisation errors all mean: this file is damaged
        raise ModelFileError(f"{path} could not be loaded as a kerasdec model ({_reason(err)}); it may be "
                             "truncated or from an incompatible kerasdec version") from err


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__


def save_model(model: Any, path: Path | str) -> Path:
    """Save ``model`` as a ``.keras`` file, atomically (a kill mid-save keeps the previous file).

    Raises:
        OSError: the write failed (disk full, read-only folder): the message names ``path`` and, for
            a full disk, the space needed.
    """
    with atomic_path(path, size_hint=model_bytes(model)) as tmp:
        model.save(tmp)
    return Path(path)


def model_bytes(model: Any) -> int:
    """The size of the model's variables in bytes (what a checkpoint or a .keras file needs, about)."""
    import numpy as np

    return int(sum(np.prod(v.shape) * np.dtype(v.dtype).itemsize for v in model.variables))
