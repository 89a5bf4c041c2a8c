"""Leaky integrate-and-fire neuron with absolute refractory period and optional synaptic current."""

from __future__ import annotations

import math
from typing import Any

import torch

from ...pytree import check_above, check_non_negative, check_positive, is_concrete, parameter, pytree, replace
from ..integrators import integrate
from ..spikes import threshold
from .base import (
    NeuronModel,
    broadcast_like,
    check_dt,
    check_input,
    full_state,
    method_field,
    set_where,
    surrogate_field,
)

__all__ = ["LIF", "LIFState", "decay_factor"]


def decay_factor(method: str, h: Any) -> Any:
    """The factor by which ``dx/dt = -x / tau`` shrinks ``x`` over one step of the named integration
    method, with ``h = dt / tau`` (a number or a tensor)."""
    if method == "euler":
        return 1.0 - h
    if method == "rk4":
        return 1.0 - h + h * h / 2.0 - h**3 / 6.0 + h**4 / 24.0
    return torch.exp(-h) if isinstance(h, torch.Tensor) else math.exp(-h)


@pytree
class LIFState:
    """State of a LIF population.

    v: membrane potential (mV); refractory_left: time left in the refractory period (ms);
    i_syn: the current that charged the membrane in the last step (nA).
    """

    v: torch.Tensor
    refractory_left: torch.Tensor
    i_syn: torch.Tensor


@pytree
class LIF(NeuronModel):
    r"""Leaky integrate-and-fire neuron (units: ms, mV, nA, MΩ).

    .. math::

        \tau_{mem} \frac{dv}{dt} = -(v - v_{rest}) + r_{mem} i_{syn}

    Without ``tau_syn`` the input of a step is the current ``i_syn`` (nA). With ``tau_syn`` (ms) the
    current decays, ``di_syn/dt = -i_syn / tau_syn``, and each step's input is added to it as a jump
    (nA), as for weighted input spikes: ``i_syn <- a i_syn + input``, then the membrane integrates
    with the new ``i_syn``. The decay ``a`` follows ``method`` (``h = dt / tau_syn``): exactly
    ``exp(-h)`` for exponential Euler, ``1 - h`` for Euler (NIR's ``CubaLIF`` as snnTorch and Norse
    step it: the same spikes) and ``1 - h + h^2/2 - h^3/6 + h^4/24`` for RK4. When ``v >= v_thresh`` after a step the neuron emits a spike
    (1.0), ``v`` is set to ``v_reset`` and held there for ``t_ref`` ms (``round(t_ref / dt)`` steps).

    The default method, exponential Euler, integrates the membrane exactly for a current constant over
    the step. For constant suprathreshold current the firing rate is
    ``1 / (t_ref + tau_mem * ln((v_rest + r_mem I - v_reset) / (v_rest + r_mem I - v_thresh)))``.

    Parameters may be Python floats, 0-d tensors or tensors broadcasting to the population shape.

    Attributes:
        tau_mem: membrane time constant (ms), > 0.
        v_rest: resting potential (mV).
        v_reset: potential after a spike (mV).
        v_thresh: spike threshold (mV), above ``v_reset``.
        r_mem: membrane resistance (MΩ); ``r_mem * i`` is in mV for ``i`` in nA.
        t_ref: absolute refractory period (ms), >= 0.
        tau_syn: synaptic current time constant (ms), or ``None`` for input current used directly.
        method: 'exponential_euler' (default), 'euler' or 'rk4' (alias 'runge_kutta').
        surrogate: surrogate gradient of the spike ('fast_sigmoid', 'arctan', 'triangle', 'sigmoid').
        surrogate_slope: its sharpness (1/mV).
    """

    tau_mem: Any = parameter(20.0, check=check_positive)
    v_rest: Any = parameter(-65.0)
    v_reset: Any = parameter(-65.0)
    v_thresh: Any = parameter(-50.0, check=check_above("v_reset"))
    r_mem: Any = parameter(10.0, check=check_positive)
    t_ref: Any = parameter(2.0, check=check_non_negative)
    tau_syn: Any = parameter(None, check=check_positive)
    method: str = method_field("exponential_euler")
    surrogate: str = surrogate_field()
    surrogate_slope: Any = parameter(1.0, check=check_positive)

    state_class = LIFState
    output_is_binary = True

    def initial_values(self, shape: tuple[int, ...], zeros: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"v": full_state(self.v_rest, shape, zeros), "refractory_left": zeros.clone(), "i_syn": zeros.clone()}

    def check_step(self, dt: float) -> None:
        """Refuse a step at which the method's decay factor over one step (``decay_factor``) leaves
        [0, 1) for the membrane or the synaptic current: the variable would flip sign every step
        (Euler with ``dt > tau``) or grow (RK4 with ``dt > 2.78 tau``)."""
        for name in ("tau_mem", "tau_syn"):
            tau = getattr(self, name)
            if tau is None or (isinstance(tau, torch.Tensor) and (not is_concrete(tau) or tau.numel() == 0)):
                continue
            factor = torch.as_tensor(decay_factor(self.method, dt / torch.as_tensor(tau, dtype=torch.float64)))
            if not bool(((factor >= 0) & (factor < 1)).all()):  # sync-ok: once, before a run
                shortest = float(torch.as_tensor(tau).min())  # sync-ok: once, before a run
                raise ValueError(
                    f"dt={dt} ms is too long for method={self.method!r} with {name} down to {shortest:g} ms: its "
                    "decay factor over a step leaves [0, 1); shorten dt or use method='exponential_euler'"
                )

    def step(self, state: LIFState, input: Any, dt: float) -> tuple[LIFState, torch.Tensor]:
        """Advance by ``dt`` ms with input current ``input`` (nA); return the new state and spikes."""
        dt = check_dt(dt)
        x = check_input(input, state.v)
        if self.tau_syn is None:
            i_syn = broadcast_like(x, state.v)
        else:
            i_syn = state.i_syn * decay_factor(self.method, dt / self.tau_syn) + x
        drive = self.v_rest + self.r_mem * i_syn
        (v,) = integrate(self.method, (state.v,), dt, relaxation=lambda y: ((self.tau_mem,), (drive,)))
        v = set_where(state.refractory_left > 0.5 * dt, self.v_reset, v)
        spikes, fired = threshold(v, self.v_thresh, self.surrogate, self.surrogate_slope)
        refractory_left = set_where(fired, self.t_ref, torch.clamp(state.refractory_left - dt, min=0.0))
        v = set_where(fired, self.v_reset, v)
        return replace(state, v=v, refractory_left=refractory_left, i_syn=i_syn), spikes
