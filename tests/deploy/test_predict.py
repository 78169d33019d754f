"""predict on new images of any size from a run directory, a .keras file and an exported SavedModel.

Issue 11 cases: a .keras at another size than trained (#3), a broken symbolic link (#4), a full disk
(#8) and a read-only output folder (#10). The same decisions from every artifact of a TRAINED model:
test_trained.py.
"""

from __future__ import annotations

import csv
import errno
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from kerasdec.cli import main
from kerasdec.deploy.predict import collect_inputs, overlay_names, predict
from kerasdec.inference.contract import ModelInfo

SHAPES = {"a/x.png": (50, 70), "b/x.jpg": (130, 90, 3), "b/c/y.bmp": (64, 64)}  # (h, w[, 3]) on disk


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with (out / "scores.csv").open(newline="") as f:
        return {Path(r["path"]).relative_to(out.parent / "inputs").as_posix(): r for r in csv.DictReader(f)}


def _expected_score(model, path: Path) -> float:
    """Independent preprocessing: grayscale read, bilinear resize to 64×64, /255, sigmoid(decision)."""
    image = cv2.resize(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), (64, 64), interpolation=cv2.INTER_LINEAR)
    logit = np.asarray(model(image[None, :, :, None].astype(np.float32) / 255.0)["decision"])[0, 0]
    return float(1.0 / (1.0 + np.exp(-logit)))


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    """Three images not of the input size (one colour, two sharing a stem), a corrupt file, a text file."""
    rng = np.random.default_rng(1)
    root = tmp_path / "inputs"
    for name, shape in SHAPES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / name), rng.integers(0, 255, shape, dtype=np.uint8))
    (root / "b" / "bad.png").write_bytes(b"not an image at all")
    (root / "b" / "notes.txt").write_text("not an image either")
    return root


def _check_outputs(out: Path, expect_decision: int | None = None) -> dict[str, dict[str, str]]:
    rows = _rows(out)
    assert set(rows) == {*SHAPES, "b/bad.png"}
    assert rows["b/bad.png"]["score"] == "" and "not a readable image" in rows["b/bad.png"]["error"]
    overlays = set()
    for name, shape in SHAPES.items():
        row = rows[name]
        assert row["error"] == "" and 0.0 < float(row["score"]) < 1.0
        if expect_decision is not None:
            assert int(row["decision"]) == expect_decision
        picture = cv2.imread(str(out / row["overlay"]))
        assert picture.shape == (*shape[:2], 3)  # overlay at the ORIGINAL image size
        overlays.add(row["overlay"])
    assert overlays == {"overlays/x.png", "overlays/x-2.png", "overlays/y.png"}  # unique names
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["x-2.png", "x.png", "y.png"]
    return rows


def test_predict_from_run_dir_skips_corrupt_file(tiny_run, inputs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run.run_dir, run, ignore=shutil.ignore_patterns("evaluate-*"))
    (run / "metrics.json").write_text(json.dumps({"threshold": 0.999}))  # stored threshold is used
    progress = []
    out = predict(run, [inputs / "a", inputs / "b"], tmp_path / "out", batch_size=2,
                  progress=lambda done, total: progress.append((done, total)))
    assert out == tmp_path / "out"
    rows = _check_outputs(out, expect_decision=0)
    assert progress == [(2, 4), (4, 4)]
    for name in SHAPES:  # the colour .jpg is read as grayscale, as the 1-channel model needs
        expected = _expected_score(tiny_run.model, inputs / name)
        assert float(rows[name]["score"]) == pytest.approx(expected, abs=1e-5)
    out2 = predict(run, [inputs], tmp_path / "out2", threshold=0.0)  # an explicit threshold wins
    assert all(r["decision"] == "1" for r in _rows(out2).values() if r["score"])


def test_predict_from_keras_file_at_its_own_size_only_unless_asked(tiny_run, inputs, tmp_path):
    lone = tmp_path / "lone" / "model.keras"  # no config.json beside it: the file knows its size
    lone.parent.mkdir()
    shutil.copy(tiny_run.run_dir / "model_final.keras", lone)
    out = predict(lone, [inputs], tmp_path / "out")
    rows = _check_outputs(out)
    score = float(rows["a/x.png"]["score"])
    assert score == pytest.approx(_expected_score(tiny_run.model, inputs / "a/x.png"), abs=1e-5)
    assert int(rows["a/x.png"]["decision"]) == int(score >= 0.5)  # default threshold without a run
    with pytest.raises(ValueError, match=r"model.keras was trained at 64x64 \(WxH\) but 128x128 was "
                                         r"requested; running at another size changes the scores: drop "
                                         r"--width/--height, or add --allow-other-size"):
        predict(lone, [inputs], tmp_path / "refused", width=128, height=128)
    assert not (tmp_path / "refused").exists()
    other = predict(lone, [inputs / "a"], tmp_path / "other", width=128, height=128, allow_other_size=True)
    other_score = float(_rows(other)["a/x.png"]["score"])
    assert other_score != pytest.approx(score, abs=1e-4)  # why it is refused by default: scores change


def test_predict_from_saved_model(tiny_run, inputs, tmp_path):
    from kerasdec.deploy.saved_model import write_saved_model

    write_saved_model(tiny_run.model, tmp_path / "served" / "1", ModelInfo(64, 64, 1, 0.25))
    out = predict(tmp_path / "served" / "1", [inputs], tmp_path / "out")
    rows = _check_outputs(out, expect_decision=1)  # threshold 0.25 from metadata.json; scores are ~0.5
    keras_out = predict(tiny_run.run_dir / "model_final.keras", [inputs], tmp_path / "keras")
    for name, row in _rows(keras_out).items():
        if row["score"]:
            assert float(rows[name]["score"]) == pytest.approx(float(row["score"]), abs=1e-5)
    base = predict(tmp_path / "served", [inputs / "a"], tmp_path / "base")  # base folder: highest version
    assert (base / "overlays" / "x.png").is_file()
    with pytest.raises(ValueError, match=r"exported for 64x64 \(WxH\); 128x128 was requested"):
        predict(tmp_path / "served", [inputs / "a"], tmp_path / "no", width=128, height=128)


