"""Issue 20, family 4: nothing dropped or ignored silently. Each case ends in one line, or a logged
warning where going on is right; conflicting flags are a usage error."""

from __future__ import annotations

import csv
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from fakes import write_dagm, write_folder, write_ksdd, write_ksdd2, write_severstal

from kerasdec.cli import main
from kerasdec.config import DataConfig
from kerasdec.data import severstal
from kerasdec.data.sources import load_split, load_splits
from kerasdec.deploy import export
from kerasdec.files import TMP_PREFIX


def _break(path: Path, elsewhere: Path) -> Path:
    """Turn an image into a symbolic link to ``elsewhere/<its name>``, which does not exist."""
    path.unlink()
    path.symlink_to(elsewhere / path.name)
    return path


def test_a_dangling_link_among_the_images_is_an_error_in_every_source(tmp_path):
    folder = write_folder(tmp_path / "folder")
    dagm = write_dagm(tmp_path / "DAGM")
    sev = write_severstal(tmp_path / "severstal")
    ksdd = write_ksdd(tmp_path / "KSDD", n_folders=3, parts=2)
    k2 = write_ksdd2(tmp_path / "KSDD2")
    cases = [
        (DataConfig(dataset="folder", root=str(folder.root)), folder.paths["train/ok/good001"]),
        (DataConfig(dataset="dagm", root=str(dagm.root), category=1), dagm.paths["Class1/Train/0002"]),
        (DataConfig(dataset="severstal", root=str(sev.root)), next(iter(sev.paths.values()))),
        (DataConfig(dataset="ksdd", root=str(ksdd.root)), ksdd.paths["kos02/Part1"]),
        (DataConfig(dataset="ksdd2", root=str(k2.root)), k2.paths[k2.names["train"][2]]),
        (DataConfig(dataset="ksdd2", root=str(k2.root)), k2.root / "train" / "10001_GT.png"),  # a mask
    ]
    for cfg, path in cases:
        content = path.read_bytes()
        target = _break(path, tmp_path / "elsewhere").readlink()
        with pytest.raises(FileNotFoundError) as err:
            load_split(cfg, "train", seed=0)
        assert str(err.value) == (f"{path} is a broken symbolic link (to {target}); expected an image file "
                                  "or folder: restore its target or remove the link"), cfg.dataset
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(content)  # the target restored: the link is an image like any other
        assert path.resolve() in {s.image_path.resolve() for s in load_split(cfg, "train", seed=0)} | {
            s.mask_path.resolve() for s in load_split(cfg, "train", seed=0) if s.mask_path}


