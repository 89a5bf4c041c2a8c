"""The COBA and CUBA benchmark networks of Brette et al. (2007), after Vogels & Abbott (2005).

4,000 LIF neurons (80% excitatory, 20% inhibitory), each pair connected with probability 2%
(or a fixed in-degree when scaling up), dt = 0.1 ms, refractory period 5 ms, threshold -50 mV,
reset -60 mV, membrane time constant 20 ms. In our units the leak conductance is 10 nS, so
``r_mem = 100 MΩ``.

* COBA: exponential conductance synapses, excitatory 6 nS (tau 5 ms, E_rev 0 mV), inhibitory 67 nS
  (tau 10 ms, E_rev -80 mV), rest -60 mV and a constant drive of 0.2 nA (20 mV over r_mem), initial
  potentials normal around -55 mV (sd 5 mV). It settles into asynchronous irregular firing near 20 Hz,
  as in Brian2's and BrainPy's versions of the benchmark.
* CUBA: exponential current synapses, excitatory 1.62 mV (tau 5 ms), inhibitory -9 mV (tau 10 ms)
  over r_mem, rest -49 mV, no drive, initial potentials uniform between reset and threshold.

As in Brian2's versions, the neurons are one population, ``neurons``, whose parts ``exc`` (the
first 80%) and ``inh`` (the rest) are the sources of two projections onto all neurons,
``excitatory`` and ``inhibitory``; records are still ``exc.spikes`` and ``inh.spikes``.
"""

from __future__ import annotations

import copy

import torch

import sapicore.functional as sf
from sapicore.functional import connectivity

__all__ = ["coba", "cuba", "initial_state"]

N_E_SHARE = 0.8


def _connect(n_pre: int, n_post: int, p: float, fan_in: int | None, seed: int) -> sf.Connectivity:
    if fan_in is None:
        return connectivity.fixed_probability(n_pre, n_post, p, seed=seed)
    return connectivity.fixed_in_degree(n_pre, n_post, fan_in, seed=seed)


def _scaled(n: int, fan_in: int | None) -> tuple[int, int, int | None, int | None]:
    """(excitatory, inhibitory) sizes and in-degrees for ``n`` neurons (80/20 split)."""
    n_exc = int(round(n * N_E_SHARE))
    # a fixed in-degree of k synapses per neuron splits 80/20 between the two sources
    exc_in = None if fan_in is None else int(round(fan_in * N_E_SHARE))
    return n_exc, n - n_exc, exc_in, None if fan_in is None else fan_in - exc_in


def _capacity(n_src: int) -> int:
    # the torch path (GPUs, gradients): at ~22 Hz about 0.2% of the neurons spike in a step (at most
    # 17 of 3,200 in a 1 s run of COBA-4k); the first step's burst of ~16% is rerun at full capacity
    return min(n_src, max(64, n_src // 50))


def coba(n: int = 4000, dt: float = 0.1, kind: str = "sparse", seed: int = 1, fan_in: int | None = None) -> sf.Network:
    """The COBA network of the shipped spec ``sapicore/specs/coba.yaml`` (its one definition), scaled
    to ``n`` neurons: connection probability as in the spec (or ``fan_in`` synapses per neuron),
    ``kind`` of projection, connectivity seeds ``seed`` to ``seed + 3``. ``coba()`` equals the spec."""
    from sapicore.spec import load_data, parse_spec

    source, data = load_data("coba")
    data = copy.deepcopy(data)
    n_exc, n_inh, exc_in, inh_in = _scaled(n, fan_in)
    sizes = {"exc": n_exc, "inh": n_inh}
    data["simulation"]["dt"] = dt
    data["populations"]["neurons"].update(size=n, parts=sizes)
    for proj in data["projections"].values():
        rule = proj["connectivity"]
        shift = seed - 1  # the spec's seeds are 1 and 2
        if fan_in is None:
            proj["connectivity"] = {**rule, "seed": rule["seed"] + shift}
        else:
            k = exc_in if proj["source"] == "exc" else inh_in
            proj["connectivity"] = {"rule": "fixed_in_degree", "k": k, "seed": rule["seed"] + shift}
        proj["representation"] = kind
        proj["capacity"] = _capacity(sizes[proj["source"]])
    return parse_spec(data, source).network


def cuba(n: int = 4000, dt: float = 0.1, kind: str = "sparse", seed: int = 1, fan_in: int | None = None) -> sf.Network:
    """The CUBA network: ``n`` neurons, connection probability 2% (or ``fan_in`` synapses each)."""
    n_exc, n_inh, exc_in, inh_in = _scaled(n, fan_in)
    lif = sf.LIF(tau_mem=20.0, v_rest=-49.0, v_reset=-60.0, v_thresh=-50.0, r_mem=100.0, t_ref=5.0)
    projections = {}
    for name, (src, n_src, synapse, weight, fan) in {
        "excitatory": ("exc", n_exc, sf.Exponential(tau=5.0), 1.62 / 100.0, exc_in),  # nA: mV over r_mem
        "inhibitory": ("inh", n_inh, sf.Exponential(tau=10.0), -9.0 / 100.0, inh_in),
    }.items():
        conn = _connect(n_src, n, 0.02, fan, seed + len(projections))
        projections[name] = sf.projection(
            src, "neurons", conn, weight, synapse, dt=dt, kind=kind, capacity=_capacity(n_src)
        )
    population = sf.Population(lif, n, parts={"exc": n_exc, "inh": n_inh})
    return sf.Network(populations={"neurons": population}, projections=projections)


def initial_state(net: sf.Network, seed: int = 0, device: torch.device | str | None = None) -> sf.NetworkState:
    """The benchmark's random initial potentials: COBA normal(-55, 5) mV; CUBA uniform(-60, -50) mV."""
    generator = torch.Generator().manual_seed(seed)
    state = net.init_state(device=device)
    populations = {}
    for name, pop_state in state.populations.items():
        size = net.populations[name].size
        if net.drive:  # COBA
            v = -55.0 + 5.0 * torch.randn(size, generator=generator)
        else:
            v = -60.0 + 10.0 * torch.rand(size, generator=generator)
        populations[name] = sf.replace(pop_state, v=v.to(device=pop_state.v.device, dtype=pop_state.v.dtype))
    return sf.replace(state, populations=populations)
