"""The loss / AP plot of a run, drawn from its history.csv."""

from __future__ import annotations

import csv
import math
from pathlib import Path


def read_history(path: Path) -> dict[str, list[float]]:
    """history.csv (written by keras.callbacks.CSVLogger) as columns of floats (NaN where empty)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    keys = rows[0].keys() if rows else []
    return {k: [_float(r[k]) for r in rows] for k in keys}


def plot_history(history_csv: Path, out_png: Path) -> Path:
    """Plot loss, seg_loss, cls_loss (left) and λ, validation AP (right) per epoch; returns out_png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = read_history(history_csv)
    epochs = [int(e) + 1 for e in h.get("epoch", [])]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=90)
    for key in ("loss", "seg_loss", "cls_loss"):
        if key in h:
            left.plot(epochs, h[key], label=key)
    left.set(xlabel="epoch", ylabel="loss (summed over the batch, mean over steps)", yscale="log")
    left.legend()
    if "lambda" in h:
        right.plot(epochs, h["lambda"], label="λ", color="grey", linestyle="--")
    if "val_ap" in h:
        pts = [(e, v) for e, v in zip(epochs, h["val_ap"]) if not math.isnan(v)]
        right.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label="validation AP")
    right.set(xlabel="epoch", ylim=(0, 1.02))
    right.legend()
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)
    return Path(out_png)


def _float(value: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
