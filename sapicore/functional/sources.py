"""Input populations: Poisson spike trains and user-given spike tensors, usable like neuron models."""

from __future__ import annotations

from typing import Any

import torch

from .neurons.base import NeuronModel, broadcast_like, check_dt, check_input
from .pytree import check_non_negative, parameter, pytree, replace

__all__ = ["PoissonSource", "SpikeInput", "SourceState"]


@pytree
class SourceState:
    """spikes: the spikes emitted in the last step (0/1)."""

    spikes: torch.Tensor


@pytree
class PoissonSource(NeuronModel):
    """Independent Poisson spike trains at ``rate`` Hz (a number or one rate per neuron).

    In each step of ``dt`` ms a neuron spikes with probability ``rate * dt / 1000`` (at most 1).
    Its input, if any, is added to the rate (Hz), so a rate can also be driven per step. Randomness
    comes from torch's global generator: seed it with ``torch.manual_seed`` for a reproducible run;
    under ``sweep`` each lane draws its own spikes (``randomness="different"``).
    """

    rate: Any = parameter(10.0, check=check_non_negative)

    state_class = SourceState
    receives_projections = False

    def initial_values(self, shape: tuple[int, ...], zeros: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"spikes": zeros.clone()}

    def step(self, state: SourceState, input: Any, dt: float) -> tuple[SourceState, torch.Tensor]:
        """Draw this step's spikes; ``input`` (Hz) is added to the rate."""
        dt = check_dt(dt)
        extra = check_input(input, state.spikes)
        probability = (self.rate + extra) * (dt / 1000.0)  # above 1 always spikes, below 0 never
        spikes = (torch.rand_like(state.spikes) < probability).to(state.spikes.dtype)
        return replace(state, spikes=spikes), spikes


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
