import dataclasses

import pytest
from click.testing import CliRunner
from fakes import TINY_MODEL

from kerasdec.cli import build_fit_config, main
from kerasdec.config import ModelConfig


def _flags(**given):
    names = ("root", "width", "height", "channels", "segmented", "fold", "category", "split_file", "dilate",
             "w_pos", "p", "weighted_seg", "frequency_sampling", "epochs", "lr", "delta", "batch_size",
             "dynamic_balance", "gradient_adjustment", "precision", "jit", "validate_every", "distribute")
    return {**{n: None for n in names}, **given}


def test_flags_override_the_preset_and_nothing_else():
    cfg = build_fit_config("ksdd", 10, None, 3, "runs/a", **_flags(root="/d", lr=0.1, dynamic_balance=False))
    assert cfg.train.lr == 0.1 and cfg.train.dynamic_balance is False
    assert cfg.train.epochs == 90 and cfg.train.delta == 0.01  # still the preset's
    assert (cfg.data.root, cfg.data.positives, cfg.seed, cfg.run_dir) == ("/d", 10, 3, "runs/a")


def test_bad_flag_values_are_usage_errors():
    runner = CliRunner()
    result = runner.invoke(main, ["fit", "--dataset", "ksdd"])
    assert result.exit_code == 2 and "needs a data root (--data-root PATH)" in result.output
    result = runner.invoke(main, ["fit", "--width", "100"])
    assert result.exit_code == 2 and "width=100; expected a multiple of 8, at least 64" in result.output
    result = runner.invoke(main, ["fit", "--precision", "half"])
    assert result.exit_code == 2 and "--precision" in result.output


def test_resume_refuses_other_settings(tmp_path):
    result = CliRunner().invoke(main, ["fit", "--resume", str(tmp_path), "--lr", "0.3"])
    assert result.exit_code == 2 and "drop ['--lr']" in result.output


def test_flag_errors_name_the_flag():
    runner = CliRunner()
    result = runner.invoke(main, ["fit", "--positives", "0"])
    assert result.exit_code == 2 and "'--positives'" in result.output
    for flag in ("--lr", "--delta", "--w-pos", "--p"):
        for value in ("inf", "nan"):
            result = runner.invoke(main, ["fit", flag, value])
            assert result.exit_code == 2 and f"({flag})" in result.output, (flag, value, result.output)
    result = runner.invoke(main, ["fit", "--dataset", "dagm", "--data-root", ".", "--category", "1",
                                  "--fold", "1"])
    assert result.exit_code == 2 and "fold=1 (--fold) is only used by dataset='ksdd'" in result.output


def test_resume_names_the_real_flags_it_refuses(tmp_path):
    result = CliRunner().invoke(main, ["fit", "--resume", str(tmp_path), "--data-root", str(tmp_path),
                                       "--no-dynamic-balance", "--jit", "--epochs", "3"])
    assert result.exit_code == 2
    assert "drop ['--epochs', '--no-dynamic-balance', '--jit/--no-jit']" in " ".join(result.output.split())


def test_fault_messages_are_one_line_and_bugs_keep_their_traceback():
    import errno
    import zipfile

    import tensorflow as tf

    from kerasdec.cli import fault_message

    assert fault_message(OSError(errno.ENOSPC, "Could not write /r/model_final.keras: No space left on "
                                 "device (about 63 MB needed, 2 MB free there)")) == \
        "Could not write /r/model_final.keras: No space left on device (about 63 MB needed, 2 MB free there)"
    assert fault_message(PermissionError(errno.EACCES, "Permission denied", "/ro/runs")) == \
        "/ro/runs: Permission denied"
    assert fault_message(OSError(errno.EROFS, "Read-only file system", "/mnt/x")) == \
        "/mnt/x: Read-only file system"
    assert fault_message(OSError("Unable to open file (truncated file: eof = 96)\n")) == \
        "Unable to open file (truncated file: eof = 96)"
    assert fault_message(zipfile.BadZipFile("File is not a zip file")) == "File is not a zip file"
    assert fault_message(ValueError("a\nb")) == "a b"
    assert fault_message(FloatingPointError("Training loss became nan at epoch 2, batch 3\n")) == \
        "Training loss became nan at epoch 2, batch 3"
    data_error = ("{{function_node __wrapped__IteratorGetNext}} Error in user-defined function passed to "
                  "MapDataset:1 transformation with iterator: Iterator::Root::Prefetch::Map: ValueError: "
                  "/d/a.png is not a readable image (OpenCV could not decode its 12 bytes)\nTraceback "
                  "(most recent call last):\n\n  File \"script_ops.py\", line 269, in __call__\n")
    assert fault_message(tf.errors.InvalidArgumentError(None, None, data_error)) == \
        "/d/a.png is not a readable image (OpenCV could not decode its 12 bytes)"
    key_error = data_error.replace("ValueError", "KeyError")  # a bug inside tf.data stays a traceback
    assert fault_message(tf.errors.UnknownError(None, None, key_error)) is None
    assert fault_message(tf.errors.InvalidArgumentError(None, None, "Incompatible shapes")) is None
    for bug in (TypeError("x"), KeyError("x"), AttributeError("x"), ZeroDivisionError("x")):
        assert fault_message(bug) is None


