"""Parameter sweeps of COBA networks: B variants as vmap lanes against B runs one after another.

Run:  python benchmarks/bench_sweep.py [--lanes 1 16 256] [--duration 100] [--neurons 4000] [--device cuda] [--fast]
      [--repeats 3]

The B variants differ in their constant drive (0.18 to 0.22 nA). The table prints network-seconds
simulated per wall second for sweep() (one vmapped call) and for plain simulate() calls one after
another (timed on at most 4 variants and scaled, since its cost is linear in B), and their ratio.
With --fast both are compiled (compilation excluded from both; the sweep's compile time is shown).
The last column is the cost of quarantining diverging lanes (the default ``strict=False``: per-lane
NaN checks and masking) against ``strict=True``, which raises at the first NaN instead.
The runs are timed in turn ``--repeats`` times and each keeps its best time: on a shared machine a
single timing of either moves by 20-40% from run to run.
"""

from __future__ import annotations

import argparse
import math
import os

import torch
from timing import timed, warm

import sapicore.functional as sf
from sapicore.networks import coba, initial_state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lanes", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--neurons", type=int, default=4000)
    parser.add_argument("--duration", type=float, default=100.0, help="biological time per variant (ms)")
    parser.add_argument("--dt", type=float, default=0.1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fast", action="store_true", help="compiled chunks for the sweep")
    parser.add_argument("--repeats", type=int, default=3, help="timings of each, taken in turn; the best is kept")
    parser.add_argument("--out", help="also write the table (markdown) here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
    device = torch.device(args.device)
    warm(device)
    base = sf.to(coba(args.neurons, dt=args.dt), device=device)
    state = initial_state(base, device=device)
    seconds = args.duration / 1000.0
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU, 1 thread"
    lines = [
        f"COBA sweeps, {args.neurons:,} neurons per variant, {args.duration:.0f} ms each, dt = {args.dt} ms, {name}",
        "",
        "| variants | one-by-one net-s / wall-s | sweep net-s / wall-s | sweep / one-by-one | sweep compile s "
        "| quarantine / strict time |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    print("\n".join(lines), flush=True)
    for lanes_n in args.lanes:
        drives = torch.linspace(0.18, 0.22, lanes_n).tolist()
        # drives as 0-d tensors: a compiled single run then reuses its graph for every variant (a Python
        # float is a constant of the graph, and each new value would compile again)
        drives = [torch.tensor(d, device=device) for d in drives]
        variants = [sf.replace(base, drive={"neurons": d}) for d in drives]
        sampled = variants[:: max(1, lanes_n // 4)][:4]  # across the drives: rates (and costs) grow with them
        lanes = sf.stack(variants)
        states = sf.stack([state] * lanes_n)

        def one_by_one() -> None:
            for net in sampled:
                sf.simulate(net, state, duration=args.duration, dt=args.dt, fast=args.fast, record=())

        def swept(strict: bool = False) -> None:
            sf.sweep(lanes, states, duration=args.duration, dt=args.dt, fast=args.fast, record=(), strict=strict)

        with torch.no_grad():
            compile_seconds = 0.0
            if args.fast:  # compile both graphs first: the timings exclude compilation
                sf.simulate(sampled[0], state, duration=args.duration, dt=args.dt, fast=True, record=())
                compile_seconds = timed(swept, device)
                swept(strict=True)  # its own graph: compiled here, not inside the first timing
            best_single = best_sweep = best_strict = math.inf
            for _ in range(args.repeats):
                best_single = min(best_single, timed(one_by_one, device))
                best_sweep = min(best_sweep, timed(swept, device))
                best_strict = min(best_strict, timed(lambda: swept(strict=True), device))
        single_rate = len(sampled) * seconds / best_single
        sweep_rate = lanes_n * seconds / best_sweep
        lines.append(
            f"| {lanes_n} | {single_rate:.3f} | {sweep_rate:.3f} | {sweep_rate / single_rate:.2f} | {compile_seconds:.1f} "
            f"| {best_sweep / best_strict:.3f} |"
        )
        print(lines[-1], flush=True)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
