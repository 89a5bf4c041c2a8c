"""The microcircuit partitioned over processes (each builds its share, ``microcircuit(share=...)``):
wall time per biological second, build and compile time, peak memory per rank, and the exchange's
traffic (time in it, waiting for the other ranks included, and megabytes received), for 1 and 2 (or
more) processes, each with one thread. Every run uses the keyed Poisson background, so all of them
simulate the same spikes (the table's last column checks it).

Usage:
    python benchmarks/bench_partition.py [--scale 0.1] [--duration 1000] [--processes 1 2] [--fast]
        [--transport auto|shared|gloo] [--lanes B]

``--lanes B`` runs B networks (background rates 0.9, 1.0, 1.1, ... times the model's) as lanes of
one sweep: in one process the whole networks, on several the ranks' shares (lanes within a
partition); the spikes column counts all lanes.

Each process count runs as ``torchrun --standalone --nproc-per-node N`` of this script's worker (one
process runs it without torchrun); peak memory is each process's maximum resident set size.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import time


def _lanes(network, state, lanes: int):
    """``lanes`` copies of the network whose background rates are 0.9, 1.0, 1.1, ... times the
    model's (stacked for ``sweep``), and the state repeated for each."""
    import attrs

    import sapicore.functional as sf
    from sapicore.functional.pytree import replace

    background = network.populations["background"]
    networks = []
    for lane in range(lanes):
        model = attrs.evolve(background.model, rate=background.model.rate * (0.9 + 0.1 * lane))
        populations = {**network.populations, "background": sf.Population(model, background.size, background.parts)}
        networks.append(replace(network, populations=populations))
    return sf.stack(networks), sf.stack([state] * lanes)


def worker(scale: float, duration: float, fast: bool, transport: str, lanes: int = 1) -> None:
    import torch
    import torch.distributed as dist

    import sapicore.functional as sf
    from sapicore.networks import potjans2014

    torch.set_num_threads(1)
    distributed = "RANK" in os.environ
    if distributed:
        dist.init_process_group("gloo")
    began = time.perf_counter()
    share = (dist.get_rank(), dist.get_world_size()) if distributed else None  # each rank builds its share only
    network = potjans2014.microcircuit(scale=scale, background="keyed", share=share)
    if distributed:
        network.exchange.transport = transport
    state = potjans2014.initial_state(network, seed=1)
    if lanes > 1:  # lanes within the partition: every rank runs its share of each lane
        network, state = _lanes(network, state, lanes)
    build = time.perf_counter() - began
    run = dict(dt=0.1, record=("cortex.spikes",), keep=False, fast=fast, progress=False)
    run["chunk"] = 100  # the records in flight: 100 steps of the rank's neurons, not 1,000
    began = time.perf_counter()
    simulate = sf.simulate if lanes == 1 else sf.sweep
    if fast:  # compiled (or loaded) outside the timed run, for both layouts of the state; it is not changed
        with torch.no_grad():
            simulate(network, state, steps=2 * run["chunk"], **run)
    compile_s = time.perf_counter() - began
    before = network.exchange.traffic() if distributed else {"seconds": 0.0, "bytes": 0, "calls": 0}
    began = time.perf_counter()
    per_lane = [sf.SpikeEvents(("cortex.spikes",)) for _ in range(lanes)]  # no dense record in memory
    with torch.no_grad():
        simulate(
            network,
            state,
            duration=duration,
            sinks=per_lane if lanes == 1 else [sf.PerLane([[events] for events in per_lane])],
            **run,
        )
    wall = time.perf_counter() - began
    after = network.exchange.traffic() if distributed else before
    traffic = {key: after[key] - before[key] for key in before}
    times = torch.cat([events.times["cortex.spikes"] for events in per_lane])
    neurons = torch.cat([events.neurons["cortex.spikes"] for events in per_lane])
    line = (
        json.dumps(
            {
                "rank": dist.get_rank() if distributed else 0,
                "build_s": build,
                "compile_s": compile_s,
                "wall_s": wall,
                "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                "gather_s": traffic["seconds"],
                "gather_mb": traffic["bytes"] / 1e6,
                "spikes": int(times.numel()),
                "digest": hashlib.sha256(times.numpy().tobytes() + neurons.numpy().tobytes()).hexdigest()[:12],
            }
        )
        + "\n"
    )
    sys.stdout.write(line)  # one write: the ranks' lines share a pipe
    sys.stdout.flush()
    if distributed:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--duration", type=float, default=1000.0, help="ms of biological time")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--fast", action="store_true", help="compiled chunks (simulate(fast=True))")
    parser.add_argument(
        "--transport", choices=("auto", "shared", "gloo"), default="auto", help="how ranks exchange spikes"
    )
    parser.add_argument(
        "--lanes", type=int, default=1, help="sweep lanes (background rates 0.9, 1.0, ... x), within each partition"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.lanes < 1:
        parser.error(f"--lanes must be at least 1, got {args.lanes}")
    if args.worker:
        worker(args.scale, args.duration, args.fast, args.transport, args.lanes)
        return
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    own = [__file__, "--worker", "--scale", str(args.scale), "--duration", str(args.duration)]
    own += ["--transport", args.transport, "--lanes", str(args.lanes)] + (["--fast"] if args.fast else [])
    rows = {}
    for count in args.processes:
        launcher = [sys.executable] if count == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command = launcher + ([] if count == 1 else [f"--nproc-per-node={count}"]) + own
        done = subprocess.run(command, capture_output=True, text=True, env=environment)
        if done.returncode != 0:
            raise SystemExit(f"{count} processes failed:\n{done.stderr[-20000:]}")
        rows[count] = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    seconds = args.duration / 1000.0
    single = max(row["wall_s"] for row in rows[min(rows)]) / seconds
    loop = "compiled chunks" if args.fast else "reference loop"
    lanes = f", {args.lanes} lanes (wall time for all)" if args.lanes > 1 else ""
    print(
        f"microcircuit, scale {args.scale}, {args.duration:g} ms, {loop}, transport {args.transport}, one thread "
        f"each{lanes}"
    )
    print(
        "| processes | s per bio-s | speed-up | build s | compile s | peak GB per rank | exchange s per bio-s "
        "| MB per bio-s | spikes, digest |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for count, found in rows.items():
        wall = max(row["wall_s"] for row in found) / seconds
        print(
            f"| {count} | {wall:.2f} | {single / wall:.2f}x | {max(row['build_s'] for row in found):.1f} "
            f"| {max(row['compile_s'] for row in found):.1f} "
            f"| {max(row['peak_gb'] for row in found):.2f} | {max(row['gather_s'] for row in found) / seconds:.2f} "
            f"| {max(row['gather_mb'] for row in found) / seconds:.0f} | {found[0]['spikes']}, {found[0]['digest']} |"
        )


if __name__ == "__main__":
    main()
