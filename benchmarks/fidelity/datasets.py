"""Held-out-style datasets for the fidelity statistics, written in the DAGM, KSDD2 and KSDD layouts.

numpy + OpenCV only. Each image is a textured surface whose parameters vary from image to image
(scale, orientation, contrast, illumination); defects are faint or thin (scratches of 1-3 px,
small spots, faint stains, at 6-25% contrast against a texture of ~10% standard deviation), and the
labels are coarse (DAGM: a filled ellipse well beyond the defect; KSDD2: a dilated region; KSDD: a
dilated, blocky region), written as clean 0/255 masks.

    python benchmarks/fidelity/datasets.py OUT_DIR [--seed 0]   # writes OUT_DIR/{DAGM,KSDD2,KSDD}
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

DAGM_SIZE = (128, 128)  # (h, w) on disk = input size
KSDD2_SIZE = (448, 168)  # (h, w) on disk; the statistics use 64×192 (W×H) inputs
KSDD_SIZE = (448, 176)


def _blurred_noise(rng: np.random.Generator, shape: tuple[int, int],
                   sigma_yx: tuple[float, float]) -> np.ndarray:
    noise = cv2.GaussianBlur(rng.normal(size=shape).astype(np.float32), (0, 0), sigmaX=sigma_yx[1],
                             sigmaY=sigma_yx[0])
    return noise / (noise.std() + 1e-6)


def _illumination(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx / w + np.sin(angle) * yy / h) * rng.uniform(0.05, 0.2)
    return ramp - ramp.mean()


def texture(rng: np.random.Generator, shape: tuple[int, int], family: str) -> np.ndarray:
    """A float32 surface in about [0, 1], mean ~0.5, std ~0.1, drawn from a family."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if family == "dagm":  # fabric-like: grating + grain, orientation and scale vary per image
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(5, 12)
        grating = np.sin(2 * np.pi * (np.cos(angle) * xx + np.sin(angle) * yy) / period + rng.uniform(0, 6.3))
        grain = _blurred_noise(rng, shape, (rng.uniform(0.7, 2.0),) * 2)
        base = rng.uniform(0.3, 0.8) * grating + grain
    elif family == "ksdd2":  # machined metal: horizontal streaks + coarse mottling
        streaks = _blurred_noise(rng, shape, (rng.uniform(0.5, 1.2), rng.uniform(6, 20)))
        mottle = _blurred_noise(rng, shape, (rng.uniform(8, 20),) * 2)
        base = streaks + rng.uniform(0.5, 1.5) * mottle
    else:  # ksdd, commutator: vertical bars with dark gaps + grain
        period = rng.uniform(18, 30)
        phase = np.cos(2 * np.pi * xx / period + rng.uniform(0, 6.3))
        bars = (phase > rng.uniform(-0.9, -0.6)).astype(np.float32)
        bars = cv2.GaussianBlur(bars, (0, 0), 1.0) * 2 - 1
        grain = _blurred_noise(rng, shape, (rng.uniform(2, 6), rng.uniform(0.6, 1.5)))
        base = rng.uniform(0.6, 1.2) * bars + grain
    base = base / (base.std() + 1e-6) * rng.uniform(0.08, 0.13)
    return (0.5 + rng.uniform(-0.1, 0.1) + base + _illumination(rng, shape)).astype(np.float32)


