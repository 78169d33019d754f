"""Without ai-edge-litert, every command that needs it refuses in one line before any work (issue 19).

The package is hidden with a ``None`` entry in ``sys.modules``: ``importlib.util.find_spec`` then finds
nothing and ``import ai_edge_litert`` fails, as in an install without the ``litert`` extra. Loading a
model, converting and benchmarking are replaced by functions that fail the test if called.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from kerasdec.cli import main
from kerasdec.deploy import runtimes

FIX = 'install it with: pip install "kerasdec[litert]" (or pip install ai-edge-litert)'


def _never(*args, **kwargs):
    pytest.fail("the command started working although LiteRT is missing")


@pytest.fixture
def no_litert(monkeypatch):
    from kerasdec.bench import suite
    from kerasdec.deploy import predict, tflite
    from kerasdec.inference import runners

    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    for module, name in ((runners, "load"), (predict, "predict"), (tflite, "write_fixed_saved_model"),
                         (tflite, "convert"), (suite, "run_suite")):
        monkeypatch.setattr(module, name, _never)


def _refusal(result) -> str:
    """The one line of a usage error (exit code 2) without a traceback."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_the_check_sees_the_installed_package_and_a_hidden_one(monkeypatch):
    assert runtimes.litert_installed() and runtimes.missing_litert("--tflite int8") is None  # the test extra
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    assert not runtimes.litert_installed()
    with pytest.raises(runtimes.MissingRuntimeError, match=r"^--tflite int8 needs LiteRT \(ai_edge_litert\)"):
        runtimes.require_litert("--tflite int8")


def test_export_with_tflite_refuses_before_loading_or_converting(no_litert, tiny_run, tmp_path):
    before = _tree(tiny_run.run_dir)
    base = tmp_path / "segdec"
    args = ["export", tiny_run.run_dir, "--out", base, "--tflite", "int8", "--tflite", "float16"]
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert _refusal(result) == f"Error: --tflite int8/float16 needs LiteRT (ai_edge_litert), which is not " \
                               f"installed; {FIX}"
    assert not base.exists()  # no base folder, no version, no hidden staging folder
    assert _tree(tiny_run.run_dir) == before


def test_export_source_refuses_first_too(no_litert, tiny_run, tmp_path):
    from kerasdec.deploy.export import export_source

    fix = r'pip install "kerasdec\[litert\]"'
    with pytest.raises(runtimes.MissingRuntimeError, match=rf"^--tflite float32 needs LiteRT .* {fix}"):
        export_source(tiny_run.run_dir, tmp_path / "segdec", tflite_modes=["float32"], threshold=0.5)
    assert not (tmp_path / "segdec").exists()


def test_export_without_tflite_does_not_need_litert(no_litert, tiny_run, tmp_path, monkeypatch):
    """The check is only for --tflite: a SavedModel-only export goes on (here into export_source)."""
    from kerasdec.deploy import export

    reached = []
    monkeypatch.setattr(export, "export_source", lambda *a, **k: reached.append(k["tflite_modes"]) or {})
    result = CliRunner().invoke(main, ["export", str(tiny_run.run_dir), "--out", str(tmp_path / "segdec")])
    assert result.exit_code == 0, result.output
    assert reached == [()]


def test_predict_on_a_tflite_file_refuses_before_loading(no_litert, tmp_path):
    model = tmp_path / "segdec_int8.tflite"
    model.write_bytes(b"not read")
    (tmp_path / "x.png").write_bytes(b"not read either")
    out = tmp_path / "predictions"
    result = CliRunner().invoke(main, ["predict", str(model), str(tmp_path / "x.png"), "--out", str(out)])
    assert _refusal(result) == f"Error: MODEL {model} (a .tflite file) needs LiteRT (ai_edge_litert), " \
                               f"which is not installed; {FIX}"
    assert not out.exists()


def test_bench_export_refuses_before_benchmarking(no_litert):
    result = CliRunner().invoke(main, ["bench", "--quick", "--export"])
    assert _refusal(result) == f"Error: --export needs LiteRT (ai_edge_litert), which is not installed; {FIX}"
