"""KolektorSDD (KSDD): index the images of a cross-validation fold.

On-disk tree::

    ROOT/kos01/Part0.jpg  Part0_label.bmp  Part1.jpg  Part1_label.bmp  ...
    ROOT/kos02/...
    ...
    ROOT/kos50/...

399 grayscale images (~500×1250) of electrical commutators, 52 defective. Every image has a label
bitmap; an all-zero bitmap means defect-free, so positivity is read from the label (the one place an
indexer opens a file).

Folds: the kos folders (one physical item each) are shuffled with ``numpy.random.default_rng(split_seed)``
and cut with ``numpy.array_split`` into 3 test groups (17/17/16 folders of 50); fold k tests on group k
and trains on the other folders (33/33/34). The three test sets partition the folders as long as
the three runs use the same seed (``sources.load_split`` passes the run seed as ``split_seed``).

``--positives N`` means N kos FOLDERS in training, as the published protocol does (split_10_10 trains
each fold on 10 folders, all their parts): N of the fold's training folders that hold a defect are
drawn with ``numpy.random.default_rng(seed)``; ``--segmented M`` keeps pixel labels on the first M of
them. The test folders stay the fold's. A published split file (kerasdec/data/splits.py) gives the
folders of each fold instead.

Licence: CC BY-NC-SA 4.0 (https://www.vicos.si/resources/kolektorsdd/).
Citation: D. Tabernik, S. Šela, J. Skvarč, D. Skočaj, "Segmentation-based deep-learning approach
for surface-defect detection", Journal of Intelligent Manufacturing 31, 759–776 (2020).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from kerasdec.config import DEFAULT_MAX_PIXELS
from kerasdec.data.decode import read_unchanged
from kerasdec.data.listing import is_dir, is_file
from kerasdec.data.samples import Sample

logger = logging.getLogger(__name__)

N_FOLDS = 3  # cross-validation folds by kos folder
DEFAULT_SPLIT_SEED = 0  # seed of the fold assignment when none is given


def list_samples(root: Path | str, split: str, fold: int = 0, split_seed: int = DEFAULT_SPLIT_SEED,
                 folders: int | None = None, segmented: int | None = None, seed: int = 0,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> list[Sample]:
    """List the samples of the train or test part of one seeded fold.

    Args:
        root: the KolektorSDD folder holding kos01..kos50.
        split: "train" or "test".
        fold: cross-validation fold 0..2.
        split_seed: seed of the folder shuffle that defines the folds (default 0).
        folders: train on this many of the fold's training folders that hold a defect; None = all
            training folders.
        segmented: of the drawn folders, how many keep pixel labels; None = all.
        seed: seed of the folder draw.
        max_pixels: label bitmaps declaring more pixels are refused undecoded (positivity is read from them).

    Returns:
        Samples named "kosNN/PartK", ordered by folder then part number.

    Raises:
        FileNotFoundError: root or a label bitmap is missing.
        ValueError: bad split or fold, no images, an unreadable label, more folders than available.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}; expected 'train' or 'test' (KolektorSDD has no 'val')")
    root = check_root(root)
    names = sorted(d.name for d in root.iterdir() if is_dir(d) and any(d.glob("Part*.jpg")))
    if not names:
        raise ValueError(f"Found 0 images under {root}; expected {root}/kos01/Part0.jpg")
    test = fold_folders(names, fold, split_seed)
    if split == "test":
        return folders_samples(root, {name: True for name in test}, max_pixels)
    train = [name for name in names if name not in test]
    if folders is not None or segmented is not None:
        return draw_folders(root, train, folders, segmented, seed, max_pixels)
    return folders_samples(root, {name: True for name in train}, max_pixels)


def check_root(root: Path | str) -> Path:
    """The root as a Path; FileNotFoundError when it is not a folder."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} does not exist; expected the KolektorSDD folder "
                                "with kos01..kos50")
    return root


def folders_samples(root: Path, chosen: dict[str, bool],
                    max_pixels: int = DEFAULT_MAX_PIXELS) -> list[Sample]:
    """The samples of the chosen folders ({folder: segmented}), sorted by folder."""
    samples = [s for name in sorted(chosen) for s in folder_samples(root / name, chosen[name], max_pixels)]
    logger.info("KSDD: %d folders, %d images (%d defective)", len(chosen), len(samples),
                sum(s.is_positive for s in samples))
    return samples


def draw_folders(root: Path, train: list[str], n: int | None, segmented: int | None,
                 seed: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> list[Sample]:
    """N seeded training folders that hold a defect (all their parts); pixel labels on the first M."""
    by_folder = {name: folder_samples(root / name, max_pixels=max_pixels) for name in train}
    candidates = [name for name in train if any(s.is_positive for s in by_folder[name])]
    n_all = n is None
    n = len(candidates) if n is None else n
    if n > len(candidates):
        raise ValueError(f"positives={n} kos folders but only {len(candidates)} training folders of this "
                         f"fold hold a defect; expected positives <= {len(candidates)} (KSDD counts folders)")
    if segmented is not None and segmented > n:
        raise ValueError(f"segmented={segmented} is larger than positives={n}; expected segmented <= "
                         "positives (KSDD counts folders)")
    order = np.random.default_rng(seed).permutation(len(candidates))
    drawn = [candidates[i] for i in order[:n]]
    labelled = set(drawn[:n if segmented is None else segmented])
    kept = train if n_all else drawn  # positives=None: every training folder, defect-free ones too
    return folders_samples(root, {name: name in labelled or name not in candidates for name in kept},
                           max_pixels)


def fold_folders(folders: list[str], fold: int, split_seed: int = DEFAULT_SPLIT_SEED) -> list[str]:
    """The test folders of ``fold``: a seeded shuffle cut into ``N_FOLDS`` near-equal groups.

    Raises:
        ValueError: fold outside 0..2 or fewer folders than folds.
    """
    if fold not in range(N_FOLDS):
        raise ValueError(f"fold={fold}; expected 0..{N_FOLDS - 1}")
    if len(folders) < N_FOLDS:
        raise ValueError(f"found {len(folders)} kos folders {folders}; expected at least {N_FOLDS} "
                         "for 3-fold cross-validation")
    order = np.random.default_rng(split_seed).permutation(len(folders))
    group = np.array_split(order, N_FOLDS)[fold]
    return sorted(folders[i] for i in group)


def folder_samples(folder: Path, segmented: bool = True,
                   max_pixels: int = DEFAULT_MAX_PIXELS) -> list[Sample]:
    """The samples of one kos folder; ``segmented=False`` makes its positives image-label only."""
    images = sorted((p for p in folder.glob("Part*.jpg") if is_file(p)), key=_part_number)
    samples = []
    for image in images:
        label = image.with_name(f"{image.stem}_label.bmp")
        positive = label_is_positive(label, max_pixels)
        samples.append(Sample(name=f"{folder.name}/{image.stem}", image_path=image,
                              is_positive=positive, is_segmented=segmented or not positive,
                              mask_path=label))
    return samples


def _part_number(path: Path) -> tuple[int, str]:
    match = re.search(r"\d+", path.stem)
    return (int(match.group()) if match else -1, path.stem)


def label_is_positive(label: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> bool:
    """True when the label image has any nonzero pixel.

    Raises:
        FileNotFoundError: the label file is missing.
        ValueError: the label file cannot be decoded, or declares more than ``max_pixels`` pixels.
    """
    if not is_file(label):
        raise FileNotFoundError(f"label {label} does not exist; expected a label image beside "
                                f"every image (all-zero when defect-free)")
    return bool(np.any(read_unchanged(label, max_pixels)))
