import dataclasses
import json
import re

import pytest

from kerasdec.config import DataConfig, ModelConfig, RunConfig, TrainConfig


def test_round_trip_through_json():
    cfg = RunConfig(data=DataConfig(dataset="ksdd", root="/data/ksdd", positives=10, segmented=3),
                    train=TrainConfig(epochs=7, lr=0.5, jit=True), seed=4, run_dir="runs/x",
                    model=ModelConfig(seg_filters=(8, 8, 8, 16), decision_kernels=(3, 3, 1)))
    again = RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.model.seg_filters == (8, 8, 8, 16)  # tuples again, not JSON's lists


def test_the_default_network_is_the_published_one_also_for_a_config_json_without_it():
    published = {"seg_filters": (32, 64, 64, 1024), "seg_blocks": (1, 3, 4, 1), "seg_kernels": (5, 5, 5, 15),
                 "decision_filters": (8, 16, 32), "decision_kernels": (5, 5, 5)}
    assert dataclasses.asdict(ModelConfig()) == published and RunConfig().model == ModelConfig()
    stored = RunConfig(model=ModelConfig(seg_blocks=(1, 1, 1, 1))).to_dict()
    del stored["model"]  # a run directory written before the size was stored
    assert RunConfig.from_dict(json.loads(json.dumps(stored))).model == ModelConfig()


@pytest.mark.parametrize("field, value, rule", [
    ("seg_filters", (32, 64, 1024), "expected 4 positive integers"),
    ("seg_kernels", (5, 5, 5, 14), "expected 4 positive odd integers"),
    ("decision_filters", (8, 16, 0), "expected 3 positive integers"),
    ("decision_kernels", "555", "expected 3 positive odd integers"),
])
def test_bad_network_sizes_name_the_field_also_from_config_json(field, value, rule):
    with pytest.raises(ValueError, match=rf"{field}={re.escape(repr(value))}; {rule}"):
        ModelConfig(**{field: value})
    stored = RunConfig().to_dict()
    stored["model"][field] = value
    with pytest.raises(ValueError, match=rf"{field}=.*; {rule}"):
        RunConfig.from_dict(json.loads(json.dumps(stored)))
    stored["model"] = {"width": 2}
    with pytest.raises(ValueError, match=r"unknown model config keys \['width'\]"):
        RunConfig.from_dict(stored)


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
    ({"optimizer": "rmsprop"}, r"optimizer='rmsprop'; expected one of \('sgd', 'adam'\)"),
])
def test_bad_train_settings_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_unknown_keys_are_named():
    d = RunConfig().to_dict()
    d["data"]["colour"] = True
    with pytest.raises(ValueError, match=r"unknown data config keys \['colour'\]"):
        RunConfig.from_dict(d)


@pytest.mark.parametrize("field, value", [("lr", float("inf")), ("lr", float("nan")), ("delta", float("nan")),
                                          ("delta", float("inf")), ("w_pos", float("inf")),
                                          ("p", float("nan"))])
def test_non_finite_numbers_are_rejected_also_from_config_json(field, value):
    flag = "--" + field.replace("_", "-")
    section = "train" if field in ("lr", "delta") else "data"
    with pytest.raises(ValueError, match=rf"{field}={value}; expected a finite number .*\({flag}\)"):
        (TrainConfig if section == "train" else DataConfig)(**{field: value})
    stored = RunConfig().to_dict()
    stored[section][field] = value
    with pytest.raises(ValueError, match=rf"{field}={value}"):
        RunConfig.from_dict(json.loads(json.dumps(stored)))  # json writes NaN/Infinity and reads them back


@pytest.mark.parametrize("kwargs, message", [
    ({"positives": 0}, r"positives=0; expected >= 1 \(--positives"),
    ({"dataset": "dagm", "root": "x", "category": 1, "fold": 1},
     r"fold=1 \(--fold\) is only used by dataset='ksdd'; dataset='dagm' has no folds"),
    ({"dataset": "folder", "root": "x", "category": 2}, r"category=2 \(--category\) is only used by"),
])
def test_settings_that_would_be_silently_ignored_are_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DataConfig(**kwargs)
    assert DataConfig(dataset="ksdd", root="x", fold=1, positives=1).fold == 1
