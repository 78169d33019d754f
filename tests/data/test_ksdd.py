"""KolektorSDD indexing: folds by kos folder, positivity from labels, split files, bad input."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from kerasdec.config import DataConfig
from kerasdec.data import ksdd
from kerasdec.data.sources import load_split


def _names(samples):
    return {s.name for s in samples}


def _folders(samples):
    return {s.name.split("/")[0] for s in samples}


def test_fifty_folders_give_33_33_34_train_folders_and_test_sets_partition():
    folders = [f"kos{i:02d}" for i in range(1, 51)]
    tests = [ksdd.fold_folders(folders, fold, split_seed=0) for fold in range(3)]
    assert [50 - len(t) for t in tests] == [33, 33, 34]
    assert sorted(sum(tests, [])) == folders  # every folder tested exactly once
    assert ksdd.fold_folders(folders, 1, split_seed=0) == tests[1]  # deterministic
    assert ksdd.fold_folders(folders, 0, split_seed=1) != tests[0]  # the seed matters


def test_folds_on_disk_are_disjoint_and_cover_every_image(ksdd_data):
    all_names = ksdd_data.all_names()
    test_folders = []
    for fold in range(3):
        train = ksdd.list_samples(ksdd_data.root, "train", fold=fold)
        test = ksdd.list_samples(ksdd_data.root, "test", fold=fold)
        assert not _folders(train) & _folders(test)
        assert _names(train) | _names(test) == all_names
        assert len(train) + len(test) == 18
        assert len(_folders(test)) == 2 and len(_folders(train)) == 4
        test_folders += sorted(_folders(test))
    assert sorted(test_folders) == ksdd_data.folders


def test_positivity_and_masks_come_from_the_label_bitmaps(ksdd_data):
    samples = ksdd.list_samples(ksdd_data.root, "train", fold=0) + ksdd.list_samples(
        ksdd_data.root, "test", fold=0)
    assert {s.name for s in samples if s.is_positive} == ksdd_data.positives
    assert all(s.is_segmented for s in samples)
    part = next(s for s in samples if s.name == "kos01/Part0")
    assert part.image_path == ksdd_data.root / "kos01" / "Part0.jpg"
    assert part.mask_path == ksdd_data.root / "kos01" / "Part0_label.bmp"
    names = [s.name for s in samples if s.name.startswith("kos01/")]
    assert names == ["kos01/Part0", "kos01/Part1", "kos01/Part2"]


def test_load_split_uses_fold_and_maps_val_to_test(ksdd_root):
    cfg = DataConfig(dataset="ksdd", root=str(ksdd_root), fold=2)
    expected = ksdd.list_samples(ksdd_root, "test", fold=2, split_seed=5)
    assert load_split(cfg, "test", seed=5) == expected
    assert load_split(cfg, "val", seed=5) == expected
    default_fold = DataConfig(dataset="ksdd", root=str(ksdd_root))  # fold None = 0
    assert load_split(default_fold, "train", seed=5) == ksdd.list_samples(ksdd_root, "train", 0, 5)


def test_positives_and_segmented_count_folders_on_train_only(ksdd_data):
    cfg = DataConfig(dataset="ksdd", root=str(ksdd_data.root), fold=0)
    full = load_split(cfg, "train", seed=0)
    kept = load_split(replace(cfg, positives=2, segmented=1), "train", seed=0)
    assert len(_folders(kept)) == 2 and _folders(kept) <= _folders(full)  # 2 of the training folders
    assert {s.name for s in kept} == {s.name for s in full if s.name.split("/")[0] in _folders(kept)}
    assert len({s.name.split("/")[0] for s in kept if s.is_positive and s.is_segmented}) == 1
    one = load_split(replace(cfg, positives=1), "train", seed=0)
    assert _folders(one) <= _folders(kept)  # nested draws for one seed
    test = load_split(replace(cfg, positives=1), "test", seed=0)
    assert test == load_split(cfg, "test", seed=0)


def test_bad_input_errors(ksdd_data, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data root .*missing does not exist"):
        ksdd.list_samples(tmp_path / "missing", "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"Found 0 images under .*empty; expected .*kos01/Part0.jpg"):
        ksdd.list_samples(tmp_path / "empty", "train")
    with pytest.raises(ValueError, match=r"fold=3; expected 0..2"):
        ksdd.list_samples(ksdd_data.root, "train", fold=3)
    with pytest.raises(ValueError, match=r"split='val'; expected 'train' or 'test'"):
        ksdd.list_samples(ksdd_data.root, "val")
    cfg = DataConfig(dataset="ksdd", root=str(ksdd_data.root), positives=99)
    with pytest.raises(ValueError, match=r"positives=99 kos folders but only \d+ training folders"):
        load_split(cfg, "train", seed=0)
    cfg = DataConfig(dataset="ksdd", root=str(ksdd_data.root), positives=1, segmented=2)
    with pytest.raises(ValueError, match=r"segmented=2 is larger than positives=1"):
        load_split(cfg, "train", seed=0)


def test_missing_or_unreadable_label(ksdd_data):
    label = ksdd_data.root / "kos02" / "Part1_label.bmp"
    label.write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"kos02/Part1_label.bmp is not a readable image"):
        ksdd.folder_samples(ksdd_data.root / "kos02")
    label.unlink()
    with pytest.raises(FileNotFoundError, match=r"label .*kos02/Part1_label.bmp does not exist"):
        ksdd.folder_samples(ksdd_data.root / "kos02")


def test_fewer_folders_than_folds():
    with pytest.raises(ValueError, match=r"found 2 kos folders .*expected at least 3"):
        ksdd.fold_folders(["kos01", "kos02"], 0)


def test_fake_layout_the_other_tests_rely_on(ksdd_data):
    assert ksdd_data.positives == {"kos01/Part0", "kos03/Part2", "kos04/Part1", "kos05/Part0"}
    assert all(np.any(ksdd_data.masks[name]) for name in ksdd_data.positives)
