"""Peak memory of a decompression bomb in fit, predict and serving (issue 20), each in a fresh process.

A PNG of zeros declares W×H pixels in its header and is a few hundred KB on disk; a decoder allocates
what the header declares. kerasdec reads the size from the header and refuses the file above the pixel
limit (default 50 MP) before decoding. This script runs, each case in its own process, and prints the
peak resident set size (``/usr/bin/time -v``, or ``ru_maxrss`` of the serving process):

- fit (1 epoch, 64×64, a tiny folder dataset): clean data; with a 30000×30000 bomb among the training
  images (refused); with a genuine 7000×7000 image (49 MP, just under the limit: decoded);
- predict (a random 64×64 model): one small image; plus the 30000×30000 bomb; plus the 7000×7000 image;
- serving_bytes of a SavedModel: a good request, then a 16000×16000 PNG (the issue's 249 KB request),
  with the default limit and, as the control, with the limit raised to 10^9 pixels (it is decoded).

Usage: ``python benchmarks/bomb_memory.py OUT_DIR`` (OUT_DIR is created; ~5 minutes on 2 cores).
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import cv2
import numpy as np


def png_bomb(path: Path, width: int, height: int) -> Path:
    """A grey 8-bit PNG of zeros, written row block by row block (never held decoded)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    packer, rows = zlib.compressobj(9), b"\x00" * (width + 1) * 64
    data = b"".join(packer.compress(rows) for _ in range(height // 64))
    data += packer.compress(b"\x00" * (width + 1) * (height % 64)) + packer.flush()
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def folder_data(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split, (ok, bad) in {"train": (4, 2), "test": (2, 2)}.items():
        for kind, n in (("ok", ok), ("defect", bad)):
            (root / split / kind).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                image = rng.integers(0, 256, (64, 64), np.uint8)
                cv2.imwrite(str(root / split / kind / f"{kind}{i}.png"), image)
    return root


def peak_kb(command: list[str], cwd: Path) -> tuple[int, int, str]:
    """(peak RSS in KB, exit code, last stderr line) of a command run under /usr/bin/time -v."""
    done = subprocess.run(["/usr/bin/time", "-v", *command], cwd=cwd, capture_output=True, text=True)
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    noise = ("I0000", "E0000", "W0000", "WARNING")
    lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("\t")
             and "Command being timed" not in line and not line.startswith(noise)]
    return peak, done.returncode, (lines[-1] if lines else "")[:200]


SERVE = textwrap.dedent("""
    import json, re, sys
    import tensorflow as tf
    def peak_kb():  # VmHWM: this process's own peak (ru_maxrss would keep the forking parent's)
        return int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
    serve = tf.saved_model.load(sys.argv[1]).signatures["serving_bytes"]
    good, bomb = open(sys.argv[2], "rb").read(), open(sys.argv[3], "rb").read()
    serve(image_bytes=tf.constant([good]))
    before = peak_kb()
    try:
        serve(image_bytes=tf.constant([bomb]))
        outcome = "decoded"
    except tf.errors.InvalidArgumentError as err:
        outcome = err.message.split(";")[0][-90:]
    after = peak_kb()
    serve(image_bytes=tf.constant([good]))  # still serving
    print(json.dumps({"peak_kb_good": before, "peak_kb_after_bomb": after, "bomb": outcome}))
""")

MODEL = textwrap.dedent("""
    import sys
    import keras, numpy as np
    from kerasdec.models.segdec import SegDecNet
    from kerasdec.deploy.saved_model import write_saved_model
    from kerasdec.inference.contract import ModelInfo
    keras.utils.set_random_seed(0)
    model = SegDecNet(input_channels=1, input_height=64, input_width=64, threshold=0.5)
    model(np.zeros((1, 64, 64, 1), np.float32))
    model.save(sys.argv[1] + "/model.keras")
    for limit in (50_000_000, 10**9):
        write_saved_model(model, f"{sys.argv[1]}/saved-{limit}", ModelInfo(64, 64, 1, 0.5, max_pixels=limit))
""")


def main(out: Path) -> None:
    out.mkdir(parents=True)
    kerasdec = [sys.executable, "-c", "from kerasdec.cli import main; main()"]
    bomb = png_bomb(out / "bomb-30000.png", 30000, 30000)
    bomb16 = png_bomb(out / "bomb-16000.png", 16000, 16000)
    large = out / "large-7000.png"
    cv2.imwrite(str(large), np.random.default_rng(1).integers(0, 256, (7000, 7000), np.uint8))
    small = out / "small.png"
    cv2.imwrite(str(small), np.full((64, 64), 90, np.uint8))
    rows = {"files": {p.name: p.stat().st_size for p in (bomb, bomb16, large)}}
    for case, extra in (("clean", None), ("bomb 30000x30000", bomb), ("genuine 7000x7000", large)):
        root = folder_data(out / f"data-{case.split()[0]}")
        if extra is not None:
            (root / "train" / "ok" / extra.name).write_bytes(extra.read_bytes())
        rows[f"fit, {case}"] = peak_kb([*kerasdec, "fit", "--dataset", "folder", "--data-root", str(root),
                                        "--epochs", "1", "--width", "64", "--height", "64", "--run-dir",
                                        str(out / f"run-{case.split()[0]}")], out)
    subprocess.run([sys.executable, "-c", MODEL, str(out)], check=True, capture_output=True)
    for case, inputs in (("one small image", [small]), ("+ bomb 30000x30000", [small, bomb]),
                         ("+ genuine 7000x7000", [small, large])):
        rows[f"predict, {case}"] = peak_kb([*kerasdec, "predict", str(out / "model.keras"),
                                            *map(str, inputs), "--out", str(out / f"pred-{len(rows)}")], out)
    for limit in (50_000_000, 10**9):
        done = subprocess.run([sys.executable, "-c", SERVE, str(out / f"saved-{limit}"), str(small),
                               str(bomb16)], capture_output=True, text=True, check=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        rows[f"serving_bytes, 16000x16000 bomb, limit {limit}"] = result
    print(json.dumps(rows, indent=1))
    (out / "bomb_memory.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
