"""One interface over every artifact: ``load(path)`` gives a runner for a run directory, a .keras file,
a SavedModel or a .tflite file.

Every runner has ``info`` (a :class:`~kerasdec.inference.contract.ModelInfo`: input size, channels,
threshold), ``source`` (what was loaded) and ``predict(images) -> (scores, heatmaps)``:

- ``images``: (B, H, W, C) float32 in [0, 1] at the model's input size (``info.height`` ×
  ``info.width``), preprocessed as training does (kerasdec.data.targets: read, bilinear resize, /255);
  anything else is a ValueError naming the rule (``contract.check_images``: the TFLite interpreter
  would otherwise silently resize its fixed input, and converted graphs drop the in-graph checks);
- ``scores``: (B,) float64, sigmoid of the decision logit; defective when ``score >= info.threshold``;
- ``heatmaps``: (B, H/8, W/8) float64, sigmoid of the segmentation logits.

Adding a runtime is one class: subclass :class:`ArtifactRunner` (``find``, ``metadata_path``,
``_predict``) and add it to ``RUNNERS``. ``kerasdec predict``, ``kerasdec evaluate``, the end of
``kerasdec fit`` and the export self-checks all go through :func:`load` / these classes.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from kerasdec.files import read_json
from kerasdec.inference.contract import (
    INPUT_IMAGE,
    METADATA_FILE,
    SIGNATURE_IMAGE,
    ModelInfo,
    check_images,
)
from kerasdec.inference.threshold import resolve_threshold
from kerasdec.rundir import MODEL_FINAL, model_path

logger = logging.getLogger(__name__)


def sigmoid(x: Any) -> np.ndarray:
    """Numerically stable logistic function, float64."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


