"""Analog (rate) neurons."""

from __future__ import annotations

from typing import Any

import sapicore.functional as sf

from ..adapter import FunctionalNeuron
from . import SapicoreNeuron

__all__ = ["AnalogNeuron", "RateNeuron"]


class AnalogNeuron(SapicoreNeuron):
    """Base class of neurons with a continuous (non-spiking) output; subclass it and override forward."""


class RateNeuron(FunctionalNeuron, AnalogNeuron):
    """Leaky-integrator rate units (:class:`sapicore.functional.Analog`); the output is ``activation``."""

    functional_class = sf.Analog

    @property
    def activation(self) -> Any:
        """The output of the last step."""
        return self.output
