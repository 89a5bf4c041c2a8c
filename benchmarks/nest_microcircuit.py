"""The Potjans & Diesmann (2014) microcircuit in NEST, for benchmarks/bench_microcircuit.py.

Runs in the benchmark-only NEST environment (``bash benchmarks/setup_nest.sh``), never imports
Sapicore, and prints one JSON line: build and simulation wall times, peak memory, per-population
mean rates and each neuron's spike count after the transient. The network is the one
``sapicore.networks.potjans2014`` builds (parameters of the NEST example, restated here, since this
file cannot import Sapicore): iaf_psc_exp neurons, fixed total numbers of synapses with multapses
and autapses, normal weights redrawn where the sign would flip, normal delays clipped below at dt,
Poisson background (one generator per population at K_ext x 8 Hz) and the DC compensation of
downscaled in-degrees.

Usage: python nest_microcircuit.py SCALE K_SCALE DURATION_MS DISCARD_MS THREADS SEED
"""

import json
import math
import resource
import sys
import time

import nest
import numpy as np

POPULATIONS = ("L23E", "L23I", "L4E", "L4I", "L5E", "L5I", "L6E", "L6I")
FULL_SIZES = (20683, 5834, 21915, 5479, 4850, 1065, 14395, 2948)
P = np.array(
    [
        [0.1009, 0.1689, 0.0437, 0.0818, 0.0323, 0.0, 0.0076, 0.0],
        [0.1346, 0.1371, 0.0316, 0.0515, 0.0755, 0.0, 0.0042, 0.0],
        [0.0077, 0.0059, 0.0497, 0.135, 0.0067, 0.0003, 0.0453, 0.0],
        [0.0691, 0.0029, 0.0794, 0.1597, 0.0033, 0.0, 0.1057, 0.0],
        [0.1004, 0.0622, 0.0505, 0.0057, 0.0831, 0.3726, 0.0204, 0.0],
        [0.0548, 0.0269, 0.0257, 0.0022, 0.06, 0.3158, 0.0086, 0.0],
        [0.0156, 0.0066, 0.0211, 0.0166, 0.0572, 0.0197, 0.0396, 0.2252],
        [0.0364, 0.001, 0.0034, 0.0005, 0.0277, 0.008, 0.0658, 0.1443],
    ]
)
K_EXT = np.array([1600, 1500, 2100, 1900, 2000, 1900, 2900, 2100])
RATES = np.array([0.971, 2.868, 4.746, 5.396, 8.142, 9.078, 0.991, 7.523])
C_M, TAU_M, TAU_SYN = 250.0, 10.0, 0.5


def isi_cvs(times, senders, n: int, min_spikes: int = 3) -> list:
    """Each neuron's ISI coefficient of variation, for neurons with at least ``min_spikes`` spikes."""
    order = np.lexsort((times, senders))
    times, senders = times[order], senders[order]
    same = senders[1:] == senders[:-1]
    isis, owner = (times[1:] - times[:-1])[same], senders[1:][same]
    count = np.bincount(owner, minlength=n).astype(float)
    total = np.bincount(owner, weights=isis, minlength=n)
    squares = np.bincount(owner, weights=isis**2, minlength=n)
    kept = count >= min_spikes - 1
    mean = total[kept] / count[kept]
    return (np.sqrt(np.clip(squares[kept] / count[kept] - mean**2, 0.0, None)) / mean).tolist()


