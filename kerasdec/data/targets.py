"""From decoded pixels to the float32 arrays of one training element (docs/method.md#targets-and-weights).

Pure numpy + OpenCV/scipy, no tensorflow. Order of operations for the mask, as the reference
implementation does it: dilate the FULL-RESOLUTION 0/255 mask, then resize it (bilinear, in uint8) to
the input size, then scale to [0, 1] (soft edges kept). Distance weights are computed on that
input-size map; the mask and the weight map are then both brought to 1/8 by :func:`downsize`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.ndimage import distance_transform_edt

from kerasdec.config import DataConfig
from kerasdec.data.samples import Sample

logger = logging.getLogger(__name__)

DOWNSIZE_FACTOR = 8  # the segmentation output is at 1/8 of the input size


@dataclass(frozen=True)
class Element:
    """The arrays of one (x, y, sample_weight) element, all float32."""

    image: np.ndarray  # (H, W, C) in [0, 1]
    seg: np.ndarray  # (H/8, W/8, 1) in [0, 1]
    seg_weight: np.ndarray  # (H/8, W/8, 1); all 0 for an image-label-only positive
    label: np.ndarray  # (1,) 1 = defective
    label_weight: np.ndarray  # (1,) ones


def resize(array: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize (cv2.INTER_LINEAR) to (height, width), keeping dtype and a channel axis.

    Args:
        array: (h, w) or (h, w, C) array.
        size_hw: target (height, width).

    Returns:
        (H, W) or (H, W, C) array of the same dtype; the input itself when the size already matches.
    """
    height, width = size_hw
    if array.shape[:2] == (height, width):
        return array
    out = cv2.resize(array, (width, height), interpolation=cv2.INTER_LINEAR)
    if array.ndim == 3 and out.ndim == 2:  # OpenCV drops a channel axis of length 1
        out = out[:, :, None]
    return out


def dilate(mask: np.ndarray, d: int = 1) -> np.ndarray:
    """Dilate with a d×d square of ones (d = 1: unchanged); the kernel is centred at (d//2, d//2).

    Args:
        mask: (h, w) uint8 mask.
        d: kernel side, >= 1.

    Returns:
        (h, w) uint8 mask.
    """
    if d < 1:
        raise ValueError(f"dilate={d}; expected >= 1")
    if d == 1:
        return mask
    return cv2.dilate(mask, np.ones((d, d), dtype=np.uint8))


