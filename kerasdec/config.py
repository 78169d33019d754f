"""Run settings as frozen dataclasses: one place for every knob, stored as config.json in a run.

Change a value with ``dataclasses.replace``; validation runs in ``__post_init__``. This module
imports no tensorflow so the CLI can validate flags before the slow import.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kerasdec.echo import shown

DATASETS = ("synthetic", "ksdd", "ksdd2", "dagm", "severstal", "folder")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16", "float64")  # float64: equivalence checks
DISTRIBUTES = ("none", "mirrored", "multiworker")
# The decision target (docs/method.md#loss-and-schedule): hard 0/1, or the max of the 1/8 mask
DECISION_TARGETS = ("image_label", "mask_max")
MASK_VALUES = ("binary", "gray")  # training targets from mask files: the mask rule, or gray value / 255
OPTIMIZERS = ("sgd", "adam")  # sgd = published (no momentum); adam = Keras Adam, defaults but lr
# Which model fit's test evaluation uses (docs/run-directory.md#which-model-is-tested).
TEST_MODELS = ("final", "best")
# Samples the published code leaves out of every split, per dataset (DataConfig.exclude = None).
DEFAULT_EXCLUDE: dict[str, tuple[str, ...]] = {"ksdd": ("kos21/Part7",)}
# Geometry groups for augmentation: "flips" = identity, horizontal, vertical flip and 180° rotation;
# "rot180" = identity and 180° rotation (keeps every texture orientation); "d4" adds the 90° rotations
# (square inputs only; an oriented texture turns by 90°, so only for surfaces that look alike rotated).
GEOMETRIES = ("none", "flips", "rot180", "d4")
DOWNSCALE = 8  # the segmentation stage's output is at 1/8 of the input: H and W multiples of 8
MIN_SIZE = 64  # the decision stage pools that 1/8 map three more times: below 64 nothing is left
# The network's size, per stage (docs/method.md#network). The depth is fixed: a MaxPool2 follows each of the 4
# segmentation stages but the last (1/8 = DOWNSCALE) and precedes each of the 3 decision blocks (MIN_SIZE).
SEGMENTATION_FILTERS = (32, 64, 64, 1024)  # published; the last stage's output is the "volume"
SEGMENTATION_BLOCKS = (1, 3, 4, 1)  # published: 9 convolutions
SEGMENTATION_KERNELS = (5, 5, 5, 15)  # published
DECISION_FILTERS = (8, 16, 32)  # published
DECISION_KERNELS = (5, 5, 5)  # published
# Images whose header declares more pixels are refused before decoding (data/imagesize.py): a small
# compressed file can declare 30000×30000 pixels, and the decoder allocates what it declares.
DEFAULT_MAX_PIXELS = 50_000_000  # 50 MP: 80× a KolektorSDD image, 120× a Severstal one


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _check_finite(name: str, value: float, rule: str) -> None:
    """A float setting must be a finite number (nan and inf pass most comparisons silently)."""
    _check(isinstance(value, (int, float)) and math.isfinite(value),
           f"{name}={shown(value)}; expected a finite number {rule} (--{name.replace('_', '-')})")


def check_input_size(width: int, height: int, where: str = "") -> None:
    """Raise ValueError unless both sides are multiples of DOWNSCALE and at least MIN_SIZE.

    Args:
        width: input width W.
        height: input height H.
        where: appended to the names in the message, e.g. " (metadata.json of D)".
    """
    for name, value in (("width", width), ("height", height)):
        _check(value >= MIN_SIZE and value % DOWNSCALE == 0,
               f"{name}={shown(value)}{where}; expected a multiple of {DOWNSCALE}, at least {MIN_SIZE}")


@dataclass(frozen=True)
class DataConfig:
    """Which images, at what size, and how targets and sampling are built
    (docs/method.md#targets-and-weights, docs/method.md#frequency-of-use-sampling,
    docs/method.md#dataset-formats)."""

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
    max_pixels: int = DEFAULT_MAX_PIXELS  # images (and masks) declaring more pixels are refused undecoded

    def __post_init__(self) -> None:
        _check(self.dataset in DATASETS, f"dataset={shown(self.dataset)}; expected one of {DATASETS}")
        _check(self.dataset == "synthetic" or self.root is not None,
               f"dataset={shown(self.dataset)} needs a data root (--data-root PATH)")
        check_input_size(self.width, self.height)
        _check(self.channels in (1, 3), f"channels={shown(self.channels)}; expected 1 or 3")
        _check(self.positives is None or self.positives >= 1,
               f"positives={shown(self.positives)}; expected >= 1 (--positives: training needs defective "
               "images) or None (all)")
        _check(self.segmented is None or self.segmented >= 0,
               f"segmented={shown(self.segmented)}; expected >= 0 or None (all)")
        _check(self.fold is None or self.fold in (0, 1, 2), f"fold={shown(self.fold)}; expected 0, 1 or 2")
        _check(self.fold is None or self.dataset == "ksdd",
               f"fold={shown(self.fold)} (--fold) is only used by dataset='ksdd'; "
               f"dataset={shown(self.dataset)} has no folds: drop it")
        _check(self.category is None or 1 <= self.category <= 10,
               f"category={shown(self.category)}; expected 1..10")
        _check(self.category is None or self.dataset == "dagm",
               f"category={shown(self.category)} (--category) is only used by dataset='dagm'; "
               f"dataset={shown(self.dataset)} has no categories: drop it")
        _check(self.dataset != "dagm" or self.category is not None,
               "dataset='dagm' needs a category (--category 1..10)")
        _check(self.dilate >= 1, f"dilate={shown(self.dilate)}; expected >= 1")
        _check(self.mask_values in MASK_VALUES,
               f"mask_values={shown(self.mask_values)}; expected one of {MASK_VALUES}")
        _check(self.decision_target in DECISION_TARGETS,
               f"decision_target={shown(self.decision_target)}; expected one of {DECISION_TARGETS}")
        if self.exclude is not None:  # JSON gives a list
            object.__setattr__(self, "exclude", tuple(str(name) for name in self.exclude))
        _check_finite("w_pos", self.w_pos, "> 0")
        _check(self.w_pos > 0, f"w_pos={shown(self.w_pos)}; expected > 0")
        _check_finite("p", self.p, ">= 0")
        _check(self.p >= 0, f"p={shown(self.p)}; expected >= 0")
        _check(self.augment_geometry in GEOMETRIES,
               f"augment_geometry={shown(self.augment_geometry)}; expected one of {GEOMETRIES}")
        _check(self.augment_geometry != "d4" or self.width == self.height,
               "augment_geometry='d4' rotates by 90°, which needs a square input; "
               f"width={shown(self.width)}, height={shown(self.height)}: use 'flips' or 'rot180' "
               "(--augment-geometry)")
        _check_finite("augment_jitter", self.augment_jitter, "in [0, 0.5]")
        _check(0 <= self.augment_jitter <= 0.5,
               f"augment_jitter={shown(self.augment_jitter)}; expected a number in [0, 0.5]")
        _check(isinstance(self.max_pixels, int) and self.max_pixels >= 1,
               f"max_pixels={shown(self.max_pixels)}; expected a whole number of pixels >= 1 (--max-pixels)")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, loss balance and the execution options (docs/method.md#loss-and-schedule)."""

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
    deterministic: bool = True  # reproducible arithmetic (kerasdec.determinism): same seed, same bits

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, f"epochs={shown(self.epochs)}; expected >= 1")
        _check(self.steps is None or self.steps >= 1,
               f"steps={shown(self.steps)}; expected >= 1 or None (--steps)")
        _check_finite("lr", self.lr, "> 0")
        _check(self.lr > 0, f"lr={shown(self.lr)}; expected > 0")
        _check_finite("delta", self.delta, ">= 0")
        _check(self.delta >= 0, f"delta={shown(self.delta)}; expected >= 0")
        _check(self.batch_size >= 1, f"batch_size={shown(self.batch_size)}; expected >= 1")
        _check(self.precision in PRECISIONS,
               f"precision={shown(self.precision)}; expected one of {PRECISIONS}")
        _check(self.validate_every >= 1, f"validate_every={shown(self.validate_every)}; expected >= 1")
        _check(self.optimizer in OPTIMIZERS,
               f"optimizer={shown(self.optimizer)}; expected one of {OPTIMIZERS}")
        _check(self.test_model in TEST_MODELS,
               f"test_model={shown(self.test_model)}; expected one of {TEST_MODELS}")
        _check(self.distribute in DISTRIBUTES,
               f"distribute={shown(self.distribute)}; expected one of {DISTRIBUTES}")


def check_sizes(name: str, values: Sequence[int], count: int, odd: bool = False) -> None:
    """Raise ValueError unless ``values`` holds ``count`` positive integers (odd ones with ``odd``).

    A size of the network (ModelConfig's fields, SegDecNet's arguments): the depth is fixed at 4
    segmentation stages and 3 decision blocks (DOWNSCALE, MIN_SIZE); odd kernels keep "same" padding
    symmetric, as published.
    """
    ok = isinstance(values, (list, tuple)) and len(values) == count and all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 and (v % 2 or not odd)
        for v in values)
    _check(ok, f"{name}={values!r}; expected {count} positive{' odd' if odd else ''} integers")


