"""Run settings as frozen dataclasses: one place for every knob, stored as config.json in a run.

Change a value with ``dataclasses.replace``; validation runs in ``__post_init__``. This module
imports no tensorflow so the CLI can validate flags before the slow import.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

DATASETS = ("synthetic", "ksdd", "ksdd2", "dagm", "severstal", "folder")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16", "float64")  # float64: equivalence checks
DISTRIBUTES = ("none", "mirrored", "multiworker")
DECISION_TARGETS = ("image_label", "mask_max")  # METHOD.md §2: hard 0/1, or the max of the 1/8 mask
MASK_VALUES = ("binary", "gray")  # training targets from mask files: the mask rule, or gray value / 255
OPTIMIZERS = ("sgd", "adam")  # sgd = published (no momentum); adam = Keras Adam, defaults but lr
TEST_MODELS = ("final", "best")  # which model fit's test evaluation uses (METHOD.md §5)
# Samples the published code leaves out of every split, per dataset (DataConfig.exclude = None).
DEFAULT_EXCLUDE: dict[str, tuple[str, ...]] = {"ksdd": ("kos21/Part7",)}
# Geometry groups for augmentation: "flips" = identity, horizontal, vertical flip and 180° rotation;
# "rot180" = identity and 180° rotation (keeps every texture orientation); "d4" adds the 90° rotations
# (square inputs only; an oriented texture turns by 90°, so only for surfaces that look alike rotated).
GEOMETRIES = ("none", "flips", "rot180", "d4")
DOWNSCALE = 8  # the segmentation stage's output is at 1/8 of the input: H and W multiples of 8
MIN_SIZE = 64  # the decision stage pools that 1/8 map three more times: below 64 nothing is left


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _check_finite(name: str, value: float, rule: str) -> None:
    """A float setting must be a finite number (nan and inf pass most comparisons silently)."""
    _check(isinstance(value, (int, float)) and math.isfinite(value),
           f"{name}={value}; expected a finite number {rule} (--{name.replace('_', '-')})")


def check_input_size(width: int, height: int, where: str = "") -> None:
    """Raise ValueError unless both sides are multiples of DOWNSCALE and at least MIN_SIZE.

    Args:
        width: input width W.
        height: input height H.
        where: appended to the names in the message, e.g. " (metadata.json of D)".
    """
    for name, value in (("width", width), ("height", height)):
        _check(value >= MIN_SIZE and value % DOWNSCALE == 0,
               f"{name}={value}{where}; expected a multiple of {DOWNSCALE}, at least {MIN_SIZE}")


@dataclass(frozen=True)
class DataConfig:
    """Which images, at what size, and how targets and sampling are built (METHOD.md §3, §4, §6)."""

    dataset: str = "synthetic"  # one of DATASETS
    root: str | None = None  # dataset folder; None only for synthetic (generated into a cache folder)
    width: int = 128  # network input width W (multiple of 8, >= 64)
    height: int = 128  # network input height H (multiple of 8, >= 64)
    channels: int = 1  # 1 = read as grayscale, 3 = colour
    positives: int | None = None  # positive training images (KSDD: kos folders) to keep; None = all
    segmented: int | None = None  # of those, this many keep pixel labels; None = all
    fold: int | None = None  # KSDD cross-validation fold 0..2; None = 0 for ksdd
    category: int | None = None  # DAGM class 1..10; required for dagm
    split_file: str | None = None  # published split file (pickle or JSON, data/splits.py); None = seeded
    exclude: tuple[str, ...] | None = None  # sample names left out of every split; None = DEFAULT_EXCLUDE
    decision_target: str = "image_label"  # classification target of a positive: 1, or its 1/8 mask's max
    mask_values: str = "binary"  # training targets: "binary" (decode.py's mask rule) or "gray" (value/255,
    # antialiased edges kept soft, as the published code reads masks); 0/1 label images count as 0/255
    dilate: int = 1  # d×d square dilation of masks; 1 = none
    weighted_seg: bool = True  # distance-transform weights inside defects
    w_pos: float = 1.0  # weight scale inside defects
    p: float = 2.0  # exponent of the normalised distance
    frequency_sampling: bool = True  # frequency-of-use sampling of negatives; False = uniform
    augment_geometry: str = "none"  # training-time geometry group (GEOMETRIES); "none" as published
    augment_jitter: float = 0.0  # training-time brightness/contrast jitter amplitude; 0 = off (published)

    def __post_init__(self) -> None:
        _check(self.dataset in DATASETS, f"dataset={self.dataset!r}; expected one of {DATASETS}")
        _check(self.dataset == "synthetic" or self.root is not None,
               f"dataset={self.dataset!r} needs a data root (--data-root PATH)")
        check_input_size(self.width, self.height)
        _check(self.channels in (1, 3), f"channels={self.channels}; expected 1 or 3")
        _check(self.positives is None or self.positives >= 1,
               f"positives={self.positives}; expected >= 1 (--positives: training needs defective images) "
               "or None (all)")
        _check(self.segmented is None or self.segmented >= 0,
               f"segmented={self.segmented}; expected >= 0 or None (all)")
        _check(self.fold is None or self.fold in (0, 1, 2), f"fold={self.fold}; expected 0, 1 or 2")
        _check(self.fold is None or self.dataset == "ksdd",
               f"fold={self.fold} (--fold) is only used by dataset='ksdd'; dataset={self.dataset!r} has "
               "no folds: drop it")
        _check(self.category is None or 1 <= self.category <= 10,
               f"category={self.category}; expected 1..10")
        _check(self.category is None or self.dataset == "dagm",
               f"category={self.category} (--category) is only used by dataset='dagm'; "
               f"dataset={self.dataset!r} has no categories: drop it")
        _check(self.dataset != "dagm" or self.category is not None,
               "dataset='dagm' needs a category (--category 1..10)")
        _check(self.dilate >= 1, f"dilate={self.dilate}; expected >= 1")
        _check(self.mask_values in MASK_VALUES,
               f"mask_values={self.mask_values!r}; expected one of {MASK_VALUES}")
        _check(self.decision_target in DECISION_TARGETS,
               f"decision_target={self.decision_target!r}; expected one of {DECISION_TARGETS}")
        if self.exclude is not None:  # JSON gives a list
            object.__setattr__(self, "exclude", tuple(str(name) for name in self.exclude))
        _check_finite("w_pos", self.w_pos, "> 0")
        _check(self.w_pos > 0, f"w_pos={self.w_pos}; expected > 0")
        _check_finite("p", self.p, ">= 0")
        _check(self.p >= 0, f"p={self.p}; expected >= 0")
        _check(self.augment_geometry in GEOMETRIES,
               f"augment_geometry={self.augment_geometry!r}; expected one of {GEOMETRIES}")
        _check(self.augment_geometry != "d4" or self.width == self.height,
               f"augment_geometry='d4' rotates by 90°, which needs a square input; width={self.width}, "
               f"height={self.height}: use 'flips' or 'rot180' (--augment-geometry)")
        _check_finite("augment_jitter", self.augment_jitter, "in [0, 0.5]")
        _check(0 <= self.augment_jitter <= 0.5,
               f"augment_jitter={self.augment_jitter}; expected a number in [0, 0.5]")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, loss balance and the execution options (METHOD.md §2)."""

    epochs: int = 25  # number of epochs E
    steps: int | None = None  # size the run by optimizer updates: epochs = ceil(steps / batches per
    # epoch), set when the training split is listed (recipes.resolve_epochs); None = use epochs
    lr: float = 0.05  # learning rate (constant: no schedule)
    optimizer: str = "sgd"  # "sgd" (published: plain SGD, no momentum) or "adam"
    delta: float = 1.0  # δ, weight of the classification loss
    batch_size: int = 2  # per-sample losses are summed over the batch
    dynamic_balance: bool = True  # λ = 1 − e/E; False: λ_seg = 1, λ_cls = δ
    gradient_adjustment: bool = True  # stop the decision loss at the segmentation stage
    precision: str = "auto"  # "auto" = mixed_float16 on a GPU, float32 otherwise
    jit: bool | None = None  # XLA; None = on when a GPU is visible
    validate_every: int = 5  # validate at epochs 0, V, 2V, ... (0-based) and at the last
    test_model: str = "final"  # "best" = the best-validation model is tested (Severstal), else the final
    drop_last: bool = True  # drop an incomplete last training batch, as the published loader does
    distribute: str = "none"  # "mirrored": MirroredStrategy, local GPUs; "multiworker": the TF_CONFIG cluster

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, f"epochs={self.epochs}; expected >= 1")
        _check(self.steps is None or self.steps >= 1, f"steps={self.steps}; expected >= 1 or None (--steps)")
        _check_finite("lr", self.lr, "> 0")
        _check(self.lr > 0, f"lr={self.lr}; expected > 0")
        _check_finite("delta", self.delta, ">= 0")
        _check(self.delta >= 0, f"delta={self.delta}; expected >= 0")
        _check(self.batch_size >= 1, f"batch_size={self.batch_size}; expected >= 1")
        _check(self.precision in PRECISIONS,
               f"precision={self.precision!r}; expected one of {PRECISIONS}")
        _check(self.validate_every >= 1, f"validate_every={self.validate_every}; expected >= 1")
        _check(self.optimizer in OPTIMIZERS, f"optimizer={self.optimizer!r}; expected one of {OPTIMIZERS}")
        _check(self.test_model in TEST_MODELS,
               f"test_model={self.test_model!r}; expected one of {TEST_MODELS}")
        _check(self.distribute in DISTRIBUTES,
               f"distribute={self.distribute!r}; expected one of {DISTRIBUTES}")


@dataclass(frozen=True)
class RunConfig:
    """Everything one training run needs; stored as run_dir/config.json."""

    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0  # seeds splits, sampling, initialisation and the synthetic data
    run_dir: str | None = None  # None = runs/<dataset>-<time>; an existing folder is never reused

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict, JSON-serialisable."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """Inverse of ``to_dict``; unknown keys raise ValueError naming them."""
        d = dict(d)
        data = _build(DataConfig, d.pop("data", {}), "data")
        train = _build(TrainConfig, d.pop("train", {}), "train")
        return _build(cls, d, "run", data=data, train=train)


def _build(cls: type, values: dict[str, Any], where: str, **extra: Any) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    _check(not unknown, f"unknown {where} config keys {sorted(unknown)}; expected some of {sorted(known)}")
    return cls(**values, **extra)
