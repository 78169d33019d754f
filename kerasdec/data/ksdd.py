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

A published split can be given instead as a JSON split file::

    {"train": [["kos01", true], ["kos02", false], "kos03", ...], "test": ["kos05", ...]}

``train`` lists folder names, each optionally paired with a segmented flag (default true; false =
the folder's positives are image-label only); ``test`` lists folder names.

Licence: CC BY-NC-SA 4.0 (https://www.vicos.si/resources/kolektorsdd/).
Citation: D. Tabernik, S. Šela, J. Skvarč, D. Skočaj, "Segmentation-based deep-learning approach
for surface-defect detection", Journal of Intelligent Manufacturing 31, 759–776 (2020).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import cv2
import numpy as np

from kerasdec.data.samples import Sample

logger = logging.getLogger(__name__)

N_FOLDS = 3  # cross-validation folds by kos folder
DEFAULT_SPLIT_SEED = 0  # seed of the fold assignment when none is given


def list_samples(root: Path | str, split: str, fold: int = 0, split_seed: int = DEFAULT_SPLIT_SEED,
                 split_file: Path | str | None = None) -> list[Sample]:
    """List the samples of the train or test part of one fold.

    Args:
        root: the KolektorSDD folder holding kos01..kos50.
        split: "train" or "test".
        fold: cross-validation fold 0..2 (ignored with a split file).
        split_seed: seed of the folder shuffle that defines the folds (default 0).
        split_file: optional JSON split file (schema in the module docstring) replacing the folds.

    Returns:
        Samples named "kosNN/PartK", ordered by folder then part number.

    Raises:
        FileNotFoundError: root, the split file or a label bitmap is missing.
        ValueError: bad split or fold, no images, an unreadable label, a bad split file.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}; expected 'train' or 'test' (KolektorSDD has no 'val')")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} does not exist; expected the KolektorSDD folder "
                                "with kos01..kos50")
    folders = sorted(d.name for d in root.iterdir() if d.is_dir() and any(d.glob("Part*.jpg")))
    if not folders:
        raise ValueError(f"Found 0 images under {root}; expected {root}/kos01/Part0.jpg")
    if split_file is not None:
        train, test = read_split_file(split_file, folders)
    else:
        test_folders = fold_folders(folders, fold, split_seed)
        train = {name: True for name in folders if name not in test_folders}
        test = test_folders
    chosen = train if split == "train" else {name: True for name in test}
    samples = [s for name in sorted(chosen) for s in folder_samples(root / name, chosen[name])]
    logger.info("KSDD %s: %d folders, %d images (%d defective)", split, len(chosen), len(samples),
                sum(s.is_positive for s in samples))
    return samples


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


def read_split_file(path: Path | str, folders: list[str]) -> tuple[dict[str, bool], list[str]]:
    """Read a JSON split file into ({train folder: segmented}, [test folders]).

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: bad JSON or schema, an unknown folder, a folder in both train and test.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split_file {path} does not exist; expected a JSON file "
                                '{"train": [["kos01", true], ...], "test": ["kos05", ...]}')
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        train = dict(_split_entry(entry) for entry in data["train"])
        test = [_split_entry(entry)[0] for entry in data["test"]]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"split_file {path} is not valid ({err}); expected "
                         '{"train": [["kos01", true], ...], "test": ["kos05", ...]}') from err
    unknown = sorted((set(train) | set(test)) - set(folders))
    if unknown:
        raise ValueError(f"split_file {path} names folders {unknown} that are not in the data root; "
                         f"expected some of {folders}")
    both = sorted(set(train) & set(test))
    if both:
        raise ValueError(f"split_file {path} puts {both} in both train and test; expected disjoint lists")
    return train, sorted(test)


def _split_entry(entry: object) -> tuple[str, bool]:
    if isinstance(entry, str):
        return entry, True
    if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str) \
            and isinstance(entry[1], bool):
        return entry[0], entry[1]
    raise ValueError(f"entry {entry!r} should be a folder name or [name, segmented]")


def folder_samples(folder: Path, segmented: bool = True) -> list[Sample]:
    """The samples of one kos folder; ``segmented=False`` makes its positives image-label only."""
    images = sorted(folder.glob("Part*.jpg"), key=_part_number)
    samples = []
    for image in images:
        label = image.with_name(f"{image.stem}_label.bmp")
        positive = label_is_positive(label)
        samples.append(Sample(name=f"{folder.name}/{image.stem}", image_path=image,
                              is_positive=positive, is_segmented=segmented or not positive,
                              mask_path=label))
    return samples


def _part_number(path: Path) -> tuple[int, str]:
    match = re.search(r"\d+", path.stem)
    return (int(match.group()) if match else -1, path.stem)


def label_is_positive(label: Path) -> bool:
    """True when the label image has any nonzero pixel.

    Raises:
        FileNotFoundError: the label file is missing.
        ValueError: the label file cannot be decoded.
    """
    if not label.is_file():
        raise FileNotFoundError(f"label {label} does not exist; expected a label image beside "
                                f"every image (all-zero when defect-free)")
    mask = cv2.imread(str(label), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise ValueError(f"label {label} cannot be read; expected a readable image file")
    return bool(np.any(mask))
