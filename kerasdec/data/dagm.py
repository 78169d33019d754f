"""DAGM 2007: index one class's Train or Test folder.

On-disk tree::

    ROOT/Class1/Train/0001.PNG  0002.PNG ...
    ROOT/Class1/Train/Label/0002_label.PNG ...  Labels.txt
    ROOT/Class1/Test/...        (same layout)
    ...
    ROOT/Class10/...

512×512 grayscale textures; defects are labelled coarsely (filled ellipses). A positive is an image
with a label PNG ``<stem>_label.PNG`` in ``Label/``. ``Label/Labels.txt`` is a header line, then one
row per image: ``id flag image 0 label-or-0`` (flag 1 = defective). kerasdec cross-checks the rows
against the files and refuses a disagreement (a row naming a missing image, a flag contradicting the
label files, an image without a row). Each class is trained and evaluated separately.

Licence: "free for non-commercial research" (DAGM/GNNS competition terms,
https://hci.iwr.uni-heidelberg.de/content/weakly-supervised-learning-industrial-optical-inspection).
Citation: M. Wieler, T. Hahn, "Weakly Supervised Learning for Industrial Optical Inspection",
DAGM 2007 symposium competition.
"""

from __future__ import annotations

import logging
from pathlib import Path

from kerasdec.data.listing import is_file
from kerasdec.data.samples import Sample
from kerasdec.echo import SHOWN_CHARS, shown

logger = logging.getLogger(__name__)

CATEGORIES = range(1, 11)  # DAGM classes 1..10
SPLIT_FOLDERS = {"train": "Train", "test": "Test"}
LABEL_SUFFIX = "_label"  # label file = <stem> + LABEL_SUFFIX + ".PNG"


def list_samples(root: Path | str, split: str, category: int) -> list[Sample]:
    """List the samples of ROOT/Class<category>/<Train|Test>.

    Args:
        root: the DAGM folder holding Class1..Class10.
        split: "train" or "test".
        category: the DAGM class 1..10.

    Returns:
        Samples named "Class<N>/<Train|Test>/<stem>", sorted by stem; positives carry their label PNG.

    Raises:
        FileNotFoundError: root or the class/split folder is missing.
        ValueError: bad split or category, no images, a label PNG without its image, Labels.txt
            disagreeing with the files.
    """
    if split not in SPLIT_FOLDERS:
        raise ValueError(f"split={split!r}; expected 'train' or 'test' (DAGM has no 'val')")
    if category not in CATEGORIES:
        raise ValueError(f"category={category}; expected 1..10")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} does not exist; expected the DAGM folder with "
                                "Class1..Class10")
    split_dir = root / f"Class{category}" / SPLIT_FOLDERS[split]
    if not split_dir.is_dir():
        raise FileNotFoundError(f"split folder {split_dir} does not exist; expected {split_dir}/0001.PNG")
    images = {p.stem: p for p in sorted(split_dir.iterdir()) if _is_png(p) and is_file(p)}
    if not images:
        raise ValueError(f"Found 0 images under {root}; expected {split_dir}/0001.PNG")
    labels = _label_files(split_dir / "Label", images)
    table = split_dir / "Label" / "Labels.txt"
    if table.is_file():
        check_labels_table(table, images, labels)
    else:
        logger.warning("%s is missing; positives are the images with a label PNG", table)
    prefix = f"Class{category}/{SPLIT_FOLDERS[split]}"
    samples = [Sample(name=f"{prefix}/{stem}", image_path=path, is_positive=stem in labels,
                      mask_path=labels.get(stem)) for stem, path in images.items()]
    logger.info("DAGM %s: %d images (%d defective)", prefix, len(samples), len(labels))
    return samples


def _is_png(path: Path) -> bool:
    return path.suffix.lower() == ".png"


def _label_files(label_dir: Path, images: dict[str, Path]) -> dict[str, Path]:
    """Map image stem → its label PNG; a label PNG without an image is a ValueError."""
    if not label_dir.is_dir():
        return {}
    labels = {}
    for path in sorted(label_dir.iterdir()):
        if not (_is_png(path) and path.stem.lower().endswith(LABEL_SUFFIX) and is_file(path)):
            continue
        stem = path.stem[:-len(LABEL_SUFFIX)]
        if stem not in images:
            raise ValueError(f"mask {path} has no image; expected {label_dir.parent / stem}.PNG")
        labels[stem] = path
    return labels


def check_labels_table(table: Path, images: dict[str, Path], labels: dict[str, Path]) -> None:
    """Cross-check Labels.txt rows against the image and label files.

    Raises:
        ValueError: naming the row of ``table`` and the file it disagrees with.
    """
    by_name = {path.name.lower(): stem for stem, path in images.items()}
    listed = set()
    lines = table.read_text(encoding="utf-8", errors="replace").splitlines()
    for number, line in enumerate(lines[1:], start=2):  # line 1 is the header
        fields = line.split()
        if not fields:
            continue
        where = f"{table} line {number} ({shown(line.strip())})"
        if len(fields) < 5 or fields[1] not in ("0", "1"):
            raise ValueError(f"{where} is malformed; expected 'id flag image 0 label-or-0' with flag 0 or 1")
        stem = by_name.get(fields[2].lower())
        if stem is None:
            raise ValueError(f"{where} names image {table.parent.parent / _name(fields[2])}, which does "
                             "not exist")
        listed.add(stem)
        _check_row(where, fields, labels.get(stem), table.parent / f"{stem}{LABEL_SUFFIX}.PNG")
    unlisted = sorted(set(images) - listed)
    if unlisted:
        raise ValueError(f"{table} has no row for image {images[unlisted[0]]} ({len(unlisted)} "
                         "unlisted); expected one row per image")


def _check_row(where: str, fields: list[str], label: Path | None, expected: Path) -> None:
    if fields[1] == "1" and label is None:
        raise ValueError(f"{where} marks the image defective but its label {expected} does not exist")
    if fields[1] == "0" and label is not None:
        raise ValueError(f"{where} marks the image defect-free but the label {label} exists")
    if label is not None and fields[4].lower() != label.name.lower():
        raise ValueError(f"{where} names label {shown(fields[4])} but the file is {label}")


def _name(field: str) -> str:
    """A file name from Labels.txt as it is, or quoted cut when it is too long to be one."""
    return field if len(field) <= SHOWN_CHARS else shown(field)
