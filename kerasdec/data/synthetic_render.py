"""Procedural surfaces and defects for the synthetic dataset (numpy/OpenCV, seeded by the caller).

Sizes are given for a 128-pixel image and scale with ``min(height, width) / 128``. Intensities are
floats in [0, 1]: a texture has a mean in [0.35, 0.6] and a standard deviation in [0.05, 0.09];
defects change intensity by 0.12–0.3 (a few texture standard deviations: visible, not trivial).
"""

from __future__ import annotations

import cv2
import numpy as np

TEXTURES = ("brushed", "wood", "granular", "woven")
DEFECTS = ("scratch", "spots", "crack", "stain")
INK_THRESHOLD = 0.3  # ink above this is a defect pixel
TWO_DEFECTS_PROB = 0.2  # share of defective images with two defects


def render_sample(rng: np.random.Generator, size: tuple[int, int],
                  defective: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one surface, with 1–2 defects when ``defective``.

    Args:
        rng: the image's random generator.
        size: (height, width).
        defective: draw defects.

    Returns:
        image uint8 (H, W); coarse label uint8 (H, W) 0/255 (all zero when not defective);
        exact defect pixels bool (H, W).
    """
    image = render_surface(rng, size)
    label = np.zeros(size, np.uint8)
    defect = np.zeros(size, bool)
    n_defects = (2 if rng.random() < TWO_DEFECTS_PROB else 1) if defective else 0
    for _ in range(n_defects):
        kind = DEFECTS[rng.integers(len(DEFECTS))]
        ink, polarity, amplitude = draw_defect(rng, size, kind)
        image += polarity * amplitude * ink
        mask = ink > INK_THRESHOLD
        defect |= mask
        label |= coarse_label(rng, mask)
    image += rng.normal(0.0, 0.008, size).astype(np.float32)  # sensor noise
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8), label, defect


def render_surface(rng: np.random.Generator, size: tuple[int, int], texture: str | None = None) -> np.ndarray:
    """A float32 (H, W) textured surface of one of ``TEXTURES`` (random when None)."""
    texture = texture or TEXTURES[rng.integers(len(TEXTURES))]
    s = min(size) / 128
    yy, xx = np.mgrid[0:size[0], 0:size[1]].astype(np.float32)
    vertical = rng.random() < 0.5
    if texture == "brushed":
        long, short = rng.uniform(6, 14) * s, 0.6
        t = _noise(rng, size, (long, short) if vertical else (short, long))
        t += 0.3 * _noise(rng, size, (0.6, 0.6))
    elif texture == "wood":
        coord = xx if vertical else yy
        warp = _noise(rng, size, (10 * s, 10 * s)) * rng.uniform(2, 5) * s
        period = rng.uniform(6, 14) * s
        t = np.sin(2 * np.pi * (coord + warp) / period + rng.uniform(0, 2 * np.pi))
        t += 0.4 * _noise(rng, size, (4 * s, 0.7) if vertical else (0.7, 4 * s))
    elif texture == "granular":
        t = _noise(rng, size, (0.8, 0.8)) + 0.6 * _noise(rng, size, (2.5 * s,) * 2)
        t += 0.3 * _noise(rng, size, (8 * s,) * 2)
    elif texture == "woven":
        p = rng.uniform(5, 9) * s
        checker = (np.floor(xx / p) + np.floor(yy / p)) % 2
        t = np.where(checker > 0, np.cos(2 * np.pi * yy / p), np.cos(2 * np.pi * xx / p))
        t += 0.4 * _noise(rng, size, (0.7, 0.7))
    else:
        raise ValueError(f"texture={texture!r}; expected one of {TEXTURES}")
    t = (t - t.mean()) / (t.std() + 1e-6)
    tilt = rng.uniform(-0.06, 0.06, 2)  # slow illumination gradient
    shading = tilt[0] * (xx / size[1] - 0.5) + tilt[1] * (yy / size[0] - 0.5)
    return (rng.uniform(0.35, 0.6) + rng.uniform(0.05, 0.09) * t + shading).astype(np.float32)


def _noise(rng: np.random.Generator, size: tuple[int, int], sigma: tuple[float, float]) -> np.ndarray:
    """Standardised Gaussian noise blurred with (sigma_y, sigma_x)."""
    n = rng.standard_normal(size).astype(np.float32)
    n = cv2.GaussianBlur(n, (0, 0), sigmaX=sigma[1], sigmaY=sigma[0], borderType=cv2.BORDER_REFLECT)
    return (n - n.mean()) / (n.std() + 1e-6)


def draw_defect(rng: np.random.Generator, size: tuple[int, int],
                kind: str) -> tuple[np.ndarray, float, float]:
    """Draw one defect of ``kind`` (one of ``DEFECTS``) with some pixel above the ink threshold.

    Returns:
        (ink float32 (H, W) in [0, 1], polarity +1/-1, amplitude).
    """
    for _ in range(20):  # redraw in the rare case the defect falls outside the image
        ink = _INK[kind](rng, size, min(size) / 128)
        if (ink > INK_THRESHOLD).any():
            break
    polarity = -1.0 if kind in ("crack", "spots") or rng.random() < 0.5 else 1.0
    low, high = (0.2, 0.3) if kind == "stain" else (0.22, 0.36)
    return ink, polarity, rng.uniform(low, high)


def _centre(rng: np.random.Generator, size: tuple[int, int], margin: float = 0.15) -> np.ndarray:
    return np.array([rng.uniform(margin, 1 - margin) * size[1], rng.uniform(margin, 1 - margin) * size[0]])


def _lines(size: tuple[int, int], paths: list[np.ndarray], thickness: int) -> np.ndarray:
    canvas = np.zeros(size, np.uint8)
    cv2.polylines(canvas, [np.round(p).astype(np.int32) for p in paths], False, 255, thickness, cv2.LINE_AA)
    return canvas.astype(np.float32) / 255


def _scratch(rng: np.random.Generator, size: tuple[int, int], s: float) -> np.ndarray:
    length, angle = rng.uniform(0.25, 0.55) * min(size), rng.uniform(0, np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    c = _centre(rng, size)
    bend = rng.uniform(-0.1, 0.1) * length * normal
    path = np.stack([c - direction * length / 2, c + bend, c + direction * length / 2])
    return _lines(size, [path], int(rng.integers(1, 3)))


def _spots(rng: np.random.Generator, size: tuple[int, int], s: float) -> np.ndarray:
    canvas = np.zeros(size, np.uint8)
    c = _centre(rng, size)
    for _ in range(int(rng.integers(1, 5))):
        x, y = c + rng.normal(0, 6 * s, 2)
        radius = max(1, int(round(rng.uniform(1.2, 3.0) * s)))
        cv2.circle(canvas, (int(round(x)), int(round(y))), radius, 255, -1, cv2.LINE_AA)
    return cv2.GaussianBlur(canvas.astype(np.float32) / 255, (0, 0), 0.7)


def _walk(rng: np.random.Generator, start: np.ndarray, angle: float, steps: int, step: float) -> np.ndarray:
    angles = angle + np.cumsum(rng.normal(0, 0.35, steps))
    moves = step * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return np.vstack([start, start + np.cumsum(moves, axis=0)])


def _crack(rng: np.random.Generator, size: tuple[int, int], s: float) -> np.ndarray:
    angle = rng.uniform(0, 2 * np.pi)
    trunk = _walk(rng, _centre(rng, size), angle, int(rng.integers(12, 25)), 2.5 * s)
    fork = trunk[rng.integers(len(trunk) // 3, len(trunk))]
    branch = _walk(rng, fork, angle + rng.choice([-0.8, 0.8]), int(rng.integers(4, 10)), 2.5 * s)
    return _lines(size, [trunk, branch], 1)


def _stain(rng: np.random.Generator, size: tuple[int, int], s: float) -> np.ndarray:
    canvas = np.zeros(size, np.float32)
    x, y = _centre(rng, size)
    axes = (int(rng.uniform(5, 14) * s), int(rng.uniform(3, 9) * s))
    cv2.ellipse(canvas, (int(x), int(y)), axes, rng.uniform(0, 180), 0, 360, 1.0, -1)
    canvas = cv2.GaussianBlur(canvas, (0, 0), rng.uniform(2, 4) * s)
    return canvas / max(float(canvas.max()), 1e-6)


_INK = {"scratch": _scratch, "spots": _spots, "crack": _crack, "stain": _stain}


def coarse_label(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """A filled ellipse or box (0/255 uint8) enclosing ``mask``, grown by 10–30 % plus 3–6 pixels.

    The ellipse follows the defect's orientation (minimum-area rectangle); the box is axis-aligned,
    as annotation tools draw them.
    """
    label = np.zeros(mask.shape, np.uint8)
    points = np.argwhere(mask)[:, ::-1].astype(np.float32)  # (N, 2) as (x, y)
    if len(points) == 0:
        return label
    s = min(mask.shape) / 128
    grow, pad = rng.uniform(1.1, 1.3), rng.uniform(3, 6) * s
    if rng.random() < 0.5:  # ellipse through the grown rectangle's corners: axes = √2 × half sides
        (cx, cy), (w, h), angle = cv2.minAreaRect(points)
        axes = [int(np.ceil(np.sqrt(2) * (side / 2 * grow + pad))) for side in (w, h)]
        cv2.ellipse(label, (int(round(cx)), int(round(cy))), tuple(axes), angle, 0, 360, 255, -1)
    else:
        (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
        hx, hy = (x1 - x0) / 2 * grow + pad, (y1 - y0) / 2 * grow + pad
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        cv2.rectangle(label, (int(np.floor(cx - hx)), int(np.floor(cy - hy))),
                      (int(np.ceil(cx + hx)), int(np.ceil(cy + hy))), 255, -1)
    return label
