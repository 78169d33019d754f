"""history.csv of a run: written after every epoch (atomically, whole), read back, plotted.

Keras's CSVLogger appends to the file in place, so a kill can leave a torn last line and a resumed
run a duplicated epoch. ``HistoryLog`` instead keeps the rows in memory (saved with each checkpoint,
restored on resume) and rewrites the whole file under a temporary name after every epoch.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import keras

from kerasdec.files import atomic_path, write_text


class HistoryLog(keras.callbacks.Callback):
    """Rewrite ``path`` (CSV: epoch, then the logged values in sorted order) after every epoch.

    Args:
        path: the run's history.csv.
        rows: the rows so far, one dict per epoch ("epoch" 0-based and each logged value); restored
            from the checkpoint on resume. The list is extended in place (the checkpoint saves it).
    """

    def __init__(self, path: Path, rows: list[dict[str, float]]):
        super().__init__()
        self.path = Path(path)
        self.rows = rows

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        row = {"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}}
        self.rows[:] = [r for r in self.rows if r["epoch"] < epoch] + [row]
        write_text(self.path, format_history(self.rows))


def format_history(rows: list[dict[str, float]]) -> str:
    """The CSV text of ``rows``: a header "epoch,<keys sorted>", one line per row (empty if missing)."""
    keys = sorted({k for row in rows for k in row} - {"epoch"})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["epoch", *keys])
    for row in rows:
        writer.writerow([int(row["epoch"]), *(repr(row[k]) if k in row else "" for k in keys)])
    return out.getvalue()


def read_history(path: Path) -> dict[str, list[float]]:
    """history.csv as columns of floats (NaN where empty)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    keys = rows[0].keys() if rows else []
    return {k: [_float(r[k]) for r in rows] for k in keys}


def plot_history(history_csv: Path, out_png: Path) -> Path:
    """Plot loss, seg_loss, cls_loss (left) and λ, validation AP (right) per epoch; returns out_png.

    The picture is written to a temporary name and renamed (a kill never leaves half a PNG).
    """
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
    try:
        with atomic_path(out_png) as tmp:
            fig.savefig(tmp)
    finally:
        plt.close(fig)
    return Path(out_png)


def _float(value: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
