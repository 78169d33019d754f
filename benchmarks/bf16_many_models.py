"""Reproduction attempt for the mixed_bfloat16 NaN seen after ~125 models built in one process.

Builds N models one after another in ONE process (as experiments/ does), each trained a few steps
on a fixed random batch under mixed_bfloat16, and records per model whether the loss and every
weight stayed finite, plus the process's RSS. ``--native`` disables the row-GEMM 15×15 conv (the
kernels the original observation ran on); ``--float32`` runs the same loop in float32 as a control.

Usage: python benchmarks/bf16_many_models.py --models 200 --size 64 [--native] [--float32]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kerasdec.bench import timing  # noqa: E402
from kerasdec.config import DataConfig, RunConfig, TrainConfig  # noqa: E402
from kerasdec.models.rowconv import native_convolutions, released_custom_gradients  # noqa: E402
from kerasdec.training.model import build_model, precision_policy  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--native", action="store_true")
    parser.add_argument("--float32", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="JSON lines, one per model")
    args = parser.parse_args()
    precision = "float32" if args.float32 else "mixed_bfloat16"
    cfg = RunConfig(data=DataConfig(width=args.size, height=args.size),
                    train=TrainConfig(batch_size=1, precision=precision, jit=False, lr=0.01))
    batch = timing.synthetic_batch(cfg, seed=0)
    out = open(args.out, "a") if args.out else sys.stdout
    bad = 0
    for i in range(args.models):
        start = time.perf_counter()
        native = native_convolutions() if args.native else contextlib.nullcontext()
        with precision_policy(precision), native, released_custom_gradients():
            model = build_model(cfg)
            timer = timing.ModelTimer(model, batch)
            losses = [float(timer.model.train_function(timer._iterator)["loss"]) for _ in range(args.steps)]
            nonfinite = [v.path for v in model.trainable_variables if not np.all(np.isfinite(v.numpy()))]
        bad += bool(nonfinite) or not all(np.isfinite(losses))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out.write(json.dumps({"model": i, "losses": losses, "nonfinite": nonfinite[:5],
                              "n_nonfinite": len(nonfinite), "seconds": round(time.perf_counter() - start, 2),
                              "peak_rss_mb": round(rss)}) + "\n")
        out.flush()
        del model, timer
        gc.collect()
    print(f"{bad} of {args.models} models had a non-finite loss or weight", file=sys.stderr)


if __name__ == "__main__":
    main()
