"""Your own data in a plain folder layout (also the layout the synthetic dataset is written in).

On-disk tree::

    ROOT/train/ok/<name>.png        defect-free images
    ROOT/train/defect/<name>.png    defective images
    ROOT/train/masks/<name>.png     optional: mask of ROOT/train/defect/<name>.* (nonzero = defect)
    ROOT/test/...                   same layout

Images may be .png, .jpg, .jpeg, .bmp, .tif or .tiff. A defective image without a mask is used with
its image label only (mixed supervision); a mask of an ok image, or a mask without any image, is an
error, as is a name used twice in one split (masks are matched by name). A missing ``ok/`` or
``defect/`` folder counts as empty.

Licence and citation: those of your data.
"""

from __future__ import annotations

import logging
from pathlib import Path

from kerasdec.data.listing import is_file
from kerasdec.data.samples import Sample
from kerasdec.echo import shown

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
CLASS_FOLDERS = ("ok", "defect")  # label 0 and label 1
MASK_FOLDER = "masks"


def list_samples(root: Path | str, split: str) -> list[Sample]:
    """List the samples of ROOT/<split>/{ok,defect}.

    Args:
        root: the dataset folder holding train/ and test/.
        split: "train" or "test".

    Returns:
        Samples named "<split>/<ok|defect>/<name>", ok images first, each group sorted by name.

    Raises:
        FileNotFoundError: root or the split folder is missing.
        ValueError: bad split, no images, a name used twice, a mask of an ok image, a mask without
            an image.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}; expected 'train' or 'test'")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} does not exist; expected a folder with "
                                "train/{ok,defect}/ and test/{ok,defect}/")
    split_dir = root / split
    if not split_dir.is_dir():
        raise FileNotFoundError(f"split folder {split_dir} does not exist; expected {split_dir}/ok/ "
                                f"and {split_dir}/defect/")
    groups = {name: _images(split_dir / name) for name in CLASS_FOLDERS}
    if not any(groups.values()):
        raise ValueError(f"Found 0 images under {root}; expected {split_dir}/ok/<name>.png or "
                         f"{split_dir}/defect/<name>.png")
    _check_unique(groups, split_dir)
    masks = _images(split_dir / MASK_FOLDER)
    _check_masks(masks, groups, split_dir)
    samples = [Sample(name=f"{split}/ok/{stem}", image_path=path, is_positive=False)
               for stem, path in groups["ok"].items()]
    samples += [Sample(name=f"{split}/defect/{stem}", image_path=path, is_positive=True,
                       is_segmented=stem in masks, mask_path=masks.get(stem))
                for stem, path in groups["defect"].items()]
    logger.info("folder %s: %d ok, %d defect (%d with masks)", split_dir, len(groups["ok"]),
                len(groups["defect"]), len(masks))
    return samples


def _images(folder: Path) -> dict[str, Path]:
    """Map name (stem) → image file for the image files of ``folder`` (empty when it is missing)."""
    if not folder.is_dir():
        return {}
    found: dict[str, Path] = {}
    ignored = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES or not is_file(path):
            ignored.append(path.name)
            continue
        if path.stem in found:
            raise ValueError(f"{path} and {found[path.stem]} share the name {path.stem!r}; expected "
                             "one file per name (masks are matched by name)")
        found[path.stem] = path
    if ignored:  # e.g. images in a subfolder, or a format by another suffix: say so, once per folder
        logger.warning("%s: %d entr%s ignored, not image files (%s), e.g. %s", folder, len(ignored),
                       "y" if len(ignored) == 1 else "ies", ", ".join(IMAGE_SUFFIXES), shown(ignored[0]))
    return found


def _check_unique(groups: dict[str, dict[str, Path]], split_dir: Path) -> None:
    both = sorted(set(groups["ok"]) & set(groups["defect"]))
    if both:
        raise ValueError(f"{groups['ok'][both[0]]} and {groups['defect'][both[0]]} share the name "
                         f"{both[0]!r}; expected unique names within {split_dir}")


def _check_masks(masks: dict[str, Path], groups: dict[str, dict[str, Path]], split_dir: Path) -> None:
    for stem, path in masks.items():
        if stem in groups["ok"]:
            raise ValueError(f"mask {path} belongs to the ok image {groups['ok'][stem]}; expected "
                             f"masks only for images in {split_dir}/defect/")
        if stem not in groups["defect"]:
            raise ValueError(f"mask {path} has no image; expected {split_dir}/defect/{stem}.png")
