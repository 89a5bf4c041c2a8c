"""Current sources: input currents (nA) as functions of time (ms), as PyNN's and NEST's generators.

Each source is a pytree whose call ``source(t)`` gives the current at time ``t`` (a 0-d tensor or a
number, ms): a number for the whole population, or one value per neuron. Pass one (or a function
combining several) as the input of ``simulate`` or ``sweep``::

    step = sf.StepCurrent(times=[50.0, 150.0], amplitudes=[0.5, 0.0])
    sf.simulate(lif, lif.init_state(10), step, dt=0.1, duration=200.0)
    sf.simulate(net, net.init_state(), lambda t: {"exc": step(t) + noise(t)}, dt=0.1, duration=200.0)

A run calls the input with each step's start time, so a source switched on at ``start`` acts from
the step that starts there. Sources are torch operations without host synchronisation: they run
in compiled chunks, under ``vmap`` and on any device.

`NoisyCurrent` draws its noise from a counter-based generator: the value for neuron ``i`` in noise
interval ``k`` is a fixed function of ``(seed, i, k)``. A run gives the same noise whatever its
chunks, device, batch or compilation, and any slice of a population gets the values of its own
neurons (the property a network split across processes needs).
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import torch

from ..pytree import check_non_negative, check_not_nan, check_positive, parameter, pytree

__all__ = ["DCCurrent", "StepCurrent", "ACCurrent", "NoisyCurrent", "keyed_normal", "keyed_uniform"]

_MASK = (1 << 32) - 1
_MULTIPLIER = 0x45D9F3B  # below 2**31: a 32-bit value times it fits an int64 without overflow


def _mix(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (values in [0, 2**32) held in int64): two multiply-xorshift rounds."""
    x = ((x ^ (x >> 16)) * _MULTIPLIER) & _MASK
    x = ((x ^ (x >> 16)) * _MULTIPLIER) & _MASK
    return x ^ (x >> 16)


def _key(seed: int, index: torch.Tensor, counter: torch.Tensor, stream: int) -> torch.Tensor:
    """A hash of (seed, stream, index, counter), one 32-bit value per entry of ``index``/``counter``
    (indices and counters below 2**32). Few operations: compiled chunks unroll one per step."""
    base = (seed * 0x2545F491 + stream * 0x9E3779B) & _MASK
    return _mix((((index * 0x27D4EB2F) & _MASK) ^ _mix(counter ^ base)) & _MASK)


def keyed_uniform(seed: int, index: torch.Tensor, counter: torch.Tensor, stream: int = 1) -> torch.Tensor:
    """Uniform values in (0, 1) (float64), each a fixed function of ``(seed, stream, index, counter)``
    (int64 tensors of one shape, or broadcasting): a 32-bit hash, so a value depends on its keys
    only, not on which process draws it or on what else is drawn."""
    return (_key(seed, index, counter, stream).to(torch.float64) + 0.5) * 2.0**-32


