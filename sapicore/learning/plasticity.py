"""Learning modules over the functional plasticity rules."""

from __future__ import annotations

from typing import Any

import attrs

import sapicore.functional as sf

from ..adapter import StateBuffers
from ..synapse.projection import ProjectionSynapse
from . import SapicoreLearning

__all__ = ["PlasticityLearning", "STDPLearning", "TripletSTDPLearning", "HebbianLearning", "OjaLearning", "RewardSTDPLearning"]


class PlasticityLearning(StateBuffers, SapicoreLearning):
    """Applies a functional plasticity rule to the weights of a :class:`ProjectionSynapse`.

    ``apply_learning(pre_neuron, synapse, post_neuron, modulator=None)`` uses the neurons' last
    outputs; it owns the rule's state (traces), created at the first call and reset by
    ``initialize_state``. Rule parameters are configurable properties.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("functional_class") is not None:
            cls._config_props_ = tuple(f.name for f in attrs.fields(cls.functional_class) if f.name != "stdp")

    def __init__(self, rule: Any = None, dt: float = 0.1, **parameters: Any) -> None:
        super().__init__()
        self._init_functional(rule, parameters, "rule")
        self.dt = dt
        self.__dict__["_has_state"] = False

    @property
    def rule(self) -> Any:
        return self._functional

    def initialize_state(self, **kwargs: Any) -> None:
        """Forget the traces; they are rebuilt at the next ``apply_learning``."""
        self.__dict__["_has_state"] = False

    def apply_learning(self, pre_neuron: Any = None, synapse: Any = None, post_neuron: Any = None, modulator: Any = None, **kwargs: Any) -> None:
        if not isinstance(synapse, ProjectionSynapse):
            raise TypeError(f"{type(self).__name__} learns on a ProjectionSynapse, got {type(synapse).__name__}")
        proj, state = synapse.projection, synapse.state
        if not self.__dict__["_has_state"]:
            traces = self.rule.init(proj.n_pre, proj.n_post, state.weights)
            self._store_tree("rule", traces)
            self.__dict__["_has_state"] = True
        traces = self._load_tree("rule")
        traces, weights = self.rule.update(traces, pre_neuron.output, post_neuron.output, state.weights, self.dt, proj.layout(), modulator)
        self._store_tree("rule", traces)
        synapse.state = sf.replace(state, weights=weights)

class STDPLearning(PlasticityLearning):
    """Pair-based STDP (:class:`sapicore.functional.STDP`)."""

    functional_class = sf.STDP


class TripletSTDPLearning(PlasticityLearning):
    """Triplet STDP (:class:`sapicore.functional.TripletSTDP`)."""

    functional_class = sf.TripletSTDP


class HebbianLearning(PlasticityLearning):
    """Hebbian rule (:class:`sapicore.functional.Hebbian`)."""

    functional_class = sf.Hebbian


class OjaLearning(PlasticityLearning):
    """Oja's rule (:class:`sapicore.functional.Oja`)."""

    functional_class = sf.Oja


class RewardSTDPLearning(PlasticityLearning):
    """Reward-modulated STDP (:class:`sapicore.functional.RewardSTDP`); pass ``modulator=reward``."""

    functional_class = sf.RewardSTDP
