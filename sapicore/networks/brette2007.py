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
"""

from __future__ import annotations

import torch

import sapicore.functional as sf
from sapicore.functional import connectivity

__all__ = ["coba", "cuba", "initial_state"]

N_E_SHARE = 0.8


def _lif(v_rest: float) -> sf.LIF:
    return sf.LIF(tau_mem=20.0, v_rest=v_rest, v_reset=-60.0, v_thresh=-50.0, r_mem=100.0, t_ref=5.0)


def _connect(n_pre: int, n_post: int, p: float, fan_in: int | None, seed: int) -> sf.Connectivity:
    if fan_in is None:
        return connectivity.fixed_probability(n_pre, n_post, p, seed=seed)
    return connectivity.fixed_in_degree(n_pre, n_post, fan_in, seed=seed)


def _network(n: int, dt: float, kind: str, seed: int, fan_in: int | None, conductance: bool) -> sf.Network:
    n_exc = int(round(n * N_E_SHARE))
    n_inh = n - n_exc
    # a fixed in-degree of k synapses per neuron splits 80/20 between the two sources
    exc_in = None if fan_in is None else int(round(fan_in * N_E_SHARE))
    inh_in = None if fan_in is None else fan_in - exc_in
    if conductance:
        exc_syn, inh_syn = sf.Exponential(tau=5.0, e_rev=0.0), sf.Exponential(tau=10.0, e_rev=-80.0)
        w_exc, w_inh = 0.006, 0.067  # µS
        lif, drive = _lif(-60.0), 0.2
    else:
        exc_syn, inh_syn = sf.Exponential(tau=5.0), sf.Exponential(tau=10.0)
        w_exc, w_inh = 1.62 / 100.0, -9.0 / 100.0  # nA: mV over r_mem
        lif, drive = _lif(-49.0), None
    # capacity (the torch path: GPUs, gradients): at ~22 Hz about 0.2% of the neurons spike in a step
    # (at most 17 of 3,200 in a 1 s run of COBA-4k); the first step's burst of ~16% is rerun by the
    # steppers at full capacity
    cap_exc, cap_inh = min(n_exc, max(64, n_exc // 50)), min(n_inh, max(64, n_inh // 50))
    projections = {}
    for name, (src, n_src, dst, n_dst, syn, w, fan, cap) in {
        "ee": ("exc", n_exc, "exc", n_exc, exc_syn, w_exc, exc_in, cap_exc),
        "ei": ("exc", n_exc, "inh", n_inh, exc_syn, w_exc, exc_in, cap_exc),
        "ie": ("inh", n_inh, "exc", n_exc, inh_syn, w_inh, inh_in, cap_inh),
        "ii": ("inh", n_inh, "inh", n_inh, inh_syn, w_inh, inh_in, cap_inh),
    }.items():
        conn = _connect(n_src, n_dst, 0.02, fan, seed + len(projections))
        projections[name] = sf.projection(src, dst, conn, w, syn, dt=dt, kind=kind, capacity=cap)
    return sf.Network(
        populations={"exc": sf.Population(lif, n_exc), "inh": sf.Population(lif, n_inh)},
        projections=projections,
        drive={} if drive is None else {"exc": drive, "inh": drive},
    )


def coba(n: int = 4000, dt: float = 0.1, kind: str = "sparse", seed: int = 1, fan_in: int | None = None) -> sf.Network:
    """The COBA network: ``n`` neurons, connection probability 2% (or ``fan_in`` synapses each)."""
    return _network(n, dt, kind, seed, fan_in, conductance=True)


def cuba(n: int = 4000, dt: float = 0.1, kind: str = "sparse", seed: int = 1, fan_in: int | None = None) -> sf.Network:
    """The CUBA network: ``n`` neurons, connection probability 2% (or ``fan_in`` synapses each)."""
    return _network(n, dt, kind, seed, fan_in, conductance=False)


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
