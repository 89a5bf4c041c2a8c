"""The exchange of a partitioned network between the processes of one machine, through shared memory.

Over gloo, an all-gather of a step's spikes costs a partitioned run about 0.7 ms per step on this
kind of machine (TCP over loopback, a thread per collective), more than a step of the microcircuit
at scale 0.1 takes. Where every rank runs on one machine, `SharedChannel.open` maps one segment of
shared memory into every rank, and ``sapicore::exchange_gather`` (``csrc/exchange.cpp``) exchanges
a step's outputs through it in a few microseconds: each rank copies its values into its slot, posts
a counter and waits for the others' (spinning briefly, then yielding the core). It is an operator,
so compiled chunks (``simulate(fast=True)``) call it inside their graph.

A waiting rank notices within a few milliseconds that a rank it waits for has died, and gives up after
`exchange_timeout` seconds on one that is stuck; either raises ``RuntimeError`` naming the rank.
The segment is removed from ``/dev/shm`` as soon as every rank has mapped it, so a run that is
killed leaves nothing behind.
"""

from __future__ import annotations

import ctypes
import os
import uuid
import weakref
from typing import Any

import attrs
import torch

from ..propagation import kernels

__all__ = ["SharedChannel", "exchange_timeout", "failure", "DEFAULT_EXCHANGE_TIMEOUT"]

#: seconds a rank waits for the other processes before it fails
DEFAULT_EXCHANGE_TIMEOUT = 600.0


def exchange_timeout() -> float:
    """Seconds a rank waits for the other processes (``$SAPICORE_EXCHANGE_TIMEOUT``, default 600:
    long enough for every rank to build its share of a large network before the first exchange).
    A process that dies is noticed at once; one that is stuck, after this."""
    text = os.environ.get("SAPICORE_EXCHANGE_TIMEOUT", "").strip()
    if not text:
        return DEFAULT_EXCHANGE_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"SAPICORE_EXCHANGE_TIMEOUT must be a positive number of seconds, got {text!r}")
    return seconds


def _library(build: bool = True) -> ctypes.CDLL | None:
    """The kernel library with its exchange functions typed, or None (not built, or built without
    the exchange: a system without POSIX shared memory). ``build=False`` never builds it."""
    library = kernels.library() if build else kernels._LOADED.get("library")
    if library is None or not hasattr(library, "sapicore_exchange_open"):
        return None
    if not getattr(library, "_sapicore_typed", False):
        library.sapicore_exchange_open.restype = ctypes.c_int64
        library.sapicore_exchange_open.argtypes = [
            ctypes.c_char_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_double, ctypes.c_int,
        ]  # fmt: skip
        library.sapicore_exchange_unlink.argtypes = [ctypes.c_char_p]
        library.sapicore_exchange_check_pids.argtypes = [ctypes.c_int64]
        library.sapicore_exchange_close.argtypes = [ctypes.c_int64]
        library.sapicore_exchange_close.restype = None
        library.sapicore_exchange_stats.argtypes = [ctypes.c_int64, ctypes.POINTER(ctypes.c_double)]
        library.sapicore_exchange_stats.restype = None
        library.sapicore_exchange_error.restype = ctypes.c_char_p
        library.sapicore_exchange_failure.restype = ctypes.c_char_p
        library._sapicore_typed = True
    return library


def failure() -> str | None:
    """Why the latest shared-memory exchange of this process failed, or None (a compiled chunk's
    error does not carry the operator's message, so the command line asks here)."""
    library = _library(build=False)  # never build the library just to ask
    if library is None:
        return None
    text = library.sapicore_exchange_failure().decode()
    return text or None


