"""Issue 20, family 1: split files are bounded (size, values, nesting, name length) while they are read,
and every value an error message echoes is cut to a readable length (kerasdec/echo.py)."""

from __future__ import annotations

import json
import pickle
import time

import pytest
from click.testing import CliRunner
from fakes import write_ksdd

from kerasdec.cli import fault_message, main
from kerasdec.config import RunConfig
from kerasdec.data import splits
from kerasdec.echo import LINE_CHARS, cut_line, shown
from kerasdec.training.cluster import parse_tf_config

DEPTH = 100_000  # the nesting


def _one_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output and "Recursion" not in result.output, \
        result.output[:2000]
    return lines[0]


def _deep_pickle(depth: int) -> bytes:
    """Lists nested ``depth`` deep, as opcodes (pickle.dumps itself cannot write it): [[[...]]]."""
    return b"\x80\x04" + b"]" * depth + b"a" * (depth - 1) + b"."


@pytest.mark.parametrize("form", ["json", "pickle"])
def test_lists_nested_100000_deep_are_one_line_in_every_command(tmp_path, form):
    path = tmp_path / f"split.{'json' if form == 'json' else 'pyb'}"
    path.write_bytes(b"[" * DEPTH + b"]" * DEPTH if form == "json" else _deep_pickle(DEPTH))
    expected = (f"{path}: the split file nests lists more than {splits.MAX_DEPTH} levels deep; expected at "
                f"most {splits.MAX_DEPTH} (the published layouts use 4)")
    with pytest.raises(ValueError) as err:
        splits.read_raw(path)
    assert str(err.value) == expected
    root = write_ksdd(tmp_path / "KSDD", n_folders=3, parts=1).root
    for args in (["split", "--to-json", str(path), str(tmp_path / "out.json")],
                 ["fit", "--dataset", "ksdd", "--data-root", str(root), "--split-file", str(path),
                  "--epochs", "1", "--run-dir", str(tmp_path / "run")]):
        assert _one_line(CliRunner().invoke(main, args)) == f"Error: {expected}"
    assert not (tmp_path / "out.json").exists() and not (tmp_path / "run").exists()


def test_a_huge_name_in_a_split_file_is_refused_and_echoed_cut(tmp_path):
    name = "kos" + "x" * 1_000_000  # the was 200 MB: past MAX_FILE_BYTES, refused by size alone
    path = tmp_path / "split.json"
    path.write_text(json.dumps([[[[name, True]]] * 3, [[["kos01", True]]] * 3]))
    line = _one_line(CliRunner().invoke(main, ["split", "--to-json", str(path), str(tmp_path / "o.json")]))
    assert line == (f"Error: {path}: the split file holds the name 'kos{'x' * 77}…' (1,000,003 characters); "
                    f"expected names of at most {splits.MAX_NAME_CHARS} characters (a file or folder name)")
    big = tmp_path / "big.pyb"
    big.write_bytes(pickle.dumps([["kos01"] * 3, "y" * (splits.MAX_FILE_BYTES + 1)]))
    with pytest.raises(ValueError, match=rf"big.pyb: the split file is {big.stat().st_size:,} bytes; split "
                                         r"files are at most 8,388,608 bytes"):
        splits.read_raw(big)


def test_a_wrong_entry_is_quoted_short(tmp_path):
    entry = ["kos01", True, "z" * 200]  # a name within bounds, in an entry of the wrong shape
    path = tmp_path / "split.json"
    path.write_text(json.dumps([[[entry]] * 3, [[["kos01", True]]] * 3]))
    with pytest.raises(ValueError) as err:
        splits.read_split_file(path, "ksdd")
    assert f"(entry ['kos01', True, '{'z' * 40}…' (200 characters)]); expected" in str(err.value)
    assert len(str(err.value)) < 400