@dataclass(frozen=True)
class ModelConfig:
    """The network's size: SegDecNet's constructor arguments of the same names (docs/method.md#network).

    The default is the published network (15,637,213 parameters for 1 channel); the fixed depth and
    the order Block → MaxPool2 → ... are the method's, only widths, repeats and kernels vary.
    """

    seg_filters: tuple[int, ...] = SEGMENTATION_FILTERS  # output channels of the 4 segmentation stages
    seg_blocks: tuple[int, ...] = SEGMENTATION_BLOCKS  # conv blocks per segmentation stage
    seg_kernels: tuple[int, ...] = SEGMENTATION_KERNELS  # square kernel size per segmentation stage
    decision_filters: tuple[int, ...] = DECISION_FILTERS  # output channels of the 3 decision blocks
    decision_kernels: tuple[int, ...] = DECISION_KERNELS  # square kernel size per decision block

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            check_sizes(f.name, value, 4 if f.name.startswith("seg_") else 3, odd=f.name.endswith("kernels"))
            object.__setattr__(self, f.name, tuple(value))  # JSON gives lists


@dataclass(frozen=True)
class RunConfig:
    """Everything one training run needs; stored as run_dir/config.json."""

    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    model: ModelConfig = field(default_factory=ModelConfig)  # config.json without it: the published size
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
        model = _build(ModelConfig, d.pop("model", {}), "model")  # absent (older runs): published
        return _build(cls, d, "run", data=data, train=train, model=model)


def _build(cls: type, values: dict[str, Any], where: str, **extra: Any) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    _check(not unknown,
           f"unknown {where} config keys {shown(sorted(unknown))}; expected some of {sorted(known)}")
    return cls(**values, **extra)
