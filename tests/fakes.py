"""Tiny datasets written in each real on-disk layout, and a tiny network, for tests of every part of
kerasdec.

Import as ``from fakes import write_ksdd, ...`` (tests/conftest.py puts tests/ on sys.path). Each
writer returns a ``FakeData`` describing what it wrote, with sample names as the source module names
them, so tests can compare against the indexers and decoders. Images are random noise; masks are
rectangles (value 255 in files, 0/1 in ``FakeData.masks``).
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from kerasdec.config import ModelConfig, RunConfig

# The network size of every test that builds or trains a SegDecNet but does not need the published one
# (15.6 M parameters; the published size stays pinned by tests/models/test_segdec.py and is what the
# deploy tests and the no-flag `kerasdec fit` run use). Same structure at 1/1000 of the parameters
# (12,785 for 1 channel): every stage, pool and head, and a last kernel >= 9, so the row-GEMM convolution
# and its gradient (kerasdec/models/rowconv.py) run in training as they do in the published network.
TINY_MODEL = ModelConfig(seg_filters=(8, 8, 8, 16), seg_blocks=(1, 1, 1, 1), seg_kernels=(3, 3, 3, 9),
                         decision_filters=(4, 4, 8), decision_kernels=(3, 3, 3))


def tiny_segdec(**kwargs: object):
    """A SegDecNet of the size TINY_MODEL; ``kwargs``: its other arguments (input_channels, ...)."""
    from kerasdec.models.segdec import SegDecNet

    return SegDecNet(**dataclasses.asdict(TINY_MODEL), **kwargs)


def with_tiny_model(build: Callable[..., RunConfig]) -> Callable[..., RunConfig]:
    """``build`` (kerasdec.cli.build_fit_config, experiments' protocol.build) giving TINY_MODEL as the
    network's size: how a test runs `kerasdec fit` or a protocol script on the tiny network (neither has
    a flag for it; config.json records it, so a --resume of that run builds the tiny network again)."""
    return lambda *args, **kwargs: dataclasses.replace(build(*args, **kwargs), model=TINY_MODEL)


@dataclass
class FakeData:
    """What a writer put on disk."""

    root: Path
    image_shape: tuple[int, int]  # (height, width) of every image
    names: dict[str, list[str]]  # sample names per on-disk split ("all" when the split is computed)
    positives: set[str]  # names of the defective images
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (h, w) uint8 0/1, as written
    unsegmented: set[str] = field(default_factory=set)  # defective images written without a mask
    folders: list[str] = field(default_factory=list)  # KSDD: the kos folders
    rles: dict[str, list[str]] = field(default_factory=dict)  # Severstal: ImageId -> its CSV encodings
    paths: dict[str, Path] = field(default_factory=dict)  # name -> image file

    def all_names(self) -> set[str]:
        return {name for names in self.names.values() for name in names}

    @property
    def negatives(self) -> set[str]:
        return self.all_names() - self.positives


def rle_encode(mask: np.ndarray) -> str:
    """Severstal RLE straight from the definition: 1-based pixel numbers, column-major, "start length"."""
    height, width = mask.shape
    runs: list[int] = []
    start = None
    number = 0
    for col in range(width):
        for row in range(height):
            number += 1  # 1-based number of pixel (row, col), counting down each column
            if mask[row, col] and start is None:
                start = number
            elif not mask[row, col] and start is not None:
                runs += [start, number - start]
                start = None
    if start is not None:
        runs += [start, number + 1 - start]
    return " ".join(str(v) for v in runs)


def rect_mask(rng: np.random.Generator, shape: tuple[int, int], min_side: int = 3) -> np.ndarray:
    """A random filled rectangle as a uint8 0/1 mask."""
    h, w = shape
    y0, x0 = int(rng.integers(0, h - min_side)), int(rng.integers(0, w - min_side))
    y1, x1 = int(rng.integers(y0 + min_side, h + 1)), int(rng.integers(x0 + min_side, w + 1))
    mask = np.zeros(shape, np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


def noise_image(rng: np.random.Generator, shape: tuple[int, int], channels: int = 1) -> np.ndarray:
    size = shape if channels == 1 else (*shape, channels)
    return rng.integers(0, 256, size, dtype=np.uint8)


def imwrite(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image), path
    return path


def write_ksdd(root: Path, n_folders: int = 6, parts: int = 3, shape: tuple[int, int] = (64, 32),
               seed: int = 0) -> FakeData:
    """KolektorSDD: ROOT/kosNN/PartK.jpg + PartK_label.bmp; PartK of folder i is defective when
    (i + K) % 4 == 0 (6 folders × 3 parts: kos01/Part0, kos03/Part2, kos04/Part1, kos05/Part0)."""
    rng = np.random.default_rng(seed)
    data = FakeData(root=Path(root), image_shape=shape, names={"all": []}, positives=set())
    for i in range(n_folders):
        folder = f"kos{i + 1:02d}"
        data.folders.append(folder)
        for k in range(parts):
            name = f"{folder}/Part{k}"
            data.paths[name] = imwrite(data.root / folder / f"Part{k}.jpg", noise_image(rng, shape))
            mask = rect_mask(rng, shape) if (i + k) % 4 == 0 else np.zeros(shape, np.uint8)
            imwrite(data.root / folder / f"Part{k}_label.bmp", mask * 255)
            data.names["all"].append(name)
            if mask.any():
                data.positives.add(name)
                data.masks[name] = mask
    return data


def write_ksdd2(root: Path, counts: dict[str, tuple[int, int]] | None = None,
                shape: tuple[int, int] = (64, 32), seed: int = 0) -> FakeData:
    """KolektorSDD2: ROOT/{train,test}/<id>.png (colour) + <id>_GT.png; counts = split -> (pos, neg)."""
    counts = counts or {"train": (3, 5), "test": (2, 3)}
    rng = np.random.default_rng(seed)
    data = FakeData(root=Path(root), image_shape=shape, names={}, positives=set())
    next_id = 10000
    for split, (n_pos, n_neg) in counts.items():
        data.names[split] = []
        for positive in rng.permutation([True] * n_pos + [False] * n_neg):
            name, stem = f"{split}/{next_id}", str(next_id)
            next_id += 1
            mask = rect_mask(rng, shape) if positive else np.zeros(shape, np.uint8)
            data.paths[name] = imwrite(data.root / split / f"{stem}.png", noise_image(rng, shape, 3))
            imwrite(data.root / split / f"{stem}_GT.png", mask * 255)
            data.names[split].append(name)
            if positive:
                data.positives.add(name)
                data.masks[name] = mask
    return data


def write_dagm(root: Path, category: int = 1, counts: dict[str, tuple[int, int]] | None = None,
               shape: tuple[int, int] = (64, 64), seed: int = 0) -> FakeData:
    """DAGM: ROOT/ClassN/{Train,Test}/XXXX.PNG, Label/XXXX_label.PNG and Label/Labels.txt."""
    counts = counts or {"Train": (3, 5), "Test": (2, 3)}
    rng = np.random.default_rng(seed)
    data = FakeData(root=Path(root), image_shape=shape, names={}, positives=set())
    for split, (n_pos, n_neg) in counts.items():
        split_dir = data.root / f"Class{category}" / split
        rows = ["1"]  # header line, as in the real files
        data.names[split] = []
        for i, positive in enumerate(rng.permutation([True] * n_pos + [False] * n_neg), start=1):
            stem, name = f"{i:04d}", f"Class{category}/{split}/{i:04d}"
            data.paths[name] = imwrite(split_dir / f"{stem}.PNG", noise_image(rng, shape))
            data.names[split].append(name)
            label = "0"
            if positive:
                mask = rect_mask(rng, shape)
                label = imwrite(split_dir / "Label" / f"{stem}_label.PNG", mask * 255).name
                data.positives.add(name)
                data.masks[name] = mask
            rows.append(f"{i}\t{int(positive)}\t{stem}.PNG\t0\t{label}")
        (split_dir / "Label").mkdir(parents=True, exist_ok=True)
        (split_dir / "Label" / "Labels.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return data


def write_severstal(root: Path, n_pos: int = 6, n_neg: int = 6, shape: tuple[int, int] = (32, 64),
                    seed: int = 0) -> FakeData:
    """Severstal: ROOT/train.csv (RLE from ``rle_encode``) + ROOT/train_images/<ImageId>.jpg.

    Every second positive has two class rows (the known mask is their union).
    """
    rng = np.random.default_rng(seed)
    data = FakeData(root=Path(root), image_shape=shape, names={"all": []}, positives=set())
    rows = []
    for i, positive in enumerate(rng.permutation([True] * n_pos + [False] * n_neg)):
        name = f"{i:08x}.jpg"
        data.paths[name] = imwrite(data.root / "train_images" / name, noise_image(rng, shape))
        data.names["all"].append(name)
        if not positive:
            continue
        parts = [rect_mask(rng, shape) for _ in range(1 + len(data.positives) % 2)]
        data.positives.add(name)
        data.masks[name] = np.maximum.reduce(parts)
        data.rles[name] = [rle_encode(part) for part in parts]
        rows += [(name, class_id, rle) for class_id, rle in enumerate(data.rles[name], start=1)]
    with open(data.root / "train.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["ImageId", "ClassId", "EncodedPixels"])
        writer.writerows(rows)
    return data


def write_folder(root: Path, counts: dict[str, tuple[int, int, int]] | None = None,
                 shape: tuple[int, int] = (64, 64), seed: int = 0) -> FakeData:
    """Own-data layout ROOT/{train,test}/{ok,defect}/ + masks/; counts = split -> (ok, defect,
    defect with mask); defects without masks are image-label only."""
    counts = counts or {"train": (5, 4, 3), "test": (3, 2, 2)}
    rng = np.random.default_rng(seed)
    data = FakeData(root=Path(root), image_shape=shape, names={}, positives=set())
    for split, (n_ok, n_defect, n_masked) in counts.items():
        data.names[split] = []
        for i in range(n_ok):
            name = f"{split}/ok/good{i:03d}"
            data.paths[name] = imwrite(data.root / split / "ok" / f"good{i:03d}.png", noise_image(rng, shape))
            data.names[split].append(name)
        for i in range(n_defect):
            stem = f"bad{i:03d}"
            name = f"{split}/defect/{stem}"
            data.paths[name] = imwrite(data.root / split / "defect" / f"{stem}.png", noise_image(rng, shape))
            data.names[split].append(name)
            data.positives.add(name)
            if i < n_masked:
                data.masks[name] = rect_mask(rng, shape)
                imwrite(data.root / split / "masks" / f"{stem}.png", data.masks[name] * 255)
            else:
                data.unsegmented.add(name)
    return data


def write_synthetic(root: Path, seed: int = 0, size: tuple[int, int] = (64, 64), train_defect: int = 4,
                    train_ok: int = 6, test_defect: int = 3, test_ok: int = 3) -> Path:
    """A small synthetic dataset (folder layout) generated by kerasdec.data.synthetic into ``root``."""
    from kerasdec.data import synthetic

    return synthetic.ensure_dataset(root, seed=seed, size=size, train_defect=train_defect,
                                    train_ok=train_ok, test_defect=test_defect, test_ok=test_ok)
