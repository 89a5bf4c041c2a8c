"""Synapses: connections from one neuron (population) to another inside a network."""

from __future__ import annotations

import torch

from ..base import SapicoreModule

__all__ = ["SapicoreSynapse"]


class SapicoreSynapse(SapicoreModule):
    """Synapse base class: override ``forward`` (and ``initialize_state`` if it holds state)."""

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        """Pass ``data`` through the synapse."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward(data)")
