"""A synapse module over a functional projection (weights, delays, synapse model, plasticity)."""

from __future__ import annotations

from typing import Any

import torch

import sapicore.functional as sf

from ..adapter import StateBuffers
from . import SapicoreSynapse

__all__ = ["ProjectionSynapse", "DeltaSynapse", "ExponentialSynapse", "DualExponentialSynapse", "AlphaSynapse"]


class ProjectionSynapse(StateBuffers, SapicoreSynapse):
    """Synapses from a source population to a target population (a [`sapicore.functional.Projection`][sapicore.functional.Projection]).

    Build it like [`sapicore.functional.projection`][sapicore.functional.propagation.projection.projection] without the population names (the network
    supplies them): ``ProjectionSynapse(connectivity.fixed_probability(100, 50, 0.1), weight=0.5,
    synapse=sf.Exponential(5.0))``, or from a built projection with ``projection=``. It owns one
    [`ProjectionState`][sapicore.functional.ProjectionState] (weights, synaptic variables, spikes in transit,
    plasticity traces), kept in buffers named ``state__...``.

    ``forward(pre_spikes, v_post)`` returns the synaptic current (nA) into the target neurons for this
    step (from spikes sent in earlier steps, at their delays) and puts ``pre_spikes`` in transit
    (scaled by their short-term efficacy with ``short_term=sf.TsodyksMarkram(...)``), as
    ``Network.step`` does; `learn` applies the plasticity rule as ``Projection.learn`` does.
    """

    _loggable_props_ = ("weights",)
    _config_props_ = ("dt",)

    def __init__(
        self,
        connectivity: Any = None,
        weight: Any = None,
        synapse: Any = None,
        *,
        projection: Any = None,
        dt: float = 0.1,
        **options: Any,
    ) -> None:
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

    def use_rule(self, rule: Any) -> None:
        """Make ``rule`` (a functional plasticity rule) this synapse's learning rule.

        Its traces live in this synapse's state (buffers ``state__plasticity__...``): kept when the
        rule replaces one of its own class (a changed parameter), taken from a loaded ``state_dict``
        when one held them, fresh otherwise. Learning modules call this on their first
        ``apply_learning``; call it yourself to convert a network with `to_functional` first.
        """
        proj, state = self.projection, self.state
        keep = proj.plasticity is not None and type(proj.plasticity) is type(rule)
        self._set_functional(sf.replace(proj, plasticity=rule))
        self.__dict__["_rule_source"] = rule
        if keep:
            return
        loaded = {name: self._buffers[name] for name in self.__dict__.pop("_loaded_traces", ())}
        self.state = sf.replace(state, plasticity=rule.init(proj.n_pre, proj.n_post, state.weights))
        for name, value in loaded.items():
            if self._buffers.get(name) is value or self._buffers[name].shape != value.shape:
                raise ValueError(f"the loaded trace {name} does not fit the rule {type(rule).__name__}")
            self._buffers[name].copy_(value)

    def uses(self, rule: Any) -> bool:
        """True when ``rule`` (the object given to `use_rule`) is this synapse's rule."""
        return self.__dict__.get("_rule_source") is rule

    def reset_traces(self) -> None:
        """Set the plasticity rule's traces (if any) to their initial values."""
        proj, state = self.projection, self.state
        if proj.plasticity is not None:
            self.state = sf.replace(state, plasticity=proj.plasticity.init(proj.n_pre, proj.n_post, state.weights))

    def learn(self, pre: torch.Tensor, post: torch.Tensor, modulator: Any = None) -> None:
        """Apply the projection's plasticity rule and normalisation to this step's outputs of the
        source (``pre``) and target (``post``) neurons: exactly ``Projection.learn``."""
        if self.projection.plasticity is None:
            raise ValueError("this synapse has no plasticity rule; give it one with use_rule(rule) or plasticity=")
        self.state = self.projection.learn(self.state, pre, post, self.dt, modulator)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any) -> None:
        wiring = state_dict.get(prefix + "state__wiring")
        if wiring is not None and not torch.equal(wiring.to(self.device), self._buffers["state__wiring"]):
            raise ValueError(
                f"{prefix}state was saved from other synapses (which pairs are connected, their delays or dt differ "
                "from this synapse's, though the shapes may agree); load it into a synapse built the same way"
            )
        # traces of a trained rule load before the rule is attached: kept as buffers (so that state_dict
        # gives them back) and moved into the rule's state by use_rule
        traces = prefix + "state__plasticity__"
        unknown = [key for key in state_dict if key.startswith(traces) and key[len(prefix) :] not in self._buffers]
        for key in unknown:
            name = key[len(prefix) :]
            self._buffers[name] = torch.empty_like(state_dict[key], device=self.device)  # filled by the load below
            self.__dict__.setdefault("_loaded_traces", []).append(name)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def forward(self, pre_spikes: torch.Tensor, v_post: Any = None) -> torch.Tensor:
        """Current into the target neurons this step; ``pre_spikes`` go in transit."""
        proj = self.projection
        if proj.synapse.conductance_based and v_post is None:
            raise ValueError(
                "a conductance-based synapse needs the target's membrane potential: forward(spikes, v_post)"
            )
        state = self.state
        synapse = proj.synapse.update(state.synapse, proj.arrivals(state), self.dt)
        self.current = proj.synapse.current(synapse, v_post)
        self.state = proj.send(sf.replace(state, synapse=synapse), pre_spikes, self.dt)
        return self.current


class DeltaSynapse(ProjectionSynapse):
    """Instantaneous synapses ([`sapicore.functional.Delta`][sapicore.functional.Delta]); ``e_rev`` makes them conductances."""

    def __init__(self, connectivity: Any, weight: Any, e_rev: float | None = None, **options: Any) -> None:
        super().__init__(connectivity, weight, sf.Delta(e_rev=e_rev), **options)


class ExponentialSynapse(ProjectionSynapse):
    """Exponential synapses ([`sapicore.functional.Exponential`][sapicore.functional.Exponential]), time constant ``tau`` (ms)."""

    def __init__(
        self, connectivity: Any, weight: Any, tau: float = 5.0, e_rev: float | None = None, **options: Any
    ) -> None:
        super().__init__(connectivity, weight, sf.Exponential(tau=tau, e_rev=e_rev), **options)


class DualExponentialSynapse(ProjectionSynapse):
    """Dual-exponential synapses ([`sapicore.functional.DualExponential`][sapicore.functional.DualExponential]), rise and decay in ms."""

    def __init__(
        self,
        connectivity: Any,
        weight: Any,
        tau_rise: float = 1.0,
        tau_decay: float = 5.0,
        e_rev: float | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            connectivity, weight, sf.DualExponential(tau_rise=tau_rise, tau_decay=tau_decay, e_rev=e_rev), **options
        )


class AlphaSynapse(ProjectionSynapse):
    """Alpha-function synapses ([`sapicore.functional.Alpha`][sapicore.functional.Alpha]) peaking ``tau`` ms after a spike."""

    def __init__(
        self, connectivity: Any, weight: Any, tau: float = 5.0, e_rev: float | None = None, **options: Any
    ) -> None:
        super().__init__(connectivity, weight, sf.Alpha(tau=tau, e_rev=e_rev), **options)
