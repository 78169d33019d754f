"""One entry point over all dataset sources: the samples of a split for a ``DataConfig``.

Each source module only indexes its own on-disk layout; this module picks the module (or the published
split file, kerasdec/data/splits.py), maps "val" to "test" for datasets without a validation split (as
the paper does), drops the excluded samples, and applies the mixed-supervision options ``positives`` /
``segmented`` to the training split (KSDD counts kos folders: kerasdec/data/ksdd.py).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np

from kerasdec.config import DEFAULT_EXCLUDE, DataConfig
from kerasdec.data import dagm, folder, ksdd, ksdd2, severstal, splits, synthetic
from kerasdec.data.samples import Sample
from kerasdec.echo import shown

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
        The samples without ``excluded(cfg)``; on "train" only ``cfg.positives`` positives are kept
        (all negatives stay; KSDD: kos folders) and only ``cfg.segmented`` of them keep pixel labels.
        With ``cfg.split_file`` the file's entries of the split (fold/category picked), whose
        counts positives/segmented, when given, must match.

    Raises:
        FileNotFoundError: a missing root, split folder or file (from the source).
        ValueError: a bad split, zero images, positives/segmented larger than available, a
            split file of another shape or naming a missing sample, any source-specific inconsistency.

    Example:
        >>> load_split(DataConfig(dataset="ksdd", root="data/KSDD", positives=5), "train", seed=0)
    """
    return _load_split(cfg, split, seed)[0]


def load_splits(cfg: DataConfig, names: tuple[str, ...], seed: int) -> dict[str, list[Sample]]:
    """``load_split`` of each split in ``names``; a name the user excluded (``cfg.exclude``) that is in
    none of them is logged as a warning: a misspelt --exclude must not pass without a word."""
    found = {name: _load_split(cfg, name, seed) for name in dict.fromkeys(names)}
    if cfg.exclude:
        dropped = set().union(*(dropped for _, dropped in found.values()))
        unmatched = [name for name in cfg.exclude if name not in dropped]
        if unmatched:
            example = next((s.name for samples, _ in found.values() for s in samples), "?")
            logger.warning("--exclude %s: no such sample in the %s splits %s (sample names look like %s); "
                           "nothing was excluded for %s", shown(unmatched), cfg.dataset, list(found),
                           shown(example), "it" if len(unmatched) == 1 else "them")
    return {name: samples for name, (samples, _) in found.items()}


def _load_split(cfg: DataConfig, split: str, seed: int) -> tuple[list[Sample], set[str]]:
    """``load_split``, and the names of the samples left out by ``excluded(cfg)``."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; expected one of {SPLITS}")
    source_split = "test" if split == "val" and validation_split(cfg) == "test" else split
    if cfg.split_file is not None:
        samples = from_split_file(cfg, source_split)
    else:
        samples = _LISTERS[cfg.dataset](cfg, source_split, seed)
    listed = {s.name for s in samples}
    samples = exclude(samples, excluded(cfg))
    dropped = listed - {s.name for s in samples}
    if not samples:  # the sources raise this themselves; kept as a last guard
        raise ValueError(f"Found 0 images under {cfg.root}; expected {cfg.dataset} images in split "
                         f"{source_split!r}")
    if split == "train" and cfg.split_file is not None:
        check_counts(samples, cfg)
    elif split == "train" and cfg.dataset != "ksdd":  # ksdd draws folders itself
        samples = limit_supervision(samples, cfg.positives, cfg.segmented, seed)
    logger.info("%s %s: %d images, %d positive, %d segmented positive", cfg.dataset, split, len(samples),
                sum(s.is_positive for s in samples), sum(s.is_positive and s.is_segmented for s in samples))
    return samples, dropped


def excluded(cfg: DataConfig) -> tuple[str, ...]:
    """The sample names left out of every split: cfg.exclude, or the dataset's DEFAULT_EXCLUDE."""
    return DEFAULT_EXCLUDE.get(cfg.dataset, ()) if cfg.exclude is None else cfg.exclude


def exclude(samples: list[Sample], names: tuple[str, ...]) -> list[Sample]:
    """``samples`` without those named in ``names`` (names absent from the split are ignored)."""
    dropped = set(names) & {s.name for s in samples}
    if dropped:
        logger.info("Excluded %s", sorted(dropped))
    return [s for s in samples if s.name not in dropped]


