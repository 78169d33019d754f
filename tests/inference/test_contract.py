"""The input contract every runner enforces (kerasdec/inference/contract.py) and load()'s dispatch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kerasdec.inference import runners
from kerasdec.inference.contract import ModelInfo, check_images

INFO = ModelInfo(64, 96, 1, 0.5)


class Echo(runners.Runner):
    """A runner whose network returns the mean pixel as score: what reaches ``_predict`` is visible."""

    def __init__(self) -> None:
        self.info, self.source, self.seen = INFO, "m", []

    def _predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.seen.append(x)
        return x.mean(axis=(1, 2, 3)).astype(np.float64), np.zeros((len(x), 8, 12))


def test_valid_images_pass_as_float32_unchanged():
    x = np.random.default_rng(0).random((2, 64, 96, 1))  # float64 in [0, 1]
    checked = check_images(x, INFO, "m")
    assert checked.dtype == np.float32 and checked.shape == (2, 64, 96, 1)
    np.testing.assert_array_equal(checked, x.astype(np.float32))
    assert check_images(np.ones((1, 64, 96, 1), np.float32), INFO, "m").max() == 1.0  # the bounds are valid


@pytest.mark.parametrize("bad, message", [
    (np.zeros((1, 96, 64, 1), np.float32), r"m takes images of shape \(B >= 1, 64, 96, 1\) float32"),
    (np.zeros((0, 64, 96, 1), np.float32), r"received \(0, 64, 96, 1\)"),
    (np.zeros((64, 96, 1), np.float32), r"received \(64, 96, 1\)"),
    (np.zeros((1, 64, 96, 1), np.uint8), r"received uint8: convert pixels with image.astype\('float32'\)"),
    (np.full((1, 64, 96, 1), np.nan, np.float32), "NaN or infinity"),
    (np.full((1, 64, 96, 1), np.inf, np.float32), "NaN or infinity"),
    (np.full((1, 64, 96, 1), 255.0, np.float32), r"values in \[255, 255\]; expected images in \[0, 1\]"),
    (np.full((1, 64, 96, 1), -0.5, np.float32), r"values in \[-0.5, -0.5\]"),
])
def test_every_rule_is_one_clear_error_before_the_network_runs(bad, message):
    runner = Echo()
    with pytest.raises(ValueError, match=message):
        runner.predict(bad)
    assert runner.seen == []  # refused before the model


def test_predict_batches_joins_arrays_and_dataset_elements_in_order():
    runner = Echo()
    a, b = np.full((2, 64, 96, 1), 0.25, np.float32), np.full((1, 64, 96, 1), 0.75, np.float32)
    scores, heatmaps = runners.predict_batches(runner, [a, (b, None, None)])
    np.testing.assert_allclose(scores, [0.25, 0.25, 0.75])
    assert heatmaps.shape == (3, 8, 12)


def test_load_names_what_it_accepts(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("x")
    for path in (tmp_path / "notes.txt", tmp_path):
        with pytest.raises(FileNotFoundError, match="is not a model: expected a run directory"):
            runners.load(path)
    with pytest.raises(ValueError, match=r"threshold=1.5; expected a score threshold in \[0, 1\]"):
        runners.load(tmp_path, threshold=1.5)
    assert all(issubclass(r, runners.ArtifactRunner) for r in runners.RUNNERS)
