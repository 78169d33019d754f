"""Reading images and masks from disk into uint8 arrays (numpy/OpenCV only, no tensorflow).

Sources (ksdd.py, dagm.py, ...) only index files into :class:`~kerasdec.data.samples.Sample` records;
this module turns one record into pixels. Resizing and target computation live in targets.py.

The mask rule (docs/datasets.md#the-mask-rule): a mask file is read at its own bit depth (IMREAD_UNCHANGED:
16-bit PNGs stay 16-bit; OpenCV's grayscale read would shift them to 8 bits and turn a 0/1 mask into
zeros). A colour mask, palette PNGs included (OpenCV expands the palette to its colours), is read as
its brightest channel per pixel (luminance would make pure red 76 of 255); an alpha channel is
ignored. A pixel is a defect when its value is above half the type's range: > 127 for 8-bit, > 32767
for 16-bit, > 0.5 for float masks. A mask that holds only the values 0 and 1 is a 0/1 label image:
1 is a defect. So JPEG noise, a background of 3 or antialiased edges do not count as defects. Masks
holding values besides 0 and their maximum (or nonzero values none of which is a defect) are read by
the same rule, with one warning per dataset.

With ``gray=True`` (``DataConfig.mask_values = "gray"``, the published presets) a positive's mask
file's values are kept as 8-bit gray levels instead, as the published code reads masks (value / 255
later becomes the soft target): antialiased edges stay soft. A 0/1 label image still reads as 0/255
(as gray levels it would be nearly empty); 16-bit masks are brought to 8 bits, float masks in [0, 1]
scaled by 255.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import cv2
import numpy as np

from kerasdec.config import DEFAULT_MAX_PIXELS
from kerasdec.data.imagesize import FORMATS, check_pixels
from kerasdec.data.samples import Sample

logger = logging.getLogger(__name__)

MASK_ON = 255  # value of a defect pixel in the masks this module returns
_WARNED: set[str | None] = set()  # datasets already warned about irregular masks (once each)
_WARNED_LOCK = threading.Lock()  # tf.data decodes from several threads


def _imread(path: Path | str, flags: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """cv2.imdecode with clear errors for a missing or unreadable file, and for one whose header declares
    more than ``max_pixels`` pixels (refused before decoding: data/imagesize.py)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Image file not found: {path}; expected an existing image file")
    # np.fromfile + imdecode instead of imread: works with non-ASCII paths and never returns a
    # silently empty array for a truncated file without us noticing.
    data = np.fromfile(str(path), dtype=np.uint8)
    if data.size:
        check_pixels(data, max_pixels, path)
    try:
        image = cv2.imdecode(data, flags) if data.size else None
    except cv2.error:  # some decoders raise instead of returning None
        image = None
    if image is None:
        raise ValueError(f"{path} is not a readable image (OpenCV could not decode its {data.size} "
                         f"bytes); expected a {FORMATS} file")
    return image


