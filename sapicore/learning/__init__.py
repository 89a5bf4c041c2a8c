"""Learning rules: applied by a [`SapicoreModel`][sapicore.model.SapicoreModel] to its neurons and synapses."""

from __future__ import annotations

from typing import Any

from ..base import SapicoreModule

__all__ = ["SapicoreLearning"]


class SapicoreLearning(SapicoreModule):
    """Learning rule base class: override ``apply_learning`` (and ``initialize_state``)."""

    def apply_learning(self, **kwargs: Any) -> None:
        """Apply the rule; subclasses override it."""
