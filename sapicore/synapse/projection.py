"""A synapse module over a functional projection (weights, delays, synapse model, plasticity)."""

from __future__ import annotations

from typing import Any

import torch

import sapicore.functional as sf

from ..adapter import StateBuffers
from . import SapicoreSynapse

__all__ = ["ProjectionSynapse", "DeltaSynapse", "ExponentialSynapse", "DualExponentialSynapse"]


class ProjectionSynapse(StateBuffers, SapicoreSynapse):
    """Synapses from a source population to a target population (a :class:`sapicore.functional.Projection`).

    Build it like :func:`sapicore.functional.projection` without the population names (the network
    supplies them): ``ProjectionSynapse(connectivity.fixed_probability(100, 50, 0.1), weight=0.5,
    synapse=sf.Exponential(5.0))``, or from a built projection with ``projection=``. It owns one
    :class:`~sapicore.functional.ProjectionState` (weights, synaptic variables, spikes in transit,
    plasticity traces), kept in buffers named ``state__...``.

    ``forward(pre_spikes, v_post)`` returns the synaptic current (nA) into the target neurons for this
    step (from spikes sent in earlier steps, at their delays) and puts ``pre_spikes`` in transit.
    """

    _loggable_props_ = ("weights",)
    _config_props_ = ("dt",)

    def __init__(self, connectivity: Any = None, weight: Any = None, synapse: Any = None, *, projection: Any = None, dt: float = 0.1, **options: Any) -> None:
        super().__init__()
        if projection is None:
            if connectivity is None or weight is None or synapse is None:
                raise TypeError("ProjectionSynapse needs connectivity, weight and synapse (or projection=)")
            projection = sf.projection("pre", "post", connectivity, weight, synapse, dt=dt, **options)
        elif not isinstance(projection, sf.Projection):
            raise TypeError(f"projection must be a sapicore.functional.Projection, got {type(projection).__name__}")
        self._set_functional(projection)
        self.dt = projection.dt
        self.current = None
        self.initialize_state()

    @property
    def projection(self) -> sf.Projection:
        """The functional projection (structure, synapse model, plasticity rule)."""
        return self._functional

    @property
    def state(self) -> sf.ProjectionState:
        return self._load_tree("state")

    @state.setter
    def state(self, state: sf.ProjectionState) -> None:
        if not isinstance(state, sf.ProjectionState):
            raise TypeError(f"state must be a ProjectionState, got {type(state).__name__}")
        self._store_tree("state", state)

    @property
    def weights(self) -> torch.Tensor:
        """Current weights (layout of the projection: dense matrix or padded rows)."""
        return self._buffers["state__weights"]

    def initialize_state(self, **kwargs: Any) -> None:
        """Reset weights to their built values and empty the synapses."""
        like = torch.zeros(1, device=self.device, dtype=self._device_marker.dtype)
        self.state = self.projection.init_state(like)

    def forward(self, pre_spikes: torch.Tensor, v_post: Any = None) -> torch.Tensor:
        """Current into the target neurons this step; ``pre_spikes`` go in transit."""
        proj = self.projection
        if proj.synapse.conductance_based and v_post is None:
            raise ValueError("a conductance-based synapse needs the target's membrane potential: forward(spikes, v_post)")
        state = self.state
        pending, arriving = proj.arrivals(state)
        synapse = proj.synapse.update(state.synapse, arriving, self.dt)
        self.current = proj.synapse.current(synapse, v_post)
        self.state = proj.emit(sf.replace(state, pending=pending, synapse=synapse), pre_spikes)
        return self.current


class DeltaSynapse(ProjectionSynapse):
    """Instantaneous synapses (:class:`sapicore.functional.Delta`); ``e_rev`` makes them conductances."""

    def __init__(self, connectivity: Any, weight: Any, e_rev: float | None = None, **options: Any) -> None:
        super().__init__(connectivity, weight, sf.Delta(e_rev=e_rev), **options)


class ExponentialSynapse(ProjectionSynapse):
    """Exponential synapses (:class:`sapicore.functional.Exponential`), time constant ``tau`` (ms)."""

    def __init__(self, connectivity: Any, weight: Any, tau: float = 5.0, e_rev: float | None = None, **options: Any) -> None:
        super().__init__(connectivity, weight, sf.Exponential(tau=tau, e_rev=e_rev), **options)


class DualExponentialSynapse(ProjectionSynapse):
    """Dual-exponential synapses (:class:`sapicore.functional.DualExponential`), rise and decay in ms."""

    def __init__(self, connectivity: Any, weight: Any, tau_rise: float = 1.0, tau_decay: float = 5.0, e_rev: float | None = None, **options: Any) -> None:
        super().__init__(connectivity, weight, sf.DualExponential(tau_rise=tau_rise, tau_decay=tau_decay, e_rev=e_rev), **options)
