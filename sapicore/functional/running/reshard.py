"""A partitioned run's state moved onto another partition of the same network.

A checkpoint of a run on ``R`` ranks holds one state per rank, each in its share's layout (the rank's
neurons, its synapses' table, a ring buffer as long as its longest delay). `reshard` builds the state
of one share of another partition (``R'`` ranks, or the whole network in one process) from those
states: every value is found by what it belongs to in the whole network, so the moved state is the
one the run on ``R'`` ranks would have had at that step.

* neuron variables (one value per neuron of a population: last axis of a share's size) go by the
  neuron's index in its population;
* a projection's per-target values (its synapse model's state, the per-target traces of its rule)
  by the target's index in its target group; per-source values (presynaptic traces, short-term
  efficacies: every rank holds them all) are taken from the first shard;
* per-synapse values (weights, and a rule's per-synapse state such as an eligibility trace) by the
  synapse: its source, its target and its place among the synapses from that source onto that
  target (multapses keep their order). Sparse and dense projections alike;
* spikes in transit by the target and the step at which they arrive: a rank's ring buffer has as
  many rows as its longest delay plus one, row ``k`` read at the steps equal to ``k`` modulo that.

The states must belong to shares of the same network as ``share``: the same populations and sizes,
the same synapses with the same delays (checked, naming the projection). A target neuron's inputs
are still summed in the same order (its synapses, source by source), so a run resumed on another
number of ranks goes on with the spikes of the uninterrupted run, bit for bit on the CPU, where its
random numbers do not depend on the partition (see `sapicore.functional.running.partition`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_unflatten

from ..network import Network, _ranges, _segments
from ..propagation.projection import DenseProjection, SparseProjection, target_rows
from ..pytree import replace, tree_map
from .partition import group_places

__all__ = ["reshard"]

#: slots of a sparse table whose synapses are matched at once (bounds the memory of a move)
BLOCK_SLOTS = 1 << 22


def _layout(network: Network) -> tuple[dict, int, int]:
    """The whole network's ranges, this network's rank and world (0 of 1 when it is not partitioned)."""
    exchange = network.exchange
    if exchange is None:
        return _ranges(network.populations), 0, 1
    return exchange.ranges(), exchange.rank, exchange.world


def _sizes(network: Network) -> dict:
    exchange = network.exchange
    populations = network.populations if exchange is None else exchange.populations
    return {name: (population.size, tuple(population.parts)) for name, population in populations.items()}


def _mover(old_places: torch.Tensor, new_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(positions in the old share, positions in the new) of the elements both hold."""
    destination = new_index[old_places]
    kept = torch.nonzero(destination >= 0).reshape(-1)  # sync-ok: moving a checkpoint
    return kept, destination[kept]


def _index_of(places: torch.Tensor, size: int) -> torch.Tensor:
    """For each element of the whole group: its position among ``places``, or -1."""
    index = torch.full((size,), -1, dtype=torch.int64)
    index[places] = torch.arange(len(places))
    return index


