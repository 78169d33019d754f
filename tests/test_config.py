import dataclasses
import json

import pytest

from kerasdec.config import DataConfig, RunConfig, TrainConfig


def test_round_trip_through_json():
    cfg = RunConfig(data=DataConfig(dataset="ksdd", root="/data/ksdd", positives=10, segmented=3),
                    train=TrainConfig(epochs=7, lr=0.5, jit=True), seed=4, run_dir="runs/x")
    again = RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


def test_frozen_and_replace_validates():
    cfg = DataConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.width = 64
    with pytest.raises(ValueError, match=r"width=100; expected a multiple of 8, at least 64"):
        dataclasses.replace(cfg, width=100)


@pytest.mark.parametrize("kwargs, message", [
    ({"dataset": "mnist"}, r"dataset='mnist'; expected one of"),
    ({"dataset": "ksdd"}, r"needs a data root \(--data-root PATH\)"),
    ({"channels": 2}, r"channels=2; expected 1 or 3"),
    ({"dataset": "dagm", "root": "x"}, r"needs a category"),
    ({"category": 11}, r"category=11; expected 1..10"),
    ({"fold": 3}, r"fold=3; expected 0, 1 or 2"),
    ({"dilate": 0}, r"dilate=0; expected >= 1"),
])
def test_bad_data_settings_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DataConfig(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0}, r"epochs=0; expected >= 1"),
    ({"precision": "half"}, r"precision='half'; expected one of"),
    ({"distribute": "tpu"}, r"distribute='tpu'; expected one of"),
])
def test_bad_train_settings_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_unknown_keys_are_named():
    d = RunConfig().to_dict()
    d["data"]["colour"] = True
    with pytest.raises(ValueError, match=r"unknown data config keys \['colour'\]"):
        RunConfig.from_dict(d)
