"""Published split files (pickle and JSON) for every dataset, the refusal of a malicious pickle, KSDD's
N-folder semantics, exclusions and both decision targets (hand-computed)."""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fakes import write_ksdd

from kerasdec.cli import main
from kerasdec.config import DataConfig
from kerasdec.data import ksdd, splits
from kerasdec.data.samples import Sample
from kerasdec.data.sources import excluded, load_split
from kerasdec.data.targets import decision_target, make_element


def _pickle(path: Path, value: object) -> Path:
    path.write_bytes(pickle.dumps(value, protocol=4))
    return path


def _names(cfg: DataConfig, split: str) -> dict[str, bool]:
    return {s.name: s.is_segmented for s in load_split(cfg, split, seed=0)}


def _both_forms(tmp_path: Path, value: object) -> list[Path]:
    """The value as a published-style pickle (.pyb) and as kerasdec's JSON form (via to_json)."""
    pyb = _pickle(tmp_path / "split_1_1.pyb", value)
    return [pyb, splits.to_json(pyb, tmp_path / "split.json")]


def test_ksdd_split_file_picks_the_fold_and_keeps_the_flags(ksdd_data, tmp_path):
    train = [[("kos01", True), ("kos03", False)], [("kos02", True)], [("kos04", True)]]
    test = [[("kos05", True)], [("kos06", True)], [("kos01", True)]]
    for path in _both_forms(tmp_path, (train, test)):
        cfg = DataConfig(dataset="ksdd", root=str(ksdd_data.root), split_file=str(path), fold=0)
        got = _names(cfg, "train")
        assert set(got) == {f"kos0{i}/Part{k}" for i in (1, 3) for k in range(3)}  # all parts of both
        assert got["kos03/Part2"] is False and got["kos01/Part0"] is True  # kos03 is image-label only
        assert got["kos03/Part0"] is True  # a negative always trains segmentation
        assert set(_names(cfg, "test")) == {f"kos05/Part{k}" for k in range(3)}
        assert set(_names(replace(cfg, fold=2), "test")) == {f"kos01/Part{k}" for k in range(3)}
        # --positives given with a split file must agree with it (2 folders hold a defect)
        assert load_split(replace(cfg, positives=2, segmented=1), "train", 0)
        with pytest.raises(ValueError, match=r"positives=3 but the split file .* trains on 2"):
            load_split(replace(cfg, positives=3), "train", 0)


def test_ksdd2_dagm_and_severstal_split_files(ksdd2_data, dagm_data, severstal_data, tmp_path):
    k2_train = [int(n.split("/")[1]) for n in ksdd2_data.names["train"][:4]]
    k2 = ([(i, i != k2_train[0]) for i in k2_train], [(int(n.split("/")[1]), True)
                                                      for n in ksdd2_data.names["test"]])
    dagm_train = [[] for _ in range(10)]
    dagm_train[0] = [(n.split("/")[-1] + ".PNG", False) for n in dagm_data.names["Train"][:5]]
    dagm = (dagm_train, [[(n.split("/")[-1] + ".PNG", True) for n in dagm_data.names["Test"]]] * 10)
    names = sorted(severstal_data.all_names())
    sev = ([(n[:-4], True) for n in names[:6]], [(n[:-4], True) for n in names[6:9]],
           [(n[:-4], False) for n in names[9:]])
    for dataset, value, root, extra in (("ksdd2", k2, ksdd2_data.root, {}),
                                        ("dagm", dagm, dagm_data.root, {"category": 1}),
                                        ("severstal", sev, severstal_data.root, {})):
        folder = tmp_path / f"splits-{dataset}"
        folder.mkdir()
        for path in _both_forms(folder, value):
            cfg = DataConfig(dataset=dataset, root=str(root), split_file=str(path), **extra)
            train = load_split(cfg, "train", seed=0)
            if dataset == "ksdd2":
                assert [s.name for s in train] == [f"train/{i}" for i in k2_train]
                first = train[0]
                assert first.is_segmented is (not first.is_positive)  # flag False: label-only if positive
            elif dataset == "dagm":
                assert [s.name for s in train] == dagm_data.names["Train"][:5]
                assert all(s.is_segmented is not s.is_positive for s in train)
            else:
                assert [s.name for s in train] == names[:6]
                assert [s.name for s in load_split(cfg, "test", 0)] == names[6:9]
                val = load_split(cfg, "val", 0)
                assert [s.name for s in val] == names[9:]


