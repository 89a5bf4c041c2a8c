"""The base of every object-API class: an ``nn.Module`` that is loggable, configurable and device-aware."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from tree_config import Configurable

from .logging import Loggable

__all__ = ["SapicoreModule"]


def _inputs_to_device(module: SapicoreModule, args: tuple) -> tuple:
    device, dtype = module.device, module._device_marker.dtype

    def place(a: object) -> object:
        if not isinstance(a, torch.Tensor):
            return a
        return a.to(device=device, dtype=dtype if a.is_floating_point() else a.dtype)

    return tuple(place(a) for a in args)


class SapicoreModule(Loggable, Configurable, nn.Module):
    """Base class of neurons, synapses, learning rules, networks and models.

    Tensors passed to ``forward`` are moved to the module's device (and floating ones cast to its
    floating dtype) first, so data made on the CPU can drive a model that was moved to a GPU with
    ``.to(device)`` or made double precision with ``.double()``.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.register_buffer("_device_marker", torch.empty(0), persistent=False)
        self.register_forward_pre_hook(_inputs_to_device)

    @property
    def device(self) -> torch.device:
        """The device this module lives on (where ``.to`` last moved it)."""
        return self._device_marker.device

    def initialize_state(self, **kwargs: Any) -> None:
        """Initialise the module's state before use; subclasses with state override it."""
