"""Synthetic default dataset: seeded, cached atomically, folder layout, learnable coarse-labelled defects."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
from fakes import write_synthetic

from kerasdec.data import folder, synthetic
from kerasdec.data.synthetic_render import (
    DEFECTS,
    INK_THRESHOLD,
    TEXTURES,
    draw_defect,
    render_sample,
    render_surface,
)

SMALL = dict(size=(32, 48), train_defect=3, train_ok=2, test_defect=2, test_ok=2)


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    a = synthetic.ensure_dataset(tmp_path / "a", seed=4, **SMALL)
    b = synthetic.ensure_dataset(tmp_path / "b", seed=4, **SMALL)
    c = synthetic.ensure_dataset(tmp_path / "c", seed=5, **SMALL)
    files_a, files_c = _files(a), _files(c)
    assert files_a == _files(b)
    assert files_a.keys() == files_c.keys()
    images = [k for k in files_a if k.endswith(".png")]
    assert len(images) == 3 + 2 + 2 + 2 + 3 + 2  # images + masks
    assert all(files_a[k] != files_c[k] for k in images if "/masks/" not in k)


def test_layout_is_read_by_folder(synthetic_root):
    for split, (n_defect, n_ok) in {"train": (4, 6), "test": (3, 3)}.items():
        samples = folder.list_samples(synthetic_root, split)
        assert sum(s.is_positive for s in samples) == n_defect
        assert sum(not s.is_positive for s in samples) == n_ok
        assert all(s.is_segmented for s in samples)
        for s in samples:
            image = cv2.imread(str(s.image_path), cv2.IMREAD_UNCHANGED)
            assert image.shape == (64, 64) and image.dtype == np.uint8
            if s.is_positive:
                mask = cv2.imread(str(s.mask_path), cv2.IMREAD_UNCHANGED)
                assert mask.shape == (64, 64) and set(np.unique(mask)) == {0, 255}
            else:
                assert s.mask_path is None


def test_complete_dataset_is_reused(tmp_path, monkeypatch):
    root = synthetic.ensure_dataset(tmp_path / "d", seed=0, **SMALL)
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}

    def fail(*args, **kwargs):
        raise AssertionError("regenerated a complete dataset")

    monkeypatch.setattr(synthetic, "write_dataset", fail)
    assert synthetic.ensure_dataset(tmp_path / "d", seed=0, **SMALL) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before


def test_interrupted_generation_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    calls = []

    def flaky(rng, size, defective):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return render_sample(rng, size, defective)

    monkeypatch.setattr(synthetic, "render_sample", flaky)
    with pytest.raises(KeyboardInterrupt):
        synthetic.ensure_dataset(tmp_path / "e", seed=0, **SMALL)
    assert list(tmp_path.iterdir()) == []  # neither the target nor a temporary folder remains
    monkeypatch.undo()
    root = synthetic.ensure_dataset(tmp_path / "e", seed=0, **SMALL)
    assert (root / synthetic.MARKER).is_file() and [p.name for p in tmp_path.iterdir()] == ["e"]


def test_foreign_folder_and_bad_parameters_are_refused(tmp_path):
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "x.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"f exists but holds no complete synthetic dataset \(dataset.json"):
        synthetic.ensure_dataset(tmp_path / "f", seed=0, **SMALL)
    with pytest.raises(ValueError, match=r"seed=-1, .*expected seed >= 0"):
        synthetic.ensure_dataset(tmp_path / "g", seed=-1)
    with pytest.raises(ValueError, match=r"size=\(16, 64\).*both sides of size >= 32"):
        synthetic.ensure_dataset(tmp_path / "g", seed=0, size=(16, 64))


def test_default_root_reads_the_environment_at_call_time(tmp_path, monkeypatch):
    monkeypatch.setenv("KERASDEC_CACHE", str(tmp_path / "cache"))
    expected = f"synthetic-3-96x64-40+120-40+80-v{synthetic.VERSION}"
    assert synthetic.default_root(3, (64, 96)) == tmp_path / "cache" / expected
    monkeypatch.setenv("KERASDEC_CACHE", str(tmp_path / "other"))
    assert synthetic.default_root(3, (64, 96)).parent == tmp_path / "other"
    root = synthetic.ensure_dataset(None, seed=2, **SMALL)
    assert root.parent == tmp_path / "other" and root.name.startswith("synthetic-2-48x32-")


def test_explicit_root_with_other_parameters_is_used_with_a_warning(synthetic_root, caplog):
    with caplog.at_level(logging.WARNING, logger="kerasdec.data.synthetic"):
        assert synthetic.ensure_dataset(synthetic_root, seed=9) == synthetic_root
    assert "not the requested" in caplog.text


def test_defects_are_visible_learnable_and_coarsely_labelled():
    zscores = []
    for i in range(48):
        image, label, defect = render_sample(np.random.default_rng([1, i]), (128, 128), defective=True)
        assert defect.any() and np.all(label[defect] == 255)  # the label covers the defect
        assert (label > 0).sum() > 2 * defect.sum()  # coarse: clearly bigger than the defect
        background = image[label == 0].astype(float)
        zscores.append(abs(image[defect].mean() - background.mean()) / background.std())
    zscores = np.array(zscores)
    assert np.median(zscores) > 1.0  # defect pixels differ from the background ...
    assert np.mean(zscores > 0.5) > 0.85
    assert np.median(zscores) < 5.0  # ... but are not trivially saturated


def test_ok_samples_have_no_label_and_every_family_and_kind_renders():
    image, label, defect = render_sample(np.random.default_rng(0), (64, 80), defective=False)
    assert image.shape == (64, 80) and not label.any() and not defect.any()
    surfaces = []
    for texture in TEXTURES:
        surface = render_surface(np.random.default_rng(0), (64, 64), texture)
        assert surface.dtype == np.float32 and 0.03 < surface.std() < 0.15
        surfaces.append(surface)
    assert all(not np.allclose(a, b) for i, a in enumerate(surfaces) for b in surfaces[i + 1:])
    for kind in DEFECTS:
        ink, polarity, amplitude = draw_defect(np.random.default_rng(0), (64, 64), kind)
        assert ink.min() >= 0 and ink.max() <= 1 and (ink > INK_THRESHOLD).any()
        assert polarity in (-1.0, 1.0) and 0.2 <= amplitude <= 0.36
    with pytest.raises(ValueError, match=r"texture='plaid'; expected one of"):
        render_surface(np.random.default_rng(0), (64, 64), "plaid")


def test_fixture_writer_returns_the_generated_root(tmp_path):
    root = write_synthetic(tmp_path / "h", seed=1, size=(32, 32), train_defect=1, train_ok=1,
                           test_defect=1, test_ok=1)
    assert sorted(p.name for p in (root / "train").iterdir()) == ["defect", "masks", "ok"]