def defect(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(signed intensity change, defect support) of one faint or thin defect; ``scale`` = px per unit."""
    h, w = shape
    kind = rng.choice(["scratch", "spot", "stain"], p=[0.45, 0.3, 0.25])
    delta = np.zeros(shape, np.float32)
    cy, cx = rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w
    sign = rng.choice([-1.0, 1.0])
    if kind == "scratch":
        length, angle = rng.uniform(0.15, 0.45) * min(h, w) * 1.5, rng.uniform(0, np.pi)
        dy, dx = np.sin(angle) * length / 2, np.cos(angle) * length / 2
        p0, p1 = (int(cx - dx), int(cy - dy)), (int(cx + dx), int(cy + dy))
        cv2.line(delta, p0, p1, 1.0, int(rng.integers(1, 3) * scale), cv2.LINE_AA)
        contrast = rng.uniform(0.1, 0.25)
    elif kind == "spot":
        axes = (int(rng.uniform(2, 5) * scale), int(rng.uniform(2, 5) * scale))
        cv2.ellipse(delta, (int(cx), int(cy)), axes, rng.uniform(0, 180), 0, 360, 1.0, -1, cv2.LINE_AA)
        delta = cv2.GaussianBlur(delta, (0, 0), 0.8 * scale)
        contrast = rng.uniform(0.08, 0.2)
    else:
        axes = (int(rng.uniform(6, 14) * scale), int(rng.uniform(4, 10) * scale))
        cv2.ellipse(delta, (int(cx), int(cy)), axes, rng.uniform(0, 180), 0, 360, 1.0, -1, cv2.LINE_AA)
        delta = cv2.GaussianBlur(delta, (0, 0), 2.5 * scale)
        contrast = rng.uniform(0.06, 0.12)
    delta = delta / max(float(delta.max()), 1e-6)
    return sign * contrast * delta, delta > 0.2


def coarse_label(rng: np.random.Generator, support: np.ndarray, style: str, scale: float) -> np.ndarray:
    """A clean 0/255 label that covers the defect generously."""
    ys, xs = np.nonzero(support)
    label = np.zeros(support.shape, np.uint8)
    if style == "ellipse":  # DAGM: filled ellipse around the defect's box, 1.3-2× larger
        cy, cx = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2
        grow = rng.uniform(1.3, 2.0)
        axes = (int((xs.max() - xs.min()) / 2 * grow + 4), int((ys.max() - ys.min()) / 2 * grow + 4))
        cv2.ellipse(label, (int(cx), int(cy)), axes, 0, 0, 360, 255, -1)
        return label
    label[support] = 255
    k = int(rng.integers(3, 8) * scale) | 1
    label = cv2.dilate(label, np.ones((k, k), np.uint8))
    if style == "blocky":  # KSDD: a rough polygon-like region
        block = max(4, int(4 * scale))
        small = cv2.resize(label, (label.shape[1] // block, label.shape[0] // block),
                           interpolation=cv2.INTER_AREA)
        label = cv2.resize((small > 0).astype(np.uint8) * 255, label.shape[::-1],
                           interpolation=cv2.INTER_NEAREST)
    return label


def make_image(rng: np.random.Generator, shape: tuple[int, int], family: str, positive: bool,
               style: str, scale: float, channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    image = texture(rng, shape, family)
    label = np.zeros(shape, np.uint8)
    if positive:
        delta, support = defect(rng, shape, scale)
        image = image + delta
        label = coarse_label(rng, support, style, scale)
    image = np.clip(image + rng.normal(0, 0.01, shape).astype(np.float32), 0, 1)
    if channels == 3:  # a per-image colour tint; the defect shows in every channel
        tint = rng.uniform(0.85, 1.15, size=3).astype(np.float32)
        image = np.clip(image[:, :, None] * tint[None, None], 0, 1)
    return np.round(image * 255).astype(np.uint8), label


def write_dagm(root: Path, rng: np.random.Generator, counts: dict[str, tuple[int, int]]) -> None:
    for split, (n_pos, n_neg) in counts.items():
        folder = root / "Class1" / split
        (folder / "Label").mkdir(parents=True, exist_ok=True)
        rows = ["1"]
        for i, positive in enumerate(rng.permutation([True] * n_pos + [False] * n_neg), start=1):
            image, label = make_image(rng, DAGM_SIZE, "dagm", bool(positive), "ellipse", 1.0)
            cv2.imwrite(str(folder / f"{i:04d}.PNG"), image)
            name = "0"
            if positive:
                name = f"{i:04d}_label.PNG"
                cv2.imwrite(str(folder / "Label" / name), label)
            rows.append(f"{i}\t{int(positive)}\t{i:04d}.PNG\t0\t{name}")
        (folder / "Label" / "Labels.txt").write_text("\n".join(rows) + "\n")


def write_ksdd2(root: Path, rng: np.random.Generator, counts: dict[str, tuple[int, int]]) -> None:
    next_id = 10000
    for split, (n_pos, n_neg) in counts.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        for positive in rng.permutation([True] * n_pos + [False] * n_neg):
            image, label = make_image(rng, KSDD2_SIZE, "ksdd2", bool(positive), "dilated", 1.75, channels=3)
            cv2.imwrite(str(root / split / f"{next_id}.png"), image)
            cv2.imwrite(str(root / split / f"{next_id}_GT.png"), label)
            next_id += 1


def write_ksdd(root: Path, rng: np.random.Generator, n_folders: int, parts: int = 8,
               defect_rate: float = 0.2) -> dict[str, list[str]]:
    folders = []
    for f in range(1, n_folders + 1):
        kos = f"kos{f:02d}"
        (root / kos).mkdir(parents=True, exist_ok=True)
        defective = set(rng.choice(parts, size=max(1, rng.binomial(parts, defect_rate)), replace=False))
        for k in range(parts):
            image, label = make_image(rng, KSDD_SIZE, "ksdd", k in defective, "blocky", 1.75)
            cv2.imwrite(str(root / kos / f"Part{k}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(str(root / kos / f"Part{k}_label.bmp"), label)
        folders.append(kos)
    return {"train": folders[: n_folders // 2], "test": folders[n_folders // 2:]}


def write_all(out: Path, seed: int = 0) -> dict[str, Path]:
    """The three datasets under ``out``; KSDD also gets split.json (fold 0: first half of the folders
    trains, the rest tests; folds 1 and 2 repeat it) in kerasdec's split-file format."""
    rng = np.random.default_rng(seed)
    write_dagm(out / "DAGM", rng, {"Train": (12, 48), "Test": (16, 24)})
    write_ksdd2(out / "KSDD2", rng, {"train": (10, 50), "test": (16, 32)})
    folders = write_ksdd(out / "KSDD", rng, 20, defect_rate=0.15)
    train = [[kos, True] for kos in folders["train"]]
    test = [[kos, True] for kos in folders["test"]]
    (out / "KSDD" / "split.json").write_text(json.dumps([[train] * 3, [test] * 3]))
    (out / "KSDD" / "folders.json").write_text(json.dumps(folders))
    return {"dagm": out / "DAGM", "ksdd2": out / "KSDD2", "ksdd": out / "KSDD"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name, path in write_all(args.out, args.seed).items():
        print(name, path)


if __name__ == "__main__":
    main()
