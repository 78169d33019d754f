"""Where the time of one SegDecNet step goes: a TF profiler trace, summarised per op group and kernel.

Builds the model as ``kerasdec fit`` does, warms up, records ``--steps`` training steps (or forward
passes with ``--forward``) with ``tf.profiler``, and reads the trace (``*.xplane.pb``) back: every
TensorFlow op executed on the CPU, its type (``_Mkl*`` = a oneDNN kernel, the rest Eigen or TF's
own), its time, grouped into what the issue asks about: the 15×15×1024 convolution (forward,
backward-input, backward-filter), the other convolutions, FeatureNorm, the SGD update, the rest.
Op times are wall times of each op on its executor thread; with two inter-op threads ops can
overlap, so shares are of the summed op time. The trace stays in ``--logdir`` for TensorBoard's
profile plugin.

Usage:
    python benchmarks/profile_step.py --size 128x128 --batch 1 [--precision mixed_bfloat16] [--forward]
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's kerasdec

import tensorflow as tf  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

from kerasdec.bench import timing  # noqa: E402
from kerasdec.config import DataConfig, RunConfig, TrainConfig  # noqa: E402
from kerasdec.training.model import build_model, precision_policy  # noqa: E402


def group_of(name: str, op_type: str) -> str:
    """The reporting group of one op from its full name and type."""
    part = "backward" if "gradient_tape/" in name else "forward"
    if "sgd/" in name or op_type in ("AssignSubVariableOp", "ResourceApplyGradientDescent"):
        return "SGD update"
    if "/norm" in name:
        return f"FeatureNorm {part}"
    if "row_gemm_conv2d_grad" in name:
        return "15x15x1024 conv backward (row-GEMM)"
    if "segmentation_1/block9" in name or "segmentation/block9" in name:  # conv (oneDNN or row-GEMM)
        if "BackpropInput" in op_type:
            part = "backward-input"
        elif "BackpropFilter" in op_type:
            part = "backward-filter"
        return f"15x15x1024 conv {part}"
    if "Conv2D" in op_type:
        kind = ("backward-input" if "BackpropInput" in op_type else
                "backward-filter" if "BackpropFilter" in op_type else "forward")
        return f"other convs {kind}"
    return f"other {part}"


def op_times(logdir: Path, steps: int) -> dict[tuple[str, str], float]:
    """Milliseconds per step of every (op name, op type) in the newest trace under logdir."""
    path = sorted(logdir.glob("**/*.xplane.pb"))[-1]
    space = xplane_pb2.XSpace()
    space.ParseFromString(path.read_bytes())
    plane = next(p for p in space.planes if p.name == "/host:CPU")
    times: dict[tuple[str, str], float] = collections.Counter()
    for line in plane.lines:
        if not line.name.startswith("tf_Compute"):
            continue
        for event in line.events:
            full = plane.event_metadata[event.metadata_id].name
            if ":" not in full or full.startswith("Threadpool"):
                continue
            name, op_type = full.rsplit(":", 1)
            if op_type in ("Process", "StatefulPartitionedCall", "PartitionedCall"):
                continue
            times[(name, op_type)] += event.duration_ps / 1e9 / steps
    return times


def summarise(times: dict[tuple[str, str], float], wall_ms: float) -> str:
    total = sum(times.values())
    groups: dict[str, float] = collections.Counter()
    kinds: dict[str, float] = collections.Counter()
    types: dict[str, float] = collections.Counter()
    for (name, op_type), ms in times.items():
        groups[group_of(name, op_type)] += ms
        kinds["oneDNN (_Mkl*)" if op_type.startswith("_Mkl") else "Eigen / TF"] += ms
        types[op_type] += ms
    out = [f"wall time per step {wall_ms:.1f} ms; summed op time {total:.1f} ms", "",
           "| group | ms | share |", "|---|---|---|"]
    out += [f"| {g} | {ms:.1f} | {100 * ms / total:.1f}% |" for g, ms in groups.most_common()]
    out += ["", "| kernel library | ms | share |", "|---|---|---|"]
    out += [f"| {k} | {ms:.1f} | {100 * ms / total:.1f}% |" for k, ms in kinds.most_common()]
    out += ["", "| op type | ms | share |", "|---|---|---|"]
    out += [f"| {t} | {ms:.1f} | {100 * ms / total:.1f}% |" for t, ms in types.most_common(15)]
    out += ["", "Top ops:"]
    for (name, op_type), ms in sorted(times.items(), key=lambda i: -i[1])[:15]:
        out.append(f"  {ms:8.1f} ms  {op_type:32s} {re.sub(r'StatefulPartitionedCall/', '', name)[-90:]}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="128x128", help="WxH")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--jit", action="store_true")
    parser.add_argument("--forward", action="store_true", help="profile the forward pass instead")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--logdir", type=Path, default=None)
    parser.add_argument("--summarise", type=Path, default=None, help="only summarise this existing trace dir")
    args = parser.parse_args()
    if args.summarise is not None:
        print(summarise(op_times(args.summarise, args.steps), float("nan")))
        return
    width, height = (int(v) for v in args.size.lower().split("x"))
    cfg = RunConfig(data=DataConfig(width=width, height=height),
                    train=TrainConfig(batch_size=args.batch, precision=args.precision, jit=args.jit))
    logdir = args.logdir or Path(tempfile.mkdtemp(prefix="kerasdec-profile-"))
    with precision_policy(cfg.train.precision):
        timer = timing.ModelTimer(build_model(cfg), timing.synthetic_batch(cfg))
        run = timer.forward if args.forward else timer.train
        run(3)
        wall = float(np.median([run(1) for _ in range(args.steps)])) * 1000
        tf.profiler.experimental.start(str(logdir))
        start = time.perf_counter()
        run(args.steps)
        traced = (time.perf_counter() - start) / args.steps * 1000
        tf.profiler.experimental.stop()
    what = "forward pass" if args.forward else "training step"
    print(f"{what}, {width}x{height}, batch {args.batch}, {args.precision}, jit={args.jit}; "
          f"traced steps {traced:.1f} ms each; trace in {logdir}")
    print(summarise(op_times(logdir, args.steps), wall))


if __name__ == "__main__":
    main()
