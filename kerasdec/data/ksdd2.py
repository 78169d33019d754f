"""KolektorSDD2 (KSDD2): index the train or test split.

On-disk tree::

    ROOT/train/<id>.png   <id>_GT.png   ...
    ROOT/test/<id>.png    <id>_GT.png   ...

Colour images of ~230×630; every image has a ground-truth mask ``<id>_GT.png`` that is all-zero when
the image is defect-free, so positivity is read from the mask. 246 positive / 2085 negative training
images, 110 / 894 test images.

Licence: CC BY-NC-SA 4.0 (https://www.vicos.si/resources/kolektorsdd2/).
Citation: J. Božič, D. Tabernik, D. Skočaj, "Mixed supervision for surface-defect detection: from
weakly to fully supervised learning", Computers in Industry 129, 103459 (2021).
"""

from __future__ import annotations

import logging
from pathlib import Path

from kerasdec.config import DEFAULT_MAX_PIXELS
from kerasdec.data.ksdd import label_is_positive
from kerasdec.data.listing import is_file
from kerasdec.data.samples import Sample

logger = logging.getLogger(__name__)

GT_SUFFIX = "_GT"  # mask file = <id> + GT_SUFFIX + ".png"


def list_samples(root: Path | str, split: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> list[Sample]:
    """List the samples of ROOT/<split>.

    Args:
        root: the KolektorSDD2 folder holding train/ and test/.
        split: "train" or "test".
        max_pixels: masks declaring more pixels are refused undecoded (positivity is read from them).

    Returns:
        Samples named "<split>/<id>", sorted by id.

    Raises:
        FileNotFoundError: root, the split folder or a ground-truth mask is missing.
        ValueError: bad split, no images, an unreadable mask, a mask without its image.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}; expected 'train' or 'test' (KolektorSDD2 has no 'val')")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} does not exist; expected the KolektorSDD2 folder "
                                "with train/ and test/")
    split_dir = root / split
    if not split_dir.is_dir():
        raise FileNotFoundError(f"split folder {split_dir} does not exist; expected {root}/{split}/<id>.png")
    images = sorted(p for p in split_dir.glob("*.png") if not p.stem.endswith(GT_SUFFIX) and is_file(p))
    if not images:
        raise ValueError(f"Found 0 images under {root}; expected {split_dir}/<id>.png")
    stems = {p.stem for p in images}
    orphans = sorted(p.name for p in split_dir.glob(f"*{GT_SUFFIX}.png")
                     if p.stem[:-len(GT_SUFFIX)] not in stems and is_file(p))
    if orphans:
        raise ValueError(f"mask {split_dir / orphans[0]} has no image; expected "
                         f"{split_dir}/{orphans[0].replace(GT_SUFFIX, '')} beside it")
    samples = []
    for image in images:
        mask = image.with_name(f"{image.stem}{GT_SUFFIX}.png")
        samples.append(Sample(name=f"{split}/{image.stem}", image_path=image,
                              is_positive=label_is_positive(mask, max_pixels), mask_path=mask))
    logger.info("KSDD2 %s: %d images (%d defective)", split, len(samples),
                sum(s.is_positive for s in samples))
    return samples
