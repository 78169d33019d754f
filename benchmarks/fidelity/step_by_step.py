"""kerasdec's whole training run against the published loop in PyTorch, step by step, in float64.

ONE command (kerasdec's environment active; the PyTorch venv of benchmarks/setup_torch.sh with
opencv-python-headless and scipy, at $KERASDEC_TORCH_VENV or ~/.cache/kerasdec-torch-venv):

    python benchmarks/fidelity/step_by_step.py [--quick] [--out DIR]

For each layout (DAGM, KSDD2: tiny datasets written here in the real on-disk layouts) and batch size
(1, 5) it runs kerasdec's ``fit`` with the published preset in float64 (``precision="float64"``,
TensorFlow's deterministic kernels) and, in lockstep, the published loop in PyTorch float64
(published_loop.py) from the same initial weights. After every kerasdec step the images that step
trained on (recorded from inside kerasdec's own train_step by their pixel sums) are sent to the
rendition, which identifies them in ITS OWN copy of the data (read by the published rules), runs its own
step with its own λ, m and targets, and writes its parameters; every parameter tensor is compared
(max |kerasdec − PyTorch| / max |PyTorch|), and so are the step's losses, λ and m at every epoch
start, the validation AP at the epochs the published rule validates, the test AP of the final model,
the number of steps per epoch (the rendition counts by the published rule), and the batches against
kerasdec's recorded sampler state (sampler.json). The bar: every relative difference <= 1e-9.
A control trains the rendition a second time with FeatureNorm written another way (the same maths,
other float64 rounding): how far that copy drifts from the rendition is what rounding alone produces.

Writes DIR/step_by_step.json (every step) and DIR/step_by_step.md (the summary table).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent.parent / "tests"))

import kerasdec_side as kd  # noqa: E402  (puts benchmarks/ on the path)
from compare_torch import TorchWorker  # noqa: E402
from fakes import write_dagm, write_ksdd2  # noqa: E402

BAR = 1e-9
# layout: (input W×H, images (h, w) on disk, train (pos, neg), test (pos, neg)). Both input sides >= 128:
# the decision stage's last block then sees >= 2×2 positions. On one position the published network
# is NaN (unbiased std of one value; kerasdec floors n − 1 at 1), and on 1×2 FeatureNorm's statistics
# over two values amplify float64 rounding into 1e-9 within a dozen decision-stage steps (measured, and
# reproduced by the control: results/fidelity/small_maps/).
LAYOUTS = {
    "dagm": ((128, 128), (160, 160), (8, 12), (4, 4)),
    "ksdd2": ((128, 192), (240, 160), (6, 10), (3, 5)),
}
QUICK = {"dagm": ((128, 128), (160, 160), (3, 5), (2, 3)), "ksdd2": ((128, 192), (240, 160), (3, 5), (2, 3))}


def relative(a: np.ndarray, b: np.ndarray) -> float:
    """max |a − b| / max |b| (0 when both are 0)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    diff = float(np.max(np.abs(a - b))) if b.size else 0.0
    return diff / scale if scale > 0 else diff


DECISION_TENSORS = ("b10_", "b11_", "b12_", "dense_")  # the decision stage in compare_torch's names


def compare_parameters(model, path: Path) -> tuple[float, str, int, dict[str, float]]:
    """(worst relative difference, its tensor, number of parameters compared, worst per stage)."""
    mine, theirs = kd.kerasdec_weights(model), dict(np.load(path))
    assert set(mine) == set(theirs), (sorted(mine), sorted(theirs))
    n = sum(v.size for v in mine.values())
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert n == trainable, f"compared {n} of {trainable} trainable parameters"
    diffs = {name: relative(mine[name], theirs[name]) for name in mine}
    worst = max(diffs, key=diffs.get)
    stages = {"segmentation": max(v for k, v in diffs.items() if not k.startswith(DECISION_TENSORS)),
              "decision": max(v for k, v in diffs.items() if k.startswith(DECISION_TENSORS))}
    return diffs[worst], worst, n, stages