def test_pickles_that_build_much_from_little_are_refused_before_or_while_walking(tmp_path):
    cases = {
        "self-reference": b"\x80\x04]\x94h\x00a.",  # a list that holds itself: [[...]]
        "shared": pickle.dumps([[["x"] * 1000] * 1000] * 1000),  # 10^9 values from a few KB
        "opcodes": b"\x80\x04(" + b"]" * 4_000_000 + b"l.",  # 4 MB: four million empty lists
        "integer": pickle.dumps([[(10**400, True)], []]),
    }
    messages = {"self-reference": "nests lists more than 6 levels deep",
                "shared": "holds more than 1,000,000 values", "opcodes": "holds more than 1,000,000 values",
                "integer": "holds the integer <an integer of 1,329 bits>; expected 64-bit ids"}
    for name, data in cases.items():
        path = tmp_path / f"{name}.pyb"
        path.write_bytes(data)
        started = time.monotonic()
        with pytest.raises(ValueError, match=messages[name]):
            splits.read_raw(path)
        assert time.monotonic() - started < 10, name


def test_brackets_inside_json_names_do_not_count_as_nesting(tmp_path):
    path = tmp_path / "split.json"
    value = [[[[r'kos[[[[[[[["\]', True]]] * 3, [[["kos01", True]]] * 3]
    path.write_text(json.dumps(value))
    assert splits.read_raw(path) == value


def test_every_echoed_value_is_cut(tmp_path):
    assert shown("x" * 10**6) == f"'{'x' * 80}…' (1,000,000 characters)"
    deep: list = []
    inner = deep
    for _ in range(DEPTH):
        inner.append([])
        inner = inner[0]
    assert shown(deep) == "[[[<a list of 1>]]]"  # repr() of it raises RecursionError
    with pytest.raises(ValueError) as err:  # TF_CONFIG comes from the environment
        parse_tf_config(json.dumps({"cluster": {"worker": ["a:1"]},
                                    "task": {"type": "w" * 10**6, "index": 0}}))
    assert len(str(err.value)) < 300
    with pytest.raises(ValueError) as err:  # config.json of a run
        RunConfig.from_dict({"data": {"dataset": "d" * 10**6}})
    assert len(str(err.value)) < 300
    with pytest.raises(ValueError) as err:
        RunConfig.from_dict({"data": {"k" * 10**6: 1}})
    assert len(str(err.value)) < 1000
    # the last guard: whatever a message quotes, the CLI prints at most about LINE_CHARS characters
    line = fault_message(ValueError("start " + "y" * 10**6 + " end"))
    assert line.startswith("start yyy") and line.endswith("yyy end") and len(line) < LINE_CHARS + 100
    assert "characters cut" in line and cut_line("short") == "short"


def test_files_kerasdec_reads_back_are_bounded_too(tmp_path):
    import zipfile

    from kerasdec.files import read_json
    from kerasdec.models.saving import ModelFileError, read_model_config
    from kerasdec.training.cluster import parse_tf_config

    deep = tmp_path / "config.json"
    deep.write_text("[" * DEPTH + "]" * DEPTH)
    with pytest.raises(ValueError, match=r"config.json nests its values too deeply to be read"):
        read_json(deep)  # config.json, samples.json, metadata.json, state.json of a run from elsewhere
    with pytest.raises(ValueError, match=r"TF_CONFIG is nested too deeply"):
        parse_tf_config("[" * DEPTH + "]" * DEPTH)
    bomb = tmp_path / "model.keras"  # a zip whose config.json inflates to 100 MB from 100 KB
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", b" " * 100 * 2**20)
    assert bomb.stat().st_size < 200_000
    with pytest.raises(ModelFileError, match=r"model.keras: its member config.json declares 104,857,600 "
                                             r"bytes, more than the 16,777,216 a kerasdec model file holds"):
        read_model_config(bomb)
    with zipfile.ZipFile(bomb, "w") as archive:
        archive.writestr("config.json", "[" * DEPTH + "]" * DEPTH)
    with pytest.raises(ModelFileError, match=r"is not a readable .keras file \(RecursionError"):
        read_model_config(bomb)


def test_a_severstal_field_beyond_any_encoding_is_one_line(tmp_path):
    from kerasdec.data import severstal

    path = tmp_path / "train.csv"
    path.write_text("ImageId,ClassId,EncodedPixels\na.jpg,1," + "1 2 " * 1_200_000 + "\n")  # 4.8 MB
    with pytest.raises(ValueError, match=r"train.csv line 2: field larger than field limit \(4194304\)"):
        severstal.read_csv(path)
    path.write_text("ImageId,ClassId,EncodedPixels\na.jpg,1," + "1 2 " * 100_000 + "\n")  # over csv's default
    assert len(severstal.read_csv(path)["a.jpg"][0]) == 399_999
