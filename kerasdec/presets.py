"""The published per-dataset settings (docs/method.md#published-settings) as config values.

``preset(dataset, positives, protocol)`` gives a RunConfig; the CLI then overrides any field the user
set with ``dataclasses.replace``. Protocols: "icpr2020" (Božič et al., ICPR 2020) and "cis2021" (mixed
supervision, Computers in Industry 2021). KSDD2 exists only in the 2021 paper.
"""

from __future__ import annotations

from typing import Any

from kerasdec.config import DataConfig, RunConfig, TrainConfig

PROTOCOLS = ("icpr2020", "cis2021")

# Input size (W, H) and channels of each source. "folder" and "synthetic" default to our own choice.
INPUTS: dict[str, dict[str, int]] = {
    "ksdd": {"width": 512, "height": 1408, "channels": 1},
    "ksdd2": {"width": 232, "height": 640, "channels": 3},
    "dagm": {"width": 512, "height": 512, "channels": 1},
    "severstal": {"width": 1600, "height": 256, "channels": 1},
    "folder": {"width": 256, "height": 256, "channels": 1},
    "synthetic": {"width": 128, "height": 128, "channels": 1},
}

# (epochs, lr, delta, batch_size, p, w_pos, dilate); epochs None = by number of positives (below).
_SETTINGS: dict[tuple[str, str], tuple[Any, ...]] = {
    ("icpr2020", "dagm"): (60, 0.01, 1.0, 5, 1.0, 20.0, 1),
    ("icpr2020", "ksdd"): (None, 0.5, 0.01, 1, 2.0, 1.0, 1),
    ("icpr2020", "severstal"): (None, 0.1, 0.1, 10, 2.0, 1.0, 1),
    ("cis2021", "ksdd2"): (50, 0.01, 1.0, 1, 2.0, 3.0, 15),
    ("cis2021", "dagm"): (70, 0.05, 1.0, 1, 1.0, 10.0, 7),
    ("cis2021", "ksdd"): (50, 1.0, 0.01, 1, 2.0, 1.0, 7),
    ("cis2021", "severstal"): (None, 0.1, 0.1, 10, 2.0, 1.0, 1),
    # Not published: our defaults. "folder" follows the KSDD2 recipe (small colour/grey parts, coarse
    # labels); "synthetic" is tuned so that `kerasdec fit` finishes in minutes on 2 CPU cores.
    ("any", "folder"): (50, 0.01, 1.0, 1, 2.0, 3.0, 7),
    ("any", "synthetic"): (10, 0.05, 1.0, 2, 2.0, 3.0, 1),
}

# Epochs by number of positive training images N (KSDD: kos folders), per protocol
# (docs/method.md#published-settings).
_EPOCHS_BY_POSITIVES: dict[tuple[str, str], dict[int, int]] = {
    ("icpr2020", "ksdd"): {33: 35, 25: 40, 20: 50, 15: 70, 10: 90, 5: 150},
    ("icpr2020", "severstal"): {300: 90, 750: 70, 1000: 50, 1500: 50, 3000: 40},
    ("cis2021", "severstal"): {300: 90, 750: 80, 1500: 60, 3000: 40},
}

# Which model fit's test evaluation reports (docs/method.md#evaluation): the best-validation one where
# a real validation split exists (the published code forces USE_BEST_MODEL for Severstal), else the final.
TEST_MODEL: dict[str, str] = {"severstal": "best"}


def default_protocol(dataset: str) -> str:
    """The protocol whose settings a dataset gets when none is named: ICPR 2020 where it exists."""
    if dataset == "ksdd2":
        return "cis2021"
    if dataset in ("folder", "synthetic"):
        return "any"
    return "icpr2020"


def epochs_for(dataset: str, positives: int | None, protocol: str = "icpr2020") -> int:
    """Published epochs for N positives: the entry of the nearest published N (all = the largest N).

    Example:
        >>> epochs_for("ksdd", 10)
        90
    """
    table = _EPOCHS_BY_POSITIVES[(protocol, dataset)]
    n = max(table) if positives is None else positives
    nearest = min(table, key=lambda k: (abs(k - n), -k))
    return table[nearest]


def preset(dataset: str, positives: int | None = None, protocol: str | None = None,
           **data: Any) -> RunConfig:
    """RunConfig with the published settings of ``dataset`` (docs/method.md#published-settings).

    Published datasets get decision_target "mask_max", mask_values "gray" and their test_model
    (TEST_MODEL); synthetic and folder keep "image_label", "binary" and the final model. With no pixel
    labels at all (``segmented=0``) the dynamic balance is off, and KSDD also gets lr 0.01 and δ 1 (the
    2021 paper's M = 0 rules).

    Args:
        dataset: one of kerasdec.config.DATASETS.
        positives: number of positive training images, KSDD: kos folders (sets the epochs where the
            paper does).
        protocol: "icpr2020" or "cis2021"; None = default_protocol(dataset).
        **data: DataConfig fields that override the preset (root is required for every dataset but
            synthetic, category for dagm).

    Raises:
        ValueError: a protocol without settings for this dataset, or a missing root.

    Example:
        >>> preset("ksdd", positives=10, root="data/KolektorSDD").train.epochs
        90
    """
    protocol = protocol or default_protocol(dataset)
    key = ("any", dataset) if dataset in ("folder", "synthetic") else (protocol, dataset)
    if key not in _SETTINGS:
        known = sorted(p for p, d in _SETTINGS if d == dataset)
        raise ValueError(f"protocol={protocol!r} has no published settings for dataset={dataset!r}; "
                         f"expected one of {known}")
    epochs, lr, delta, batch, p, w_pos, dilate = _SETTINGS[key]
    if epochs is None:
        epochs = epochs_for(dataset, positives, protocol)
    published = key[0] != "any"
    defaults = dict(INPUTS[dataset], p=p, w_pos=w_pos, dilate=dilate,
                    decision_target="mask_max" if published else "image_label",
                    mask_values="gray" if published else "binary")  # as the reference reads masks
    data = DataConfig(**{**defaults, **data, "dataset": dataset, "positives": positives})
    dynamic_balance = True
    if published and data.segmented == 0:  # M = 0: no pixel labels at all
        dynamic_balance = False
        if dataset == "ksdd":
            lr, delta = 0.01, 1.0
    train = TrainConfig(epochs=epochs, lr=lr, delta=delta, batch_size=batch, dynamic_balance=dynamic_balance,
                        test_model=TEST_MODEL.get(dataset, "final"))
    return RunConfig(data=data, train=train)