class Lockstep:
    """The callbacks' side: drive the rendition after every kerasdec step and compare."""

    def __init__(self, cfg, worker: TorchWorker, scratch: Path, control: bool) -> None:
        self.cfg, self.worker, self.scratch, self.control = cfg, worker, scratch, control
        self.steps: list[dict] = []
        self.epochs: dict[int, dict] = {}
        self.validations: list[dict] = []
        self.info: dict = {}

    def begin(self, model) -> None:
        weights = self.scratch / "initial.npz"
        np.savez(weights, **kd.kerasdec_weights(model))
        self.info = self.worker("setup", **kd.worker_settings(self.cfg), weights=str(weights),
                                control=self.control)
        self.t0 = time.perf_counter()

    def epoch(self, epoch: int, seg_w: float, cls_w: float, m: float) -> None:
        self.epochs[epoch] = {"kerasdec": {"seg_w": seg_w, "cls_w": cls_w, "m": m}}

    def step(self, model, epoch: int, batch: int, fingerprints: list[float], losses: dict,
             lam: float) -> None:
        params = self.scratch / "params.npz"
        t0 = time.perf_counter()
        kerasdec_seconds, self.t0 = t0 - self.t0, t0
        reply = self.worker("step", epoch=epoch, fingerprints=fingerprints, out=str(params))
        t1 = time.perf_counter()
        worst, tensor, n, stages = compare_parameters(model, params)
        self.t0 = time.perf_counter()
        seconds = {"kerasdec": kerasdec_seconds, "published": t1 - t0, "compare": self.t0 - t1}
        self.epochs[epoch]["published"] = {"seg_w": reply["seg_w"], "cls_w": reply["cls_w"], "m": reply["m"]}
        loss_diffs = {k: abs(losses[k] - reply[k]) / max(abs(reply[k]), 1e-300) for k in losses}
        row = {"epoch": epoch, "step": batch, "images": reply["names"], "positive": reply["positive"],
               "param_rel": worst, "param_worst": tensor, "n_params": n, "stages": stages,
               "loss_rel": max(loss_diffs.values()),
               "kerasdec": losses, "published": {k: reply[k] for k in losses}, "notes": reply["notes"],
               "seconds": seconds, "control_rel": reply["control_rel"]}
        self.steps.append(row)
        print(f"  epoch {epoch} step {batch}: {len(fingerprints)} images "
              f"({sum(reply['positive'])} defective), "
              f"params {worst:.1e} ({tensor}; segmentation stage {stages['segmentation']:.1e}), "
              f"losses {row['loss_rel']:.1e}, "
              f"control {reply['control_rel'] or 0:.1e}; seconds "
              + " ".join(f"{k} {v:.1f}" for k, v in seconds.items()), flush=True)

    def validation(self, epoch: int, val_ap: float | None) -> None:
        reply = self.worker("validate", epoch=epoch)
        self.validations.append({"epoch": epoch, "kerasdec": val_ap, "published": reply["ap"],
                                 "published_due": reply["due"]})


def check_sampler_record(run_dir: Path, steps: list[dict], batch_size: int) -> str:
    """Do the recorded batches equal kerasdec's sampler state (its epochs, cut into batches in order)?"""
    state = json.loads((run_dir / "sampler.json").read_text())
    train = [row[0] for row in json.loads((run_dir / "samples.json").read_text())["train"]]
    short = [name.rsplit("/", 1)[-1] for name in train]
    for row in steps:
        order = state["epochs"][row["epoch"]]
        expected = [short[i] for i in order[row["step"] * batch_size:(row["step"] + 1) * batch_size]]
        got = [name.rsplit("/", 1)[-1] for name in row["images"]]
        if expected != got:
            return f"epoch {row['epoch']} step {row['step']}: trained on {got}, sampler says {expected}"
    return "equal"


def run_one(layout: str, batch_size: int, epochs: int, root: Path, size: tuple[int, int], seed: int,
            scratch: Path, control: bool) -> dict:
    cfg = kd.published_config(layout, root, size, seed, scratch / f"run-{layout}-b{batch_size}",
                              epochs=epochs, batch_size=batch_size, precision="float64")
    worker = TorchWorker(script="fidelity/published_loop.py",
                         needs=", then pip install opencv-python-headless scipy into that venv")
    lock = Lockstep(cfg, worker, scratch, control)
    tap = kd.StepTap(batch_size, lock.begin, lock.epoch, lock.step, lock.validation)
    start = time.perf_counter()
    try:
        run_dir = kd.run_float64(cfg, tap)
    finally:
        worker.close()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    last = lock.validations[-1] if lock.validations else {}
    steps = lock.steps
    schedule = dict(lock.epochs)
    lam_abs = max((abs(v["kerasdec"][k] - v["published"][k]) for v in schedule.values() if "published" in v
                   for k in ("seg_w", "cls_w", "m")), default=float("nan"))
    first_two = [r for r in steps if r["epoch"] < 2]
    return {
        "layout": layout, "batch_size": batch_size, "epochs": epochs, "size": size, "seed": seed,
        "settings": kd.worker_settings(cfg), "setup": lock.info, "steps": steps,
        "steps_per_epoch": {e: sum(1 for r in steps if r["epoch"] == e) for e in lock.epochs},
        "schedule": schedule, "validations": lock.validations, "max_schedule_abs": lam_abs,
        "max_param_rel_two_epochs": max(r["param_rel"] for r in first_two),
        "max_param_rel": max(r["param_rel"] for r in steps),
        "max_param_rel_segmentation": max(r["stages"]["segmentation"] for r in steps),
        "max_loss_rel_two_epochs": max(r["loss_rel"] for r in first_two),
        "max_loss_rel": max(r["loss_rel"] for r in steps),
        "max_control_rel": max((r["control_rel"] or 0.0) for r in steps),
        "first_over_bar": first_over(steps, lambda r: max(r["param_rel"], r["loss_rel"])),
        "control_first_over_bar": first_over(steps, lambda r: r["control_rel"] or 0.0),
        "test_ap": {"kerasdec": metrics["ap"], "published": last.get("published")},
        "sampler_record": check_sampler_record(run_dir, steps, batch_size),
        "notes": steps[-1]["notes"] if steps else [], "seconds": time.perf_counter() - start,
    }