@attrs.define(frozen=True, eq=False)
class SharedChannel:
    """A segment of shared memory mapped by every rank of a process group on one machine: this
    process's channel ``number`` (the first one open is 0; compiled chunks name it), this ``rank`` of
    ``world``, and ``slot_bytes`` per rank and exchange."""

    number: int
    rank: int
    world: int
    slot_bytes: int

    @classmethod
    def open(cls, group: Any, slot_bytes: int) -> SharedChannel | str:
        """Map one segment into every rank of ``group`` (a collective: every rank calls it); the
        channel, or why it cannot be had (the library is not built, or the ranks run on several
        machines) as a string, the same on every rank."""
        import torch.distributed as dist

        rank, world = dist.get_rank(group), dist.get_world_size(group)
        library = _library()
        why = None if library is not None else "the CPU kernel library is not built, or has no shared memory here"
        name = f"/sapicore-{os.getpid()}-{uuid.uuid4().hex[:12]}" if rank == 0 and why is None else None
        number = -1
        if name is not None:
            number = library.sapicore_exchange_open(name.encode(), rank, world, slot_bytes, exchange_timeout(), 1)
            if number < 0:
                why = f"shared memory: {library.sapicore_exchange_error().decode()}"
        told = [name if number >= 0 else None, why]
        dist.broadcast_object_list(told, src=dist.get_global_rank(group, 0) if group is not None else 0, group=group)
        name, why = told
        if rank != 0 and name is not None:
            number = library.sapicore_exchange_open(name.encode(), rank, world, slot_bytes, exchange_timeout(), 0)
        opened = torch.tensor([1 if number >= 0 else 0], dtype=torch.int32)
        dist.all_reduce(opened, op=dist.ReduceOp.MIN, group=group)  # every rank has mapped it, or one could not
        if rank == 0 and name is not None:
            library.sapicore_exchange_unlink(name.encode())  # nothing left in /dev/shm, however the run ends
        if not int(opened.item()):  # sync-ok: once per run
            if number >= 0:
                library.sapicore_exchange_close(number)
            return why or "the ranks do not share a machine (no shared memory between them)"
        library.sapicore_exchange_check_pids(number)
        channel = cls(int(number), rank, world, slot_bytes)
        _OPEN[channel.number] = (world, slot_bytes)  # not the channel: the finalizer closes it once unused
        weakref.finalize(channel, _close, library, channel.number)
        if not _LANES_RULE:  # vmap lanes (a sweep of shares) exchange together, not lane by lane
            torch.library.register_vmap("sapicore::exchange_gather")(_gather_lanes)
            _LANES_RULE.append(True)
        return channel

    def __reduce__(self) -> tuple:
        # a mapping of this process: a checkpoint or a copy holds no channel (the run opens its own)
        return _no_channel, ()

    def gather(self, local: torch.Tensor, segments: list[tuple[int, int]]) -> torch.Tensor:
        """Every rank's ``local`` values (the last axis: this rank's neurons of each ``(start, size)``
        segment of a population, in order) as the segments' values in the whole order, one segment
        after the other (see ``csrc/exchange.cpp``); any leading axes (vmap lanes too), in as many
        exchanges as the slots need."""
        flat = [number for segment in segments for number in segment]
        return _gather(self.number, self.world, self.slot_bytes, local, flat)

    def traffic(self) -> dict[str, float]:
        """Exchanges made, seconds spent waiting for the other ranks, and bytes this rank received."""
        out = (ctypes.c_double * 3)()
        _library().sapicore_exchange_stats(self.number, out)
        return {"calls": int(out[0]), "seconds": out[1], "bytes": int(out[2])}


#: (world, slot bytes) of each channel this process has open, by number
_OPEN: dict[int, tuple[int, int]] = {}
#: not empty once exchange_gather's vmap rule is registered (once per process)
_LANES_RULE: list = []


def _close(library: ctypes.CDLL, number: int) -> None:
    _OPEN.pop(number, None)
    library.sapicore_exchange_close(number)


def _gather(number: int, world: int, slot_bytes: int, local: torch.Tensor, flat: list[int]) -> torch.Tensor:
    """`SharedChannel.gather` through channel ``number`` (of ``world`` ranks, ``slot_bytes`` per
    rank), its segments flattened: rows of values go in blocks that fit the slot, the same blocks on
    every rank (each rank's values are cut alike, whatever its share of the neurons)."""
    if local.dim() == 1:
        return torch.ops.sapicore.exchange_gather(local, number, flat)
    rows = local.reshape(-1, local.shape[-1])
    widest = sum(-(-size // world) for size in flat[1::2])
    per_exchange = max(1, slot_bytes // max(1, widest * rows.element_size()))
    pieces = [torch.ops.sapicore.exchange_gather(block, number, flat) for block in torch.split(rows, per_exchange)]
    whole = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
    return whole.reshape(*local.shape[:-1], whole.shape[-1])


def _gather_lanes(info: Any, in_dims: tuple, local: torch.Tensor, number: int, flat: list[int]) -> tuple:
    """exchange_gather's vmap rule: every lane's values in as few exchanges as the slot allows."""
    if in_dims[0] is None:
        return torch.ops.sapicore.exchange_gather(local, number, flat), None
    return _gather(number, *_OPEN[number], local.movedim(in_dims[0], 0), list(flat)), 0


def _no_channel() -> None:
    """What a pickled or copied `SharedChannel` becomes."""
    return None
