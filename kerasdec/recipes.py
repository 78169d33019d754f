"""Training recipes: "published" (the paper's settings, for reproduction) and "small" (a handful of parts).

``published`` leaves a preset exactly as presets.py gives it. ``small`` starts from the same preset and
adds augmentation in the pipeline, training only: flips / 180° rotation of image and mask
(SMALL_GEOMETRY; choose "rot180" when a mirrored surface is not a valid defect-free surface, "d4" for
square parts that look alike turned by 90°) and small brightness/contrast jitter (SMALL_JITTER); and it
trains SMALL_EPOCH_FACTOR times the preset's epochs (the augmentation makes the extra passes new
images, and with tens of positives the published epoch counts leave the decision stage untrained:
its loss was still falling at the last epoch) at a learning rate of at least SMALL_MIN_LR: the
presets at 0.01 (DAGM ICPR 2020, KSDD2, folder) get 3× theirs (at 0.01 the segmentation loss had
flattened before λ = 1 − e/E handed the loss to the decision stage); presets already higher keep
theirs (3× their rate was never measured).

Chosen by measurement (docs/small-data.md#measurements: hard synthetic family of experiments/hard_family.py,
10 defective training images, 128 px, DAGM layout and preset over 5 seeds, folder and KSDD2 over 1-2;
numbers there). Tried and dropped: one image per update for 1,200 updates (``--steps``; below the
augmentation alone on every seed), Adam (lr 1e-3; one seed far below SGD) and an exponential moving
average of the weights (momentum 0.99; no gain at lr 0.03). Pure config: no tensorflow import.
"""

from __future__ import annotations

import dataclasses
import math

from kerasdec.config import RunConfig

RECIPES = ("published", "small")
SMALL_GEOMETRY = "flips"  # identity, left-right, up-down, 180°: no 90° turn of oriented textures
SMALL_JITTER = 0.1  # brightness ±0.1, contrast ×(1 ± 0.1)
SMALL_EPOCH_FACTOR = 3  # epochs = 3 × the preset's (an explicit --epochs or --steps wins)
SMALL_MIN_LR = 0.03  # the learning rate is raised to this where the preset's is lower (--lr wins)


def default_recipe(dataset: str) -> str:
    """"small" for the user's own folder of parts, "published" for the public datasets."""
    return "small" if dataset == "folder" else "published"


def apply_recipe(cfg: RunConfig, recipe: str) -> RunConfig:
    """``cfg`` (a preset) with the recipe's settings on top.

    Args:
        cfg: a RunConfig from presets.preset.
        recipe: one of RECIPES.

    Returns:
        ``cfg`` itself for "published"; for "small": the augmentation geometry and jitter set,
        SMALL_EPOCH_FACTOR times the epochs and a learning rate of at least SMALL_MIN_LR.

    Raises:
        ValueError: an unknown recipe.

    Example:
        >>> apply_recipe(preset("folder", root="parts"), "small").data.augment_geometry
        'flips'
    """
    if recipe not in RECIPES:
        raise ValueError(f"recipe={recipe!r}; expected one of {RECIPES} (--recipe)")
    if recipe == "published":
        return cfg
    data = dataclasses.replace(cfg.data, augment_geometry=SMALL_GEOMETRY, augment_jitter=SMALL_JITTER)
    train = dataclasses.replace(cfg.train, epochs=cfg.train.epochs * SMALL_EPOCH_FACTOR,
                                lr=max(cfg.train.lr, SMALL_MIN_LR))
    return dataclasses.replace(cfg, data=data, train=train)


def resolve_epochs(cfg: RunConfig, epoch_size: int) -> RunConfig:
    """Set ``train.epochs`` from ``train.steps`` once the epoch size (samples per epoch) is known.

    Args:
        cfg: the run's settings; unchanged when ``train.steps`` is None.
        epoch_size: training samples per epoch (every positive + as many negatives).

    Returns:
        ``cfg`` with epochs = ceil(steps / batches per epoch), at least 1; batches per epoch =
        floor(epoch_size / batch_size) with ``train.drop_last`` (an incomplete batch is no update), else
        ceil.

    Example:
        >>> resolve_epochs(cfg_with_steps_2000_batch_1, epoch_size=40).train.epochs
        50
    """
    if cfg.train.steps is None:
        return cfg
    per_epoch = epoch_size / cfg.train.batch_size
    batches = max(1, math.floor(per_epoch) if cfg.train.drop_last else math.ceil(per_epoch))
    epochs = max(1, math.ceil(cfg.train.steps / batches))
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=epochs))
