"""The SegDecNet training step: summed losses, λ annealing, gradient adjustment, precision, XLA."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from fakes import tiny_segdec

from kerasdec.models.segdec import SegDecNet
from kerasdec.models.step import summed_losses
from kerasdec.training.callbacks import GradientAdjustment, LossBalance, SamplerEpoch
from kerasdec.training.schedules import lambda_at, loss_weights

SIZE = 64  # smallest input the network accepts


def make_batch(n: int = 2, seed: int = 0) -> tuple:
    """(x, y, sample_weight) with alternating positive/negative samples and non-trivial pixel weights."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, SIZE, SIZE, 1)).astype("float32")
    positive = (np.arange(n) % 2 == 0).astype("float32")[:, None]  # (n, 1)
    seg = (rng.random((n, SIZE // 8, SIZE // 8, 1)) > 0.7).astype("float32") * positive[:, :, None, None]
    seg_w = rng.uniform(0.5, 3.0, seg.shape).astype("float32")
    return x, {"seg": seg, "decision": positive}, {"seg": seg_w, "decision": np.ones_like(positive)}


def take(batch: tuple, index: list[int]) -> tuple:
    x, y, w = batch
    return x[index], {k: v[index] for k, v in y.items()}, {k: v[index] for k, v in w.items()}


def make_model(lr: float = 0.01, seed: int = 0, jit: bool = False) -> SegDecNet:
    """The tiny network, compiled and built: the step's arithmetic does not depend on the network's size."""
    keras.utils.set_random_seed(seed)
    model = tiny_segdec()
    model.compile(optimizer=keras.optimizers.SGD(lr), jit_compile=jit)
    model.build_for_training((SIZE, SIZE, 1))
    return model


def eager_loss(model: SegDecNet, batch: tuple) -> float:
    x, y, w = batch
    seg_loss, cls_loss = summed_losses(model(x), y, w)
    return float(model.seg_loss_weight.numpy() * seg_loss + model.cls_loss_weight.numpy() * cls_loss)


def configure(model: SegDecNet, seg_w: float, cls_w: float, adjustment: bool) -> SegDecNet:
    """Set every piece of step state explicitly (the module's model is shared between tests)."""
    model.seg_loss_weight.assign(seg_w)
    model.cls_loss_weight.assign(cls_w)
    model.set_gradient_adjustment(adjustment)
    return model


def trainable(model: SegDecNet) -> list[np.ndarray]:
    return [v.numpy() for v in model.trainable_variables]


def restore(model: SegDecNet, values: list[np.ndarray]) -> None:
    """Assign trainable variables only (set_weights would also reset m and the loss weights)."""
    for variable, value in zip(model.trainable_variables, values):
        variable.assign(value)


def one_step(model: SegDecNet, start: list[np.ndarray], batch: tuple) -> list[np.ndarray]:
    """Change of the trainable variables in one train step from ``start``."""
    restore(model, start)
    model.train_on_batch(*batch)
    return [w - w0 for w, w0 in zip(trainable(model), start)]


@pytest.fixture(scope="module")
def model() -> SegDecNet:
    return make_model()


@pytest.fixture
def restore_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_schedule_functions():
    assert [lambda_at(e, 4) for e in range(4)] == [1.0, 0.75, 0.5, 0.25]
    assert loss_weights(1, 4, 0.1) == (0.75, pytest.approx(0.025))
    assert loss_weights(3, 4, 0.1, dynamic_balance=False) == (1.0, 0.1)
    for epochs, delta in ((60, 1.0), (50, 1.0), (90, 0.01), (40, 0.1)):  # bit for bit as published
        for e in range(epochs):
            assert loss_weights(e, epochs, delta) == (1 - e / float(epochs), delta * (e / float(epochs)))
    with pytest.raises(ValueError, match="epoch=4; expected 0 <= epoch < epochs=4"):
        lambda_at(4, 4)
    with pytest.raises(ValueError, match="delta=-1"):
        loss_weights(0, 4, -1.0)


def test_lambda_logged_per_epoch_from_inside_the_compiled_step():
    model = make_model()
    batch = make_batch()

    class Sampler:
        current_epoch = -1

    sampler, seen, traces = Sampler(), [], []
    step = model.train_step
    model.train_step = lambda data: traces.append(1) or step(data)
    record = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: seen.append(sampler.current_epoch))
    callbacks = [LossBalance(3, delta=0.5), GradientAdjustment(False), SamplerEpoch(sampler), record]
    history = model.fit(tf.data.Dataset.from_tensors(batch), epochs=3, verbose=0, shuffle=False,
                        callbacks=callbacks).history
    np.testing.assert_allclose(history["lambda"], [1.0, 2 / 3, 1 / 3], rtol=1e-6)
    lam, seg, cls = (np.array(history[k]) for k in ("lambda", "seg_loss", "cls_loss"))
    np.testing.assert_allclose(history["loss"], lam * seg + 0.5 * (1 - lam) * cls, rtol=1e-5)
    assert len(traces) == 1 and seen == [0, 1, 2]
    assert float(model.gradient_multiplier.numpy()) == 1.0
    assert float(model.cls_loss_weight.numpy()) == pytest.approx(0.5 * (1 - 1 / 3))


def test_evaluate_computes_the_same_losses_without_updating(model):
    batch = make_batch(seed=1)
    before = trainable(model)
    logs = model.evaluate(tf.data.Dataset.from_tensors(batch), verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(eager_loss(model, batch), rel=1e-5)
    assert all(np.array_equal(a, b) for a, b in zip(before, trainable(model)))


def test_gradient_adjustment_step_equals_step_without_decision_loss(model):
    batch, start = make_batch(seed=2), trainable(model)
    n_seg = len(model.segmentation_net.trainable_variables)
    adjusted = one_step(configure(model, 1.0, 1.0, True), start, batch)
    seg_only = one_step(configure(model, 1.0, 0.0, True), start, batch)
    full = one_step(configure(model, 1.0, 1.0, False), start, batch)
    restore(model, start)
    for a, s in zip(adjusted[:n_seg], seg_only[:n_seg]):
        np.testing.assert_allclose(a, s, rtol=0, atol=1e-7)
    assert max(np.abs(d).max() for d in seg_only[:n_seg]) > 1e-4
    # The decision head did learn from L_cls (at 64×64 the last decision block sees a 1×1 map, so the
    # decision convolutions get no gradient: their output is the constant FeatureNorm bias).
    assert not np.allclose(adjusted[-2], seg_only[-2], rtol=0, atol=1e-6)
    assert any(not np.allclose(f, s, atol=1e-6) for f, s in zip(full[:n_seg], seg_only[:n_seg]))


def test_batch_update_is_the_sum_of_single_sample_updates(model):
    batch, start = make_batch(seed=3), trainable(model)
    configure(model, 0.5, 0.5, False)
    both = one_step(model, start, batch)
    first = one_step(model, start, take(batch, [0]))
    second = one_step(model, start, take(batch, [1]))
    restore(model, start)
    heads = [i for i, v in enumerate(model.trainable_variables) if "_head/" in v.path]
    # The heads' updates depend on forward values only (tight); upstream of the last ReLU a ~1e-6
    # difference between batch-1 and batch-2 convolutions may flip a near-zero ReLU input (~0.5%).
    for index, tolerance in ((heads, 1e-4), (range(len(start)), 2e-2)):
        total = np.concatenate([both[i].ravel() for i in index])
        summed = np.concatenate([(first[i] + second[i]).ravel() for i in index])
        norm = np.linalg.norm(total)
        assert norm > 0
        assert np.linalg.norm(total - summed) < tolerance * norm
        assert np.linalg.norm(total - summed / 2) > 0.2 * norm  # not the batch mean


def test_mixed_float16_step_matches_float32_step(model, restore_policy):
    batch, start = make_batch(seed=4), trainable(model)
    reference = np.concatenate([d.ravel() for d in one_step(configure(model, 0.7, 0.3, False), start, batch)])
    restore(model, start)
    keras.mixed_precision.set_global_policy("mixed_float16")
    half = tiny_segdec()
    half.compile(optimizer=keras.optimizers.SGD(0.01))
    half.build_for_training((SIZE, SIZE, 1))
    assert isinstance(half.optimizer, keras.optimizers.LossScaleOptimizer)
    configure(half, 0.7, 0.3, False)
    delta = np.concatenate([d.ravel() for d in one_step(half, start, batch)])
    # float16 forward/backward costs ~3% (measured; ~8% on the published network) relative error;
    # without optimizer.scale_loss the update would shrink 32768× (error ≈ 100%), and a step skipped
    # for overflow would not move at all.
    assert np.linalg.norm(delta - reference) < 0.2 * np.linalg.norm(reference)


def test_mixed_bfloat16_training_lowers_the_loss(restore_policy):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = make_model(lr=0.1)  # float32 measured: 4 steps take the loss to 0.73 of its start
    configure(model, 1.0, 1.0, True)
    batch = make_batch(seed=5)
    before = eager_loss(model, batch)
    model.fit(tf.data.Dataset.from_tensors(batch).repeat(4), epochs=1, verbose=0, shuffle=False)
    assert model.segmentation_net.stages[0].conv.compute_dtype == "bfloat16"
    assert eager_loss(model, batch) < 0.8 * before


def test_xla_training_lowers_the_loss():
    # One sample and two steps, checked against the eager loss (XLA's CPU convolution is ~20× slower
    # than oneDNN's on the published 15×15×64×1024 block: seconds per step; here the network is tiny).
    model = make_model(lr=0.1, jit=True)  # without XLA measured: two steps take the loss to 0.69
    configure(model, 1.0, 1.0, True)
    batch = take(make_batch(seed=6), [0])
    before = eager_loss(model, batch)
    first = model.train_on_batch(*batch, return_dict=True)["loss"]
    second = model.train_on_batch(*batch, return_dict=True)["loss"]
    assert first == pytest.approx(before, rel=1e-4)  # the XLA step computes the same loss
    assert before > second > eager_loss(model, batch)
    assert eager_loss(model, batch) < 0.8 * before
