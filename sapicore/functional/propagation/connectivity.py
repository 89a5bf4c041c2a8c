"""Connectivity builders: seeded, reproducible lists of (pre, post) index pairs.

Each builder returns a `Connectivity` (a COO edge list sorted by pre then post index, int64 on
the CPU). Random builders draw from their own ``torch.Generator`` seeded with ``seed``, so the same
seed gives the same network on every device and run. Sampling without replacement scales with the
number of synapses, not with ``n_pre * n_post``, so fixed in-degree networks of millions of neurons
can be built. `fixed_total_number` draws each target's synapses from streams keyed by the target
(the helpers below it), so that a process draws the synapses of its own targets alone, as the
whole projection has them.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator
from typing import Any

import attrs
import torch

__all__ = [
    "Connectivity",
    "all_to_all",
    "one_to_one",
    "fixed_probability",
    "fixed_in_degree",
    "fixed_out_degree",
    "fixed_total_number",
    "total_number_in_degree",
    "keyed_uniform_rows",
    "keyed_normal_rows",
    "keyed_sources",
    "stable_order",
    "target_pieces",
    "from_indices",
]


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return int(value)


@attrs.frozen(eq=False)
class Connectivity:
    """Synapses as index pairs: synapse ``k`` connects ``pre[k]`` to ``post[k]``.

    Attributes:
        pre, post: int64 tensors of equal length, sorted by ``pre`` then ``post``.
        n_pre, n_post: sizes of the source and target populations.
    """

    pre: torch.Tensor
    post: torch.Tensor
    n_pre: int
    n_post: int

    def __len__(self) -> int:
        return int(self.pre.numel())

    def in_degree(self) -> torch.Tensor:
        """Number of incoming synapses of each target neuron."""
        return torch.bincount(self.post, minlength=self.n_post)

    def out_degree(self) -> torch.Tensor:
        """Number of outgoing synapses of each source neuron."""
        return torch.bincount(self.pre, minlength=self.n_pre)


def from_indices(pre: Any, post: Any, n_pre: int, n_post: int, allow_self: bool = True) -> Connectivity:
    """Connectivity from explicit index lists; duplicates are rejected, indices checked against sizes;
    ``allow_self=False`` drops the pairs ``i -> i`` among them (as for the other rules)."""
    n_pre, n_post = _count(n_pre, "n_pre"), _count(n_post, "n_post")
    pre = torch.as_tensor(pre).reshape(-1)
    post = torch.as_tensor(post).reshape(-1)
    if pre.is_floating_point() or post.is_floating_point():
        raise TypeError("pre and post indices must be integers")
    if pre.shape != post.shape:
        raise ValueError(f"pre ({pre.numel()}) and post ({post.numel()}) index lists differ in length")
    pre, post = pre.to(torch.int64).cpu(), post.to(torch.int64).cpu()  # sync-ok: building connectivity, before any run
    if pre.numel() and (
        int(pre.min()) < 0 or int(pre.max()) >= n_pre
    ):  # sync-ok: building connectivity, before any run
        raise ValueError(
            f"pre indices must lie in [0, {n_pre}), got values from {int(pre.min())} to {int(pre.max())}"
        )  # sync-ok: building connectivity, before any run
    if post.numel() and (
        int(post.min()) < 0 or int(post.max()) >= n_post
    ):  # sync-ok: building connectivity, before any run
        raise ValueError(
            f"post indices must lie in [0, {n_post}), got values from {int(post.min())} to {int(post.max())}"
        )  # sync-ok: building connectivity, before any run
    if not allow_self:
        keep = pre != post
        pre, post = pre[keep], post[keep]
    key = pre * max(n_post, 1) + post
    order = torch.argsort(key)
    key = key[order]
    if key.numel() > 1 and bool((key[1:] == key[:-1]).any()):  # sync-ok: building connectivity, before any run
        raise ValueError("the index lists connect some pair twice; each (pre, post) pair may appear once")
    return Connectivity(pre[order], post[order], n_pre, n_post)


def all_to_all(n_pre: int, n_post: int, allow_self: bool = True) -> Connectivity:
    """Every source neuron to every target neuron (``allow_self=False`` drops i -> i)."""
    n_pre, n_post = _count(n_pre, "n_pre"), _count(n_post, "n_post")
    pre = torch.arange(n_pre).repeat_interleave(n_post)
    post = torch.arange(n_post).repeat(n_pre)
    return from_indices(pre, post, n_pre, n_post, allow_self)


def one_to_one(n: int) -> Connectivity:
    """Neuron i to neuron i."""
    n = _count(n, "n")
    index = torch.arange(n)
    return Connectivity(index, index.clone(), n, n)


def _generator(seed: int | None) -> torch.Generator:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"seed must be an int or None, got {seed!r}")
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(int(seed))
    return generator


def _sample_rows(
    counts: torch.Tensor, n_choices: int, exclude_diagonal: bool, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row r, ``counts[r]`` distinct choices in ``[0, n_choices)``, uniformly at random.

    With ``exclude_diagonal`` the choice ``r`` is excluded from row ``r``. Returns (rows, choices).
    """
    rows_all, choices_all = [], []
    n_rows = counts.numel()
    available = n_choices - (1 if exclude_diagonal else 0)
    if n_rows == 0 or int(counts.max()) == 0:  # sync-ok: building connectivity, before any run
        empty = torch.zeros(0, dtype=torch.int64)
        return empty, empty
    # rows that need many choices are drawn by shuffling; sparse rows by rejection sampling
    dense = counts * 4 > available
    for is_dense in (True, False):
        row_ids = torch.nonzero(dense if is_dense else ~dense).reshape(-1)  # sync-ok: build time
        block = max(1, int(4_000_000 // max(n_choices if is_dense else 1, 1)))
        for start in range(0, row_ids.numel(), block):
            ids = row_ids[start : start + block]
            need = counts[ids]
            if is_dense:
                keys = torch.rand(ids.numel(), n_choices, generator=generator)
                if exclude_diagonal:
                    keys[ids < n_choices, ids[ids < n_choices]] = 2.0  # sorts last, never taken
                picked = torch.argsort(keys, dim=1)
                valid = torch.arange(n_choices)[None, :] < need[:, None]
                rows_all.append(ids[:, None].expand_as(picked)[valid])
                choices_all.append(picked[valid])
            else:
                rows, choices = _reject_sample(ids, need, n_choices, exclude_diagonal, generator)
                rows_all.append(rows)
                choices_all.append(choices)
    return torch.cat(rows_all), torch.cat(choices_all)


def _reject_sample(
    ids: torch.Tensor, need: torch.Tensor, n_choices: int, exclude_diagonal: bool, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw candidates with replacement, keep first occurrences, redraw rows that came up short."""
    rows_out, choices_out = [], []
    pending_ids, pending_need = ids, need
    while pending_ids.numel():
        width = (
            int(pending_need.max()) + int(3 * math.sqrt(int(pending_need.max()))) + 8
        )  # sync-ok: building connectivity, before any run
        draws = torch.randint(0, n_choices, (pending_ids.numel(), width), generator=generator)
        ok = torch.ones_like(draws, dtype=torch.bool)
        if exclude_diagonal:
            ok &= draws != pending_ids[:, None]
        # mark repeats: sort each row (stable), compare neighbours, map back to draw order
        sorted_draws, order = torch.sort(draws, dim=1, stable=True)
        repeat_sorted = torch.zeros_like(ok)
        repeat_sorted[:, 1:] = sorted_draws[:, 1:] == sorted_draws[:, :-1]
        repeat = torch.zeros_like(ok).scatter_(1, order, repeat_sorted)
        ok &= ~repeat
        rank = torch.cumsum(ok, dim=1)
        take = ok & (rank <= pending_need[:, None])
        done = rank[:, -1] >= pending_need
        rows_out.append(pending_ids[:, None].expand_as(draws)[take & done[:, None]])
        choices_out.append(draws[take & done[:, None]])
        pending_ids, pending_need = pending_ids[~done], pending_need[~done]
    return torch.cat(rows_out), torch.cat(choices_out)


def _check_degree(k: Any, available: int, name: str) -> int:
    k = _count(k, name)
    if k > available:
        raise ValueError(f"{name}={k} exceeds the {available} neurons available to connect to")
    return k


def fixed_in_degree(n_pre: int, n_post: int, k: int, seed: int | None = None, allow_self: bool = True) -> Connectivity:
    """Each target neuron receives exactly ``k`` synapses from distinct source neurons."""
    n_pre, n_post = _count(n_pre, "n_pre"), _count(n_post, "n_post")
    exclude = not allow_self
    k = _check_degree(k, n_pre - (1 if exclude and n_pre == n_post else 0), "k")
    posts, pres = _sample_rows(torch.full((n_post,), k), n_pre, exclude and n_pre == n_post, _generator(seed))
    return from_indices(pres, posts, n_pre, n_post)


def fixed_out_degree(n_pre: int, n_post: int, k: int, seed: int | None = None, allow_self: bool = True) -> Connectivity:
    """Each source neuron makes exactly ``k`` synapses onto distinct target neurons."""
    n_pre, n_post = _count(n_pre, "n_pre"), _count(n_post, "n_post")
    exclude = not allow_self
    k = _check_degree(k, n_post - (1 if exclude and n_pre == n_post else 0), "k")
    pres, posts = _sample_rows(torch.full((n_pre,), k), n_post, exclude and n_pre == n_post, _generator(seed))
    return from_indices(pres, posts, n_pre, n_post)


def fixed_probability(
    n_pre: int, n_post: int, p: float, seed: int | None = None, allow_self: bool = True
) -> Connectivity:
    """Each (pre, post) pair is connected independently with probability ``p``.

    Drawn as a binomial in-degree per target neuron followed by uniform sampling without
    replacement, which gives the same distribution as independent coin flips.
    """
    n_pre, n_post = _count(n_pre, "n_pre"), _count(n_post, "n_post")
    if not isinstance(p, numbers.Real) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
        raise ValueError(f"connection probability p must lie in [0, 1], got {p!r}")
    exclude = not allow_self and n_pre == n_post
    available = n_pre - (1 if exclude else 0)
    generator = _generator(seed)
    counts = torch.binomial(
        torch.full((n_post,), float(available)), torch.full((n_post,), float(p)), generator=generator
    )
    posts, pres = _sample_rows(counts.to(torch.int64), n_pre, exclude, generator)
    return from_indices(pres, posts, n_pre, n_post)


def fixed_total_number(
    n_pre: int, n_post: int, count: int, seed: int | None = None, targets: torch.Tensor | None = None
) -> Connectivity:
    """Exactly ``count`` synapses, each from a source and to a target drawn uniformly and
    independently: a pair may be connected more than once (multapses) and a neuron to itself
    (autapses), as NEST's ``fixed_total_number`` rule with both allowed.

    Drawn target by target (`total_number_in_degree`, `keyed_sources`), so that ``targets`` (target
    indices, ascending) draws only their synapses, equal to theirs among the whole projection's of
    the same ``seed``: a process holding some targets of a network draws them without drawing the
    rest, in time and memory linear in their synapses. Sorted by source; a source's synapses ordered
    by target, then by their number at the target. Sources come from 32-bit hashes, so ``n_pre`` is
    at most ``2**24`` (each source then drawn with the same probability to 0.4%).
    """
    n_pre, n_post, count = _count(n_pre, "n_pre"), _count(n_post, "n_post"), _count(count, "count")
    if n_pre > 2**24:
        raise ValueError(
            f"fixed_total_number draws sources from 32-bit hashes: n_pre must be at most 2**24, got {n_pre}"
        )
    seed = _seed(seed)
    in_degree = total_number_in_degree(n_pre, n_post, count, seed)
    targets = torch.arange(n_post) if targets is None else _targets(targets, n_post)
    counts = in_degree.index_select(0, targets)
    pre = keyed_sources(seed, targets, counts, n_pre)
    post = torch.repeat_interleave(targets, counts)
    order = stable_order(pre, n_pre)
    return Connectivity(pre.index_select(0, order), post.index_select(0, order), n_pre, n_post)


def _seed(seed: int | None) -> int:
    """``seed``, or a fresh random one where it is None (as the other rules' generators)."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"seed must be an int or None, got {seed!r}")
    return torch.Generator().seed() % 2**31 if seed is None else int(seed)


def _targets(targets: Any, n_post: int) -> torch.Tensor:
    targets = torch.as_tensor(targets).reshape(-1)
    if targets.is_floating_point() or targets.dtype == torch.bool:
        raise TypeError(f"targets must be integer indices, got {targets.dtype}")
    targets = targets.to(torch.int64).cpu()  # sync-ok: building connectivity
    if targets.numel() and (
        int(targets.min()) < 0 or int(targets.max()) >= n_post or bool((targets[1:] <= targets[:-1]).any())
    ):  # sync-ok: building connectivity
        raise ValueError(f"targets must be distinct indices in [0, {n_post}), ascending")
    return targets


def total_number_in_degree(n_pre: int, n_post: int, count: int, seed: int) -> torch.Tensor:
    """Each target's number of synapses in `fixed_total_number` (int64, one per target): a
    multinomial draw of ``count`` over the targets, made by splitting ranges of targets in halves
    with binomial draws from a generator seeded with ``seed`` (the same numbers on every process,
    in time linear in ``n_post``, whatever ``count``)."""
    n_pre, n_post, count = _count(n_pre, "n_pre"), _count(n_post, "n_post"), _count(count, "count")
    if count and not (n_pre and n_post):
        raise ValueError(f"count={count} synapses need neurons on both sides, got n_pre={n_pre}, n_post={n_post}")
    generator = _generator(seed)
    counts = torch.tensor([float(count)], dtype=torch.float64)
    sizes = torch.tensor([n_post], dtype=torch.int64)
    while bool((sizes > 1).any()):  # sync-ok: building connectivity
        left = sizes // 2
        share = (left / sizes.clamp(min=1)).to(torch.float64)
        drawn = torch.binomial(counts, share, generator=generator)
        counts = torch.stack([drawn, counts - drawn], 1).reshape(-1)
        sizes = torch.stack([left, sizes - left], 1).reshape(-1)
    return counts[sizes > 0].to(torch.int64)


def keyed_uniform_rows(seed: int, rows: torch.Tensor, counts: torch.Tensor, stream: int) -> torch.Tensor:
    """``counts[r]`` uniforms in (0, 1) (float64) for each row ``r``, one row after another: those
    of ``keyed_uniform(seed, rows[r], j, stream)`` for ``j = 0 .. counts[r] - 1``
    ([`keyed_uniform`][sapicore.functional.models.currents.keyed_uniform]), so a value depends on its
    row and number only. The C++ op where the kernel library is built (5 ns a value), else torch ops."""
    rows, counts = _rows(rows, counts)
    if _kernels():
        return torch.ops.sapicore.keyed_uniform_rows(rows, counts, seed, stream)
    from ..models.currents import keyed_uniform

    starts = torch.cumsum(counts, 0) - counts
    counter = torch.arange(int(counts.sum())) - torch.repeat_interleave(starts, counts)  # sync-ok: building
    return keyed_uniform(seed, torch.repeat_interleave(rows, counts), counter, stream)


def _rows(rows: Any, counts: Any) -> tuple[torch.Tensor, torch.Tensor]:
    rows, counts = torch.as_tensor(rows).reshape(-1), torch.as_tensor(counts).reshape(-1)
    if rows.is_floating_point() or counts.is_floating_point() or rows.shape != counts.shape:
        raise ValueError(
            f"rows and counts must be integers of one length, got {rows.dtype} x {rows.numel()} "
            f"and {counts.dtype} x {counts.numel()}"
        )
    if counts.numel() and int(counts.min()) < 0:  # sync-ok: building connectivity
        raise ValueError(f"counts must be >= 0, got {int(counts.min())}")  # sync-ok: building connectivity
    return rows.to(torch.int64).cpu(), counts.to(torch.int64).cpu()  # sync-ok: building connectivity


def _kernels() -> bool:
    """True where the C++ ops of the kernel library are there to use."""
    from . import kernels

    return kernels.available() and not kernels.is_disabled()


def keyed_sources(seed: int, targets: torch.Tensor, counts: torch.Tensor, n_pre: int) -> torch.Tensor:
    """The sources (int64, uniform in ``[0, n_pre)``) of ``counts[r]`` synapses of each target
    ``targets[r]``, one target after another: synapse ``j`` of target ``k`` comes from
    ``floor(n_pre * keyed_uniform(seed, k, j, 1))``."""
    if _kernels():
        targets, counts = _rows(targets, counts)
        return torch.ops.sapicore.keyed_sources(targets, counts, seed, 1, max(n_pre, 1))
    u = keyed_uniform_rows(seed, targets, counts, 1)
    return u.mul_(n_pre).floor_().clamp_(max=max(n_pre - 1, 0)).to(torch.int64)


def keyed_normal_rows(seed: int, rows: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two standard normal values (float32) per synapse of `keyed_uniform_rows` (``counts[r]`` of each
    row ``rows[r]``): the Box-Muller pair ``sqrt(-2 ln u) cos(2 pi v)``, ``sqrt(-2 ln u) sin(2 pi v)`` of
    the uniforms ``u`` (stream 2) and ``v`` (stream 3), computed in float32 element by element (a
    value does not depend on where it lies among the others)."""
    radius = keyed_uniform_rows(seed, rows, counts, 2).to(torch.float32).log_().mul_(-2.0).sqrt_()
    angle = keyed_uniform_rows(seed, rows, counts, 3).to(torch.float32).mul_(2.0 * math.pi)
    return radius * torch.cos(angle), radius.mul_(angle.sin_())


def stable_order(keys: torch.Tensor, bins: int) -> torch.Tensor:
    """The permutation (int64) that sorts ``keys`` (int32 or int64 in ``[0, bins)``) ascending, equal
    keys in their order: a counting sort in the C++ op (10 ns a key; a stable ``torch.sort``, the
    fallback, takes 30-40)."""
    if keys.is_floating_point() or keys.dim() != 1:
        raise ValueError(f"keys must be one row of integers, got {keys.dtype} of shape {tuple(keys.shape)}")
    if keys.numel() and (int(keys.min()) < 0 or int(keys.max()) >= bins):  # sync-ok: building connectivity
        raise ValueError(f"keys must lie in [0, {bins})")
    if _kernels() and keys.dtype in (torch.int32, torch.int64):
        return torch.ops.sapicore.stable_order(keys.cpu(), bins)  # sync-ok: building connectivity
    return torch.sort(keys, stable=True)[1]


def target_pieces(counts: torch.Tensor, size: int) -> Iterator[slice]:
    """Consecutive slices of targets whose ``counts`` (synapses) add up to at most ``size`` (a target
    with more is a slice alone): a builder draws a projection's synapses piece by piece."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int (synapses per piece), got {size!r}")
    ends = torch.cumsum(counts, 0)
    start, done = 0, 0
    while start < counts.numel():
        stop = max(int(torch.searchsorted(ends, done + size, right=True)), start + 1)  # sync-ok: building
        yield slice(start, stop)
        start, done = stop, int(ends[stop - 1])  # sync-ok: building connectivity
