"""Recipes: "published" leaves presets alone, "small" is the folder default; --steps sizes the run."""

from __future__ import annotations

import dataclasses

import pytest

from kerasdec.cli import build_fit_config
from kerasdec.config import RunConfig, TrainConfig
from kerasdec.presets import preset
from kerasdec.recipes import apply_recipe, default_recipe, resolve_epochs


def test_small_is_the_default_of_folder_only():
    assert default_recipe("folder") == "small"
    assert {default_recipe(d) for d in ("ksdd", "ksdd2", "dagm", "severstal", "synthetic")} == {"published"}
    folder = build_fit_config("folder", None, None, 0, None, root="/parts")
    assert (folder.data.augment_geometry, folder.data.augment_jitter) == ("flips", 0.1)
    plain = preset("folder", root="/parts")  # small = the preset + augmentation + 3× the epochs, lr 0.03
    assert folder.train == dataclasses.replace(plain.train, epochs=3 * plain.train.epochs, lr=0.03)
    assert (folder.train.epochs, plain.train.lr) == (150, 0.01)
    assert folder.train.steps is None
    assert dataclasses.replace(folder.data, augment_geometry="none", augment_jitter=0.0) == plain.data
    dagm = build_fit_config("dagm", None, None, 0, None, root="/d", category=2)
    assert (dagm.train.steps, dagm.train.batch_size, dagm.data.augment_geometry) == (None, 5, "none")


def test_recipe_flag_and_explicit_flags_win():
    cfg = build_fit_config("dagm", 10, None, 0, None, "small", root="/d", category=2,
                           augment_geometry="rot180")
    assert cfg.data.augment_geometry == "rot180" and cfg.data.augment_jitter == 0.1
    assert cfg.train.epochs == 3 * preset("dagm", root="/d", category=2).train.epochs
    assert cfg.train.lr == 0.03  # raised from the ICPR DAGM preset's 0.01
    kept_rates = (("ksdd", "icpr2020", 0.5, {}), ("dagm", "cis2021", 0.05, {"category": 2}))
    for dataset, protocol, lr, more in kept_rates:
        kept = build_fit_config(dataset, None, protocol, 0, None, "small", root="/d", **more)
        assert kept.train.lr == lr == preset(dataset, protocol=protocol, root="/d", **more).train.lr  # kept
    cfg = build_fit_config("dagm", 10, None, 0, None, "small", root="/d", category=2, lr=0.02)
    assert cfg.train.lr == 0.02  # an explicit --lr wins
    cfg = build_fit_config("folder", None, None, 0, None, "published", root="/parts")
    assert cfg.train.steps is None and cfg.data.augment_geometry == "none" and cfg.train.epochs == 50
    cfg = build_fit_config("folder", None, None, 0, None, root="/parts", epochs=7)
    assert cfg.train.epochs == 7 and cfg.data.augment_geometry == "flips"  # an explicit --epochs wins
    cfg = build_fit_config("folder", None, None, 0, None, root="/parts", steps=300, batch_size=1)
    assert (cfg.train.steps, cfg.train.batch_size) == (300, 1)  # sized by updates when asked
    with pytest.raises(ValueError, match="recipe='big'"):
        apply_recipe(RunConfig(), "big")


@pytest.mark.parametrize("steps, batch, epoch_size, drop_last, epochs",
                         [(1200, 1, 20, True, 60), (1200, 1, 40, True, 30), (100, 5, 23, False, 20),
                          (100, 5, 23, True, 25), (1, 1, 40, True, 1)])
def test_steps_become_epochs(steps, batch, epoch_size, drop_last, epochs):
    train = TrainConfig(steps=steps, batch_size=batch, drop_last=drop_last)
    cfg = dataclasses.replace(RunConfig(), train=train)
    assert resolve_epochs(cfg, epoch_size).train.epochs == epochs
    assert resolve_epochs(RunConfig(), epoch_size) == RunConfig()  # no steps: untouched
