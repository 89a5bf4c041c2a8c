"""The COBA (or CUBA) benchmark network of Brette et al. (2007): raster plot and rate summary.

Run:  python examples/brette2007.py --network coba --out outputs/coba

Writes into the output folder:
  raster.png     spikes of the first 1,000 excitatory and inhibitory neurons
  summary.json   mean rates (Hz) per population, ISI coefficient of variation, wall time
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import sapicore.functional as sf
from sapicore import analysis, plot
from sapicore.networks import coba, cuba, initial_state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", choices=("coba", "cuba"), default="coba")
    parser.add_argument("--out", default=None, help="output folder (default: outputs/<network>)")
    parser.add_argument("--neurons", type=int, default=4000)
    parser.add_argument("--duration", type=float, default=1000.0, help="biological time (ms)")
    parser.add_argument("--dt", type=float, default=0.1, help="time step (ms)")
    parser.add_argument("--kind", choices=("sparse", "dense"), default="sparse")
    parser.add_argument("--fast", action="store_true", help="compiled chunks (long compile on a CPU)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    out = Path(args.out or f"outputs/{args.network}")
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)

    build = coba if args.network == "coba" else cuba
    start = time.perf_counter()
    net = sf.to(build(args.neurons, dt=args.dt, kind=args.kind, seed=args.seed), device=args.device)
    state = initial_state(net, seed=args.seed, device=args.device)
    setup = time.perf_counter() - start
    start = time.perf_counter()
    with torch.no_grad():
        _, rec = sf.simulate(net, state, duration=args.duration, dt=args.dt, fast=args.fast, progress=True)
    wall = time.perf_counter() - start

    spikes = {part: rec[f"{part}.spikes"] for part in ("exc", "inh")}  # the parts of the one population
    plot.raster(spikes, args.dt, out / "raster.png", title=f"{args.network.upper()}, {args.neurons} neurons")
    summary = {
        "network": args.network,
        "neurons": args.neurons,
        "duration_ms": args.duration,
        "dt_ms": args.dt,
        "kind": args.kind,
        "setup_seconds": round(setup, 3),
        "wall_seconds": round(wall, 3),
        "mean_rate_hz": {name: analysis.mean_rate(s, args.dt) for name, s in spikes.items()},
        "isi_cv": {name: analysis.isi_cv(s, args.dt) for name, s in spikes.items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    print(f"wrote {out / 'raster.png'} and {out / 'summary.json'}")


if __name__ == "__main__":
    main()
