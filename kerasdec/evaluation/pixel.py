"""Pixel-level metrics on images that have masks: pixel AP, pixel AUC and the best Dice (numpy only).

Pixels of all images are pooled. To keep memory bounded on large test sets (KSDD: ~10^8 pixels),
heatmap values in [0, 1] are accumulated in ``bins`` histogram levels: level k holds values v with
floor(v·bins) = k (v = 1 falls in the top level). AP and AUC are then exact for the quantised
heatmaps, i.e. equal to scikit-learn's on ``floor(v·bins)``, and within about 1/bins of the
unquantised values. Dice = 2·TP / (2·TP + FP + FN) over all pooled pixels, at the level threshold
that maximises it (the lowest such threshold when tied); a pixel is predicted defective when its
value is at or above that threshold.
"""

from __future__ import annotations

import logging

import numpy as np

from kerasdec.evaluation.metrics import ap_from_curve, auc_from_curve, best_f_from_curve

logger = logging.getLogger(__name__)


class PixelMetrics:
    """Streaming accumulator of pixel-level metrics.

    Args:
        bins: number of quantisation levels of the heatmap values (default 10,000).

    Example:
        >>> acc = PixelMetrics()
        >>> acc.update(mask_uint8, heatmap_float)   # same (H, W); mask nonzero = defect
        >>> acc.result()["pixel_dice"]
    """

    def __init__(self, bins: int = 10_000) -> None:
        if bins < 2:
            raise ValueError(f"bins={bins}; expected >= 2")
        self.bins = bins
        self.n_images = 0
        self._pos = np.zeros(bins, dtype=np.int64)  # defect pixels per level
        self._neg = np.zeros(bins, dtype=np.int64)  # background pixels per level

    def update(self, mask: np.ndarray, heatmap: np.ndarray) -> None:
        """Add one image.

        Args:
            mask: (H, W) ground truth; nonzero = defect (e.g. 0/255 uint8).
            heatmap: (H, W) defect probabilities in [0, 1], already at the mask's size.

        Raises:
            ValueError: shapes differ, or heatmap values outside [0, 1] or not finite.
        """
        mask, heatmap = np.squeeze(np.asarray(mask)), np.squeeze(np.asarray(heatmap, dtype=np.float64))
        if mask.shape != heatmap.shape or mask.ndim != 2:
            raise ValueError(f"mask shape {mask.shape} and heatmap shape {heatmap.shape}; "
                             "expected the same (H, W): upsample the heatmap to the mask size first")
        if not np.isfinite(heatmap).all() or heatmap.min() < 0 or heatmap.max() > 1:
            raise ValueError("heatmap values must be finite and in [0, 1] (sigmoid of the seg logits); "
                             f"found range [{np.nanmin(heatmap)}, {np.nanmax(heatmap)}]")
        levels = np.minimum((heatmap * self.bins).astype(np.int64), self.bins - 1)
        defect = mask != 0
        self._pos += np.bincount(levels[defect], minlength=self.bins)
        self._neg += np.bincount(levels[~defect], minlength=self.bins)
        self.n_images += 1

    def result(self) -> dict[str, float | int]:
        """pixel_ap, pixel_auc, pixel_dice, pixel_threshold (a level's lower edge), n_pixel_images.

        Raises:
            ValueError: no defect pixels or no background pixels were accumulated.
        """
        n_pos, n_neg = int(self._pos.sum()), int(self._neg.sum())
        if n_pos == 0 or n_neg == 0:
            raise ValueError(
                f"pixel metrics need defect and background pixels; the {self.n_images} masks "
                f"accumulated have {n_pos} defect and {n_neg} background pixels")
        used = np.flatnonzero((self._pos + self._neg) > 0)[::-1]  # occupied levels, highest first
        tps, fps = np.cumsum(self._pos[used]), np.cumsum(self._neg[used])
        best, dice = best_f_from_curve(tps, fps)
        return {
            "pixel_ap": ap_from_curve(tps, fps),
            "pixel_auc": auc_from_curve(tps, fps),
            "pixel_dice": dice,
            "pixel_threshold": float(used[best] / self.bins),
            "n_pixel_images": self.n_images,
        }

