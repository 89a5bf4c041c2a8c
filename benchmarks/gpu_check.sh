#!/usr/bin/env bash
# CUDA checks and GPU benchmarks in one command of at most 8 minutes; tables and logs go to OUTDIR.
# Usage: bash benchmarks/gpu_check.sh OUTDIR   (runs on the CPU too, where the CUDA cases skip)
#
# Self-contained for a GPU machine without network: make the wheel folder here first
# (bash benchmarks/gpu_wheels.sh, which writes .whl/, ignored by git) and carry .whl with the working
# tree; this script installs it offline into /tmp/sapicore-site, puts the checkout on PYTHONPATH and
# stops with one line if `import sapicore` still fails. Steps, each with its own time limit (the limits
# add up to 450 s (60 + 70 + 90 + 70 + 70 + 90), with cold caches: kernel builds and compiles are inside each step's limit, never
# inside a timed row, since the benchmarks warm every cache first):
#   imports, the device-sync guard (one eager step and one compiled chunk of COBA-4k under
#   torch.cuda.set_sync_debug_mode("error")), the CUDA tests, COBA 4,000 (500 ms on a GPU, whose eager
#   loops are slow; and BIG, default 400,000, for 200 ms), a sweep of SWEEP lanes (default 1 64 256) and the microcircuit at MICROCIRCUIT_SCALE
#   (default 0.25; 1 is full scale and needs a call of its own: MICROCIRCUIT_SCALE=1 COBA="" BIG="" SWEEP="").
# An empty COBA, BIG, SWEEP or MICROCIRCUIT_SCALE skips that step. It ends with targets.md: the GPU
# targets beside the figures measured (benchmarks/targets.py).
set -uo pipefail
out=${1:?usage: gpu_check.sh OUTDIR}
mkdir -p "$out"
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" > /dev/null; then
    $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/sapicore-site .whl/*.whl \
        > "$out/wheels.log" 2>&1 || { echo "gpu_check: the wheels in .whl did not install (see $out/wheels.log)"; exit 2; }
    export PYTHONPATH="/tmp/sapicore-site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
if ! missing=$($py -c "import sapicore.functional, sapicore.spec, sapicore.logging.nix, sapicore.plot" 2>&1); then
    echo "gpu_check: cannot import sapicore here: $(echo "$missing" | tail -n 1); make .whl with bash benchmarks/gpu_wheels.sh and carry it"
    exit 2
fi
$py -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" | tee "$out/device.txt"
if $py -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    export TORCHINDUCTOR_COMPILE_THREADS=${TORCHINDUCTOR_COMPILE_THREADS:-8}
    device=cuda; fast=--fast; coba_ms=500; coba=${COBA-4000}; big=${BIG-400000}; sweep=${SWEEP-1 64 256}; scale=${MICROCIRCUIT_SCALE-0.25}
    selection="cuda or gpu"
else  # the CPU run checks the plumbing only: small sizes, no compilation
    export TORCHINDUCTOR_COMPILE_THREADS=1
    device=cpu; fast=; coba_ms=1000; coba=${COBA-4000}; big=${BIG-8000}; sweep=${SWEEP-1 4}; scale=${MICROCIRCUIT_SCALE-0.02}
    selection="cuda or device or gpu"
fi
step() {  # step NAME LIMIT_S COMMAND...: run with a time limit, log to $out/NAME.log
    local name=$1 seconds=$2; shift 2
    echo "== $name (limit ${seconds} s)"
    local start=$SECONDS
    timeout --signal=INT --kill-after=5 "$seconds" "$@" > "$out/$name.log" 2>&1
    local code=$?
    echo "   exit $code after $((SECONDS - start)) s"
    echo "| $name | $code | $((SECONDS - start)) |" >> "$out/steps.md"
}
printf "| step | exit | seconds |\n|---|---:|---:|\n" > "$out/steps.md"
step sync_guard 60 $py benchmarks/sync_guard.py
# the CUDA variants of the tests (the device fixture adds them), without the slow compile cases
step tests 70 $py -m pytest -q -x -m "not slow" -k "$selection" tests
[ -n "$coba" ] && step coba 90 $py benchmarks/bench_coba.py --device "$device" --neurons $coba --fan-in 80 --duration $coba_ms $fast --out "$out/coba.md"
[ -n "$big" ] && step coba_big 70 $py benchmarks/bench_coba.py --device "$device" --neurons $big --fan-in 80 --duration 200 $fast --no-reference --out "$out/coba_big.md"
[ -n "$sweep" ] && step sweep 70 $py benchmarks/bench_sweep.py --device "$device" --lanes $sweep --duration 100 $fast --repeats 1 --out "$out/sweep.md"
if [ -n "$scale" ]; then
    if [ "$device" = cuda ]; then
        step microcircuit 90 $py benchmarks/bench_microcircuit.py --device cuda --scale "$scale" --duration 1000 --discard 500 --no-reference --out "$out/microcircuit.md"
    else
        step microcircuit 90 $py benchmarks/bench_microcircuit.py --scale "$scale" --duration 300 --discard 100 --no-fast --out "$out/microcircuit.md"
    fi
fi
cat "$out/sync_guard.log"
tail -n 3 "$out/tests.log"
for table in coba coba_big sweep microcircuit; do
    if [ -f "$out/$table.md" ]; then cat "$out/$table.md"; elif [ -f "$out/$table.log" ]; then tail -n 15 "$out/$table.log"; fi
done
cat "$out/steps.md"
$py benchmarks/targets.py "$out"
