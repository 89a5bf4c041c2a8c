"""Sapicore's functional core: pure step functions over explicit state pytrees.

Units throughout: time in ms, voltage in mV, current in nA (conductance in µS, capacitance in nF,
resistance in MΩ), except where a model's docstring says otherwise (Hodgkin-Huxley works per
membrane area; Izhikevich in the paper's units).

Layout (each layer imports only those above it; no module imports one that imports it back):

- `pytree`, `transforms`: the pytree machinery, and which torch transforms are active;
- `models`: neurons, synapses, plasticity rules (and the weight layouts they address), sources,
  encoders, integrators, spike functions;
- `propagation`: connectivity, projections, the CPU and GPU kernels (their
  build cache and C++ source), the choice of backend;
- `network`: populations and projections stepped together;
- `running`: `simulate` (stepper), `sweep`, the checks, the sinks' feed, spike events, and the
  reruns of chunks whose fixed spike capacity overflowed (`capacity`).

Every module keeps its old import path too (``sapicore.functional.kernels``,
``sapicore.functional.neurons.lif``, ...): the same module object under both names.
"""

import importlib as _importlib
import pkgutil as _pkgutil
import sys as _sys

from . import transforms
from .models import currents, encoders, integrators, layout, neurons, plasticity, short_term, sources, spikes, synapses
from .models.currents import ACCurrent, DCCurrent, NoisyCurrent, StepCurrent
from .models.integrators import METHODS, euler, exponential_euler, integrate, rk4
from .models.neurons import (
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
    TraubMiles,
)
from .models.neurons.base import check_input, check_model
from .models.plasticity import STDP, Hebbian, Oja, PlasticityRule, RewardSTDP, TripletSTDP
from .models.short_term import ShortTermState, TsodyksMarkram
from .models.sources import PoissonSource, SpikeInput
from .models.spikes import SURROGATES, spike, surrogate_derivative, threshold
from .models.synapses import Alpha, Delta, DualExponential, Exponential, SynapseModel
from .network import Network, NetworkState, Population
from .propagation import backends, connectivity, gpu_kernels, kernel_cache, kernels
from .propagation import projection as _projection_module
from .propagation.connectivity import Connectivity
from .propagation.projection import (
    DenseProjection,
    Projection,
    ProjectionState,
    SparseProjection,
    SynapseTable,
    projection,
)
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
from .running import capacity, checks, events, feed, stepper, sweeps
from .running.checks import DivergenceWarning
from .running.events import SpikeEvents
from .running.feed import PerLane
from .running.partition import partition
from .running.stepper import simulate
from .running.sweeps import grid, init_lanes, sweep, zipped


def _keep_old_paths() -> None:
    """Register each moved module (and every module of ``neurons``) under its path of before the
    layout, ``sapicore.functional.<name>``, as the same module object."""
    moved = [encoders, integrators, plasticity, sources, spikes, synapses, neurons, backends, capacity]
    moved += [connectivity, gpu_kernels, kernel_cache, kernels, layout, _projection_module]
    moved += [checks, events, feed, stepper, sweeps]
    for found in _pkgutil.iter_modules(neurons.__path__):
        moved.append(_importlib.import_module(f"{neurons.__name__}.{found.name}"))
    for module in moved:
        old = module.__name__.replace(".models.", ".").replace(".propagation.", ".").replace(".running.", ".")
        _sys.modules.setdefault(old, module)


_keep_old_paths()

__all__ = [
    "Connectivity",
    "ACCurrent",
    "DCCurrent",
    "NoisyCurrent",
    "StepCurrent",
    "currents",
    "Alpha",
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
    "partition",
    "SpikeInput",
    "TripletSTDP",
    "TsodyksMarkram",
    "ShortTermState",
    "short_term",
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
    "TraubMiles",
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