def test_fit_names_the_dangling_link_in_one_line(tmp_path):
    data = write_folder(tmp_path / "data")
    link = _break(data.paths["train/defect/bad001"], tmp_path / "elsewhere")
    result = CliRunner().invoke(main, ["fit", "--dataset", "folder", "--data-root", str(data.root),
                                       "--epochs", "1", "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip() == (f"Error: {link} is a broken symbolic link (to {link.readlink()}); "
                                     "expected an image file or folder: restore its target or remove the "
                                     "link")


def test_an_exclusion_that_names_nothing_is_a_warning(folder_root, caplog):
    cfg = DataConfig(dataset="folder", root=str(folder_root),
                     exclude=("train/ok/good001", "train/ok/goood002"))
    with caplog.at_level(logging.WARNING, logger="kerasdec.data.sources"):
        found = load_splits(cfg, ("train", "test", "test"), seed=0)
    assert list(found) == ["train", "test"] and "train/ok/good001" not in {s.name for s in found["train"]}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["--exclude ['train/ok/goood002']: no such sample in the folder splits ['train', "
                        "'test'] (sample names look like 'train/ok/good000'); nothing was excluded for it"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kerasdec.data.sources"):
        load_splits(DataConfig(dataset="folder", root=str(folder_root), exclude=("test/ok/good000",)),
                    ("train", "test"), seed=0)  # excluded from test: found, no warning
        load_splits(DataConfig(dataset="ksdd", root=str(write_ksdd(folder_root.parent / "K").root)),
                    ("train", "test"), seed=0)  # the default exclusion (kos21/Part7) is not the user's
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_steps_with_epochs_is_a_usage_error():
    result = CliRunner().invoke(main, ["fit", "--steps", "3", "--epochs", "2"])
    assert result.exit_code == 2
    assert ("--epochs 2 and --steps 3 conflict: both size the run (--steps sets the epochs from the number "
            "of updates); give only one of them") in result.output


@pytest.mark.parametrize("args, message", [
    (["predict", ".", ".", "--out", "o", "--allow-other-size"],
     "--allow-other-size needs --width and --height"),
    (["export", ".", "--calibration-images", "150"], "--calibration-images is only used by --tflite int8"),
    (["bench", "--quick", "--steps", "3"], "--steps and --quick conflict: --quick fixes 64x64, batch 1, one "
                                           "step and one repeat; give only one of them"),
    (["bench", "--xla-both", "--no-jit"], "--jit and --xla-both conflict: --xla-both times XLA off and on"),
])
def test_conflicting_or_idle_flags_are_usage_errors(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and message in result.output, result.output


@pytest.mark.parametrize("row, message", [
    ("{image},abc,1 3", "line 3: ClassId 'abc'; expected one of 1, 2, 3, 4 (Severstal's four defect "
                        "classes)"),
    ("{image},-3,1 3", "line 3: ClassId '-3'; expected one of 1, 2, 3, 4"),
    ("{image},9,1 3", "line 3: ClassId '9'; expected one of 1, 2, 3, 4"),
    ("{image},,1 3", "line 3: ClassId ''; expected one of 1, 2, 3, 4"),
    (",1,1 3", "line 3: no ImageId; expected the file name of an image in train_images/"),
    ("{image},2,", "line 3: ImageId '{image}' has an empty EncodedPixels; expected 'start length' pairs"),
])
def test_severstal_rows_outside_the_four_classes_are_refused(tmp_path, row, message):
    data = write_severstal(tmp_path / "sev")
    negative = sorted(data.negatives)[0]  # a row for it would make this defect-free image defective
    csv_path = data.root / "train.csv"
    lines = csv_path.read_text().splitlines()
    csv_path.write_text("\n".join(lines[:2] + [row.format(image=negative)] + lines[2:]) + "\n")
    with pytest.raises(ValueError) as err:
        severstal.all_samples(data.root)
    assert str(err.value).startswith(f"{csv_path} {message.format(image=negative)}"), str(err.value)


def test_severstal_old_format_class_ids_are_checked_too(tmp_path):
    path = tmp_path / "train.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([["ImageId_ClassId", "EncodedPixels"], ["a.jpg_1", "1 3"], ["a.jpg_2", ""],
                                 ["b.jpg_5", "4 2"]])
    with pytest.raises(ValueError, match=r"train.csv line 4: ClassId '5'; expected one of 1, 2, 3, 4"):
        severstal.read_csv(path)
    path.write_text("ImageId_ClassId,EncodedPixels\na.jpg_1,1 3\na.jpg_2,\n")
    assert severstal.read_csv(path) == {"a.jpg": ["1 3"]}  # an empty encoding there: class absent


def _holding_lock(base: Path) -> subprocess.Popen:
    """A process that writes a hidden version folder as an export does, holding its lock, then waits."""
    script = textwrap.dedent("""
        import os, sys, time
        from pathlib import Path
        from kerasdec.deploy.export import LOCK_SUFFIX, export_lock
        base = Path(sys.argv[1])
        token = f".tmp-{os.getpid()}-0123abcd"
        with export_lock(base / f"{token}{LOCK_SUFFIX}"):
            (base / f"{token}-version" / "variables").mkdir(parents=True)
            print("ready", flush=True)
            time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script, str(base)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_the_next_export_removes_what_a_killed_export_left_and_never_a_live_ones(tmp_path):
    live, killed = _holding_lock(tmp_path), _holding_lock(tmp_path)
    try:
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
        left = sorted(p.name for p in tmp_path.iterdir())
        assert len(left) == 4  # two version folders, two lock files
        removed = export.clean_stale(tmp_path)  # at once: no waiting for the folder to age
        assert [p.name for p in removed] == [f"{TMP_PREFIX}{killed.pid}-0123abcd-version"]
        assert sorted(p.name for p in tmp_path.iterdir()) == [f"{TMP_PREFIX}{live.pid}-0123abcd-version",
                                                              f"{TMP_PREFIX}{live.pid}-0123abcd.lock"]
    finally:
        live.kill()
        live.wait(timeout=30)
    assert [p.name for p in export.clean_stale(tmp_path)] == [f"{TMP_PREFIX}{live.pid}-0123abcd-version"]
    assert list(tmp_path.iterdir()) == []


def test_an_export_keeps_its_own_folders_from_a_concurrent_cleanup(tmp_path, monkeypatch):
    seen = {}

    def build(model, info, staging, work, *args):
        staging.mkdir()
        seen["removed"] = export.clean_stale(staging.parent)  # another export starting meanwhile
        seen["kept"] = staging.exists()
        raise RuntimeError("stop here")

    monkeypatch.setattr(export, "build_version", build)
    with pytest.raises(RuntimeError, match="stop here"):
        export._build_and_publish(None, None, tmp_path, None, (), None, None, {})
    assert seen == {"removed": [], "kept": True}
    assert list(tmp_path.iterdir()) == []  # the failed export removed its folders and its lock


def test_files_a_source_or_predict_does_not_take_are_a_warning(tmp_path, caplog):
    from fakes import imwrite

    from kerasdec.deploy.predict import collect_inputs

    data = write_folder(tmp_path / "data")
    imwrite(data.root / "train" / "ok" / "batch2" / "x.png", data.masks["train/defect/bad000"])  # a subfolder
    (data.root / "train" / "ok" / "y.gif").write_bytes(b"GIF89a")
    with caplog.at_level(logging.WARNING):
        load_split(DataConfig(dataset="folder", root=str(data.root)), "train", seed=0)
        assert len(collect_inputs([data.root / "train" / "ok"])) == 6  # 5 images + batch2/x.png
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings[0] == (f"{data.root / 'train' / 'ok'}: 2 entries ignored, not image files (.png, .jpg, "
                           ".jpeg, .bmp, .tif, .tiff), e.g. 'batch2'")
    assert warnings[1].startswith(f"{data.root / 'train' / 'ok'}: 1 file(s) skipped, not images by their "
                                  "suffix")


def test_a_split_file_listing_a_name_twice_is_a_warning(tmp_path, caplog):
    import json

    data = write_ksdd2(tmp_path / "KSDD2")
    ids = [int(n.split("/")[1]) for n in data.names["train"]]
    path = tmp_path / "split.json"
    path.write_text(json.dumps([[[i, True] for i in ids] + [[ids[0], True]], [[10010, True]]]))
    with caplog.at_level(logging.WARNING, logger="kerasdec.data.sources"):
        cfg = DataConfig(dataset="ksdd2", root=str(data.root), split_file=str(path))
        samples = load_split(cfg, "train", 0)
    assert len(samples) == len(ids) + 1  # as listed (the published code would train on it twice, too)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"{path} lists 1 name(s) of its train part more than once, e.g. {ids[0]}; each listing is used"]


def test_exclude_none_with_names_is_a_usage_error():
    result = CliRunner().invoke(main, ["fit", "--exclude", "none", "--exclude", "kos01/Part0"])
    assert result.exit_code == 2
    assert "'none' (exclude nothing) with sample names ['kos01/Part0']" in result.output
