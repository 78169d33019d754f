"""A hard synthetic family, used only to MEASURE training recipes (never tuned until a model passes).

Each dataset k of a family seed s is one surface: two superposed gratings with a strong orientation
and period drawn per dataset (so they differ between datasets) and jittered per image (orientation,
period, phase, contrast, brightness, illumination gradient, grain). Defects are faint: low-contrast
Gaussian blotches and 1-px scratches, one or two per defective image; labels are coarse filled
ellipses around them (as in DAGM). The settings below were fixed before any model was trained on them.

Every dataset is written in three layouts, the same images in each:

    OUT/dagm/Class<k+1>/{Train,Test}/XXXX.PNG + Label/XXXX_label.PNG + Label/Labels.txt
    OUT/ksdd2-<k>/{train,test}/<id>.png + <id>_GT.png
    OUT/folder-<k>/{train,test}/{ok,defect}/<name>.png + masks/<name>.png

    python experiments/hard_family.py --out /tmp/hard --seed 0 --datasets 3
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from kerasdec.files import write_image, write_text

SIZE = 128  # image side in pixels (the measurement's input size: no resizing)
COUNTS = {"train": (20, 80), "test": (30, 60)}  # split -> (defective, defect-free)


@dataclass(frozen=True)
class Surface:
    """One dataset's texture: the draws shared by all of its images."""

    angle: float  # main grating orientation, degrees
    period: float  # main grating period, pixels
    cross_angle: float  # second grating, relative to the first, degrees
    cross_ratio: float  # amplitude of the second grating relative to the first


def draw_surface(rng: np.random.Generator) -> Surface:
    """Per-dataset texture parameters."""
    return Surface(angle=rng.uniform(0, 180), period=rng.uniform(6, 14),
                   cross_angle=rng.uniform(40, 80) * rng.choice([-1, 1]), cross_ratio=rng.uniform(0.3, 0.6))


def _grating(angle: float, period: float, phase: float) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    t = np.deg2rad(angle)
    return np.sin(2 * np.pi * (xx * np.cos(t) + yy * np.sin(t)) / period + phase)


def texture(surface: Surface, rng: np.random.Generator) -> np.ndarray:
    """One defect-free image in [0, 1], float64 (SIZE, SIZE): the surface with per-image variation."""
    angle = surface.angle + rng.normal(0, 8)
    period = surface.period * rng.uniform(0.85, 1.15)
    main = _grating(angle, period, rng.uniform(0, 2 * np.pi))
    cross = _grating(angle + surface.cross_angle, period * rng.uniform(0.6, 1.4), rng.uniform(0, 2 * np.pi))
    amplitude = rng.uniform(0.12, 0.18)  # peak-to-peak of the main grating ~0.25-0.35
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    gradient = rng.uniform(-0.05, 0.05) * xx + rng.uniform(-0.05, 0.05) * yy
    image = (rng.uniform(0.4, 0.6) + amplitude * (main + surface.cross_ratio * cross) + gradient
             + rng.normal(0, 0.03, (SIZE, SIZE)))
    return image


def _ellipse_label(label: np.ndarray, center: tuple[float, float], axes: tuple[float, float],
                   angle: float) -> None:
    cv2.ellipse(label, (int(round(center[0])), int(round(center[1]))),
                (int(round(axes[0])), int(round(axes[1]))), angle, 0, 360, 255, thickness=-1)


def add_blotch(image: np.ndarray, label: np.ndarray, rng: np.random.Generator) -> None:
    """A faint rotated Gaussian blotch (±0.06-0.12), labelled by a coarse ellipse (~2.5 σ + margin)."""
    cx, cy = rng.uniform(16, SIZE - 16, 2)
    sx, sy = rng.uniform(3, 8, 2)
    angle = rng.uniform(0, 180)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    t = np.deg2rad(angle)
    u = (xx - cx) * np.cos(t) + (yy - cy) * np.sin(t)
    v = -(xx - cx) * np.sin(t) + (yy - cy) * np.cos(t)
    blob = np.exp(-(u**2 / (2 * sx**2) + v**2 / (2 * sy**2)))
    image += rng.choice([-1, 1]) * rng.uniform(0.06, 0.12) * blob
    margin = rng.uniform(3, 6)
    _ellipse_label(label, (cx, cy), (2.5 * sx + margin, 2.5 * sy + margin), angle)


