"""Models: a network with learning rules and optional sub-networks."""

from __future__ import annotations

from typing import Any

import torch

from ..learning import SapicoreLearning
from ..network import SapicoreNetwork
from ..neuron import SapicoreNeuron

__all__ = ["SapicoreModel"]


class SapicoreModel(SapicoreNetwork):
    """A Sapicore model: a [`SapicoreNetwork`][sapicore.network.SapicoreNetwork] that also holds learning rules
    and sub-networks connected through neurons at their boundaries (`networks`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.networks: dict[SapicoreNetwork, list[tuple[SapicoreNetwork, dict[SapicoreNeuron, SapicoreNeuron]]]] = {}

    def add_learning_rule(self, name: str, learning_rule: SapicoreLearning) -> None:
        """Register a learning rule; `apply_learning` decides how it is used."""
        if not isinstance(learning_rule, SapicoreLearning):
            raise TypeError(
                f"only a SapicoreLearning can be added as a learning rule, not a {type(learning_rule).__name__}"
            )
        self.add_module(name, learning_rule)

    def add_network(
        self,
        src_network: SapicoreNetwork | None,
        network_name: str,
        network: SapicoreNetwork,
        connected_neurons: dict[SapicoreNeuron, SapicoreNeuron] | None = None,
    ) -> None:
        """Add a named sub-network, optionally fed by ``src_network`` through ``connected_neurons``
        (source-network neuron -> this network's neuron)."""
        if not isinstance(network, SapicoreNetwork):
            raise TypeError(f"only a SapicoreNetwork can be added as a network, not a {type(network).__name__}")
        if src_network is not None:
            if src_network not in self.networks:
                raise ValueError("the source network is not in this model; add it with add_network first")
            self.networks[src_network].append((network, dict(connected_neurons or {})))
        if network not in self.networks:
            self.networks[network] = []
            self.add_module(network_name, network)

    def initialize_state(self, **kwargs: Any) -> None:
        """Initialise this model's neurons and synapses, then every sub-network's."""
        super().initialize_state(**kwargs)
        for network in self.networks:
            network.initialize_state(**kwargs)

    def initialize_learning_state(self) -> None:
        """Initialise every registered learning rule's state."""
        for module in self.children():
            if isinstance(module, SapicoreLearning):
                module.initialize_state()

    def apply_learning(self, **kwargs: Any) -> None:
        """Apply the model's learning; override it to say which rule acts on what."""

    def serve(self, data: torch.Tensor, duration: int, rinse: int = 0, learn: bool = False) -> torch.Tensor:
        """Present samples one after another, as the original Sapicore's ``Model.serve``.

        Each sample ``data[i]`` is the input of ``forward`` for ``duration`` steps, then a zero input
        for ``rinse`` steps (silence that lets the state relax before the next sample); with
        ``learn`` every one of those steps is followed by `apply_learning`. Returns the outputs of
        the presentation steps, ``(samples, duration, *output shape)``. For many independent samples
        at once, see ``sapicore.estimators`` (vmap lanes over the functional core).
        """
        for name, value, minimum in (("duration", duration, 1), ("rinse", rinse, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an int number of steps >= {minimum}, got {value!r}")
        if not isinstance(data, torch.Tensor) or data.dim() < 1 or data.shape[0] == 0:
            raise ValueError("data must be a tensor of samples along its first axis (at least one sample)")
        outputs = []
        for sample in data:
            presented = []
            for _ in range(duration):
                presented.append(self.forward(sample))
                if learn:
                    self.apply_learning()
            silence = torch.zeros_like(sample)
            for _ in range(rinse):
                self.forward(silence)
                if learn:
                    self.apply_learning()
            outputs.append(torch.stack(presented))
        return torch.stack(outputs)

    def fit(self, data: torch.Tensor, duration: int, rinse: int = 0) -> SapicoreModel:
        """`serve` the samples with learning on (``duration`` and ``rinse`` in steps)."""
        self.serve(data, duration, rinse, learn=True)
        return self
