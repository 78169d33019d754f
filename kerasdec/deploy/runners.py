"""One inference interface over the three artifacts: a Keras model, a SavedModel, a TFLite file.

Every runner has ``info`` (a :class:`~kerasdec.deploy.contract.ModelInfo`: input size, channels,
threshold), ``source`` (what was loaded) and ``predict(images) -> (scores, heatmaps)``:

- ``images``: (B, H, W, C) float32 in [0, 1] at the model's input size (``info.height`` ×
  ``info.width``), preprocessed as training does (kerasdec.data.targets: read, bilinear resize, /255);
- ``scores``: (B,) float64, sigmoid of the decision logit; defective when ``score >= info.threshold``;
- ``heatmaps``: (B, H/8, W/8) float64, sigmoid of the segmentation logits.

Any other input shape is a ValueError naming the expected one (the TFLite interpreter would
otherwise silently resize its fixed input). ``kerasdec predict``, ``kerasdec evaluate`` and the
export self-checks all go through :func:`load_runner` / these classes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from kerasdec.deploy.contract import (
    DEFAULT_THRESHOLD,
    INPUT_IMAGE,
    METADATA_FILE,
    SIGNATURE_IMAGE,
    ModelInfo,
)
from kerasdec.files import read_json
from kerasdec.rundir import MODEL_FINAL, model_path

logger = logging.getLogger(__name__)


class Runner(Protocol):
    """What every runner offers (see the module docstring)."""

    info: ModelInfo
    source: str

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def sigmoid(x: Any) -> np.ndarray:
    """Numerically stable logistic function, float64."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def check_images(images: Any, info: ModelInfo, source: str) -> np.ndarray:
    """``images`` as (B, H, W, C) float32 at the model's input size, or a ValueError naming that size."""
    x = np.asarray(images, dtype=np.float32)
    expected = (info.height, info.width, info.channels)
    if x.ndim != 4 or x.shape[1:] != expected or len(x) == 0:
        raise ValueError(f"{source} takes images of shape (B >= 1, {', '.join(map(str, expected))}) float32 "
                         f"in [0, 1], the input size it was trained at; received {x.shape}: resize first "
                         "(kerasdec predict does)")
    return x


class KerasRunner:
    """A SegDecNet in memory (``predict_on_batch``)."""

    def __init__(self, model: Any, info: ModelInfo, source: str = "Keras model") -> None:
        self.model, self.info, self.source = model, info, source

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self.model.predict_on_batch(check_images(images, self.info, self.source))
        return sigmoid(np.asarray(out["decision"])[:, 0]), sigmoid(np.asarray(out["seg"])[..., 0])


class SavedModelRunner:
    """An exported SavedModel version folder, called through its ``serving_default`` signature."""

    def __init__(self, folder: Path | str, info: ModelInfo) -> None:
        import tensorflow as tf

        self._tf = tf
        self.folder, self.info = Path(folder), info
        self.source = f"SavedModel {self.folder}"
        self._serve = tf.saved_model.load(str(self.folder)).signatures[SIGNATURE_IMAGE]

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = self._tf.constant(check_images(images, self.info, self.source))
        out = self._serve(**{INPUT_IMAGE: x})  # at the trained size the in-graph resize is the identity
        return out["score"].numpy().astype(np.float64), sigmoid(out["seg"].numpy())


class TFLiteRunner:
    """A kerasdec .tflite file run by ai-edge-litert, one image at a time (its input is 1 × H × W × C)."""

    def __init__(self, path: Path | str, info: ModelInfo) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.path, self.info = Path(path), info
        self.source = f"TFLite {self.path}"
        self._runner = Interpreter(model_path=str(self.path)).get_signature_runner(SIGNATURE_IMAGE)
        fixed = tuple(int(d) for d in self._runner.get_input_details()[INPUT_IMAGE]["shape"])
        if fixed != (1, info.height, info.width, info.channels):
            raise ValueError(f"{self.path} has input shape {fixed} but its metadata says "
                             f"(1, {info.height}, {info.width}, {info.channels}); expected a matching pair "
                             "written by kerasdec export")

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = check_images(images, self.info, self.source)
        outs = [self._runner(**{INPUT_IMAGE: x[i:i + 1]}) for i in range(len(x))]
        scores = np.concatenate([o["score"] for o in outs]).astype(np.float64)
        return scores, sigmoid(np.concatenate([o["seg"] for o in outs]))