class Runner(abc.ABC):
    """What every runner offers (see the module docstring); ``predict`` checks the input first."""

    info: ModelInfo
    source: str

    def predict(self, images: Any) -> tuple[np.ndarray, np.ndarray]:
        """Scores (B,) and heatmaps (B, H/8, W/8), float64 probabilities, of images at the input size."""
        return self._predict(check_images(images, self.info, self.source))

    @abc.abstractmethod
    def _predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``predict`` on a batch that passed the contract."""


class KerasRunner(Runner):
    """A SegDecNet in memory (``predict_on_batch``); ``model`` is the Keras model."""

    def __init__(self, model: Any, info: ModelInfo, source: str = "Keras model") -> None:
        self.model, self.info, self.source = model, info, source

    def _predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self.model.predict_on_batch(x)
        return sigmoid(np.asarray(out["decision"])[:, 0]), sigmoid(np.asarray(out["seg"])[..., 0])


class ArtifactRunner(Runner):
    """An exported artifact whose facts (ModelInfo) are in a metadata file written by kerasdec export."""

    kind = "an exported model"  # how error messages name it

    @classmethod
    @abc.abstractmethod
    def find(cls, path: Path) -> Path | None:
        """What this runtime would load at ``path`` (a file, a folder), or None when it is not its kind."""

    @classmethod
    @abc.abstractmethod
    def metadata_path(cls, artifact: Path) -> Path:
        """The metadata file written beside ``artifact``."""

    @classmethod
    def open(cls, artifact: Path, *, threshold: float | None = None,
             size_hw: tuple[int, int] | None = None) -> ArtifactRunner:
        """The runner of ``artifact`` with the info of its metadata (``threshold`` overrides its threshold).

        Raises:
            FileNotFoundError: no metadata file. ValueError: it is invalid, or ``size_hw`` is not the
                exported size (an artifact is fixed to it).
        """
        return cls(artifact, _artifact_info(cls.metadata_path(artifact), threshold, size_hw))

    def __init__(self, artifact: Path | str, info: ModelInfo) -> None:
        self.path, self.info = Path(artifact), info
        self.source = f"{self.kind} {self.path}"


class SavedModelRunner(ArtifactRunner):
    """An exported SavedModel version folder, called through its ``serving_default`` signature."""

    kind = "SavedModel"

    @classmethod
    def find(cls, path: Path) -> Path | None:
        """``path`` if it holds saved_model.pb, else its highest integer version that does, else None."""
        if not path.is_dir():
            return None
        if (path / "saved_model.pb").is_file():
            return path
        versions = sorted((int(p.name), p) for p in path.iterdir()
                          if p.name.isdigit() and (p / "saved_model.pb").is_file())
        if versions:
            logger.info("using the highest SavedModel version %s of %s", versions[-1][0], path)
            return versions[-1][1]
        return None

    @classmethod
    def metadata_path(cls, artifact: Path) -> Path:
        return artifact / METADATA_FILE

    def __init__(self, folder: Path | str, info: ModelInfo) -> None:
        import tensorflow as tf

        super().__init__(folder, info)
        self.folder, self._tf = self.path, tf
        self._serve = tf.saved_model.load(str(self.folder)).signatures[SIGNATURE_IMAGE]

    def _predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self._serve(**{INPUT_IMAGE: self._tf.constant(x)})  # trained size: no resize in the graph
        return out["score"].numpy().astype(np.float64), sigmoid(out["seg"].numpy())


class TFLiteRunner(ArtifactRunner):
    """A kerasdec .tflite file run by ai-edge-litert, one image at a time (its input is 1 × H × W × C).

    ``threads``: the interpreter's threads (None = its default).
    """

    kind = "TFLite"

    @classmethod
    def find(cls, path: Path) -> Path | None:
        return path if path.is_file() and path.suffix == ".tflite" else None

    @classmethod
    def metadata_path(cls, artifact: Path) -> Path:
        return artifact.with_name(artifact.stem + ".metadata.json")

    def __init__(self, path: Path | str, info: ModelInfo, threads: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        super().__init__(path, info)
        interpreter = Interpreter(model_path=str(self.path), num_threads=threads)
        self._runner = interpreter.get_signature_runner(SIGNATURE_IMAGE)
        fixed = tuple(int(d) for d in self._runner.get_input_details()[INPUT_IMAGE]["shape"])
        if fixed != (1, info.height, info.width, info.channels):
            raise ValueError(f"{self.path} has input shape {fixed} but its metadata says "
                             f"(1, {info.height}, {info.width}, {info.channels}); expected a matching pair "
                             "written by kerasdec export")

    def _predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outs = [self._runner(**{INPUT_IMAGE: x[i:i + 1]}) for i in range(len(x))]
        scores = np.concatenate([o["score"] for o in outs]).astype(np.float64)
        return scores, sigmoid(np.concatenate([o["seg"] for o in outs]))


# The exported artifacts load() knows, tried in order (a .keras file and a run directory come first).
RUNNERS: tuple[type[ArtifactRunner], ...] = (TFLiteRunner, SavedModelRunner)


def load(path: Path | str, *, which: str | None = None, threshold: float | None = None,
         size_hw: tuple[int, int] | None = None, allow_other_size: bool = False,
         need_threshold: bool = True) -> Runner:
    """Load a run directory, a .keras file or an exported artifact (SavedModel version or base folder,
    .tflite file) as a runner.

    Args:
        path: what to load; a SavedModel base folder of integer versions uses the highest version.
        which: "final" or "best", for a run directory; None = the model its test evaluation used.
        threshold: overrides the stored threshold.
        size_hw: (height, width); see :func:`keras_info`. For an exported artifact it must equal the
            exported size (it is fixed to it).
        allow_other_size: .keras files only: run at ``size_hw`` though trained at another size.
        need_threshold: False when the caller decides with its own threshold (an evaluation): a .keras
            model without one then gets DEFAULT_THRESHOLD without a warning.

    Raises:
        FileNotFoundError: ``path`` is none of these.
        ValueError: a wrong size, a bad threshold, metadata that does not match.
        kerasdec.models.saving.ModelFileError: a truncated, corrupt or non-kerasdec .keras file.

    Example:
        >>> runner = load("saved_models/segdec/1/segdec_int8.tflite")
        >>> scores, heatmaps = runner.predict(images)  # runner.info.threshold decides
    """
    path = Path(path)
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold={threshold}; expected a score threshold in [0, 1]")
    if path.is_dir() and (path / MODEL_FINAL).exists():
        path = model_path(path, which)
    if path.suffix == ".keras":
        from kerasdec.models.saving import load_model

        model = load_model(path)
        info = keras_info(model, path, threshold, size_hw, allow_other_size, need_threshold)
        return KerasRunner(model, info, f"Keras model {path}")
    for runner in RUNNERS:
        artifact = runner.find(path)
        if artifact is not None:
            return runner.open(artifact, threshold=threshold, size_hw=size_hw)
    raise FileNotFoundError(f"{path} is not a model: expected a run directory (model_final.keras), a .keras "
                            "file, a SavedModel folder (saved_model.pb + metadata.json) or a .tflite file")


def as_runner(model: Any, size_hw: tuple[int, int] | None = None) -> Runner:
    """A runner as is; a SegDecNet in memory as a KerasRunner (its own threshold, else the default)."""
    if hasattr(model, "info") and hasattr(model, "predict"):
        return model
    return KerasRunner(model, keras_info(model, None, None, size_hw, need_threshold=False))


def predict_batches(runner: Runner, batches: Iterable[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Scores (N,) and heatmaps (N, H/8, W/8) of ``runner`` over batches, in order.

    Args:
        runner: any runner.
        batches: arrays (b, H, W, C), or the (x, y, sample_weight) elements of an evaluation dataset.
    """
    outputs = [runner.predict(np.asarray(b[0] if isinstance(b, tuple) else b)) for b in batches]
    return np.concatenate([s for s, _ in outputs]), np.concatenate([h for _, h in outputs])


def keras_info(model: Any, model_file: Path | None, threshold: float | None = None,
               size_hw: tuple[int, int] | None = None, allow_other_size: bool = False,
               need_threshold: bool = True) -> ModelInfo:
    """The ModelInfo of a SegDecNet from what it carries (input size, channels, threshold).

    Args:
        model: the SegDecNet.
        model_file: the file it came from (for messages and a run's stored threshold), or None.
        threshold: overrides the model's threshold.
        size_hw: (height, width) to run at: required when the model records no size; a size other
            than the recorded one is refused unless ``allow_other_size`` (the scores change).
        allow_other_size: run at ``size_hw`` although the model was trained at another size.
        need_threshold: see :func:`load`.

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
    value, origin = resolve_threshold(model, model_file, threshold, need_threshold)
    return ModelInfo(int(height), int(width), int(model.input_channels), value, origin)


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
