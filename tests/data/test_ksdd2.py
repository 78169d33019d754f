"""KolektorSDD2 indexing: train/test counts, positivity from *_GT.png, supervision options, bad input."""

from __future__ import annotations

import pytest

from kerasdec.config import DataConfig
from kerasdec.data import ksdd2
from kerasdec.data.sources import load_split


def test_counts_names_and_positivity_per_split(ksdd2_data):
    for split, (n_pos, n_neg) in {"train": (3, 5), "test": (2, 3)}.items():
        samples = ksdd2.list_samples(ksdd2_data.root, split)
        assert [s.name for s in samples] == sorted(ksdd2_data.names[split])
        assert sum(s.is_positive for s in samples) == n_pos
        assert sum(not s.is_positive for s in samples) == n_neg
        expected = ksdd2_data.positives & set(ksdd2_data.names[split])
        assert {s.name for s in samples if s.is_positive} == expected
        for s in samples:
            assert s.image_path == ksdd2_data.paths[s.name]
            assert s.mask_path == s.image_path.with_name(s.image_path.stem + "_GT.png")


def test_positives_and_segmented_on_train_test_keeps_everything(ksdd2_root):
    cfg = DataConfig(dataset="ksdd2", root=str(ksdd2_root), channels=3, positives=2, segmented=0)
    train = load_split(cfg, "train", seed=3)
    assert sum(s.is_positive for s in train) == 2
    assert not any(s.is_positive and s.is_segmented for s in train)
    assert sum(not s.is_positive for s in train) == 5
    assert all(s.is_segmented for s in train if not s.is_positive)
    assert load_split(cfg, "test", seed=3) == ksdd2.list_samples(ksdd2_root, "test")
    assert load_split(cfg, "val", seed=3) == ksdd2.list_samples(ksdd2_root, "test")


def test_bad_input_errors(ksdd2_data, tmp_path):
    root = ksdd2_data.root
    with pytest.raises(FileNotFoundError, match=r"data root .*nowhere does not exist"):
        ksdd2.list_samples(tmp_path / "nowhere", "train")
    (root / "test").rename(root / "elsewhere")
    with pytest.raises(FileNotFoundError, match=r"split folder .*KSDD2/test does not exist"):
        ksdd2.list_samples(root, "test")
    (root / "test").mkdir()
    with pytest.raises(ValueError, match=r"Found 0 images under .*KSDD2; expected .*test/<id>.png"):
        ksdd2.list_samples(root, "test")
    with pytest.raises(ValueError, match=r"positives=4 but only 3 positive training images"):
        load_split(DataConfig(dataset="ksdd2", root=str(root), positives=4), "train", seed=0)


def test_missing_mask_and_mask_without_image(ksdd2_data):
    image = ksdd2_data.paths[ksdd2_data.names["train"][0]]
    gt = image.with_name(image.stem + "_GT.png")
    image.unlink()
    with pytest.raises(ValueError, match=rf"mask .*{gt.name} has no image; expected .*{image.name}"):
        ksdd2.list_samples(ksdd2_data.root, "train")
    gt.unlink()
    other = ksdd2_data.paths[ksdd2_data.names["train"][1]]
    other.with_name(other.stem + "_GT.png").unlink()
    with pytest.raises(FileNotFoundError, match=rf"label .*{other.stem}_GT.png does not exist"):
        ksdd2.list_samples(ksdd2_data.root, "train")