def from_split_file(cfg: DataConfig, split: str) -> list[Sample]:
    """The samples a published split file lists for ``split``, its segmented flags applied.

    Every name of the file reaches the disk through ``splits.resolve_name`` (the same rule for every
    dataset: no absolute name, nothing outside the data root once links are resolved) and must then be
    one of the dataset's own samples.

    Raises:
        ValueError: a file of another shape, a name leaving the data root, or an entry naming a sample
            that is not on disk.
    """
    group = (0 if cfg.fold is None else cfg.fold) if cfg.dataset == "ksdd" else cfg.category
    entries = splits.entries_for(cfg.split_file, cfg.dataset, split, group)
    root = Path(_root(cfg))
    if cfg.dataset == "ksdd":
        return _ksdd_folders(cfg, root, entries, split)
    if cfg.dataset == "severstal":
        on_disk, base, suffix = severstal.all_samples(root), root / "train_images", ".jpg"
    elif cfg.dataset == "ksdd2":
        on_disk, base, suffix = ksdd2.list_samples(root, split, cfg.max_pixels), root / split, ".png"
    else:  # dagm: file names with or without their extension
        on_disk = dagm.list_samples(root, split, category=cfg.category)
        base, suffix = on_disk[0].image_path.parent, ""
    _warn_duplicates(cfg, [key for key, _ in entries], split)
    by_path = {_image_key(s.image_path.resolve(), cfg.dataset): s for s in on_disk}
    chosen, missing = [], []
    for key, seg in entries:
        target = splits.resolve_name(root, base, key, cfg.split_file, suffix)
        sample = by_path.get(_image_key(target, cfg.dataset))
        if sample is None:
            missing.append(base / f"{key}{suffix}")
        else:
            chosen.append(dataclasses.replace(sample, is_segmented=seg or not sample.is_positive))
    _refuse_missing(cfg, missing, f"image {(missing or [''])[0]}")
    return chosen


def _image_key(path: Path, dataset: str) -> Path:
    """How a resolved image path is matched: DAGM names may leave out the extension."""
    return path.with_suffix("") if dataset == "dagm" and path.suffix.lower() == ".png" else path


def _ksdd_folders(cfg: DataConfig, root: Path, entries: list, split: str) -> list[Sample]:
    """KSDD entries name kos folders directly under the data root (a folder listed twice is used once)."""
    _warn_duplicates(cfg, [key for key, _ in entries], split)
    chosen, missing = {}, []
    for key, seg in entries:
        target = splits.resolve_name(root, root, key, cfg.split_file)
        if target.parent != root.resolve() or not target.is_dir():
            missing.append(root / key)
        else:
            chosen[target.name] = seg
    _refuse_missing(cfg, missing, f"folder {(missing or [''])[0]}")
    return ksdd.folders_samples(root, chosen, cfg.max_pixels)


def _warn_duplicates(cfg: DataConfig, keys: list, split: str) -> None:
    repeated = [key for key, count in Counter(keys).items() if count > 1]
    if repeated:
        logger.warning("%s lists %d name(s) of its %s part more than once, e.g. %s; %s", cfg.split_file,
                       len(repeated), split, shown(repeated[0]),
                       "each folder is used once" if cfg.dataset == "ksdd" else "each listing is used")


def _refuse_missing(cfg: DataConfig, missing: list, what: str) -> None:
    if missing:
        raise ValueError(f"{cfg.split_file}: lists {what}, which is not under the data root {cfg.root} "
                         f"({len(missing)} missing); expected the dataset the split file was made for")


def check_counts(samples: list[Sample], cfg: DataConfig) -> None:
    """positives/segmented given with a split file must agree with it (KSDD counts kos folders)."""
    def unit(s: Sample) -> str:
        return s.name.split("/")[0] if cfg.dataset == "ksdd" else s.name
    counts = {"positives": len({unit(s) for s in samples if s.is_positive}),
              "segmented": len({unit(s) for s in samples if s.is_positive and s.is_segmented})}
    for name, found in counts.items():
        given = getattr(cfg, name)
        if given is not None and given != found:
            raise ValueError(f"{name}={given} but the split file {cfg.split_file} trains on {found}; "
                             f"expected --{name} {found} or no --{name} with --split-file")


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
        folders=cfg.positives, segmented=cfg.segmented, seed=seed, max_pixels=cfg.max_pixels),
    "ksdd2": lambda cfg, split, seed: ksdd2.list_samples(_root(cfg), split, cfg.max_pixels),
    "dagm": lambda cfg, split, seed: dagm.list_samples(_root(cfg), split, category=cfg.category),
    "severstal": lambda cfg, split, seed: severstal.list_samples(_root(cfg), split, seed=seed),
    "folder": lambda cfg, split, seed: folder.list_samples(_root(cfg), split),
    "synthetic": lambda cfg, split, seed: synthetic.list_samples(
        cfg.root, split, seed=seed, size=(cfg.height, cfg.width)),
}
