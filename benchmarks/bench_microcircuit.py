"""The Potjans & Diesmann (2014) microcircuit in Sapicore and NEST, side by side, in one run.

Run:  python benchmarks/bench_microcircuit.py [--scale 0.1] [--k-scale K] [--duration 1500]
      [--discard 500] [--no-fast] [--no-reference] [--device cuda] [--nest-python PATH]

Each simulator runs in its own process (one CPU thread), so each row's peak memory is its own. Rows:
Sapicore's reference loop, Sapicore fast=True (its compile time apart), and NEST (1 thread) where
its benchmark-only environment exists (``bash benchmarks/setup_nest.sh``, found through
--nest-python or $SAPICORE_NEST_PYTHON). The table gives build time, wall seconds per biological
second (the real-time factor), peak memory, synaptic events per second and each population's mean
rate beside the two full-scale references of the NEST example (its 2016 values, which the builder's
DC compensation uses, and the NEST 3 values measured with 12 MPI processes); a second table gives, per population, the Kolmogorov-Smirnov
distance between Sapicore's and NEST's per-neuron rate distributions (the INM-6 recipe).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def sapicore_worker(
    scale: float,
    k_scale: float,
    duration: float,
    discard: float,
    fast: bool,
    device: str,
    records: str = "events",
) -> dict:
    """One Sapicore run in its own process. ``records``: the spikes kept as events in memory
    ("events"), streamed to a NIX file as ``sapicore run`` writes them ("nix"), or not recorded
    ("none": then no rates)."""
    import tempfile

    import torch
    from timing import warm

    import sapicore.functional as sf
    from sapicore import analysis
    from sapicore.logging.nix import NixRecordSink, read_events
    from sapicore.networks import potjans2014 as pd

    torch.set_num_threads(1)
    warm(torch.device(device))  # kernel builds and JITs before the build and run timers
    start = time.perf_counter()
    net = sf.to(pd.microcircuit(scale, k_scale=k_scale), device)
    state = pd.initial_state(net, device=device)
    if device != "cpu":
        torch.cuda.synchronize()
    build = time.perf_counter() - start
    names = tuple(f"{name}.spikes" for name in pd.POPULATIONS)
    record = () if records == "none" else names
    folder = Path(tempfile.mkdtemp())
    sinks = {
        "none": lambda: [],
        "events": lambda: [sf.SpikeEvents(names)],
        "nix": lambda: [NixRecordSink(folder / f"{time.time_ns()}.nix", events=names)],
    }[records]
    compile_seconds = 0.0
    if fast:  # compile on a short run first, with the run's kind of sink
        start = time.perf_counter()
        sf.simulate(net, state, dt=0.1, steps=40, record=record, sinks=sinks(), fast=True, keep=False)
        compile_seconds = time.perf_counter() - start
    run_sinks = sinks()
    torch.manual_seed(1)
    start = time.perf_counter()
    with torch.no_grad():
        sf.simulate(net, state, dt=0.1, duration=duration, record=record, sinks=run_sinks, keep=False, fast=fast)
    if device != "cpu":
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    seconds = (duration - discard) / 1000.0
    row = {
        "build_seconds": build,
        "compile_seconds": compile_seconds,
        "run_seconds": wall,
        "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "synapses": sum(  # the recurrent ones, as NEST's
            int(torch.count_nonzero(proj.mask)) for name, proj in net.projections.items() if name != "external"
        ),
    }
    if records == "none":
        return row
    if records == "nix":
        found = {name: read_events(run_sinks[0].writer.filename, name) for name in names}
        event_times = {name: torch.as_tensor(times) for name, (times, _) in found.items()}
        event_neurons = {name: torch.as_tensor(neurons).long() for name, (_, neurons) in found.items()}
    else:
        event_times, event_neurons = run_sinks[0].times, run_sinks[0].neurons
    rates, counts, cvs = {}, {}, {}
    for name in pd.POPULATIONS:
        times, neurons = event_times[f"{name}.spikes"], event_neurons[f"{name}.spikes"]
        size = net.ranges()[name][2]
        per_neuron = torch.bincount(neurons[times > discard], minlength=size)
        rates[name] = float(per_neuron.sum()) / size / seconds
        counts[name] = per_neuron.tolist()
        per_neuron_cv = analysis.isi_cvs_of_events(times[times > discard], neurons[times > discard], size)
        cvs[name] = per_neuron_cv[~torch.isnan(per_neuron_cv)].tolist()
    return {**row, "rates_hz": rates, "counts": counts, "cvs": cvs}


def ks_distance(a: list[float], b: list[float]) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    values = sorted(set(a) | set(b))
    if not a or not b:
        return float("nan")
    sa, sb = sorted(a), sorted(b)
    gap, i, j = 0.0, 0, 0
    for value in values:
        while i < len(sa) and sa[i] <= value:
            i += 1
        while j < len(sb) and sb[j] <= value:
            j += 1
        gap = max(gap, abs(i / len(sa) - j / len(sb)))
    return gap


def run_worker(command: list[str]) -> dict | None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"# {' '.join(command[:2])} failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--k-scale", type=float, default=None, help="in-degree scale (default: --scale)")
    parser.add_argument("--duration", type=float, default=1500.0, help="biological time (ms)")
    parser.add_argument("--discard", type=float, default=500.0, help="transient left out of the rates (ms)")
    parser.add_argument("--no-fast", action="store_true", help="skip fast=True")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference loop (fast=False)")
    parser.add_argument("--device", default="cpu", help="where Sapicore runs (NEST: one CPU thread)")
    parser.add_argument("--out", help="also write the tables (markdown) here")
    parser.add_argument("--nest-python", default=os.environ.get("SAPICORE_NEST_PYTHON"))
    parser.add_argument(
        "--records", action="store_true", help="also time fast=True without records and streaming spikes to NIX"
    )
    parser.add_argument("--worker", nargs=7, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        scale, k_scale, duration, discard, fast, device, records = args.worker
        numbers = (float(scale), float(k_scale), float(duration), float(discard))
        print(json.dumps(sapicore_worker(*numbers, fast == "1", device, records)))
        return
    k_scale = args.k_scale or args.scale
    common = [str(args.scale), str(k_scale), str(args.duration), str(args.discard)]
    rows = {}
    worker = [sys.executable, __file__, "--worker", *common]
    if not args.no_reference:
        rows["Sapicore reference"] = run_worker([*worker, "0", args.device, "events"])
    if not args.no_fast:
        rows["Sapicore fast=True"] = run_worker([*worker, "1", args.device, "events"])
    if args.records and not args.no_fast:
        rows["Sapicore fast=True, no records"] = run_worker([*worker, "1", args.device, "none"])
        rows["Sapicore fast=True, spikes streamed to NIX"] = run_worker([*worker, "1", args.device, "nix"])
    if args.nest_python:
        rows["NEST 1 thread"] = run_worker([args.nest_python, str(HERE / "nest_microcircuit.py"), *common, "1", "1"])
    else:
        print("# NEST skipped: give --nest-python or $SAPICORE_NEST_PYTHON (bash benchmarks/setup_nest.sh)")
    rows = {name: row for name, row in rows.items() if row is not None}
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        report(rows, args, k_scale)
    print(buffer.getvalue(), end="")
    if args.out:
        Path(args.out).write_text(buffer.getvalue())


def report(rows: dict, args: argparse.Namespace, k_scale: float) -> None:
    """Print the tables (markdown) of the rows measured."""
    from sapicore.networks.potjans2014 import POPULATIONS, REFERENCE_SETS

    seconds = args.duration / 1000.0
    print(
        f"\nMicrocircuit, scale {args.scale}, in-degree scale {k_scale}, {args.duration:g} ms "
        f"(rates after {args.discard:g} ms), one CPU thread, Sapicore on {args.device}"
    )
    print(
        "| | build s | compile s | s per bio-s | peak MB | synapses | " + " | ".join(POPULATIONS) + " | vs NEST time |"
    )
    print("|---" * (7 + len(POPULATIONS)) + "|")
    nest_time = rows.get("NEST 1 thread", {}).get("run_seconds")
    for name, row in rows.items():
        per_second = row["run_seconds"] / seconds
        rates = " | ".join(f"{row['rates_hz'][pop]:.2f}" if "rates_hz" in row else "-" for pop in POPULATIONS)
        ratio = f"{row['run_seconds'] / nest_time:.2f}x" if nest_time else "-"
        print(
            f"| {name} | {row['build_seconds']:.1f} | {row.get('compile_seconds', 0.0):.1f} | {per_second:.2f} | "
            f"{row['peak_memory_mb']:.0f} | {row['synapses']:,} | {rates} | {ratio} |"
        )
    for label, reference in REFERENCE_SETS.items():
        print(f"| full scale, {label} | | | | | | " + " | ".join(f"{r:.2f}" for r in reference) + " | |")
    print("\nMean ISI CV per population (neurons with at least 3 spikes after the transient)")
    print("| | " + " | ".join(POPULATIONS) + " |")
    print("|---" * (1 + len(POPULATIONS)) + "|")
    for name, row in [(name, row) for name, row in rows.items() if "cvs" in row]:
        means = [
            sum(row["cvs"][pop]) / len(row["cvs"][pop]) if row["cvs"][pop] else float("nan") for pop in POPULATIONS
        ]
        print(f"| {name} | " + " | ".join(f"{m:.2f}" for m in means) + " |")
    if "NEST 1 thread" in rows:
        for what, key in (("per-neuron rates", "counts"), ("per-neuron ISI CVs", "cvs")):
            print(f"\nKolmogorov-Smirnov distance of {what}, Sapicore vs NEST")
            print("| | " + " | ".join(POPULATIONS) + " |")
            print("|---" * (1 + len(POPULATIONS)) + "|")
            for name in [n for n in rows if n.startswith("Sapicore") and "cvs" in rows[n]]:
                distances = [ks_distance(rows[name][key][pop], rows["NEST 1 thread"][key][pop]) for pop in POPULATIONS]
                print(f"| {name} | " + " | ".join(f"{d:.3f}" for d in distances) + " |")


if __name__ == "__main__":
    main()
