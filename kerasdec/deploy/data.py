"""The images an export needs: int8 calibration images (training split) and held-out check images.

Both are listed and decoded BEFORE anything is exported, so a moved data root, an empty split or a
corrupt file fails the export before any version is written. Calibration comes from the training
split, the self-check from the validation split where the dataset has one and the test split
otherwise: the two never share an image.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kerasdec.config import DataConfig, RunConfig
from kerasdec.data.samples import Sample

logger = logging.getLogger(__name__)

MIN_CALIBRATION = 100  # int8 calibration images: at least this many, or the whole training split
DEFAULT_CHECK_IMAGES = 200  # held-out images the self-check compares (all when fewer)
BATCH = 8  # images per runner call


@dataclass(frozen=True)
class HeldOut:
    """Held-out images for the self-check, decoded at the model's input size."""

    batches: list[np.ndarray]  # (b, H, W, C) float32 in [0, 1]
    labels: np.ndarray | None  # (N,) bool, None for probe images without labels
    description: str  # e.g. "synthetic test split (120 images)"


def spread(samples: Sequence[Sample], count: int) -> list[Sample]:
    """``count`` samples spread evenly over each class, in proportion, with both classes when present."""
    if len(samples) <= count:
        return list(samples)
    positives = [s for s in samples if s.is_positive]
    negatives = [s for s in samples if not s.is_positive]
    k_pos = min(len(positives), max(1, round(count * len(positives) / len(samples)))) if positives else 0
    picked = []
    for group, k in ((positives, k_pos), (negatives, count - k_pos)):
        if group and k > 0:
            picked += [group[i] for i in np.unique(np.linspace(0, len(group) - 1, k).round().astype(int))]
    return picked


def data_config(cfg: RunConfig, data_root: Path | str | None) -> DataConfig:
    """The run's data settings, with the data root replaced when the data moved."""
    return cfg.data if data_root is None else dataclasses.replace(cfg.data, root=str(data_root))


def load_images(samples: Sequence[Sample], data_cfg: DataConfig) -> list[np.ndarray]:
    """Decode ``samples`` as training does; batches of (b, H, W, C) float32 in [0, 1].

    Raises:
        FileNotFoundError, ValueError: a missing or corrupt file (named).
    """
    from kerasdec.data.pipeline import make_eval_dataset

    dataset = make_eval_dataset(samples, data_cfg, BATCH)
    return [np.asarray(x) for x, _, _ in dataset]


def calibration_images(data_cfg: DataConfig, seed: int, count: int = MIN_CALIBRATION) -> np.ndarray:
    """(N, H, W, C) training images for int8 calibration: ``count`` (>= 100) spread over both classes.

    Raises:
        ValueError: ``count`` below MIN_CALIBRATION, or an empty training split.
    """
    from kerasdec.data.sources import load_split

    if count < MIN_CALIBRATION:
        raise ValueError(f"calibration count {count}; expected at least {MIN_CALIBRATION} images (or the "
                         "whole training split when it is smaller)")
    samples = spread(load_split(data_cfg, "train", seed), count)
    if not samples:
        raise ValueError(f"the {data_cfg.dataset} training split under {data_cfg.root} is empty; int8 "
                         "needs calibration images")
    logger.info("int8 calibration on %d training images (%d defective)", len(samples),
                sum(s.is_positive for s in samples))
    return np.concatenate(load_images(samples, data_cfg))


def held_out_images(data_cfg: DataConfig, seed: int, count: int = DEFAULT_CHECK_IMAGES) -> HeldOut:
    """Up to ``count`` images of the validation (else test) split, spread over both classes."""
    from kerasdec.data.sources import load_split, validation_split

    split = validation_split(data_cfg)
    samples = spread(load_split(data_cfg, split, seed), count)
    if not samples:
        raise ValueError(f"the {data_cfg.dataset} {split} split under {data_cfg.root} is empty; the "
                         "export self-check needs held-out images")
    labels = np.array([s.is_positive for s in samples])
    return HeldOut(load_images(samples, data_cfg), labels,
                   f"{data_cfg.dataset} {split} split ({len(samples)} images)")


def probe_images(height: int, width: int, channels: int, count: int = 8, seed: int = 0) -> HeldOut:
    """Smooth seeded noise images, for a bare .keras file that has no data to check on."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((count, height // 8, width // 8, channels), dtype=np.float32)
    smooth = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)
    images = np.clip(0.8 * smooth + 0.2 * rng.random(smooth.shape, dtype=np.float32), 0.0, 1.0)
    return HeldOut([images[i:i + BATCH] for i in range(0, count, BATCH)], None,
                   f"{count} seeded noise images (no data: a bare .keras file)")
