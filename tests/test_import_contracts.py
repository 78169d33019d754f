"""The layering contracts of setup.cfg ([importlinter]): floors, no circle, nothing imports the CLI,
the library never imports experiments/ (what `lint-imports` checks in .ci/run)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    """`lint-imports` (import-linter, in the test extra) on the packages under ``cwd``."""
    bin_dir = Path(sys.executable).parent
    return subprocess.run([str(bin_dir / "lint-imports"), "--no-cache"], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env={"PATH": str(bin_dir), "PYTHONPATH": str(cwd)})


def test_the_package_keeps_every_import_contract():
    done = _lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 kept, 0 broken" in done.stdout


def test_an_upward_import_breaks_the_floors(tmp_path):
    # The same contracts on a copy in which evaluation imports deploy (as it did before the inference layer).
    for package in ("kerasdec", "experiments"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "setup.cfg", tmp_path / "setup.cfg")
    metrics = tmp_path / "kerasdec" / "evaluation" / "metrics.py"
    metrics.write_text(metrics.read_text() + "\nfrom kerasdec.deploy import check  # noqa: E402,F401\n")
    done = _lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout
    assert "kerasdec floors: imports point downward BROKEN" in done.stdout
    assert "kerasdec.evaluation.metrics -> kerasdec.deploy.check" in done.stdout
