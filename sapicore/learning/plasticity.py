"""Learning modules over the functional plasticity rules."""

from __future__ import annotations

import math
from typing import Any

import attrs

import sapicore.functional as sf

from ..adapter import StateBuffers
from ..synapse.projection import ProjectionSynapse
from . import SapicoreLearning

__all__ = [
    "PlasticityLearning",
    "STDPLearning",
    "TripletSTDPLearning",
    "HebbianLearning",
    "OjaLearning",
    "RewardSTDPLearning",
]


class PlasticityLearning(StateBuffers, SapicoreLearning):
    """A functional plasticity rule applied to the weights of `ProjectionSynapse` modules.

    ``apply_learning(pre_neuron, synapse, post_neuron, modulator=None)`` attaches the rule to the
    synapse the first time (``synapse.use_rule``) and then calls the synapse's ``learn`` with the
    neurons' last outputs: the projection's own ``learn``, normalisation included, as in the
    functional core. The rule's traces live in the synapse's state (one owner), so they are saved
    with the synapse's ``state_dict`` and carried by ``to_functional``. Rule parameters are
    configurable properties; a changed parameter reaches the synapse at the next call, traces kept.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("functional_class") is not None:
            cls._config_props_ = tuple(f.name for f in attrs.fields(cls.functional_class) if f.name != "stdp")

    def __init__(self, rule: Any = None, dt: float = 0.1, **parameters: Any) -> None:
        super().__init__()
        self._init_functional(rule, parameters, "rule")
        self.dt = dt
        self.__dict__["_synapses"] = []

    @property
    def rule(self) -> Any:
        return self._functional

    @property
    def synapses(self) -> list[ProjectionSynapse]:
        """The synapses this rule acts on."""
        return list(self.__dict__["_synapses"])

    def bind(self, synapse: ProjectionSynapse) -> None:
        """Attach this rule to ``synapse`` (done by the first ``apply_learning`` on it)."""
        if not isinstance(synapse, ProjectionSynapse):
            raise TypeError(f"{type(self).__name__} learns on a ProjectionSynapse, got {type(synapse).__name__}")
        if not math.isclose(synapse.dt, self.dt, rel_tol=1e-9):
            raise ValueError(f"{type(self).__name__} has dt={self.dt} ms but its synapse steps with dt={synapse.dt} ms")
        synapse.use_rule(self.rule)
        if all(bound is not synapse for bound in self.__dict__["_synapses"]):
            self.__dict__["_synapses"].append(synapse)

    def initialize_state(self, **kwargs: Any) -> None:
        """Reset the traces of every synapse this rule acts on."""
        for synapse in self.__dict__["_synapses"]:
            synapse.reset_traces()

    def apply_learning(
        self, pre_neuron: Any = None, synapse: Any = None, post_neuron: Any = None, modulator: Any = None, **kwargs: Any
    ) -> None:
        for role, neuron in (("pre_neuron", pre_neuron), ("post_neuron", post_neuron)):
            if getattr(neuron, "output", None) is None:
                raise ValueError(
                    f"{type(self).__name__}.apply_learning: {role} ({type(neuron).__name__}) has no output yet; run a "
                    "step (the neurons' forward) before applying learning"
                )
        if not isinstance(synapse, ProjectionSynapse) or not synapse.uses(self.rule):
            self.bind(synapse)
        synapse.learn(pre_neuron.output, post_neuron.output, modulator)


class STDPLearning(PlasticityLearning):
    """Pair-based STDP ([`sapicore.functional.STDP`][sapicore.functional.STDP])."""

    functional_class = sf.STDP


class TripletSTDPLearning(PlasticityLearning):
    """Triplet STDP ([`sapicore.functional.TripletSTDP`][sapicore.functional.TripletSTDP])."""

    functional_class = sf.TripletSTDP


class HebbianLearning(PlasticityLearning):
    """Hebbian rule ([`sapicore.functional.Hebbian`][sapicore.functional.Hebbian])."""

    functional_class = sf.Hebbian


class OjaLearning(PlasticityLearning):
    """Oja's rule ([`sapicore.functional.Oja`][sapicore.functional.Oja])."""

    functional_class = sf.Oja


class RewardSTDPLearning(PlasticityLearning):
    """Reward-modulated STDP ([`sapicore.functional.RewardSTDP`][sapicore.functional.RewardSTDP]); pass ``modulator=reward``."""

    functional_class = sf.RewardSTDP
