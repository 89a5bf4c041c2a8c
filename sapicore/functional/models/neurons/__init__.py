"""Neuron models: parameter pytrees with ``init_state`` and a pure ``step(state, input, dt)``."""

from .adex import AdEx, AdExState
from .analog import NONLINEARITIES, Analog, AnalogState
from .base import NeuronModel
from .hh import HodgkinHuxley, HodgkinHuxleyState, TraubMiles
from .izhikevich import PRESETS, Izhikevich, IzhikevichState
from .lif import LIF, LIFState
from .oscillator import Oscillator, OscillatorState

__all__ = [
    "NONLINEARITIES",
    "AdEx",
    "AdExState",
    "Analog",
    "AnalogState",
    "HodgkinHuxley",
    "HodgkinHuxleyState",
    "TraubMiles",
    "Izhikevich",
    "IzhikevichState",
    "LIF",
    "LIFState",
    "NeuronModel",
    "Oscillator",
    "OscillatorState",
    "PRESETS",
]
