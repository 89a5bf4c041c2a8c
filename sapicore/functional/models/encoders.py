"""Encoders: values in [0, 1] as spike trains, time-major ``(steps, *values.shape)`` tensors of 0/1.

Scale raw features into [0, 1] first (e.g. ``sklearn.preprocessing.MinMaxScaler``, or divide by the
largest possible value). Both encoders are pure tensor functions: no Python loop over samples,
features or steps, on the values' device and dtype.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .neurons.base import check_dt

__all__ = ["poisson_rate", "latency"]


def _check_values(values: Any) -> torch.Tensor:
    if not isinstance(values, torch.Tensor) or not values.is_floating_point():
        raise TypeError(f"values must be a floating tensor, got {type(values).__name__}")
    low, high = values.aminmax() if values.numel() else (values.new_zeros(()), values.new_zeros(()))
    if not (bool(torch.isfinite(values).all()) and low >= 0 and high <= 1):  # sync-ok: entry check
        low, high = float(low), float(high)  # sync-ok: for the error message
        raise ValueError(
            f"values must lie in [0, 1] (got {low:g} to {high:g}); scale them first, e.g. with "
            "sklearn.preprocessing.MinMaxScaler or by dividing by the largest possible value"
        )
    return values


def _check_steps(steps: Any) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    return steps


def poisson_rate(
    values: torch.Tensor,
    steps: int,
    dt: float,
    max_rate: float = 100.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Rate code: each value fires as a Poisson process at ``values * max_rate`` Hz.

    In each step of ``dt`` ms a neuron spikes with probability ``values * max_rate * dt / 1000``
    (at most one spike per step, so ``max_rate * dt / 1000`` must not exceed 1).
    """
    values, steps, dt = _check_values(values), _check_steps(steps), check_dt(dt)
    if not (math.isfinite(max_rate) and max_rate >= 0):
        raise ValueError(f"max_rate must be a finite number of Hz >= 0, got {max_rate}")
    if max_rate * dt / 1000.0 > 1.0:
        raise ValueError(
            f"max_rate {max_rate} Hz with dt {dt} ms asks for {max_rate * dt / 1000.0:g} spikes per step; at most "
            f"one fits: lower max_rate to <= {1000.0 / dt:g} Hz or dt"
        )
    chance = values * (max_rate * dt / 1000.0)
    draws = torch.rand((steps, *values.shape), generator=generator, dtype=values.dtype, device=values.device)
    return (draws < chance).to(values.dtype)


def latency(values: torch.Tensor, steps: int, dt: float, t_max: float | None = None) -> torch.Tensor:
    """Latency code: each value above 0 fires once, at ``(1 - value) * t_max`` ms (1 fires in the
    first step, values near 0 last); 0 never fires. ``t_max`` defaults to the window minus one step,
    ``(steps - 1) * dt``."""
    values, steps, dt = _check_values(values), _check_steps(steps), check_dt(dt)
    t_max = (steps - 1) * dt if t_max is None else t_max
    if not (math.isfinite(t_max) and 0 <= t_max <= (steps - 1) * dt + 1e-9):
        raise ValueError(f"t_max must be in [0, {(steps - 1) * dt:g}] ms (the window of {steps} steps), got {t_max}")
    step = torch.round((1.0 - values) * (t_max / dt)).long()
    step = torch.where(values > 0, step, steps)  # never: past the window
    index = torch.arange(steps, device=values.device).reshape((steps,) + (1,) * values.dim())
    return (index == step.unsqueeze(0)).to(values.dtype)
