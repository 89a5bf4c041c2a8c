"""One network over several processes: a partition of its neurons over the ranks of a process group.

``partition(network)`` gives this rank's share of a network built whole (NEST's round-robin): rank
``r`` of ``R`` owns neuron ``i`` of every population where ``i % R == r``, the state of those
neurons, and every synapse onto them (each source neuron's synapses in their original order); a
builder may make the share directly (``potjans2014.microcircuit(share=(rank, world))``). Each step,
every rank steps its own neurons, the ranks exchange the outputs of the source populations that
some rank needs from another, and each rank delivers the spikes of the whole network to its own
synapses. The exchange goes through shared memory between the ranks of one machine
([`sapicore.functional.running.shared`][sapicore.functional.running.shared], an operator that compiled
chunks call inside their graph), or is one all-gather of the process group per step (gloo, begun as
soon as those populations have stepped, so that it overlaps the update of the others; in the
reference loop spikes of 0 and 1 travel as bitmaps, in compiled chunks values as they are); see
`Exchange`. ``simulate`` runs such a network like any other, with ``fast=True`` too: it takes each
population's input for the whole network and returns records of the whole network on every rank.

A target neuron adds its synaptic inputs in the same order as in one process (source by source,
each source's synapses in order), so a partitioned run on the CPU gives the same spikes and weights
as the single-process run, bit for bit, whatever the number of ranks, as long as the network's
random numbers do not depend on the rank (spike inputs given, or sources whose draws are keyed by
neuron, not drawn from torch's global generator).

Start the processes with ``torchrun`` (or any launcher) and initialise the default process group
(gloo on CPUs) before ``simulate``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import attrs
import numpy as np
import torch

from ..network import Network, Population, _ranges, _segments, check_projection
from ..propagation.projection import DenseProjection, SparseProjection, put_targets, row_layout, target_table
from ..pytree import replace, tree_map
from ..transforms import compiling
from .shared import SharedChannel

__all__ = [
    "Exchange",
    "partition",
    "partition_built",
    "local_values",
    "local_state",
    "local_inputs",
    "gather_records",
    "gather_synapses",
    "group_places",
]


def _check_transport(transport: Any) -> None:
    if transport not in TRANSPORTS:
        raise ValueError(f"transport must be one of {', '.join(map(repr, TRANSPORTS))}, got {transport!r}")


def _owned(start: int, size: int, rank: int, world: int) -> torch.Tensor:
    """Positions (0 .. size) in a range of neurons from ``start`` whose neuron index ``i`` has
    ``i % world == rank``."""
    return torch.arange((rank - start) % world, size, world)


#: how a partitioned network's ranks exchange outputs (see `Exchange`)
TRANSPORTS = ("auto", "shared", "gloo")

#: steps of float64 outputs of every neuron that one exchange through shared memory can take
#: (a chunk's records travel in blocks of this many steps, twice as many in float32)
SHARED_ROWS = 4


@attrs.define(eq=False)
class Exchange:
    """How a rank's share of a network sees the whole network: the whole network's ``populations``
    (sizes and parts), this ``rank`` among ``world`` ranks, the process ``group`` (None: the default
    group) and the ``transport`` of each step's outputs: ``"shared"`` (shared memory between the
    ranks of one machine, see `sapicore.functional.running.shared`), ``"gloo"`` (all-gathers of the
    process group; ranks on several machines; compiled chunks name it ``group_name`` in their
    graphs, see `for_compiled`) or ``"auto"`` (shared memory where the ranks share a machine).
    `connect` opens the ``channel``; ``traffic()`` counts the exchanges."""

    populations: dict
    rank: int
    world: int
    group: Any = attrs.field(default=None, metadata={"keyed": False})
    transport: str = attrs.field(default="auto", validator=lambda _, __, value: _check_transport(value))
    channel: SharedChannel | None = None  # opened by `connect`; compiled chunks call it by number
    group_name: str | None = None  # the process group of compiled chunks' all-gathers (see `for_compiled`)
    gloo: dict = attrs.field(  # this rank's all-gathers over the process group
        factory=lambda: {"seconds": 0.0, "bytes": 0, "calls": 0, "dense": 0}, metadata={"keyed": False}
    )
    plans: dict = attrs.field(factory=dict, repr=False, metadata={"keyed": False})  # see _plan

    def layout(self) -> tuple:
        """What makes two exchanges the same rank's view of one partition: the whole network's
        population sizes and parts, this rank, the world and the transport."""
        sizes = tuple((name, population.size, population.parts) for name, population in self.populations.items())
        return sizes, self.rank, self.world, self.transport

    def connect(self) -> str | None:
        """Open the shared-memory channel unless the transport is ``"gloo"`` (a collective: every
        rank calls it, as ``simulate`` does); None when the channel is open or gloo was asked, else
        why shared memory cannot be had (then the exchange goes through gloo). With ``"shared"``,
        that raises instead."""
        import torch.distributed as dist

        if not dist.is_initialized():
            raise RuntimeError(
                "a partitioned network runs with its process group initialised on every rank: start the processes "
                "with torchrun and call torch.distributed.init_process_group('gloo') first"
            )
        if self.channel is not None or self.transport == "gloo":
            return None
        per_rank = sum(-(-population.size // self.world) for population in self.populations.values())
        opened = SharedChannel.open(self.group, per_rank * 8 * SHARED_ROWS)
        if isinstance(opened, str):
            if self.transport == "shared":
                raise RuntimeError(f"transport='shared' asked, but {opened}")
            return opened
        self.channel = opened
        return None

    def for_compiled(self) -> None:
        """Name the process group in compiled chunks' graphs, whose steps all-gather over gloo."""
        import torch.distributed as dist

        self.group_name = (self.group if self.group is not None else dist.group.WORLD).group_name

    def count_graph_steps(self, steps: int) -> None:
        """Count the all-gathers of ``steps`` steps of a compiled chunk over gloo (one a step, of the
        size the first step's took; the time they took is the chunk's, not counted apart)."""
        self.gloo["calls"] += steps
        self.gloo["bytes"] += steps * self.plans.get("step bytes", 0) * (self.world - 1)

    def traffic(self) -> dict[str, float]:
        """This rank's exchanges: ``calls``, ``seconds`` spent in them (waiting for the other ranks
        included; not those inside compiled chunks over gloo) and ``bytes`` received, over gloo and
        shared memory together."""
        shared = self.channel.traffic() if self.channel is not None else {"seconds": 0.0, "bytes": 0, "calls": 0}
        return {key: self.gloo[key] + shared[key] for key in ("seconds", "bytes", "calls")}

    def check_streams(self, network: Network) -> None:
        """Refuse a run whose populations draw from torch's generator (a ``PoissonSource`` without a
        ``seed``, say) while that generator is in the same state on two ranks: their neurons would
        get the same draws, rank after rank (perfectly correlated inputs). One all-gather of a digest
        of each rank's generator state, once per run; nothing when every draw is keyed."""
        import hashlib

        import torch.distributed as dist

        unkeyed = [
            name
            for name, population in network.populations.items()
            if getattr(population.model, "stochastic", False) and getattr(population.model, "seed", None) is None
        ]
        if not unkeyed or self.world == 1:
            return
        generator = torch.random.get_rng_state().numpy().tobytes()  # sync-ok: once per run, the CPU generator
        mine = hashlib.blake2b(generator, digest_size=8).hexdigest()
        states: list = [None] * self.world
        dist.all_gather_object(states, mine, group=self.group)
        same = [rank for rank, state in enumerate(states) if states.count(state) > 1]
        if same:
            raise ValueError(
                f"population {unkeyed[0]!r} draws its random numbers from torch's generator, which is in the same "
                f"state on ranks {', '.join(map(str, same))}: their neurons would get the same draws. Key the draws "
                "by neuron (PoissonSource(seed=...); a spec's builder.background=keyed), which gives the same spikes "
                "on any number of ranks, or seed each rank differently (torch.manual_seed(seed + rank))"
            )

    def agree(self, total: torch.Tensor) -> torch.Tensor:
        """A chunk's finiteness sums (`FiniteWatch`, one per lane) made NaN wherever some rank's is
        not finite: one all-reduce, so that every rank quarantines the same lanes at the same chunk."""
        import torch.distributed as dist

        bad = (~torch.isfinite(total)).to(torch.int32)
        dist.all_reduce(bad, op=dist.ReduceOp.MAX, group=self.group)
        return total.masked_fill(bad.bool(), float("nan"))

    def ranges(self) -> dict[str, tuple[str, int, int]]:
        """The whole network's population and part names -> (population, first neuron, count)."""
        return _ranges(self.populations)

    def gather(self, value: torch.Tensor, group: str | tuple[str, ...]) -> torch.Tensor:
        """The values of ``group``'s neurons on all ranks (last axis), from this rank's (its own
        neurons of each segment, one segment after the other): through the shared channel, or one
        all-gather of the padded pieces, then one index into the whole group's order."""
        if self.channel is not None:
            return self.channel.gather(value, [(start, size) for _, start, size in _segments(group, self.ranges())])
        return self._finish(self._start(value, group))

    def _start(self, value: torch.Tensor, group: str | tuple[str, ...], bits: bool = False) -> tuple:
        """Start the all-gather of ``gather`` without waiting for it. With ``bits`` (a step's outputs),
        values that are all 0 or 1 travel as a bitmap (one bit per neuron instead of 32 or 64), with a
        leading byte saying so; `_finish` sends them again as they are if some rank's were not."""
        import torch.distributed as dist

        lengths, widths, order = self._plan(group)
        pieces = torch.split(value, lengths, -1)
        padded = [
            torch.nn.functional.pad(piece, (0, width - length)) for piece, length, width in zip(pieces, lengths, widths)
        ]
        flat = (padded[0] if len(padded) == 1 else torch.cat(padded, -1)).contiguous()
        packing = self._packing(group) if bits else None
        if compiling() or isinstance(flat, torch._subclasses.FakeTensor):  # a compiled chunk's graph
            if packing is not None:  # outputs said to be 0 or 1 travel as bits
                message = _packed_message(flat, packing)
                return None, _traced_gather(message, self.world, self.group_name), packing[2], (flat, packing)
            return None, _traced_gather(flat, self.world, self.group_name), order, None
        if packing is not None and self.group_name is not None and ("checked", group) not in self.plans:
            _check_binary(flat, packing, group)  # once, before compiled chunks send these values as bits
            self.plans["checked", group] = True
        if bits and "step bytes" not in self.plans:  # a step's outputs: what a compiled chunk's all-gather sends
            size = flat.numel() * flat.element_size()
            self.plans["step bytes"] = size if packing is None else _packed_message(flat, packing).numel()
        dense = flat if bits and flat.device.type == "cpu" else None
        message = flat if dense is None else _bitmap(flat)
        gathered = [torch.empty_like(message) for _ in range(self.world)]
        began = time.perf_counter()
        work = dist.all_gather(gathered, message, group=self.group, async_op=True)
        self.gloo["seconds"] += time.perf_counter() - began
        self.gloo["bytes"] += message.numel() * message.element_size() * (self.world - 1)  # received
        self.gloo["calls"] += 1
        return work, gathered, order, dense

    def _finish(self, started: tuple) -> torch.Tensor:
        """Wait for an all-gather begun by ``_start``; the values in the whole group's order."""
        import torch.distributed as dist

        work, gathered, order, dense = started
        if work is None:  # traced: the values of every rank, rank after rank (partly as bits where ``dense`` says)
            values = torch.ops._c10d_functional.wait_tensor(gathered)
            if dense is not None:
                values = _unpacked_message(values, self.world, *dense)
            return values.index_select(-1, order)
        began = time.perf_counter()
        work.wait()
        if dense is not None and all(int(message[0]) == 1 for message in gathered):  # sync-ok: CPU bytes, gloo's
            gathered = [_from_bitmap(message, dense) for message in gathered]
        elif dense is not None:  # some rank's outputs were not all 0 or 1 (counts, graded values)
            gathered = [torch.empty_like(dense) for _ in range(self.world)]
            dist.all_gather(gathered, dense, group=self.group)
            self.gloo["bytes"] += dense.numel() * dense.element_size() * (self.world - 1)
            self.gloo["calls"] += 1
            self.gloo["dense"] += 1  # steps sent again as they are
        self.gloo["seconds"] += time.perf_counter() - began
        return torch.cat(gathered, -1).index_select(-1, order.to(gathered[0].device))

    def gather_events(self, value: torch.Tensor, group: str | tuple[str, ...]) -> torch.Tensor:
        """``gather`` for mostly-zero values (spike counts): over gloo, each rank sends only its
        nonzero entries; through the shared channel, as ``gather`` (copies skip blocks of zeros)."""
        import torch.distributed as dist

        if self.channel is not None:
            return self.gather(value, group)
        where = torch.nonzero(value)  # sync-ok: once per chunk of records
        mine = (where.cpu(), value[tuple(where.t())].cpu())  # sync-ok: records leave the device anyway
        pieces: list = [None] * self.world
        began = time.perf_counter()
        dist.all_gather_object(pieces, mine, group=self.group)
        self.gloo["seconds"] += time.perf_counter() - began
        self.gloo["bytes"] += sum(p[0].numel() * 8 + p[1].numel() * p[1].element_size() for p in pieces) - (
            mine[0].numel() * 8 + mine[1].numel() * mine[1].element_size()
        )
        self.gloo["calls"] += 1
        size = sum(size for _, _, size in _segments(group, self.ranges()))
        out = value.new_zeros((*value.shape[:-1], size))
        for rank, (index, values) in enumerate(pieces):
            places = self._places(group, rank).to(value.device)  # rank's neurons, in its order -> whole numbering
            index = index.to(value.device)
            index[:, -1] = places[index[:, -1]]
            out[tuple(index.t())] = values.to(value.device)
        return out

    def _packing(self, group: str | tuple[str, ...]) -> tuple | None:
        """How a compiled chunk sends a step's outputs of ``group``: ``(bits, others, order)``, the
        ranges ((start, count) each) of a rank's values (see `_plan`) of the segments whose models
        say their outputs are 0 or 1 (`NeuronModel.output_is_binary`) and of the others, and
        `_plan`'s order for each rank's values arranged bits first; None where no model says so.
        Worked out once per group."""
        key = ("packing", group)
        if key not in self.plans:
            _, widths, order = self._plan(group)
            binary = [
                bool(self.populations[pop].model.output_is_binary) for pop, _, _ in _segments(group, self.ranges())
            ]
            self.plans[key] = None
            if any(binary):
                starts = [sum(widths[:k]) for k in range(len(widths))]
                bits, others = (
                    tuple((start, width) for start, width, b in zip(starts, widths, binary) if b == kind)
                    for kind in (True, False)
                )
                total = sum(widths)
                positions = [torch.arange(start, start + width) for start, width in bits + others]
                arranged = torch.empty(total, dtype=torch.int64)
                arranged[torch.cat(positions)] = torch.arange(total)
                rank = torch.div(order, total, rounding_mode="floor")
                self.plans[key] = (bits, others, rank * total + arranged[order % total])
        return self.plans[key]

    def _places(self, group: str | tuple[str, ...], rank: int) -> torch.Tensor:
        """Where the neurons of ``rank`` (in that rank's order) stand in ``group`` (whole numbering)."""
        key = ("places", group, rank)
        if key not in self.plans:
            self.plans[key] = group_places(group, self.ranges(), rank, self.world)
        return self.plans[key]

    def _plan(self, group: str | tuple[str, ...]) -> tuple[list[int], list[int], torch.Tensor]:
        """For ``group``: this rank's number of neurons in each segment, the padded width of each
        segment's piece, and for each neuron of the group (whole numbering) its place among the
        all-gathered pieces (rank by rank). Worked out once per group."""
        if group not in self.plans:
            segments = _segments(group, self.ranges())
            owned = [[_owned(start, size, r, self.world) for _, start, size in segments] for r in range(self.world)]
            widths = [max(len(per_rank[k]) for per_rank in owned) for k in range(len(segments))]
            total = sum(widths)
            order = torch.empty(sum(size for _, _, size in segments), dtype=torch.int64)
            offset = piece = 0
            for k, (_, _, size) in enumerate(segments):
                for r in range(self.world):
                    order[offset + owned[r][k]] = r * total + piece + torch.arange(len(owned[r][k]))
                offset, piece = offset + size, piece + widths[k]
            self.plans[group] = ([len(positions) for positions in owned[self.rank]], widths, order)
        return self.plans[group]

    def begin(self, outputs: dict[str, torch.Tensor], needed: tuple[str, ...]) -> Any:
        """Start gathering the outputs of the populations ``needed`` (see `needed`) from all ranks;
        ``end`` waits for them. Between the two, the other populations can step."""
        if not needed:
            return None
        value = torch.cat([outputs[name] for name in needed], -1)
        if self.channel is not None:  # done at once: shared memory takes microseconds
            return needed, self.channel.gather(value, [(0, self.populations[name].size) for name in needed])
        return needed, self._start(value, needed, bits=True)

    def end(self, begun: Any, outputs: dict[str, torch.Tensor], names: tuple[str, ...]) -> dict:
        """The outputs of the populations ``names`` for the whole network: those begun are waited
        for; the others (which no rank's synapses take from another rank, a one-to-one background
        say) hold this rank's values at their places and zeros elsewhere, which no synapse of this
        rank reads."""
        whole = {}
        if begun is not None:
            needed, started = begun
            sizes = [self.populations[name].size for name in needed]
            gathered = started if isinstance(started, torch.Tensor) else self._finish(started)
            whole = dict(zip(needed, torch.split(gathered, sizes, -1)))
        for name in names:
            if name not in whole:
                size, value = self.populations[name].size, outputs[name]
                owned = _owned(0, size, self.rank, self.world).to(value.device)
                whole[name] = value.new_zeros((*value.shape[:-1], size)).index_copy_(-1, owned, value)
        return whole

    def needed(self, names: tuple[str, ...], projections: dict) -> tuple[str, ...]:
        """Those of ``names`` whose outputs some rank's synapses take from another rank's neurons:
        worked out once, the ranks agreeing with one all-reduce."""
        key = ("needed", names)
        if key not in self.plans:
            import torch.distributed as dist

            flags = torch.tensor([any(self._foreign(proj, name) for proj in projections.values()) for name in names])
            flags = flags.to(torch.int32)
            dist.all_reduce(flags, op=dist.ReduceOp.MAX, group=self.group)
            agreed = flags.tolist()  # sync-ok: once per run
            self.plans[key] = tuple(name for name, flag in zip(names, agreed) if flag)
        return self.plans[key]

    def _foreign(self, proj: Any, population: str) -> bool:
        """Whether this rank's share of ``proj`` holds a synapse from a neuron of ``population``
        that another rank owns."""
        if isinstance(proj, SparseProjection):
            rows_used = proj.mask.any(1).to(torch.int64)
            used = rows_used.new_zeros(proj.n_pre + 1).index_add(0, proj.row_sources(), rows_used)[: proj.n_pre] > 0
        else:
            used = proj.mask.any(1)
        offset = 0
        for pop, start, size in _segments(proj.source, self.ranges()):
            if pop == population:
                rows = torch.nonzero(used[offset : offset + size]).reshape(-1).cpu()  # sync-ok: once per run
                if bool(((rows + start) % self.world != self.rank).any()):  # sync-ok: once per run
                    return True
            offset += size
        return False


