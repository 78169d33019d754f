"""Severstal: Steel Defect Detection (Kaggle, 2019): index the images and decode the RLE masks.

On-disk tree::

    ROOT/train.csv            ImageId,ClassId,EncodedPixels  (one row per image and defect class)
    ROOT/train_images/<ImageId>          1600×256 grayscale-looking JPEG

EncodedPixels is a run-length encoding: space-separated pairs "start length"; starts are 1-based and
pixels are numbered top-to-bottom, then left-to-right (column-major). An image with several rows has
the union of their masks as its label (the reference implementation kept only the last row). Images
absent from the CSV are defect-free. The older Kaggle CSV (``ImageId_ClassId,EncodedPixels`` with an
empty encoding for absent classes) is read too.

The dataset has no official labelled test set. The published splits (STEEL/split_<N>_<M>.pyb,
read by kerasdec/data/splits.py) have a fixed test set of 2,400 images and a validation set of 1,118,
each half defective (1,200 + 1,200 and 559 + 559), and train on N positives plus the pool of the
4,143 remaining negatives. Without a split file kerasdec draws a seeded split with the same
proportions: per class, ``round(n_neg·1200/5902)`` test and ``round(n_neg·559/5902)`` validation
images (at least 1 each), where n_neg is the number of defect-free images (5,902 in the full data,
which gives exactly the published sizes); the rest train (``--positives N`` then keeps N of the
training positives).

Licence: Kaggle competition data, for non-commercial research use under the competition rules
(https://www.kaggle.com/c/severstal-steel-defect-detection/rules).
Citation: Severstal, "Severstal: Steel Defect Detection", Kaggle, 2019.
"""

from __future__ import annotations

import contextlib
import csv
import logging
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from kerasdec.data.listing import is_file
from kerasdec.data.samples import Sample
from kerasdec.echo import shown

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
CLASS_IDS = ("1", "2", "3", "4")  # the defect classes of train.csv
# The longest encoding of a 1600x256 image (every other pixel, "start length" pairs) is about 2.9 MB.
MAX_FIELD_CHARS = 4 * 2**20


def rle_decode(rle: str, shape: tuple[int, int]) -> np.ndarray:
    """Decode one Severstal run-length encoding into a 0/1 mask.

    Args:
        rle: space-separated "start length" pairs, starts 1-based, pixels numbered column-major
            (down the first column, then the next). An empty string decodes to an all-zero mask.
        shape: (height, width) of the image.

    Returns:
        np.uint8 array (height, width) with 1 on the encoded pixels and 0 elsewhere.

    Raises:
        ValueError: a token is not an integer, the count of numbers is odd, a start is < 1, a length
            is < 1, or a run ends past the last pixel of the image.

    Example:
        >>> rle_decode("2 2", (3, 2))[:, 0].tolist()
        [0, 1, 1]
    """
    height, width = int(shape[0]), int(shape[1])
    flat = np.zeros(height * width, dtype=np.uint8)
    tokens = rle.split()
    try:
        numbers = [int(token) for token in tokens]
    except ValueError as err:
        raise ValueError(f"RLE {shown(rle)} has a non-integer token; "
                         "expected 'start length' pairs") from err
    if len(numbers) % 2:
        raise ValueError(f"RLE {shown(rle)} has an odd count of numbers ({len(numbers)}); "
                         "expected 'start length' pairs")
    for start, length in zip(numbers[0::2], numbers[1::2]):
        if start < 1 or length < 1:
            raise ValueError(f"RLE run 'start={start} length={length}' is invalid; "
                             "expected start >= 1 (1-based) and length >= 1")
        end = start - 1 + length
        if end > flat.size:
            raise ValueError(f"RLE run 'start={start} length={length}' ends at pixel {end}, past the "
                             f"image of {height}x{width} = {flat.size} pixels (shape {shape})")
        flat[start - 1:end] = 1
    # Column-major numbering: consecutive pixels run down a column, so fill (W, H) and transpose.
    return flat.reshape(width, height).T.copy()  # (H, W)


