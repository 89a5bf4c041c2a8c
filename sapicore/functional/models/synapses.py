"""Synaptic dynamics on the target side of a projection (units: ms, mV, nA, µS).

A synapse model turns the weighted spikes arriving at each target neuron in a step (``arrivals``:
nA for current synapses, µS for conductance synapses) into a current (nA) into that neuron:

* `Delta`: the arrivals act for one step only;
* `Exponential`: ``s <- s exp(-dt / tau) + arrivals``, exact for the decay;
* `DualExponential`: difference of two exponentials (rise ``tau_rise``, decay ``tau_decay``),
  normalised so that one arrival of weight w peaks at w;
* `Alpha`: the alpha function ``w e (t / tau) exp(-t / tau)``, which peaks at w when ``t = tau``
  (NEST's ``iaf_psc_alpha``, PyNN's ``IF_curr_alpha`` and ``IF_cond_alpha``).

With ``e_rev=None`` the synapse is current-based (the current is ``s``); with a reversal potential
``e_rev`` (mV) it is conductance-based, ``current = s * (e_rev - v)``, and weights must be >= 0.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import torch

from ..pytree import check_positive, is_concrete, parameter, pytree, replace

__all__ = [
    "SynapseModel",
    "Delta",
    "Exponential",
    "DualExponential",
    "Alpha",
    "SynapseState",
    "DualSynapseState",
    "AlphaState",
]


@pytree
class SynapseState:
    """s: synaptic current (nA) or conductance (µS) of each target neuron."""

    s: torch.Tensor


@pytree
class DualSynapseState:
    """decay, rise: the two exponentials whose difference ``s = decay - rise`` is the synaptic variable."""

    decay: torch.Tensor
    rise: torch.Tensor

    @property
    def s(self) -> torch.Tensor:
        """The synaptic current (nA) or conductance (µS): ``decay - rise``."""
        return self.decay - self.rise


@pytree
class AlphaState:
    """s: the synaptic variable (nA or µS, the alpha function's value); rise: the arrivals it has
    still to take up, decaying with the same time constant."""

    s: torch.Tensor
    rise: torch.Tensor


def _decay(dt: float, tau: Any) -> Any:
    return torch.exp(-dt / tau) if isinstance(tau, torch.Tensor) else math.exp(-dt / tau)


class SynapseModel:
    """Base class of synapse models: the interface a projection calls (units ms, mV, nA or µS).

    * ``init_state(zeros)``: the resting synaptic state, per target neuron (``zeros`` gives shape,
      device and dtype);
    * ``update(state, arrivals, dt)``: the state after ``dt`` ms, with this step's weighted arrivals;
    * ``current(state, v)``: the current (nA) into target neurons at membrane potential ``v`` (mV);
    * ``e_rev``: None for current-based synapses, else the reversal potential (mV) of a conductance.
    """

    e_rev: Any

    def init_state(self, zeros: torch.Tensor) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define init_state(zeros)")

    def update(self, state: Any, arrivals: torch.Tensor, dt: float) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define update(state, arrivals, dt)")

    def current(self, state: Any, v: Any) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define current(state, v)")

    @property
    def conductance_based(self) -> bool:
        return self.e_rev is not None

    def _current(self, s: torch.Tensor, v: Any) -> torch.Tensor:
        return s if self.e_rev is None else s * (self.e_rev - v)


@pytree
class Delta(SynapseModel):
    """Instantaneous synapse: the arrivals of a step are the synaptic variable of that step only."""

    e_rev: Any = parameter(None)

    def init_state(self, zeros: torch.Tensor) -> SynapseState:
        return SynapseState(zeros.clone())

    def update(self, state: SynapseState, arrivals: torch.Tensor, dt: float) -> SynapseState:
        return replace(state, s=arrivals)

    def current(self, state: SynapseState, v: Any) -> torch.Tensor:
        """Current (nA) into target neurons at membrane potential ``v`` (mV)."""
        return self._current(state.s, v)


@pytree
class Exponential(SynapseModel):
    """Exponentially decaying synapse: ``ds/dt = -s / tau`` plus jumps of the arriving weights."""

    tau: Any = parameter(5.0, check=check_positive)
    e_rev: Any = parameter(None)

    def init_state(self, zeros: torch.Tensor) -> SynapseState:
        return SynapseState(zeros.clone())

    def update(self, state: SynapseState, arrivals: torch.Tensor, dt: float) -> SynapseState:
        decay = _decay(dt, self.tau)
        if isinstance(decay, float):  # one op: arrivals + decay * s
            return replace(state, s=torch.add(arrivals, state.s, alpha=decay))
        return replace(state, s=state.s * decay + arrivals)

    def current(self, state: SynapseState, v: Any) -> torch.Tensor:
        """Current (nA) into target neurons at membrane potential ``v`` (mV)."""
        return self._current(state.s, v)


def _differs_from_rise(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """tau_decay > 0 and != tau_rise in every entry (equal times make the peak factor 0/0)."""
    check_positive(instance, attribute, value)
    rise = instance.tau_rise
    if (
        is_concrete(value) and is_concrete(rise) and bool((torch.as_tensor(value) == torch.as_tensor(rise)).any())
    ):  # sync-ok: validation
        raise ValueError(f"DualExponential needs tau_rise != tau_decay in every entry, got {rise} and {value}")


@pytree
class DualExponential(SynapseModel):
    """Difference of exponentials, ``s = decay - rise``; an arrival of weight w peaks at w."""

    tau_rise: Any = parameter(1.0, check=check_positive)
    tau_decay: Any = parameter(5.0, check=_differs_from_rise)
    e_rev: Any = parameter(None)

    def _peak_factor(self) -> Any:
        rise, decay = self.tau_rise, self.tau_decay
        if isinstance(rise, torch.Tensor) or isinstance(decay, torch.Tensor):
            rise, decay = torch.as_tensor(rise), torch.as_tensor(decay)
            t_peak = rise * decay / (decay - rise) * torch.log(decay / rise)
            return 1.0 / (torch.exp(-t_peak / decay) - torch.exp(-t_peak / rise))
        if rise == decay:
            raise ValueError("DualExponential needs tau_rise != tau_decay")
        t_peak = rise * decay / (decay - rise) * math.log(decay / rise)
        return 1.0 / (math.exp(-t_peak / decay) - math.exp(-t_peak / rise))

    def init_state(self, zeros: torch.Tensor) -> DualSynapseState:
        return DualSynapseState(zeros.clone(), zeros.clone())

    def update(self, state: DualSynapseState, arrivals: torch.Tensor, dt: float) -> DualSynapseState:
        jump = arrivals * self._peak_factor()
        return replace(
            state,
            decay=state.decay * _decay(dt, self.tau_decay) + jump,
            rise=state.rise * _decay(dt, self.tau_rise) + jump,
        )

    def current(self, state: DualSynapseState, v: Any) -> torch.Tensor:
        """Current (nA) into target neurons at membrane potential ``v`` (mV)."""
        return self._current(state.s, v)


@pytree
class Alpha(SynapseModel):
    """Alpha-function synapse: an arrival of weight w at time 0 gives ``s(t) = w e (t / tau) exp(-t / tau)``,
    0 at the arrival, peaking at w at ``t = tau`` (ms).

    Two variables with the same time constant, integrated exactly (the samples of the alpha function
    at every step): ``s <- exp(-dt / tau) (s + e dt / tau rise)``, ``rise <- exp(-dt / tau) rise + arrivals``.
    """

    tau: Any = parameter(5.0, check=check_positive)
    e_rev: Any = parameter(None)

    def init_state(self, zeros: torch.Tensor) -> AlphaState:
        return AlphaState(zeros.clone(), zeros.clone())

    def update(self, state: AlphaState, arrivals: torch.Tensor, dt: float) -> AlphaState:
        decay = _decay(dt, self.tau)
        gain = math.e * dt / self.tau
        return replace(state, s=(state.s + gain * state.rise) * decay, rise=state.rise * decay + arrivals)

    def current(self, state: AlphaState, v: Any) -> torch.Tensor:
        """Current (nA) into target neurons at membrane potential ``v`` (mV)."""
        return self._current(state.s, v)
