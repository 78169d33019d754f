"""The evaluation folder's index.html: metrics, the two curves and a table of every image.

The page is self-contained (inline CSS and a few lines of JavaScript to sort the table by score or
name) and links only, by relative paths, to files that exist in the evaluation folder.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kerasdec.files import write_text
from kerasdec.rundir import METRICS_FILE, RESULTS_FILE

logger = logging.getLogger(__name__)

METRIC_ORDER = ("ap", "auc", "threshold", "f_measure", "fp", "fn", "fp_at_05", "fn_at_05", "fp_at_fn0",
                "tpr", "tnr", "accuracy", "n_pos", "n_neg", "pixel_ap", "pixel_auc", "pixel_dice",
                "pixel_threshold", "n_pixel_images")

_STYLE = """body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}th.sort{cursor:pointer;background:#eef}
td.FP{background:#fdd}td.FN{background:#fe9}td.TP{background:#dfd}img.thumb{max-height:120px}
.curves img{width:360px;margin-right:1em}"""

# Sort the image table by a numeric (data-v on the cell) or text column; a second click reverses.
_SCRIPT = """function sortBy(col, numeric){
  const body=document.getElementById('images').tBodies[0];
  const rows=Array.from(body.rows);
  const dir=body.dataset.col==String(col)&&body.dataset.dir=='asc'?-1:1;
  rows.sort((a,b)=>{const x=a.cells[col].dataset.v, y=b.cells[col].dataset.v;
    return dir*(numeric?parseFloat(x)-parseFloat(y):x.localeCompare(y));});
  rows.forEach(r=>body.appendChild(r));
  body.dataset.col=String(col); body.dataset.dir=dir==1?'asc':'desc';
}"""


@dataclass(frozen=True)
class ImageRow:
    """One line of the image table; ``figure`` is relative to the page's folder, or None."""

    name: str
    score: float
    label: int
    decision: int
    tag: str
    figure: str | None = None


def _metric_rows(metrics: dict[str, Any]) -> str:
    cells = []
    for key in METRIC_ORDER:
        if key in metrics:
            value = metrics[key]
            text = f"{value:.4f}" if isinstance(value, float) else str(value)
            interval = metrics.get(f"{key}_ci95")  # ap, auc, f_measure: the bootstrap's 95% interval
            if interval:
                text += f"  (95% interval {interval[0]:.4f} to {interval[1]:.4f})"
            cells.append(f"<tr><th>{key}</th><td>{html.escape(text)}</td></tr>")
    return "\n".join(cells)


def _interval_note(metrics: dict[str, Any]) -> str:
    """What the intervals are, with the image counts they rest on ("" without intervals)."""
    boot = metrics.get("bootstrap")
    if not boot or "n_pos" not in metrics:
        return ""
    return (f"<p>{metrics['n_pos'] + metrics['n_neg']} images: {metrics['n_pos']} defective, "
            f"{metrics['n_neg']} defect-free. The 95% intervals of ap, auc and f_measure are the 2.5th "
            f"and 97.5th percentiles over {int(boot['resamples'])} bootstrap resamples of the images "
            f"(each keeps {metrics['n_pos']} defective and {metrics['n_neg']} defect-free images, drawn "
            f"with replacement; seed {int(boot['seed'])}): how much the numbers depend on which images "
            "happened to be tested.</p>")


def _image_row(row: ImageRow) -> str:
    name = html.escape(row.name)
    if row.figure is None:
        thumb = "<td data-v=''></td>"
    else:
        src = html.escape(row.figure, quote=True)
        thumb = f"<td data-v=''><a href='{src}'><img class='thumb' src='{src}' alt='{name}'></a></td>"
    return (f"<tr><td data-v='{name}'>{name}</td><td data-v='{row.score!r}'>{row.score:.4f}</td>"
            f"<td data-v='{row.label}'>{row.label}</td><td data-v='{row.decision}'>{row.decision}</td>"
            f"<td class='{row.tag}' data-v='{row.tag}'>{row.tag}</td>{thumb}</tr>")


def _links(out: Path, names: Sequence[str]) -> str:
    present = [n for n in names if (out / n).is_file()]
    return " · ".join(f"<a href='{html.escape(n, quote=True)}'>{html.escape(n)}</a>" for n in present)


def write_index(out_dir: Path | str, rows: Sequence[ImageRow], metrics: dict[str, Any], *,
                title: str = "kerasdec evaluation") -> Path:
    """Write ``out_dir/index.html`` (atomically).

    Args:
        out_dir: the evaluation folder; curve images and data files are linked only if present.
        rows: one per image, in evaluation order.
        metrics: shown as a table (the keys of METRIC_ORDER that are present).
        title: page title.

    Returns:
        The path of index.html.

    Raises:
        FileNotFoundError: a row names a figure that does not exist in ``out_dir``.
    """
    out = Path(out_dir)
    for row in rows:
        if row.figure is not None and not (out / row.figure).is_file():
            raise FileNotFoundError(f"figure {out / row.figure} of image {row.name!r} does not exist; "
                                    "expected it written before the index page")
    curves = "".join(f"<img src='{n}' alt='{n}'>" for n in ("pr_curve.png", "roc_curve.png")
                     if (out / n).is_file())
    n_fig = sum(r.figure is not None for r in rows)
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_STYLE}</style>
<script>{_SCRIPT}</script></head><body>
<h1>{html.escape(title)}</h1>
<p>{_links(out, (METRICS_FILE, RESULTS_FILE))}</p>
{_interval_note(metrics)}
<table>{_metric_rows(metrics)}</table>
<div class="curves">{curves}</div>
<h2>Images ({len(rows)}; figures for {n_fig}: every mistake and a sample of the rest)</h2>
<p>Decision = score &ge; threshold. Click a blue column header to sort.</p>
<table id="images"><thead><tr><th class="sort" onclick="sortBy(0,false)">name</th>
<th class="sort" onclick="sortBy(1,true)">score</th><th class="sort" onclick="sortBy(2,true)">label</th>
<th>decision</th><th class="sort" onclick="sortBy(4,false)">result</th><th>figure</th></tr></thead>
<tbody>
{chr(10).join(_image_row(r) for r in rows)}
</tbody></table></body></html>
"""
    return write_text(out / "index.html", page)