def add_scratch(image: np.ndarray, label: np.ndarray, rng: np.random.Generator) -> None:
    """A 1-px straight scratch of 15-45 px (±0.10-0.18), labelled by a coarse ellipse along it."""
    length = rng.uniform(15, 45)
    angle = rng.uniform(0, 180)
    cx, cy = rng.uniform(length / 2 + 4, SIZE - length / 2 - 4, 2)
    dx, dy = np.cos(np.deg2rad(angle)) * length / 2, np.sin(np.deg2rad(angle)) * length / 2
    line = np.zeros((SIZE, SIZE), np.uint8)
    cv2.line(line, (int(round(cx - dx)), int(round(cy - dy))), (int(round(cx + dx)), int(round(cy + dy))),
             1, thickness=1)
    image += rng.choice([-1, 1]) * rng.uniform(0.10, 0.18) * line
    margin = rng.uniform(3, 6)
    _ellipse_label(label, (cx, cy), (length / 2 + margin, margin + 1), angle)


def render(surface: Surface, defective: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(image uint8, label uint8 0/255) of one image."""
    image = texture(surface, rng)
    label = np.zeros((SIZE, SIZE), np.uint8)
    if defective:
        for _ in range(rng.integers(1, 3)):
            (add_blotch if rng.random() < 0.5 else add_scratch)(image, label, rng)
    return np.clip(np.round(image * 255), 0, 255).astype(np.uint8), label


def write_dataset(out: Path, k: int, seed: int) -> None:
    """Dataset k of family ``seed`` in the DAGM, KSDD2 and folder layouts."""
    rng = np.random.default_rng([seed, k])
    surface = draw_surface(rng)
    for split, (n_pos, n_neg) in COUNTS.items():
        dagm = out / "dagm" / f"Class{k + 1}" / split.capitalize()
        rows = ["1"]  # header line
        flags = rng.permutation([True] * n_pos + [False] * n_neg)
        for i, defective in enumerate(flags, start=1):
            image, label = render(surface, bool(defective), rng)
            stem = f"{i:04d}"
            write_image(dagm / f"{stem}.PNG", image, overwrite=False)
            write_image(out / f"ksdd2-{k}" / split / f"{i}.png", image, overwrite=False)
            write_image(out / f"ksdd2-{k}" / split / f"{i}_GT.png", label, overwrite=False)
            cls = "defect" if defective else "ok"
            write_image(out / f"folder-{k}" / split / cls / f"{stem}.png", image, overwrite=False)
            label_name = "0"
            if defective:
                write_image(dagm / "Label" / f"{stem}_label.PNG", label, overwrite=False)
                write_image(out / f"folder-{k}" / split / "masks" / f"{stem}.png", label, overwrite=False)
                label_name = f"{stem}_label.PNG"
            rows.append(f"{i}\t{int(defective)}\t{stem}.PNG\t0\t{label_name}")
        (dagm / "Label").mkdir(parents=True, exist_ok=True)
        write_text(dagm / "Label" / "Labels.txt", "\n".join(rows) + "\n", overwrite=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="New folder for the family.")
    parser.add_argument("--seed", type=int, default=0, help="Family seed.")
    parser.add_argument("--datasets", type=int, default=3, help="Number of surfaces (DAGM classes 1..10).")
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"--out {args.out}: exists; expected a new folder")
    if not 1 <= args.datasets <= 10:
        parser.error(f"--datasets {args.datasets}: expected 1..10 (DAGM classes)")
    for k in range(args.datasets):
        write_dataset(args.out, k, args.seed)


if __name__ == "__main__":
    main()
