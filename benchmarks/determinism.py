"""What reproducible arithmetic fixes and what it costs (kerasdec/determinism.py), in fresh processes.

    python benchmarks/determinism.py probe [--shape B H W]      # distinct outputs of 8 identical calls
    python benchmarks/determinism.py cost --size 128x128 --batch 2 [--steps 10 --rounds 5]

``probe`` calls the row-GEMM 15×15 convolution (forward and gradients, inside one tf.function, as a
training step does) 8 times on the same input, in two fresh processes per setting: default TensorFlow,
op determinism only, and kerasdec's ``deterministic()`` (op determinism + Grappler constant folding
off). It prints how many distinct results each process saw and whether the processes agree.
``cost`` times the published network's training step with and without ``deterministic()``, rounds
interleaved (A B, B A, ...), each round in fresh processes; median ms per step and the ratio. Run it
on a quiet machine: the ratio is only as good as the machine's noise.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

PROBE = r'''
import hashlib, json, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np, tensorflow as tf
mode, b, h, w = sys.argv[1], *(int(a) for a in sys.argv[2:5])
from kerasdec.determinism import deterministic
from kerasdec.models.rowconv import row_gemm_conv2d
if mode == "op_determinism":
    tf.config.experimental.enable_op_determinism()
rng = np.random.default_rng(0)
x = tf.constant(rng.standard_normal((b, h, w, 64), dtype=np.float32))
dy = tf.constant(rng.standard_normal((b, h, w, 1024), dtype=np.float32))
kernel = tf.Variable(rng.standard_normal((15, 15, 64, 1024), dtype=np.float32) * 0.01)
@tf.function
def step(x, dy):
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(row_gemm_conv2d(x, kernel) * dy)
    return tape.gradient(loss, [x, kernel])
def digest(tensors):
    return hashlib.sha256(b"".join(t.numpy().tobytes() for t in tensors)).hexdigest()[:12]
with deterministic(mode == "kerasdec"):
    seen = [digest(step(x, dy)) for _ in range(8)]
print(json.dumps({"distinct": len(set(seen)), "first": seen[0]}))
'''

STEP = r'''
import json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras, numpy as np, tensorflow as tf
det, h, w, b, steps = (int(a) for a in sys.argv[1:6])
from kerasdec.determinism import deterministic
from kerasdec.models.segdec import SegDecNet
with deterministic(bool(det)):
    keras.utils.set_random_seed(0)
    model = SegDecNet(1)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    model.build_for_training((h, w, 1))
    model.cls_loss_weight.assign(0.5)
    rng = np.random.default_rng(0)
    x = rng.random((b, h, w, 1), dtype=np.float32)
    seg = (rng.random((b, h // 8, w // 8, 1)) > 0.8).astype(np.float32)
    data = (x, {"seg": seg, "decision": np.ones((b, 1), np.float32)},
            {"seg": np.ones_like(seg), "decision": np.ones((b, 1), np.float32)})
    ds = tf.data.Dataset.from_tensors(data).repeat(steps + 2)
    class Clock(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 2:
                self.start = time.perf_counter()
        def on_train_end(self, logs=None):
            print(json.dumps({"ms": (time.perf_counter() - self.start) / steps * 1000}))
    model.fit(ds, epochs=1, verbose=0, callbacks=[Clock()])
'''


def _run(code: str, *args: object) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def probe(shape: tuple[int, int, int]) -> None:
    print(f"row-GEMM 15x15 convolution, input {shape} x 64 channels, 8 identical calls per process")
    for mode in ("default", "op_determinism", "kerasdec"):
        runs = [_run(PROBE, mode, *shape) for _ in range(2)]
        agree = "agree" if runs[0]["first"] == runs[1]["first"] else "DIFFER"
        print(f"  {mode:15s} distinct per process: {runs[0]['distinct']}, {runs[1]['distinct']}; "
              f"two processes {agree}")


def cost(size: str, batch: int, steps: int, rounds: int) -> None:
    width, height = (int(v) for v in size.lower().split("x"))
    times: dict[int, list[float]] = {0: [], 1: []}
    for r in range(rounds):
        for det in ((0, 1) if r % 2 == 0 else (1, 0)):
            times[det].append(_run(STEP, det, height, width, batch, steps)["ms"])
    base, det = statistics.median(times[0]), statistics.median(times[1])
    print(f"{size} batch {batch}: default {base:.0f} ms/step, deterministic {det:.0f} ms/step, "
          f"ratio {det / base:.3f} (medians of {rounds} interleaved rounds; "
          f"default {[round(t) for t in times[0]]}, deterministic {[round(t) for t in times[1]]})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("probe")
    p.add_argument("--shape", nargs=3, type=int, default=(10, 16, 16), metavar=("B", "H", "W"),
                   help="the convolution's input (batch, height, width) at 1/8 of the image")
    c = sub.add_parser("cost")
    c.add_argument("--size", default="128x128", help="WxH of the images")
    c.add_argument("--batch", type=int, default=2)
    c.add_argument("--steps", type=int, default=10)
    c.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.cmd == "probe":
        probe(tuple(args.shape))
    else:
        cost(args.size, args.batch, args.steps, args.rounds)


if __name__ == "__main__":
    main()
