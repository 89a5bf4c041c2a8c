"""Analog (rate) unit: a leaky integrator of its input followed by an activation and clipping."""

from __future__ import annotations

from typing import Any

import attrs
import torch

from ...pytree import check_not_nan, check_positive, parameter, pytree, replace
from ..integrators import integrate
from .base import NeuronModel, broadcast_like, check_dt, check_input, method_field

__all__ = ["Analog", "AnalogState", "NONLINEARITIES"]

NONLINEARITIES = {
    "identity": lambda x: x,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
}


@pytree
class AnalogState:
    """State of an analog population: x, the leaky-integrated input (units of the input)."""

    x: torch.Tensor


def _known_nonlinearity(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"Analog.nonlinearity must be a name such as 'tanh', got {value!r}")
    if value not in NONLINEARITIES:
        raise ValueError(f"unknown nonlinearity {value!r}; choose one of: {', '.join(NONLINEARITIES)}")


def _clip_order(instance: Analog, attribute: attrs.Attribute, value: Any) -> None:
    check_not_nan(instance, attribute, value)
    low, high = instance.clip_min, value
    if isinstance(low, float) and isinstance(high, float) and not low <= high:
        raise ValueError(f"Analog.clip_min ({low}) must not exceed clip_max ({high})")


@pytree
class Analog(NeuronModel):
    r"""Analog (rate) unit; time in ms, other quantities in the units of its input.

    .. math::

        \tau \frac{dx}{dt} = -x + I, \qquad
        \mathrm{activation} = \mathrm{clip}(f(\mathrm{gain}\,x + \mathrm{bias}), \mathrm{clip\_min}, \mathrm{clip\_max})

    With ``tau=None`` the unit has no memory: ``x = I`` in every step. ``f``, the ``nonlinearity``, is
    one of 'identity', 'tanh', 'sigmoid', 'relu'; ``None`` clip bounds are open. The output, ``activation``, is sampled
    (not summed) when ``simulate`` records every k steps.
    """

    tau: Any = parameter(None, check=check_positive)
    gain: Any = parameter(1.0)
    bias: Any = parameter(0.0)
    nonlinearity: str = attrs.field(default="identity", validator=_known_nonlinearity)
    clip_min: Any = parameter(None)
    clip_max: Any = parameter(None, check=_clip_order)
    method: str = method_field("exponential_euler")

    state_class = AnalogState
    output_name = "activation"
    output_is_event = False

    def initial_values(self, shape: tuple[int, ...], zeros: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"x": zeros.clone()}

    def output(self, x: torch.Tensor) -> torch.Tensor:
        """The activation of a unit whose integrated input is ``x``."""
        y = NONLINEARITIES[self.nonlinearity](self.gain * x + self.bias)
        if self.clip_min is not None or self.clip_max is not None:
            y = torch.clamp(y, min=self.clip_min, max=self.clip_max)
        return y

    def step(self, state: AnalogState, input: Any, dt: float) -> tuple[AnalogState, torch.Tensor]:
        """Advance by ``dt`` ms with input ``input``; return the new state and the activation."""
        dt = check_dt(dt)
        x_in = check_input(input, state.x)
        if self.tau is None:
            x = broadcast_like(x_in, state.x)
        else:
            (x,) = integrate(self.method, (state.x,), dt, relaxation=lambda y: ((self.tau,), (x_in,)))
        return replace(state, x=x), self.output(x)
