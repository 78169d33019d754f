"""``kerasdec predict``: score new images of any size with any artifact; scores.csv + overlays.

The model is a run directory, a .keras file, a SavedModel or a .tflite file (kerasdec/inference/
runners.py); all are fed the same way: each image is read as grayscale or colour as the model needs,
resized (bilinear, as in training) to the model's input size, scored, and its heatmap is mapped back
to the image's ORIGINAL size for the overlay. A file that cannot be read (corrupt, unreadable, a
broken symbolic link) is logged and listed in scores.csv with an empty score and the reason in the
``error`` column; the other images are still processed.

The output folder is built under a hidden temporary name beside it and renamed when complete, so a
failure (disk full, a kill) never leaves a half-written folder behind under the requested name::

    OUT/scores.csv            path, score, decision (1 = defective, score >= threshold), overlay, error
    OUT/overlays/<stem>.png   overlay at the input's size; <stem>-2.png, -3, ... when stems repeat
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from kerasdec.config import DEFAULT_MAX_PIXELS
from kerasdec.determinism import deterministic
from kerasdec.files import atomic_path, write_image, write_text
from kerasdec.inference import runners
from kerasdec.inference.runners import Runner

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")  # searched in folders
OVERLAYS_DIR = "overlays"
SCORES_FILE = "scores.csv"
CSV_COLUMNS = ("path", "score", "decision", "overlay", "error")

Progress = Callable[[int, int], None]  # (images done, images in total)


def collect_inputs(inputs: Iterable[Path | str], suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[Path]:
    """Image files from files and folders (searched recursively, sorted, case-insensitive suffixes).

    A file named explicitly is taken whatever its suffix; a path given twice is listed once. A broken
    symbolic link with an image suffix is kept, so that it is reported like a corrupt file.

    Raises:
        FileNotFoundError: an input does not exist.
        ValueError: no image found at all.
    """
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files = [p for p in item.rglob("*") if p.is_file() or (p.is_symlink() and not p.exists())]
            found += sorted(p for p in files if p.suffix.lower() in suffixes)
            if skipped := [p for p in files if p.suffix.lower() not in suffixes]:
                logger.warning("%s: %d file(s) skipped, not images by their suffix (%s), e.g. %s", item,
                               len(skipped), ", ".join(suffixes), skipped[0])
        elif item.is_file() or item.is_symlink():
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


def check_out(out_dir: Path) -> None:
    """Refuse an output folder that exists and is not empty (predict never overwrites)."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"output folder {out_dir} exists and is not empty; expected a new or empty "
                              "folder (predict never overwrites): choose another --out")
    existing = next(p for p in (out_dir.absolute(), *out_dir.absolute().parents) if p.exists())
    if existing != out_dir.absolute() and not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"--out {out_dir}: cannot write into {existing} (read-only or not yours); "
                              "expected a writable folder")


def read_input(path: Path, runner: Runner, max_pixels: int = DEFAULT_MAX_PIXELS
               ) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """(original uint8 image, resized float32 input, "") or (None, None, error message); an image whose
    header declares more than ``max_pixels`` pixels is an error row, never decoded."""
    from kerasdec.data import targets
    from kerasdec.data.decode import read_image

    if path.is_symlink() and not path.exists():
        message = f"{path} is a broken symbolic link (to {os.readlink(path)}); expected an image file"
        logger.error("skipping %s", message)
        return None, None, message
    try:
        image = read_image(path, runner.info.channels, max_pixels)  # (h, w, C) uint8
    except (ValueError, OSError, cv2.error) as err:
        logger.error("skipping %s: %s", path, err)
        return None, None, str(err)
    x = targets.to_float(targets.resize(image, (runner.info.height, runner.info.width)))  # (H, W, C)
    return image, x, ""


