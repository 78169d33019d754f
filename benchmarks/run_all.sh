#!/usr/bin/env bash
# The full speed table of issue 12 in ONE command (run it on a quiet machine; ~1-2 h on 2 cores):
#   bash benchmarks/run_all.sh [OUT_DIR]
# Writes OUT_DIR (default benchmarks/results/<date-time>/): compare_torch.{md,json} (kerasdec vs the
# same network in PyTorch eager, interleaved, plus kerasdec with oneDNN's convolution everywhere),
# profile_*.md (where the time of one step goes), bench_small.{md,json} (128² and 256²: float32 and
# mixed_bfloat16, XLA off and on, input pipeline, SavedModel and TFLite) and bench_published.{md,json}
# (every dataset's published input size, XLA off) and fidelity/ (the step-by-step comparison with the
# published training loop, short version). Needs kerasdec's environment active; creates the PyTorch
# venv (benchmarks/setup_torch.sh) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-benchmarks/results/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
"${KERASDEC_TORCH_VENV:-$HOME/.cache/kerasdec-torch-venv}/bin/python" -c "import torch, cv2, scipy" 2>/dev/null \
    || bash benchmarks/setup_torch.sh
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/conditions.txt"
python benchmarks/compare_torch.py --size 128x128 --size 256x256 --batch 1 --batch 2 --rounds 7 --steps 3 \
    --also-native --json "$OUT/compare_torch.json" | tee "$OUT/compare_torch.md"
python benchmarks/profile_step.py --size 128x128 --batch 1 | tee "$OUT/profile_train_128.md"
python benchmarks/profile_step.py --size 128x128 --batch 1 --forward | tee "$OUT/profile_forward_128.md"
kerasdec bench --size 128x128 --size 256x256 --batch-size 1 --precision float32 --precision mixed_bfloat16 \
    --xla-both --export --json "$OUT/bench_small.json" --markdown "$OUT/bench_small.md"
kerasdec bench --published --batch-size 1 --precision float32 --precision mixed_bfloat16 --no-jit \
    --steps 2 --warmup 1 --export --json "$OUT/bench_published.json" --markdown "$OUT/bench_published.md"
# Whole-run fidelity, short version (2 epochs of 8 images, DAGM and KSDD2 layouts, batch 1 and 5, float64,
# ~15 min): kerasdec's fit step by step against the published loop in PyTorch (benchmarks/fidelity).
python benchmarks/fidelity/step_by_step.py --quick --out "$OUT/fidelity" | tee "$OUT/fidelity.txt" \
    || echo "fidelity: a difference over 1e-9 in the first two epochs, see $OUT/fidelity" | tee -a "$OUT/fidelity.txt"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/conditions.txt"
