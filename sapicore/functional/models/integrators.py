"""One-step ODE integrators as pure functions over tuples of tensors.

A model describes its continuous dynamics in one or both of two forms:

* ``derivative(y) -> dy/dt`` (any dynamics), used by `euler` and `rk4`;
* ``relaxation(y) -> (tau, y_inf)`` for dynamics written as ``dy/dt = (y_inf(y) - y) / tau(y)``, used by
  `exponential_euler`, which holds ``tau`` and ``y_inf`` fixed over the step and integrates the
  linear equation exactly: ``y(t + dt) = y_inf + (y - y_inf) * exp(-dt / tau)``. For linear dynamics
  with constant input this is exact; for gating variables it is the Rush-Larsen scheme.

``y`` is a tuple of tensors (one per state variable); ``tau`` and ``y_inf`` are tuples of the same
length whose entries are tensors or Python floats. Time is in ms.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

__all__ = ["euler", "rk4", "exponential_euler", "integrate", "METHODS", "canonical_method"]

State = tuple[torch.Tensor, ...]
Derivative = Callable[[State], Sequence[Any]]
Relaxation = Callable[[State], tuple[Sequence[Any], Sequence[Any]]]

METHODS = ("euler", "rk4", "exponential_euler")
_ALIASES = {"runge_kutta": "rk4", "rk": "rk4", "exp_euler": "exponential_euler", "forward_euler": "euler"}


def canonical_method(name: str, allowed: Sequence[str] = METHODS) -> str:
    """The canonical integrator name for ``name`` (aliases: 'runge_kutta', 'exp_euler', ...).

    Raises ``ValueError`` naming the allowed methods when ``name`` is unknown or not in ``allowed``.
    """
    if not isinstance(name, str):
        raise TypeError(f"integration method must be a string, one of {', '.join(allowed)}; got {name!r}")
    method = _ALIASES.get(name, name)
    if method not in allowed:
        raise ValueError(f"unknown integration method {name!r}; this model supports: {', '.join(allowed)}")
    return method


def _exp(x: Any) -> Any:
    return torch.exp(x) if isinstance(x, torch.Tensor) else math.exp(x)


def euler(derivative: Derivative, y: State, dt: float) -> State:
    """Forward Euler: ``y + dt * f(y)``."""
    return tuple(yi + dt * di for yi, di in zip(y, derivative(y)))


def rk4(derivative: Derivative, y: State, dt: float) -> State:
    """Classic fourth-order Runge-Kutta."""
    k1 = derivative(y)
    k2 = derivative(tuple(yi + 0.5 * dt * ki for yi, ki in zip(y, k1)))
    k3 = derivative(tuple(yi + 0.5 * dt * ki for yi, ki in zip(y, k2)))
    k4 = derivative(tuple(yi + dt * ki for yi, ki in zip(y, k3)))
    return tuple(yi + (dt / 6.0) * (a + 2.0 * b + 2.0 * c + d) for yi, a, b, c, d in zip(y, k1, k2, k3, k4))


def exponential_euler(relaxation: Relaxation, y: State, dt: float) -> State:
    """Exponential Euler: ``y_inf + (y - y_inf) * exp(-dt / tau)`` with ``tau, y_inf`` taken at ``y``."""
    taus, infs = relaxation(y)
    return tuple(_relax(yi, inf, _exp(-dt / tau)) for yi, tau, inf in zip(y, taus, infs))


def _relax(y: Any, inf: Any, decay: Any) -> Any:
    """``inf + (y - inf) * decay``: one ``lerp`` where ``y`` and ``inf`` are tensors of one shape."""
    if isinstance(y, torch.Tensor) and isinstance(inf, torch.Tensor) and y.shape == inf.shape and y.dtype == inf.dtype:
        return torch.lerp(inf, y, decay)
    return inf + (y - inf) * decay


def derivative_of(relaxation: Relaxation) -> Derivative:
    """The derivative ``(y_inf - y) / tau`` of dynamics given in relaxation form."""

    def derivative(y: State) -> tuple[Any, ...]:
        taus, infs = relaxation(y)
        return tuple((inf - yi) / tau for yi, tau, inf in zip(y, taus, infs))

    return derivative


def integrate(
    method: str,
    y: State,
    dt: float,
    *,
    derivative: Derivative | None = None,
    relaxation: Relaxation | None = None,
) -> State:
    """Advance ``y`` by one step of ``dt`` ms with the named method ('euler', 'rk4', 'exponential_euler').

    Give ``relaxation`` for dynamics in relaxation form (all three methods apply) or ``derivative``
    (Euler and RK4 only). ``method`` must already be canonical (see `canonical_method`).
    """
    if method == "exponential_euler":
        if relaxation is None:
            raise ValueError("exponential_euler needs the dynamics in relaxation form (tau, y_inf)")
        return exponential_euler(relaxation, y, dt)
    if derivative is None:
        if relaxation is None:
            raise ValueError("integrate needs a derivative or a relaxation function")
        derivative = derivative_of(relaxation)
    if method == "euler":
        return euler(derivative, y, dt)
    if method == "rk4":
        return rk4(derivative, y, dt)
    raise ValueError(f"unknown integration method {method!r}; use one of {', '.join(METHODS)}")