def keras_info(model: Any, model_file: Path | None, threshold: float | None = None,
               size_hw: tuple[int, int] | None = None, allow_other_size: bool = False) -> ModelInfo:
    """The ModelInfo of a SegDecNet from what it carries (input size, channels, threshold).

    Args:
        model: the loaded SegDecNet.
        model_file: the file it came from (for messages and a run's stored threshold), or None.
        threshold: overrides the model's threshold.
        size_hw: (height, width) to run at: required when the model records no size; a size other
            than the recorded one is refused unless ``allow_other_size`` (the scores change).
        allow_other_size: run at ``size_hw`` although the model was trained at another size.

    Raises:
        ValueError: no size known, or another size without ``allow_other_size``.
    """
    where = model_file or "the model"
    trained = (getattr(model, "input_height", None), getattr(model, "input_width", None))
    if None in trained and size_hw is None:
        raise ValueError(f"{where} does not record its input size; pass --width and --height (the size it "
                         "was trained at)")
    if size_hw is not None and None not in trained and tuple(size_hw) != trained and not allow_other_size:
        raise ValueError(f"{where} was trained at {trained[1]}x{trained[0]} (WxH) but "
                         f"{size_hw[1]}x{size_hw[0]} was requested; running at another size changes "
                         "the scores: drop --width/--height, or add --allow-other-size")
    height, width = size_hw if size_hw is not None else trained
    value, origin = resolve_threshold(model, model_file, threshold)
    return ModelInfo(int(height), int(width), int(model.input_channels), value, origin)


def resolve_threshold(model: Any, model_file: Path | None, threshold: float | None) -> tuple[float, str]:
    """(threshold, where from): the argument, else the model's own, else its run's evaluation, else 0.5."""
    from kerasdec.rundir import stored_threshold

    if threshold is not None:
        return float(threshold), "argument"
    if getattr(model, "threshold", None) is not None:
        return float(model.threshold), "model"
    stored, where = stored_threshold(model_file) if model_file is not None else (None, None)
    if stored is not None:
        return stored, str(where.resolve())
    logger.warning("%s carries no threshold and has no evaluation: using %s", model_file or "the model",
                   DEFAULT_THRESHOLD)
    return DEFAULT_THRESHOLD, "default"


def load_runner(path: Path | str, *, which: str | None = None, threshold: float | None = None,
                size_hw: tuple[int, int] | None = None, allow_other_size: bool = False) -> Runner:
    """Load a run directory, a .keras file, a SavedModel (version or base folder) or a .tflite file.

    Args:
        path: what to load; a SavedModel base folder of integer versions uses the highest version.
        which: "final" or "best", for a run directory; None = the model its test evaluation used.
        threshold: overrides the stored threshold.
        size_hw: (height, width); see :func:`keras_info`. For a SavedModel or TFLite file it must equal
            the exported size (they are fixed to it).
        allow_other_size: Keras models only: run at ``size_hw`` though trained at another size.

    Raises:
        FileNotFoundError: ``path`` is none of these.
        ValueError: a wrong size, a bad threshold, metadata that does not match.
        kerasdec.deploy.modelfile.ModelFileError: a truncated, corrupt or non-kerasdec .keras file.
    """
    path = Path(path)
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold={threshold}; expected a score threshold in [0, 1]")
    if path.is_dir() and (path / MODEL_FINAL).exists():
        path = model_path(path, which)
    if path.suffix == ".keras":
        from kerasdec.deploy.modelfile import load_model

        model = load_model(path)
        info = keras_info(model, path, threshold, size_hw, allow_other_size)
        return KerasRunner(model, info, f"Keras model {path}")
    if path.is_file() and path.suffix == ".tflite":
        meta = path.with_name(path.stem + ".metadata.json")
        return TFLiteRunner(path, _artifact_info(meta, threshold, size_hw))
    version = saved_model_version(path) if path.is_dir() else None
    if version is not None:
        return SavedModelRunner(version, _artifact_info(version / METADATA_FILE, threshold, size_hw))
    raise FileNotFoundError(f"{path} is not a model: expected a run directory (model_final.keras), a .keras "
                            "file, a SavedModel folder (saved_model.pb + metadata.json) or a .tflite file")


def saved_model_version(folder: Path) -> Path | None:
    """``folder`` if it holds saved_model.pb, else its highest integer version that does, else None."""
    if (folder / "saved_model.pb").is_file():
        return folder
    versions = sorted((int(p.name), p) for p in folder.iterdir()
                      if p.name.isdigit() and (p / "saved_model.pb").is_file())
    if versions:
        logger.info("using the highest SavedModel version %s of %s", versions[-1][0], folder)
        return versions[-1][1]
    return None


def _artifact_info(meta_path: Path, threshold: float | None, size_hw: tuple[int, int] | None) -> ModelInfo:
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} not found; expected the metadata kerasdec export writes beside "
                                "the model")
    info = ModelInfo.from_metadata(read_json(meta_path), str(meta_path))
    if size_hw is not None and tuple(size_hw) != (info.height, info.width):
        raise ValueError(f"{meta_path.parent} is exported for {info.width}x{info.height} (WxH); "
                         f"{size_hw[1]}x{size_hw[0]} was requested: drop --width/--height (only a .keras "
                         "model can run at another size)")
    if threshold is not None:
        info = ModelInfo(info.height, info.width, info.channels, float(threshold), "argument", info.dataset)
    return info