def test_a_broken_symlink_is_reported_like_a_corrupt_file(tiny_run, inputs, tmp_path):
    (inputs / "a" / "gone.png").symlink_to(tmp_path / "deleted.png")
    out = predict(tiny_run.run_dir, [inputs / "a"], tmp_path / "out")
    rows = _rows(out)
    assert set(rows) == {"a/x.png", "a/gone.png"}
    assert rows["a/gone.png"]["score"] == "" and rows["a/gone.png"]["error"] == (
        f"{inputs / 'a' / 'gone.png'} is a broken symbolic link (to {tmp_path / 'deleted.png'}); expected an "
        "image file")
    assert rows["a/x.png"]["error"] == ""


def test_a_full_disk_gives_one_line_and_leaves_no_output(tiny_run, inputs, tmp_path, monkeypatch):
    import kerasdec.deploy.predict as predict_module

    def full(path, image, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(predict_module, "write_image", full)
    result = CliRunner().invoke(main, ["predict", str(tiny_run.run_dir), str(inputs), "--out",
                                       str(tmp_path / "out")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0], lines
    assert lines[0].startswith(f"Error: Could not write {tmp_path / 'out'}: ")  # the output folder named
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs"]  # no out folder, no hidden one


def test_a_read_only_output_folder_gives_one_line(tiny_run, inputs, tmp_path, monkeypatch):
    monkeypatch.setattr("kerasdec.deploy.predict.os.access", lambda path, mode: False)  # root ignores chmod
    with pytest.raises(PermissionError, match=rf"--out {tmp_path / 'out'}: cannot write into {tmp_path} "):
        predict(tiny_run.run_dir, [inputs], tmp_path / "out")
    deep = tmp_path / "new" / "deeper" / "out"  # the first folder that exists is the one to write into
    with pytest.raises(PermissionError, match=rf"--out {deep}: cannot write into {tmp_path} "):
        predict(tiny_run.run_dir, [inputs], deep)


def test_refusals(tiny_run, inputs, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="busy exists and is not empty"):
        predict(tiny_run.run_dir, [inputs], busy)
    assert sorted(p.name for p in busy.iterdir()) == ["keep.txt"]
    with pytest.raises(FileNotFoundError, match="is not a model"):
        predict(inputs, [inputs], tmp_path / "x")
    assert not (tmp_path / "x").exists()  # nothing created on failure
    with pytest.raises(FileNotFoundError, match="input .*missing.png does not exist"):
        predict(tiny_run.run_dir, [inputs / "missing.png"], tmp_path / "y")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images found"):
        predict(tiny_run.run_dir, [tmp_path / "empty"], tmp_path / "z")


def test_collect_inputs_and_names(inputs):
    found = collect_inputs([inputs / "b", inputs / "a" / "x.png", inputs / "b"])
    assert [p.relative_to(inputs).as_posix() for p in found] == ["b/bad.png", "b/c/y.bmp", "b/x.jpg",
                                                                  "a/x.png"]
    names = overlay_names([Path("p/X.png"), Path("q/x.jpg"), Path("r/x-2.png"), Path("s/x.png")])
    assert names == ["overlays/X.png", "overlays/x-2.png", "overlays/x-2-2.png", "overlays/x-3.png"]


def test_colour_model_gets_rgb_at_its_input_size(inputs, tmp_path, monkeypatch):
    """A 3-channel model receives RGB (from a grayscale file too), resized to ITS size; overlays map back."""
    import kerasdec.deploy.predict as predict_module

    seen = []

    class Fake:
        info = ModelInfo(height=64, width=128, channels=3, threshold=0.5)
        source = "fake"

        def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            seen.append(x)
            heat = np.zeros((len(x), 8, 16))
            heat[:, :, 8:] = 1.0  # right half "defective"
            return np.full(len(x), 0.7), heat

    monkeypatch.setattr(predict_module.runners, "load", lambda *args, **kwargs: Fake())
    out = predict("ignored", [inputs / "b" / "x.jpg", inputs / "a" / "x.png"], tmp_path / "out")
    x = np.concatenate(seen)
    assert x.shape == (2, 64, 128, 3) and x.dtype == np.float32
    bgr = cv2.imread(str(inputs / "b" / "x.jpg"), cv2.IMREAD_COLOR)
    rgb = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (128, 64), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(x[0], rgb / 255.0, atol=1e-6)
    assert np.allclose(x[1][..., 0], x[1][..., 1])  # the grayscale file is replicated to 3 channels
    rows = _rows(out)
    assert rows["b/x.jpg"]["decision"] == "1" and float(rows["b/x.jpg"]["score"]) == 0.7
    picture = cv2.imread(str(out / rows["b/x.jpg"]["overlay"]))  # (130, 90, 3) BGR
    assert picture.shape == (130, 90, 3)
    # JET: probability 1 is red-ish (high R, low B), 0 blue-ish: the heatmap halves land on the image halves.
    left, right = picture[60:, :30].astype(float).mean((0, 1)), picture[60:, 60:].astype(float).mean((0, 1))
    assert right[2] - right[0] > left[2] - left[0] + 50
