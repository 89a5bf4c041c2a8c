"""Networks of neurons linked by synapses (`SapicoreNetwork.add_neuron`, `add_synapse`)."""

from __future__ import annotations

import math
from typing import Any

import torch

import sapicore.functional as sf

from ..adapter import FunctionalNeuron
from ..base import SapicoreModule
from ..learning import SapicoreLearning
from ..learning.plasticity import PlasticityLearning
from ..neuron import SapicoreNeuron
from ..synapse import SapicoreSynapse
from ..synapse.projection import ProjectionSynapse

__all__ = ["SapicoreNetwork"]


class SapicoreNetwork(SapicoreModule):
    """A network: neurons (keys of `neurons`, each with its outgoing synapses) and synapses (keys
    of `synapses`, each with the neurons it ends on).

    Networks of functional adapters ([`FunctionalNeuron`][sapicore.adapter.FunctionalNeuron],
    [`ProjectionSynapse`][sapicore.synapse.projection.ProjectionSynapse]) convert to a functional network with
    `to_functional`, so ``simulate`` and ``sweep`` can run them, and `step` advances them
    with exactly the functional network's step.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.neurons: dict[SapicoreNeuron, list[SapicoreSynapse]] = {}
        self.synapses: dict[SapicoreSynapse, list[SapicoreNeuron]] = {}

    def add_neuron(self, src_synapse: SapicoreSynapse | None, neuron_name: str, neuron: SapicoreNeuron) -> None:
        """Add a named neuron, optionally as the target of ``src_synapse`` (already in the network)."""
        if not isinstance(neuron, SapicoreNeuron):
            raise TypeError(f"only a SapicoreNeuron can be added as a neuron, not a {type(neuron).__name__}")
        if src_synapse is not None:
            if not isinstance(src_synapse, SapicoreSynapse):
                raise TypeError(f"the source of a neuron must be a SapicoreSynapse, not a {type(src_synapse).__name__}")
            if src_synapse not in self.synapses:
                raise ValueError("the source synapse is not in this network; add it with add_synapse first")
            self.synapses[src_synapse].append(neuron)
        if neuron not in self.neurons:
            self.neurons[neuron] = []
            self.add_module(neuron_name, neuron)

    def add_synapse(self, src_neuron: SapicoreNeuron | None, synapse_name: str, synapse: SapicoreSynapse) -> None:
        """Add a named synapse, optionally leaving ``src_neuron`` (already in the network)."""
        if not isinstance(synapse, SapicoreSynapse):
            raise TypeError(f"only a SapicoreSynapse can be added as a synapse, not a {type(synapse).__name__}")
        if src_neuron is not None:
            if not isinstance(src_neuron, SapicoreNeuron):
                raise TypeError(f"the source of a synapse must be a SapicoreNeuron, not a {type(src_neuron).__name__}")
            if src_neuron not in self.neurons:
                raise ValueError("the source neuron is not in this network; add it with add_neuron first")
            self.neurons[src_neuron].append(synapse)
        if synapse not in self.synapses:
            self.synapses[synapse] = []
            self.add_module(synapse_name, synapse)

    def initialize_state(self, **kwargs: Any) -> None:
        """Initialise every neuron and synapse (``kwargs`` are passed on)."""
        for neuron in self.neurons:
            neuron.initialize_state(**kwargs)
        for synapse in self.synapses:
            synapse.initialize_state(**kwargs)

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(data) (or use step())")

    def _name(self, module: Any) -> str:
        return next(name for name, child in self._modules.items() if child is module)

    def to_functional(self) -> tuple[sf.Network, sf.NetworkState]:
        """The functional network and its current state, learning rules included.

        Every module must be a functional adapter whose behaviour is its functional object: a
        subclass that overrides ``forward`` (or a learning module that overrides ``apply_learning``)
        holds Python code that a functional network cannot carry, so it is refused with an error
        naming the class. To convert such behaviour, write it as a functional model (a subclass of
        a model in ``sapicore.functional`` with its own ``step``) and give it to the adapter as
        ``model=``. Learning modules must have been attached to their synapses (``apply_learning``
        does so the first time; ``rule.bind(synapse)`` does it beforehand).
        """
        self._check_learning()
        populations, states, projections, proj_states = {}, {}, {}, {}
        for neuron in self.neurons:
            if not isinstance(neuron, FunctionalNeuron):
                raise TypeError(f"{self._name(neuron)!r} is a {type(neuron).__name__}, not a functional adapter")
            _refuse_override(self._name(neuron), neuron, FunctionalNeuron, "forward")
            if len(neuron.shape) != 1:
                raise ValueError(f"{self._name(neuron)!r} has shape {neuron.shape}; networks need 1-d populations")
            populations[self._name(neuron)] = sf.Population(neuron.model, neuron.shape[0])
            states[self._name(neuron)] = neuron.state
        for synapse, targets in self.synapses.items():
            name = self._name(synapse)
            if not isinstance(synapse, ProjectionSynapse):
                raise TypeError(f"{name!r} is a {type(synapse).__name__}, not a ProjectionSynapse")
            _refuse_override(name, synapse, ProjectionSynapse, "forward")
            sources = [n for n, outgoing in self.neurons.items() if synapse in outgoing]
            if len(sources) != 1 or len(targets) != 1:
                raise ValueError(f"synapse {name!r} must leave exactly one neuron and end on exactly one")
            projections[name] = sf.replace(
                synapse.projection, source=self._name(sources[0]), target=self._name(targets[0])
            )
            proj_states[name] = synapse.state
        return sf.Network(populations=populations, projections=projections), sf.NetworkState(states, proj_states)

    def _check_learning(self) -> None:
        """Raise for a learning module that the functional network would not carry."""
        for name, module in self._modules.items():
            if not isinstance(module, SapicoreLearning):
                continue
            if not isinstance(module, PlasticityLearning):
                raise TypeError(
                    f"learning rule {name!r} is a {type(module).__name__}, not a functional plasticity rule "
                    "(sapicore.learning.plasticity); to_functional cannot carry it"
                )
            _refuse_override(name, module, PlasticityLearning, "apply_learning")
            if not module.synapses:
                raise ValueError(
                    f"learning rule {name!r} is not attached to a synapse yet; call {name}.bind(synapse) "
                    "(the first apply_learning does it) before to_functional"
                )
            for synapse in module.synapses:
                if synapse not in self.synapses:
                    raise ValueError(f"learning rule {name!r} acts on a synapse outside this network")

    def load_functional_state(self, state: sf.NetworkState) -> None:
        """Write a functional network state (from `to_functional` and a run) back into the modules."""
        for name, pop_state in state.populations.items():
            self._modules[name].state = pop_state
        for name, proj_state in state.projections.items():
            self._modules[name].state = proj_state

    def step(self, inputs: Any = None, dt: float | None = None) -> dict[str, torch.Tensor]:
        """Advance every neuron and synapse by one step of the functional network; return the outputs."""
        net, state = self.to_functional()
        if dt is None:
            steps = {neuron.dt for neuron in self.neurons} | {synapse.dt for synapse in self.synapses}
            if len(steps) != 1 or not all(math.isclose(d, next(iter(steps))) for d in steps):
                raise ValueError(f"the modules disagree on dt ({sorted(steps)}); pass dt=")
            dt = steps.pop()
        state, outputs = net.step(state, inputs, dt)
        self.load_functional_state(state)
        for name, output in outputs.items():
            self._modules[name].output = output
        return outputs


def _refuse_override(name: str, module: Any, base: type, method: str) -> None:
    """Raise when ``module``'s class overrides ``base.method``: code a functional network cannot carry."""
    if getattr(type(module), method) is not getattr(base, method):
        raise TypeError(
            f"{name!r} is a {type(module).__name__}, which overrides {method}(); a functional network cannot carry "
            f"that code. Write the behaviour as a functional model (a sapicore.functional class with its own step) "
            f"and pass it as model=, or run the modules' own loop instead of to_functional/step"
        )
