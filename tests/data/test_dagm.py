"""DAGM indexing: Train/Test counts, positives = images with a label PNG, Labels.txt cross-check."""

from __future__ import annotations

import shutil

import pytest

from kerasdec.config import DataConfig
from kerasdec.data import dagm
from kerasdec.data.sources import load_split


def _label_dir(data, split="Train"):
    return data.root / "Class1" / split / "Label"


def test_counts_names_positives_and_masks(dagm_data):
    for split, folder, (n_pos, n_neg) in (("train", "Train", (3, 5)), ("test", "Test", (2, 3))):
        samples = dagm.list_samples(dagm_data.root, split, category=1)
        assert [s.name for s in samples] == dagm_data.names[folder]
        assert sum(s.is_positive for s in samples) == n_pos
        assert sum(not s.is_positive for s in samples) == n_neg
        for s in samples:
            assert s.image_path == dagm_data.paths[s.name]
            assert s.is_positive == (s.name in dagm_data.positives)
            stem = s.name.rsplit("/", 1)[1]
            expected = _label_dir(dagm_data, folder) / f"{stem}_label.PNG" if s.is_positive else None
            assert s.mask_path == expected


def test_load_split_dispatches_on_category_and_validates_on_test(dagm_root):
    cfg = DataConfig(dataset="dagm", root=str(dagm_root), category=1)
    assert load_split(cfg, "val", seed=0) == dagm.list_samples(dagm_root, "test", 1)
    assert load_split(cfg, "train", seed=0) == dagm.list_samples(dagm_root, "train", 1)


@pytest.mark.parametrize("category", [0, 11])
def test_category_out_of_range(dagm_root, category):
    with pytest.raises(ValueError, match=rf"category={category}; expected 1..10"):
        dagm.list_samples(dagm_root, "train", category=category)


def test_missing_root_class_and_zero_images(dagm_root, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data root .*absent does not exist"):
        dagm.list_samples(tmp_path / "absent", "train", category=1)
    with pytest.raises(FileNotFoundError, match=r"split folder .*Class2/Train does not exist"):
        dagm.list_samples(dagm_root, "train", category=2)
    (dagm_root / "Class3" / "Test").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"Found 0 images under .*DAGM; expected .*Class3/Test/0001.PNG"):
        dagm.list_samples(dagm_root, "test", category=3)


def _first(data, positive, split="Train"):
    return next(n for n in data.names[split] if (n in data.positives) == positive).rsplit("/", 1)[1]


def test_flag_one_without_label_file_names_row_and_file(dagm_data):
    stem = _first(dagm_data, positive=True)
    label = _label_dir(dagm_data) / f"{stem}_label.PNG"
    label.unlink()
    with pytest.raises(ValueError, match=rf"Labels.txt line \d+ .*{stem}.PNG.* marks the image defective "
                                         rf"but its label .*{stem}_label.PNG does not exist"):
        dagm.list_samples(dagm_data.root, "train", category=1)


def test_flag_zero_with_label_file_names_row_and_file(dagm_data):
    stem = _first(dagm_data, positive=False)
    some_label = next(_label_dir(dagm_data).glob("*_label.PNG"))
    shutil.copy(some_label, _label_dir(dagm_data) / f"{stem}_label.PNG")
    with pytest.raises(ValueError, match=rf"Labels.txt line \d+ .*{stem}.PNG.* marks the image defect-free "
                                         rf"but the label .*{stem}_label.PNG exists"):
        dagm.list_samples(dagm_data.root, "train", category=1)


def test_row_naming_a_missing_image_and_an_unlisted_image(dagm_data):
    table = _label_dir(dagm_data) / "Labels.txt"
    lines = table.read_text().splitlines()
    table.write_text("\n".join(lines + ["99\t0\t0099.PNG\t0\t0"]) + "\n")
    with pytest.raises(ValueError, match=r"Labels.txt line 10 .* names image .*0099.PNG, which does not"):
        dagm.list_samples(dagm_data.root, "train", category=1)
    table.write_text("\n".join(lines[:-1]) + "\n")  # drop the last image's row
    with pytest.raises(ValueError, match=r"Labels.txt has no row for image .*0008.PNG"):
        dagm.list_samples(dagm_data.root, "train", category=1)
    table.write_text("\n".join(lines[:1] + ["1 0 0001.PNG"]) + "\n")
    with pytest.raises(ValueError, match=r"line 2 .* is malformed; expected 'id flag image 0 label-or-0'"):
        dagm.list_samples(dagm_data.root, "train", category=1)


def test_label_without_image_and_missing_labels_txt(dagm_data):
    table = _label_dir(dagm_data) / "Labels.txt"
    table.unlink()  # without Labels.txt the label files alone decide
    samples = dagm.list_samples(dagm_data.root, "train", category=1)
    assert {s.name for s in samples if s.is_positive} == dagm_data.positives & set(dagm_data.names["Train"])
    stem = _first(dagm_data, positive=True)
    (dagm_data.root / "Class1" / "Train" / f"{stem}.PNG").unlink()
    with pytest.raises(ValueError, match=rf"mask .*{stem}_label.PNG has no image; expected .*/{stem}.PNG"):
        dagm.list_samples(dagm_data.root, "train", category=1)
