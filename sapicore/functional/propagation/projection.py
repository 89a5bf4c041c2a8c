"""Projections: weighted, delayed connections from a source population to a target population.

Every projection follows one protocol (`Projection`), called by ``Network.step`` in this
order:

* ``init_state(like)`` -> `ProjectionState`: the built weights, a resting synapse, nothing in
  transit;
* ``arrivals(state)`` -> ``input``: the weighted input (nA or µS per target neuron) that reaches the
  synapse model at the start of this step (a row of the ring buffer);
* ``send(state, spikes, dt)``: scales the spikes by their short-term efficacy (with ``short_term``),
  then ``emit(state, spikes)``: clears that row, and this step's source spikes enter transit, with
  the current weights;
* ``learn(state, pre, post, dt, modulator)``: the plasticity rule and weight normalisation.

Two implementations own their weight layout (`sapicore.functional.models.layout`) and share the rest:

* `DenseProjection`: a ``(n_pre, n_post)`` weight matrix; emitting is a matrix product (cost
  ~ n_pre x n_post per step).
* `SparseProjection`: event-driven. The spiking sources' outgoing synapses are gathered from a
  padded table (cost ~ spikes x out-degree): one row per source, or, where out-degrees differ
  widely, rows narrower than the widest source, each source in consecutive rows (`SynapseTable`'s
  ``width``); its ``propagation`` backend (see
  [`sapicore.functional.transforms`][sapicore.functional.transforms]) is chosen once per run by ``simulate`` and ``sweep``.
  With a fixed ``capacity`` (compiled runs, gradients, GPUs) a step with more spiking sources than
  ``capacity`` raises the state's ``overflow`` flag and the excess is not delivered; ``simulate`` and
  ``sweep`` then run that chunk again at full capacity, so no spike is lost there
  ([`sapicore.functional.running.capacity`][sapicore.functional.running.capacity]); a loop of your own over ``step`` should check the flag.

Both keep spikes in transit the same way: a ring buffer ``pending`` of future input, one row per step
of delay, ``(max_delay + 1, n_post + 1)`` (the last column absorbs padding). A spike emitted in step n
through a synapse of delay d ms is added, **with the synapse's weight at emission**, to the row that
the target reads at the start of step ``n + 1 + round(d / dt)`` (round half to even). So a delay of 0
acts in the next step, as in Brian2, where ``on_pre`` acts at the end of the spiking step. The weight
is read when the spike is emitted, before step n's plasticity update (as a Brian2 ``on_pre`` that
adds ``w`` before changing it), and a weight that changes while a spike is in transit does not
change that spike (as in NEST, where the weight travels with the event). Dense and sparse
projections therefore give identical results, with plasticity and heterogeneous delays too.
"""

from __future__ import annotations

import ctypes
import functools
import math
import numbers
import weakref
from typing import Any, ClassVar, NamedTuple

import attrs
import torch

from ..models.layout import DenseLayout, Layout, SparseLayout
from ..models.plasticity import PlasticityRule
from ..models.short_term import TsodyksMarkram
from ..models.synapses import SynapseModel
from ..pytree import pytree, replace
from ..transforms import RunContext, traced
from . import gpu_kernels, kernels
from .backends import KERNELS, PROPAGATIONS, propagation, propagation_now
from .connectivity import Connectivity

__all__ = [
    "Projection",
    "DenseProjection",
    "SparseProjection",
    "ProjectionState",
    "SynapseTable",
    "RowLayout",
    "row_layout",
    "projection",
    "select_sources",
]


@pytree
class ProjectionState:
    """State of a projection.

    weights: current weights (nA or µS per synapse; layout as in `sapicore.functional.models.layout`);
    synapse: the synapse model's state; pending: future input ``(max_delay + 1, n_post + 1)``, row
    ``k`` read at the steps equal to ``k`` modulo ``max_delay + 1``; step: steps taken (int64);
    overflow: True once a step had more spiking sources than a fixed ``capacity`` (sparse only);
    plasticity: the rule's state (or None); wiring: the projection's `Projection.wiring` when
    the state was built (which synapses exist, their delays and dt), so that a state (or a checkpoint)
    is refused on a network whose synapses differ, even with the same shapes; short_term: the
    sources' short-term plasticity state (`ShortTermState`, or None).
    """

    weights: torch.Tensor
    synapse: Any
    pending: torch.Tensor
    step: torch.Tensor
    overflow: torch.Tensor
    plasticity: Any = None
    wiring: Any = None
    short_term: Any = None


