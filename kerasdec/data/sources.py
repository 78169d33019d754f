"""One entry point over all dataset sources: the samples of a split for a ``DataConfig``.

Each source module only indexes its own on-disk layout; this module picks the module, maps "val" to
"test" for datasets without a validation split (as the paper does), and applies the mixed-supervision
options ``positives`` / ``segmented`` to the training split.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Callable

import numpy as np

from kerasdec.config import DataConfig
from kerasdec.data import dagm, folder, ksdd, ksdd2, severstal, synthetic
from kerasdec.data.samples import Sample

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def validation_split(cfg: DataConfig) -> str:
    """The split to validate on: "val" for Severstal, "test" for the others (no validation split)."""
    return "val" if cfg.dataset == "severstal" else "test"


def load_split(cfg: DataConfig, split: str, seed: int) -> list[Sample]:
    """List the samples of one split of the configured dataset.

    Args:
        cfg: which dataset and where (dataset, root, positives, segmented, fold, category, split_file;
            for synthetic also height and width, the generated image size).
        split: "train", "val" or "test"; "val" of a dataset without one returns its test split.
        seed: seeds the KSDD folds, the Severstal partition, the choice of kept/segmented positives
            and the synthetic data.

    Returns:
        The samples; on "train" only ``cfg.positives`` positives are kept (all negatives stay) and
        only ``cfg.segmented`` of them keep pixel labels.

    Raises:
        FileNotFoundError: a missing root, split folder or file (from the source).
        ValueError: a bad split, zero images, positives/segmented larger than available, a
            split file for a dataset other than ksdd, any source-specific inconsistency.

    Example:
        >>> load_split(DataConfig(dataset="ksdd", root="data/KSDD", positives=5), "train", seed=0)
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; expected one of {SPLITS}")
    if cfg.split_file is not None and cfg.dataset != "ksdd":
        raise ValueError(f"split_file={cfg.split_file!r} is only read for dataset='ksdd'; "
                         f"got dataset={cfg.dataset!r}")
    source_split = "test" if split == "val" and validation_split(cfg) == "test" else split
    samples = _LISTERS[cfg.dataset](cfg, source_split, seed)
    if not samples:  # the sources raise this themselves; kept as a last guard
        raise ValueError(f"Found 0 images under {cfg.root}; expected {cfg.dataset} images in split "
                         f"{source_split!r}")
    if split == "train":
        samples = limit_supervision(samples, cfg.positives, cfg.segmented, seed)
    logger.info("%s %s: %d images, %d positive, %d segmented positive", cfg.dataset, split, len(samples),
                sum(s.is_positive for s in samples), sum(s.is_positive and s.is_segmented for s in samples))
    return samples


def limit_supervision(samples: list[Sample], positives: int | None, segmented: int | None,
                      seed: int) -> list[Sample]:
    """Keep ``positives`` positives and pixel labels on ``segmented`` of them; negatives all stay.

    The positives are shuffled with ``numpy.random.default_rng(seed)``; the first ``positives`` are
    kept, and the first ``segmented`` of those that have pixel labels keep them. Smaller counts
    therefore give nested subsets for one seed.

    Args:
        samples: the samples of a training split, in their order.
        positives: how many positives to keep; None = all.
        segmented: how many kept positives keep pixel labels; None = all that have them.
        seed: seed of the choice.

    Returns:
        The kept samples in their original order, image-label-only positives with is_segmented False.

    Raises:
        ValueError: positives larger than available, segmented larger than positives or than the
            kept positives that have pixel labels.
    """
    pos = [s for s in samples if s.is_positive]
    if positives is not None and positives > len(pos):
        raise ValueError(f"positives={positives} but only {len(pos)} positive training images are "
                         f"available; expected positives <= {len(pos)}")
    if segmented is not None and positives is not None and segmented > positives:
        raise ValueError(f"segmented={segmented} is larger than positives={positives}; "
                         "expected segmented <= positives")
    order = np.random.default_rng(seed).permutation(len(pos))
    kept = [pos[i] for i in order[:len(pos) if positives is None else positives]]
    if segmented is not None:
        labelled = [s.name for s in kept if s.is_segmented]
        if segmented > len(labelled):
            raise ValueError(f"segmented={segmented} but only {len(labelled)} of the {len(kept)} kept "
                             f"positive training images have pixel labels; expected segmented <= "
                             f"{len(labelled)}")
        keep_labels = set(labelled[:segmented])
        kept = [dataclasses.replace(s, is_segmented=s.name in keep_labels) for s in kept]
    by_name = {s.name: s for s in kept}
    return [by_name.get(s.name, s) for s in samples if not s.is_positive or s.name in by_name]


def _root(cfg: DataConfig) -> str:
    if cfg.root is None:
        raise ValueError(f"dataset={cfg.dataset!r} needs a data root (DataConfig.root)")
    return cfg.root


_LISTERS: dict[str, Callable[[DataConfig, str, int], list[Sample]]] = {
    "ksdd": lambda cfg, split, seed: ksdd.list_samples(
        _root(cfg), split, fold=0 if cfg.fold is None else cfg.fold, split_seed=seed,
        split_file=cfg.split_file),
    "ksdd2": lambda cfg, split, seed: ksdd2.list_samples(_root(cfg), split),
    "dagm": lambda cfg, split, seed: dagm.list_samples(_root(cfg), split, category=cfg.category),
    "severstal": lambda cfg, split, seed: severstal.list_samples(_root(cfg), split, seed=seed),
    "folder": lambda cfg, split, seed: folder.list_samples(_root(cfg), split),
    "synthetic": lambda cfg, split, seed: synthetic.list_samples(
        cfg.root, split, seed=seed, size=(cfg.height, cfg.width)),
}