class _Projection:
    """The new share's projection ``name`` (its state's leaves, filled from the old shares in turn)."""

    def __init__(self, name: str, proj: Any, state: Any, ranges: dict, rank: int, world: int) -> None:
        self.name, self.proj, self.ranges = name, proj, ranges
        self.size = sum(size for _, _, size in _segments(proj.target, ranges))  # the whole target group
        self.places = group_places(proj.target, ranges, rank, world)
        self.index = _index_of(self.places, self.size)
        self.leaves, self.spec = tree_flatten(state)
        self.roles = _roles(proj, state, self.spec)
        dense = isinstance(proj, DenseProjection)  # a sparse table's per-synapse leaves are copied when they differ
        self.leaves = [
            leaf.clone() if role == "target" or (role == "slot" and dense) else leaf
            for leaf, role in zip(self.leaves, self.roles)
        ]
        self.copied = set()  # the sparse per-synapse leaves copied so far
        self.state = state  # its step, overflow, ring buffer and fingerprint
        self.overflow = torch.zeros((), dtype=torch.bool)

    def take(self, proj: Any, state: Any, rank: int, world: int, first: bool) -> None:
        """Move what the old share ``proj`` (rank ``rank`` of ``world``) with ``state`` holds for this one."""
        kept, destination = _mover(group_places(proj.target, self.ranges, rank, world), self.index)
        if first:
            self.step = state.step
        elif not torch.equal(state.step, self.step):
            raise ValueError(f"projection {self.name!r}: the shards were saved at different steps")
        self.overflow |= state.overflow
        self._pending(state, kept, destination, proj.max_delay)
        old_leaves, old_spec = tree_flatten(state)
        if old_spec != self.spec:
            raise ValueError(
                f"projection {self.name!r}: the checkpoint's state has another structure than this network's"
            )
        for k, role in enumerate(self.roles):
            new = self.leaves[k]
            if role == "target" or (role == "slot" and isinstance(self.proj, DenseProjection)):
                new[..., destination] = old_leaves[k][..., kept].to(new.dtype)
            elif role == "same" and first:
                self.leaves[k] = old_leaves[k]
        if isinstance(self.proj, DenseProjection):
            self._check_dense(proj, kept, destination)

    def _pending(self, state: Any, kept: torch.Tensor, destination: torch.Tensor, old_delay: int) -> None:
        """Spikes in transit to the kept targets, by the step at which they arrive."""
        step, new_delay = int(state.step), self.proj.max_delay  # sync-ok: on the host
        ahead = torch.arange(old_delay + 1)
        arriving = state.pending.index_select(0, (step + ahead) % (old_delay + 1)).index_select(-1, kept)
        if old_delay > new_delay and bool(arriving[new_delay + 1 :].ne(0).any()):  # sync-ok: moving a checkpoint
            self._differs()  # spikes in transit for longer than this network's delays
        shown = min(old_delay, new_delay) + 1
        pending = self.state.pending
        rows = (step + ahead[:shown]) % (new_delay + 1)
        pending[rows[:, None], destination[None, :]] = arriving[:shown].to(pending)

    def _check_dense(self, proj: Any, kept: torch.Tensor, destination: torch.Tensor) -> None:
        same = torch.equal(proj.mask[..., kept], self.proj.mask[..., destination])
        delays = [d for d in (proj.delays, self.proj.delays) if isinstance(d, torch.Tensor) and d.ndim]
        if same and len(delays) == 2:
            same = torch.equal(delays[0][..., kept], delays[1][..., destination])
        if not same or len(delays) == 1 or (not delays and proj.delays != self.proj.delays):
            self._differs()

    def _differs(self) -> None:
        raise ValueError(
            f"projection {self.name!r}: the checkpoint's synapses or delays differ from this network's; resume on "
            "the network the checkpoint was saved from (the same spec, seeds and sizes)"
        )

    def finish(self, shards: list) -> Any:
        """The new share's state of this projection, once every old share was taken; ``shards``:
        (projection, its state's leaves, where its targets stand in the whole group) of every old share."""
        if isinstance(self.proj, SparseProjection):
            sources = self.proj.n_pre
            slots = max(1, self.proj.targets.numel())
            step = max(1, BLOCK_SLOTS * sources // slots)
            for first in range(0, sources, step):
                self._place_synapses(shards, first, min(first + step, sources))
        state = tree_unflatten(self.leaves, self.spec)
        return replace(
            state, pending=self.state.pending, step=self.step, overflow=self.overflow,
            wiring=self.state.wiring,
        )  # fmt: skip

    def _synapses(self, proj: Any, places: torch.Tensor, first: int, end: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(flat slot, key) of the synapses of ``proj`` from sources ``first`` to ``end`` (excluded)
        onto the new share's targets, in slot order (each source's synapses in their order); key:
        source (from ``first``) x the whole target group's size + target in the whole group."""
        starts = torch.arange(proj.n_pre + 1) if proj.first_row is None else proj.first_row.long()
        top, bottom = int(starts[first]), int(starts[end])  # sync-ok: on the host
        targets = target_rows(proj.targets, torch.arange(top, bottom))
        row_source = torch.repeat_interleave(torch.arange(end - first), starts[first + 1 : end + 1] - starts[first:end])
        width = targets.shape[-1]
        targets = targets.reshape(-1)
        flat = torch.nonzero(targets != proj.n_post).reshape(-1)  # sync-ok: on the host
        target = places.index_select(0, targets.index_select(0, flat).long())
        mine = torch.nonzero(self.index.index_select(0, target) >= 0).reshape(-1)  # sync-ok: on the host
        flat, target = flat.index_select(0, mine), target.index_select(0, mine)
        return top * width + flat, row_source.index_select(0, flat // width) * self.size + target

    def _place_synapses(self, shards: list, first: int, end: int) -> None:
        """The per-synapse values of sources ``first`` to ``end`` (excluded), from every old share."""
        slots, keys = self._synapses(self.proj, self.places, first, end)
        found = [self._synapses(proj, places, first, end) for proj, _, places in shards]
        old_keys = torch.cat([key for _, key in found])
        old_order = None
        if not torch.equal(old_keys, keys):  # else in the same order already (a share of one process's state)
            old_order = torch.sort(old_keys, stable=True).indices  # a source's synapses onto one target: in order
            new_order = torch.sort(keys, stable=True).indices
            if not torch.equal(old_keys.index_select(0, old_order), keys.index_select(0, new_order)):
                self._differs()
            slots = slots.index_select(0, new_order)

        def gathered(tables: list) -> torch.Tensor:
            """The old shares' values of ``tables`` (one per share) at their synapses, in the new order."""
            values = torch.cat([_flat(table, where) for table, (where, _) in zip(tables, found)])
            return values if old_order is None else values.index_select(0, old_order)

        before = gathered([proj.delays for proj, _, _ in shards])
        if not torch.equal(before.long(), _flat(self.proj.delays, slots).long()):
            self._differs()
        for k, role in enumerate(self.roles):
            if role == "slot":
                leaf = self.leaves[k]
                values = gathered([leaves[k] for _, leaves, _ in shards]).to(leaf)
                if k not in self.copied:  # the share's own tensor (fixed weights, say) while the values agree
                    if torch.equal(leaf.view(-1).index_select(0, slots), values):
                        continue
                    leaf = self.leaves[k] = leaf.clone()
                    self.copied.add(k)
                leaf.view(-1).index_copy_(0, slots, values)


def _flat(table: Any, slots: torch.Tensor) -> torch.Tensor:
    """The values of a per-slot ``table`` at flat ``slots`` (a number: one for every synapse)."""
    if not isinstance(table, torch.Tensor) or not table.ndim:
        return torch.as_tensor(table).expand(len(slots))
    return table.reshape(-1).index_select(0, slots)


ROLES = ("own", "slot", "target", "same")


def _roles(proj: Any, state: Any, spec: Any) -> list[str]:
    """For each leaf of a projection's state (flattened): ``"slot"`` (one value per synapse, in the
    weights' layout), ``"target"`` (one per target neuron, last axis), ``"same"`` (per source or
    shared: equal on every rank) or ``"own"`` (step, overflow, ring buffer, fingerprint: handled
    apart). Found by building the synapse's and the rule's states at sizes no share has."""
    weights = torch.zeros(3, 5)
    mark = {role: torch.tensor(code) for code, role in enumerate(ROLES)}  # a pytree keeps tensors as leaves

    def probe(tree: Any) -> Any:
        def role(leaf: Any) -> torch.Tensor:
            if isinstance(leaf, torch.Tensor) and leaf.shape == weights.shape:
                return mark["slot"]
            target = isinstance(leaf, torch.Tensor) and leaf.ndim and leaf.shape[-1] == 4
            return mark["target"] if target else mark["same"]

        return tree_map(role, tree)

    roles = replace(
        state,
        weights=mark["slot"],
        synapse=None if state.synapse is None else probe(proj.synapse.init_state(torch.zeros(4))),
        pending=mark["own"],
        step=mark["own"],
        overflow=mark["own"],
        plasticity=None if state.plasticity is None else probe(proj.plasticity.init(2, 4, weights)),
        wiring=None if state.wiring is None else mark["own"],
        short_term=None if state.short_term is None else tree_map(lambda _: mark["same"], state.short_term),
    )
    leaves, role_spec = tree_flatten(roles)
    if role_spec != spec:
        raise ValueError(f"a state of projection kind {type(proj).__name__} has leaves this move does not know")
    return [ROLES[int(leaf)] for leaf in leaves]


def reshard(share: Network, shards: Iterable[tuple[Network, Any]]) -> Any:
    """The state of ``share`` (one rank's share of a partition, or a whole network) that continues
    the run whose ranks' shares and states ``shards`` yields, rank after rank (one pair for a run in
    one process; a checkpoint's are memory-mapped, and all are read). See the module docstring for
    what goes where and what is checked."""
    ranges, rank, world = _layout(share)
    device = next((x.device for x in tree_flatten(share)[0] if isinstance(x, torch.Tensor)), torch.device("cpu"))
    share = _host(share)  # the work is done on the host, the result moved to the share's device at the end
    target, moved, count, saved_world, taken = None, {}, 0, 1, []
    for count, (old, state) in enumerate(shards):
        if not isinstance(old, Network):
            raise TypeError(f"a shard's model must be a Network, got {type(old).__name__}")
        _, old_rank, old_world = _layout(old)
        old, state = _host((old, state))
        if _sizes(old) != _sizes(share) or set(old.projections) != set(share.projections):
            raise ValueError(
                "the checkpoint's network has other populations, sizes or projections than this one; resume on "
                "the network it was saved from"
            )
        if old_rank != count:
            raise ValueError(f"shard {count} holds the share of rank {old_rank}; give the shards in rank order")
        if target is None:
            floating = next(x for x in tree_flatten(state.populations)[0] if x.is_floating_point())
            target = share.init_state(dtype=floating.dtype)
            moved = {
                name: _Projection(name, proj, target.projections[name], ranges, rank, world)
                for name, proj in share.projections.items()
            }
            populations = dict(target.populations)
            saved_world = old_world
        elif old_world != saved_world:
            raise ValueError("the shards come from runs on different numbers of processes")
        for name in share.populations:
            populations[name] = _move_neurons(name, populations[name], state.populations[name], old, ranges, rank,
                                              world, old_rank, old_world, first=count == 0)  # fmt: skip
        for name, mover in moved.items():
            mover.take(old.projections[name], state.projections[name], old_rank, old_world, count == 0)
        taken.append((old, state, old_rank, old_world))
    if target is None:
        raise ValueError("no shard was given")
    if count + 1 != saved_world:
        raise ValueError(f"the checkpoint was saved by {saved_world} processes, but {count + 1} shards were given")
    projections = {}
    for name, mover in moved.items():
        projections[name] = mover.finish(
            [(old.projections[name], tree_flatten(state.projections[name])[0],
              group_places(old.projections[name].target, ranges, r, w)) for old, state, r, w in taken]
        )  # fmt: skip
    moved_state = replace(target, populations=populations, projections=projections)
    return tree_map(lambda x: x.to(device), moved_state)


def _host(tree: Any) -> Any:
    """``tree`` with its tensors in host memory (those there already: the same tensors)."""
    return tree_map(lambda x: x.cpu() if isinstance(x, torch.Tensor) else x, tree)  # sync-ok: moving a checkpoint


def _move_neurons(
    name: str, new_state: Any, old_state: Any, old: Network, ranges: dict, rank: int, world: int,
    old_rank: int, old_world: int, first: bool,
) -> Any:  # fmt: skip
    """``new_state`` of population ``name`` with the neurons that ``old_state`` (rank ``old_rank`` of
    ``old_world``) holds and it holds too."""
    size = sum(size for _, _, size in _segments(name, ranges))
    new_places = group_places(name, ranges, rank, world)
    kept, destination = _mover(group_places(name, ranges, old_rank, old_world), _index_of(new_places, size))
    new_leaves, spec = tree_flatten(new_state)
    old_leaves, old_spec = tree_flatten(old_state)
    if old_spec != spec:
        raise ValueError(f"population {name!r}: the checkpoint's state has another structure than this network's")
    for k, (new, value) in enumerate(zip(new_leaves, old_leaves)):
        if isinstance(new, torch.Tensor) and value.ndim != new.ndim:
            raise ValueError(
                f"population {name!r}: the checkpoint's state has shape {tuple(value.shape)} where this network's has "
                f"{tuple(new.shape)}; a sweep's lanes cannot be moved onto a partition (a share runs one lane)"
            )
        per_neuron = isinstance(new, torch.Tensor) and new.ndim and new.shape[-1] == len(new_places)
        if per_neuron and value.shape[-1] == old.populations[name].size:
            if first:  # the share's own tensors stay as they are
                new = new_leaves[k] = new.clone()
            new[..., destination] = value[..., kept].to(new)
        elif first:
            new_leaves[k] = value
    return tree_unflatten(new_leaves, spec)
