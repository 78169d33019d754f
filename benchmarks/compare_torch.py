"""kerasdec vs the same network in PyTorch eager, on this machine, in ONE run (interleaved, medians).

For every (size, batch) it:
1. builds kerasdec's model as ``kerasdec fit`` does (float32, XLA off unless ``--jit``), writes its
   weights and one random batch to an .npz, and starts the PyTorch worker (benchmarks/torch_segdec.py,
   run by the venv of benchmarks/setup_torch.sh) on the same weights and batch;
2. checks that both compute the same thing: forward outputs, losses and the weight change of one SGD
   step (max abs difference relative to the largest value, printed and stored);
3. times the training step and the forward pass in ``--rounds`` rounds, each round running
   ``--steps`` steps of kerasdec then ``--steps`` of PyTorch (the idle side waits on a pipe), so a
   load from other processes hits both alike; the medians over rounds and their ratio are reported.

Usage (kerasdec's environment):
    python benchmarks/compare_torch.py --size 128x128 --size 256x256 --batch 1 --batch 2 \
        --json benchmarks/results/compare.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this checkout's kerasdec

from kerasdec.bench import timing  # noqa: E402
from kerasdec.config import DataConfig, RunConfig, TrainConfig  # noqa: E402
from kerasdec.models.rowconv import native_convolutions  # noqa: E402
from kerasdec.models.step import summed_losses  # noqa: E402
from kerasdec.training.model import build_model, precision_policy  # noqa: E402

TORCH_PYTHON = Path(os.environ.get("KERASDEC_TORCH_VENV", Path.home() / ".cache/kerasdec-torch-venv"),
                    "bin", "python")
LR = 0.01


def blocks(model) -> list:
    """kerasdec's ConvBlocks in the order torch_segdec.SegDec.blocks() uses."""
    seg = [s for s in model.segmentation_net.stages if hasattr(s, "conv")]
    dec = [s for s in model.decision_net.stages if hasattr(s, "conv")]
    return seg + [model.segmentation_net.head] + dec


def weights(model) -> dict[str, np.ndarray]:
    out = {}
    for i, block in enumerate(blocks(model)):
        out[f"b{i}_kernel"] = block.conv.kernel.numpy()
        out[f"b{i}_scale"] = block.norm.scale.numpy()
        out[f"b{i}_bias"] = block.norm.bias.numpy()
    dense = model.decision_net.dense
    out["dense_kernel"], out["dense_bias"] = dense.kernel.numpy(), dense.bias.numpy()
    return out


class TorchWorker:
    """The PyTorch side: a subprocess in the PyTorch venv answering one JSON line per command.

    ``script``: the worker, relative to benchmarks/ (torch_segdec.py here; fidelity/published_loop.py
    for the fidelity harness); ``needs``: what the venv needs beyond benchmarks/setup_torch.sh.
    """

    def __init__(self, threads: int | None = None, script: str = "torch_segdec.py", needs: str = "") -> None:
        if not TORCH_PYTHON.is_file():
            sys.exit(f"{TORCH_PYTHON} not found; run benchmarks/setup_torch.sh first{needs}")
        env = dict(os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {}))
        self.proc = subprocess.Popen([str(TORCH_PYTHON), str(HERE / script), "--worker"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def __call__(self, cmd: str, **kwargs) -> dict:
        self.proc.stdin.write(json.dumps({"cmd": cmd, **kwargs}) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        if "error" in reply:
            raise RuntimeError(f"PyTorch worker: {reply['error']}")
        return reply

    def close(self) -> None:
        self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
        self.proc.stdin.flush()
        self.proc.wait(timeout=60)


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    scale = max(float(np.max(np.abs(b))), 1e-12)
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))) / scale


def check_same(model, timer: timing.ModelTimer, torch_out: dict) -> dict[str, float]:
    """Relative max differences between kerasdec and PyTorch (outputs, losses, one SGD update)."""
    x, y, _ = timer.batch
    out = model(x)
    seg_loss, cls_loss = summed_losses(out, y)
    before = weights(model)
    snapshot = [v.numpy() for v in model.variables]
    timer.train(1)
    after = weights(model)
    for var, value in zip(model.variables, snapshot):
        var.assign(value)
    errors = {"decision": relative_error(out["decision"], torch_out["decision"]),
              "seg": relative_error(out["seg"], torch_out["seg"]),
              "seg_loss": relative_error(seg_loss, torch_out["seg_loss"]),
              "cls_loss": relative_error(cls_loss, torch_out["cls_loss"])}
    deltas = {k: relative_error(after[k] - before[k], torch_out[f"delta_{k}"]) for k in before}
    errors["sgd_update_max"] = max(deltas.values())
    errors["sgd_update_worst"] = max(deltas, key=deltas.get)
    # Both float32 updates against PyTorch in float64: is a difference rounding, or a different computation?
    worst = errors["sgd_update_worst"]
    reference = torch_out[f"delta64_{worst}"]
    errors["worst_vs_float64"] = {"kerasdec": relative_error(after[worst] - before[worst], reference),
                                  "pytorch": relative_error(torch_out[f"delta_{worst}"], reference)}
    return errors


