"""Input populations: Poisson spike trains and user-given spike tensors, usable like neuron models."""

from __future__ import annotations

import math
from typing import Any

import attrs
import torch

from ..propagation import kernels
from ..pytree import check_non_negative, parameter, pytree, replace
from ..transforms import vmap_active
from .currents import keyed_uniform
from .neurons.base import NeuronModel, broadcast_like, check_dt, check_input

__all__ = ["PoissonSource", "PoissonState", "SpikeInput", "SourceState"]


@pytree
class SourceState:
    """spikes: the spikes emitted in the last step (0/1)."""

    spikes: torch.Tensor


@pytree
class PoissonState:
    """spikes: the spikes (or counts) emitted in the last step; step: steps taken with a ``seed``
    (int64, per neuron), the counter of seeded draws (it stays 0 without one)."""

    spikes: torch.Tensor
    step: torch.Tensor


def _seed(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32):
        raise ValueError(f"PoissonSource.seed must be None or an int in [0, 2**32), got {value!r}")


def _numbering(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    valid = isinstance(value, tuple) and len(value) == 2 and all(type(n) is int for n in value)
    if not valid or value[0] < 0 or value[1] < 1:
        raise ValueError(
            f"PoissonSource.numbering must be (first, stride) ints with first >= 0, stride >= 1, got {value!r}"
        )


def _train_count(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        whole = value.dtype != torch.bool and bool(
            ((value >= 1) & (value == torch.round(value))).all()
        )  # sync-ok: building
        if not whole:
            raise ValueError(
                f"{type(instance).__name__}.{attribute.name} must hold whole numbers >= 1 (one per neuron)"
            )
    elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"{type(instance).__name__}.{attribute.name} must be an int >= 1 or a tensor of them (one per neuron), "
            f"got {value!r}"
        )


@pytree
class PoissonSource(NeuronModel):
    """Independent Poisson spike trains at ``rate`` Hz (a number or one rate per neuron).

    In each step of ``dt`` ms a neuron spikes with probability ``rate * dt / 1000`` (at most 1).
    With ``trains > 1`` (an int, or one whole number per neuron) each neuron stands for that many
    independent trains (the external synapses of a neuron, say) and emits the number of their spikes
    in the step, a Poisson count of mean ``trains * rate * dt / 1000``; a projection multiplies each
    count by the weight.
    Its input, if any, is added to the rate (Hz), so a rate can also be driven per step.

    Randomness: without ``seed``, torch's global generator (seed it with ``torch.manual_seed`` for a
    reproducible run; under ``sweep`` each lane draws its own spikes, ``randomness="different"``).
    With ``seed`` (an int), each draw is a fixed function of the seed, the neuron's number and the
    step (``state.step``): the same trains however the run is split into chunks, resumed or spread
    over processes (``partition``), and the same in every lane of a sweep. Neuron ``k`` of the
    population is neuron ``numbering[0] + k * numbering[1]`` of the whole population (``partition``
    sets it). Seeded counts are drawn by inversion, for means up to 100 spikes per step.
    """

    rate: Any = parameter(10.0, check=check_non_negative)
    trains: Any = attrs.field(default=1, validator=_train_count)
    seed: int | None = attrs.field(default=None, validator=_seed)
    numbering: tuple = attrs.field(default=(0, 1), validator=_numbering)

    state_class = PoissonState
    receives_projections = False
    stochastic = True

    def initial_values(self, shape: tuple[int, ...], zeros: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"spikes": zeros.clone(), "step": torch.zeros(shape, dtype=torch.int64, device=zeros.device)}

    def step(self, state: PoissonState, input: Any, dt: float) -> tuple[PoissonState, torch.Tensor]:
        """Draw this step's spikes; ``input`` (Hz) is added to the rate."""
        dt = check_dt(dt)
        extra = check_input(input, state.spikes)
        counts = isinstance(self.trains, torch.Tensor) or self.trains > 1
        if counts:
            mean = broadcast_like((self.rate + extra) * (self.trains * dt / 1000.0), state.spikes).clamp(min=0.0)
            if self.seed is None:
                spikes = kernels.poisson(mean)
            else:
                spikes = self._keyed_count(mean, state).to(state.spikes.dtype)
        else:
            probability = (self.rate + extra) * (dt / 1000.0)  # above 1 always spikes, below 0 never
            draws = torch.rand_like(state.spikes) if self.seed is None else self._uniform(state)
            spikes = (draws < probability).to(state.spikes.dtype)
        return replace(state, spikes=spikes, step=state.step if self.seed is None else state.step + 1), spikes

    def _keyed_count(self, mean: torch.Tensor, state: PoissonState) -> torch.Tensor:
        """This step's seeded Poisson counts of ``mean`` (float64): the C++ op where it applies, else
        the same counts from torch ops (which synchronise with the host at each step)."""
        try:
            counts = kernels.keyed_poisson(mean, state.step, self.seed, self.numbering, stream=3)
        except RuntimeError as err:  # the op's check of the mean, raised as the torch ops' path raises it
            if "at most 100 spikes" not in str(err):
                raise
            raise ValueError(str(err).splitlines()[0]) from None
        return _keyed_count(mean, self._uniform(state)) if counts is None else counts

    def _uniform(self, state: PoissonState) -> torch.Tensor:
        """This step's keyed uniform draw per neuron (float64)."""
        first, stride = self.numbering
        neurons = first + stride * torch.arange(state.step.shape[-1], device=state.step.device)
        return keyed_uniform(self.seed, neurons, state.step, stream=3)  # not NoisyCurrent's streams 1 and 2


def _keyed_count(mean: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Poisson counts of ``mean`` by inversion of the uniforms ``u``: the least k with P(X <= k) >= u,
    at most ``floor(mean + 12 sqrt(mean) + 12) - 1`` (as ``sapicore::keyed_poisson`` draws them)."""
    lanes = vmap_active()  # no host value inside vmap: every draw may need the longest loop
    largest = 100.0 if lanes else float(mean.max()) if mean.numel() else 0.0  # sync-ok: seeded draws, eager
    if largest > 100.0:
        raise ValueError(
            f"a seeded PoissonSource draws at most 100 spikes per neuron and step on average, got {largest:.4g}; "
            "use a smaller dt, or no seed"
        )
    mean = mean.to(torch.float64)
    term = torch.exp(-mean)
    last = torch.floor(mean + 12.0 * torch.sqrt(mean) + 12.0)  # each neuron's tail beyond: below 1e-16
    cdf, count = term.clone(), torch.zeros_like(mean)
    for k in range(1, int(largest + 12.0 * math.sqrt(largest) + 12.0)):
        below = (cdf < u) & (k < last)
        if not lanes and k > largest and not bool(below.any()):  # sync-ok: seeded draws, eager; all found
            break
        count += below
        term = term * mean / k
        cdf = cdf + term
    return count


@pytree
class SpikeInput(NeuronModel):
    """A population that emits exactly the spikes it is given: its input (0/1 per neuron and step)."""

    state_class = SourceState
    receives_projections = False

    def initial_values(self, shape: tuple[int, ...], zeros: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"spikes": zeros.clone()}

    def step(self, state: SourceState, input: Any, dt: float) -> tuple[SourceState, torch.Tensor]:
        """Emit ``input`` as this step's spikes."""
        check_dt(dt)
        spikes = broadcast_like(check_input(input, state.spikes), state.spikes)
        return replace(state, spikes=spikes), spikes
