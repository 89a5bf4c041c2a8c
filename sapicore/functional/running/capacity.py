"""Fixed capacities without lost spikes: overflow flags, reruns at full capacity, warnings.

Sparse projections whose backend picks spiking sources with fixed shapes (``fixed``/``topk``, see
[`sapicore.functional.transforms`][sapicore.functional.transforms]) propagate at most ``capacity`` sources per step and raise
their state's ``overflow`` flag when more spiked. ``simulate`` and ``sweep`` check the flags once per
chunk (one host synchronisation) and, when one is raised, run that chunk again from the state before
it, with the random generators as they were, by the eager loop on the network at full capacity
(`Rerun`). Runs whose projections cannot overflow (the CPU kernel, the eager ``nonzero``
backend, dense projections) never synchronise for this. A loop of your own over ``Network.step``
should call `report_overflow` (or read `overflowed`) after it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from ..network import Network, NetworkState, own_buffers
from ..propagation.projection import SparseProjection
from ..pytree import replace, tree_leaves, tree_map

__all__ = ["can_overflow", "overflowed", "full_capacity", "report_overflow", "Rerun"]

_FIXED = ("fixed", "topk", "auto")


def can_overflow(model: Any) -> list[str]:
    """The names of ``model``'s projections that can drop spikes (none unless it is a Network)."""
    if not isinstance(model, Network):
        return []
    return [
        name
        for name, proj in model.projections.items()
        if isinstance(proj, SparseProjection) and proj.propagation in _FIXED
    ]


def overflowed(model: Network, state: NetworkState) -> torch.Tensor | None:
    """True (0-d bool tensor) if a projection that can drop spikes did; None if none can."""
    flags = [state.projections[name].overflow.any() for name in can_overflow(model)]
    return torch.stack(flags).any() if flags else None


def full_capacity(model: Network) -> Network:
    """``model`` with room for every source spike in each of its projections."""
    return replace(model, projections={name: proj.with_full_capacity() for name, proj in model.projections.items()})


def report_overflow(model: Any, state: Any) -> None:
    """Warn for every projection of ``model`` whose spikes overflowed its capacity during the run."""
    for name in can_overflow(model):
        if bool(state.projections[name].overflow.any()):  # sync-ok: after the run
            warnings.warn(
                f"projection {name!r}: more than capacity={model.projections[name].capacity} source neurons spiked "
                "in one step; the excess spikes were not delivered. Rebuild it with a larger capacity.",
                RuntimeWarning,
                stacklevel=3,
            )


class Rerun:
    """Reruns a chunk in which a fixed-capacity projection dropped spikes, so none are lost.

    Inactive (no check, no synchronisation) when the model cannot overflow, inside an outer
    ``torch.func`` transform (``nested``), or when the run starts with a flag raised.
    """

    def __init__(self, model: Any, state: Any, device: torch.device, keep_outputs: bool, nested: bool) -> None:
        self.model, self.device, self.count = model, device, 0
        self.active = bool(can_overflow(model)) and not nested and not _agreed(overflowed(model, state), model)
        # CUDA graphs reuse their output memory: keep a copy of each state tensor a chunk wrote, but not
        # of tensors the run started with and passes through unchanged (such as fixed weights)
        self.keep_outputs = keep_outputs
        self.inputs = {_address(leaf) for leaf in tree_leaves(state)} - {None} if keep_outputs else set()

    def before(self, state: Any) -> Any:
        """What a rerun of the next chunk needs (None when inactive)."""
        if not self.active:
            return None
        rng = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        kept = tree_map(self._keep, state) if self.keep_outputs else own_buffers(self.model, state)
        return kept, torch.get_rng_state(), rng

    def _keep(self, leaf: Any) -> Any:
        return leaf.clone() if isinstance(leaf, torch.Tensor) and _address(leaf) not in self.inputs else leaf

    def needed(self, state: Any) -> bool:
        """Whether the chunk that gave ``state`` must run again; for one rank's share of a network,
        whether any rank's must (the ranks exchange at every step, so they rerun together)."""
        return self.active and _agreed(overflowed(self.model, state), self.model)

    def __call__(self, eager_chunk: Callable, before: Any, xs: Any, t0: torch.Tensor) -> tuple[Any, dict]:
        state, cpu_rng, cuda_rng = before
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state(cuda_rng, self.device)
        self.count += 1
        return eager_chunk(full_capacity(self.model), state, xs, t0)

    def report(self, chunks: int) -> None:
        if self.count > max(2, chunks // 20):
            warnings.warn(
                f"{self.count} of {chunks} chunks had more spiking sources in a step than a projection's capacity "
                "and were run again on the slower full-capacity path; a larger capacity= would avoid that",
                RuntimeWarning,
                stacklevel=4,
            )


def _agreed(flag: torch.Tensor | None, model: Any) -> bool:
    """``flag`` (a 0-d bool tensor, or None: False) as a bool; for one rank's share of a network,
    True where it is on any rank (every rank calls this at the same point)."""
    if flag is None:
        return False
    exchange = getattr(model, "exchange", None)
    if exchange is None:
        return bool(flag)  # sync-ok: once per chunk
    import torch.distributed as dist

    flag = flag.to(device="cpu", dtype=torch.int32).reshape(1)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=exchange.group)
    return bool(flag)  # sync-ok: once per chunk


def _address(leaf: Any) -> int | None:
    """The memory address of a tensor's data, or None (not a tensor, or a tensor without storage)."""
    if not isinstance(leaf, torch.Tensor):
        return None
    try:
        return leaf.data_ptr()
    except RuntimeError:  # functorch wrappers and fake tensors have no storage
        return None
