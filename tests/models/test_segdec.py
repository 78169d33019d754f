"""SegDecNet: size, shapes, input checks, gradient-flow adjustment, saving, mixed precision."""

from __future__ import annotations

import dataclasses
import importlib.util

import keras
import numpy as np
import pytest
import tensorflow as tf
from fakes import TINY_MODEL, tiny_segdec

import kerasdec.models.layers as layers_module
import kerasdec.models.segdec as segdec_module
from kerasdec.config import ModelConfig
from kerasdec.models.segdec import SegDecNet


def images(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape).astype("float32")


def n_params(model: keras.Model) -> int:
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


@pytest.fixture(scope="module")
def published() -> SegDecNet:
    """The published network: the tests that pin its size and layout use it."""
    keras.utils.set_random_seed(0)
    net = SegDecNet(input_channels=1)
    net(images((1, 64, 64, 1)))
    return net


@pytest.fixture(scope="module")
def model() -> SegDecNet:
    """The tiny network: shapes, input checks, gradient flow, saving and precision do not depend on the
    network's size."""
    keras.utils.set_random_seed(0)
    net = tiny_segdec(input_channels=1)
    net(images((1, 64, 64, 1)))
    return net


@pytest.fixture
def restore_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_parameter_count_one_channel(published):
    assert n_params(published) == 15_637_213


def test_parameter_count_three_channels():
    net = SegDecNet(input_channels=3)  # the published network: its size is what this pins
    net(images((1, 64, 64, 3)))
    assert n_params(net) == 15_638_813


def test_trainable_variables_follow_the_architecture(published):
    model = published
    blocks = [f"segmentation/block{i}" for i in range(1, 10)] + ["segmentation/seg_head"]
    blocks += [f"decision/block{i}" for i in range(1, 4)]
    expected = [f"{b}/{v}" for b in blocks for v in ("conv/kernel", "norm/scale", "norm/bias")]
    expected += ["decision/decision_head/kernel", "decision/decision_head/bias"]
    assert [v.path.split("/", 1)[1] for v in model.trainable_variables] == expected
    shapes = [tuple(v.shape) for v in model.trainable_variables if v.path.endswith("conv/kernel")]
    assert shapes == [(5, 5, 1, 32), (5, 5, 32, 64), (5, 5, 64, 64), (5, 5, 64, 64), (5, 5, 64, 64),
                      (5, 5, 64, 64), (5, 5, 64, 64), (5, 5, 64, 64), (15, 15, 64, 1024), (1, 1, 1024, 1),
                      (5, 5, 1025, 8), (5, 5, 8, 16), (5, 5, 16, 32)]


@pytest.mark.parametrize("sizes, fan_in", [({}, 66), (dataclasses.asdict(TINY_MODEL), 18)])
def test_dense_head_initialised_uniform_within_inverse_sqrt_fan_in(sizes, fan_in):
    keras.utils.set_random_seed(1)
    net = SegDecNet(**sizes)  # published: 66 = max and mean of 32 features + 2 seg values
    net(images((1, 64, 64, 1)))
    dense = net.decision_net.dense
    limit = 1.0 / np.sqrt(fan_in)
    assert dense.kernel.shape == (fan_in, 1)
    for w in (dense.kernel.numpy(), dense.bias.numpy()):
        assert np.all(np.abs(w) <= limit) and np.all(w != 0.0)
    assert np.abs(dense.kernel.numpy()).max() > 0.7 * limit  # spread over the range, not a narrow normal


