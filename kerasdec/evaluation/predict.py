"""Score new images of any size with a trained model: scores.csv and one heatmap overlay per image.

Each image is read as grayscale or colour as the model needs, resized (bilinear) to the model's input
size, scored, and its heatmap is mapped back to the image's ORIGINAL size for the overlay. A file that
cannot be read is logged as an error and listed in scores.csv with an empty score and the reason in
the ``error`` column; the other images are still processed.

Output folder::

    OUT/scores.csv            path, score, decision (1 = defective, score >= threshold), overlay, error
    OUT/overlays/<stem>.png   overlay at the input's size; <stem>-2.png, -3, ... when stems repeat
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from kerasdec.evaluation.predictor import Predictor, load_predictor

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")  # searched in folders
OVERLAYS_DIR = "overlays"
CSV_COLUMNS = ("path", "score", "decision", "overlay", "error")

Progress = Callable[[int, int], None]  # (images done, images in total)


def collect_inputs(inputs: Iterable[Path | str], suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[Path]:
    """Image files from files and folders (searched recursively, sorted, case-insensitive suffixes).

    A file named explicitly is taken whatever its suffix; a path given twice is listed once.

    Raises:
        FileNotFoundError: an input does not exist.
        ValueError: no image found at all.
    """
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found += sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        elif item.is_file():
            found.append(item)
        else:
            raise FileNotFoundError(f"input {item} does not exist; expected an image file or a folder")
    unique = list(dict.fromkeys(found))
    if not unique:
        raise ValueError(f"no images found in {[str(i) for i in inputs]}; expected files ending in "
                         f"{suffixes}")
    return unique


def overlay_names(paths: Sequence[Path]) -> list[str]:
    """``overlays/<stem>.png`` per input, with -2, -3, ... added when stems repeat (case-insensitive)."""
    taken: set[str] = set()
    names = []
    for path in paths:
        stem, k = path.stem, 1
        while (candidate := stem if k == 1 else f"{stem}-{k}").lower() in taken:
            k += 1
        taken.add(candidate.lower())
        names.append(f"{OVERLAYS_DIR}/{candidate}.png")
    return names


def _check_out(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"output folder {out_dir} exists and is not empty; expected a new or empty "
                              "folder (predict never overwrites): choose another --out")


def _read(path: Path, predictor: Predictor) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """(original uint8 image, resized float32 input, "") or (None, None, error message)."""
    from kerasdec.data import targets
    from kerasdec.data.decode import read_image

    try:
        image = read_image(path, predictor.channels)  # (h, w, C) uint8
    except (ValueError, OSError, cv2.error) as err:
        logger.error("skipping %s: %s", path, err)
        return None, None, str(err)
    x = targets.to_float(targets.resize(image, (predictor.height, predictor.width)))  # (H, W, C)
    return image, x, ""


def _score_batch(batch: list[tuple[Path, str]], predictor: Predictor, out_dir: Path,
                 writer: Any) -> None:
    """Read, score and draw one batch of (path, overlay name); unreadable files get an error row."""
    from kerasdec.evaluation.figures import overlay, put_label

    read = [(path, name, *_read(path, predictor)) for path, name in batch]
    good = [r for r in read if r[2] is not None]
    scores, heatmaps = predictor.run(np.stack([r[3] for r in good])) if good else ([], [])
    results = {r[0]: (s, h) for r, s, h in zip(good, scores, heatmaps)}
    for path, name, image, _, error in read:
        if image is None:
            writer.writerow([str(path), "", "", "", error])
            continue
        score, heatmap = results[path]
        decision = int(score >= predictor.threshold)
        picture = overlay(image, heatmap)  # (h, w, 3) BGR at the original size
        put_label(picture, f"{score:.3f} {'DEFECT' if decision else 'ok'}")
        if not cv2.imwrite(str(out_dir / name), picture):
            raise OSError(f"could not write {out_dir / name}")
        writer.writerow([str(path), repr(float(score)), decision, name, ""])


def predict(model_path: Path | str, inputs: Sequence[Path | str], out_dir: Path | str, *,
            threshold: float | None = None, width: int | None = None, height: int | None = None,
            batch_size: int = 8, log_every: int = 100, progress: Progress | None = None) -> Path:
    """Score images with a trained model and write scores.csv and overlays into a new folder.

    Args:
        model_path: run directory, .keras file or SavedModel folder (see ``load_predictor``).
        inputs: image files and/or folders (searched recursively for IMAGE_SUFFIXES).
        out_dir: created; must not exist or be empty.
        threshold: decision threshold on the score; default: stored with the model, else 0.5.
        width: input width for a .keras file without a config.json beside it (or an override).
        height: likewise for the height.
        batch_size: images scored per model call (default 8).
        log_every: log progress every this many images (default 100).
        progress: optional callback(done, total) after each batch (e.g. a progress bar).

    Returns:
        ``out_dir``.

    Raises:
        FileExistsError: ``out_dir`` exists and is not empty.
        FileNotFoundError: the model or an input does not exist.
        ValueError: no images, or the model's input size cannot be determined.

    Example:
        >>> predict("runs/synthetic-1", ["new_images/"], "predictions")
    """
    out = Path(out_dir)
    paths = collect_inputs(inputs)
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}; expected >= 1")
    _check_out(out)
    predictor = load_predictor(model_path, threshold=threshold, width=width, height=height)
    _check_out(out)  # again: loading takes a while
    (out / OVERLAYS_DIR).mkdir(parents=True, exist_ok=True)
    logger.info("scoring %d images with %s (input %dx%d, %d channel(s), threshold %.4g)", len(paths),
                predictor.source, predictor.width, predictor.height, predictor.channels, predictor.threshold)
    items = list(zip(paths, overlay_names(paths)))
    with (out / "scores.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for start in range(0, len(items), batch_size):
            _score_batch(items[start:start + batch_size], predictor, out, writer)
            done = min(start + batch_size, len(items))
            if progress is not None:
                progress(done, len(items))
            if done // log_every > start // log_every or done == len(items):
                logger.info("scored %d/%d images", done, len(items))
    return out
