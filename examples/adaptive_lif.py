"""A neuron model of your own: an adaptive LIF, used in simulate, sweep, grad, a Network and fast=True.

Run:  python examples/adaptive_lif.py [--duration 500]

The model (units ms, mV, nA, MΩ)::

    tau_mem dv/dt = -(v - v_rest) + r_mem (I - w)        tau_w dw/dt = -w
    v >= v_thresh:  spike, v -> v_reset, w -> w + b

is a ``@sf.pytree`` class whose fields are its parameters, with a state class, ``initial_values``
and a pure ``step``: the contract of ``sapicore.functional.NeuronModel``. Everything else (records,
lanes, gradients, networks, compiled chunks) comes from the core. The script prints how the
adaptation current lengthens the inter-spike intervals, the rate of each lane of a sweep over ``b``,
the gradient of the mean potential with respect to ``tau_w``, and the output rate of a small network
of these neurons run eagerly and compiled.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import torch

import sapicore.functional as sf
from sapicore.functional import connectivity


# --8<-- [start:model]
@sf.pytree
class AdaptiveLIFState:
    """v: membrane potential (mV); w: adaptation current (nA)."""

    v: torch.Tensor
    w: torch.Tensor


@sf.pytree
class AdaptiveLIF(sf.NeuronModel):
    """LIF with a spike-triggered adaptation current ``w`` (see the module docstring)."""

    tau_mem: Any = sf.parameter(20.0, check=sf.check_positive)  # ms
    tau_w: Any = sf.parameter(100.0, check=sf.check_positive)  # ms
    v_rest: Any = sf.parameter(-65.0)  # mV
    v_reset: Any = sf.parameter(-65.0)  # mV
    v_thresh: Any = sf.parameter(-50.0)  # mV
    r_mem: Any = sf.parameter(10.0, check=sf.check_positive)  # MΩ
    b: Any = sf.parameter(0.2, check=sf.check_non_negative)  # nA added to w at each spike

    state_class = AdaptiveLIFState

    def initial_values(self, shape: tuple[int, ...], zeros: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"v": zeros + self.v_rest, "w": zeros.clone()}

    def step(self, state: AdaptiveLIFState, input: Any, dt: float) -> tuple[AdaptiveLIFState, torch.Tensor]:
        current = sf.check_input(input, state.v)
        target = self.v_rest + self.r_mem * (current - state.w)  # mV the membrane relaxes to
        decay = (
            torch.exp(-dt / self.tau_mem) if isinstance(self.tau_mem, torch.Tensor) else math.exp(-dt / self.tau_mem)
        )
        v = target + (state.v - target) * decay  # exact for a current constant over the step
        spikes, fired = sf.threshold(v, self.v_thresh)  # a surrogate gradient where one can flow
        w_decay = torch.exp(-dt / self.tau_w) if isinstance(self.tau_w, torch.Tensor) else math.exp(-dt / self.tau_w)
        w = state.w * w_decay + self.b * spikes
        v = torch.where(fired, self.v_reset, v)
        return sf.replace(state, v=v, w=w), spikes


# --8<-- [end:model]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=500.0, help="biological time of each run (ms)")
    args = parser.parse_args()
    dt, duration = 0.1, args.duration
    model = AdaptiveLIF()

    # simulate: intervals lengthen as w builds up
    _, rec = sf.simulate(model, model.init_state(1), inputs=2.5, duration=duration, dt=dt, record=("spikes", "w"))
    times = rec["t"][rec["spikes"][:, 0] > 0]
    intervals = torch.diff(times)
    print(f"simulate: {times.numel()} spikes, first interval {intervals[0]:.1f} ms, last {intervals[-1]:.1f} ms")

    # sweep: one lane per adaptation strength
    lanes, labels = sf.grid(model, b=[0.0, 0.1, 0.2, 0.4])
    _, rec = sf.sweep(lanes, inputs=2.5, duration=duration, dt=dt, shape=1, record=("spikes",))
    rates = rec["spikes"].sum((1, 2)) / (duration / 1000.0)
    print("sweep: " + ", ".join(f"b={label['b']} nA: {rate:.0f} Hz" for label, rate in zip(labels, rates.tolist())))

    # grad: the mean potential's sensitivity to the adaptation time constant (surrogate gradients)
    def mean_v(tau_w: torch.Tensor) -> torch.Tensor:
        adapted = sf.replace(model, tau_w=tau_w)
        _, rec = sf.simulate(adapted, adapted.init_state(1), inputs=2.5, duration=duration, dt=dt, record="v")
        return rec["v"].mean()

    print(f"grad: d mean(v) / d tau_w = {torch.func.grad(mean_v)(torch.tensor(100.0)):.4f} mV/ms")

    # a Network of these neurons, eagerly and compiled
    net = sf.Network(
        populations={"inp": sf.Population(sf.PoissonSource(rate=40.0), 200), "out": sf.Population(model, 20)},
        projections={
            "syn": sf.projection(
                "inp", "out", connectivity.fixed_probability(200, 20, 0.2, seed=1), 0.4, sf.Exponential(tau=5.0), dt=dt
            )
        },
    )
    seconds = duration / 1000.0
    for fast in (False, "aot_eager"):
        torch.manual_seed(0)
        _, rec = sf.simulate(net, net.init_state(), duration=duration, dt=dt, fast=fast, record=("out.spikes",))
        print(f"network (fast={fast}): output rate {rec['out.spikes'].sum() / 20 / seconds:.1f} Hz")


if __name__ == "__main__":
    main()