def test_the_network_size_is_a_constructor_argument_that_travels_in_the_keras_file(tmp_path):
    sizes = dataclasses.asdict(TINY_MODEL)  # seg (8, 8, 8, 16) × (1, 1, 1, 1) blocks, decision (4, 4, 8)
    keras.utils.set_random_seed(2)
    net = SegDecNet(input_channels=3, **sizes)
    out = net(images((2, 64, 96, 3)))
    assert out["decision"].shape == (2, 1) and out["seg"].shape == (2, 8, 12, 1)
    shapes = [tuple(v.shape) for v in net.trainable_variables if v.path.endswith("conv/kernel")]
    assert shapes == [(3, 3, 3, 8), (3, 3, 8, 8), (3, 3, 8, 8), (9, 9, 8, 16), (1, 1, 16, 1),
                      (3, 3, 17, 4), (3, 3, 4, 4), (3, 3, 4, 8)]
    assert n_params(net) == 12_929 and net.sizes() == {k: list(v) for k, v in sizes.items()}
    net.save(tmp_path / "tiny.keras")
    loaded = keras.saving.load_model(tmp_path / "tiny.keras")
    assert loaded.get_config() == net.get_config() and n_params(loaded) == n_params(net)
    x = images((2, 64, 96, 3), seed=1)
    np.testing.assert_allclose(loaded(x)["decision"].numpy(), net(x)["decision"].numpy(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("kwargs, message", [
    ({"seg_filters": (8, 8, 16)}, r"seg_filters=\(8, 8, 16\); expected 4 positive integers"),
    ({"seg_blocks": (1, 0, 1, 1)}, r"seg_blocks=\(1, 0, 1, 1\); expected 4 positive integers"),
    ({"seg_kernels": (3, 3, 3, 8)}, r"seg_kernels=\(3, 3, 3, 8\); expected 4 positive odd integers"),
    ({"decision_filters": (8, 16, 32, 64)}, r"decision_filters=\(8, 16, 32, 64\); expected 3 positive"),
    ({"decision_kernels": 5}, r"decision_kernels=5; expected 3 positive odd integers"),
])
def test_bad_network_sizes_are_refused_naming_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SegDecNet(**kwargs)
    with pytest.raises(ValueError, match=message):
        ModelConfig(**kwargs)


def test_output_shapes_and_dtypes(model):
    out = model(images((2, 128, 192, 1), seed=1))
    assert set(out) == {"decision", "seg"}
    assert out["decision"].shape == (2, 1) and out["seg"].shape == (2, 16, 24, 1)
    assert out["decision"].dtype == tf.float32 and out["seg"].dtype == tf.float32


def test_smallest_input_gives_finite_outputs(model):
    out = model(images((1, 64, 64, 1), seed=2))
    assert out["seg"].shape == (1, 8, 8, 1)
    assert all(np.all(np.isfinite(v.numpy())) for v in out.values())


@pytest.mark.parametrize("shape, message", [
    ((2, 64, 60, 1), r"shape \(2, 64, 60, 1\); H and W must be divisible by 8"),
    ((1, 76, 64, 1), r"shape \(1, 76, 64, 1\); H and W must be divisible by 8"),
    ((2, 64, 64, 3), r"shape \(2, 64, 64, 3\) with 3 channels; expected C = 1"),
    ((64, 64, 1), r"shape \(64, 64, 1\) \(3-D\); expected a 4-D batch"),
    ((1, 32, 64, 1), r"shape \(1, 32, 64, 1\); H and W must be at least 64"),
])
def test_wrong_inputs_raise_value_error(model, shape, message):
    with pytest.raises(ValueError, match=message):
        model(np.zeros(shape, "float32"))


def test_gradient_adjustment_on_off_without_retrace(model):
    seg_vars = model.segmentation_net.trainable_variables
    dec_vars = model.decision_net.trainable_variables
    traces = []

    @tf.function
    def decision_loss_gradients(x):
        traces.append(1)
        with tf.GradientTape() as tape:
            logit = model(x)["decision"]
            loss = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(logit), logit))
        return tape.gradient(loss, seg_vars + dec_vars, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    x = images((1, 64, 128, 1), seed=3)  # the last decision block sees a 1×2 map
    try:
        model.set_gradient_adjustment(True)
        grads_on = [g.numpy() for g in decision_loss_gradients(x)]
        model.set_gradient_adjustment(False)
        grads_off = [g.numpy() for g in decision_loss_gradients(x)]
    finally:
        model.set_gradient_adjustment(True)
    n_seg = len(seg_vars)
    assert all(np.all(g == 0.0) for g in grads_on[:n_seg])
    assert all(np.any(g != 0.0) for g in grads_on[n_seg:])
    assert all(np.any(g != 0.0) for g in grads_off)
    assert len(traces) == 1


def test_keras_round_trip_keeps_outputs_and_state(model, tmp_path):
    model.gradient_multiplier.assign(0.5)  # a value no constructor argument gives
    model.seg_loss_weight.assign(0.25)
    model.cls_loss_weight.assign(0.75)
    try:
        model.save(tmp_path / "m.keras")
        loaded = keras.saving.load_model(tmp_path / "m.keras")
    finally:
        model.set_gradient_adjustment(True)
    assert type(loaded) is SegDecNet and loaded.get_config() == model.get_config()
    assert float(loaded.gradient_multiplier.numpy()) == 0.5
    assert (float(loaded.seg_loss_weight.numpy()), float(loaded.cls_loss_weight.numpy())) == (0.25, 0.75)
    x = images((2, 64, 128, 1), seed=4)
    expected, got = model(x), loaded(x)
    for key in ("decision", "seg"):
        np.testing.assert_allclose(got[key].numpy(), expected[key].numpy(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("policy, low, tolerance", [("mixed_float16", "float16", 0.02),
                                                      ("mixed_bfloat16", "bfloat16", 0.1)])
def test_mixed_precision_outputs_float32(model, restore_policy, policy, low, tolerance):
    x = images((1, 64, 64, 1), seed=5)
    reference = model(x)
    keras.mixed_precision.set_global_policy(policy)
    net = tiny_segdec()
    net(x)
    net.set_weights(model.get_weights())
    out = net(x)
    block = net.segmentation_net.stages[0]
    assert block.conv.compute_dtype == low and block.norm.compute_dtype == "float32"
    for key in ("decision", "seg"):
        assert out[key].dtype == tf.float32
        np.testing.assert_allclose(out[key].numpy(), reference[key].numpy(), atol=tolerance, rtol=tolerance)


@pytest.mark.parametrize("path", [layers_module.__file__, segdec_module.__file__])
def test_import_under_another_backend_says_how_to_fix(monkeypatch, path):
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    spec = importlib.util.spec_from_file_location("kerasdec_backend_probe", path)
    with pytest.raises(ImportError, match="KERAS_BACKEND is 'jax'; set KERAS_BACKEND=tensorflow"):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


def test_input_size_and_threshold_travel_in_the_keras_file(tmp_path):
    net = tiny_segdec(input_channels=1, input_height=64, input_width=96, threshold=0.25)
    net(images((1, 64, 96, 1)))
    net.set_threshold(0.375)  # what kerasdec fit does after its test evaluation
    net.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert (loaded.input_height, loaded.input_width, loaded.threshold) == (64, 96, 0.375)
    compiled = tiny_segdec(input_channels=1)
    compiled.compile(optimizer=keras.optimizers.SGD(0.01))
    compiled.build_for_training((128, 64, 1))  # the trainer's build records the training size
    assert (compiled.input_height, compiled.input_width, compiled.threshold) == (128, 64, None)


def test_a_file_saved_before_the_size_was_recorded_takes_its_build_shape(published, tmp_path):
    """Published: a file without the network's size is read as the published network."""
    import json
    import zipfile

    published.save(tmp_path / "new.keras")
    with zipfile.ZipFile(tmp_path / "new.keras") as src, zipfile.ZipFile(tmp_path / "old.keras", "w") as dst:
        for item in src.namelist():
            data = src.read(item)
            if item == "config.json":  # as kerasdec wrote it before: no input size, threshold, sizes
                config = json.loads(data)
                for key in ("input_height", "input_width", "threshold", *dataclasses.asdict(ModelConfig())):
                    del config["config"][key]
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    old = keras.saving.load_model(tmp_path / "old.keras")
    assert (old.input_height, old.input_width, old.threshold) == (64, 64, None)  # built at 64x64
    assert n_params(old) == 15_637_213  # no sizes stored: the published network
    new = keras.saving.load_model(tmp_path / "new.keras")
    assert (new.input_height, new.input_width) == (None, None)  # recorded as unknown: stays unknown


@pytest.mark.parametrize("kwargs, message", [
    ({"input_height": 64}, r"input_height=64, input_width=None; expected both"),
    ({"input_height": 60, "input_width": 64}, r"height=60 \(SegDecNet input size\); expected a multiple"),
    ({"threshold": 1.5}, r"threshold=1.5; expected a score threshold in \[0, 1\]"),
])
def test_bad_deployment_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SegDecNet(input_channels=1, **kwargs)


def test_float64_policy_runs_every_part_and_the_loss_in_float64(restore_policy):
    # The step-by-step comparison with the float64 PyTorch loop (benchmarks/fidelity) needs every
    # trainable variable, output and loss in float64: FeatureNorm, the seg head, the dense head and
    # the loss weights default to float32 under other policies. A central difference with h = 1e-6
    # matches the analytic gradient to ~1e-9 only if nothing in between rounds to float32 (~1e-2).
    from kerasdec.models.step import summed_losses

    keras.mixed_precision.set_global_policy("float64")
    keras.utils.set_random_seed(3)
    net = SegDecNet()
    x = tf.constant(images((2, 64, 128, 1), seed=4))
    net(x)
    net.set_gradient_adjustment(False)  # m = 1: the analytic gradient is the true derivative
    assert {v.dtype for v in net.trainable_variables} == {"float64"}
    assert net.seg_loss_weight.dtype == net.cls_loss_weight.dtype == "float64"
    y = {"seg": tf.constant(images((2, 8, 16, 1), seed=5)), "decision": tf.constant([[0.3], [0.0]])}
    variables = [net.segmentation_net.head.norm.bias, net.decision_net.dense.bias]

    def loss() -> tf.Tensor:
        seg_loss, cls_loss = summed_losses(net(x), y)
        return seg_loss + 0.7 * cls_loss

    with tf.GradientTape() as tape:
        value = loss()
    assert value.dtype == tf.float64
    analytic = tape.gradient(value, variables)
    h = 1e-6
    for var, grad in zip(variables, analytic):
        start = var.numpy()
        var.assign(start + h)
        up = float(loss())
        var.assign(start - h)
        down = float(loss())
        var.assign(start)
        numeric = (up - down) / (2 * h)
        assert abs(float(tf.reduce_sum(grad)) - numeric) <= 1e-8 * max(1.0, abs(numeric)), var.path
