"""A population of LIF neurons driven by graded constant currents: f-I curve, raster and summary.

Run:  python examples/lif_population.py --out outputs/lif_population

Writes into the output folder:
  raster.png      spike raster of the population (one row per neuron, current rising upwards)
  fi_curve.png    simulated firing rate against input current, with the analytic curve
  summary.json    parameters, wall time, rates and the largest deviation from the analytic rate
It also runs a three-lane sweep over tau_mem (one vmapped call) and reports each lane's mean rate.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import sapicore.functional as sf  # noqa: E402


def analytic_rate(model: sf.LIF, current: float) -> float:
    """Firing rate (Hz) of a LIF neuron for a constant current (nA); 0 below rheobase."""
    drive = model.v_rest + model.r_mem * current
    if drive <= model.v_thresh:
        return 0.0
    period = model.t_ref + model.tau_mem * math.log((drive - model.v_reset) / (drive - model.v_thresh))
    return 1000.0 / period


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/lif_population", help="output folder")
    parser.add_argument("--neurons", type=int, default=200)
    parser.add_argument("--duration", type=float, default=1000.0, help="biological time (ms)")
    parser.add_argument("--dt", type=float, default=0.1, help="time step (ms)")
    parser.add_argument("--max-current", type=float, default=4.0, help="largest input current (nA)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    model = sf.LIF(tau_mem=20.0, v_rest=-65.0, v_reset=-65.0, v_thresh=-50.0, r_mem=10.0, t_ref=2.0)
    currents = torch.linspace(0.0, args.max_current, args.neurons)
    state = model.init_state(args.neurons)
    start = time.perf_counter()
    _, rec = sf.simulate(
        model, state, inputs=lambda t: currents, duration=args.duration, dt=args.dt, record=("spikes",)
    )
    wall = time.perf_counter() - start

    seconds = args.duration / 1000.0
    rates = rec["spikes"].sum(0) / seconds
    expected = torch.tensor([analytic_rate(model, i) for i in currents.tolist()])
    # the rate from inter-spike intervals is free of the counting error of a finite window
    deviation = 0.0
    for i in range(args.neurons):
        times = rec["t"][rec["spikes"][:, i] > 0]
        if len(times) >= 3:
            isi_rate = 1000.0 * (len(times) - 1) / (times[-1] - times[0]).item()
            deviation = max(deviation, abs(isi_rate - expected[i].item()) / expected[i].item())

    lanes, labels = sf.grid(model, tau_mem=[10.0, 20.0, 40.0])
    start = time.perf_counter()
    _, sweep_rec = sf.sweep(lanes, inputs=lambda t: currents, duration=args.duration, dt=args.dt, shape=args.neurons)
    sweep_wall = time.perf_counter() - start
    lane_rates = (sweep_rec["spikes"].sum(1) / seconds).mean(1)

    steps, neuron = torch.nonzero(rec["spikes"], as_tuple=True)
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.scatter(rec["t"][steps], neuron, s=1, c="k")
    ax.set(xlabel="time (ms)", ylabel="neuron (input current rising)", title="LIF population raster")
    fig.savefig(out / "raster.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(currents, expected, "r-", label="analytic")
    ax.plot(currents, rates, "k.", ms=3, label="simulated")
    ax.set(xlabel="input current (nA)", ylabel="rate (Hz)", title="f-I curve")
    ax.legend()
    fig.savefig(out / "fi_curve.png", dpi=120)
    plt.close(fig)

    summary = {
        "model": repr(model),
        "neurons": args.neurons,
        "duration_ms": args.duration,
        "dt_ms": args.dt,
        "wall_seconds": round(wall, 3),
        "mean_rate_hz": rates.mean().item(),
        "max_rate_hz": rates.max().item(),
        "max_relative_deviation_of_isi_rate_from_analytic": deviation,
        "sweep_wall_seconds": round(sweep_wall, 3),
        "sweep": [{**label, "mean_rate_hz": rate} for label, rate in zip(labels, lane_rates.tolist())],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    print(f"wrote {out / 'raster.png'}, {out / 'fi_curve.png'} and {out / 'summary.json'}")


if __name__ == "__main__":
    main()