def _static(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        raise TypeError(f"{type(instance).__name__}.{attribute.name} must be a Python value, not a tensor")


def _check_short_term(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and not isinstance(value, TsodyksMarkram):
        raise TypeError(
            f"short_term must be None or a TsodyksMarkram(U=..., tau_rec=..., tau_facil=...), got {value!r}"
        )


@pytree
class Projection:
    """The projection protocol; build one with `projection`.

    Fields shared by both kinds: ``source``, ``target`` (a population name, or a tuple of names whose
    neurons are numbered one population after the other), ``n_pre``, ``n_post``,
    ``weights`` (built weights, in the kind's layout), ``mask`` (True where a synapse exists),
    ``delays`` (an int number of steps for all synapses, or an integer tensor in the weights' layout),
    ``max_delay`` (steps), ``synapse`` (a synapse model), ``plasticity`` (a rule or None), ``dt``
    (the step, ms, that delays were rounded to), ``normalize`` (None or the sum of the weights
    onto each target neuron kept after each plasticity update), ``short_term`` (None or a
    `TsodyksMarkram` that scales each source's spikes by its efficacy before they are transmitted)
    and ``in_place`` (the CPU kernel adds
    into the state's ring buffer itself, not into a copy: set by ``simulate`` and ``sweep`` for the
    state they own, see `own_buffers`).
    """

    kind: ClassVar[str]

    source: str | tuple = attrs.field(validator=_static)
    target: str | tuple = attrs.field(validator=_static)
    n_pre: int = attrs.field(validator=_static)
    n_post: int = attrs.field(validator=_static)
    weights: torch.Tensor = attrs.field()
    synapse: Any = None
    delays: Any = 0
    max_delay: int = 0
    plasticity: Any = None
    dt: float = attrs.field(default=0.1, metadata={"structural": True})
    normalize: Any = None
    short_term: Any = attrs.field(default=None, kw_only=True, validator=_check_short_term)
    in_place: bool = attrs.field(default=False, kw_only=True)

    def layout(self) -> Layout:
        """Addressing helpers for this projection's weights."""
        raise NotImplementedError

    def init_state(self, like: torch.Tensor) -> ProjectionState:
        """Initial state on ``like``'s device and dtype: built weights, resting synapse, nothing in transit."""
        weights = self.weights.to(device=like.device, dtype=like.dtype)
        zeros = torch.zeros(self.n_post, dtype=like.dtype, device=like.device)
        plasticity = None if self.plasticity is None else self.plasticity.init(self.n_pre, self.n_post, weights)
        return ProjectionState(
            weights=weights,
            synapse=self.synapse.init_state(zeros),
            pending=torch.zeros(self.max_delay + 1, self.n_post + 1, dtype=like.dtype, device=like.device),
            step=torch.zeros((), dtype=torch.int64, device=like.device),
            overflow=torch.zeros((), dtype=torch.bool, device=like.device),
            plasticity=plasticity,
            wiring=self.wiring().to(like.device),
            short_term=None if self.short_term is None else self.short_term.init(self.n_pre, like),
        )

    def wiring(self) -> torch.Tensor:
        """A fingerprint (0-d int64) of this projection's structure: which synapses exist (and where,
        in its layout), their delays, ``dt`` and the sizes. Equal projections give equal fingerprints;
        another connectivity (a changed seed, say) almost surely another, even with the same shapes."""
        layout = self.targets if isinstance(self, SparseProjection) else self.mask
        static = (
            self.n_pre,
            self.n_post,
            self.max_delay,
            round(self.dt * 1e9),
            self.delays if isinstance(self.delays, int) else -1,
        )
        delays = self.delays if isinstance(self.delays, torch.Tensor) else None
        first_row = getattr(self, "first_row", None)
        total = fingerprint(layout, delays, static)
        return total if first_row is None else total * 1000003 + _checksum(first_row)

    def lane_wiring(self) -> torch.Tensor:
        """`wiring` of each lane of a stacked projection, ``(lanes,)``: computed once when the lanes
        share their synapses (a stride-0 view of one table, as ``stack`` makes them), else lane by lane."""
        layout = self.targets if isinstance(self, SparseProjection) else self.mask
        structure = [t for name in STRUCTURE if isinstance(t := self.__dict__.get(name), torch.Tensor)]
        if all(t.stride(0) == 0 for t in structure):
            return _lane(self, _one_lane).wiring().expand(layout.shape[0])
        return torch.stack([_lane(self, lambda t, i=i: t[i]).wiring() for i in range(layout.shape[0])])

    def arrivals(self, state: ProjectionState) -> torch.Tensor:
        """The weighted input (nA or µS) reaching each target neuron at the start of this step: the
        ring buffer's row ``step mod (max_delay + 1)``, which `emit` clears."""
        if self.in_place:  # read and cleared by the kernel, so that compiled chunks keep the order
            return kernels.take_row_(state.pending, state.step)[: self.n_post]
        if self.max_delay == 0:  # one row: this step's input
            return state.pending[0, : self.n_post]
        index = torch.remainder(state.step, self.max_delay + 1).reshape(1)
        return state.pending.index_select(0, index)[0, : self.n_post]

    def _cleared(self, state: ProjectionState) -> torch.Tensor:
        """The ring buffer without the row `arrivals` read this step."""
        if self.max_delay == 0:
            return torch.zeros_like(state.pending)
        return state.pending.index_fill(0, torch.remainder(state.step, self.max_delay + 1).reshape(1), 0.0)

    def learn(
        self, state: ProjectionState, pre: torch.Tensor, post: torch.Tensor, dt: float, modulator: Any = None
    ) -> ProjectionState:
        """Apply the plasticity rule (if any), then the weight normalisation (if any)."""
        if self.plasticity is None:
            return state
        layout = self.layout()
        plasticity, weights = self.plasticity.update(state.plasticity, pre, post, state.weights, dt, layout, modulator)
        if self.normalize is not None:
            scale = self.normalize / layout.incoming_sum(weights).clamp(min=1e-12)
            weights = layout.keep(weights * layout.post(scale))
        return replace(state, weights=weights, plasticity=plasticity)

    def send(self, state: ProjectionState, spikes: torch.Tensor, dt: float, selection: Any = None) -> ProjectionState:
        """`emit` this step's source output, first scaled by each source's short-term efficacy
        (updating its state, and the values a ``selection`` of spiking sources carries) when the
        projection has ``short_term``."""
        if self.short_term is not None:
            spikes, short_term = self.short_term.release(state.short_term, spikes, dt)
            state = replace(state, short_term=short_term)
            selection = _with_values(selection, spikes)
        return self.emit(state, spikes, selection)

    def emit(self, state: ProjectionState, spikes: torch.Tensor, selection: Any = None) -> ProjectionState:
        """Clear the ring-buffer row delivered this step, put this step's source output in transit and
        advance the step counter.

        ``selection`` (sparse only) is what the network decided for this step: the output of
        `select_sources` (the source's spiking neurons, picked once for all its projections),
        or the name of the kernel that propagates (``cpu_kernel``, ``gpu_kernel``); None lets the
        projection decide.
        """
        raise NotImplementedError

    def for_run(self, context: RunContext) -> Projection:
        """This projection as a run in ``context`` uses it (the sparse kind picks its backend)."""
        return self

    def with_full_capacity(self) -> Projection:
        """This projection with room for every source spike in a step."""
        return self

    def selection_capacity(self, spikes: torch.Tensor, weights: torch.Tensor) -> tuple[str, int] | None:
        """(backend, capacity) of this step's propagation (sparse only; else None)."""
        return None

    def _row(self, state: ProjectionState, extra: int) -> torch.Tensor:
        """The ring-buffer row ``extra`` steps of delay after the next step's (``extra``: an int or a
        tensor of delays, which may be int8: the sum is taken in int64)."""
        if isinstance(extra, torch.Tensor):
            extra = extra.to(torch.int64)
        return torch.remainder(state.step + 1 + extra, self.max_delay + 1)


def _one_lane(tensor: torch.Tensor) -> torch.Tensor:
    """Lane 0 of a stacked tensor: the very tensor that was stacked when the lanes share it (a stride-0
    view of it), so that its cached fingerprint is found."""
    base = tensor._base
    if tensor.stride(0) == 0 and base is not None and base.shape == tensor.shape[1:]:
        return base
    return tensor[0]


#: a projection's structure tensors: which synapses exist, where, and their delays
STRUCTURE = ("targets", "mask", "delays", "first_row")


def _lane(projection: Any, take: Any) -> Any:
    """``projection`` with ``take`` applied to its structure tensors (targets or mask, delays, first_row)."""
    names = [name for name in STRUCTURE if isinstance(projection.__dict__.get(name), torch.Tensor)]
    return replace(projection, **{name: take(getattr(projection, name)) for name in names})


_FINGERPRINTS: dict[int, tuple] = {}  # id(layout) -> (weak reference, key, fingerprint)
_CHUNK = 1 << 16  # values per step of the fingerprint's sum (part of its definition)
_MIX = -7046029254386353131  # an odd 64-bit constant


def _wrapped(value: int) -> int:
    """``value`` as a signed 64-bit integer (two's complement wrap-around)."""
    return (value + 2**63) % 2**64 - 2**63


def _checksum(tensor: torch.Tensor) -> torch.Tensor:
    """Position-weighted sum of an integer (or bool) tensor's values, wrapping in int64: it does not
    depend on the order of summation, so every device and lane layout gives the same value."""
    flat = tensor.reshape(-1)
    weights = torch.arange(_CHUNK, dtype=torch.int64, device=flat.device) * _MIX + 1
    total = torch.zeros((), dtype=torch.int64, device=flat.device)
    for start in range(0, flat.shape[0], _CHUNK):
        part = flat[start : start + _CHUNK].to(torch.int64)
        total = total + (part * weights[: part.shape[0]]).sum() * 31 + part.sum() * _wrapped(start * _MIX + 7)
    return total


def fingerprint(layout: torch.Tensor, delays: torch.Tensor | None, static: tuple) -> torch.Tensor:
    """The fingerprint of a projection's ``layout`` tensor (targets or mask), per-synapse ``delays``
    and ``static`` integers; cached per layout tensor (the full microcircuit's takes about a second)."""
    if layout.device.type == "meta":  # a state's shapes only (see checks.check_fits): no values to sum
        return torch.zeros((), dtype=torch.int64, device="meta")
    concrete = not traced(layout)
    key = (layout._version, static, None if delays is None else (id(delays), delays._version)) if concrete else None
    cached = _FINGERPRINTS.get(id(layout)) if key is not None else None
    if cached is not None and cached[0]() is layout and cached[1] == key:
        return cached[2]
    total = _checksum(layout) + _wrapped(hash(static))
    if delays is not None:
        total = total * 1000003 + _checksum(delays)
    if key is not None:
        number = id(layout)
        # the callback holds the dict itself: at interpreter exit the module's globals may be gone
        forget = lambda _, cache=_FINGERPRINTS, number=number: cache.pop(number, None)  # noqa: E731
        _FINGERPRINTS[number] = (weakref.ref(layout, forget), key, total)
    return total


def _add_at_rows(
    pending: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor, values: torch.Tensor
) -> torch.Tensor:
    """``pending`` with ``values`` added at ``(rows, columns)`` (broadcast together), out of place."""
    flat = (rows * pending.shape[1] + columns).reshape(-1)
    return pending.reshape(-1).index_add(0, flat, values.reshape(-1)).reshape(pending.shape)


def _check_full(instance: Any, attribute: attrs.Attribute, value: bool) -> None:
    """``full`` must be a bool, and True only where the mask has no gap."""
    if not isinstance(value, bool):
        raise TypeError(f"DenseProjection.full must be True or False, got {value!r}")
    mask = instance.mask
    if value and isinstance(mask, torch.Tensor) and not traced(mask) and mask.device.type != "meta":
        if not bool(mask.all()):  # sync-ok: building or replacing a projection, outside the steps
            raise ValueError("DenseProjection.full=True, but its mask leaves some (source, target) pairs out")


@pytree
class DenseProjection(Projection):
    """A projection stored as a ``(n_pre, n_post)`` weight matrix (zero where ``mask`` is False).

    ``full`` says that every (source, target) pair is a synapse (``mask`` all True, as all-to-all
    connectivity makes it): plasticity then skips masking its updates, a pass over every weight
    per step. Stacked lanes are full if each lane is.
    """

    kind: ClassVar[str] = "dense"

    mask: torch.Tensor = attrs.field(kw_only=True)
    full: bool = attrs.field(default=False, kw_only=True, validator=_check_full, metadata={"lanes": all})

    def layout(self) -> Layout:
        return DenseLayout(None if self.full else self.mask, self.n_post)

    def emit(self, state: ProjectionState, spikes: torch.Tensor, selection: Any = None) -> ProjectionState:
        if isinstance(self.delays, int):
            current = torch.cat([spikes @ state.weights, spikes.new_zeros(1)])
            if self.max_delay == 0:
                pending = current[None]
            else:
                row = self._row(state, self.delays).reshape(1)
                pending = self._cleared(state).index_add(0, row, current[None])
        else:  # per-synapse delays: each synapse's contribution goes to its own row
            columns = torch.arange(self.n_post, device=spikes.device)
            pending = _add_at_rows(
                self._cleared(state), self._row(state, self.delays), columns, spikes[:, None] * state.weights
            )
        return replace(state, pending=pending, step=state.step + 1)


def _check_propagation(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value not in PROPAGATIONS:
        raise ValueError(f"propagation must be one of {', '.join(PROPAGATIONS)}, got {value!r}")


@pytree
class SparseProjection(Projection):
    """An event-driven projection: one padded row of outgoing synapses per source neuron.

    ``targets[i, k]`` is the target of source ``i``'s ``k``-th synapse (``n_post`` where unused: a
    row's synapses come first, its padding after them; the extra row ``n_pre`` is all padding), int32,
    or uint16 where the target group has at most 65,535 neurons and the projection is not plastic (see
    `target_dtype` and `for_run`); ``delays``, if a
    tensor, is int8 (int16 from 128 steps, int32 from 32,768) in the same
    layout; ``capacity``: most table rows propagated per step by the fixed-shape backends (with one
    row per source: most spiking sources); ``propagation``: the backend
    ([`sapicore.functional.transforms`][sapicore.functional.transforms]). ``first_row``: None (row
    ``i`` is source ``i``'s), or int64 ``(n_pre + 1,)`` for a table whose rows are narrower than the
    widest source: source ``i``'s synapses fill rows ``first_row[i]`` to ``first_row[i + 1] - 1``, one
    after the other, and the table has ``first_row[n_pre] + 1`` rows (see `SynapseTable`'s
    ``width``). Build one with `projection` or `SynapseTable`.
    """

    kind: ClassVar[str] = "sparse"

    targets: torch.Tensor = attrs.field(kw_only=True)
    capacity: int = attrs.field(default=32, kw_only=True)
    propagation: str = attrs.field(default="auto", validator=_check_propagation, kw_only=True)
    first_row: Any = attrs.field(default=None, kw_only=True)

    @first_row.validator
    def _check_first_row(self, attribute: attrs.Attribute, value: Any) -> None:
        if value is None:
            return
        rows = self.targets.shape[-2] - 1
        lanes = self.targets.dim() - 2  # 1 for a stacked projection (sweep lanes)
        if not (
            isinstance(value, torch.Tensor)
            and value.dtype == torch.int64
            and value.dim() == 1 + lanes
            and value.shape[-1] == self.n_pre + 1
        ):
            raise ValueError(f"first_row must be None or an int64 tensor of n_pre + 1 = {self.n_pre + 1} entries")
        first, last = value[..., 0], value[..., -1]
        ascending = bool((value[..., 1:] >= value[..., :-1]).all())  # sync-ok: checking a built projection
        if bool((first != 0).any()) or bool((last != rows).any()) or not ascending:  # sync-ok: checking
            raise ValueError(
                f"first_row must ascend from 0 to the table's {rows} rows (targets has one more, of padding), "
                f"got {first.min()}..{last.max()}"
            )

    @property
    def mask(self) -> torch.Tensor:
        """True where a slot of the table holds a synapse (computed, not stored)."""
        return self.targets != self.n_post

    @property
    def rows(self) -> int:
        """The table's rows that may hold synapses (all but the padding row)."""
        return self.targets.shape[-2] - 1

    def row_sources(self) -> torch.Tensor:
        """The source neuron of each row of the table, ``n_pre`` for the padding row (int64)."""
        device = self.targets.device
        if self.first_row is None:
            return torch.arange(self.n_pre + 1, device=device)
        starts = self.first_row[..., 1:]
        ones = torch.ones_like(starts)
        marks = torch.zeros((*starts.shape[:-1], self.rows + 1), dtype=torch.int64, device=device)
        return torch.cumsum(marks.scatter_add(-1, starts, ones), -1)  # sources starting at or before each row

    def per_row(self, values: torch.Tensor) -> torch.Tensor:
        """Per-source ``values`` (n_pre,) for each row of the table but the padding row, ``(rows,)``."""
        if self.first_row is None:
            return values
        return values.index_select(0, self.row_sources()[: self.rows])

    def layout(self) -> Layout:
        targets = self.targets.int()  # uint16 tables too (a run's plastic projections have int32 ones: see for_run)
        row_sources = None if self.first_row is None else self.row_sources()
        return SparseLayout(targets != self.n_post, targets, self.n_post, row_sources)

    def for_run(self, context: RunContext) -> SparseProjection:
        try:
            backend = propagation(context, self.propagation)
        except ValueError as err:
            raise ValueError(f"projection {self.source!r} -> {self.target!r}: {err}") from None
        proj = self
        if self.plasticity is not None and self.targets.dtype != torch.int32:
            # plasticity reads the table at every step, and compiled code converts uint16 one value at
            # a time (compiled COBA-4k with STDP: 7.6 s per biological second against 5.0); the table
            # of a plastic projection is int32 when built with its rule, widened here when one was added later
            proj = replace(self, targets=self.targets.int())
        if context.nested and backend in ("fixed", "topk"):  # no rerun inside an outer transform
            return replace(proj, propagation=backend, capacity=self.rows)
        # in place only where it saves a copy of the ring buffer: with one row (no delays) the
        # functional kernel allocates its output without copying, and a step dispatches one op, not two;
        # lanes of a sweep too (the ops' vmap rules change every lane's buffer in one call), but not
        # inside an outer transform, whose state the run does not own
        in_place = backend == "cpu_kernel" and self.max_delay > 0 and not context.nested
        return replace(proj, propagation=backend, in_place=in_place)

    def with_full_capacity(self) -> SparseProjection:
        return replace(self, capacity=self.rows)

    def _backend(self, spikes: torch.Tensor, weights: torch.Tensor) -> str:
        return self.propagation if self.propagation != "auto" else propagation_now(spikes, weights)

    def selection_capacity(self, spikes: torch.Tensor, weights: torch.Tensor) -> tuple[str, int] | None:
        backend = self._backend(spikes, weights)
        if self.first_row is not None and backend not in KERNELS:
            return None  # its rows are not its sources: it selects its own
        return backend, self.capacity

    def emit(self, state: ProjectionState, spikes: torch.Tensor, selection: Any = None) -> ProjectionState:
        if self.first_row is not None and not isinstance(selection, str):
            selection = None  # a selection of sources, where this table needs one of its rows
        if selection is None:
            backend = self._backend(spikes, state.weights)
            selection = backend if backend in KERNELS else select_sources(self.per_row(spikes), backend, self.capacity)
        if isinstance(selection, str):  # a kernel
            if selection == "gpu_kernel":
                arguments = (state.pending, self.per_row(spikes), self.targets, state.weights, self.delays, state.step)
                pending = gpu_kernels.propagate(*arguments)
            else:
                arguments = (state.pending, spikes, self.targets, state.weights, self.delays, state.step)
                pending = kernels.propagate(*arguments, in_place=self.in_place, first_row=self.first_row)
            return replace(state, pending=pending, step=state.step + 1)
        rows, values, count = selection
        overflow = state.overflow
        if count is not None:
            rows, values = rows[: self.capacity], values[: self.capacity]
            overflow = overflow | (count > self.capacity)
        contributions = state.weights.index_select(0, rows) * values[:, None]
        delays = self.delays if isinstance(self.delays, int) else self.delays.index_select(0, rows)
        targets = target_rows(self.targets, rows)
        pending = _add_at_rows(self._cleared(state), self._row(state, delays), targets, contributions)
        return replace(state, pending=pending, step=state.step + 1, overflow=overflow)


def select_sources(spikes: torch.Tensor, backend: str, capacity: int) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """The spiking source neurons of a step: (rows, spike values, spike count or None).

    ``nonzero``: exactly the spiking rows (count None: nothing can overflow; one host
    synchronisation). ``fixed``/``topk``: ``capacity`` rows with fixed shapes (``nonzero_static``,
    whose unused rows point at the padding row ``n_pre``, or ``topk``, which has a vmap rule); the
    count then tells the caller whether spikes were left out.
    """
    if backend == "nonzero":
        rows = torch.nonzero(spikes).reshape(-1)  # sync-ok: the eager backend, chosen by backends.propagation
        return rows, spikes.index_select(0, rows), None
    if backend == "topk":
        values, rows = torch.topk(spikes, capacity)
    else:
        rows = torch.nonzero_static(spikes, size=capacity, fill_value=spikes.shape[0]).reshape(-1)
        values = torch.cat([spikes, spikes.new_zeros(1)]).index_select(0, rows)
    return rows, values, spikes.sum()


def _with_values(selection: Any, values: torch.Tensor) -> Any:
    """A selection of spiking sources (from `select_sources`, or a kernel's name) carrying
    ``values`` (one per source) instead of the spike values it was picked from: the spikes of a
    projection with short-term plasticity, scaled by their efficacy."""
    if selection is None or isinstance(selection, str):
        return selection
    rows, _, count = selection
    return rows, torch.cat([values, values.new_zeros(1)]).index_select(0, rows), count


def _per_synapse(value: Any, count: int, name: str) -> torch.Tensor:
    tensor = torch.as_tensor(value, dtype=torch.get_default_dtype() if not isinstance(value, torch.Tensor) else None)
    if tensor.dim() == 0:
        return tensor.expand(count)
    if tensor.shape != (count,):
        raise ValueError(f"{name} must be a number or one value per synapse ({count}), got shape {tuple(tensor.shape)}")
    return tensor


def _all_finite(values: torch.Tensor) -> bool:
    """True when every value is finite: one sum (a NaN or an infinity makes it non-finite), and the
    values one by one only when the sum is not finite (it may just have overflowed). Four times
    quicker than ``isfinite(values).all()`` on the 0.3 billion synapses of the full microcircuit."""
    if values.numel() == 0 or math.isfinite(float(values.sum())):  # sync-ok: building a projection
        return True
    return bool(torch.isfinite(values).all())  # sync-ok: building a projection


def _check_weights(weights: torch.Tensor, synapse: Any = None) -> None:
    if not weights.is_floating_point():
        raise TypeError(f"weights must be floating point (plastic weights change continuously), got {weights.dtype}")
    if not _all_finite(weights):
        raise ValueError("weights must be finite")
    conductances = synapse is not None and synapse.conductance_based
    if conductances and bool((weights < 0).any()):  # sync-ok: building a projection, before any run
        raise ValueError("conductance-based synapses need weights >= 0 (µS); the reversal potential sets the sign")


def _delay_steps(delay: Any, count: int, dt: float) -> torch.Tensor:
    """Delays (ms, a number or one per synapse) as int64 numbers of steps of ``dt`` (round half to even)."""
    delays_ms = _per_synapse(delay, count, "delay")
    if not _all_finite(delays_ms) or (count and float(delays_ms.min()) < 0):  # sync-ok: building a projection
        raise ValueError("delays must be finite and >= 0 ms")
    steps = delays_ms.to(torch.float64, copy=True)  # divided and rounded in place: one temporary, not three
    return steps.div_(dt).round_().to(torch.int64)


def _check_buffer(max_delay: int, n_post: int, dtype: torch.dtype, dt: float) -> None:
    buffer_bytes = (max_delay + 1) * (n_post + 1) * dtype.itemsize
    if buffer_bytes > MAX_BUFFER_BYTES:
        raise ValueError(
            f"a delay of {max_delay * dt:g} ms is {max_delay} steps of dt={dt} ms: the projection's delay "
            f"buffer ({max_delay + 1} x {n_post + 1} values) would take {buffer_bytes / 2**30:.1f} GiB; check the "
            "delay's unit (ms) and dt"
        )


#: The largest delay buffer a projection may need (bytes): beyond it a delay is surely a mistake.
MAX_BUFFER_BYTES = 2**31


def _check_groups(source: Any, target: Any) -> tuple:
    source, target = (tuple(names) if isinstance(names, list) else names for names in (source, target))
    for role, names in (("source", source), ("target", target)):
        if not (
            isinstance(names, str) or isinstance(names, tuple) and names and all(isinstance(n, str) for n in names)
        ):
            raise TypeError(f"{role} must be a population name (str) or a tuple of names, got {names!r}")
    return source, target


def _check_dt(dt: Any) -> None:
    if not (isinstance(dt, numbers.Real) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number of milliseconds, got {dt!r}")


def _check_common(synapse: Any, plasticity: Any, normalize: Any, dt: Any) -> None:
    if normalize is not None and not (
        isinstance(normalize, numbers.Real)
        and not isinstance(normalize, bool)
        and math.isfinite(normalize)
        and normalize > 0
    ):
        raise ValueError(
            f"normalize must be None or a positive number (the summed weight onto each target), got {normalize!r}"
        )
    _check_dt(dt)
    if not isinstance(synapse, SynapseModel):
        raise TypeError(f"synapse must be a synapse model such as Exponential(tau=5.0), got {synapse!r}")
    if plasticity is not None and not isinstance(plasticity, PlasticityRule):
        raise TypeError(f"plasticity must be a rule such as STDP() (a PlasticityRule) or None, got {plasticity!r}")


def target_dtype(n_post: int) -> torch.dtype:
    """The dtype of a sparse table's targets for ``n_post`` target neurons: uint16 where every target
    and the padding value ``n_post`` fit (at most 65,535 neurons; two bytes a synapse less to keep and
    to read at every spike), else int32."""
    return torch.uint16 if n_post <= 0xFFFF else torch.int32


def target_table(rows: int, width: int, n_post: int, device: Any = None) -> torch.Tensor:
    """A ``(rows, width)`` targets table of padding (``n_post``) in `target_dtype`, to fill with `put_targets`."""
    return torch.full((rows, width), n_post, dtype=target_dtype(n_post), device=device)


def put_targets(table: torch.Tensor, slots: torch.Tensor, values: torch.Tensor) -> None:
    """Write target indices ``values`` (any integer dtype, in range) at the flat ``slots`` of ``table``
    (contiguous): torch cannot write into uint16 tensors by index, so those take the values' bits
    through an int16 view."""
    if table.dtype == torch.uint16:
        table.view(torch.int16).view(-1).index_copy_(0, slots, values.to(torch.uint16).view(torch.int16))
    else:
        table.view(-1).index_copy_(0, slots, values.to(table.dtype))


def target_rows(targets: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Rows ``rows`` of a targets table as int32 indices (torch cannot gather uint16 tensors: those
    are read through their int16 bits)."""
    if targets.dtype != torch.uint16:
        return targets.index_select(0, rows)
    return targets.view(torch.int16).index_select(0, rows).int() & 0xFFFF


class RowLayout(NamedTuple):
    """Where a sparse table puts each source's synapses (see `row_layout`)."""

    width: int  # slots per row
    first_row: torch.Tensor | None  # (n_pre + 1,) int64, or None: row i is source i's
    slot_start: torch.Tensor  # (n_pre,) int64: the flat index of each source's first slot
    rows: int  # rows that hold synapses (the table has one more, of padding)


def row_layout(out_degree: torch.Tensor, width: int | None = None) -> RowLayout:
    """The rows of a table for sources with ``out_degree`` synapses: ``width`` slots per row (None: the
    largest out-degree), each source taking ``ceil(out_degree / width)`` consecutive rows (at least
    one), or exactly one row each where ``width`` reaches the largest out-degree."""
    n_pre = out_degree.numel()
    largest = max(1, int(out_degree.max()) if n_pre else 1)  # sync-ok: building a projection
    width = largest if width is None else min(width, largest)
    if width == largest:
        return RowLayout(width, None, torch.arange(n_pre) * width, n_pre)
    per_source = torch.clamp((out_degree + width - 1) // width, min=1)
    first_row = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(per_source, 0)])
    return RowLayout(width, first_row, first_row[:-1] * width, int(first_row[-1]))  # sync-ok: building


@functools.cache
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or None where the C library has none."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


def release_free_memory() -> None:
    """Give the pages that the C allocator holds free back to the system (glibc's ``malloc_trim``;
    nothing elsewhere). A build frees many large temporaries; glibc keeps most of them, which a
    process's peak then counts beside the tables allocated next. About 10 ms."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class SynapseTable:
    """The padded table of a sparse projection (one row of outgoing synapses per source neuron),
    filled block by block: the way to build projections too large for one list of all their synapses
    (the full cortical microcircuit has 0.3 billion).

    Give each source neuron's number of outgoing synapses first, then `add` the synapses in
    blocks (each sorted by source neuron, as a `Connectivity` is; a source's synapses keep the
    order they are added in), then make the projection with `projection`. The table uses
    compact types: targets uint16 up to 65,535 target neurons and int32 beyond (`target_dtype`), delays
    as int8 numbers of steps (int16 from 128 steps, int32 from 32,768), weights in ``dtype`` (default:
    torch's default dtype). Blocks are processed in slices, so building needs
    little memory beyond the table and the block given.

    ``width``: slots per row. None (the default): rows as wide as the largest out-degree, one per
    source. A smaller width gives a source ``ceil(out_degree / width)`` consecutive rows (at least
    one), so a table whose out-degrees differ widely (a few hub neurons, or populations of different
    fan-out) holds at most ``width - 1`` empty slots per source instead of ``largest - out_degree``;
    the CPU kernel reads a source's rows as one run of slots, so a step costs the same.
    """

    SLICE = 1 << 22  # synapses handled at once by add
    LARGE = 1 << 24  # slots of a table large enough to return the build's free memory to the system

    def __init__(
        self,
        out_degree: torch.Tensor,
        n_post: int,
        dt: float,
        dtype: torch.dtype | None = None,
        width: int | None = None,
    ) -> None:
        out_degree = torch.as_tensor(out_degree).reshape(-1)
        if out_degree.is_floating_point() or bool((out_degree < 0).any()):  # sync-ok: building
            raise ValueError("out_degree must hold non-negative whole numbers, one per source neuron")
        _check_dt(dt)
        if width is not None and (isinstance(width, bool) or not isinstance(width, int) or width < 1):
            raise ValueError(f"width must be None (the largest out-degree) or a positive int of slots, got {width!r}")
        self.n_pre, self.n_post, self.dt = out_degree.numel(), int(n_post), float(dt)
        self.out_degree = out_degree.to(torch.int64)
        rows = row_layout(self.out_degree, width)
        self.first_row, self.slot_start = rows.first_row, rows.slot_start
        self.filled = torch.zeros(self.n_pre, dtype=torch.int64)
        if (rows.rows + 1) * rows.width >= self.LARGE:  # the builder's temporaries, before the table takes their place
            release_free_memory()
        self.targets = target_table(rows.rows + 1, rows.width, self.n_post)
        self.weights = torch.zeros(rows.rows + 1, rows.width, dtype=dtype or torch.get_default_dtype())
        self.steps = torch.zeros(rows.rows + 1, rows.width, dtype=torch.int8)
        self.delay_range = (None, None)  # (shortest, longest) delay added, in steps

    def add(self, pre: torch.Tensor, post: torch.Tensor, weight: Any, delay: Any, synapse: Any = None) -> None:
        """Add the synapses ``pre[k] -> post[k]`` (``pre`` ascending) with ``weight`` (nA or µS) and
        ``delay`` (ms), each a number or one value per synapse. ``synapse``: the synapse model, to
        refuse negative conductances."""
        count = pre.numel()
        if post.shape != pre.shape:
            raise ValueError(f"pre ({count}) and post ({post.numel()}) index lists differ in length")
        weights = _per_synapse(weight, count, "weight")  # checked slice by slice in _add_slice
        delays = _per_synapse(delay, count, "delay")
        for start in range(0, count, self.SLICE):
            part = slice(start, min(start + self.SLICE, count))
            self._add_slice(pre[part], post[part], weights[part], delays[part], synapse)
        if count >= self.LARGE // 16:  # this block's temporaries: the next block's would lie beside them
            release_free_memory()

    def _add_slice(self, pre, post, weights, delays, synapse) -> None:
        count = pre.numel()
        if count == 0:
            return
        if (
            int(pre.min()) < 0 or int(pre.max()) >= self.n_pre or int(post.min()) < 0 or int(post.max()) >= self.n_post
        ):  # sync-ok: building
            raise ValueError(f"synapse indices must lie in [0, {self.n_pre}) x [0, {self.n_post})")
        if count > 1 and bool((pre[1:] < pre[:-1]).any()):  # sync-ok: building a projection
            raise ValueError("synapses must be added sorted by source neuron (as a Connectivity is)")
        _check_weights(weights, synapse)
        steps = _delay_steps(delays, count, self.dt)
        low, high = (int(x) for x in torch.aminmax(steps))  # sync-ok: building a projection
        for limit, wider in ((2**7, torch.int16), (2**15, torch.int32)):  # widen only when a delay needs it
            if high >= limit and self.steps.dtype.itemsize < wider.itemsize:
                self.steps = self.steps.to(wider)
        shortest, longest = self.delay_range
        self.delay_range = (low if shortest is None else min(low, shortest), max(high, longest or 0))
        degree = torch.bincount(pre, minlength=self.n_pre)
        if bool((self.filled + degree > self.out_degree).any()):  # sync-ok: building a projection
            raise ValueError("some source neuron has more synapses added than its out_degree")
        # slot of each synapse: its source's row, after the synapses added before, in this slice's order
        base = self.slot_start + self.filled - (torch.cumsum(degree, 0) - degree)
        flat = base.index_select(0, pre) + torch.arange(count)
        put_targets(self.targets, flat, post)
        self.weights.view(-1).scatter_(0, flat, weights.to(self.weights.dtype))
        self.steps.view(-1).scatter_(0, flat, steps.to(self.steps.dtype))
        self.filled += degree

    def projection(
        self,
        source: str | tuple[str, ...],
        target: str | tuple[str, ...],
        synapse: Any,
        *,
        plasticity: Any = None,
        capacity: int | None = None,
        normalize: float | None = None,
        short_term: Any = None,
    ) -> SparseProjection:
        """The sparse projection of the synapses added (see `projection` for the arguments).
        Every source must have received exactly its ``out_degree`` synapses. The table is handed over,
        not copied: add nothing afterwards."""
        source, target = _check_groups(source, target)
        _check_common(synapse, plasticity, normalize, self.dt)
        if not torch.equal(self.filled, self.out_degree):
            raise ValueError("some source neuron received fewer synapses than its out_degree")
        shortest, longest = self.delay_range
        max_delay = longest or 0
        _check_buffer(max_delay, self.n_post, self.weights.dtype, self.dt)
        delays: Any = self.steps if shortest is not None and shortest != longest else max_delay
        rows = self.targets.shape[0] - 1  # n_pre, or more with a narrower width
        if capacity is None:
            capacity = min(rows, max(32, rows // 10))
        if isinstance(capacity, bool) or not isinstance(capacity, int) or not 0 < capacity <= max(rows, 1):
            what = "n_pre" if self.first_row is None else "the table's rows"
            raise ValueError(f"capacity must be an int in [1, {what}={rows}], got {capacity!r}")
        return SparseProjection(
            source=source,
            target=target,
            n_pre=self.n_pre,
            n_post=self.n_post,
            weights=self.weights,
            targets=self.targets if plasticity is None else self.targets.int(),  # see SparseProjection.for_run
            delays=delays,
            capacity=capacity,
            synapse=synapse,
            max_delay=max_delay,
            plasticity=plasticity,
            dt=self.dt,
            normalize=normalize,
            short_term=short_term,
            first_row=self.first_row,
        )


def projection(
    source: str | tuple[str, ...],
    target: str | tuple[str, ...],
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
    short_term: Any = None,
) -> Projection:
    """Build a projection from ``source`` to ``target`` (population or part names).

    ``source`` and ``target`` may each be a tuple of population names: the connectivity's indices
    then run over their neurons one population after the other (the first population's neurons
    first). One such projection stands for many between pairs of populations that share a synapse
    model, and costs one propagation and one synapse update per step instead of one per pair.
    For projections too large for one list of synapses, see `SynapseTable`.

    Args:
        connectivity: which synapses exist (see [`sapicore.functional.propagation.connectivity`][sapicore.functional.propagation.connectivity]).
        weight: a number or one value per synapse (nA for current synapses, µS for conductances).
        synapse: a synapse model (``Delta``, ``Exponential``, ``DualExponential``).
        dt: the simulation step (ms) the delays are rounded to.
        delay: a number or one value per synapse (ms), >= 0; see the module docstring.
        kind: "sparse" (event-driven) or "dense".
        plasticity: a rule from `sapicore.functional.models.plasticity`, or None.
        capacity: sparse only: most spiking sources propagated per step by the fixed-shape backends
            (default: a tenth of the sources, at least 32; ignored by dense projections, which
            select nothing); see the module docstring.
        normalize: if set, after each plasticity update scale the weights onto each target neuron to
            sum to this value.
        short_term: None, or a ``TsodyksMarkram`` whose short-term depression and facilitation
            scale each source's spikes before they are transmitted
            (see [`sapicore.functional.models.short_term`][sapicore.functional.models.short_term]).
    """
    source, target = _check_groups(source, target)
    _check_common(synapse, plasticity, normalize, dt)
    if not isinstance(connectivity, Connectivity):
        raise TypeError(
            f"connectivity must be a Connectivity (from sapicore.functional.propagation.connectivity), got {type(connectivity).__name__}"
        )
    if kind not in ("dense", "sparse"):
        raise ValueError(f"kind must be 'dense' or 'sparse', got {kind!r}")
    count, n_pre, n_post = len(connectivity), connectivity.n_pre, connectivity.n_post
    weights = _per_synapse(weight, count, "weight")
    if kind == "sparse":
        table = SynapseTable(connectivity.out_degree(), n_post, dt, dtype=weights.dtype)
        table.add(connectivity.pre, connectivity.post, weights, delay, synapse)
        return table.projection(
            source,
            target,
            synapse,
            plasticity=plasticity,
            capacity=capacity,
            normalize=normalize,
            short_term=short_term,
        )
    _check_weights(weights, synapse)
    steps = _delay_steps(delay, count, dt)
    max_delay = int(steps.max()) if count else 0  # sync-ok: building a projection, before any run
    _check_buffer(max_delay, n_post, weights.dtype, dt)
    pre, post = connectivity.pre, connectivity.post
    if count and torch.unique(pre * n_post + post).numel() != count:
        raise ValueError(
            "a dense projection holds one synapse per (source, target) pair, but the connectivity has "
            "repeated pairs (multapses); use kind='sparse'"
        )
    matrix = torch.zeros(n_pre, n_post, dtype=weights.dtype)
    matrix[pre, post] = weights
    mask = torch.zeros(n_pre, n_post, dtype=torch.bool)
    mask[pre, post] = True
    delays: Any = max_delay
    if count and bool((steps != steps[0]).any()):  # sync-ok: building a projection, before any run
        delays = torch.zeros(n_pre, n_post, dtype=torch.int64)
        delays[pre, post] = steps
    return DenseProjection(
        source=source,
        target=target,
        n_pre=n_pre,
        n_post=n_post,
        weights=matrix,
        mask=mask,
        full=count == n_pre * n_post,
        delays=delays,
        synapse=synapse,
        max_delay=max_delay,
        plasticity=plasticity,
        dt=float(dt),
        normalize=normalize,
        short_term=short_term,
    )
