"""load_split / validation_split dispatch and the positives/segmented selection."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from kerasdec.config import DataConfig
from kerasdec.data import dagm, folder, ksdd, ksdd2, severstal, synthetic
from kerasdec.data.samples import Sample
from kerasdec.data.sources import limit_supervision, load_split, validation_split


def test_validation_split_per_dataset():
    assert validation_split(DataConfig(dataset="severstal", root="x")) == "val"
    for name in ("synthetic", "ksdd", "ksdd2", "folder"):
        assert validation_split(DataConfig(dataset=name, root="x")) == "test"
    assert validation_split(DataConfig(dataset="dagm", root="x", category=3)) == "test"


def test_dispatch_matches_each_source(ksdd_root, ksdd2_root, dagm_root, severstal_root, folder_root,
                                      synthetic_root):
    cases = [
        (DataConfig(dataset="ksdd", root=str(ksdd_root), fold=1), lambda s: ksdd.list_samples(
            ksdd_root, s, fold=1, split_seed=2)),
        (DataConfig(dataset="ksdd2", root=str(ksdd2_root)), lambda s: ksdd2.list_samples(ksdd2_root, s)),
        (DataConfig(dataset="dagm", root=str(dagm_root), category=1),
         lambda s: dagm.list_samples(dagm_root, s, 1)),
        (DataConfig(dataset="folder", root=str(folder_root)), lambda s: folder.list_samples(folder_root, s)),
        (DataConfig(dataset="synthetic", root=str(synthetic_root)),
         lambda s: folder.list_samples(synthetic_root, s)),
    ]
    for cfg, direct in cases:
        for split in ("train", "test"):
            assert load_split(cfg, split, seed=2) == direct(split), (cfg.dataset, split)
        assert load_split(cfg, "val", seed=2) == direct("test")
    cfg = DataConfig(dataset="severstal", root=str(severstal_root))
    for split in ("train", "val", "test"):
        assert load_split(cfg, split, seed=2) == severstal.list_samples(severstal_root, split, seed=2)


def test_synthetic_default_root_is_generated_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERASDEC_CACHE", str(tmp_path))
    cfg = DataConfig(width=64, height=64)  # the default dataset, at a small size
    train = load_split(cfg, "train", seed=6)
    assert len(train) == 160 and sum(s.is_positive for s in train) == 40
    assert len(load_split(cfg, "test", seed=6)) == 120
    assert [p.name for p in tmp_path.iterdir()] == [synthetic.default_root(6, (64, 64)).name]


def test_bad_split_zero_images_and_split_file_for_other_datasets(folder_root, tmp_path):
    cfg = DataConfig(dataset="folder", root=str(folder_root))
    with pytest.raises(ValueError, match=r"split='dev'; expected one of \('train', 'val', 'test'\)"):
        load_split(cfg, "dev", seed=0)
    with pytest.raises(ValueError, match=r"s.json: split files are .*dataset='folder' has none"):
        load_split(replace(cfg, split_file="s.json"), "train", seed=0)
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"Found 0 images under .*empty; expected .*train/ok/"):
        load_split(replace(cfg, root=str(tmp_path / "empty")), "train", seed=0)
    with pytest.raises(FileNotFoundError, match=r"data root .*missing does not exist"):
        load_split(replace(cfg, root=str(tmp_path / "missing")), "train", seed=0)


def _samples(n_pos: int, n_neg: int, unlabelled: int = 0) -> list[Sample]:
    samples = [Sample(f"n{i}", Path(f"n{i}.png"), False) for i in range(n_neg)]
    samples += [Sample(f"p{i}", Path(f"p{i}.png"), True, is_segmented=i >= unlabelled)
                for i in range(n_pos)]
    return samples[::-1]  # an order the selection must keep


def test_limit_supervision_keeps_order_negatives_and_nests():
    samples = _samples(10, 7)
    assert limit_supervision(samples, None, None, seed=0) == samples
    kept = limit_supervision(samples, 6, 3, seed=0)
    assert [s for s in kept if not s.is_positive] == [s for s in samples if not s.is_positive]
    assert [s.name for s in kept] == [s.name for s in samples if s.name in {k.name for k in kept}]
    assert sum(s.is_positive for s in kept) == 6 and sum(s.is_positive and s.is_segmented for s in kept) == 3
    smaller = {s.name for s in limit_supervision(samples, 4, None, seed=0) if s.is_positive}
    assert smaller < {s.name for s in kept if s.is_positive}
    again = limit_supervision(samples, 6, 3, seed=0)
    assert again == kept
    others = [{s.name for s in limit_supervision(samples, 3, None, seed=k)} for k in range(1, 6)]
    assert any(o != {s.name for s in limit_supervision(samples, 3, None, seed=0)} for o in others)


def test_limit_supervision_segmented_only_from_labelled_positives():
    samples = _samples(5, 2, unlabelled=2)  # p0, p1 have no pixel labels
    kept = limit_supervision(samples, None, 3, seed=1)
    assert {s.name for s in kept if s.is_segmented and s.is_positive} == {"p2", "p3", "p4"}
    assert {s.name for s in limit_supervision(samples, None, 0, seed=1) if s.is_segmented} == {"n0", "n1"}
    with pytest.raises(ValueError, match=r"segmented=4 but only 3 of the 5 kept positive training images"):
        limit_supervision(samples, None, 4, seed=1)
    with pytest.raises(ValueError, match=r"positives=6 but only 5 positive training images are available"):
        limit_supervision(samples, 6, None, seed=1)
    with pytest.raises(ValueError, match=r"segmented=3 is larger than positives=2"):
        limit_supervision(samples, 2, 3, seed=1)