def read_unchanged(path: Path | str, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A label or mask file decoded at its own depth and channels, its size checked first (see _imread)."""
    return _imread(path, cv2.IMREAD_UNCHANGED, max_pixels)


def read_image(path: Path | str, channels: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image as grayscale or RGB.

    Args:
        path: the image file.
        channels: 1 = grayscale, 3 = RGB (OpenCV's BGR order is converted).
        max_pixels: refuse (undecoded) an image whose header declares more pixels.

    Returns:
        uint8 array (H, W, channels).

    Raises:
        FileNotFoundError: the file does not exist (message names it).
        ValueError: ``channels`` is not 1 or 3, the file is not a readable image, or it declares more
            than ``max_pixels`` pixels.

    Example:
        >>> image = read_image("kos01/Part0.jpg", channels=1)  # (1266, 500, 1) uint8
    """
    if channels not in (1, 3):
        raise ValueError(f"channels={channels}; expected 1 or 3")
    if channels == 1:
        image = _imread(path, cv2.IMREAD_GRAYSCALE, max_pixels)[:, :, None]  # (H, W, 1)
    else:
        image = cv2.cvtColor(_imread(path, cv2.IMREAD_COLOR, max_pixels), cv2.COLOR_BGR2RGB)  # (H, W, 3)
    return np.ascontiguousarray(image, dtype=np.uint8)


def mask_values(raw: np.ndarray) -> np.ndarray:
    """A decoded mask file (any depth, gray or colour) as one value per pixel: the brightest colour
    channel of colour masks (alpha ignored), the gray value otherwise. (h, w), the file's dtype."""
    if raw.ndim == 3:
        raw = raw[:, :, :3].max(axis=2) if raw.shape[2] >= 3 else raw[:, :, 0]  # (h, w)
    return raw


def binarize_mask(values: np.ndarray) -> tuple[np.ndarray, str | None]:
    """Apply the mask rule (module docstring) to per-pixel values.

    Args:
        values: (h, w) uint8, uint16 or float values of a mask file (see :func:`mask_values`).

    Returns:
        (defect, note): boolean (h, w) defect map, and None for a clean mask (only 0 and its maximum)
        or a short description of what was irregular.

    Raises:
        ValueError: an unsupported dtype (e.g. int32 or 64-bit images).
    """
    if values.dtype == np.uint8 or values.dtype == np.uint16:
        threshold = np.iinfo(values.dtype).max // 2  # 127 or 32767
    elif values.dtype in (np.float16, np.float32):
        threshold = 0.5
    else:
        raise ValueError(f"mask of type {values.dtype}; expected 8- or 16-bit integers or floats in [0, 1]")
    levels = np.unique(values)
    top = levels[-1]
    if top == 1 and values.dtype.kind == "u":  # a 0/1 label image
        threshold = 0
    defect = values > threshold
    note = None
    if np.any((levels != 0) & (levels != top)):
        shown = ", ".join(str(v) for v in levels[:6]) + (", ..." if len(levels) > 6 else "")
        note = f"{len(levels)} distinct values ({shown}), not only 0 and {top}"
    elif top > 0 and not defect.any():
        note = f"values up to {top}, none above {threshold}: no defect pixel"
    return defect, note


def _warn_irregular(path: Path | str, note: str, dataset: str | None) -> None:
    with _WARNED_LOCK:
        first = dataset not in _WARNED
        _WARNED.add(dataset)
    (logger.warning if first else logger.debug)(
        "Mask %s holds %s; masks are read as defect where the value is above half the type's range "
        "(> 127 for 8-bit; 0/1 masks: 1) — docs/datasets.md#the-mask-rule.%s", path, note,
        " Further masks like this in this dataset are logged at debug level only." if first else "")


def gray_levels(values: np.ndarray) -> np.ndarray | None:
    """A mask file's values as uint8 gray levels (module docstring, ``gray=True``); None for a 0/1 label
    image, which keeps the binary rule."""
    if values.dtype.kind == "u" and values.max(initial=0) == 1:
        return None  # a 0/1 label image
    if values.dtype == np.uint8:
        return values
    if values.dtype == np.uint16:
        return np.round(values / 257.0).astype(np.uint8)
    if values.dtype in (np.float16, np.float32):
        return np.round(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)
    return None  # an unsupported type: binarize_mask names it


def _mask_from_file(sample: Sample, shape_hw: tuple[int, int], dataset: str | None,
                    max_pixels: int, gray: bool = False) -> np.ndarray:
    raw = _imread(sample.mask_path, cv2.IMREAD_UNCHANGED, max_pixels)
    values = mask_values(raw)  # (h, w) at the file's depth
    if values.shape[:2] != tuple(shape_hw):
        raise ValueError(
            f"Mask {sample.mask_path} is {values.shape[1]}x{values.shape[0]} (WxH) but its image "
            f"{sample.image_path} is {shape_hw[1]}x{shape_hw[0]}; expected a mask of the image's size")
    levels = gray_levels(values) if gray else None
    if levels is not None:
        return levels
    try:
        defect, note = binarize_mask(values)
    except ValueError as err:
        raise ValueError(f"Mask {sample.mask_path}: {err}") from err
    if note is not None:
        _warn_irregular(sample.mask_path, note, dataset)
    return defect


def _mask_from_rle(sample: Sample, shape_hw: tuple[int, int]) -> np.ndarray:
    from kerasdec.data.severstal import rle_decode, rle_origin  # severstal.py is a separate source

    mask = np.zeros(shape_hw, dtype=bool)
    for rle in sample.rle:  # union of all rows (all defect classes) of the image
        try:
            mask |= rle_decode(rle, tuple(shape_hw)).astype(bool)
        except ValueError as err:
            raise ValueError(f"{rle_origin(sample.image_path, rle)}: {err}") from err
    return mask


def read_mask(sample: Sample, shape_hw: tuple[int, int], dataset: str | None = None,
              max_pixels: int = DEFAULT_MAX_PIXELS, gray: bool = False) -> np.ndarray:
    """Read a sample's defect mask at its image's size.

    Taken from ``sample.mask_path`` if set (read by the mask rule of the module docstring), else from
    the union of ``sample.rle``; a sample with neither gets an all-zero mask (negatives, and
    positives that are image-label only).

    Args:
        sample: the record; ``image_path`` is only used in error messages.
        shape_hw: (height, width) of the sample's image as read from disk.
        dataset: any key naming the dataset: irregular masks are warned about once per key.
        max_pixels: refuse (undecoded) a mask file whose header declares more pixels.
        gray: keep a positive's mask file's gray levels (module docstring) instead of the binary rule;
            a negative's mask stays all zero.

    Returns:
        uint8 array (h, w) with values 0 and 255 (with ``gray``, a mask file's gray levels).

    Raises:
        FileNotFoundError: the mask file does not exist.
        ValueError: the mask file is unreadable, its size differs from ``shape_hw`` (message names
            both files and both sizes), a segmented positive has neither mask file nor RLE, or an
            RLE is invalid (message names the CSV line and ImageId).
    """
    shape_hw = (int(shape_hw[0]), int(shape_hw[1]))
    if sample.mask_path is not None:
        mask = _mask_from_file(sample, shape_hw, dataset, max_pixels, gray and sample.is_positive)
        if mask.dtype == np.uint8:  # gray levels
            return mask
    elif sample.rle:
        mask = _mask_from_rle(sample, shape_hw)
    elif sample.is_positive and sample.is_segmented:
        raise ValueError(f"Sample {sample.name!r} ({sample.image_path}) is a segmented positive but has "
                         "no mask_path and no rle; expected one of them (or is_segmented=False)")
    else:
        return np.zeros(shape_hw, dtype=np.uint8)
    return np.where(mask, MASK_ON, 0).astype(np.uint8)