def _fake_fit(error):
    def fit(*args, **kwargs):
        raise error
    return fit


def test_cli_turns_faults_into_one_line_and_exit_1(monkeypatch):
    import errno

    import kerasdec.training.fit as trainer

    runner = CliRunner()
    monkeypatch.setattr(trainer, "fit", _fake_fit(OSError(errno.ENOSPC, "Could not write /r/checkpoint/"
                                                          "epoch-0002: No space left on device")))
    result = runner.invoke(main, ["fit", "--epochs", "1"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.stderr == "Error: Could not write /r/checkpoint/epoch-0002: No space left on device\n"
    assert result.stdout == ""
    result = runner.invoke(main, ["-v", "fit", "--epochs", "1"])  # -v: the traceback of the fault
    assert result.exit_code == 1 and isinstance(result.exception, OSError)
    monkeypatch.setattr(trainer, "fit", _fake_fit(TypeError("a bug")))
    result = runner.invoke(main, ["fit", "--epochs", "1"])  # a bug keeps its traceback
    assert result.exit_code == 1 and isinstance(result.exception, TypeError)


def test_bench_refuses_an_unwritable_json_folder_before_benchmarking(tmp_path, monkeypatch):
    import os
    import shutil
    import subprocess

    import kerasdec.bench.suite

    def run_suite(*args, **kwargs):
        raise AssertionError("benchmarked before checking --json")

    monkeypatch.setattr(kerasdec.bench.suite, "run_suite", run_suite)
    locked = tmp_path / "locked"
    locked.mkdir()
    lock = ["chattr", "+i", str(locked)]
    if os.geteuid() != 0 or shutil.which("chattr") is None or subprocess.run(lock).returncode:
        pytest.skip("needs root and chattr")
    try:
        result = CliRunner().invoke(main, ["bench", "--width", "64", "--height", "64", "--json",
                                           str(locked / "b.json")])
    finally:
        subprocess.run(["chattr", "-i", str(locked)])
    assert result.exit_code == 1 and result.stderr == (
        f"Error: Cannot write into {locked}: Operation not permitted; expected a writable folder (choose "
        "another with --json)\n")


def test_optimizer_flag_reaches_the_compiled_model():
    import keras

    from kerasdec.training.model import build_model

    cfg = build_fit_config("synthetic", None, None, None, None, optimizer="adam", lr=0.002, width=64,
                           height=64)
    assert (cfg.train.optimizer, cfg.train.lr, cfg.model) == ("adam", 0.002, ModelConfig())  # published
    model = build_model(dataclasses.replace(cfg, model=TINY_MODEL))
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert abs(float(model.optimizer.learning_rate) - 0.002) < 1e-9
    assert model.sizes() == {k: list(v) for k, v in dataclasses.asdict(TINY_MODEL).items()}  # cfg.model
    cfg = build_fit_config("synthetic", None, None, None, None, width=64, height=64)
    assert isinstance(build_model(dataclasses.replace(cfg, model=TINY_MODEL)).optimizer, keras.optimizers.SGD)
    result = CliRunner().invoke(main, ["fit", "--optimizer", "lbfgs"])
    assert result.exit_code == 2 and "--optimizer" in result.output
