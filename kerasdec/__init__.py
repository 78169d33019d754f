"""kerasdec: end-to-end surface-defect detection (SegDecNet, Božič et al. 2020/2021) in Keras 3.

``import kerasdec`` stays light (no TensorFlow): ``kerasdec --help`` starts in a fraction of a second.
TensorFlow is imported by the functions that need it, e.g. :func:`load_model`.
"""

from __future__ import annotations

from typing import Any

from kerasdec.config import DataConfig, RunConfig, TrainConfig
from kerasdec.version import __version__

__all__ = ["DataConfig", "RunConfig", "TrainConfig", "__version__", "load_model"]


def load_model(path: Any) -> Any:
    """Load a kerasdec ``.keras`` file (model_final.keras, model_best.keras) as a SegDecNet.

    The model carries its training input size (``input_height``, ``input_width``), its channels and
    its decision ``threshold``. Imports TensorFlow. A truncated, corrupt or non-kerasdec file raises
    ``kerasdec.models.saving.ModelFileError`` (a ValueError) naming the file.

    Example:
        >>> model = kerasdec.load_model("runs/synthetic-1/model_final.keras")
    """
    from kerasdec.models.saving import load_model as load

    return load(path)
