"""Peak memory of a long recorded run: COBA scaled up, spikes streamed to a NIX file as events.

Run:  python benchmarks/bench_memory.py [--neurons 400000] [--duration 10000] [--device cuda] [--fast]

Records every spike of every neuron with ``keep=False`` (nothing accumulates in memory) into a NIX
file, then prints the peak resident memory of the process, the peak GPU memory, the file's size
and the number of spikes stored.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import torch

import sapicore.functional as sf
from sapicore.logging.nix import NixRecordSink, read_events
from sapicore.networks import coba, initial_state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=400_000)
    parser.add_argument("--fan-in", type=int, default=80)
    parser.add_argument("--duration", type=float, default=10_000.0, help="biological time (ms)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--file", default=None, help="the NIX file (default: a temporary folder)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
    device = torch.device(args.device)
    path = Path(args.file) if args.file else Path(tempfile.mkdtemp()) / "spikes.nix"
    net = sf.to(coba(args.neurons, fan_in=args.fan_in), device=device)
    state = initial_state(net, device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sink = NixRecordSink(path, events=("exc.spikes", "inh.spikes"), flush_every=1, overwrite=True)
    start = time.perf_counter()
    with torch.no_grad():
        sf.simulate(
            net,
            state,
            duration=args.duration,
            dt=0.1,
            record=("exc.spikes", "inh.spikes"),
            sinks=[sink],
            keep=False,
            fast=args.fast,
            chunk=1000 if not args.fast else None,
            progress=True,
        )
    wall = time.perf_counter() - start
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu = f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB" if device.type == "cuda" else "n/a"
    spikes = sum(len(read_events(path, name)[0]) for name in ("exc.spikes", "inh.spikes"))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU, 1 thread"
    print("| neurons | bio s | wall s | peak RSS | peak GPU | NIX file | spikes | device |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    print(
        f"| {args.neurons:,} | {args.duration / 1000:.1f} | {wall:.1f} | {peak_rss_mb:.0f} MiB | {gpu} | "
        f"{path.stat().st_size / 2**20:.1f} MiB | {spikes:,} | {name} |"
    )


if __name__ == "__main__":
    main()