def _traced_gather(flat: torch.Tensor, world: int, group_name: str | None) -> torch.Tensor:
    """Every rank's ``flat`` (1-d), rank after rank, from inside a compiled chunk: torch's traceable
    all-gather of the process group (gloo between machines), its wait where the values are used.
    A graph cannot choose its message by the values, so spikes travel as bits only where the models
    say their outputs are 0 or 1 (`_packed_message`); other values travel as they are."""
    if group_name is None or flat.dim() != 1:
        raise NotImplementedError(
            "a compiled chunk exchanges one network's outputs over gloo after Exchange.for_compiled (which simulate "
            "calls); lanes of shares exchange through shared memory"
        )
    return torch.ops._c10d_functional.all_gather_into_tensor(flat, world, group_name)


def _runs(flat: torch.Tensor, runs: tuple[tuple[int, int], ...]) -> torch.Tensor:
    """The values of ``flat`` in the ranges ``runs`` ((start, count) each), one after the other."""
    pieces = [flat.narrow(0, start, count) for start, count in runs]
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces) if pieces else flat.new_zeros(0)


def _plane_bytes(count: int) -> int:
    """Bytes holding ``count`` bits, a multiple of 8 (the values after them stay aligned)."""
    return -(-count // 64) * 8


def _packed_message(flat: torch.Tensor, packing: tuple) -> torch.Tensor:
    """A rank's step outputs ``flat`` as bytes: the values in the ranges ``packing[0]`` (every one 0
    or 1) as bits, then the values in ``packing[1]`` as their bytes. Bit ``i`` of byte ``j`` holds
    value ``i * width + j`` (``width`` bytes of bits): eight planes combined element by element, which
    a compiled graph does in one vectorised pass (a byte from 8 neighbouring values, fused with the
    neuron update, made a scale-0.1 microcircuit's steps 40% slower)."""
    binary = _runs(flat, packing[0])
    width = _plane_bytes(binary.numel())
    planes = torch.nn.functional.pad(binary, (0, 8 * width - binary.numel())).reshape(8, width).to(torch.uint8)
    packed = planes[0]
    for bit in range(1, 8):
        packed = packed | (planes[bit] << bit)
    if not packing[1]:
        return packed
    return torch.cat([packed, _runs(flat, packing[1]).view(torch.uint8)])


def _unpacked_message(gathered: torch.Tensor, world: int, like: torch.Tensor, packing: tuple) -> torch.Tensor:
    """Every rank's values from their `_packed_message` bytes (rank after rank), each rank's arranged
    as ``packing`` says (bits first), of ``like``'s dtype."""
    count = sum(size for _, size in packing[0])
    width = _plane_bytes(count)
    rows = gathered.reshape(world, -1)
    shifts = torch.arange(8, dtype=torch.uint8, device=gathered.device).reshape(1, 8, 1)
    bits = ((rows[:, :width].unsqueeze(1) >> shifts) & 1).reshape(world, 8 * width)[:, :count].to(like.dtype)
    if not packing[1]:
        return bits.reshape(-1)
    others = rows[:, width:].contiguous().view(like.dtype)
    return torch.cat([bits, others], 1).reshape(-1)


def _check_binary(flat: torch.Tensor, packing: tuple, group: str | tuple[str, ...]) -> None:
    """Raise unless the values of ``flat`` that would travel as bits are 0 or 1."""
    values = _runs(flat.detach(), packing[0])
    if not bool(((values == 0) | (values == 1)).all()):  # sync-ok: the CPU values of a step about to go through gloo
        names = ", ".join(map(repr, group if isinstance(group, tuple) else (group,)))
        raise ValueError(
            f"an output among those of {names} is not 0 or 1, though its model says so (output_is_binary = True): "
            "compiled chunks over gloo would send it as a bit; set output_is_binary = False on the model class"
        )


def _bitmap(values: torch.Tensor) -> torch.Tensor:
    """``values`` (CPU, floating) as uint8: a first byte 1 and one bit per value (numpy's bit order)
    where every value is 0 or 1, else a first byte 0 and zeros (the same length either way). In numpy:
    a step's few microseconds, where each torch op would cost several."""
    flat = values.detach().numpy().reshape(-1)  # sync-ok: CPU values about to go through gloo
    spikes = flat != 0
    message = np.zeros(1 + -(-flat.size // 8), np.uint8)
    if np.array_equal(spikes, flat):  # every value 0 or 1
        message[0] = 1
        message[1:] = np.packbits(spikes)
    return torch.from_numpy(message)


def _from_bitmap(message: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The values of a `_bitmap` message, shaped and typed like ``like``."""
    bits = torch.from_numpy(np.unpackbits(message.numpy()[1:], count=like.numel()))  # sync-ok: gloo's CPU bytes
    return bits.to(like.dtype).reshape(like.shape)


def group_places(group: str | tuple[str, ...], ranges: dict, rank: int, world: int) -> torch.Tensor:
    """Where the neurons of ``group`` that rank ``rank`` of ``world`` owns (in that rank's order:
    segment by segment, every ``world``-th neuron) stand in the whole group's numbering (int64)."""
    places, offset = [], 0
    for _, start, size in _segments(group, ranges):
        places.append(offset + _owned(start, size, rank, world))
        offset += size
    return torch.cat(places)


def _slice_tree(tree: Any, size: int, index: torch.Tensor) -> Any:
    """``tree`` with every tensor whose last axis has ``size`` entries (one per neuron) cut to ``index``."""
    return tree_map(
        lambda x: (
            x.index_select(-1, index.to(x.device))
            if isinstance(x, torch.Tensor) and x.ndim and x.shape[-1] == size
            else x
        ),
        tree,
    )


def _local_targets(proj: Any, exchange: Exchange) -> torch.Tensor:
    """For each target of ``proj`` (the whole network's numbering): its index among this rank's
    targets, or -1 where another rank owns it."""
    mapping = torch.full((proj.n_post,), -1, dtype=torch.int64)
    places = exchange._places(proj.target, exchange.rank)
    mapping[places] = torch.arange(len(places))
    return mapping


def _local_projection(proj: Any, exchange: Exchange) -> Any:
    mapping = _local_targets(proj, exchange)
    n_local = int((mapping >= 0).sum())  # sync-ok: building a partition
    if isinstance(proj, DenseProjection):
        columns = torch.nonzero(mapping >= 0).reshape(-1).to(proj.weights.device)  # sync-ok: building
        delays, mask, max_delay = proj.delays, proj.mask.index_select(-1, columns), proj.max_delay
        if isinstance(delays, torch.Tensor) and delays.ndim:
            delays = delays.index_select(-1, columns)
            max_delay = int(delays.masked_fill(~mask, 0).max()) if delays.numel() else 0  # sync-ok: building
        return replace(
            proj, n_post=n_local, weights=proj.weights.index_select(-1, columns), mask=mask, delays=delays,
            max_delay=max_delay,
        )  # fmt: skip
    if not isinstance(proj, SparseProjection):
        raise TypeError(f"partition knows dense and sparse projections, not {type(proj).__name__}")
    targets = proj.targets.long()
    padded = torch.cat([mapping, torch.tensor([-1])]).to(targets.device)
    local = padded[targets.clamp(max=proj.n_post)].reshape(-1)  # -1: padding or another rank's target
    kept = torch.nonzero(local >= 0).reshape(-1)  # sync-ok: building a partition; flat slots, by source
    width = targets.shape[1]
    sources = proj.row_sources().index_select(0, kept // width)
    degree = torch.bincount(sources, minlength=proj.n_pre)
    # the rows SynapseTable would give these synapses: a rank's share built directly has the same table
    rows = row_layout(degree.cpu(), None if proj.first_row is None else width)  # sync-ok: building
    before = torch.cumsum(degree, 0) - degree
    slots = (
        rows.slot_start.to(kept.device).index_select(0, sources)
        + torch.arange(kept.numel(), device=kept.device)
        - before[sources]
    )

    def compact(table: torch.Tensor) -> torch.Tensor:
        out = table.new_zeros(((rows.rows + 1) * rows.width,))
        return out.index_copy_(0, slots, table.reshape(-1).index_select(0, kept)).reshape(rows.rows + 1, rows.width)

    new_targets = target_table(rows.rows + 1, rows.width, n_local, kept.device)  # uint16 where the rank's fit
    put_targets(new_targets, slots, local.index_select(0, kept))
    delays, max_delay = proj.delays, proj.max_delay
    if isinstance(delays, torch.Tensor) and delays.ndim:  # the ring buffer as long as the rank's longest delay
        delays = compact(delays)
        max_delay = int(delays.max()) if delays.numel() else 0  # sync-ok: building a partition
    return replace(
        proj,
        n_post=n_local,
        targets=new_targets,
        weights=compact(proj.weights),
        delays=delays,
        max_delay=max_delay,
        first_row=rows.first_row,
        capacity=min(proj.capacity, max(rows.rows, 1)),
    )


def partition(
    network: Network, rank: int | None = None, world: int | None = None, group: Any = None, transport: str = "auto"
) -> Network:
    """This rank's share of ``network``: every ``world``-th neuron of each population from ``rank``
    on, with its parameters, constant drive and incoming synapses; the network it returns exchanges
    the outputs of source populations with the other ranks at each step (see the module docstring).

    ``rank`` and ``world`` default to those of the initialised default process group (``group``).
    ``transport``: how the outputs travel (see `Exchange`): ``"auto"`` (shared memory where every
    rank runs on this machine, else gloo), ``"shared"`` or ``"gloo"``.
    """
    if not isinstance(network, Network):
        raise TypeError(f"partition takes a Network, got {type(network).__name__}")
    if network.exchange is not None:
        raise ValueError("the network is already a partition; partition the whole network")
    return partition_built(
        network.populations, network.projections.items(), network.drive, rank, world, group, transport
    )


def partition_built(
    populations: dict[str, Population],
    projections: Iterable[tuple[str, Any]],
    drive: dict[str, Any] | Callable[[], dict[str, Any]],
    rank: int | None = None,
    world: int | None = None,
    group: Any = None,
    transport: str = "auto",
) -> Network:
    """`partition` of the network of ``populations``, ``projections`` ((name, projection) pairs of
    the whole network) and ``drive`` (or a function giving it, called once every projection is
    made), taking the pairs one at a time: each projection is cut to this rank's targets as it
    comes, so that a generator that builds them one after the other holds at most one whole
    projection at a time (`sapicore.spec` builds a spec's share so)."""
    _check_transport(transport)
    if rank is None or world is None:
        import torch.distributed as dist

        if not dist.is_initialized():
            raise RuntimeError(
                "partition needs rank and world, or an initialised process group: start the processes with "
                "torchrun and call torch.distributed.init_process_group('gloo') first"
            )
        rank, world = dist.get_rank(group), dist.get_world_size(group)
    if isinstance(world, bool) or not isinstance(world, int) or world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank must lie in [0, world) with world >= 1, got rank={rank}, world={world}")
    if (
        not isinstance(populations, dict)
        or not populations
        or not all(isinstance(population, Population) for population in populations.values())
    ):
        raise TypeError("partition_built takes the populations as a dict {name: Population(model, size)}")
    exchange = Exchange(dict(populations), rank, world, group, transport)
    local = {}
    for name, population in populations.items():
        index = _owned(0, population.size, rank, world)
        ranges = _part_ranges(name, population)
        small = [group for group, (_, _, size) in [(name, (name, 0, population.size)), *ranges] if size < world]
        if small:  # some rank would own none of its neurons (every rank sees the same sizes, so all refuse)
            raise ValueError(
                f"population or part {small[0]!r} has fewer neurons than there are ranks ({world}): give every "
                "population and part at least one neuron per rank"
            )
        parts = {part: len(_owned(start, size, rank, world)) for part, (_, start, size) in ranges}
        model = population.model
        if "numbering" in attrs.fields_dict(type(model)):  # keyed draws: number the neurons as in the whole network
            first, stride = model.numbering
            model = replace(model, numbering=(first + rank * stride, stride * world))
        local[name] = Population(_slice_tree(model, population.size, index), len(index), parts)
    whole = _ranges(dict(populations))
    cut, steps = {}, set()
    for pair in projections:
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)):
            raise TypeError(f"partition_built takes the projections as (name, projection) pairs, got {pair!r}")
        name, proj = pair
        check_projection(name, proj, populations, whole, whole)  # against the whole network, before it is cut
        if name in cut:
            raise ValueError(f"projection {name!r} is given twice")
        steps.add(proj.dt)
        cut[name] = _local_projection(proj, exchange)
        del pair, proj  # a generator's whole projection goes before the next is made
    if len(steps) > 1:
        raise ValueError(
            f"the projections were built for different time steps {sorted(steps)} ms; build them all with one dt"
        )
    ranges = exchange.ranges()
    local_drive = {}
    for name, value in (drive() if callable(drive) else drive).items():
        if name not in ranges:
            raise ValueError(f"drive names unknown population {name!r}; populations: {', '.join(ranges)}")
        pop, start, size = ranges[name]
        local_drive[name] = _slice_tree(value, size, _owned(start, size, rank, world))
    return Network(populations=local, projections=cut, drive=local_drive, exchange=exchange)


def local_values(size: int, value: Any, rank: int, world: int) -> Any:
    """This rank's part of ``value``, one value per neuron of a population of ``size`` (or fewer
    dimensions, broadcast: kept as it is)."""
    return _slice_tree(value, size, _owned(0, size, rank, world))


def _part_ranges(name: str, population: Population) -> list[tuple[str, tuple[str, int, int]]]:
    start, out = 0, []
    for part, size in population.parts:
        out.append((part, (name, start, size)))
        start += size
    return out


def local_state(network: Network, whole: Any) -> Any:
    """This rank's share of ``whole``, a state of the whole network at rest in its projections
    (weights as built, nothing in transit, as ``init_state`` and a spec's ``initial_state`` make it):
    each population's state cut to the rank's neurons; the projections' states those of the share."""
    exchange = network.exchange
    fresh = network.init_state()
    for name, pstate in whole.projections.items():
        if bool(pstate.pending.ne(0).any()) or int(pstate.step) != 0:  # sync-ok: building a partition
            raise ValueError(
                f"projection {name!r} has spikes in transit or has run; a share starts from a whole-network state "
                "at rest in its projections (e.g. network.init_state() with initial values set)"
            )
    populations = {
        name: _slice_tree(value, size, _owned(0, size, exchange.rank, exchange.world))
        for name, value in whole.populations.items()
        for size in [exchange.populations[name].size]
    }
    return replace(fresh, populations=populations)


def local_inputs(network: Network, inputs: Any) -> Any:
    """The share of ``inputs`` (for the whole network, keyed by population or part name) that this
    rank's neurons take: tensors with one value per neuron on their last axis are cut; numbers,
    functions of time and modulators pass unchanged."""
    if not isinstance(inputs, dict):
        return inputs
    ranges = network.exchange.ranges()
    out = {}
    for name, value in inputs.items():
        if name in ranges and isinstance(value, torch.Tensor):
            _, start, size = ranges[name]
            value = _slice_tree(value, size, _owned(start, size, network.exchange.rank, network.exchange.world))
        elif name in ranges and callable(value):
            value = _sliced_function(value, ranges[name], network.exchange)
        out[name] = value
    return out


def _sliced_function(function: Any, where: tuple[str, int, int], exchange: Exchange) -> Any:
    _, start, size = where
    index = _owned(start, size, exchange.rank, exchange.world)
    return lambda t: _slice_tree(function(t), size, index)


def gather_records(network: Network, records: dict) -> dict:
    """Records of a partitioned run for the whole network, on every rank: each population's (or
    part's) variables in the whole network's neuron order; synaptic variables of projections (one
    value per target) in their target group's order; ``t`` and ``diverged`` as they are."""
    exchange = network.exchange
    out = {}
    for name, value in records.items():
        owner, _, variable = name.partition(".")
        if name in ("t", "diverged"):
            out[name] = value
        elif owner in network.projections:
            proj = network.projections[owner]
            if value.shape[-1] != proj.n_post:
                raise NotImplementedError(
                    f"record {name!r} is not one value per target neuron; partitioned runs record population "
                    "variables and projections' synaptic variables"
                )
            out[name] = exchange.gather(value, proj.target)
        elif network.is_event(name):  # spikes: sparse, so only their places travel
            out[name] = exchange.gather_events(value, owner)
        else:
            out[name] = exchange.gather(value, owner)
    return out


def gather_synapses(network: Network, state: Any, name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every synapse of projection ``name`` with its weight in ``state``, from all ranks (on every
    rank): ``(pre, post, weight)`` in the whole network's numbering of its source and target groups,
    sorted by source, then target (a source's synapses onto one target in their order). For a
    network that is not partitioned, the same from the one process."""
    proj, weights = network.projections[name], state.projections[name].weights
    if isinstance(proj, SparseProjection):
        row, slot = torch.nonzero(proj.mask, as_tuple=True)  # sync-ok: reading results
        post, values = proj.targets[row, slot].long(), weights[row, slot]
        pre = proj.row_sources()[row]  # a source's rows follow each other: still sorted by source
    else:
        pre, post = torch.nonzero(proj.mask, as_tuple=True)  # sync-ok: reading results
        values = weights[pre, post]
    exchange = network.exchange
    if exchange is not None:
        post = exchange._places(proj.target, exchange.rank).to(post.device)[post]
    mine = (pre.cpu(), post.cpu(), values.detach().cpu())  # sync-ok: reading results
    if exchange is not None:
        import torch.distributed as dist

        pieces: list = [None] * exchange.world
        dist.all_gather_object(pieces, mine, group=exchange.group)
        mine = tuple(torch.cat([piece[k] for piece in pieces]) for k in range(3))
    pre, post, values = mine
    order = torch.sort(post, stable=True).indices
    order = order[torch.sort(pre[order], stable=True).indices]  # by source, then target
    return pre[order], post[order], values[order]
