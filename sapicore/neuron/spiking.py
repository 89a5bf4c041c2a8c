"""Spiking neurons: adapters over the functional spiking models, integrator chosen by name."""

from __future__ import annotations

from typing import Any

import sapicore.functional as sf

from ..adapter import FunctionalNeuron

__all__ = ["SpikingNeuron", "LIFNeuron", "AdExNeuron", "IzhikevichNeuron", "HodgkinHuxleyNeuron", "SPIKING_ADAPTERS"]


class SpikingNeuron(FunctionalNeuron):
    """A spiking population over any functional model (``SpikingNeuron(model=sf.LIF(), shape=10)``).

    ``integrator`` names the integration method: 'euler', 'runge_kutta' (or 'rk4') and
    'exponential_euler' (where the model has a relaxation form).
    """

    @property
    def integrator(self) -> str:
        return self.model.method

    @integrator.setter
    def integrator(self, name: str) -> None:
        self.method = name

    @property
    def spikes(self) -> Any:
        """The spikes of the last step (0/1)."""
        return self.output


class LIFNeuron(SpikingNeuron):
    """Leaky integrate-and-fire neurons ([`sapicore.functional.LIF`][sapicore.functional.LIF]; ms, mV, nA, MΩ)."""

    functional_class = sf.LIF


class AdExNeuron(SpikingNeuron):
    """Adaptive exponential integrate-and-fire neurons ([`sapicore.functional.AdEx`][sapicore.functional.AdEx])."""

    functional_class = sf.AdEx


class IzhikevichNeuron(SpikingNeuron):
    """Izhikevich neurons ([`sapicore.functional.Izhikevich`][sapicore.functional.Izhikevich]); ``preset="RS"`` picks a cell class."""

    functional_class = sf.Izhikevich

    def __init__(
        self, shape: Any = 1, dt: float = 0.1, model: Any = None, preset: str | None = None, **parameters: Any
    ) -> None:
        if preset is not None:
            if model is not None:
                raise TypeError("give either model= or preset=, not both")
            model = sf.Izhikevich.preset(preset, **parameters)
            parameters = {}
        super().__init__(shape=shape, dt=dt, model=model, **parameters)


class HodgkinHuxleyNeuron(SpikingNeuron):
    """Hodgkin-Huxley neurons ([`sapicore.functional.HodgkinHuxley`][sapicore.functional.HodgkinHuxley]; per-area units)."""

    functional_class = sf.HodgkinHuxley


SPIKING_ADAPTERS = {cls.functional_class: cls for cls in (LIFNeuron, AdExNeuron, IzhikevichNeuron, HodgkinHuxleyNeuron)}
