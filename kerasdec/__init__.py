"""kerasdec: end-to-end surface-defect detection (SegDecNet, Božič et al. 2020/2021) in Keras 3."""

from kerasdec.config import DataConfig, RunConfig, TrainConfig

__version__ = "0.1.0"
__all__ = ["DataConfig", "RunConfig", "TrainConfig", "__version__"]