def test_malicious_pickle_runs_nothing_and_names_the_file(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = _pickle(tmp_path / "split_10_10.pyb", [[Evil()], []])
    with pytest.raises(ValueError, match=rf"{path}: the split file asks for class \w+\.system; "
                                         "split files may only hold lists, tuples, strings, ints, "
                                         "booleans and None"):
        splits.read_raw(path)
    assert not marker.exists()
    result = CliRunner().invoke(main, ["split", "--to-json", str(path), str(tmp_path / "out.json")])
    assert result.exit_code == 1 and "asks for class" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not marker.exists() and not (tmp_path / "out.json").exists()
    _pickle(path, [{"a": 1}, []])  # no global needed, still not allowed
    with pytest.raises(ValueError, match=r"holds a dict; split files may only hold"):
        splits.read_raw(path)


def test_wrong_shape_and_missing_names_are_errors(ksdd_data, tmp_path):
    ksdd2_shaped = _pickle(tmp_path / "k2.pyb", ([(10000, True)], [(10001, True)]))
    cfg = DataConfig(dataset="ksdd", root=str(ksdd_data.root),
                     split_file=str(ksdd2_shaped))
    with pytest.raises(ValueError, match=r"k2.pyb: not a ksdd split file .*expected \[train_folds, "
                                         r"test_folds\], each a list of 3 lists of \(kos_folder, "
                                         r"segmented\)"):
        load_split(cfg, "train", 0)
    missing = _pickle(tmp_path / "m.pyb", ([[("kos01", True), ("kos77", True)]] * 3, [[("kos02", True)]] * 3))
    with pytest.raises(ValueError, match=r"m.pyb: lists folder .*kos77, which is not under the data"):
        load_split(replace(cfg, split_file=str(missing)), "train", 0)
    with pytest.raises(ValueError, match=r"m.pyb: split files are .*dataset='folder' has none"):
        splits.read_split_file(missing, "folder")


def test_cli_to_json_writes_once_and_json_is_documented_form(tmp_path):
    src = _pickle(tmp_path / "split.pyb", ([(10000, True)], [(10001, False)]))
    dst = tmp_path / "split.json"
    runner = CliRunner()
    result = runner.invoke(main, ["split", "--to-json", str(src), str(dst)])
    assert result.exit_code == 0, result.output
    assert json.loads(dst.read_text()) == [[[10000, True]], [[10001, False]]]
    result = runner.invoke(main, ["split", "--to-json", str(src), str(dst)])
    assert result.exit_code == 1 and "already exists" in result.output


def test_ksdd_positives_are_folders_of_the_folds_training_part(tmp_path):
    data = write_ksdd(tmp_path / "ksdd", n_folders=9, parts=3)
    cfg = DataConfig(dataset="ksdd", root=str(data.root), fold=1, exclude=())
    test_all = _names(cfg, "test")
    train_all = _names(cfg, "train")
    cfg2 = replace(cfg, positives=2, segmented=1)
    train = load_split(cfg2, "train", seed=0)
    folders = sorted({s.name.split("/")[0] for s in train})
    assert len(folders) == 2 and all(f"{f}/Part0" in train_all for f in folders)  # training folders
    assert {s.name for s in train} == {f"{f}/Part{k}" for f in folders for k in range(3)}  # all parts
    assert all(any(s.is_positive for s in train if s.name.startswith(f)) for f in folders)
    labelled = {s.name.split("/")[0] for s in train if s.is_positive and s.is_segmented}
    assert len(labelled) == 1
    assert _names(cfg2, "test") == test_all  # the test folders stay the fold's
    with pytest.raises(ValueError, match=r"positives=9 kos folders but only \d+ training folders"):
        load_split(replace(cfg, positives=9), "train", 0)


def test_exclusions_default_and_configured(ksdd_root):
    assert excluded(DataConfig(dataset="ksdd", root="r")) == ("kos21/Part7",)
    assert excluded(DataConfig(dataset="ksdd2", root="r")) == ()
    cfg = DataConfig(dataset="ksdd", root=str(ksdd_root), exclude=["kos01/Part1"])  # JSON gives a list
    assert cfg.exclude == ("kos01/Part1",)
    train_and_test = {**_names(cfg, "train"), **_names(cfg, "test")}
    assert "kos01/Part1" not in train_and_test and "kos01/Part0" in train_and_test


def _sample(positive: bool = True, mask: bool = True) -> Sample:
    return Sample(name="s", image_path=Path("s.png"), is_positive=positive,
                  mask_path=Path("m") if mask else None)


@pytest.mark.parametrize("side, expected", [(9, 81 / 289), (17, 1.0), (3, 9 / 289)])
def test_mask_max_decision_target_is_the_peak_of_the_downsized_mask(side, expected):
    cfg = DataConfig(width=128, height=128, decision_target="mask_max")
    mask = np.zeros((128, 128), np.uint8)
    mask[56:56 + side, 56:56 + side] = 255  # inside the 17×17 window starting at row/col 56 (k = 8)
    element = make_element(np.zeros((128, 128, 1), np.uint8), mask, _sample(), cfg)
    assert element.label[0] == pytest.approx(expected, abs=1e-6)  # a 9×9 defect: 81/289 ≈ 0.28
    plain = make_element(np.zeros((128, 128, 1), np.uint8), mask, _sample(),
                         replace(cfg, decision_target="image_label"))
    assert plain.label[0] == 1.0


def test_decision_target_for_negatives_and_positives_without_a_mask():
    empty = np.zeros((16, 16, 1), np.float32)
    assert decision_target(empty, _sample(mask=False), "mask_max") == 1.0  # no mask at all: 1
    assert decision_target(empty, _sample(positive=False), "mask_max") == 0.0
    assert decision_target(empty + 0.5, _sample(positive=False), "image_label") == 0.0
    label_only = replace(_sample(), is_segmented=False)  # mixed supervision keeps the mask's max
    assert decision_target(empty + 0.25, label_only, "mask_max") == 0.25
    with pytest.raises(ValueError, match=r"decision_target='max'; expected one of"):
        DataConfig(decision_target="max")


def test_ksdd_fold_folders_unchanged():
    folders = [f"kos{i:02d}" for i in range(1, 51)]
    tests = [ksdd.fold_folders(folders, k) for k in range(3)]
    assert sorted(sum(tests, [])) == folders and [len(t) for t in tests] == [17, 17, 16]
