#!/usr/bin/env bash
# Reproduce the GPU numbers of docs/benchmarks.md on a CUDA machine whose python3 has torch (and diffusers,
# torchattacks, scikit-image importable). Usage: bash benchmarks/run_gpu.sh [results-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-benchmarks/results}"
mkdir -p "$DIR"
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
python3 -m pytest -q -p no:cacheprovider tests/test_accel.py
python3 -m benchmarks.speed --models "${MODELS:-resunet,discnet}" --size 256 --images 64 --batch 32 \
  --ddpm-steps 5,10 --ddim-steps 2,5 --purifier-steps "${PURIFIER_STEPS:-1000}" --time-budget-s "${BUDGET_S:-300}" --out "$DIR/speed_cuda.json"
python3 -m benchmarks.dynamic_filter --device cuda --preset paper --size 256 --batch 32 \
  --shapes 32x32x256x256,32x64x128x128,32x128x64x64 --out "$DIR/dynamic_filter_cuda.json"
