"""The simulator state of ``sapicore.pynn``: what PyNN's common code asks of a backend.

The network is described on PyNN's side (populations, projections, current sources, recorders)
and turned into a functional ``sapicore.functional.Network`` each time ``run`` starts; its state
(membrane potentials, synaptic variables, spikes in transit, plastic weights) carries from one run
to the next, so ``run(a); run(b)`` equals ``run(a + b)``.
"""

from __future__ import annotations

from typing import Any

import torch
from pyNN import common

name = "Sapicore"


class ID(int, common.IDMixin):
    """A cell's global ID."""

    def __init__(self, n: int) -> None:
        int.__init__(n)
        common.IDMixin.__init__(self)


class State(common.control.BaseState):
    """Time, the objects of the network, and the functional network's state between runs.

    Settings (from ``setup``): ``dt`` (ms), ``min_delay``, ``max_delay`` (ms or 'auto'), ``fast``
    (compiled chunks, see ``sapicore.functional.simulate``), ``device``, ``dtype`` and ``rng_seed``
    (the Poisson sources' stream, restarted by ``reset``).
    """

    def __init__(self) -> None:
        common.control.BaseState.__init__(self)
        self.mpi_rank = 0
        self.num_processes = 1
        self.dt = 0.1
        self.min_delay: Any = "auto"
        self.max_delay: Any = "auto"
        self.fast: Any = False
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.rng_seed = 0
        self.clear()

    def clear(self) -> None:
        """Forget the whole network (``setup`` calls this)."""
        self.recorders: set = set()
        self.populations: list = []
        self.projections: list = []
        self.current_sources: list = []
        self.id_counter = 0
        self.segment_counter = -1
        self.write_on_end = []
        self.reset()

    def reset(self) -> None:
        """Time back to 0; neurons and weights to their initial values at the next run."""
        self.running = False
        self.t_start = 0
        self.steps = 0
        self.changed()
        self.segment_counter += 1
        self.network_state = None
        self.pending_initial: list = []
        self.generator = torch.Generator().manual_seed(self.rng_seed)
        for projection in self.projections:
            projection._restore_initial()
        for recorder in self.recorders:
            recorder._clear_simulator()
        for source in self.current_sources:
            source.recorded.clear()

    def changed(self) -> None:
        """Note that the network's structure, parameters or weights changed: the next run builds the
        functional network again (otherwise it reuses the one it has)."""
        self.built = None

    @property
    def min_delay(self) -> Any:
        """The shortest delay (ms): as set in ``setup``, or with 'auto' the shortest delay of the
        projections made so far (the time step if there are none)."""
        if self._min_delay != "auto":
            return self._min_delay
        delays = [p._values["delay"].min() for p in getattr(self, "projections", []) if len(p)]
        return float(min(delays)) if delays else self.dt

    @min_delay.setter
    def min_delay(self, value: Any) -> None:
        self._min_delay = value

    @property
    def t(self) -> float:
        """The current time (ms)."""
        return self.steps * self.dt

    def run(self, simtime: float) -> None:
        self.run_until(self.t + simtime)

    def run_until(self, tstop: float) -> None:
        from .engine import advance

        steps = int(round((tstop - self.t) / self.dt))
        if steps > 0:
            advance(self, steps)
        self.running = True


state = State()
