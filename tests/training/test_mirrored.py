"""MirroredStrategy over two logical CPUs gives the same step as one device for the same global batch.

Logical devices must be configured before TensorFlow runs any op, so the runs happen in a fresh
Python process (this file executed as a script); the test compares what it saved.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SIZE = 64
SEG_W, CLS_W = 0.6, 0.4  # both losses active, with the gradient multiplier at 1 (all paths train)


def _batch() -> tuple:
    rng = np.random.default_rng(7)
    x = rng.random((2, SIZE, SIZE, 1)).astype("float32")
    label = np.array([[1.0], [0.0]], "float32")
    seg = (rng.random((2, SIZE // 8, SIZE // 8, 1)) > 0.6).astype("float32") * label[:, :, None, None]
    weights = {"seg": rng.uniform(0.5, 2.0, seg.shape).astype("float32"), "decision": np.ones_like(label)}
    return x, {"seg": seg, "decision": label}, weights


def _build(strategy):
    import keras
    from fakes import tiny_segdec  # the tiny network: replicas sum alike whatever its size

    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = tiny_segdec()
        model.compile(optimizer=keras.optimizers.SGD(0.01))
        model.build_for_training((SIZE, SIZE, 1))
    model.seg_loss_weight.assign(SEG_W)
    model.cls_loss_weight.assign(CLS_W)
    model.set_gradient_adjustment(False)
    return model


def _step(model, initial: list, index: list[int]) -> tuple[list, dict]:
    """One fit epoch of one batch (the samples ``index`` of _batch()) from the weights ``initial``."""
    import tensorflow as tf

    for variable, value in zip(model.trainable_variables, initial):
        variable.assign(value)
    x, y, w = _batch()
    batch = (x[index], {k: v[index] for k, v in y.items()}, {k: v[index] for k, v in w.items()})
    history = model.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0, shuffle=False).history
    deltas = [v.numpy() - w0 for v, w0 in zip(model.trainable_variables, initial)]
    return deltas, {key: float(values[0]) for key, values in history.items()}


def _main(out_dir: Path) -> None:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    single = _build(tf.distribute.get_strategy())
    initial = [v.numpy() for v in single.trainable_variables]
    results = {"single": _step(single, initial, [0, 1])}
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    results["mirrored"] = _step(_build(strategy), initial, [0, 1])
    heads = [i for i, v in enumerate(single.trainable_variables) if "_head/" in v.path]
    arrays = {}
    for name, (deltas, _) in results.items():
        arrays[name] = np.concatenate([d.ravel() for d in deltas])
        arrays[f"{name}_heads"] = np.concatenate([deltas[i].ravel() for i in heads])
    np.savez(out_dir / "deltas.npz", **arrays, n_heads=len(heads))
    logs = {name: logs for name, (_, logs) in results.items()}
    (out_dir / "logs.json").write_text(json.dumps({**logs, "replicas": strategy.num_replicas_in_sync}))


def test_mirrored_equals_single_device(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    run = subprocess.run([sys.executable, __file__, str(tmp_path)], env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    logs = json.loads((tmp_path / "logs.json").read_text())
    assert logs["replicas"] == 2
    for key in ("loss", "seg_loss", "cls_loss"):  # logged = the global-batch sum, as on one device
        assert logs["mirrored"][key] == pytest.approx(logs["single"][key], rel=1e-5)
    assert logs["mirrored"]["lambda"] == pytest.approx(SEG_W, abs=1e-7)
    d = np.load(tmp_path / "deltas.npz")
    assert int(d["n_heads"]) == 5  # seg head conv + norm scale, bias; decision head kernel, bias
    for suffix in ("_heads", ""):
        mirrored, single = d["mirrored" + suffix], d["single" + suffix]
        norm = np.linalg.norm(single)
        assert norm > 0
        # The heads' updates depend on forward values only: equal up to float rounding. Upstream of
        # the last ReLU, a ~1e-6 difference between differently batched/compiled convolutions can
        # flip a near-zero ReLU input and move the whole update by ~0.5% (measured); a wrong
        # cross-replica reduction (a mean, or no sum) would be off by 50% or more.
        tolerance = 1e-4 if suffix else 2e-2
        assert np.linalg.norm(mirrored - single) < tolerance * norm
        assert abs(np.linalg.norm(mirrored) / norm - 1.0) < tolerance


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/, for fakes
    _main(Path(sys.argv[1]))
