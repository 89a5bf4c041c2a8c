#!/usr/bin/env bash
# CUDA tests and GPU benchmarks in one go; tables and logs go to the folder given as $1.
# Usage: bash benchmarks/gpu_check.sh OUTDIR   (runs on the CPU too, where the CUDA cases skip)
# Each step has its own time limit, so one slow step cannot starve the others; the whole script
# should stay under 8 minutes on an H100/H200 (the limits are worst cases) and ends with targets.md: issue 11's targets beside the
# figures measured (benchmarks/targets.py), with the plain torch loop and the CPU fast path. The CPU fallback uses small sizes and checks the plumbing.
# Sizes can be narrowed for a short lease: COBA="4000" BIG="" SWEEP="1 64" MICROCIRCUIT_SCALE=0.1
# (an empty BIG, SWEEP or MICROCIRCUIT_SCALE skips that step). The limits add up to 12.5 minutes: under
# a 10-minute command limit, give the microcircuit a call of its own (MICROCIRCUIT_SCALE="" in the
# first, BIG="" SWEEP="" COBA=4000 in the second) if the first runs long.
# On a machine whose Python lacks Sapicore's pure-Python dependencies, install them first, e.g.
#   pip install --no-deps --target /tmp/site nixio tree-config tensorboardX ruamel.yaml; export PYTHONPATH=/tmp/site:$PWD
set -uo pipefail
out=${1:?usage: gpu_check.sh OUTDIR}
mkdir -p "$out"
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
$py -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" | tee "$out/device.txt"
if $py -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    export TORCHINDUCTOR_COMPILE_THREADS=${TORCHINDUCTOR_COMPILE_THREADS:-8}
    device=cuda; fast=--fast; coba=${COBA-4000}; big=${BIG-400000}; sweep=${SWEEP-1 64 256}; limit=110; selection="cuda or gpu"
else  # the CPU run checks the plumbing only: small sizes, no compilation
    export TORCHINDUCTOR_COMPILE_THREADS=1
    device=cpu; fast=; coba=${COBA-4000}; big=${BIG-8000}; sweep=${SWEEP-1 4}; limit=300; selection="cuda or device or gpu"
fi
step() {  # step NAME LIMIT_S COMMAND...: run with a time limit, log to $out/NAME.log
    local name=$1 seconds=$2; shift 2
    echo "== $name (limit ${seconds} s)"
    local start=$SECONDS
    timeout --signal=INT --kill-after=10 "$seconds" "$@" > "$out/$name.log" 2>&1
    echo "   exit $? after $((SECONDS - start)) s"
}
# the CUDA variants of the tests (the device fixture adds them), without the slow compile cases;
# on the CPU, the device tests check the plumbing
step tests "$limit" $py -m pytest -q -m "not slow" -k "$selection" tests
step coba "$limit" $py benchmarks/bench_coba.py --device "$device" --neurons $coba --fan-in 80 --duration 1000 $fast --out "$out/coba.md"
[ -n "$big" ] && step coba_big "$limit" $py benchmarks/bench_coba.py --device "$device" --neurons $big --fan-in 80 --duration 200 $fast --no-reference --out "$out/coba_big.md"
[ "$device" = cuda ] && step coba_cpu 70 $py benchmarks/bench_coba.py --device cpu --neurons 4000 --fan-in 80 --duration 200 --fast --no-reference --out "$out/coba_cpu.md"
[ -n "$sweep" ] && step sweep "$limit" $py benchmarks/bench_sweep.py --device "$device" --lanes $sweep --duration 100 $fast --out "$out/sweep.md"
if [ "$device" = cuda ]; then  # full scale: about a minute of building on the CPU, then compiling
    [ -n "${MICROCIRCUIT_SCALE-1}" ] && step microcircuit 240 $py benchmarks/bench_microcircuit.py --device cuda --scale ${MICROCIRCUIT_SCALE-1} --duration 1000 --discard 500 --no-reference --out "$out/microcircuit.md"
else
    step microcircuit "$limit" $py benchmarks/bench_microcircuit.py --scale 0.02 --duration 300 --discard 100 --no-fast --out "$out/microcircuit.md"
fi
tail -n 3 "$out/tests.log"
for table in coba coba_big coba_cpu sweep microcircuit; do
    if [ -f "$out/$table.md" ]; then cat "$out/$table.md"; elif [ -f "$out/$table.log" ]; then tail -n 15 "$out/$table.log"; fi
done
$py benchmarks/targets.py "$out"
