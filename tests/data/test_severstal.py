"""Severstal: RLE decoding against an independent encoder, seeded stratified split, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import rect_mask, rle_encode

from kerasdec.config import DataConfig
from kerasdec.data import severstal
from kerasdec.data.severstal import rle_decode
from kerasdec.data.sources import load_split


def test_rle_decode_hand_computed():
    # 3 rows × 2 columns; column-major 1-based numbering: (0,0)=1 (1,0)=2 (2,0)=3 (0,1)=4 (1,1)=5 (2,1)=6
    mask = rle_decode("2 2 6 1", (3, 2))
    assert mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, [[0, 0], [1, 0], [1, 1]])
    np.testing.assert_array_equal(rle_decode("3 2", (3, 2)), [[0, 1], [0, 0], [1, 0]])  # pixels 3, 4 wrap
    np.testing.assert_array_equal(rle_decode("", (2, 3)), np.zeros((2, 3)))
    np.testing.assert_array_equal(rle_decode("1 6", (2, 3)), np.ones((2, 3)))  # up to the last pixel


def test_rle_decode_matches_independent_encoder():
    rng = np.random.default_rng(7)
    for shape in [(4, 7), (32, 64), (5, 1)]:
        for _ in range(5):
            mask = (rng.random(shape) < 0.3).astype(np.uint8)
            np.testing.assert_array_equal(rle_decode(rle_encode(mask), shape), mask)
    mask = rect_mask(rng, (32, 64))
    assert rle_encode(mask) and np.array_equal(rle_decode(rle_encode(mask), (32, 64)), mask)


@pytest.mark.parametrize("rle, match", [
    ("1 2 3", r"odd count of numbers \(3\)"),
    ("5 3", r"run 'start=5 length=3' ends at pixel 7, past the image of 3x2 = 6 pixels"),
    ("0 2", r"expected start >= 1 \(1-based\)"),
    ("2 0", r"expected start >= 1 \(1-based\) and length >= 1"),
    ("1 a", r"non-integer token"),
])
def test_rle_decode_errors(rle, match):
    with pytest.raises(ValueError, match=match):
        rle_decode(rle, (3, 2))


def test_split_is_disjoint_complete_stratified_and_seeded(severstal_data):
    root = severstal_data.root
    parts = {split: severstal.list_samples(root, split, seed=0) for split in ("train", "val", "test")}
    names = {split: [s.name for s in samples] for split, samples in parts.items()}
    assert sum(len(v) for v in names.values()) == 12
    assert set(sum(names.values(), [])) == severstal_data.all_names()
    # 6 negatives: per class test round(6·1200/5902) = 1, val max(1, round(0.57)) = 1, train 4.
    for split, n in {"train": 4, "val": 1, "test": 1}.items():
        assert sum(s.is_positive for s in parts[split]) == n
        assert sum(not s.is_positive for s in parts[split]) == n
    again = severstal.list_samples(root, "test", seed=0)
    assert again == parts["test"]
    others = [[s.name for s in severstal.list_samples(root, "train", seed=k)] for k in range(1, 5)]
    assert any(o != names["train"] for o in others)
    assert severstal.split_sizes(5902) == (1200, 559)  # the published 2,400 test and 1,118 validation


def test_samples_carry_all_rows_and_decode_to_the_union(severstal_data):
    root = severstal_data.root
    samples = sum((severstal.list_samples(root, s, seed=1) for s in ("train", "val", "test")), [])
    assert {s.name for s in samples if s.is_positive} == severstal_data.positives
    assert any(len(s.rle) == 2 for s in samples)
    for s in samples:
        assert s.image_path == severstal_data.paths[s.name]
        if not s.is_positive:
            assert s.rle == () and s.mask_path is None
            continue
        assert list(s.rle) == severstal_data.rles[s.name]
        union = np.maximum.reduce([rle_decode(r, severstal_data.image_shape) for r in s.rle])
        np.testing.assert_array_equal(union, severstal_data.masks[s.name])


def test_old_csv_format_with_empty_encodings(severstal_data):
    csv_path = severstal_data.root / "train.csv"
    lines = ["ImageId_ClassId,EncodedPixels"]
    for name in sorted(severstal_data.all_names()):
        rles = severstal_data.rles.get(name, [])
        lines += [f"{name}_{c},{rles[c - 1] if c <= len(rles) else ''}" for c in range(1, 5)]
    csv_path.write_text("\n".join(lines) + "\n")
    assert severstal.read_csv(csv_path) == severstal_data.rles


def test_load_split_has_its_own_validation_split_and_limits_train(severstal_root):
    cfg = DataConfig(dataset="severstal", root=str(severstal_root), positives=2, segmented=1)
    assert load_split(cfg, "val", seed=0) == severstal.list_samples(severstal_root, "val", seed=0)
    train = load_split(cfg, "train", seed=0)
    assert sum(s.is_positive for s in train) == 2
    assert sum(s.is_positive and s.is_segmented for s in train) == 1
    assert sum(not s.is_positive for s in train) == 4


def test_bad_input_errors(severstal_data, tmp_path):
    root = severstal_data.root
    with pytest.raises(FileNotFoundError, match=r".*nothing does not exist; expected the Severstal layout"):
        severstal.list_samples(tmp_path / "nothing", "train")
    victim = sorted(severstal_data.positives)[0]
    (root / "train_images" / victim).unlink()
    with pytest.raises(ValueError, match=rf"train.csv lists 1 image\(s\) missing from .*train_images, "
                                         rf"e.g. '{victim}'"):
        severstal.list_samples(root, "train")
    (root / "train.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"train.csv has header \['a', 'b'\]; expected ImageId,ClassId"):
        severstal.list_samples(root, "train")
    for path in (root / "train_images").iterdir():
        path.unlink()
    with pytest.raises(ValueError, match=r"Found 0 images under .*severstal; expected .*train_images/"):
        severstal.list_samples(root, "train")
    (root / "train.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"train.csv does not exist"):
        severstal.list_samples(root, "train")


@pytest.mark.parametrize("bad", ["3 999999", "1 x"])
def test_a_bad_encoding_names_the_csv_line_and_the_image(severstal_data, bad):
    from kerasdec.data.decode import read_mask

    csv_path = severstal_data.root / "train.csv"
    lines = csv_path.read_text(encoding="utf-8").splitlines()
    image_id, class_id, _ = lines[3].split(",")  # file line 4
    lines[3] = f"{image_id},{class_id},{bad}"
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    sample = next(s for split in ("train", "val", "test")
                  for s in severstal.list_samples(severstal_data.root, split) if s.name == image_id)
    with pytest.raises(ValueError, match=rf"train\.csv line 4 \(ImageId {image_id}\): RLE"):
        read_mask(sample, severstal_data.image_shape)
