"""Published recipe vs small-data recipe on the hard synthetic family (issue 13): AP over seeds.

Run r writes family seed r (one surface, experiments/hard_family.py; DAGM layout, or --layout) and
trains each variant on it with training seed r, in a fresh process, at 128 px; every run's test AP and
wall time go to OUT/<variant>-s<r>.json (never overwritten: a second call with the same OUT runs only what is
missing), and OUT/table.md summarises mean, min and max per variant (regenerated from those files
after every run).

    python experiments/small_data.py --out /work/sd-results/m1 --seeds 0 1 2 --positives 10

Variants: "published" (the layout's preset: DAGM ICPR 2020, KSDD2 CIS 2021, or kerasdec's folder
preset), "small" (--recipe small: augmentation, 3x the preset's epochs, a learning rate of at
least 0.03), and ablations and candidates: the augmentation at the preset's epochs and lr (with SGD
or Adam), the recipe at the preset's lr or without each augmentation ingredient, one image per
update for 1,200 updates.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from kerasdec.files import write_json, write_text
from kerasdec.recipes import SMALL_GEOMETRY, SMALL_JITTER, SMALL_MIN_LR

HERE = Path(__file__).resolve().parent
AUGMENT = ["--augment-geometry", SMALL_GEOMETRY, "--augment-jitter", str(SMALL_JITTER)]  # as small
VARIANTS: dict[str, list[str]] = {
    "published": ["--recipe", "published"],
    "small": ["--recipe", "small"],  # today's recipe: augmentation, 3x the preset's epochs, lr >= 0.03
    "augment-only": ["--recipe", "published", *AUGMENT],  # the preset's epochs and lr
    "augment-adam": ["--recipe", "published", *AUGMENT, "--optimizer", "adam", "--lr", "0.001"],
    "small-no-geometry": ["--recipe", "small", "--augment-geometry", "none"],
    "small-no-jitter": ["--recipe", "small", "--augment-jitter", "0"],
    "small-updates": ["--recipe", "small", "--batch-size", "1", "--steps", "1200"],
    "updates-only": ["--recipe", "published", "--batch-size", "1", "--steps", "1200"],
    "small-preset-lr": ["--recipe", "small", "--lr", "0.01"],  # the previous small: the lr of the three
    # layouts' presets (DAGM ICPR 2020, KSDD2 CIS 2021, folder)
    "small-lr5": ["--recipe", "small", "--lr", "0.05"],  # 5x; the CIS 2021 DAGM preset's learning rate
    "small-no-augment": ["--recipe", "small", "--augment-geometry", "none", "--augment-jitter", "0"],
    "lr-only": ["--recipe", "published", "--lr", str(SMALL_MIN_LR)],  # the preset at small's lr
}
CLI = "from kerasdec.cli import main; main()"


# layout -> (fit flags of the dataset; its folder in a family, hard_family.py's names)
LAYOUTS: dict[str, tuple[list[str], str]] = {
    "dagm": (["--dataset", "dagm", "--category", "1"], "dagm"),  # ICPR 2020 DAGM preset
    "ksdd2": (["--dataset", "ksdd2", "--channels", "1"], "ksdd2-0"),  # CIS 2021 KSDD2 preset, grey images
    "folder": (["--dataset", "folder"], "folder-0"),  # the user's own folder: kerasdec's folder preset
}


def family(out: Path, seed: int, layout: str) -> Path:
    """Write (once) family ``seed`` with one surface; return the root of its ``layout``."""
    root = out / "data" / f"family-s{seed}"
    if not root.exists():
        subprocess.run([sys.executable, str(HERE / "hard_family.py"), "--out", str(root), "--seed", str(seed),
                        "--datasets", "1"], check=True)
    return root / LAYOUTS[layout][1]


def run(out: Path, variant: str, seed: int, positives: int, timeout: int, layout: str = "dagm") -> dict:
    """Train and evaluate one variant on one family seed; return (and store) its result."""
    run_dir = out / "runs" / f"{variant}-s{seed}"
    args = [sys.executable, "-c", CLI, "fit", *LAYOUTS[layout][0],
            "--data-root", str(family(out, seed, layout)), "--width", "128", "--height", "128",
            "--positives", str(positives), "--validate-every", "1000", "--seed", str(seed),
            "--run-dir", str(run_dir), *VARIANTS[variant]]
    start = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    seconds = time.monotonic() - start
    (out / "logs").mkdir(parents=True, exist_ok=True)
    write_text(out / "logs" / f"{variant}-s{seed}.log", done.stdout + done.stderr, overwrite=False)
    result = {"variant": variant, "seed": seed, "layout": layout, "positives": positives,
              "seconds": round(seconds, 1), "returncode": done.returncode, "ap": None, "auc": None,
              "epochs": None, "batch_size": None}
    if done.returncode == 0:
        metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        result.update(ap=metrics["ap"], auc=metrics["auc"], epochs=config["train"]["epochs"],
                      batch_size=config["train"]["batch_size"])
    write_json(out / f"{variant}-s{seed}.json", result, overwrite=False)
    return result


def table(out: Path) -> str:
    """Markdown table of every stored result, one row per variant."""
    results: dict[str, list[dict]] = {}
    for path in sorted(out.glob("*-s*.json")):
        r = json.loads(path.read_text(encoding="utf-8"))
        results.setdefault(r["variant"], []).append(r)
    lines = ["| variant | runs (seeds) | test AP mean ± sd | min | max | per-seed AP | s/run mean |",
             "|---|---|---|---|---|---|---|"]
    for variant, rs in results.items():
        aps = [r["ap"] for r in rs if r["ap"] is not None]
        seeds = ",".join(str(r["seed"]) for r in rs)
        if not aps:
            lines.append(f"| {variant} | {len(rs)} ({seeds}) | failed | | | | |")
            continue
        sd = statistics.stdev(aps) if len(aps) > 1 else 0.0
        per_seed = " ".join(f"{r['ap']:.3f}" for r in rs if r["ap"] is not None)
        secs = statistics.mean(r["seconds"] for r in rs)
        lines.append(f"| {variant} | {len(aps)} ({seeds}) | {statistics.mean(aps):.3f} ± {sd:.3f} | "
                     f"{min(aps):.3f} | {max(aps):.3f} | {per_seed} | {secs:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="Results folder (reused: runs add up).")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=["published", "small"], choices=list(VARIANTS))
    parser.add_argument("--positives", type=int, default=10, help="Defective training images (of 20).")
    parser.add_argument("--timeout", type=int, default=900, help="Seconds per run.")
    parser.add_argument("--layout", choices=list(LAYOUTS), default="dagm",
                        help="Which of the family's layouts (and so which preset) to train on; use one "
                             "OUT per layout.")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:  # variants interleaved: a partial sweep still has paired seeds
        for variant in args.variants:
            if (args.out / f"{variant}-s{seed}.json").exists():
                continue
            result = run(args.out, variant, seed, args.positives, args.timeout, args.layout)
            print(json.dumps(result), flush=True)
            write_text(args.out / "table.md", table(args.out))


if __name__ == "__main__":
    main()