def downsize(array: np.ndarray, factor: int = DOWNSIZE_FACTOR) -> np.ndarray:
    """Reflect-pad by ``factor`` (edge not repeated), then average (2·factor+1)² windows with stride factor.

    Args:
        array: (H, W) map, H and W divisible by ``factor``.
        factor: the downsizing factor (8 for SegDecNet).

    Returns:
        (H/factor, W/factor) float32 map.
    """
    height, width = array.shape
    if height % factor or width % factor:
        raise ValueError(f"map of shape {array.shape}; expected height and width divisible by {factor}")
    padded = np.pad(array.astype(np.float64), factor, mode="reflect")  # (H+2f, W+2f)
    k = 2 * factor + 1
    # Box sums from an integral image: window sum = I[r+k, c+k] - I[r, c+k] - I[r+k, c] + I[r, c].
    integral = np.zeros((padded.shape[0] + 1, padded.shape[1] + 1))
    integral[1:, 1:] = padded.cumsum(axis=0).cumsum(axis=1)
    rows = np.arange(height // factor)[:, None] * factor  # window tops
    cols = np.arange(width // factor)[None, :] * factor  # window lefts
    sums = (integral[rows + k, cols + k] - integral[rows, cols + k]
            - integral[rows + k, cols] + integral[rows, cols])
    return (sums / (k * k)).astype(np.float32)  # (H/f, W/f)


def distance_weights(mask: np.ndarray, w_pos: float = 1.0, p: float = 2.0) -> np.ndarray:
    """w_pos·(d / max d)^p inside the mask, 1 on background (d = Euclidean distance transform).

    Args:
        mask: (H, W) map; every nonzero pixel is foreground (soft edges included).
        w_pos: weight scale inside defects.
        p: exponent of the normalised distance.

    Returns:
        (H, W) float32 weights; all ones when the mask is empty (max d = 0).
    """
    foreground = mask > 0
    distance = distance_transform_edt(foreground)  # distance to the nearest background pixel
    max_distance = float(distance.max()) if distance.size else 0.0
    if max_distance == 0.0:
        return np.ones(mask.shape, dtype=np.float32)
    weights = w_pos * (distance / max_distance) ** p
    weights[~foreground] = 1.0
    return weights.astype(np.float32)


def input_image(image: np.ndarray, cfg: DataConfig) -> np.ndarray:
    """Resize a decoded (h, w, C) uint8 image to the input size (H, W, C), still uint8."""
    if image.ndim != 3 or image.shape[2] != cfg.channels:
        raise ValueError(f"image of shape {image.shape}; expected (h, w, {cfg.channels})")
    return resize(image, (cfg.height, cfg.width))  # (H, W, C) uint8


def seg_targets(mask: np.ndarray, sample: Sample, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """Segmentation target and pixel weights at 1/8 for one sample.

    Args:
        mask: (h, w) uint8 mask at the image's original size, 0/255 (or gray levels, mask_values="gray").
        sample: the record (``is_positive``, ``is_segmented`` decide the weights).
        cfg: input size, ``dilate``, ``weighted_seg``, ``w_pos``, ``p``.

    Returns:
        seg (H/8, W/8, 1) float32 in [0, 1] and seg_weight (H/8, W/8, 1) float32.
    """
    # Dilate at full resolution first, then resize (as the reference does).
    full = resize(dilate(mask.astype(np.uint8), cfg.dilate), (cfg.height, cfg.width))  # (H, W) uint8
    seg_full = full.astype(np.float32) / 255.0  # (H, W) in [0, 1]
    seg = downsize(seg_full)[:, :, None]  # (H/8, W/8, 1)
    if sample.is_positive and not sample.is_segmented:
        weight = np.zeros_like(seg)  # image-label only: no segmentation loss
    elif sample.is_positive and cfg.weighted_seg:
        weight = downsize(distance_weights(seg_full, cfg.w_pos, cfg.p))[:, :, None]
    else:
        weight = np.ones_like(seg)  # negatives, or weighting off
    return seg, weight


def decision_target(seg: np.ndarray, sample: Sample, kind: str = "image_label") -> float:
    """The classification target of one sample (docs/method.md#loss-and-schedule).

    Args:
        seg: the sample's 1/8 segmentation target, as :func:`seg_targets` computes it.
        sample: the record; negatives always get 0.
        kind: "image_label" = 1 for every positive; "mask_max" (published) = the maximum of ``seg``,
            below 1 for a defect smaller than the 17×17 pooling window, and 1 for a positive whose
            mask is empty or absent.

    Example:
        >>> decision_target(np.full((2, 2, 1), 0.28, np.float32), positive_sample, "mask_max")
        0.28
    """
    if not sample.is_positive:
        return 0.0
    peak = float(seg.max()) if seg.size else 0.0
    return peak if kind == "mask_max" and peak > 0 else 1.0


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8 → float32 in [0, 1] (no mean/std normalisation, as the method specifies)."""
    return image.astype(np.float32) / 255.0


def make_element(image: np.ndarray, mask: np.ndarray, sample: Sample, cfg: DataConfig) -> Element:
    """All float32 arrays of one training/evaluation element.

    Args:
        image: (h, w, C) uint8 image as decoded (any size; resized here).
        mask: (h, w) uint8 0/255 mask at the decoded image's size.
        sample: the record.
        cfg: the data settings.

    Returns:
        The :class:`Element`.

    Example:
        >>> el = make_element(read_image(s.image_path, 1), read_mask(s, (h, w)), s, DataConfig())
        >>> el.seg.shape  # (16, 16, 1) for the default 128×128 input
    """
    seg, seg_weight = seg_targets(mask, sample, cfg)
    label = np.array([decision_target(seg, sample, cfg.decision_target)], dtype=np.float32)  # (1,)
    return Element(image=to_float(input_image(image, cfg)), seg=seg, seg_weight=seg_weight,
                   label=label, label_weight=np.ones((1,), dtype=np.float32))
