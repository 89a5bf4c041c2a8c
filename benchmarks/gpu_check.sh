#!/usr/bin/env bash
# CUDA tests and GPU benchmarks in one go; tables and logs go to the folder given as $1.
# Usage: bash benchmarks/gpu_check.sh OUTDIR   (runs on CPU too, where the CUDA cases skip)
set -uo pipefail
out=${1:?usage: gpu_check.sh OUTDIR}
mkdir -p "$out"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=1
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" | tee "$out/device.txt"
device=cpu
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" && device=cuda
# CUDA variants of the tests (the device fixture adds them), without the slow compile cases
python -m pytest -q -m "not slow" -k "cuda or device" tests 2>&1 | tail -n 30 | tee "$out/tests.txt"
python benchmarks/bench_neurons.py --device "$device" --sizes 1000 100000 1000000 --lanes 1 16 256 1024 \
    --out "$out/bench_neurons.md" 2>&1 | tail -n 40 | tee "$out/bench_log.txt"
python benchmarks/bench_coba.py --device "$device" --fast --out "$out/bench_coba.md" 2>&1 | tail -n 20 | tee "$out/bench_coba_log.txt"