def keyed_normal(seed: int, index: torch.Tensor, counter: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Standard normal values, each a fixed function of ``(seed, index, counter)`` (int64 tensors of
    one shape, or broadcasting): the Box-Muller transform of two keyed uniforms."""
    u1, u2 = keyed_uniform(seed, index, counter, 1), keyed_uniform(seed, index, counter, 2)
    return (torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)).to(dtype)


def _time(t: Any) -> torch.Tensor:
    return t if isinstance(t, torch.Tensor) else torch.tensor(float(t))


def _window(t: torch.Tensor, start: Any, stop: Any) -> torch.Tensor:
    """1 while ``start <= t < stop``, else 0 (t's dtype)."""
    return ((t >= start) & (t < stop)).to(t.dtype)


def _check_stop(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    check_not_nan(instance, attribute, value)
    if not value > instance.start:
        raise ValueError(f"{type(instance).__name__}.stop ({value}) must be after start ({instance.start})")


@pytree
class DCCurrent:
    """A constant current ``amplitude`` (nA; a number or one per neuron) from ``start`` to ``stop`` (ms)."""

    amplitude: Any = parameter(1.0)
    start: float = attrs.field(default=0.0, validator=check_non_negative)
    stop: float = attrs.field(default=math.inf, validator=_check_stop)

    def __call__(self, t: Any) -> torch.Tensor:
        t = _time(t)
        return self.amplitude * _window(t, self.start, self.stop)


def _check_steps(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    times = instance.times
    if times.dim() != 1 or times.numel() == 0:
        raise ValueError(
            f"StepCurrent.times must be a non-empty 1-d list of times (ms), got shape {tuple(times.shape)}"
        )
    if not bool(torch.isfinite(times).all()) or bool((times < 0).any()):  # sync-ok: validation
        raise ValueError("StepCurrent.times must be finite and >= 0 ms")
    if bool((times[1:] <= times[:-1]).any()):  # sync-ok: validation
        raise ValueError("StepCurrent.times must increase strictly")
    if value.shape[0] != times.numel():
        raise ValueError(
            f"StepCurrent.amplitudes must hold one value (or one row per neuron) per time: {times.numel()} times, "
            f"got {value.shape[0]}"
        )
    if not bool(torch.isfinite(value).all()):  # sync-ok: validation
        raise ValueError("StepCurrent.amplitudes must be finite")


def _float_tensor(value: Any) -> torch.Tensor:
    return torch.as_tensor(value, dtype=torch.get_default_dtype()) if not isinstance(value, torch.Tensor) else value


@pytree
class StepCurrent:
    """A current that steps to ``amplitudes[k]`` (nA; a number, or a row of one value per neuron) at
    ``times[k]`` (ms, increasing) and holds it until the next time; 0 before the first."""

    times: torch.Tensor = attrs.field(converter=_float_tensor)
    amplitudes: torch.Tensor = attrs.field(converter=_float_tensor, validator=_check_steps)

    def __call__(self, t: Any) -> torch.Tensor:
        t = _time(t)
        times = self.times.to(t.dtype)
        passed = torch.searchsorted(times, t.reshape(1), right=True)  # how many steps have begun
        padded = torch.cat([torch.zeros_like(self.amplitudes[:1]), self.amplitudes]).to(t.dtype)
        return padded.index_select(0, passed).squeeze(0)


@pytree
class ACCurrent:
    """A sinusoidal current ``offset + amplitude sin(2 pi frequency t / 1000 + phase)`` (nA; frequency
    in Hz, t in ms, phase in degrees) from ``start`` to ``stop`` (ms), as PyNN's ``ACSource``."""

    amplitude: Any = parameter(1.0)
    offset: Any = parameter(0.0)
    frequency: Any = parameter(10.0, check=check_non_negative)
    phase: Any = parameter(0.0)
    start: float = attrs.field(default=0.0, validator=check_non_negative)
    stop: float = attrs.field(default=math.inf, validator=_check_stop)

    def __call__(self, t: Any) -> torch.Tensor:
        t = _time(t)
        angle = 2.0 * math.pi * self.frequency * t / 1000.0 + self.phase * (math.pi / 180.0)
        return (self.offset + self.amplitude * torch.sin(angle)) * _window(t, self.start, self.stop)


def _check_seed(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise ValueError(f"{type(instance).__name__}.seed must be an int in [0, 2**32), got {value!r}")


def _check_size(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{type(instance).__name__}.size must be an int >= 1 (neurons), got {value!r}")


@pytree
class NoisyCurrent:
    """Gaussian white-ish noise: ``mean + stdev z`` (nA) held for ``interval`` ms, a new independent
    ``z`` per neuron and interval (PyNN's ``NoisyCurrentSource``, NEST's ``noise_generator``), for the
    ``size`` neurons numbered from ``first`` (a population's global indices), from ``start`` to
    ``stop`` (ms). ``z`` is a fixed function of ``(seed, neuron, interval)`` (module docstring).
    """

    mean: Any = parameter(0.0)
    stdev: Any = parameter(1.0, check=check_non_negative)
    interval: float = attrs.field(default=1.0, validator=check_positive)
    size: int = attrs.field(default=1, validator=_check_size)
    seed: int = attrs.field(default=0, validator=_check_seed)
    first: int = attrs.field(default=0, validator=check_non_negative)
    start: float = attrs.field(default=0.0, validator=check_non_negative)
    stop: float = attrs.field(default=math.inf, validator=_check_stop)

    def __call__(self, t: Any) -> torch.Tensor:
        t = _time(t)
        counter = torch.floor((t - self.start) / self.interval).to(torch.int64).clamp(min=0)
        neurons = torch.arange(self.first, self.first + self.size, device=t.device)
        z = keyed_normal(self.seed, neurons, counter, t.dtype)
        return (self.mean + self.stdev * z) * _window(t, self.start, self.stop)
