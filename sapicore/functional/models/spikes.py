"""Spike functions: a Heaviside step forward, a smooth surrogate derivative backward.

``spike(x, surrogate, slope)`` returns ``1.0`` where ``x >= 0`` and ``0.0`` elsewhere (same dtype as
``x``); its gradient is ``surrogate'(x)``, with ``x`` usually ``v - v_thresh`` in mV and ``slope`` in
1/mV. Each surrogate derivative integrates to 1 over x, like the Dirac delta it stands in for:

=============== ================================================= ==========================
name            derivative d/dx                                   peak at x = 0
=============== ================================================= ==========================
fast_sigmoid    slope / (2 (1 + slope |x|)^2)                     slope / 2
arctan          (slope / 2) / (1 + (pi slope x / 2)^2)            slope / 2
triangle        slope * max(0, 1 - slope |x|)                     slope
sigmoid         slope * s (1 - s),  s = sigmoid(slope x)          slope / 4
=============== ================================================= ==========================

The functions are ``torch.autograd.Function`` subclasses with ``setup_context`` and
``generate_vmap_rule = True``, so they work under ``torch.func.grad``, ``vmap``, ``vmap(grad)`` and
``torch.compile``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ..transforms import gradient_possible

__all__ = ["spike", "threshold", "SURROGATES", "surrogate_derivative", "check_surrogate"]


def _fast_sigmoid(x: torch.Tensor, slope: Any) -> torch.Tensor:
    return 0.5 * slope / (1.0 + slope * x.abs()) ** 2


def _arctan(x: torch.Tensor, slope: Any) -> torch.Tensor:
    return 0.5 * slope / (1.0 + (0.5 * math.pi * slope * x) ** 2)


def _triangle(x: torch.Tensor, slope: Any) -> torch.Tensor:
    return slope * torch.clamp(1.0 - slope * x.abs(), min=0.0)


def _sigmoid(x: torch.Tensor, slope: Any) -> torch.Tensor:
    s = torch.sigmoid(slope * x)
    return slope * s * (1.0 - s)


_DERIVATIVES: dict[str, Callable[[torch.Tensor, Any], torch.Tensor]] = {
    "fast_sigmoid": _fast_sigmoid,
    "arctan": _arctan,
    "triangle": _triangle,
    "sigmoid": _sigmoid,
}
SURROGATES = tuple(_DERIVATIVES)


def check_surrogate(name: str) -> str:
    """Return ``name`` if it is a known surrogate, else raise ``ValueError`` listing the known ones."""
    if not isinstance(name, str):
        raise TypeError(f"surrogate must be a name such as 'fast_sigmoid', got {name!r}")
    if name not in _DERIVATIVES:
        raise ValueError(f"unknown surrogate {name!r}; choose one of: {', '.join(SURROGATES)}")
    return name


def surrogate_derivative(name: str, x: torch.Tensor, slope: Any = 1.0) -> torch.Tensor:
    """The surrogate derivative ``d spike / dx`` of the named surrogate at ``x``."""
    return _DERIVATIVES[check_surrogate(name)](x, slope)


def _make_spike_function(name: str) -> type[torch.autograd.Function]:
    derivative = _DERIVATIVES[name]

    class SpikeFunction(torch.autograd.Function):
        generate_vmap_rule = True

        @staticmethod
        def forward(x: torch.Tensor, slope: Any) -> torch.Tensor:
            return (x >= 0).to(x.dtype)

        @staticmethod
        def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
            x, slope = inputs
            ctx.save_for_backward(x)
            ctx.slope = slope

        @staticmethod
        def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
            (x,) = ctx.saved_tensors
            return grad_output * derivative(x, ctx.slope), None

    SpikeFunction.__name__ = SpikeFunction.__qualname__ = f"Spike_{name}"
    return SpikeFunction


_FUNCTIONS = {name: _make_spike_function(name) for name in SURROGATES}


def spike(x: torch.Tensor, surrogate: str = "fast_sigmoid", slope: float = 1.0) -> torch.Tensor:
    """Heaviside ``x >= 0`` as a float 0/1 tensor whose gradient is the named surrogate's derivative.

    ``slope`` (1/mV when ``x`` is in mV) sets the surrogate's sharpness; it is not differentiated.
    Where no gradient can flow (no autograd graph, no ``torch.func`` transform) the plain step is
    returned without the autograd machinery, which costs tens of microseconds per call.
    """
    function = _FUNCTIONS[check_surrogate(surrogate)]
    if gradient_possible(x):
        return function.apply(x, slope)
    return (x >= 0).to(x.dtype)


def threshold(
    v: torch.Tensor, v_thresh: Any, surrogate: str = "fast_sigmoid", slope: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(spikes, fired)`` for potentials ``v`` and threshold ``v_thresh`` (mV): ``spike(v - v_thresh)``
    and the same as a bool mask. Where no gradient can flow, two ops instead of four."""
    if gradient_possible(v):
        spikes = spike(v - v_thresh, surrogate, slope)
        return spikes, spikes > 0
    fired = v >= v_thresh
    return fired.to(v.dtype), fired
