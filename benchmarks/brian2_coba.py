"""The COBA benchmark in Brian2, with the parameters of sapicore.networks.coba; prints one JSON line.

Runs in the benchmark-only environment made by benchmarks/setup_brian2.sh (Brian2 needs numpy<2.4):
    $SAPICORE_BRIAN_PYTHON benchmarks/brian2_coba.py --target cython --neurons 4000
Targets: numpy, cython (runtime mode) and cpp_standalone.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np


def fixed_in_degree(n_pre: int, k: int, n_post: int) -> tuple[np.ndarray, np.ndarray]:
    """Source and target indices giving every target k distinct sources."""
    sources = np.concatenate([np.random.choice(n_pre, k, replace=False) for _ in range(n_post)])
    return sources, np.repeat(np.arange(n_post), k)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", choices=("numpy", "cython", "cpp_standalone"), default="cython")
    parser.add_argument("--neurons", type=int, default=4000)
    parser.add_argument("--duration", type=float, default=1000.0, help="ms")
    parser.add_argument("--dt", type=float, default=0.1, help="ms")
    parser.add_argument("--fan-in", type=int, default=None, help="fixed in-degree instead of p = 0.02")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    import brian2 as b

    start = time.perf_counter()
    workdir = None
    if args.target == "cpp_standalone":
        workdir = tempfile.mkdtemp(prefix="brian2_coba_")
        b.set_device("cpp_standalone", directory=workdir, build_on_run=False)
    else:
        b.prefs.codegen.target = args.target
    b.seed(args.seed)
    np.random.seed(args.seed)
    b.defaultclock.dt = args.dt * b.ms
    ms = b.ms
    n_exc = int(round(0.8 * args.neurons))
    eqs = """
    dv/dt = (ge * (0*mV - v) + gi * (-80*mV - v) - (v + 60*mV) + 20*mV) / (20*ms) : volt (unless refractory)
    dge/dt = -ge / (5*ms) : 1
    dgi/dt = -gi / (10*ms) : 1
    """
    group = b.NeuronGroup(
        args.neurons, eqs, threshold="v > -50*mV", reset="v = -60*mV", refractory=5 * ms, method="exponential_euler"
    )
    group.v = "-55*mV + 5*mV * randn()"
    exc = b.Synapses(group[:n_exc], group, on_pre="ge += 0.6")
    inh = b.Synapses(group[n_exc:], group, on_pre="gi += 6.7")
    if args.fan_in is None:
        exc.connect(p=0.02)
        inh.connect(p=0.02)
    else:
        k_exc = int(round(0.8 * args.fan_in))
        sources, targets = fixed_in_degree(n_exc, k_exc, args.neurons)
        exc.connect(i=sources, j=targets)
        sources, targets = fixed_in_degree(args.neurons - n_exc, args.fan_in - k_exc, args.neurons)
        inh.connect(i=sources, j=targets)
    monitor = b.SpikeMonitor(group)
    setup = time.perf_counter() - start
    start = time.perf_counter()
    b.run(args.duration * ms)
    if args.target == "cpp_standalone":
        b.device.build(directory=workdir, compile=True, run=True)
    total = time.perf_counter() - start
    run_time = total
    if args.target == "cpp_standalone":
        run_time = float(b.device._last_run_time)
    trains = monitor.spike_trains()
    times = [np.asarray(trains[i] / ms) for i in range(args.neurons)]
    cvs = [np.std(np.diff(t)) / np.mean(np.diff(t)) for t in times if len(t) >= 3]
    spikes = int(monitor.num_spikes)
    print(
        json.dumps(
            {
                "target": args.target,
                "setup_seconds": setup,
                "run_seconds": run_time,
                "run_with_build_seconds": total,
                "mean_rate_hz": spikes / args.neurons / (args.duration / 1000.0),
                "isi_cv": float(np.mean(cvs)) if cvs else float("nan"),
                "spikes": spikes,
                "synapses": int(len(exc) + len(inh)),
            }
        )
    )


if __name__ == "__main__":
    main()
