"""Summary measures of recorded spike trains (time in ms, rates in Hz)."""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["mean_rate", "isi_cv", "isi_cv_of_events", "spike_times", "band_analytic", "modulation_index"]


def _check_dt(dt: Any) -> float:
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number of milliseconds (the sampling interval), got {dt!r}")
    return float(dt)


def _check_record(name: str, values: Any) -> torch.Tensor:
    if not isinstance(values, torch.Tensor):
        raise TypeError(f"{name} must be a tensor with time on its first axis, got {type(values).__name__}")
    if values.dim() == 0 or values.shape[0] == 0:
        raise ValueError(
            f"{name} must hold at least one step (time on its first axis), got shape {tuple(values.shape)}"
        )
    if values.is_floating_point() and not bool(torch.isfinite(values).all()):
        raise ValueError(f"{name} holds NaN or infinite values (a diverged run's records?); analyse the finite part")
    return values


def mean_rate(spikes: torch.Tensor, dt: float) -> float:
    """Mean firing rate (Hz) of a spike record ``(steps, neurons)`` sampled every ``dt`` ms."""
    dt = _check_dt(dt)
    spikes = _check_record("spikes", spikes)
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
    """`isi_cv` of spike events: ``times`` (ms) and ``neurons`` (indices below ``n``)."""
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


def band_analytic(signal: torch.Tensor, dt: float, band: tuple[float, float]) -> torch.Tensor:
    """The analytic signal (complex) of ``signal`` (time on the first axis, sampled every ``dt`` ms)
    restricted to the frequency ``band`` (Hz, low and high, inclusive): its angle is the band's
    instantaneous phase (radians), its magnitude the band's envelope. An ideal FFT filter: use
    whole periods and bands wider than the spectral resolution ``1000 / (steps dt)`` Hz."""
    dt = _check_dt(dt)
    signal = _check_record("signal", signal)
    try:
        low, high = (float(edge) for edge in band)
    except (TypeError, ValueError):
        raise ValueError(f"band must be (low, high) in Hz, got {band!r}") from None
    if not 0 <= low < high:
        raise ValueError(f"band must be (low, high) Hz with 0 <= low < high, got {band}")
    nyquist = 500.0 / dt
    if high >= nyquist:
        raise ValueError(
            f"band {band} Hz reaches the Nyquist frequency {nyquist:g} Hz of dt = {dt:g} ms: a signal sampled every "
            f"{dt:g} ms holds nothing there; lower the band or sample more often"
        )
    steps = signal.shape[0]
    resolution = 1000.0 / (steps * dt)
    if max(1, math.ceil(low / resolution - 1e-9)) * resolution > high * (1 + 1e-12):  # the first line past low
        raise ValueError(
            f"band {band} Hz holds no frequency of a {steps * dt:g} ms signal (its spectrum has a line every "
            f"{resolution:g} Hz); widen the band or record longer"
        )
    spectrum = torch.fft.fft(signal.to(torch.float64), dim=0)
    hz = torch.fft.fftfreq(steps, d=dt / 1000.0, dtype=torch.float64).to(signal.device)
    keep = ((hz >= low) & (hz <= high) & (hz > 0)).to(torch.float64) * 2.0  # positive side, doubled
    shape = (steps,) + (1,) * (signal.dim() - 1)
    return torch.fft.ifft(spectrum * keep.reshape(shape), dim=0)


def modulation_index(
    signal: torch.Tensor,
    dt: float,
    phase_band: tuple[float, float],
    amplitude_band: tuple[float, float],
    bins: int = 18,
) -> float:
    """Phase-amplitude coupling of a 1-d ``signal`` (sampled every ``dt`` ms): the modulation index
    of Tort et al. (2010, J Neurophysiol 104:1195). The envelope of ``amplitude_band`` (Hz) is
    averaged in ``bins`` bins of the phase of ``phase_band`` (Hz); with ``p`` those means normalised
    to sum to 1, ``MI = (log(bins) - H(p)) / log(bins)``: 0 when the amplitude ignores the phase,
    growing towards 1 as it concentrates in one phase bin."""
    if isinstance(signal, torch.Tensor) and signal.dim() != 1:
        raise ValueError(f"signal must be 1-d (time), got shape {tuple(signal.shape)}")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise ValueError(f"bins must be an int >= 2 (phase bins), got {bins!r}")
    phase = band_analytic(signal, dt, phase_band).angle()
    envelope = band_analytic(signal, dt, amplitude_band).abs()
    which = ((phase + torch.pi) / (2 * torch.pi) * bins).long().clamp(0, bins - 1)
    total = torch.zeros(bins, dtype=torch.float64).index_add_(0, which, envelope)
    count = torch.zeros(bins, dtype=torch.float64).index_add_(0, which, torch.ones_like(envelope))
    means = total / count.clamp(min=1)
    if float(means.sum()) == 0.0:
        raise ValueError(
            f"the envelope of amplitude_band {amplitude_band} Hz is zero: the signal has no power there, so its "
            "coupling is undefined"
        )
    p = means / means.sum()
    entropy = -(p * torch.log(p.clamp(min=1e-300))).sum()
    return float((math.log(bins) - entropy) / math.log(bins))
