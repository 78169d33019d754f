from click.testing import CliRunner

from kerasdec.cli import build_fit_config, main


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
    result = runner.invoke(main, ["fit", "--dataset", "dagm", "--data-root", ".", "--category", "1", "--fold", "1"])
    assert result.exit_code == 2 and "fold=1 (--fold) is only used by dataset='ksdd'" in result.output


def test_resume_names_the_real_flags_it_refuses(tmp_path):
    result = CliRunner().invoke(main, ["fit", "--resume", str(tmp_path), "--data-root", str(tmp_path),
                                       "--no-dynamic-balance", "--jit", "--epochs", "3"])
    assert result.exit_code == 2
    assert "drop ['--epochs', '--no-dynamic-balance', '--jit/--no-jit']" in " ".join(result.output.split())
