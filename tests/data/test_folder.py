"""Own-data folder layout: counts, mixed supervision from missing masks, bad input."""

from __future__ import annotations

import shutil

import pytest

from kerasdec.config import DataConfig
from kerasdec.data import folder
from kerasdec.data.sources import load_split


def test_counts_labels_and_segmented_flags(folder_data):
    for split, (n_ok, n_defect, n_masked) in {"train": (5, 4, 3), "test": (3, 2, 2)}.items():
        samples = folder.list_samples(folder_data.root, split)
        assert {s.name for s in samples} == set(folder_data.names[split])
        assert len(samples) == n_ok + n_defect
        assert sum(s.is_positive for s in samples) == n_defect
        assert sum(s.is_positive and s.is_segmented for s in samples) == n_masked
        for s in samples:
            assert s.image_path == folder_data.paths[s.name]
            assert s.is_positive == (s.name in folder_data.positives)
            assert (s.mask_path is not None) == (s.name in folder_data.masks)
            assert s.is_segmented == (s.name not in folder_data.unsegmented)


def test_load_split_segmented_counts_only_masked_positives(folder_root):
    cfg = DataConfig(dataset="folder", root=str(folder_root), segmented=2)
    train = load_split(cfg, "train", seed=0)
    assert sum(s.is_positive and s.is_segmented for s in train) == 2
    assert sum(s.is_positive for s in train) == 4
    with pytest.raises(ValueError, match=r"segmented=4 but only 3 of the 4 kept positive training images "
                                         r"have pixel labels"):
        load_split(DataConfig(dataset="folder", root=str(folder_root), segmented=4), "train", seed=0)
    assert load_split(cfg, "val", seed=0) == folder.list_samples(folder_root, "test")


def test_mask_of_an_ok_image(folder_root):
    masks = folder_root / "train" / "masks"
    shutil.copy(masks / "bad000.png", masks / "good001.png")
    with pytest.raises(ValueError, match=r"mask .*masks/good001.png belongs to the ok image .*/good001.png"):
        folder.list_samples(folder_root, "train")


def test_mask_without_image(folder_root):
    (folder_root / "test" / "defect" / "bad001.png").unlink()
    with pytest.raises(ValueError, match=r"mask .*test/masks/bad001.png has no image; expected .*/bad001"):
        folder.list_samples(folder_root, "test")


def test_duplicate_names(folder_root):
    train = folder_root / "train"
    shutil.copy(train / "ok" / "good000.png", train / "defect" / "good000.png")
    with pytest.raises(ValueError, match=r"share the name 'good000'"):
        folder.list_samples(folder_root, "train")
    shutil.copy(folder_root / "test" / "ok" / "good000.png", folder_root / "test" / "ok" / "good000.jpg")
    with pytest.raises(ValueError, match=r"share the name 'good000'"):
        folder.list_samples(folder_root, "test")


def test_missing_root_split_and_zero_images(folder_root, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data root .*gone does not exist"):
        folder.list_samples(tmp_path / "gone", "train")
    shutil.rmtree(folder_root / "test")
    with pytest.raises(FileNotFoundError, match=r"split folder .*folder/test does not exist"):
        folder.list_samples(folder_root, "test")
    (folder_root / "test" / "ok").mkdir(parents=True)
    (folder_root / "test" / "ok" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=r"Found 0 images under .*folder; expected .*test/ok/<name>.png"):
        load_split(DataConfig(dataset="folder", root=str(folder_root)), "test", seed=0)
