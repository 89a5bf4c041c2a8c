"""Bridges between modules and the functional core.

`StateBuffers` keeps a state pytree in a module's buffers, so ``state_dict`` saves it,
``load_state_dict`` restores it and ``.to(device)`` moves it. `FunctionalNeuron` wraps a
functional neuron model (parameters) and owns exactly one state pytree; its parameters are
configurable properties (tree-config) and its state variables read as attributes (``neuron.v``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
import torch
import torch.utils._pytree as _pytree

from .functional.pytree import tree_map
from .neuron import SapicoreNeuron

__all__ = ["StateBuffers", "FunctionalNeuron"]


def _buffer_name(prefix: str, path: tuple) -> str:
    parts = [prefix]
    for key in path:
        parts.append(str(getattr(key, "name", getattr(key, "key", getattr(key, "idx", key)))))
    return "__".join(parts)


class StateBuffers:
    """Mixin for ``nn.Module`` subclasses that wrap a functional object (``_functional``): keeps pytrees
    in buffers under a prefix, and moves or casts the functional object's tensors with the module."""

    def _store_tree(self, prefix: str, tree: Any) -> None:
        pairs, spec = _pytree.tree_flatten_with_path(tree)
        names = []
        for path, leaf in pairs:
            name = _buffer_name(prefix, path)
            if not isinstance(leaf, torch.Tensor):
                raise TypeError(f"state leaf {name} is not a tensor")
            self._buffers[name] = leaf
            names.append(name)
        self.__dict__.setdefault("_tree_specs", {})[prefix] = (spec, names)

    def _load_tree(self, prefix: str) -> Any:
        spec, names = self.__dict__["_tree_specs"][prefix]
        return _pytree.tree_unflatten([self._buffers[name] for name in names], spec)

    functional_class: ClassVar[type | None] = None

    def _init_functional(self, given: Any, parameters: dict[str, Any], what: str) -> None:
        """Keep ``given`` (or ``functional_class(**parameters)``); its fields become attributes."""
        if given is None:
            if self.functional_class is None:
                raise TypeError(f"{type(self).__name__} needs {what}= (a functional object)")
            given = self.functional_class(**parameters)
        elif parameters:
            raise TypeError(f"give either {what}= or parameters, not both")
        if self.functional_class is not None and not isinstance(given, self.functional_class):
            raise TypeError(f"{type(self).__name__} wraps {self.functional_class.__name__}, got {type(given).__name__}")
        self._set_functional(given)
        object.__setattr__(self, "_field_names", frozenset(field.name for field in attrs.fields(type(given))))

    def _set_functional(self, value: Any) -> None:
        object.__setattr__(
            self, "_functional", tree_map(lambda t: t.to(self.device) if isinstance(t, torch.Tensor) else t, value)
        )

    def __getattr__(self, name: str) -> Any:
        if name in self.__dict__.get("_field_names", ()):
            return getattr(self.__dict__["_functional"], name)
        return super().__getattr__(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.__dict__.get("_field_names", ()):
            self._set_functional(attrs.evolve(self._functional, **{name: value}))  # converted and validated
            return
        super().__setattr__(name, value)

    def _apply(self, fn: Any, recurse: bool = True) -> Any:
        super()._apply(fn, recurse)
        functional = self.__dict__.get("_functional")
        if functional is not None:
            object.__setattr__(
                self, "_functional", tree_map(lambda t: fn(t) if isinstance(t, torch.Tensor) else t, functional)
            )
        return self


class FunctionalNeuron(StateBuffers, SapicoreNeuron):
    """A population of neurons whose equations are a functional model (``sapicore.functional``).

    ``FunctionalNeuron(model=sf.LIF(), shape=100, dt=0.1)`` or, in a subclass that sets
    ``functional_class``, ``LIFNeuron(shape=100, tau_mem=10.0)``. Each ``forward(input)`` advances the
    state by ``dt`` ms with the functional ``step`` and returns (and keeps, as ``output``) its output.
    Parameters read and write as attributes (writes are validated: ``neuron.tau_mem = -1`` raises);
    state variables read as attributes (``neuron.v``). The state lives in buffers named
    ``state__<variable>``.
    """

    _config_props_ = ("dt",)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("functional_class") is not None:
            fields = attrs.fields(cls.functional_class)
            cls._config_props_ = tuple(field.name for field in fields)
            state_fields = attrs.fields(cls.functional_class.state_class)
            cls._loggable_props_ = tuple(field.name for field in state_fields)

    def __init__(self, shape: int | Sequence[int] = 1, dt: float = 0.1, model: Any = None, **parameters: Any) -> None:
        super().__init__()
        self._init_functional(model, parameters, "model")
        object.__setattr__(
            self, "_state_names", frozenset(field.name for field in attrs.fields(self.model.state_class))
        )
        self.shape = (shape,) if isinstance(shape, int) else tuple(shape)
        self.dt = dt
        self.output = None
        self.initialize_state()

    @property
    def model(self) -> Any:
        """The functional model (parameters pytree)."""
        return self._functional

    @model.setter
    def model(self, model: Any) -> None:
        if type(model) is not type(self._functional):
            raise TypeError(f"the model must stay a {type(self._functional).__name__}, got {type(model).__name__}")
        self._set_functional(model)

    @property
    def state(self) -> Any:
        """The state pytree (a fresh view of the buffers)."""
        return self._load_tree("state")

    @state.setter
    def state(self, state: Any) -> None:
        if not isinstance(state, self.model.state_class):
            raise TypeError(f"state must be a {self.model.state_class.__name__}, got {type(state).__name__}")
        self._store_tree("state", state)

    def initialize_state(self, **kwargs: Any) -> None:
        """Reset the state to the model's resting state."""
        self.state = self.model.init_state(self.shape, device=self.device, dtype=self._device_marker.dtype)

    def forward(self, data: Any = 0.0) -> torch.Tensor:
        """Advance by ``dt`` ms with input ``data``; return the output (spikes, or the activation)."""
        state, output = self.model.step(self.state, data, self.dt)
        self.state = state
        self.output = output
        return output

    def __getattr__(self, name: str) -> Any:
        if name in self.__dict__.get("_state_names", ()):
            return self._buffers[f"state__{name}"]
        return super().__getattr__(name)
