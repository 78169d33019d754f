"""The inference contract in one place (no TensorFlow): what a model knows about itself, the names of
its signatures, inputs and outputs, and the input rules every runtime enforces.

Every artifact (a .keras file, a SavedModel, a TFLite file) answers through its runner
(kerasdec/inference/runners.py) with the same :class:`ModelInfo`; the SavedModel also serves it
through its ``metadata`` signature. :func:`check_images` is the rule every runner applies before it
runs: converted graphs (TFLite, and any later runtime) drop the SavedModel's in-graph checks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from kerasdec.config import DEFAULT_MAX_PIXELS, check_input_size

SIGNATURE_IMAGE = "serving_default"  # float images of any size, resized in the graph
SIGNATURE_BYTES = "serving_bytes"  # encoded PNG / JPEG / BMP bytes, decoded in the graph
SIGNATURE_METADATA = "metadata"  # threshold, input size, dataset, kerasdec version
INPUT_IMAGE = "image"
INPUT_BYTES = "image_bytes"  # TF Serving's REST API base64-decodes {"b64": ...} for string inputs
INPUT_METADATA = "request"  # metadata's input: any float value, ignored (REST needs one input)
METADATA_RULE = (f"`{INPUT_METADATA}`: any float32 value, ignored (TF Serving's REST API cannot call a "
                 "signature without inputs); returns scalars")
METADATA_FILE = "metadata.json"  # beside saved_model.pb, and <stem>.metadata.json beside a .tflite
DEFAULT_THRESHOLD = 0.5  # only for a model that was never evaluated (a warning says so)
TFLITE_MODES = ("float32", "float16", "dynamic", "int8")  # kerasdec/deploy/tflite.py describes each

OUTPUTS = {  # the serving signatures' outputs (TFLite: score, decision, seg; see tflite.py)
    "score": "(B,) float32: sigmoid(decision), probability that the image is defective",
    "is_defective": "(B,) bool: score >= threshold (the stored threshold, float32)",
    "heatmap": ("(B, h, w) float32 in [0, 1]: sigmoid(seg) resized (bilinear) to the request's own "
                "h x w (serving_default); to the model's input size for serving_bytes, whose images "
                "may differ in size (image_size gives each one's)"),
    "decision": "(B,) float32: decision logit",
    "seg": "(B, H/8, W/8) float32: segmentation logits at 1/8 of the model's input size",
    "image_size": "(B, 2) int32: height and width of each image as received",
}


def image_rule(channels: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> str:
    """The request rule of ``serving_default``, as error messages state it."""
    shapes = f"(B, H, W, {channels})" + (" or (B, H, W)" if channels == 1 else "")
    return (f"expected `{INPUT_IMAGE}` float32 of shape {shapes} with B >= 1, any H, W >= 1, H x W at "
            f"most {max_pixels} pixels, values in [0, 1] (pixels / 255), no NaN or infinity")


def bytes_rule(max_pixels: int = DEFAULT_MAX_PIXELS) -> str:
    """The request rule of ``serving_bytes``, as error messages state it."""
    return (f"expected `{INPUT_BYTES}` string of shape (B,), B >= 1, each an encoded PNG, JPEG or BMP "
            f"file whose header declares at most {max_pixels} pixels (in REST JSON, each as an object with "
            "the key b64 and the file's base64 as value)")


@dataclass(frozen=True)
class ModelInfo:
    """What a deployed model needs to be called correctly: its input and its decision threshold.

    Attributes:
        height: input height H the model was trained at (multiple of 8, >= 64).
        width: input width W.
        channels: 1 = grayscale, 3 = RGB.
        threshold: an image is defective when score >= threshold.
        threshold_from: where the threshold came from ("model", a metrics.json path, "argument",
            "default").
        dataset: the dataset the model was trained on, None when unknown.
        max_pixels: the served signatures refuse an image of more pixels (serving_bytes: declared by the
            file's header, checked before decoding).
    """

    height: int
    width: int
    channels: int
    threshold: float
    threshold_from: str = "model"
    dataset: str | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        check_input_size(self.width, self.height, " (model input size)")
        if self.channels not in (1, 3):
            raise ValueError(f"channels={self.channels}; expected 1 or 3")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold={self.threshold}; expected a score threshold in [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_metadata(cls, meta: dict[str, Any], where: str) -> ModelInfo:
        """From a metadata.json written by kerasdec export.

        Raises:
            ValueError: a key is missing or invalid (message names ``where``).
        """
        try:
            return cls(height=int(meta["height"]), width=int(meta["width"]),
                       channels=int(meta["channels"]), threshold=float(meta["threshold"]),
                       threshold_from=str(meta.get("threshold_from", "metadata")),
                       dataset=meta.get("dataset"),
                       max_pixels=int(meta.get("max_pixels", DEFAULT_MAX_PIXELS)))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{where}: {err!r}; expected the metadata written by kerasdec export "
                             "(height, width, channels, threshold)") from err


def check_images(images: Any, info: ModelInfo, source: str) -> np.ndarray:
    """``images`` as (B, H, W, C) float32 at the model's input size, or a ValueError naming the rule.

    The rules: shape (B >= 1, H, W, C) with the model's H, W and C; a floating-point dtype (uint8
    pixels must be divided by 255 first); every value finite and in [0, 1].

    Raises:
        ValueError: the first rule ``images`` breaks, naming ``source`` and what was expected.
    """
    x = np.asarray(images)
    expected = (info.height, info.width, info.channels)
    if x.ndim != 4 or x.shape[1:] != expected or len(x) == 0:
        raise ValueError(f"{source} takes images of shape (B >= 1, {', '.join(map(str, expected))}) float32 "
                         f"in [0, 1], the input size it was trained at; received {x.shape}: resize first "
                         "(kerasdec predict does)")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{source} takes float32 images in [0, 1]; received {x.dtype}: convert pixels "
                         "with image.astype('float32') / 255")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise ValueError(f"{source} received images holding NaN or infinity; expected finite values in "
                         "[0, 1]")
    low, high = float(x.min()), float(x.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(f"{source} received values in [{low:.4g}, {high:.4g}]; expected images in [0, 1] "
                         "(pixels / 255)")
    return x
