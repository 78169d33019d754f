"""The record every dataset source produces: where one image and its label live."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    """One image of a split.

    Attributes:
        name: unique, stable id within the dataset (e.g. "kos01/Part3"); used in results.csv.
        image_path: the image file.
        is_positive: the image shows a defect (image-level label).
        is_segmented: a pixel label is used for training. False for negatives is never the case
            (negatives always train segmentation against an all-zero target); False for a positive
            means image-label only (mixed supervision).
        mask_path: the mask file (0 = background, nonzero = defect), or None.
        rle: Severstal run-length encodings (one per class row, united), empty otherwise.
    """

    name: str
    image_path: Path
    is_positive: bool
    is_segmented: bool = True
    mask_path: Path | None = None
    rle: tuple[str, ...] = ()
