"""Reading images and masks from disk into uint8 arrays (numpy/OpenCV only, no tensorflow).

Sources (ksdd.py, dagm.py, ...) only index files into :class:`~kerasdec.data.samples.Sample` records;
this module turns one record into pixels. Resizing and target computation live in targets.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from kerasdec.data.samples import Sample

logger = logging.getLogger(__name__)

MASK_ON = 255  # value of a defect pixel in the masks this module returns


def _imread(path: Path | str, flags: int) -> np.ndarray:
    """cv2.imread with clear errors for a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Image file not found: {path}; expected an existing image file")
    # np.fromfile + imdecode instead of imread: works with non-ASCII paths and never returns a
    # silently empty array for a truncated file without us noticing.
    data = np.fromfile(str(path), dtype=np.uint8)
    try:
        image = cv2.imdecode(data, flags) if data.size else None
    except cv2.error:  # some decoders raise instead of returning None
        image = None
    if image is None:
        raise ValueError(f"{path} is not a readable image (OpenCV could not decode its {data.size} "
                         "bytes); expected a PNG, JPEG, BMP or another format OpenCV reads")
    return image


def read_image(path: Path | str, channels: int) -> np.ndarray:
    """Read an image as grayscale or RGB.

    Args:
        path: the image file.
        channels: 1 = grayscale, 3 = RGB (OpenCV's BGR order is converted).

    Returns:
        uint8 array (H, W, channels).

    Raises:
        FileNotFoundError: the file does not exist (message names it).
        ValueError: ``channels`` is not 1 or 3, or the file is not a readable image.

    Example:
        >>> image = read_image("kos01/Part0.jpg", channels=1)  # (1266, 500, 1) uint8
    """
    if channels not in (1, 3):
        raise ValueError(f"channels={channels}; expected 1 or 3")
    if channels == 1:
        image = _imread(path, cv2.IMREAD_GRAYSCALE)[:, :, None]  # (H, W, 1)
    else:
        image = cv2.cvtColor(_imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)  # (H, W, 3)
    return np.ascontiguousarray(image, dtype=np.uint8)


def _mask_from_file(sample: Sample, shape_hw: tuple[int, int]) -> np.ndarray:
    mask = _imread(sample.mask_path, cv2.IMREAD_GRAYSCALE)  # (h, w), any nonzero = defect
    if mask.shape[:2] != tuple(shape_hw):
        raise ValueError(
            f"Mask {sample.mask_path} is {mask.shape[1]}x{mask.shape[0]} (WxH) but its image "
            f"{sample.image_path} is {shape_hw[1]}x{shape_hw[0]}; expected a mask of the image's size")
    return mask


def _mask_from_rle(sample: Sample, shape_hw: tuple[int, int]) -> np.ndarray:
    from kerasdec.data.severstal import rle_decode  # imported here: severstal.py is a separate source

    mask = np.zeros(shape_hw, dtype=np.uint8)
    for rle in sample.rle:  # union of all rows (all defect classes) of the image
        mask |= rle_decode(rle, tuple(shape_hw)).astype(np.uint8)
    return mask


def read_mask(sample: Sample, shape_hw: tuple[int, int]) -> np.ndarray:
    """Read a sample's defect mask at its image's size.

    Taken from ``sample.mask_path`` if set, else from the union of ``sample.rle``; a sample with
    neither gets an all-zero mask (negatives, and positives that are image-label only).

    Args:
        sample: the record; ``image_path`` is only used in error messages.
        shape_hw: (height, width) of the sample's image as read from disk.

    Returns:
        uint8 array (h, w) with values 0 and 255.

    Raises:
        FileNotFoundError: the mask file does not exist.
        ValueError: the mask file is unreadable, its size differs from ``shape_hw`` (message names
            both files and both sizes), or a segmented positive has neither mask file nor RLE.
    """
    shape_hw = (int(shape_hw[0]), int(shape_hw[1]))
    if sample.mask_path is not None:
        mask = _mask_from_file(sample, shape_hw)
    elif sample.rle:
        mask = _mask_from_rle(sample, shape_hw)
    elif sample.is_positive and sample.is_segmented:
        raise ValueError(f"Sample {sample.name!r} ({sample.image_path}) is a segmented positive but has "
                         "no mask_path and no rle; expected one of them (or is_segmented=False)")
    else:
        return np.zeros(shape_hw, dtype=np.uint8)
    return np.where(mask > 0, MASK_ON, 0).astype(np.uint8)
