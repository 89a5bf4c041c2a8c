"""Summary measures of recorded spike trains (time in ms, rates in Hz)."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["mean_rate", "isi_cv", "isi_cv_of_events", "spike_times"]


def mean_rate(spikes: torch.Tensor, dt: float) -> float:
    """Mean firing rate (Hz) of a spike record ``(steps, neurons)`` sampled every ``dt`` ms."""
    steps, neurons = spikes.shape[0], spikes.shape[1:].numel()
    return float(spikes.sum()) / max(neurons, 1) / (steps * dt / 1000.0)


def spike_times(spikes: torch.Tensor, dt: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(times in ms, neuron indices) of every spike in a record ``(steps, neurons)``."""
    steps, neurons = torch.nonzero(spikes.reshape(spikes.shape[0], -1) > 0, as_tuple=True)
    return (steps + 1).to(torch.float64) * dt, neurons


def isi_cv(spikes: torch.Tensor, dt: float, min_spikes: int = 3) -> float:
    """Mean coefficient of variation of the inter-spike intervals over neurons with enough spikes.

    Near 1 for irregular (Poisson-like) firing, near 0 for regular firing; NaN if no neuron fired
    ``min_spikes`` times.
    """
    times, neurons = spike_times(spikes, dt)
    return isi_cv_of_events(times, neurons, spikes.reshape(spikes.shape[0], -1).shape[1], min_spikes)


def isi_cv_of_events(times: Any, neurons: Any, n: int, min_spikes: int = 3) -> float:
    """:func:`isi_cv` of spike events: ``times`` (ms) and ``neurons`` (indices below ``n``)."""
    cvs = isi_cvs_of_events(times, neurons, n, min_spikes)
    kept = cvs[~torch.isnan(cvs)]
    return float(kept.mean()) if kept.numel() else float("nan")


def isi_cvs_of_events(times: Any, neurons: Any, n: int, min_spikes: int = 3) -> torch.Tensor:
    """Each neuron's coefficient of variation of its inter-spike intervals (float64, ``n`` values;
    NaN for a neuron with fewer than ``min_spikes`` spikes), from spike events: ``times`` (ms) and
    ``neurons`` (indices below ``n``)."""
    times = torch.as_tensor(times, dtype=torch.float64)
    neurons = torch.as_tensor(neurons).to(torch.int64)
    order = torch.argsort(neurons * (times.max() + 1.0 if times.numel() else 1.0) + times)
    times, neurons = times[order], neurons[order]
    same = neurons[1:] == neurons[:-1]
    isis, owner = (times[1:] - times[:-1])[same], neurons[1:][same]
    count = torch.bincount(owner, minlength=n).to(torch.float64)
    total = torch.zeros(n, dtype=torch.float64).index_add(0, owner, isis)
    squares = torch.zeros(n, dtype=torch.float64).index_add(0, owner, isis**2)
    mean = total / count
    cvs = (squares / count - mean**2).clamp(min=0).sqrt() / mean
    return torch.where(count >= (min_spikes - 1), cvs, float("nan"))