def first_over(steps: list[dict], value) -> dict | None:
    row = next((r for r in steps if value(r) > BAR), None)
    return None if row is None else {"epoch": row["epoch"], "step": row["step"], "value": value(row),
                                     "tensor": row["param_worst"]}


def _at(first: dict | None) -> str:
    return "none" if first is None else f"epoch {first['epoch']} step {first['step']}"


def table(results: list[dict]) -> str:
    """The summary table (markdown)."""
    head = ["layout, batch", "steps per epoch: kerasdec / published rule",
            "batches = kerasdec's sampler record",
            "λ_seg, λ_cls, m at epoch starts (max abs diff)", "max rel. param diff, epochs 0-1",
            "max rel. param diff, all epochs (worst tensor)", "segmentation stage, all epochs",
            "max rel. loss diff, epochs 0-1 / all", "val AP kerasdec / PyTorch (epoch)",
            "test AP kerasdec / PyTorch",
            "first step over 1e-9: kerasdec vs PyTorch / PyTorch vs PyTorch with FeatureNorm rewritten"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for r in results:
        worst = max(r["steps"], key=lambda s: s["param_rel"])
        vals = ", ".join(f"{v['kerasdec']:.4f} / {v['published']:.4f} ({v['epoch']})"
                         for v in r["validations"] if None not in (v["kerasdec"], v["published"]))
        if any((v["kerasdec"] is None) == v["published_due"] for v in r["validations"]):
            vals += " (validated at different epochs!)"
        per_epoch = "/".join(str(n) for n in r["steps_per_epoch"].values())
        cells = [f"{r['layout']}, {r['batch_size']}", f"{per_epoch} / {r['setup']['steps_per_epoch']}",
                 r["sampler_record"], f"{r['max_schedule_abs']:.1e}", f"{r['max_param_rel_two_epochs']:.1e}",
                 f"{r['max_param_rel']:.1e} ({worst['param_worst']})",
                 f"{r['max_param_rel_segmentation']:.1e}",
                 f"{r['max_loss_rel_two_epochs']:.1e} / {r['max_loss_rel']:.1e}", vals,
                 f"{r['test_ap']['kerasdec']:.4f} / {r['test_ap']['published']:.4f}",
                 f"{_at(r['first_over_bar'])} / {_at(r['control_first_over_bar'])}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 epochs of 8 training images (CI-sized)")
    parser.add_argument("--layout", action="append", choices=sorted(LAYOUTS), help="default: both")
    parser.add_argument("--batch", action="append", type=int, help="default: 1 and 5")
    parser.add_argument("--epochs", type=int, default=None, help="default 3 (--quick: 2)")
    parser.add_argument("--size", type=str, default=None,
                        help="input WxH for every layout (images on disk 1.25× as large); default per layout")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-control", dest="control", action="store_false",
                        help="skip the control: the rendition trained a second time with FeatureNorm written "
                             "another way (same maths, other float64 rounding), to show how far rounding "
                             "alone drifts")
    parser.add_argument("--out", type=Path, default=None, help="default benchmarks/results/fidelity-<time>")
    args = parser.parse_args()
    out = args.out or HERE.parent / "results" / time.strftime("fidelity-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    epochs = args.epochs or (2 if args.quick else 3)
    sizes = QUICK if args.quick else LAYOUTS
    results = []
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="kerasdec-fidelity-", dir=base) as tmp:
        tmp = Path(tmp)
        for layout in args.layout or sorted(LAYOUTS):
            input_size, shape, train, test = sizes[layout]
            if args.size:
                input_size = tuple(int(v) for v in args.size.lower().split("x"))
                shape = (input_size[1] * 5 // 4, input_size[0] * 5 // 4)
            if layout == "dagm":
                root = write_dagm(tmp / "DAGM", 1, {"Train": train, "Test": test}, shape, seed=1).root
            else:
                root = write_ksdd2(tmp / "KSDD2", {"train": train, "test": test}, shape, seed=2).root
            for batch in args.batch or [1, 5]:
                print(f"{layout}, batch {batch}, {epochs} epochs, input {input_size}", flush=True)
                results.append(run_one(layout, batch, epochs, root, input_size, args.seed, tmp, args.control))
                (out / "step_by_step.json").write_text(json.dumps(results, indent=1))
    md = table(results)
    (out / "step_by_step.md").write_text(md + "\n")
    print("\n" + md)
    failed = [r for r in results if r["max_param_rel_two_epochs"] > BAR or r["sampler_record"] != "equal"]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
