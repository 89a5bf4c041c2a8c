"""The COBA network written in PyNN and run on sapicore.pynn, against the same network built by
Sapicore itself (the coba spec, with PyNN's one-step delays), in one run.

Both: 4,000 LIF neurons with conductance synapses (one population, its first 3,200 excitatory),
connection probability 2%, 1 s of biological time at dt = 0.1 ms, every spike recorded. PyNN's
network is written as PyNN's own VAbenchmarks.py writes it (one population, two views).

Usage: python benchmarks/bench_pynn_coba.py [--duration 1000] [--fast] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import sapicore.functional as sf
import sapicore.pynn as sim
from sapicore.spec import load_data, parse_spec


def pynn_run(duration: float, fast: bool) -> tuple[float, float, int]:
    """(build seconds, run seconds, spikes) of the PyNN script."""
    start = time.perf_counter()
    sim.setup(timestep=0.1, fast=fast)
    cell = sim.IF_cond_exp(
        tau_m=20.0,
        cm=0.2,
        v_rest=-60.0,
        v_reset=-60.0,
        v_thresh=-50.0,
        tau_refrac=5.0,
        i_offset=0.2,
        tau_syn_E=5.0,
        tau_syn_I=10.0,
        e_rev_E=0.0,
        e_rev_I=-80.0,
    )
    cells = sim.Population(4000, cell, label="cells")
    cells.initialize(v=sim.RandomDistribution("normal", (-55.0, 5.0), rng=sim.NumpyRNG(seed=1)))
    exc, inh = cells[:3200], cells[3200:]
    connector = sim.FixedProbabilityConnector(0.02, rng=sim.NumpyRNG(seed=2))
    sim.Projection(exc, cells, connector, sim.StaticSynapse(weight=0.006, delay=0.1), receptor_type="excitatory")
    sim.Projection(inh, cells, connector, sim.StaticSynapse(weight=0.067, delay=0.1), receptor_type="inhibitory")
    cells.record("spikes")
    built = time.perf_counter()
    sim.run(duration)
    ran = time.perf_counter()
    spikes = sum(len(train) for train in cells.get_data().segments[0].spiketrains)
    sim.end()
    return built - start, ran - built, spikes


def spec_run(duration: float, fast: bool) -> tuple[float, float, int]:
    """(build seconds, run seconds, spikes) of Sapicore's own COBA network: the coba spec with its
    delays set to PyNN's shortest, one step (0.1 ms; the spec has none)."""
    start = time.perf_counter()
    source, data = load_data("coba")
    for projection in data["projections"].values():
        projection["delay"] = 0.1
    net = parse_spec(data, source).network
    state = net.init_state()
    built = time.perf_counter()
    names = ("exc.spikes", "inh.spikes")
    events = sf.SpikeEvents(names)
    with torch.no_grad():
        sf.simulate(net, state, duration=duration, dt=0.1, fast=fast, record=names, sinks=[events], keep=False)
    ran = time.perf_counter()
    return built - start, ran - built, sum(events.times[name].numel() for name in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=1000.0, help="biological time (ms)")
    parser.add_argument("--fast", action="store_true", help="compiled chunks (a warm-up run compiles first)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each, alternating; medians reported")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.fast:  # compile both once, outside the timings
        pynn_run(50.0, True)
        spec_run(50.0, True)
    rows = {"PyNN script on sapicore.pynn": [], "Sapicore's own COBA network": []}
    for _ in range(args.repeats):
        rows["PyNN script on sapicore.pynn"].append(pynn_run(args.duration, args.fast))
        rows["Sapicore's own COBA network"].append(spec_run(args.duration, args.fast))
    print(f"COBA 4,000 neurons, {args.duration:g} ms, fast={args.fast}, medians of {args.repeats} (one CPU thread)")
    print("| | build (s) | run (s) | spikes |")
    print("|---|---:|---:|---:|")
    medians = {}
    for name, runs in rows.items():
        medians[name] = [statistics.median(r[i] for r in runs) for i in range(3)]
        build, run, spikes = medians[name]
        print(f"| {name} | {build:.2f} | {run:.2f} | {spikes:.0f} |")
    pynn, own = medians["PyNN script on sapicore.pynn"], medians["Sapicore's own COBA network"]
    print(
        f"run time ratio PyNN / own: {pynn[1] / own[1]:.2f}; build + run: {(pynn[0] + pynn[1]) / (own[0] + own[1]):.2f}"
    )


if __name__ == "__main__":
    main()
