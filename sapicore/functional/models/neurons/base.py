"""What every neuron model shares: input and consistency checks, state creation, field helpers."""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
import torch
import torch.utils._pytree as _pytree

from ..integrators import METHODS, canonical_method
from ..spikes import check_surrogate

__all__ = [
    "NeuronModel",
    "check_model",
    "check_input",
    "check_consistent",
    "check_dt",
    "broadcast_like",
    "method_field",
    "surrogate_field",
    "full_state",
]


def method_field(default: str, allowed: Sequence[str] = METHODS) -> Any:
    """An attrs field for the integration method: aliases are canonicalised, unknown names rejected."""

    def validator(instance: Any, attribute: attrs.Attribute, value: str) -> None:
        canonical_method(value, allowed)

    return attrs.field(
        default=default, converter=functools.partial(canonical_method, allowed=allowed), validator=validator
    )


def surrogate_field(default: str = "fast_sigmoid") -> Any:
    """An attrs field naming the surrogate gradient of the spike function (see ``SURROGATES``)."""

    def validator(instance: Any, attribute: attrs.Attribute, value: str) -> None:
        check_surrogate(value)

    return attrs.field(default=default, validator=validator)


def check_input(x: Any, like: torch.Tensor, name: str = "input") -> Any:
    """Return ``x`` if it is a valid input for a state variable shaped like ``like``, else raise.

    A Python number, or a floating tensor on ``like``'s device with ``like``'s dtype whose shape
    broadcasts to ``like.shape`` without changing it (a scalar, a per-neuron vector, ...).
    """
    if isinstance(x, numbers.Real) and not isinstance(x, bool):
        return x
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a number or a tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating tensor with dtype {like.dtype}, got {x.dtype}; convert it with .to({like.dtype})"
        )
    if x.dtype != like.dtype:
        raise TypeError(
            f"{name} has dtype {x.dtype} but the state is {like.dtype}; convert the input with .to({like.dtype})"
        )
    if x.device != like.device:
        raise ValueError(
            f"{name} is on {x.device} but the state is on {like.device}; move the input with .to('{like.device}')"
        )
    if x.shape != like.shape:
        try:
            shape = torch.broadcast_shapes(x.shape, like.shape)
        except RuntimeError:
            shape = None
        if shape != like.shape:
            raise ValueError(
                f"{name} of shape {tuple(x.shape)} does not fit a population of shape {tuple(like.shape)}; "
                "give one value per neuron (or a scalar)"
            )
    return x


def _named_tensors(tree: Any) -> list[tuple[str, torch.Tensor]]:
    pairs, _ = _pytree.tree_flatten_with_path(tree)
    return [(_pytree.keystr(path), leaf) for path, leaf in pairs if isinstance(leaf, torch.Tensor)]


def check_consistent(model: Any, state: Any) -> None:
    """Raise if the tensors of ``model`` and ``state`` are not on one device with one floating dtype."""
    state_tensors = [leaf for leaf in _pytree.tree_leaves(state) if isinstance(leaf, torch.Tensor)]
    reference = next((t for t in state_tensors if t.is_floating_point()), None)
    if reference is None:
        return
    for owner, tree in (("state", state), (type(model).__name__, model)):
        tensors = state_tensors if tree is state else _pytree.tree_leaves(tree)
        fits = (
            not isinstance(t, torch.Tensor)
            or (t.device == reference.device and (not t.is_floating_point() or t.dtype == reference.dtype))
            for t in tensors
        )
        if all(fits):  # the names (paths) are worked out only to tell which tensor does not fit
            continue
        for name, tensor in _named_tensors(tree):
            if tensor.device != reference.device:
                raise ValueError(
                    f"{owner}{name} is on {tensor.device} but the state is on {reference.device}; "
                    "move both with sapicore.functional.to(tree, device=...)"
                )
            if tensor.is_floating_point() and tensor.dtype != reference.dtype:
                raise TypeError(
                    f"{owner}{name} has dtype {tensor.dtype} but the state is {reference.dtype}; "
                    "convert both with sapicore.functional.to(tree, dtype=...)"
                )


def broadcast_like(x: Any, like: torch.Tensor) -> torch.Tensor:
    """``x`` (a number or a checked input tensor) as a tensor of ``like``'s shape (a view if possible)."""
    if isinstance(x, torch.Tensor):
        return x if x.shape == like.shape else x.expand(like.shape)
    return torch.full_like(like, x)