def list_samples(root: Path | str, split: str, seed: int = 0) -> list[Sample]:
    """List the samples of one split of the seeded split with the published proportions.

    Args:
        root: folder holding train.csv and train_images/.
        split: "train", "val" or "test".
        seed: seed of the partition (the same seed gives the same partition).

    Returns:
        Samples sorted by ImageId; positives carry all their RLE rows in ``rle``.

    Raises:
        FileNotFoundError: root, train.csv or train_images/ is missing.
        ValueError: bad split, no images, a CSV row whose image file is missing, too few positives
            for the balanced test and validation sets.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; expected one of {SPLITS}")
    samples = all_samples(root)
    names = split_names([s.name for s in samples], {s.name for s in samples if s.is_positive}, seed)[split]
    chosen = set(names)
    return [s for s in samples if s.name in chosen]


def all_samples(root: Path | str) -> list[Sample]:
    """Every image of ROOT/train_images as a Sample, sorted by ImageId (see list_samples for errors)."""
    root = Path(root)
    csv_path, images_dir = root / "train.csv", root / "train_images"
    for path in (root, csv_path, images_dir):
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist; expected the Severstal layout "
                                    "ROOT/train.csv and ROOT/train_images/<ImageId>")
    images = sorted(p.name for p in images_dir.iterdir() if is_file(p))
    if not images:
        raise ValueError(f"Found 0 images under {root}; expected {images_dir}/<ImageId>.jpg")
    rles = read_csv(csv_path)
    missing = sorted(set(rles) - set(images))
    if missing:
        raise ValueError(f"{csv_path} lists {len(missing)} image(s) missing from {images_dir}, "
                         f"e.g. {shown(missing[0])}; expected every ImageId to have an image file")
    return [Sample(name=name, image_path=images_dir / name, is_positive=name in rles,
                   rle=tuple(rles.get(name, ()))) for name in images]


def read_csv(path: Path) -> dict[str, list[str]]:
    """Read train.csv into {ImageId: [EncodedPixels, ...]}.

    Every row must name an image and one of the CLASS_IDS; in the current format every row holds an
    encoding (defect-free images are absent), in the older ``ImageId_ClassId`` format a row with an
    empty encoding says the class is absent and is skipped.

    Raises:
        ValueError: a header with neither ImageId,ClassId,EncodedPixels nor ImageId_ClassId; a row
            with another ClassId, no ImageId, or (current format) no encoding: the line is named.
    """
    rles: dict[str, list[str]] = defaultdict(list)
    with open(path, newline="", encoding="utf-8") as f, _field_limit():
        reader = csv.DictReader(f)
        try:
            rows = [(reader.line_num, row) for row in reader]  # (last line of the row, row)
        except csv.Error as err:  # e.g. a field longer than any encoding of a 1600x256 image
            # line_num does not count the line that failed yet
            raise ValueError(f"{path} line {reader.line_num + 1}: {err}; expected "
                             "ImageId,ClassId,EncodedPixels rows") from err
        fields = reader.fieldnames or []
        if "EncodedPixels" not in fields or not ({"ImageId", "ImageId_ClassId"} & set(fields)):
            raise ValueError(f"{path} has header {shown(fields)}; expected ImageId,ClassId,EncodedPixels")
        current = "ImageId" in fields
        for number, row in rows:
            encoding = (row["EncodedPixels"] or "").strip()
            if current:
                image_id, class_id = (row["ImageId"] or "").strip(), (row.get("ClassId") or "").strip()
            else:
                image_id, _, class_id = (row["ImageId_ClassId"] or "").strip().rpartition("_")
            where = f"{path} line {number}"
            if class_id not in CLASS_IDS:
                raise ValueError(f"{where}: ClassId {shown(class_id)}; expected one of "
                                 f"{', '.join(CLASS_IDS)} (Severstal's four defect classes)")
            if not image_id:
                raise ValueError(f"{where}: no ImageId; expected the file name of an image in train_images/")
            if current and not encoding:
                raise ValueError(f"{where}: ImageId {shown(image_id)} has an empty EncodedPixels; expected "
                                 "'start length' pairs (defect-free images are left out of train.csv)")
            if encoding:
                rles[image_id].append(encoding)
    return dict(rles)


@contextlib.contextmanager
def _field_limit(chars: int = MAX_FIELD_CHARS) -> Iterator[None]:
    """csv's field size limit (process-wide; 131,072 by default) set to ``chars`` while reading."""
    previous = csv.field_size_limit(chars)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


# The published split (full data: 6,666 defective and 5,902 defect-free images).
PUBLISHED_NEGATIVES = 5902  # defect-free images of the full data
PUBLISHED_TEST_PER_CLASS = 1200  # test = 1,200 defective + 1,200 defect-free = 2,400
PUBLISHED_VAL_PER_CLASS = 559  # validation = 559 + 559 = 1,118; the other 4,143 negatives train


def split_sizes(n_negatives: int) -> tuple[int, int]:
    """(test, validation) images PER CLASS for a dataset with ``n_negatives`` defect-free images.

    Example:
        >>> split_sizes(5902)
        (1200, 559)
    """
    def scaled(published: int) -> int:
        return max(1, int(np.floor(n_negatives * published / PUBLISHED_NEGATIVES + 0.5)))
    return scaled(PUBLISHED_TEST_PER_CLASS), scaled(PUBLISHED_VAL_PER_CLASS)


def split_names(images: list[str], positives: set[str], seed: int) -> dict[str, list[str]]:
    """Partition image names into sorted, disjoint train/val/test lists with the published proportions.

    Raises:
        ValueError: fewer than test + val + 1 images in either class.
    """
    groups = (sorted(n for n in images if n in positives), sorted(n for n in images if n not in positives))
    n_test, n_val = split_sizes(len(groups[1]))
    rng = np.random.default_rng(seed)
    parts: dict[str, list[str]] = {name: [] for name in SPLITS}
    for kind, group in zip(("defective", "defect-free"), groups):
        if len(group) < n_test + n_val + 1:
            raise ValueError(f"Severstal has {len(group)} {kind} images; the seeded split needs at least "
                             f"{n_test + n_val + 1} ({n_test} test, {n_val} validation, 1 training)")
        order = [group[i] for i in rng.permutation(len(group))]
        parts["test"] += order[:n_test]
        parts["val"] += order[n_test:n_test + n_val]
        parts["train"] += order[n_test + n_val:]
    return {name: sorted(values) for name, values in parts.items()}


def rle_origin(image_path: Path | str, rle: str) -> str:
    """Where an encoding comes from, for error messages: "ROOT/train.csv line N (ImageId X)".

    Looked up only when something is wrong: the CSV beside the image's train_images/ folder is read
    again to find the first row of this ImageId with this encoding.
    """
    image_path = Path(image_path)
    csv_path = image_path.parent.parent / "train.csv"
    line = None
    try:
        with open(csv_path, newline="", encoding="utf-8") as f, _field_limit():
            reader = csv.DictReader(f)
            for row in reader:
                image_id = row.get("ImageId") or (row.get("ImageId_ClassId") or "").rsplit("_", 1)[0]
                if image_id == image_path.name and (row.get("EncodedPixels") or "").strip() == rle.strip():
                    line = reader.line_num
                    break
    except (OSError, ValueError, csv.Error):
        pass
    where = f"{csv_path} line {line}" if line is not None else f"{csv_path}"
    return f"{where} (ImageId {image_path.name})"