def main() -> None:
    scale, k_scale, duration, discard = (float(x) for x in sys.argv[1:5])
    threads, seed = int(sys.argv[5]), int(sys.argv[6])
    dt = 0.1
    start = time.perf_counter()
    nest.set_verbosity("M_ERROR")
    nest.ResetKernel()
    nest.SetKernelStatus({"resolution": dt, "local_num_threads": threads, "rng_seed": seed, "print_time": False})
    full = np.array(FULL_SIZES, dtype=float)
    k_full = np.log(1.0 - P) / np.log(1.0 - 1.0 / np.outer(full, full))
    sizes = np.maximum(1, np.round(full * scale)).astype(int)
    counts = np.round(k_full * scale * k_scale).astype(int)
    sub = 1.0 / (TAU_SYN - TAU_M)
    frac = (TAU_M / TAU_SYN) ** sub
    psc_per_psp = 1.0 / (TAU_M * TAU_SYN / C_M * sub * (frac**TAU_M - frac**TAU_SYN))
    psc_full = np.full((8, 8), 0.15 * psc_per_psp)
    psc_full[:, 1::2] *= -4.0
    psc_full[0, 2] *= 2.0
    psc_ext_full = 0.15 * psc_per_psp
    psc, psc_ext = psc_full / math.sqrt(k_scale), psc_ext_full / math.sqrt(k_scale)
    recurrent = (psc_full * (k_full / full[:, None]) * RATES).sum(1)
    dc = 0.001 * TAU_SYN * (1.0 - math.sqrt(k_scale)) * (recurrent + psc_ext_full * K_EXT * 8.0)
    k_ext = np.maximum(1, np.round(K_EXT * k_scale)).astype(int)

    neuron = {
        "C_m": C_M,
        "tau_m": TAU_M,
        "E_L": -65.0,
        "V_th": -50.0,
        "V_reset": -65.0,
        "t_ref": 2.0,
        "tau_syn_ex": TAU_SYN,
        "tau_syn_in": TAU_SYN,
    }
    pops = []
    for index, size in enumerate(sizes):
        pop = nest.Create("iaf_psc_exp", int(size), params={**neuron, "I_e": float(dc[index])})
        pop.V_m = nest.random.normal(mean=-58.0, std=10.0)
        pops.append(pop)
    recorders = [nest.Create("spike_recorder", params={"start": discard}) for _ in pops]
    for pop, recorder in zip(pops, recorders):
        nest.Connect(pop, recorder)
    # NEST holds at most 2**27 - 2 connections per synapse model and thread: one copy of
    # static_synapse per source population keeps the full-scale network (0.3 billion) on one thread
    for name in POPULATIONS:
        nest.CopyModel("static_synapse", f"static_from_{name}")
    for target in range(8):
        generator = nest.Create("poisson_generator", params={"rate": 8.0 * float(k_ext[target])})
        nest.Connect(generator, pops[target], "all_to_all", {"weight": float(psc_ext), "delay": 1.5})
        for source in range(8):
            if counts[target, source] == 0:
                continue
            mean = float(psc[target, source])
            delay = 1.5 if source % 2 == 0 else 0.75
            weight = nest.math.redraw(
                nest.random.normal(mean=mean, std=abs(mean) * 0.1),
                min=0.0 if mean > 0 else -np.inf,
                max=np.inf if mean > 0 else 0.0,
            )
            nest.Connect(
                pops[source],
                pops[target],
                {
                    "rule": "fixed_total_number",
                    "N": int(counts[target, source]),
                    "allow_autapses": True,
                    "allow_multapses": True,
                },
                {
                    "synapse_model": f"static_from_{POPULATIONS[source]}",
                    "weight": weight,
                    "delay": nest.math.max(nest.random.normal(mean=delay, std=delay * 0.5), dt),
                },
            )
    build = time.perf_counter() - start
    start = time.perf_counter()
    nest.Simulate(duration)
    wall = time.perf_counter() - start
    seconds = (duration - discard) / 1000.0
    rates, counts_per_neuron, cvs = {}, {}, {}
    for name, pop, recorder in zip(POPULATIONS, pops, recorders):
        senders = np.asarray(recorder.events["senders"], dtype=int) - pop.tolist()[0]
        per_neuron = np.bincount(senders, minlength=len(pop))
        rates[name] = float(per_neuron.sum()) / len(pop) / seconds
        counts_per_neuron[name] = per_neuron.tolist()
        cvs[name] = isi_cvs(np.asarray(recorder.events["times"], dtype=float), senders, len(pop))
    print(
        json.dumps(
            {
                "build_seconds": build,
                "run_seconds": wall,
                "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                "rates_hz": rates,
                "counts": counts_per_neuron,
                "cvs": cvs,
                "synapses": int(counts.sum()),
                "nest": nest.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