def set_where(mask: torch.Tensor, value: Any, x: torch.Tensor) -> torch.Tensor:
    """``x`` with ``value`` (a number or a tensor that broadcasts to ``x``) where ``mask`` is True; one
    op for a number (``masked_fill``), where ``torch.where`` would first make it a tensor."""
    if isinstance(value, numbers.Real):
        return x.masked_fill(mask, value)
    return torch.where(mask, value, x)


def full_state(value: Any, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """A tensor of ``shape`` filled with ``value`` (a number or a broadcastable tensor), like ``like``."""
    return (torch.zeros(shape, dtype=like.dtype, device=like.device) + value).to(like.dtype)


def _checking_state(step: Any) -> Any:
    """``step`` refusing a state of another model's class, naming both (not an AttributeError deep inside)."""

    @functools.wraps(step)
    def checked(self: Any, state: Any, *args: Any, **kwargs: Any) -> Any:
        expected = getattr(type(self), "state_class", None)
        if expected is not None and not isinstance(state, expected):
            raise TypeError(
                f"{type(self).__name__}.step takes a {expected.__name__}, got {type(state).__name__}; build it with "
                "model.init_state(shape)"
            )
        return step(self, state, *args, **kwargs)

    checked._checks_state = True
    return checked


class NeuronModel:
    """Base class of neuron models; subclass it to write your own (``examples/adaptive_lif.py``).

    The contract, checked by `check_model` with an error naming what is missing:

    * the class is a ``@sapicore.functional.pytree`` class whose fields are its parameters (use
      [`parameter`][sapicore.functional.pytree.parameter] with a check such as ``check_positive``);
    * ``state_class``: a ``@pytree`` class whose fields are the state tensors (``v``, ...);
    * ``initial_values(shape, zeros) -> dict``: each state field's resting value, as tensors shaped
      and typed like ``zeros`` (a zero tensor of the population's shape, device and dtype);
    * ``step(state, input, dt) -> (state, output)``: one pure step of ``dt`` ms (no in-place changes,
      no host synchronisation; see ``sapicore.functional.models.spikes.threshold`` for spikes with a
      surrogate gradient).

    Optional: ``output_name`` (default "spikes"), ``output_is_event`` (summed over a recording
    window when True, sampled when False), ``output_is_binary`` (every output 0 or 1) and ``stochastic`` (True when ``step`` draws random numbers). With these, the model runs in ``simulate``, ``sweep``,
    ``torch.func`` transforms, a ``Network`` population and compiled chunks (``fast=True``).
    """

    state_class: ClassVar[type]
    output_name: ClassVar[str] = "spikes"
    #: outputs that are events (spikes) are summed over a recording window; others are sampled
    output_is_event: ClassVar[bool] = True
    #: True where every output value is 0 or 1 (spikes of a threshold, a count never above 1): over
    #: gloo, a partitioned network's compiled chunks then send a step's outputs as bits (one a neuron
    #: instead of 32); a model that says so wrongly would lose values there (checked at the run's first
    #: step)
    output_is_binary: ClassVar[bool] = False
    #: False for input populations (sources) that projections may not target
    receives_projections: ClassVar[bool] = True
    #: parameters whose last axis counts something other than neurons (e.g. an oscillator's sine
    #: components): only their leading axes must broadcast to the population's shape
    component_fields: ClassVar[tuple[str, ...]] = ()
    #: True for models whose ``step`` draws random numbers (Poisson sources): a sweep then runs lanes
    #: with different seeds apart, so that each equals its single run
    stochastic: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        step = cls.__dict__.get("step")
        if step is not None and not getattr(step, "_checks_state", False):
            cls.step = _checking_state(step)

    def check_step(self, dt: float) -> None:
        """Raise if the parameters make no sense with steps of ``dt`` ms (called once before a run,
        with concrete values; by default nothing does)."""

    def _parameters(self) -> dict[str, Any]:
        return {field.name: getattr(self, field.name) for field in attrs.fields(type(self))}

    def init_state(
        self,
        shape: int | Sequence[int],
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Any:
        """The resting state of a population of ``shape`` neurons.

        ``device`` and ``dtype`` default to those of the model's tensor parameters, else to the CPU and
        torch's default dtype. Tensor parameters must broadcast to ``shape``.
        """
        check_model(self)
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if any(not isinstance(n, int) or n < 0 for n in shape):
            raise ValueError(f"shape must be a tuple of non-negative ints, got {shape}")
        tensors = [(name, v) for name, v in self._parameters().items() if isinstance(v, torch.Tensor)]
        for name, value in tensors:
            if not _fits(value.shape[:-1] if name in self.component_fields else value.shape, shape):
                raise ValueError(
                    f"{type(self).__name__}.{name} has shape {tuple(value.shape)}, which does not broadcast "
                    f"to the population shape {shape}"
                )
        if dtype is not None and not dtype.is_floating_point:
            raise TypeError(f"dtype must be floating (torch.float32 or torch.float64), got {dtype}")
        if tensors:
            device = tensors[0][1].device if device is None else device
            dtype = tensors[0][1].dtype if dtype is None else dtype
        zeros = torch.zeros(shape, device=device, dtype=dtype or torch.get_default_dtype())
        values = self.initial_values(shape, zeros)
        fields = {field.name for field in attrs.fields(self.state_class)}
        if not isinstance(values, dict) or set(values) != fields:
            given = sorted(values) if isinstance(values, dict) else type(values).__name__
            raise TypeError(
                f"{type(self).__name__}.initial_values must return a dict with one value per field of "
                f"{self.state_class.__name__} {sorted(fields)}, got {given}"
            )
        state = self.state_class(**values)
        check_consistent(self, state)
        return state

    def default_record(self) -> tuple[str, ...]:
        """What ``simulate`` records when not told: the output."""
        return (self.output_name,)

    def record_names(self) -> tuple[str, ...]:
        """Names that ``simulate`` can record: the state's fields and the output (a state field of
        the output's name, as a Poisson source's last draw, is read as the output)."""
        fields = tuple(field.name for field in attrs.fields(self.state_class) if field.name != self.output_name)
        return fields + (self.output_name,)

    def read(self, state: Any, output: Any, name: str) -> torch.Tensor:
        """The recordable value ``name`` after a step that left ``state`` and returned ``output``."""
        return output if name == self.output_name else getattr(state, name)

    def is_event(self, name: str) -> bool:
        """True when ``name`` counts events, to be summed (not sampled) over a recording window."""
        return name == self.output_name and self.output_is_event


def check_model(model: Any) -> None:
    """Raise ``TypeError`` naming what ``model`` lacks of the neuron-model contract (see `NeuronModel`)."""
    name = type(model).__name__
    if not isinstance(model, NeuronModel):
        raise TypeError(
            f"expected a neuron model (a subclass of sapicore.functional.NeuronModel) or a Network, got {name}"
        )
    if not getattr(type(model), "__sapicore_pytree__", False):
        raise TypeError(f"{name} must be decorated with @sapicore.functional.pytree (its fields are its parameters)")
    state_class = getattr(model, "state_class", None)
    if not (isinstance(state_class, type) and getattr(state_class, "__sapicore_pytree__", False)):
        raise TypeError(f"{name} needs state_class = a @pytree class whose fields are the state tensors")
    for method, signature in (
        ("initial_values", "(shape, zeros) -> dict"),
        ("step", "(state, input, dt) -> (state, output)"),
    ):
        if not callable(getattr(model, method, None)):
            raise TypeError(f"{name} needs a method {method}{signature} (see sapicore.functional.NeuronModel)")


def _fits(param_shape: Sequence[int], shape: tuple[int, ...]) -> bool:
    """True when a parameter of ``param_shape`` broadcasts to ``shape`` without changing it."""
    try:
        return torch.broadcast_shapes(tuple(param_shape), shape) == shape
    except RuntimeError:
        return False


def check_dt(dt: Any) -> float:
    """Return ``dt`` (ms) if it is a positive finite number, else raise ``ValueError``."""
    if isinstance(dt, torch.Tensor) or not isinstance(dt, numbers.Real) or isinstance(dt, bool):
        raise TypeError(f"dt must be a Python number of milliseconds, got {type(dt).__name__}")
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive finite number of milliseconds, got {dt}")
    return float(dt)
