"""Izhikevich (2003) simple spiking model with the paper's named presets."""

from __future__ import annotations

from typing import Any

import torch

from ...pytree import check_positive, parameter, pytree, replace
from ..integrators import integrate
from ..spikes import spike
from .base import NeuronModel, check_dt, check_input, full_state, method_field, set_where, surrogate_field

__all__ = ["Izhikevich", "IzhikevichState", "PRESETS"]

#: (a, b, c, d) of Izhikevich (2003), Fig. 2.
PRESETS: dict[str, tuple[float, float, float, float]] = {
    "RS": (0.02, 0.2, -65.0, 8.0),  # regular spiking
    "IB": (0.02, 0.2, -55.0, 4.0),  # intrinsically bursting
    "CH": (0.02, 0.2, -50.0, 2.0),  # chattering
    "FS": (0.1, 0.2, -65.0, 2.0),  # fast spiking
    "LTS": (0.02, 0.25, -65.0, 2.0),  # low-threshold spiking
    "TC": (0.02, 0.25, -65.0, 0.05),  # thalamo-cortical
    "RZ": (0.1, 0.26, -65.0, 2.0),  # resonator
}


@pytree
class IzhikevichState:
    """State of an Izhikevich population: v, membrane potential (mV); u, recovery variable (mV/ms)."""

    v: torch.Tensor
    u: torch.Tensor


@pytree
class Izhikevich(NeuronModel):
    r"""Izhikevich (2003) simple model (time in ms, v in mV; u and the input in the paper's units).

    .. math::

        \frac{dv}{dt} = 0.04 v^2 + 5 v + 140 - u + I, \qquad \frac{du}{dt} = a (b v - u)

    When ``v >= v_peak`` (30 mV): a spike, ``v <- c``, ``u <- u + d``. The input ``I`` is in the
    paper's dimensionless units (I = 10 drives a regular-spiking cell to tonic firing). The model has
    no linear relaxation form, so the methods are 'euler' (default, as in the paper) and 'rk4'; use
    dt <= 0.1 ms. The initial state is ``v = v_init`` (-65 mV), ``u = b * v``.

    ``Izhikevich.preset("RS")`` builds the paper's cell classes: RS, IB, CH, FS, LTS, TC, RZ.
    """

    a: Any = parameter(0.02)
    b: Any = parameter(0.2)
    c: Any = parameter(-65.0)
    d: Any = parameter(8.0)
    v_peak: Any = parameter(30.0)
    v_init: Any = parameter(-65.0)
    method: str = method_field("euler", allowed=("euler", "rk4"))
    surrogate: str = surrogate_field()
    surrogate_slope: Any = parameter(1.0, check=check_positive)

    state_class = IzhikevichState
    output_is_binary = True

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> Izhikevich:
        """The paper's cell class ``name`` (RS, IB, CH, FS, LTS, TC, RZ), with optional overrides."""
        key = name.upper() if isinstance(name, str) else name
        if key not in PRESETS:
            raise ValueError(f"unknown Izhikevich preset {name!r}; choose one of: {', '.join(PRESETS)}")
        a, b, c, d = PRESETS[key]
        return cls(**{"a": a, "b": b, "c": c, "d": d, **overrides})

    def initial_values(self, shape: tuple[int, ...], zeros: torch.Tensor) -> dict[str, torch.Tensor]:
        v = full_state(self.v_init, shape, zeros)
        return {"v": v, "u": self.b * v}

    def step(self, state: IzhikevichState, input: Any, dt: float) -> tuple[IzhikevichState, torch.Tensor]:
        """Advance by ``dt`` ms with input ``input``; return the new state and spikes."""
        dt = check_dt(dt)
        x = check_input(input, state.v)

        def derivative(y: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
            v, u = y
            return (0.04 * v + 5.0) * v + 140.0 - u + x, self.a * (self.b * v - u)

        v, u = integrate(self.method, (state.v, state.u), dt, derivative=derivative)
        spikes = spike(v - self.v_peak, self.surrogate, self.surrogate_slope)
        fired = spikes > 0
        v = set_where(fired, self.c, v)
        u = u + self.d * spikes
        return replace(state, v=v, u=u), spikes
