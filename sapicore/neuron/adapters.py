"""Any functional neuron model as a module: the matching adapter class where there is one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..adapter import FunctionalNeuron
from .analog import OscillatorNeuron, RateNeuron
from .spiking import SPIKING_ADAPTERS

__all__ = ["wrap"]

ADAPTERS = {
    **SPIKING_ADAPTERS,
    RateNeuron.functional_class: RateNeuron,
    OscillatorNeuron.functional_class: OscillatorNeuron,
}


def wrap(model: Any, shape: int | Sequence[int] = 1, dt: float = 0.1) -> FunctionalNeuron:
    """A module around any functional neuron model (the matching adapter class when there is one)."""
    cls = ADAPTERS.get(type(model), FunctionalNeuron)
    return cls(shape=shape, dt=dt, model=model)
