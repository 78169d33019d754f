"""predict on new images of any size from a run directory, a .keras file and an exported SavedModel."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from kerasdec.config import DataConfig
from kerasdec.evaluation.predict import collect_inputs, overlay_names, predict

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


def test_predict_from_keras_file(tiny_run, inputs, tmp_path):
    lone = tmp_path / "lone" / "model.keras"  # no config.json beside it
    lone.parent.mkdir()
    shutil.copy(tiny_run.run_dir / "model_final.keras", lone)
    with pytest.raises(ValueError, match="no config.json beside .*model.keras.*pass --width and --height"):
        predict(lone, [inputs], tmp_path / "refused")
    with pytest.raises(ValueError, match=r"width=32 \(input size\); expected a multiple of 8, at least 64"):
        predict(lone, [inputs], tmp_path / "too-small", width=32, height=64)
    assert not (tmp_path / "too-small").exists()
    out = predict(lone, [inputs], tmp_path / "out", width=64, height=64)
    rows = _check_outputs(out)
    score = float(rows["a/x.png"]["score"])
    assert score == pytest.approx(_expected_score(tiny_run.model, inputs / "a/x.png"), abs=1e-5)
    assert int(rows["a/x.png"]["decision"]) == int(score >= 0.5)  # default threshold without a run


def test_predict_from_saved_model(tiny_run, inputs, tmp_path):
    from kerasdec.export.saved_model import export_saved_model

    version = export_saved_model(tiny_run.model, tmp_path / "served", threshold=0.25,
                                 data_cfg=DataConfig(width=64, height=64, channels=1))
    out = predict(version, [inputs], tmp_path / "out")
    rows = _check_outputs(out, expect_decision=1)  # threshold 0.25 from metadata.json; scores are ~0.5
    keras_out = predict(tiny_run.run_dir / "model_final.keras", [inputs], tmp_path / "keras")
    for name, row in _rows(keras_out).items():
        if row["score"]:
            assert float(rows[name]["score"]) == pytest.approx(float(row["score"]), abs=1e-5)
    base = predict(tmp_path / "served", [inputs / "a"], tmp_path / "base")  # base folder: highest version
    assert (base / "overlays" / "x.png").is_file()


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
    import kerasdec.evaluation.predict as predict_module
    from kerasdec.evaluation.predictor import Predictor

    seen = []

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        seen.append(x)
        heat = np.zeros((len(x), 4, 8))
        heat[:, :, 4:] = 1.0  # right half "defective"
        return np.full(len(x), 0.7), heat

    fake = Predictor(run, width=64, height=32, channels=3, threshold=0.5, source="fake")
    monkeypatch.setattr(predict_module, "load_predictor", lambda *args, **kwargs: fake)
    out = predict("ignored", [inputs / "b" / "x.jpg", inputs / "a" / "x.png"], tmp_path / "out")
    x = np.concatenate(seen)
    assert x.shape == (2, 32, 64, 3) and x.dtype == np.float32
    bgr = cv2.imread(str(inputs / "b" / "x.jpg"), cv2.IMREAD_COLOR)
    rgb = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (64, 32), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(x[0], rgb / 255.0, atol=1e-6)
    assert np.allclose(x[1][..., 0], x[1][..., 1])  # the grayscale file is replicated to 3 channels
    rows = _rows(out)
    assert rows["b/x.jpg"]["decision"] == "1" and float(rows["b/x.jpg"]["score"]) == 0.7
    picture = cv2.imread(str(out / rows["b/x.jpg"]["overlay"]))  # (130, 90, 3) BGR
    assert picture.shape == (130, 90, 3)
    # JET: probability 1 is red-ish (high R, low B), 0 blue-ish: the heatmap halves land on the image halves.
    left, right = picture[60:, :30].astype(float).mean((0, 1)), picture[60:, 60:].astype(float).mean((0, 1))
    assert right[2] - right[0] > left[2] - left[0] + 50
