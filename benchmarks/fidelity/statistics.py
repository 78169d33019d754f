"""The published settings in kerasdec against the PyTorch rendition of the published loop, over seeds.

    nice -n 10 python benchmarks/fidelity/statistics.py --out DIR [--seeds 5] [--dataset dagm ...]

Writes the three datasets of datasets.py (DAGM, KSDD2 and KSDD layouts) into DIR/data once, then for
each dataset and seed runs, one after the other (never in parallel): ``kerasdec fit``'s code path
(kerasdec_side.run_float32: the published preset, float32 as a user runs it) and published_loop.py
--train (float32, PyTorch's own initialisation and the published sampler). Each finished run leaves
DIR/runs/<dataset>-<side>-seed<k>.json; runs already there are skipped, so the command resumes.
The summary (mean ± sd of the test AP, Welch's t and an exact permutation test of the difference in
means) goes to DIR/statistics.md.

Sizes and epochs (chosen to fit about 3 CPU-hours on this machine): DAGM 128×128, 30 epochs (preset 60),
12 positive + 48 negative training images, 16 + 24 test; KSDD2 64×192, 25 epochs (preset 50), 10 + 50,
test 16 + 32; KSDD 64×192, 25 epochs (preset for 10-15 kos folders: 70-90), the first 10 of 20 kos
folders train, the other 10 test. PyTorch runs with one thread (OMP_NUM_THREADS=1): on this shared
machine its OpenMP threads otherwise spin; TensorFlow keeps its defaults.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import datasets  # noqa: E402

TORCH_PYTHON = Path(os.environ.get("KERASDEC_TORCH_VENV", Path.home() / ".cache/kerasdec-torch-venv"),
                    "bin", "python")
PLAN = {  # dataset: (input W×H, epochs)
    "dagm": ((128, 128), 30),
    "ksdd2": ((64, 192), 25),
    "ksdd": ((64, 192), 25),
}


def kerasdec_run(dataset: str, root: Path, seed: int, scratch: Path, epochs: int) -> dict:
    """One kerasdec run in a fresh process (the same code path as ``kerasdec fit``)."""
    import kerasdec_side as kd

    size = PLAN[dataset][0]
    train = {"epochs": epochs}
    if dataset == "ksdd":
        train["split_file"] = root / "split.json"
    run_dir = scratch / f"kerasdec-{dataset}-{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)
    cfg = kd.published_config(dataset, root, size, seed, run_dir, **train)
    start = time.perf_counter()
    try:
        result = kd.run_float32(cfg)
    except FloatingPointError as err:  # kerasdec stops a diverged run; the rendition's AP is then None too
        shutil.rmtree(run_dir, ignore_errors=True)
        return {"test_ap": None, "diverged": str(err), "seconds": time.perf_counter() - start}
    history = (run_dir / "history.csv").read_text()
    shutil.rmtree(run_dir, ignore_errors=True)  # models and checkpoints: ~200 MB a run
    return {"test_ap": result["test_ap"], "seconds": time.perf_counter() - start, "history_csv": history,
            "settings": kd.worker_settings(cfg)}


def torch_settings(dataset: str, root: Path, seed: int, kerasdec_settings: dict) -> dict:
    """The rendition's config: kerasdec's settings for the same preset (same recipe), its own seed."""
    cfg = dict(kerasdec_settings, seed=seed, root=str(root))
    if dataset == "ksdd":
        cfg["folders"] = json.loads((root / "folders.json").read_text())
    return cfg


def preset_settings(dataset: str, root: Path, epochs: int) -> dict:
    import kerasdec_side as kd

    size = PLAN[dataset][0]
    train = {"epochs": epochs, **({"split_file": root / "split.json"} if dataset == "ksdd" else {})}
    return kd.worker_settings(kd.published_config(dataset, root, size, 0, root / "unused", **train))


def run_pending(out: Path, names: list[str], seeds: list[int], epochs: int | None) -> None:
    data = out / "data"
    if not (data / "done").is_file():
        shutil.rmtree(data, ignore_errors=True)
        datasets.write_all(data, seed=0)
        (data / "done").write_text("ok\n")
    roots = {"dagm": data / "DAGM", "ksdd2": data / "KSDD2", "ksdd": data / "KSDD"}
    runs = out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    for seed, name in itertools.product(seeds, names):
        for side in ("kerasdec", "pytorch"):
            path = runs / f"{name}-{side}-seed{seed}.json"
            if path.is_file():
                continue
            print(f"{time.strftime('%H:%M:%S')} {name} {side} seed {seed}", flush=True)
            if side == "kerasdec":  # a fresh process per run: nothing carries over between runs
                subprocess.run([sys.executable, __file__, "--one", name, str(seed), "--out", str(out),
                                "--epochs", str(epochs or PLAN[name][1])], check=True)
            else:
                cfg = out / f"{name}-seed{seed}.json"
                cfg.write_text(json.dumps(torch_settings(name, roots[name], seed,
                                                         preset_settings(name, roots[name],
                                                                         epochs or PLAN[name][1]))))
                tmp = path.with_suffix(".tmp")
                subprocess.run([str(TORCH_PYTHON), str(HERE / "published_loop.py"), "--train", str(cfg),
                                "--out", str(tmp)], check=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
                result = json.loads(tmp.read_text())
                result["settings"] = json.loads(cfg.read_text())
                path.write_text(json.dumps(result, indent=1))
                tmp.unlink()
                cfg.unlink()
            print(f"  test AP {json.loads(path.read_text())['test_ap']}", flush=True)


def permutation_p(a: np.ndarray, b: np.ndarray) -> float:
    """Exact two-sided permutation test of the difference in means (all splits of the pooled runs)."""
    pooled, n = np.concatenate([a, b]), len(a)
    observed = abs(a.mean() - b.mean())
    count = total = 0
    for chosen in itertools.combinations(range(len(pooled)), n):
        mask = np.zeros(len(pooled), bool)
        mask[list(chosen)] = True
        count += abs(pooled[mask].mean() - pooled[~mask].mean()) >= observed - 1e-12
        total += 1
    return count / total


def summary(out: Path) -> str:
    from scipy import stats

    lines = ["| dataset (layout, input, epochs) | kerasdec test AP, mean ± sd (runs) | PyTorch rendition | "
             "difference | Welch t, p | permutation p |", "|---|---|---|---|---|---|"]
    for name, ((w, h), epochs) in PLAN.items():
        aps, diverged = {}, {}
        for side in ("kerasdec", "pytorch"):
            files = sorted((out / "runs").glob(f"{name}-{side}-seed*.json"))
            runs = [json.loads(f.read_text())["test_ap"] for f in files]
            aps[side] = np.array([ap for ap in runs if ap is not None])
            diverged[side] = sum(ap is None for ap in runs)
        a, b = aps["kerasdec"], aps["pytorch"]
        if len(a) < 2 or len(b) < 2:
            continue
        t = stats.ttest_ind(a, b, equal_var=False)
        lines.append(f"| {name}, {w}×{h}, {epochs} | {a.mean():.3f} ± {a.std(ddof=1):.3f} ({len(a)}) | "
                     f"{b.mean():.3f} ± {b.std(ddof=1):.3f} ({len(b)}) | {a.mean() - b.mean():+.3f} | "
                     f"{t.statistic:.2f}, {t.pvalue:.2f} | {permutation_p(a, b):.2f} |")
        lines.append(f"|  per seed | {' '.join(f'{v:.3f}' for v in a)} | {' '.join(f'{v:.3f}' for v in b)} | "
                     f"diverged: {diverged['kerasdec']} / {diverged['pytorch']} | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--dataset", action="append", choices=sorted(PLAN))
    parser.add_argument("--one", nargs=2, metavar=("DATASET", "SEED"), help=argparse.SUPPRESS)
    parser.add_argument("--summary-only", action="store_true")
    parser.add_argument("--epochs", type=int, help="override every dataset's epochs (smoke tests)")
    args = parser.parse_args()
    if args.one:
        name, seed = args.one[0], int(args.one[1])
        roots = {"dagm": "DAGM", "ksdd2": "KSDD2", "ksdd": "KSDD"}
        result = kerasdec_run(name, args.out / "data" / roots[name], seed, args.out / "scratch",
                              args.epochs or PLAN[name][1])
        path = args.out / "runs" / f"{name}-kerasdec-seed{seed}.json"
        path.with_suffix(".tmp").write_text(json.dumps(result, indent=1))
        os.replace(path.with_suffix(".tmp"), path)
        return
    if not args.summary_only:
        run_pending(args.out, args.dataset or list(PLAN), list(range(args.seeds)), args.epochs)
    text = summary(args.out)
    (args.out / "statistics.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
