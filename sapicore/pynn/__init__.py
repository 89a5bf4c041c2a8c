"""A PyNN backend on Sapicore's functional core: ``import sapicore.pynn as sim``.

PyNN models written for NEST, NEURON or Brian2 run unchanged with ``sim`` switched to this module
(the ``pynn`` extra installs PyNN). ``sim.to_network()`` gives the network as a functional
``sapicore.functional.Network`` with its current state, to sweep, differentiate or compile it.
See ``docs/tutorials/pynn.md`` for what differs from other backends.
"""

from pyNN import errors, random, space  # noqa: F401
from pyNN.connectors import *  # noqa: F403
from pyNN.network import Network  # noqa: F401
from pyNN.random import GSLRNG, NumpyRNG, RandomDistribution  # noqa: F401
from pyNN.recording import *  # noqa: F403
from pyNN.space import Space  # noqa: F401

from . import simulator
from .control import (  # noqa: F401
    end,
    get_current_time,
    get_max_delay,
    get_min_delay,
    get_time_step,
    initialize,
    num_processes,
    rank,
    reset,
    run,
    run_for,
    run_until,
    setup,
)
from .populations import Assembly, Population, PopulationView  # noqa: F401
from .procedural_api import connect, create, record, record_gsyn, record_v  # noqa: F401
from .projections import Projection  # noqa: F401
from .standardmodels import *  # noqa: F403
from .standardmodels import cell_types


def list_standard_models() -> list[str]:
    """The names of the standard cell types this backend simulates."""
    return cell_types()


def to_network() -> tuple:
    """The network as it stands: ``(network, state, names)`` with ``network`` a functional
    ``sapicore.functional.Network``, ``state`` its state now (the state at which the next ``run``
    would start) and ``names`` mapping each PyNN population label to its name in ``network``."""
    from .engine import build, carry

    state = simulator.state
    network, _, params = build(state)
    return (
        network,
        carry(network, state.network_state, state, params),
        {p.label: f"p{k}" for k, p in enumerate(state.populations)},
    )
