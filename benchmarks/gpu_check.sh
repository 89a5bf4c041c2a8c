#!/usr/bin/env bash
# CUDA tests and GPU benchmarks in one go; tables and logs go to the folder given as $1.
# Usage: bash benchmarks/gpu_check.sh OUTDIR   (runs on CPU too, where the CUDA cases skip)
# Sized to finish in a few minutes on an H100/H200; the CPU fallback uses small sizes.
set -uo pipefail
out=${1:?usage: gpu_check.sh OUTDIR}
mkdir -p "$out"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=1
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" | tee "$out/device.txt"
if python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    device=cuda; fast=--fast; sizes="1000 100000 1000000"; lanes="1 16 256 1024"; coba="4000 40000 400000"; sweep="1 16 256 1024"; memory="400000 2000"
else  # the CPU run checks the plumbing only: small sizes, no compilation
    device=cpu; fast=; sizes="1000 10000"; lanes="1 16"; coba="4000"; sweep="1 4"; memory="40000 200"
fi
# the CUDA variants of the tests (the device fixture adds them), without the slow compile cases
python -m pytest -q -m "not slow" -k "cuda or device or gpu" tests 2>&1 | tail -n 30 | tee "$out/tests.txt"
python benchmarks/bench_neurons.py --device "$device" --sizes $sizes --lanes $lanes $([ -z "$fast" ] && echo --no-fast) --out "$out/bench_neurons.md" 2>&1 | tail -n 30
python benchmarks/bench_coba.py --device "$device" --neurons $coba --fan-in 80 --duration 1000 $fast --out "$out/bench_coba.md" 2>&1 | tail -n 30
python benchmarks/bench_sweep.py --device "$device" --lanes $sweep --duration 100 $fast --out "$out/bench_sweep.md" 2>&1 | tail -n 12
set -- $memory
python benchmarks/bench_memory.py --device "$device" --neurons "$1" --duration "$2" 2>&1 | tail -n 3 | tee "$out/bench_memory.md"
