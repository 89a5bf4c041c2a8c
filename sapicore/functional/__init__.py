"""Sapicore's functional core: pure step functions over explicit state pytrees.

Units throughout: time in ms, voltage in mV, current in nA (conductance in µS, capacitance in nF,
resistance in MΩ), except where a model's docstring says otherwise (Hodgkin-Huxley works per
membrane area; Izhikevich in the paper's units).
"""

from . import capacity, connectivity, encoders, transforms
from .checks import DivergenceWarning
from .connectivity import Connectivity
from .events import SpikeEvents
from .feed import PerLane
from .integrators import METHODS, euler, exponential_euler, integrate, rk4
from .network import Network, NetworkState, Population
from .neurons import (
    LIF,
    NONLINEARITIES,
    PRESETS,
    AdEx,
    AdExState,
    Analog,
    AnalogState,
    HodgkinHuxley,
    HodgkinHuxleyState,
    Izhikevich,
    IzhikevichState,
    LIFState,
    NeuronModel,
    Oscillator,
    OscillatorState,
)
from .neurons.base import check_input, check_model
from .plasticity import STDP, Hebbian, Oja, PlasticityRule, RewardSTDP, TripletSTDP
from .projection import DenseProjection, Projection, ProjectionState, SparseProjection, SynapseTable, projection
from .pytree import (
    check_finite,
    check_non_negative,
    check_not_nan,
    check_positive,
    lane_count,
    parameter,
    pytree,
    replace,
    stack,
    to,
    tree_leaves,
    tree_map,
    unstack,
    validate,
)
from .sources import PoissonSource, SpikeInput
from .spikes import SURROGATES, spike, surrogate_derivative, threshold
from .stepper import simulate
from .sweeps import grid, init_lanes, sweep, zipped
from .synapses import Delta, DualExponential, Exponential, SynapseModel

__all__ = [
    "Connectivity",
    "Delta",
    "DivergenceWarning",
    "DualExponential",
    "Exponential",
    "Hebbian",
    "Network",
    "NetworkState",
    "Oja",
    "PoissonSource",
    "Population",
    "Projection",
    "DenseProjection",
    "SparseProjection",
    "capacity",
    "transforms",
    "ProjectionState",
    "RewardSTDP",
    "STDP",
    "SpikeEvents",
    "PerLane",
    "SpikeInput",
    "TripletSTDP",
    "connectivity",
    "encoders",
    "projection",
    "SynapseTable",
    "NONLINEARITIES",
    "METHODS",
    "PRESETS",
    "SURROGATES",
    "AdEx",
    "AdExState",
    "Analog",
    "AnalogState",
    "HodgkinHuxley",
    "HodgkinHuxleyState",
    "Izhikevich",
    "IzhikevichState",
    "LIF",
    "LIFState",
    "NeuronModel",
    "Oscillator",
    "OscillatorState",
    "euler",
    "exponential_euler",
    "grid",
    "init_lanes",
    "integrate",
    "lane_count",
    "pytree",
    "replace",
    "rk4",
    "simulate",
    "spike",
    "stack",
    "surrogate_derivative",
    "sweep",
    "to",
    "tree_leaves",
    "tree_map",
    "unstack",
    "validate",
    "zipped",
    "PlasticityRule",
    "SynapseModel",
    "check_finite",
    "check_input",
    "check_model",
    "check_non_negative",
    "check_not_nan",
    "check_positive",
    "parameter",
    "threshold",
]
