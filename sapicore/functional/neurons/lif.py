"""Leaky integrate-and-fire neuron with absolute refractory period and optional synaptic current."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..integrators import integrate
from ..pytree import check_above, check_non_negative, check_positive, parameter, pytree, replace
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

__all__ = ["LIF", "LIFState"]


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
    (nA), as for weighted input spikes. When ``v >= v_thresh`` after a step the neuron emits a spike
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

    def initial_values(self, shape: tuple[int, ...], zeros: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"v": full_state(self.v_rest, shape, zeros), "refractory_left": zeros.clone(), "i_syn": zeros.clone()}

    def step(self, state: LIFState, input: Any, dt: float) -> tuple[LIFState, torch.Tensor]:
        """Advance by ``dt`` ms with input current ``input`` (nA); return the new state and spikes."""
        dt = check_dt(dt)
        x = check_input(input, state.v)
        if self.tau_syn is None:
            i_syn = broadcast_like(x, state.v)
        else:
            decay = (
                torch.exp(-dt / self.tau_syn)
                if isinstance(self.tau_syn, torch.Tensor)
                else math.exp(-dt / self.tau_syn)
            )
            i_syn = state.i_syn * decay + x
        drive = self.v_rest + self.r_mem * i_syn
        (v,) = integrate(self.method, (state.v,), dt, relaxation=lambda y: ((self.tau_mem,), (drive,)))
        v = set_where(state.refractory_left > 0.5 * dt, self.v_reset, v)
        spikes, fired = threshold(v, self.v_thresh, self.surrogate, self.surrogate_slope)
        refractory_left = set_where(fired, self.t_ref, torch.clamp(state.refractory_left - dt, min=0.0))
        v = set_where(fired, self.v_reset, v)
        return replace(state, v=v, refractory_left=refractory_left, i_syn=i_syn), spikes
