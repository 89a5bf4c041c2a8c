"""One network over several processes: run it with ``torchrun --nproc-per-node N examples/partitioned.py``
(or with ``python examples/partitioned.py`` in one process); every number of processes writes the
same ``summary.json`` (spike counts and a digest of every spike).

A sparse COBA network (Vogels & Abbott 2005: 3,200 excitatory and 800 inhibitory LIF neurons, 2%
connectivity) driven by seeded Poisson noise, partitioned round-robin over the ranks of the
default process group (gloo on CPUs).
"""

import argparse
import hashlib
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist

import sapicore.functional as sf
from sapicore.functional import connectivity as C

DT = 0.1  # ms


def network(n_exc: int = 3200, n_inh: int = 800) -> sf.Network:
    n = n_exc + n_inh
    lif = sf.LIF(tau_mem=20.0, v_rest=-60.0, v_reset=-60.0, v_thresh=-50.0, r_mem=100.0, t_ref=5.0)
    populations = {
        "noise": sf.Population(sf.PoissonSource(rate=10.0, trains=20, seed=1), n),  # 20 trains of 10 Hz per cell
        "cells": sf.Population(lif, n, parts={"exc": n_exc, "inh": n_inh}),
    }
    projections = {
        "background": sf.projection("noise", "cells", C.one_to_one(n), 0.003, sf.Exponential(5.0, e_rev=0.0), dt=DT),
        "from_exc": sf.projection(
            "exc", "cells", C.fixed_probability(n_exc, n, 0.02, seed=2), 0.004, sf.Exponential(5.0, e_rev=0.0), dt=DT
        ),
        "from_inh": sf.projection(
            "inh", "cells", C.fixed_probability(n_inh, n, 0.02, seed=3), 0.051, sf.Exponential(10.0, e_rev=-80.0), dt=DT
        ),
    }
    return sf.Network(populations=populations, projections=projections)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="out/partitioned", help="folder for summary.json (written by rank 0)")
    parser.add_argument("--duration", type=float, default=500.0, help="ms of biological time")
    args = parser.parse_args()
    whole = network()
    if "RANK" in os.environ:  # started by torchrun
        dist.init_process_group("gloo")
        model, rank, world = sf.partition(whole), dist.get_rank(), dist.get_world_size()
    else:
        model, rank, world = whole, 0, 1
    _, records = sf.simulate(model, model.init_state(), dt=DT, duration=args.duration, record=("cells.spikes",))
    spikes = records["cells.spikes"]  # the whole network's, on every rank
    if rank == 0:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        summary = {
            "processes": world,
            "spikes": int(spikes.sum()),
            "mean_rate_hz": float(spikes.sum() / spikes.shape[1] / (args.duration / 1000.0)),
            "digest": hashlib.sha256(spikes.to(torch.uint8).numpy().tobytes()).hexdigest(),
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
        print(json.dumps(summary))
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