def run_config(size: tuple[int, int], batch: int, args, worker: TorchWorker, tmp: Path) -> dict:
    width, height = size
    cfg = RunConfig(data=DataConfig(width=width, height=height),
                    train=TrainConfig(batch_size=batch, precision="float32", jit=args.jit, lr=LR))
    with precision_policy("float32"):
        model = build_model(cfg)
        timer = timing.ModelTimer(model, timing.synthetic_batch(cfg, seed=1))
        arrays = tmp / f"in_{width}x{height}_{batch}.npz"
        x, y, _ = timer.batch
        np.savez(arrays, x=x, seg=y["seg"], decision=y["decision"], **weights(model))
        info = worker("setup", arrays=str(arrays), lr=LR)
        worker("check", out=str(tmp / "out.npz"))
        errors = check_same(model, timer, dict(np.load(tmp / "out.npz")))
        sides = {"keras": timer}
        if args.also_native:  # the same model traced with oneDNN's convolution everywhere
            with native_convolutions():  # a second model: Keras caches one train_function per model
                twin = build_model(cfg)
                twin.set_weights(model.get_weights())
                native = timing.ModelTimer(twin, timer.batch)
                native.train(1)
                native.forward(1)
            sides["native"] = native
        for side in sides.values():
            side.train(args.warmup + 1)
            side.forward(args.warmup + 1)
        worker("train", steps=args.warmup + 1)
        worker("forward", steps=args.warmup + 1)
        times = {f"{side}_{kind}": [] for side in [*sides, "torch"] for kind in ("train", "forward")}
        for _ in range(args.rounds):
            for kind in ("train", "forward"):
                for name, side in sides.items():
                    times[f"{name}_{kind}"].append(getattr(side, kind)(args.steps))
                times[f"torch_{kind}"].append(worker(kind, steps=args.steps)["seconds"])
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"width": width, "height": height, "batch": batch, "jit": bool(args.jit), **info,
            "max_relative_difference": errors, "rounds": args.rounds, "steps": args.steps,
            "median_s": med, "all_s": times,
            "train_speedup": med["torch_train"] / med["keras_train"],
            "forward_speedup": med["torch_forward"] / med["keras_forward"],
            **({"native_train_speedup": med["torch_train"] / med["native_train"],
                "native_forward_speedup": med["torch_forward"] / med["native_forward"]}
               if args.also_native else {})}


def table(results: list[dict]) -> str:
    """Markdown: per input and batch, milliseconds of each side and kerasdec's speed-up over PyTorch."""
    native = "native_train" in results[0]["median_s"]
    extra = " oneDNN-conv train ms | oneDNN-conv fwd ms |" if native else ""
    lines = ["| input | batch | kerasdec train ms | PyTorch train ms | train × | kerasdec fwd ms | "
             f"PyTorch fwd ms | forward × |{extra} max rel. diff: outputs / SGD update (worst tensor) |",
             "|---|---|---|---|---|---|---|---|" + ("---|---|" if native else "") + "---|"]
    for r in results:
        m, e = r["median_s"], r["max_relative_difference"]
        cells = [f"{r['width']}×{r['height']}", str(r["batch"]), f"{1000 * m['keras_train']:.0f}",
                 f"{1000 * m['torch_train']:.0f}", f"{r['train_speedup']:.2f}",
                 f"{1000 * m['keras_forward']:.0f}", f"{1000 * m['torch_forward']:.0f}",
                 f"{r['forward_speedup']:.2f}"]
        if native:
            cells += [f"{1000 * m['native_train']:.0f}", f"{1000 * m['native_forward']:.0f}"]
        outputs, ref = max(e["decision"], e["seg"]), e["worst_vs_float64"]
        cells.append(f"{outputs:.1e} / {e['sgd_update_max']:.1e} ({e['sgd_update_worst']}; vs float64: "
                     f"kerasdec {ref['kerasdec']:.1e}, PyTorch {ref['pytorch']:.1e})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_size(text: str) -> tuple[int, int]:
    width, height = text.lower().split("x")
    return int(width), int(height)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", action="append", type=parse_size, help="WxH (repeatable); default 128x128")
    parser.add_argument("--batch", action="append", type=int, help="batch size (repeatable); default 1")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="steps per round and side")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--jit", action="store_true", help="XLA for kerasdec's training step")
    parser.add_argument("--also-native", action="store_true",
                        help="also time kerasdec with oneDNN's convolution everywhere (no row-GEMM 15×15)")
    parser.add_argument("--torch-threads", type=int, default=None, help="OMP_NUM_THREADS for PyTorch")
    parser.add_argument("--json", type=Path, help="write all results here (must not exist)")
    args = parser.parse_args()
    if args.json is not None and args.json.exists():
        sys.exit(f"--json {args.json} exists; choose a new file")
    worker = TorchWorker(args.torch_threads)
    results = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.size or [(128, 128)]:
            for batch in args.batch or [1]:
                results.append(run_config(size, batch, args, worker, Path(tmp)))
                print(table(results[-1:]).splitlines()[-1], flush=True)
    worker.close()
    print(f"\n{timing.device_name()}; load average {os.getloadavg()[0]:.1f} at the end; "
          f"{time.perf_counter() - start:.0f} s\n")
    print(table(results))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results}, indent=1))


if __name__ == "__main__":
    main()
