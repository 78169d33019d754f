"""Issue 20, family 2: a name from a split file (JSON or pickle) reaches the disk only through
``splits.resolve_name``: an absolute name, or one that leaves --data-root once links are resolved, is one
line naming the entry, with the same rule for KSDD, KSDD2, DAGM and Severstal."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
from click.testing import CliRunner
from fakes import write_dagm, write_ksdd, write_ksdd2, write_severstal

from kerasdec.cli import main
from kerasdec.config import DataConfig
from kerasdec.data import splits
from kerasdec.data.sources import load_split
from kerasdec.echo import shown


def _write(path: Path, value: object) -> Path:
    if path.suffix == ".json":
        path.write_text(json.dumps(value))
    else:
        path.write_bytes(pickle.dumps(value, protocol=4))
    return path


def _ksdd_split(first: object) -> tuple:
    return ([[(first, True), ("kos02", True)]] * 3, [[("kos03", True)]] * 3)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A KSDD-like folder OUTSIDE the data root (what a hostile split file points at)."""
    return write_ksdd(tmp_path / "outside", n_folders=1, parts=2).root


@pytest.mark.parametrize("suffix", [".json", ".pyb"])
def test_ksdd_names_leaving_the_root_are_refused_naming_the_entry(tmp_path, outside, suffix):
    root = write_ksdd(tmp_path / "KSDD", n_folders=4, parts=2).root
    (root / "link").symlink_to(outside)  # a link inside the root that leads out of it
    target = (outside / "kos01").resolve()
    cases = {
        str(outside / "kos01"): f"entry {shown(str(outside / 'kos01'))} is an absolute path; expected a name "
                                f"relative to the data root {root.resolve()} (a split file only names files "
                                "under --data-root)",
        "../outside/kos01": f"entry '../outside/kos01' resolves to {target}, outside the data root",
        "link/kos01": f"entry 'link/kos01' resolves to {target}, outside the data root",
        "kos01/../../outside/kos01": f"entry 'kos01/../../outside/kos01' resolves to {target}, outside",
    }
    for name, message in cases.items():
        path = _write(tmp_path / f"split{suffix}", _ksdd_split(name))
        cfg = DataConfig(dataset="ksdd", root=str(root), split_file=str(path), fold=0)
        with pytest.raises(ValueError) as err:
            load_split(cfg, "train", seed=0)
        assert str(err.value).startswith(f"{path}: {message}"), str(err.value)
        assert "\n" not in str(err.value)
    # inside the root after resolving: the same folder as its plain name, recorded under its real name
    path = _write(tmp_path / f"split{suffix}", _ksdd_split("kos04/../kos01"))
    cfg = DataConfig(dataset="ksdd", root=str(root), split_file=str(path), fold=0)
    assert {s.name.split("/")[0] for s in load_split(cfg, "train", seed=0)} == {"kos01", "kos02"}


def test_fit_refuses_a_split_file_naming_a_folder_outside_the_root_in_one_line(tmp_path, outside):
    root = write_ksdd(tmp_path / "KSDD", n_folders=4, parts=2).root
    path = _write(tmp_path / "split.pyb", _ksdd_split("../outside/kos01"))
    result = CliRunner().invoke(main, ["fit", "--dataset", "ksdd", "--data-root", str(root), "--split-file",
                                       str(path), "--epochs", "1", "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "entry '../outside/kos01' resolves to" in lines[0], result.output
    assert not (tmp_path / "run").exists()


def test_the_same_rule_for_ksdd2_dagm_and_severstal(tmp_path, outside):
    k2 = write_ksdd2(tmp_path / "KSDD2")
    dagm = write_dagm(tmp_path / "DAGM")
    sev = write_severstal(tmp_path / "severstal")
    secret = outside / "kos01" / "Part0.jpg"
    # KSDD2 names are integer ids, so only a link can lead out: an image that is a link to a file outside
    k2_image = k2.root / "train" / "10000.png"
    k2_image.unlink()
    k2_image.symlink_to(secret)
    dagm_names = [n.split("/")[-1] + ".PNG" for n in dagm.names["Train"]]
    sev_names = sorted(n[:-4] for n in sev.all_names())
    cases = [
        ("ksdd2", k2.root, ([(10000, True), (10001, True)], [(10010, True)]), {},
         f"entry 10000 resolves to {secret.resolve()}, outside the data root"),
        ("dagm", dagm.root, ([[("../../../outside/kos01/Part0.jpg", True)]] + [[]] * 9,
                             [[(n, True) for n in dagm_names]] * 10), {"category": 1},
         f"entry '../../../outside/kos01/Part0.jpg' resolves to {secret.resolve()}, outside the data "
         "root"),
        ("dagm", dagm.root, ([[(str(dagm.root / "Class1" / "Train" / dagm_names[0]), True)]] + [[]] * 9,
                             [[]] * 10), {"category": 1}, "is an absolute path"),
        ("severstal", sev.root, ([("../../outside/kos01/Part0", True)], [(sev_names[0], True)],
                                 [(sev_names[1], True)]), {},
         f"entry '../../outside/kos01/Part0' resolves to {secret.resolve()}, outside the data root"),
        ("severstal", sev.root, ([(str(sev.root / "train_images" / sev_names[0])[:-4], True)],
                                 [(sev_names[0], True)], [(sev_names[1], True)]), {}, "is an absolute path"),
    ]
    for i, (dataset, root, value, extra, message) in enumerate(cases):
        for suffix in (".json", ".pyb"):
            path = _write(tmp_path / f"split-{i}{suffix}", value)
            cfg = DataConfig(dataset=dataset, root=str(root), split_file=str(path), **extra)
            with pytest.raises(ValueError) as err:
                load_split(cfg, "train", seed=0)
            assert message in str(err.value) and str(err.value).startswith(f"{path}: entry "), str(err.value)


def test_dagm_no_longer_strips_a_path_to_another_class(tmp_path):
    # ../../Class2/Train/0001.PNG stays inside the root but is not an image of class 1: before, only the
    # stem was kept and class 1's 0001.PNG was trained on instead, without a word.
    root = write_dagm(tmp_path / "DAGM", category=1).root
    write_dagm(root, category=2)
    path = _write(tmp_path / "split.json", ([[("../../Class2/Train/0001.PNG", True)]] + [[]] * 9, [[]] * 10))
    cfg = DataConfig(dataset="dagm", root=str(root), split_file=str(path), category=1)
    with pytest.raises(ValueError, match=r"lists image .*Class2/Train/0001.PNG, which is not under the data "
                                         r"root"):
        load_split(cfg, "train", seed=0)


def test_the_resolver_refuses_empty_nul_and_looping_names(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "loop").symlink_to(root / "loop")
    for name, message in (("", "is not a file or folder name"), ("a\0b", "is not a file or folder name")):
        with pytest.raises(ValueError, match=message):
            splits.resolve_name(root, root, name, "s.json")
    try:
        target = splits.resolve_name(root, root, "loop/x", "s.json")
    except ValueError as err:  # Python < 3.13: a loop cannot be resolved
        assert "entry 'loop/x' cannot be resolved" in str(err)
    else:  # Python >= 3.13 resolves it as far as it can: inside the root, and it names nothing
        assert root.resolve() in target.parents and not os.path.exists(target)
