"""Neurons: units that a [`SapicoreSynapse`][sapicore.synapse.SapicoreSynapse] connects inside a network."""

from __future__ import annotations

import torch

from ..base import SapicoreModule

__all__ = ["SapicoreNeuron"]


class SapicoreNeuron(SapicoreModule):
    """Neuron base class: override ``forward`` (and ``initialize_state`` if it holds state)."""

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        """Pass ``data`` through the neuron."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward(data)")
