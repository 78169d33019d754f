"""Model selection (docs/method.md#evaluation): with test_model="best" (Severstal's real validation split)
fit's test evaluation, the threshold and finished.json belong to the best-validation model, not the final
one."""

from __future__ import annotations

import csv
import json

import keras
import numpy as np
from fakes import TINY_MODEL

from kerasdec.config import DataConfig, RunConfig, TrainConfig
from kerasdec.data import pipeline, sources
from kerasdec.inference.runners import load, sigmoid
from kerasdec.inference.threshold import stored_threshold
from kerasdec.models.saving import load_model
from kerasdec.rundir import model_path
from kerasdec.training.fit import fit


class SpoilLastEpoch(keras.callbacks.Callback):
    """After the last epoch's validation (which saved the best model), flip the decision head: the
    final model then scores differently from the best one."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        dense = self.model.decision_net.dense
        dense.kernel.assign(-dense.kernel)
        dense.bias.assign(-dense.bias - 3.0)


def _scores(model_file, samples, cfg: DataConfig) -> dict[str, float]:
    ds = pipeline.make_eval_dataset(samples, cfg, batch_size=2)
    logits = load_model(model_file).predict(ds, verbose=0)["decision"][:, 0]
    return {s.name: float(v) for s, v in zip(samples, sigmoid(logits))}


def test_best_validation_model_is_tested_and_carries_the_threshold(severstal_root, tmp_path):
    cfg = RunConfig(data=DataConfig(dataset="severstal", root=str(severstal_root), width=64, height=64,
                                    decision_target="mask_max"),
                    train=TrainConfig(epochs=1, lr=0.01, batch_size=2, validate_every=1, test_model="best"),
                    seed=0, run_dir=str(tmp_path / "run"), model=TINY_MODEL)
    run_dir = fit(cfg, callbacks=[SpoilLastEpoch()])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    finished = json.loads((run_dir / "finished.json").read_text())
    saved = json.loads((run_dir / "config.json").read_text())
    assert metrics["test_model"] == finished["test_model"] == saved["train"]["test_model"] == "best"
    with open(run_dir / "results.csv", newline="") as f:
        reported = {row["name"]: float(row["score"]) for row in csv.DictReader(f)}
    test = sources.load_split(cfg.data, "test", seed=0)
    best = _scores(run_dir / "model_best.keras", test, cfg.data)
    final = _scores(run_dir / "model_final.keras", test, cfg.data)
    names = sorted(reported)
    np.testing.assert_allclose([reported[n] for n in names], [best[n] for n in names], atol=1e-5)
    assert not np.allclose([reported[n] for n in names], [final[n] for n in names], atol=1e-3)
    assert load_model(run_dir / "model_best.keras").threshold == metrics["threshold"]  # carried by the model
    assert stored_threshold(run_dir / "model_best.keras")[0] == metrics["threshold"]
    assert stored_threshold(run_dir / "model_final.keras") == (None, None)  # not tested, no threshold
    # evaluate, predict and export default to the tested model, the one with the threshold
    assert model_path(run_dir) == run_dir / "model_best.keras"
    assert load(run_dir).info.threshold == metrics["threshold"]
