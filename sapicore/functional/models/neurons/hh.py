"""Hodgkin-Huxley (1952) squid giant axon, in the modern convention with rest near -65 mV."""

from __future__ import annotations

from typing import Any

import torch

from ...pytree import check_positive, parameter, pytree, replace
from ..integrators import integrate
from ..spikes import spike
from .base import NeuronModel, check_dt, check_input, full_state, method_field, surrogate_field

__all__ = ["HodgkinHuxley", "HodgkinHuxleyState", "TraubMiles"]


@pytree
class HodgkinHuxleyState:
    """State of a Hodgkin-Huxley population: v (mV) and the gating variables m, h, n (dimensionless)."""

    v: torch.Tensor
    m: torch.Tensor
    h: torch.Tensor
    n: torch.Tensor


def _x_over_one_minus_exp(x: torch.Tensor) -> torch.Tensor:
    """``x / (1 - exp(-x))``, finite with a finite gradient at ``x = 0`` (where it equals 1)."""
    small = x.abs() < 1e-4
    safe = torch.where(small, torch.ones_like(x), x)
    return torch.where(small, 1.0 + 0.5 * x, safe / -torch.expm1(-safe))


def _rates(v: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Opening and closing rates (1/ms) of m, h, n at potential ``v`` (mV)."""
    alpha_m = _x_over_one_minus_exp((v + 40.0) / 10.0)
    beta_m = 4.0 * torch.exp(-(v + 65.0) / 18.0)
    alpha_h = 0.07 * torch.exp(-(v + 65.0) / 20.0)
    beta_h = torch.sigmoid((v + 35.0) / 10.0)
    alpha_n = 0.1 * _x_over_one_minus_exp((v + 55.0) / 10.0)
    beta_n = 0.125 * torch.exp(-(v + 65.0) / 80.0)
    return alpha_m, beta_m, alpha_h, beta_h, alpha_n, beta_n


@pytree
class HodgkinHuxley(NeuronModel):
    r"""Hodgkin-Huxley neuron, classic squid-axon parameters (units per membrane area: ms, mV,
    µF/cm², mS/cm², µA/cm²).

    .. math::

        C \frac{dv}{dt} = I - g_{Na} m^3 h (v - E_{Na}) - g_K n^4 (v - E_K) - g_L (v - E_L)

        \frac{dx}{dt} = \alpha_x(v) (1 - x) - \beta_x(v) x, \quad x \in \{m, h, n\}

    with alpha_m = 0.1 (v+40) / (1 - exp(-(v+40)/10)), beta_m = 4 exp(-(v+65)/18),
    alpha_h = 0.07 exp(-(v+65)/20), beta_h = 1 / (1 + exp(-(v+35)/10)),
    alpha_n = 0.01 (v+55) / (1 - exp(-(v+55)/10)), beta_n = 0.125 exp(-(v+65)/80).

    The output is a spike (1.0) in the step where ``v`` crosses ``v_spike`` upwards; the state is not
    reset. The default method, exponential Euler, is the Rush-Larsen scheme for the gates with ``v``
    relaxing towards its instantaneous equilibrium; use dt <= 0.025 ms ('rk4' also available).
    The input is a current density (µA/cm²); 10 µA/cm² gives repetitive firing near 70 Hz.
    """

    c_mem: Any = parameter(1.0, check=check_positive)
    g_na: Any = parameter(120.0, check=check_positive)
    g_k: Any = parameter(36.0, check=check_positive)
    g_leak: Any = parameter(0.3, check=check_positive)
    e_na: Any = parameter(50.0)
    e_k: Any = parameter(-77.0)
    e_leak: Any = parameter(-54.387)
    v_spike: Any = parameter(0.0)
    v_init: Any = parameter(-65.0)
    method: str = method_field("exponential_euler")
    surrogate: str = surrogate_field()
    surrogate_slope: Any = parameter(1.0, check=check_positive)

    state_class = HodgkinHuxleyState
    output_is_binary = True

    def initial_values(self, shape: tuple[int, ...], zeros: torch.Tensor) -> dict[str, torch.Tensor]:
        v = full_state(self.v_init, shape, zeros)
        am, bm, ah, bh, an, bn = self.rates(v)
        return {"v": v, "m": am / (am + bm), "h": ah / (ah + bh), "n": an / (an + bn)}

    def rates(self, v: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Opening and closing rates (1/ms) of m, h, n at potential ``v`` (mV)."""
        return _rates(v)

    def _relaxation(self, current: Any) -> Any:
        def relaxation(y: tuple[torch.Tensor, ...]) -> tuple[tuple, tuple]:
            v, m, h, n = y
            g_na = self.g_na * m**3 * h
            g_k = self.g_k * n**4
            g_total = g_na + g_k + self.g_leak
            v_inf = (g_na * self.e_na + g_k * self.e_k + self.g_leak * self.e_leak + current) / g_total
            am, bm, ah, bh, an, bn = self.rates(v)
            taus = (self.c_mem / g_total, 1.0 / (am + bm), 1.0 / (ah + bh), 1.0 / (an + bn))
            return taus, (v_inf, am * taus[1], ah * taus[2], an * taus[3])

        return relaxation

    def step(self, state: HodgkinHuxleyState, input: Any, dt: float) -> tuple[HodgkinHuxleyState, torch.Tensor]:
        """Advance by ``dt`` ms with input current density ``input`` (µA/cm²); return state and spikes."""
        dt = check_dt(dt)
        x = check_input(input, state.v)
        y = (state.v, state.m, state.h, state.n)
        v, m, h, n = integrate(self.method, y, dt, relaxation=self._relaxation(x))
        crossed = spike(v - self.v_spike, self.surrogate, self.surrogate_slope)
        spikes = crossed * (state.v < self.v_spike).to(v.dtype)
        return replace(state, v=v, m=m, h=h, n=n), spikes


@pytree
class TraubMiles(HodgkinHuxley):
    r"""Traub & Miles (1991) Hodgkin-Huxley-type neuron of the hippocampus, for a whole cell (units:
    ms, mV, nF, µS, nA): NEST's ``hh_cond_exp_traub`` and PyNN's ``HH_cond_exp``.

    The membrane equation is `HodgkinHuxley`'s; the rates (1/ms) depend on ``u = v - v_offset``:
    alpha_m = 0.32 (13 - u) / (exp((13 - u)/4) - 1), beta_m = 0.28 (u - 40) / (exp((u - 40)/5) - 1),
    alpha_h = 0.128 exp((17 - u)/18), beta_h = 4 / (1 + exp((40 - u)/5)),
    alpha_n = 0.032 (15 - u) / (exp((15 - u)/5) - 1), beta_n = 0.5 exp((10 - u)/40).
    A spike is an upward crossing of ``v_spike`` (-40 mV, pyNN.brian2's threshold); the input is a
    current (nA). Use dt <= 0.01 ms.
    """

    c_mem: Any = parameter(0.2, check=check_positive)
    g_na: Any = parameter(20.0, check=check_positive)
    g_k: Any = parameter(6.0, check=check_positive)
    g_leak: Any = parameter(0.01, check=check_positive)
    e_na: Any = parameter(50.0)
    e_k: Any = parameter(-90.0)
    e_leak: Any = parameter(-65.0)
    v_spike: Any = parameter(-40.0)
    v_init: Any = parameter(-65.0)
    v_offset: Any = parameter(-63.0)

    def rates(self, v: torch.Tensor) -> tuple[torch.Tensor, ...]:
        u = v - self.v_offset
        alpha_m = 1.28 * _x_over_one_minus_exp((u - 13.0) / 4.0)
        beta_m = 1.4 * _x_over_one_minus_exp((40.0 - u) / 5.0)
        alpha_h = 0.128 * torch.exp((17.0 - u) / 18.0)
        beta_h = 4.0 * torch.sigmoid((u - 40.0) / 5.0)
        alpha_n = 0.16 * _x_over_one_minus_exp((u - 15.0) / 5.0)
        beta_n = 0.5 * torch.exp((10.0 - u) / 40.0)
        return alpha_m, beta_m, alpha_h, beta_h, alpha_n, beta_n
