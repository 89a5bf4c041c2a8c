"""Steps per second of LIF populations and of vmapped LIF sweeps: reference loop vs fast path.

Run:  python benchmarks/bench_neurons.py [--device cuda] [--sizes 1000 10000 ...] [--lanes 1 16 256]

Three ways to advance a LIF population by one step of 0.1 ms, each measured in the same run:
  torch loop  a hand-written eager torch loop of the same equations (the peer a user would write);
  reference   sapicore.functional.simulate, reference Python loop over LIF.step;
  fast        simulate(fast=True): compiled chunks of steps (CUDA graphs on a GPU).
The sweep table runs B parameter lanes of a 1,000-neuron population with sweep() against B separate
simulate() calls. Compile times are reported apart from the steady-state rates.
"""

from __future__ import annotations

import argparse
import math
import os

import torch
from timing import timed

import sapicore.functional as sf

DT = 0.1


def torch_loop(model: sf.LIF, v: torch.Tensor, current: torch.Tensor, steps: int) -> torch.Tensor:
    """The same LIF equations as a plain eager loop (no records, no checks)."""
    refractory = torch.zeros_like(v)
    decay = math.exp(-DT / model.tau_mem)
    count = torch.zeros_like(v)
    with torch.no_grad():
        for _ in range(steps):
            drive = model.v_rest + model.r_mem * current
            v = drive + (v - drive) * decay
            v = torch.where(refractory > 0.5 * DT, model.v_reset, v)
            fired = v >= model.v_thresh
            refractory = torch.where(fired, model.t_ref, (refractory - DT).clamp_(min=0.0))
            v = torch.where(fired, model.v_reset, v)
            count += fired
    return count


def steps_for(n: int, device: torch.device) -> int:
    budget = 2e7 if device.type == "cpu" else 2e9  # neuron-steps per measurement
    return int(max(100, min(5000, budget // n)) // 100 * 100)


def population_table(sizes: list[int], device: torch.device, fast: bool) -> list[str]:
    model = sf.LIF()
    rows = [
        "| neurons | steps | torch loop steps/s | reference steps/s | fast steps/s | fast compile s | fast / reference | fast / torch loop |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    print("\n".join(rows), flush=True)
    for n in sizes:
        steps = steps_for(n, device)
        current = 1.5 + 1.0 * torch.rand(n, device=device)
        state = model.init_state(n, device=device)
        drive = lambda t: current  # noqa: E731
        peer = steps / timed(lambda: torch_loop(model, state.v, current, steps), device)
        with torch.no_grad():
            ref = steps / timed(
                lambda: sf.simulate(model, state, drive, steps=steps, dt=DT, record=(), progress=False), device
            )
            fast_rate = compile_s = float("nan")
            if fast:
                compile_s = timed(
                    lambda: sf.simulate(model, state, drive, steps=100, dt=DT, record=(), fast=True, progress=False),
                    device,
                )
                fast_rate = steps / timed(
                    lambda: sf.simulate(model, state, drive, steps=steps, dt=DT, record=(), fast=True, progress=False),
                    device,
                )
        rows.append(
            f"| {n:,} | {steps} | {peer:,.0f} | {ref:,.0f} | {fast_rate:,.0f} | {compile_s:.1f} | {fast_rate / ref:.2f} | {fast_rate / peer:.2f} |"
        )
        print(rows[-1], flush=True)
    return rows


def sweep_table(lane_counts: list[int], device: torch.device, fast: bool, neurons: int = 1000) -> list[str]:
    rows = [
        "| lanes | steps | one-by-one steps/s | sweep steps/s | fast sweep steps/s | fast compile s | sweep / one-by-one | fast / one-by-one |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    print("\n".join(rows), flush=True)
    for lanes_n in lane_counts:
        steps = max(100, steps_for(neurons * lanes_n, device))
        taus = torch.linspace(10.0, 40.0, lanes_n).tolist()
        lanes, labels = sf.zipped(sf.LIF(), tau_mem=taus)
        lanes = sf.to(lanes, device=device)
        current = 1.5 + 1.0 * torch.rand(neurons, device=device)
        drive = lambda t: current  # noqa: E731

        timed_lanes = labels[:16]  # one-by-one cost is linear in lanes: time at most 16 of them

        def one_by_one() -> None:
            for label in timed_lanes:
                model = sf.LIF(**label)
                sf.simulate(
                    model,
                    model.init_state(neurons, device=device),
                    drive,
                    steps=steps,
                    dt=DT,
                    record=(),
                    progress=False,
                )

        with torch.no_grad():
            seq = steps * len(timed_lanes) / timed(one_by_one, device)
            swept = (
                steps
                * lanes_n
                / timed(
                    lambda: sf.sweep(lanes, inputs=drive, steps=steps, dt=DT, shape=neurons, record=(), progress=False),
                    device,
                )
            )
            fast_rate = compile_s = float("nan")
            if fast:
                compile_s = timed(
                    lambda: sf.sweep(
                        lanes, inputs=drive, steps=100, dt=DT, shape=neurons, record=(), fast=True, progress=False
                    ),
                    device,
                )
                fast_rate = (
                    steps
                    * lanes_n
                    / timed(
                        lambda: sf.sweep(
                            lanes, inputs=drive, steps=steps, dt=DT, shape=neurons, record=(), fast=True, progress=False
                        ),
                        device,
                    )
                )
        rows.append(
            f"| {lanes_n} | {steps} | {seq:,.0f} | {swept:,.0f} | {fast_rate:,.0f} | {compile_s:.1f} | {swept / seq:.2f} | {fast_rate / seq:.2f} |"
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--lanes", type=int, nargs="*", default=[1, 16, 256])
    parser.add_argument("--no-fast", action="store_true", help="skip the compiled path (saves compile time)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch (one was fastest here)")
    parser.add_argument("--out", help="also write the tables (markdown) to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    header = [f"# LIF benchmark on {name}, torch {torch.__version__}, dt = {DT} ms", "", "## Populations", ""]
    print("\n".join(header), flush=True)
    rows = population_table(args.sizes, device, not args.no_fast)
    print("\n## Sweeps of 1,000-neuron populations (rates count network-steps of all lanes)\n", flush=True)
    rows += ["", "## Sweeps", ""] + sweep_table(args.lanes, device, not args.no_fast)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write("\n".join(header + rows) + "\n")


if __name__ == "__main__":
    main()
