"""Projections: weighted, delayed connections from a source population to a target population.

A :class:`Projection` holds the structure (which synapses exist, their delays), the synapse model
and an optional plasticity rule; the changing parts (weights, synaptic variables, spikes in transit,
plasticity traces) live in its :class:`ProjectionState`. Two representations with the same meaning:

* ``"dense"``: a ``(n_pre, n_post)`` weight matrix; spikes in transit are kept as a history of the
  source's spikes, and the input of a step is a matrix product (cost ~ n_pre * n_post per step).
* ``"sparse"``: event-driven. The spiking source neurons' outgoing synapses are gathered from a
  padded table and added into a ring buffer of future inputs at their delay. On the CPU, where no
  gradient can flow, one compiled kernel does this (:mod:`sapicore.functional.kernels`) at a cost
  ~ spikes * out-degree per step, eagerly, compiled and under ``vmap`` alike; it never overflows.
  Elsewhere (a GPU, autograd, or without the kernel) torch ops do it: under ``torch.compile``,
  ``vmap``, autograd or on a GPU at most ``capacity`` spiking sources are picked with fixed shapes
  (``nonzero_static``; ``topk`` under vmap), at a cost ~ capacity * max out-degree per step and
  without host synchronisation; if more than ``capacity`` sources spike in one step, the excess is
  not delivered and the state's ``overflow`` flag is raised. ``simulate`` and ``sweep`` then run
  that chunk of steps again at full capacity, so no spike is lost there (see
  ``stepper._Rerun``); a loop of your own over ``step`` should check the flag. In a plain eager CPU
  run exactly the spiking sources are taken (``nonzero``, one host synchronisation per step), which
  never overflows.

Delays: a spike emitted in step n through a synapse of delay d ms reaches the synapse model at the
start of step ``n + 1 + round(d / dt)`` (round half to even). So a delay of 0 acts in the next step,
as in Brian2, where ``on_pre`` acts at the end of the spiking step.

With plasticity and delays, the dense form applies the weight current at arrival, the sparse form
the weight at emission; without delays both use the same weight.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import attrs
import torch

from . import kernels
from .connectivity import Connectivity
from .layout import Layout
from .pytree import pytree, replace

__all__ = ["Projection", "ProjectionState", "projection", "select_sources"]


@pytree
class ProjectionState:
    """State of a projection.

    weights: current weights (nA or µS per synapse; layout as in :mod:`sapicore.functional.layout`);
    synapse: the synapse model's state; pending: spikes in transit (dense: source spike history,
    ``(max_delay + 1, n_pre)``; sparse: future inputs, ``(max_delay + 1, n_post + 1)``);
    step: steps taken (int64); overflow: True once a step had more spiking sources than ``capacity``;
    plasticity: the rule's state (or None).
    """

    weights: torch.Tensor
    synapse: Any
    pending: torch.Tensor
    step: torch.Tensor
    overflow: torch.Tensor
    plasticity: Any = None


def _static(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        raise TypeError(f"Projection.{attribute.name} must be a Python value, not a tensor")


@pytree
class Projection:
    """Connections from population ``source`` to population ``target``; build with :func:`projection`."""

    source: str = attrs.field(validator=_static)
    target: str = attrs.field(validator=_static)
    n_pre: int = attrs.field(validator=_static)
    n_post: int = attrs.field(validator=_static)
    kind: str = attrs.field(validator=attrs.validators.in_(("dense", "sparse")))
    weights: torch.Tensor = attrs.field()
    mask: torch.Tensor = attrs.field()
    targets: Any = None
    delays: Any = 0
    max_delay: int = 0
    synapse: Any = None
    plasticity: Any = None
    capacity: Any = None
    dt: float = 0.1
    normalize: Any = None

    def layout(self) -> Layout:
        return Layout(self.kind, self.mask, self.targets, self.n_post)

    def init_state(self, like: torch.Tensor) -> ProjectionState:
        """Initial state: the built weights, empty synapses, nothing in transit."""
        weights = self.weights.to(device=like.device, dtype=like.dtype)
        width = self.n_pre if self.kind == "dense" else self.n_post + 1
        zeros = torch.zeros(self.n_post, dtype=like.dtype, device=like.device)
        plasticity = None if self.plasticity is None else self.plasticity.init(self.n_pre, self.n_post, weights)
        return ProjectionState(
            weights=weights,
            synapse=self.synapse.init_state(zeros),
            pending=torch.zeros(self.max_delay + 1, width, dtype=like.dtype, device=like.device),
            step=torch.zeros((), dtype=torch.int64, device=like.device),
            overflow=torch.zeros((), dtype=torch.bool, device=like.device),
            plasticity=plasticity,
        )

    def arrivals(self, state: ProjectionState) -> tuple[ProjectionState, torch.Tensor]:
        """The weighted input (nA or µS) reaching each target neuron at the start of this step."""
        length = self.max_delay + 1
        if self.kind == "sparse" and length == 1:  # no delays: the buffer is this step's input
            return replace(state, pending=torch.zeros_like(state.pending)), state.pending[0, : self.n_post]
        slot = torch.remainder(state.step, length)
        if self.kind == "sparse":
            index = slot.reshape(1)
            row = state.pending.index_select(0, index)[0]
            return replace(state, pending=state.pending.index_fill(0, index, 0.0)), row[: self.n_post]
        if isinstance(self.delays, int):
            spikes = state.pending.index_select(0, slot.reshape(1))[0]
            return state, spikes @ state.weights
        slots = torch.remainder(state.step - 1 - self.delays, length)  # (n_pre, n_post)
        spikes = state.pending.transpose(0, 1).gather(1, slots)
        return state, (spikes * state.weights).sum(0)

    def emit(self, state: ProjectionState, spikes: torch.Tensor, selection: Any = None, kernel: bool | None = None) -> ProjectionState:
        """Put this step's source spikes in transit and advance the step counter.

        ``selection``, from :func:`select_sources` with at least this projection's capacity, lets
        projections that share a source population pick its spiking neurons once. ``kernel`` says
        whether the CPU kernel propagates (``kernels.usable``), when the caller has decided already.
        """
        length = self.max_delay + 1
        slot = torch.remainder(state.step, length)
        if self.kind == "dense":
            here = (torch.arange(length, device=slot.device) == slot)[:, None]
            pending = torch.where(here, spikes[None, :], state.pending)
            return replace(state, pending=pending, step=state.step + 1)
        if kernel if kernel is not None else kernels.usable(spikes, state.weights):
            pending = kernels.propagate(state.pending, spikes, self.targets, state.weights, self.delays, state.step)
            return replace(state, pending=pending, step=state.step + 1)
        rows, values, count = selection if selection is not None else select_sources(spikes, self.capacity)
        if count is None:
            overflow = state.overflow
        else:
            rows, values = rows[: self.capacity], values[: self.capacity]
            overflow = state.overflow | (count > self.capacity)
        contributions = state.weights.index_select(0, rows) * values[:, None]
        delays = self.delays if isinstance(self.delays, int) else self.delays.index_select(0, rows)
        arrive = torch.remainder(state.step + 1 + delays, length)
        flat = (arrive * (self.n_post + 1) + self.targets.index_select(0, rows)).reshape(-1)
        pending = state.pending.reshape(-1).index_add(0, flat, contributions.reshape(-1)).reshape(state.pending.shape)
        return replace(state, pending=pending, step=state.step + 1, overflow=overflow)

    def learn(self, state: ProjectionState, pre: torch.Tensor, post: torch.Tensor, dt: float, modulator: Any = None) -> ProjectionState:
        """Apply the plasticity rule (if any) and the weight normalisation (if any)."""
        if self.plasticity is None:
            return state
        layout = self.layout()
        plasticity, weights = self.plasticity.update(state.plasticity, pre, post, state.weights, dt, layout, modulator)
        if self.normalize is not None:
            scale = self.normalize / layout.incoming_sum(weights).clamp(min=1e-12)
            weights = layout.keep(weights * layout.post(scale))
        return replace(state, weights=weights, plasticity=plasticity)


def select_sources(spikes: torch.Tensor, capacity: int) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """The spiking source neurons of a step: (rows, spike values, spike count or None).

    In a plain eager CPU run exactly the spiking rows (count None: nothing can overflow). Elsewhere
    ``capacity`` rows with fixed shapes: ``nonzero_static`` (unused rows point at the padding row
    ``n_pre``), or ``topk`` under vmap, which has a batching rule for it; the count then tells the
    caller whether spikes were left out.
    """
    if _plain_eager(spikes):
        rows = torch.nonzero(spikes).reshape(-1)  # sync-ok: eager path only, see _plain_eager
        return rows, spikes.index_select(0, rows), None
    if torch._C._are_functorch_transforms_active():
        values, rows = torch.topk(spikes, capacity)
    else:
        rows = torch.nonzero_static(spikes, size=capacity, fill_value=spikes.shape[0]).reshape(-1)
        values = torch.cat([spikes, spikes.new_zeros(1)]).index_select(0, rows)
    return rows, values, spikes.sum()


def _plain_eager(spikes: torch.Tensor) -> bool:
    """True when no compiler, vmap or autograd transform sees this call, so shapes may depend on data."""
    return not (
        torch.compiler.is_compiling()
        or torch._C._are_functorch_transforms_active()
        or (torch.is_grad_enabled() and spikes.requires_grad)
        or spikes.device.type != "cpu"
    )


def _per_synapse(value: Any, count: int, name: str) -> torch.Tensor:
    tensor = torch.as_tensor(value, dtype=torch.get_default_dtype() if not isinstance(value, torch.Tensor) else None)
    if tensor.dim() == 0:
        return tensor.expand(count).clone()
    if tensor.shape != (count,):
        raise ValueError(f"{name} must be a number or one value per synapse ({count}), got shape {tuple(tensor.shape)}")
    return tensor


def projection(
    source: str,
    target: str,
    connectivity: Connectivity,
    weight: Any,
    synapse: Any,
    *,
    dt: float,
    delay: Any = 0.0,
    kind: str = "sparse",
    plasticity: Any = None,
    capacity: int | None = None,
    normalize: float | None = None,
) -> Projection:
    """Build a projection from ``source`` to ``target`` (population names).

    Args:
        connectivity: which synapses exist (see :mod:`sapicore.functional.connectivity`).
        weight: a number or one value per synapse (nA for current synapses, µS for conductances).
        synapse: a synapse model (``Delta``, ``Exponential``, ``DualExponential``).
        dt: the simulation step (ms) the delays are rounded to.
        delay: a number or one value per synapse (ms), >= 0; see the module docstring.
        kind: "sparse" (event-driven) or "dense".
        plasticity: a rule from :mod:`sapicore.functional.plasticity`, or None.
        capacity: sparse only: most source spikes propagated per step (default: a tenth of the
            sources, at least 32); more raise the overflow flag.
        normalize: if set, after each plasticity update scale the weights onto each target neuron to
            sum to this value.
    """
    if not isinstance(connectivity, Connectivity):
        raise TypeError(f"connectivity must be a Connectivity (from sapicore.functional.connectivity), got {type(connectivity).__name__}")
    if kind not in ("dense", "sparse"):
        raise ValueError(f"kind must be 'dense' or 'sparse', got {kind!r}")
    if not (isinstance(dt, numbers.Real) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number of milliseconds, got {dt!r}")
    if synapse is None or not hasattr(synapse, "update"):
        raise TypeError(f"synapse must be a synapse model such as Exponential(tau=5.0), got {synapse!r}")
    count, n_pre, n_post = len(connectivity), connectivity.n_pre, connectivity.n_post
    weights = _per_synapse(weight, count, "weight")
    if not weights.is_floating_point():
        raise TypeError(f"weights must be floating point (plastic weights change continuously), got {weights.dtype}")
    if not bool(torch.isfinite(weights).all()):
        raise ValueError("weights must be finite")
    if synapse.conductance_based and bool((weights < 0).any()):
        raise ValueError("conductance-based synapses need weights >= 0 (µS); the reversal potential sets the sign")
    delays_ms = _per_synapse(delay, count, "delay").to(torch.float64)
    if not bool(torch.isfinite(delays_ms).all()) or bool((delays_ms < 0).any()):
        raise ValueError("delays must be finite and >= 0 ms")
    steps = torch.round(delays_ms / dt).to(torch.int64)
    max_delay = int(steps.max()) if count else 0
    homogeneous = count == 0 or bool((steps == steps[0]).all())
    pre, post = connectivity.pre, connectivity.post

    if kind == "dense":
        matrix = torch.zeros(n_pre, n_post, dtype=weights.dtype)
        matrix[pre, post] = weights
        mask = torch.zeros(n_pre, n_post, dtype=torch.bool)
        mask[pre, post] = True
        if homogeneous:
            delays: Any = max_delay
        else:
            delays = torch.zeros(n_pre, n_post, dtype=torch.int64)
            delays[pre, post] = steps
        targets = None
        capacity = None
    else:
        out_degree = connectivity.out_degree()
        width = max(1, int(out_degree.max()) if count else 1)
        starts = torch.cumsum(out_degree, 0) - out_degree
        column = torch.arange(count) - starts[pre]
        targets = torch.full((n_pre + 1, width), n_post, dtype=torch.int64)
        targets[pre, column] = post
        matrix = torch.zeros(n_pre + 1, width, dtype=weights.dtype)
        matrix[pre, column] = weights
        mask = targets < n_post
        if homogeneous:
            delays = max_delay
        else:
            delays = torch.zeros(n_pre + 1, width, dtype=torch.int64)
            delays[pre, column] = steps
        if capacity is None:
            capacity = min(n_pre, max(32, n_pre // 10))
        if isinstance(capacity, bool) or not isinstance(capacity, int) or not 0 < capacity <= max(n_pre, 1):
            raise ValueError(f"capacity must be an int in [1, n_pre={n_pre}], got {capacity!r}")
    if homogeneous and isinstance(delays, int):
        delays = int(max_delay)
    return Projection(
        source=source,
        target=target,
        n_pre=n_pre,
        n_post=n_post,
        kind=kind,
        weights=matrix,
        mask=mask,
        targets=targets,
        delays=delays,
        max_delay=max_delay,
        synapse=synapse,
        plasticity=plasticity,
        capacity=capacity,
        dt=float(dt),
        normalize=normalize,
    )
