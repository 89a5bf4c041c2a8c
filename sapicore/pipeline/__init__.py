"""Pipelines: configurable, loggable procedures that build, run and train models."""

from __future__ import annotations

from tree_config import Configurable

from ..logging import Loggable

__all__ = ["PipelineBase"]


class PipelineBase(Loggable, Configurable):
    """Base class of pipelines; override `run`."""

    def run(self) -> None:
        """Run the pipeline."""
        raise NotImplementedError(f"{type(self).__name__} must implement run()")
