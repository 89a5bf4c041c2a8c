"""Adaptive exponential integrate-and-fire neuron (Brette & Gerstner 2005)."""

from __future__ import annotations

from typing import Any

import torch

from ...pytree import check_above, check_non_negative, check_positive, parameter, pytree, replace
from ..integrators import integrate
from ..spikes import spike
from .base import NeuronModel, check_dt, check_input, full_state, method_field, set_where, surrogate_field

__all__ = ["AdEx", "AdExState"]


@pytree
class AdExState:
    """State of an AdEx population: v, membrane potential (mV); w, adaptation current (nA);
    refractory_left, time left in the refractory period (ms)."""

    v: torch.Tensor
    w: torch.Tensor
    refractory_left: torch.Tensor


@pytree
class AdEx(NeuronModel):
    r"""Adaptive exponential integrate-and-fire neuron (units: ms, mV, nA, µS, nF).

    .. math::

        C \frac{dv}{dt} = -g_L (v - E_L) + g_L \Delta_T e^{(v - V_T)/\Delta_T} - w + I

        \tau_w \frac{dw}{dt} = a (v - E_L) - w

    When ``v >= v_peak``: a spike, ``v <- v_reset`` and ``w <- w + b``. Defaults are the paper's
    (C = 281 pF, g_L = 30 nS, E_L = -70.6 mV, V_T = -50.4 mV, Delta_T = 2 mV, tau_w = 144 ms,
    a = 4 nS, b = 0.0805 nA), written in nF and µS so that currents are in nA; ``v_peak`` is
    V_T + 5 Delta_T. The exponential's argument is capped at ``v_peak`` so that a step never overflows.

    Attributes:
        c_mem: membrane capacitance (nF). g_leak: leak conductance (µS). e_leak: leak reversal (mV).
        v_thresh: V_T, the exponential threshold (mV). delta_t: slope factor Delta_T (mV), > 0.
        tau_w: adaptation time constant (ms). a: subthreshold adaptation (µS).
        b: spike-triggered adaptation increment (nA). v_reset: reset potential (mV).
        v_peak: spike detection potential (mV).
        t_ref: refractory period (ms), >= 0: after a spike ``v`` is held at ``v_reset`` for
            ``round(t_ref / dt)`` steps while ``w`` goes on relaxing (NEST's ``aeif_cond_*``).
        method: 'exponential_euler' (default), 'euler' or 'rk4'.
        surrogate, surrogate_slope: surrogate gradient of the spike (see ``sapicore.functional.spike``).
    """

    c_mem: Any = parameter(0.281, check=check_positive)
    g_leak: Any = parameter(0.030, check=check_positive)
    e_leak: Any = parameter(-70.6)
    v_thresh: Any = parameter(-50.4)
    delta_t: Any = parameter(2.0, check=check_positive)
    tau_w: Any = parameter(144.0, check=check_positive)
    a: Any = parameter(0.004)
    b: Any = parameter(0.0805)
    v_reset: Any = parameter(-70.6)
    v_peak: Any = parameter(-40.4, check=check_above("v_reset"))  # else it would fire at every step
    t_ref: Any = parameter(0.0, check=check_non_negative)
    method: str = method_field("exponential_euler")
    surrogate: str = surrogate_field()
    surrogate_slope: Any = parameter(1.0, check=check_positive)

    state_class = AdExState
    output_is_binary = True

    def initial_values(self, shape: tuple[int, ...], zeros: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"v": full_state(self.e_leak, shape, zeros), "w": zeros.clone(), "refractory_left": zeros.clone()}

    def _relaxation(self, current: Any) -> Any:
        def relaxation(y: tuple[torch.Tensor, torch.Tensor]) -> tuple[tuple, tuple]:
            v, w = y
            exponent = (torch.clamp(v, max=self.v_peak) - self.v_thresh) / self.delta_t
            v_inf = self.e_leak + self.delta_t * torch.exp(exponent) + (current - w) / self.g_leak
            w_inf = self.a * (v - self.e_leak)
            return (self.c_mem / self.g_leak, self.tau_w), (v_inf, w_inf)

        return relaxation

    def step(self, state: AdExState, input: Any, dt: float) -> tuple[AdExState, torch.Tensor]:
        """Advance by ``dt`` ms with input current ``input`` (nA); return the new state and spikes."""
        dt = check_dt(dt)
        x = check_input(input, state.v)
        v, w = integrate(self.method, (state.v, state.w), dt, relaxation=self._relaxation(x))
        refractory = not (isinstance(self.t_ref, (int, float)) and self.t_ref == 0)
        if refractory:
            v = set_where(state.refractory_left > 0.5 * dt, self.v_reset, v)
        spikes = spike(v - self.v_peak, self.surrogate, self.surrogate_slope)
        fired = spikes > 0
        v = set_where(fired, self.v_reset, v)
        w = w + self.b * spikes
        refractory_left = state.refractory_left
        if refractory:
            refractory_left = set_where(fired, self.t_ref, torch.clamp(state.refractory_left - dt, min=0.0))
        return replace(state, v=v, w=w, refractory_left=refractory_left), spikes
