"""COBA (Brette et al. 2007) in Sapicore, in a plain eager torch loop and in Brian2, in one run.

Run:  python benchmarks/bench_coba.py [--neurons 4000 40000] [--fan-in 80] [--fast] [--no-reference]
      [--brian-python PATH] [--device cuda]

Brian2 is never a dependency of Sapicore: it runs in its own environment (numpy<2.4), made by
``bash benchmarks/setup_brian2.sh`` and found through --brian-python or $SAPICORE_BRIAN_PYTHON;
without it the Brian2 rows are skipped. Brian2's cython rows are timed on a second run, after its
code cache is warm. Every row simulates the same network (same parameters, own random draws) for
the same biological time; the table prints wall seconds per biological second, synaptic events per
second, mean rate, ISI CV, and each time as a ratio to Brian2's runtime (cython) and C++
standalone modes. Sapicore keeps spikes as events (``sf.SpikeEvents``, ``keep=False``) as Brian2's
SpikeMonitor does; the plain torch loop fills a preallocated dense bool record.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from timing import synchronize, warm

import sapicore.functional as sf
from sapicore import analysis
from sapicore.logging.nix import NixRecordSink, read_events
from sapicore.networks import coba, initial_state

HERE = Path(__file__).resolve().parent


def sapicore_run(
    net: sf.Network,
    state: sf.NetworkState,
    duration: float,
    dt: float,
    fast: bool,
    device: torch.device,
    records: str = "events",
) -> dict:
    """simulate with the spikes ``records``: "events" kept in memory (as Brian2's SpikeMonitor does),
    "nix" streamed to a NIX file (as ``sapicore run`` writes records.nix), or "none" (no records)."""
    names = ("exc.spikes", "inh.spikes")
    record = () if records == "none" else names
    with tempfile.TemporaryDirectory() as folder, torch.no_grad():
        start = time.perf_counter()
        # warm with the row's own kind of sink (nixio is imported on its first use)
        warm = {
            "none": [],
            "events": [sf.SpikeEvents(names)],
            "nix": [NixRecordSink(Path(folder) / "warm.nix", events=names)],
        }
        sf.simulate(net, state, steps=200, dt=dt, fast=fast, record=record, sinks=warm[records], keep=False)  # compiles
        synchronize(device)
        compile_seconds = time.perf_counter() - start if fast else 0.0
        sink = NixRecordSink(Path(folder) / "records.nix", events=names) if records == "nix" else sf.SpikeEvents(names)
        start = time.perf_counter()
        sf.simulate(
            net, state, duration=duration, dt=dt, fast=fast, record=record, sinks=[sink] if record else [], keep=False
        )
        synchronize(device)
        wall = time.perf_counter() - start
        if records == "none":
            return {
                "run_seconds": wall,
                "compile_seconds": compile_seconds,
                "rate_hz": None,
                "isi_cv": None,
                "spikes": None,
            }
        if records == "nix":
            found = {name: read_events(Path(folder) / "records.nix", name) for name in names}
            event_times = {name: torch.as_tensor(found[name][0]) for name in names}
            event_neurons = {name: torch.as_tensor(found[name][1]).long() for name in names}
        else:
            event_times, event_neurons = sink.times, sink.neurons
    n_exc, n = net.ranges()["exc"][2], net.populations["neurons"].size
    times = torch.cat([event_times["exc.spikes"], event_times["inh.spikes"]])
    neurons = torch.cat([event_neurons["exc.spikes"], event_neurons["inh.spikes"] + n_exc])
    return {
        "run_seconds": wall,
        "compile_seconds": compile_seconds,
        "rate_hz": times.numel() / n / (duration / 1000.0),
        "isi_cv": analysis.isi_cv_of_events(times, neurons, n),
        "spikes": times.numel(),
    }


def torch_loop_run(net: sf.Network, state: sf.NetworkState, duration: float, dt: float, device: torch.device) -> dict:
    """The same network as a plain eager loop: one population, event-driven propagation via nonzero."""
    ranges = net.ranges()
    n_exc, n = ranges["exc"][2], net.populations["neurons"].size
    rows = [net.projections[name].targets[:-1].long() for name in ("excitatory", "inhibitory")]  # padding n
    table = torch.cat(
        [torch.nn.functional.pad(r, (0, max(x.shape[1] for x in rows) - r.shape[1]), value=n) for r in rows]
    ).to(device=device, dtype=torch.int64)
    v = state.populations["neurons"].v.to(device)
    ge, gi = torch.zeros(n + 1, device=device), torch.zeros(n + 1, device=device)
    refractory = torch.zeros(n, device=device)
    decay_e, decay_i = math.exp(-dt / 5.0), math.exp(-dt / 10.0)
    steps = int(round(duration / dt))
    record = torch.zeros(steps, n, dtype=torch.bool, device=device)
    start = time.perf_counter()
    with torch.no_grad():
        for step in range(steps):
            g_e, g_i = ge[:n], gi[:n]
            g_total = 1.0 + g_e + g_i  # conductances relative to the leak; E_exc = 0 mV drops out
            v_inf = (-60.0 - 80.0 * g_i + 20.0) / g_total
            v_new = v_inf + (v - v_inf) * torch.exp(-dt / 20.0 * g_total)
            v = torch.where(refractory > 0.5 * dt, -60.0, v_new)
            fired = v > -50.0
            v = torch.where(fired, -60.0, v)
            refractory = torch.where(fired, 5.0, (refractory - dt).clamp(min=0.0))
            record[step] = fired
            ge *= decay_e
            gi *= decay_i
            index = torch.nonzero(fired).reshape(-1)
            exc_index, inh_index = index[index < n_exc], index[index >= n_exc]
            ge.index_add_(
                0, table[exc_index].reshape(-1), torch.full((exc_index.numel() * table.shape[1],), 0.6, device=device)
            )
            gi.index_add_(
                0, table[inh_index].reshape(-1), torch.full((inh_index.numel() * table.shape[1],), 6.7, device=device)
            )
    synchronize(device)
    wall = time.perf_counter() - start
    return {"run_seconds": wall, "compile_seconds": 0.0, **_measures(record.cpu().float(), dt)}


def brian_run(
    python: str, target: str, neurons: int, duration: float, dt: float, repeat: int, fan_in: int | None = None
) -> dict | None:
    command = [
        python,
        str(HERE / "brian2_coba.py"),
        "--target",
        target,
        "--neurons",
        str(neurons),
        "--duration",
        str(duration),
        "--dt",
        str(dt),
    ]
    if fan_in:
        command += ["--fan-in", str(fan_in)]
    result = None
    for _ in range(repeat):
        done = subprocess.run(command, capture_output=True, text=True, cwd="/tmp")
        if done.returncode != 0:
            print(f"Brian2 {target} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
            return None
        result = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "run_seconds": result["run_seconds"],
        "compile_seconds": result["run_with_build_seconds"] - result["run_seconds"],
        "rate_hz": result["mean_rate_hz"],
        "isi_cv": result["isi_cv"],
        "spikes": result["spikes"],
    }


def _measures(spikes: torch.Tensor, dt: float) -> dict:
    return {
        "rate_hz": analysis.mean_rate(spikes, dt),
        "isi_cv": analysis.isi_cv(spikes, dt),
        "spikes": int(spikes.sum()),
    }


def table(neurons: int, args: argparse.Namespace, device: torch.device) -> list[str]:
    """Build the network, run every simulator on it, return the markdown table."""
    start = time.perf_counter()
    net = sf.to(coba(neurons, dt=args.dt, fan_in=args.fan_in), device=device)
    state = initial_state(net, device=device)
    setup = time.perf_counter() - start
    synapses = sum(int(p.mask.sum()) for p in net.projections.values())
    rows: dict[str, dict] = {}
    if args.brian_python:
        for target in args.brian_targets:
            result = brian_run(
                args.brian_python, target, neurons, args.duration, args.dt, 2 if target == "cython" else 1, args.fan_in
            )
            if result:
                rows[f"Brian2 {target}"] = result
    torch_loop_run(net, state, 20.0, args.dt, device)  # warm, as every other row is
    rows["plain torch loop (eager, event-driven)"] = torch_loop_run(net, state, args.duration, args.dt, device)
    if not args.no_reference:
        rows["Sapicore simulate (reference loop)"] = sapicore_run(net, state, args.duration, args.dt, False, device)
    if args.fast:
        rows["Sapicore simulate (fast=True)"] = sapicore_run(net, state, args.duration, args.dt, True, device)
        if args.records:  # what recording costs a compiled run
            for records in ("none", "nix"):
                label = {"none": "no records", "nix": "spikes streamed to NIX"}[records]
                rows[f"Sapicore fast=True, {label}"] = sapicore_run(
                    net, state, args.duration, args.dt, True, device, records
                )

    seconds = args.duration / 1000.0
    brian = {target: rows.get(f"Brian2 {target}", {}).get("run_seconds") for target in ("cython", "cpp_standalone")}
    peer = rows["plain torch loop (eager, event-driven)"]["run_seconds"]
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU, 1 thread"
    connections = f"{args.fan_in} synapses per neuron" if args.fan_in else "p = 0.02"
    lines = [
        f"COBA, {neurons:,} neurons ({connections}, {synapses:,} synapses), dt = {args.dt} ms, "
        f"{args.duration:.0f} ms biological time, {device_name}; Sapicore network setup {setup:.1f} s",
        "",
        "| simulator | wall s / bio s | compile or build s | synaptic events / s | rate (Hz) | ISI CV "
        "| time / Brian2 cython | time / Brian2 standalone | time / torch loop |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in rows.items():
        if row["spikes"] is None:  # a run without records: its spikes are not known
            lines.append(
                f"| {name} | {row['run_seconds'] / seconds:.3f} | {row['compile_seconds']:.1f} | n/a | n/a | n/a | "
                + " | ".join(
                    f"{row['run_seconds'] / brian[t]:.2f}" if brian[t] else "n/a" for t in ("cython", "cpp_standalone")
                )
                + f" | {row['run_seconds'] / peer:.2f} |"
            )
            continue
        events = row["spikes"] * synapses / (neurons * row["run_seconds"])
        ratios = " | ".join(
            f"{row['run_seconds'] / brian[t]:.2f}" if brian[t] else "n/a" for t in ("cython", "cpp_standalone")
        )
        lines.append(
            f"| {name} | {row['run_seconds'] / seconds:.3f} | {row['compile_seconds']:.1f} | {events:,.0f} | "
            f"{row['rate_hz']:.1f} | {row['isi_cv']:.2f} | {ratios} | {row['run_seconds'] / peer:.2f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, nargs="+", default=[4000], help="network sizes, one table each")
    parser.add_argument("--fan-in", type=int, default=None, help="fixed synapses per neuron (default: p = 0.02)")
    parser.add_argument("--duration", type=float, default=1000.0, help="biological time (ms)")
    parser.add_argument("--dt", type=float, default=0.1)
    parser.add_argument("--fast", action="store_true", help="also time simulate(fast=True) (compiles first)")
    parser.add_argument(
        "--records", action="store_true", help="with --fast, also time it without records and streaming to NIX"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference loop (fast=False)")
    parser.add_argument("--brian-python", default=os.environ.get("SAPICORE_BRIAN_PYTHON"))
    parser.add_argument("--brian-targets", nargs="+", default=["cython", "cpp_standalone", "numpy"])
    parser.add_argument("--out", help="also write the tables (markdown) here")
    args = parser.parse_args()
    if args.brian_python:  # Brian2 runs with /tmp as its working directory
        args.brian_python = os.path.abspath(args.brian_python)
        if not os.access(args.brian_python, os.X_OK):
            parser.error(f"--brian-python {args.brian_python} is not a Python to run (bash benchmarks/setup_brian2.sh)")
    torch.set_num_threads(1)
    os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
    device = torch.device(args.device)
    warm(device)  # kernel builds and JITs before any timed row
    lines: list[str] = []
    for neurons in args.neurons:
        block = table(neurons, args, device)
        print("\n".join(block) + "\n", flush=True)
        lines += block + [""]
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