def score_batch(batch: list[tuple[Path, str]], runner: Runner, out_dir: Path,
                max_pixels: int = DEFAULT_MAX_PIXELS) -> list[list[str]]:
    """Read, score and draw one batch of (path, overlay name); unreadable files get an error row."""
    from kerasdec.evaluation.figures import overlay, put_label

    read = [(path, name, *read_input(path, runner, max_pixels)) for path, name in batch]
    good = [r for r in read if r[2] is not None]
    scores, heatmaps = runner.predict(np.stack([r[3] for r in good])) if good else ([], [])
    results = {r[0]: (s, h) for r, s, h in zip(good, scores, heatmaps)}
    rows = []
    for path, name, image, _, error in read:
        if image is None:
            rows.append([str(path), "", "", "", error])
            continue
        score, heatmap = results[path]
        decision = int(score >= runner.info.threshold)
        picture = overlay(image, heatmap)  # (h, w, 3) BGR at the original size
        put_label(picture, f"{score:.3f} {'DEFECT' if decision else 'ok'}")
        write_image(out_dir / name, picture)
        rows.append([str(path), repr(float(score)), str(decision), name, ""])
    return rows


@deterministic()  # the same inputs give the same scores, whatever the load
def predict(model_path: Path | str, inputs: Sequence[Path | str], out_dir: Path | str, *,
            threshold: float | None = None, width: int | None = None, height: int | None = None,
            allow_other_size: bool = False, batch_size: int = 8, log_every: int = 100,
            progress: Progress | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> Path:
    """Score images with a trained model and write scores.csv and overlays into a new folder.

    Args:
        model_path: run directory, .keras file, SavedModel folder or .tflite file (``runners.load``).
        inputs: image files and/or folders (searched recursively for IMAGE_SUFFIXES).
        out_dir: created; must not exist or be empty.
        threshold: decision threshold on the score; default: the model's stored one.
        width: input width, only for a .keras file that does not record its size, or with
            ``allow_other_size``.
        height: likewise the height.
        allow_other_size: run a .keras model at ``width`` × ``height`` though trained at another size.
        batch_size: images scored per model call (default 8).
        log_every: log progress every this many images (default 100).
        progress: optional callback(done, total) after each batch (e.g. a progress bar).
        max_pixels: an image whose header declares more pixels is listed with an error, not decoded
            (a small file can declare a huge image: kerasdec/data/imagesize.py).

    Returns:
        ``out_dir``.

    Raises:
        FileExistsError: ``out_dir`` exists and is not empty. PermissionError: it cannot be written.
        FileNotFoundError: the model or an input does not exist.
        ValueError: no images, a size the model was not trained at, a model file that is not kerasdec's.
        OSError: a write failed (e.g. disk full); nothing is left under ``out_dir``.

    Example:
        >>> predict("runs/synthetic-1", ["new_images/"], "predictions")
    """
    out = Path(out_dir)
    paths = collect_inputs(inputs)
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}; expected >= 1")
    check_out(out)
    size = (height, width) if height is not None and width is not None else None
    runner = runners.load(model_path, threshold=threshold, size_hw=size, allow_other_size=allow_other_size)
    check_out(out)  # again: loading takes a while
    info = runner.info
    logger.info("scoring %d images with %s (input %dx%d, %d channel(s), threshold %.6g from %s)", len(paths),
                runner.source, info.width, info.height, info.channels, info.threshold, info.threshold_from)
    items = list(zip(paths, overlay_names(paths)))
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        (tmp / OVERLAYS_DIR).mkdir(parents=True)
        for start in range(0, len(items), batch_size):
            writer.writerows(score_batch(items[start:start + batch_size], runner, tmp, max_pixels))
            done = min(start + batch_size, len(items))
            if progress is not None:
                progress(done, len(items))
            if done // log_every > start // log_every or done == len(items):
                logger.info("scored %d/%d images", done, len(items))
        write_text(tmp / SCORES_FILE, table.getvalue())
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # an existing empty --out folder is replaced by the finished one
    return out
