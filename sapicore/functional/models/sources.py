"""Input populations: Poisson spike trains and user-given spike tensors, usable like neuron models."""

from __future__ import annotations

from typing import Any

import attrs
import torch

from ..propagation import kernels
from ..pytree import check_non_negative, parameter, pytree, replace
from .neurons.base import NeuronModel, broadcast_like, check_dt, check_input

__all__ = ["PoissonSource", "SpikeInput", "SourceState"]


@pytree
class SourceState:
    """spikes: the spikes emitted in the last step (0/1)."""

    spikes: torch.Tensor


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
    Its input, if any, is added to the rate (Hz), so a rate can also be driven per step. Randomness
    comes from torch's global generator: seed it with ``torch.manual_seed`` for a reproducible run;
    under ``sweep`` each lane draws its own spikes (``randomness="different"``).
    """

    rate: Any = parameter(10.0, check=check_non_negative)
    trains: Any = attrs.field(default=1, validator=_train_count)

    state_class = SourceState
    receives_projections = False
    stochastic = True

    def initial_values(self, shape: tuple[int, ...], zeros: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"spikes": zeros.clone()}

    def step(self, state: SourceState, input: Any, dt: float) -> tuple[SourceState, torch.Tensor]:
        """Draw this step's spikes; ``input`` (Hz) is added to the rate."""
        dt = check_dt(dt)
        extra = check_input(input, state.spikes)
        if isinstance(self.trains, torch.Tensor) or self.trains > 1:
            mean = broadcast_like((self.rate + extra) * (self.trains * dt / 1000.0), state.spikes)
            spikes = kernels.poisson(mean.clamp(min=0.0))
            return replace(state, spikes=spikes), spikes
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
