"""Load a trained model for prediction from a run directory, a .keras file or an exported SavedModel.

Whatever the source, the result is a :class:`Predictor`: the input size and channels the model
expects, its decision threshold, and a function from a batch of resized images to scores and
heatmaps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kerasdec.config import check_input_size
from kerasdec.rundir import MODEL_FINAL, read_run_config, stored_threshold

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5  # used when neither --threshold nor a stored threshold is available


@dataclass(frozen=True)
class Predictor:
    """A loaded model, ready to score images already resized to (height, width).

    Attributes:
        run: (B, height, width, channels) float32 in [0, 1] → (scores (B,), heatmaps (B, h/8, w/8)),
            both probabilities.
        width, height, channels: the input the model expects.
        threshold: score at or above which an image is called defective.
        source: a description of what was loaded (for logs).
    """

    run: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    width: int
    height: int
    channels: int
    threshold: float
    source: str


def _keras_runner(model) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    from kerasdec.evaluation.evaluate import sigmoid

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = model.predict_on_batch(x)  # {"decision": (B, 1), "seg": (B, h, w, 1)} logits
        return sigmoid(np.asarray(out["decision"])[:, 0]), sigmoid(np.asarray(out["seg"])[..., 0])

    return run


def _saved_model_runner(version_dir: Path) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    import tensorflow as tf

    serve = tf.saved_model.load(str(version_dir)).signatures["serving_default"]

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = serve(image=tf.constant(x, tf.float32))  # score (B, 1), heatmap (B, h, w, 1) sigmoid
        scores, heatmaps = out["score"].numpy()[:, 0], out["heatmap"].numpy()[..., 0]
        return scores.astype(np.float64), heatmaps.astype(np.float64)

    return run


def _version_dir(folder: Path) -> Path | None:
    """The folder itself if it holds saved_model.pb, else its highest integer version that does."""
    if (folder / "saved_model.pb").is_file():
        return folder
    versions = sorted((int(p.name), p) for p in folder.iterdir()
                      if p.is_dir() and p.name.isdigit() and (p / "saved_model.pb").is_file())
    if versions:
        logger.info("using the highest SavedModel version %s of %s", versions[-1][0], folder)
        return versions[-1][1]
    return None


def _from_saved_model(version_dir: Path, threshold: float | None, width: int | None, height: int | None
                      ) -> Predictor:
    from kerasdec.export.saved_model import read_metadata

    meta = read_metadata(version_dir)
    missing = [k for k in ("width", "height", "channels") if k not in meta]
    if missing:
        raise ValueError(f"{version_dir / 'metadata.json'} lacks {missing}; expected the metadata "
                         "written by kerasdec export")
    width, height = width or int(meta["width"]), height or int(meta["height"])
    check_input_size(width, height, f" (input size of {version_dir})")
    chosen = threshold if threshold is not None else float(meta.get("threshold", DEFAULT_THRESHOLD))
    return Predictor(_saved_model_runner(version_dir), width, height, int(meta["channels"]), chosen,
                     f"SavedModel {version_dir}")


def _from_keras(model_file: Path, threshold: float, width: int | None, height: int | None) -> Predictor:
    import keras

    import kerasdec.models.segdec  # noqa: F401  (registers the classes for load_model)

    cfg = read_run_config(model_file.parent)
    if cfg is not None:
        width, height = width or cfg.data.width, height or cfg.data.height
    if width is None or height is None:
        raise ValueError(f"no config.json beside {model_file} to give the input size; pass --width and "
                         "--height (the size the model was trained at)")
    check_input_size(width, height, " (input size)")
    model = keras.saving.load_model(model_file)
    channels = getattr(model, "input_channels", None) or (cfg.data.channels if cfg else None)
    if channels is None:
        raise ValueError(f"cannot tell the input channels of {model_file}: it has no input_channels "
                         "attribute and no config.json beside it")
    return Predictor(_keras_runner(model), width, height, int(channels), threshold,
                     f"Keras model {model_file}")


def load_predictor(model_path: Path | str, *, threshold: float | None = None, width: int | None = None,
                   height: int | None = None) -> Predictor:
    """Load a model for prediction.

    Args:
        model_path: a run directory (model_final.keras + config.json; threshold from its
            metrics.json if present), a .keras file (input size from a config.json beside it, else
            ``width``/``height``), or an exported SavedModel version folder (saved_model.pb +
            metadata.json; a base folder of integer versions uses the highest).
        threshold: overrides the stored threshold (default: stored, else 0.5).
        width: input width; required for a .keras file without config.json, else overrides the
            stored size (the network accepts any multiple of 8; the stored size is what it was trained at).
        height: likewise for the height.

    Returns:
        The :class:`Predictor`.

    Raises:
        FileNotFoundError: ``model_path`` does not exist or is none of the three kinds.
        ValueError: the input size cannot be determined or is not a multiple of 8; bad threshold.
    """
    path = Path(model_path)
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold={threshold}; expected a score threshold in [0, 1]")
    if not path.exists():
        raise FileNotFoundError(f"model {path} not found; expected a run directory, a .keras file or a "
                                "SavedModel folder")
    if path.is_dir() and (path / MODEL_FINAL).is_file():
        path = path / MODEL_FINAL
    if path.is_file() and path.suffix == ".keras":
        if threshold is None:  # the threshold of this model's evaluation, when its run has one
            threshold = stored_threshold(path)[0]
        return _from_keras(path, DEFAULT_THRESHOLD if threshold is None else threshold, width, height)
    version = _version_dir(path) if path.is_dir() else None
    if version is not None:
        return _from_saved_model(version, threshold, width, height)
    raise FileNotFoundError(
        f"{path} is not a model: expected a run directory (config.json + model_final.keras), a .keras "
        "file, or an exported SavedModel folder (saved_model.pb + metadata.json)")
