"""Analog (rate) neurons."""

from __future__ import annotations

from typing import Any

import sapicore.functional as sf

from ..adapter import FunctionalNeuron
from . import SapicoreNeuron

__all__ = ["AnalogNeuron", "RateNeuron", "OscillatorNeuron"]


class AnalogNeuron(SapicoreNeuron):
    """Base class of neurons with a continuous (non-spiking) output; subclass it and override forward."""


class RateNeuron(FunctionalNeuron, AnalogNeuron):
    """Leaky-integrator rate units ([`sapicore.functional.Analog`][sapicore.functional.Analog]); the output is ``activation``."""

    functional_class = sf.Analog

    @property
    def activation(self) -> Any:
        """The output of the last step."""
        return self.output


class OscillatorNeuron(FunctionalNeuron, AnalogNeuron):
    """Oscillator units ([`sapicore.functional.Oscillator`][sapicore.functional.Oscillator]): a sum of sine components with
    ``amplitudes``, ``frequencies`` (Hz), ``phases`` (multiples of pi), ``amp_freq`` (Hz, the
    frequency that modulates each component's amplitude; 0 for none) and a ``baseline_shift``, plus
    the input of each step. The output is ``activation`` (the original's ``voltage``)."""

    functional_class = sf.Oscillator

    @property
    def activation(self) -> Any:
        """The output of the last step."""
        return self.output

    @property
    def voltage(self) -> Any:
        """The output of the last step, under the original Sapicore's name."""
        return self.output
