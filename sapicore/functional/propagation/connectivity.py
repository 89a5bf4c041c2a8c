"""Connectivity builders: seeded, reproducible lists of (pre, post) index pairs.

Each builder returns a `Connectivity` (a COO edge list sorted by pre then post index, int64 on
the CPU). Random builders draw each target's synapses (a source's, for `fixed_out_degree`) from
streams keyed by ``seed`` and the neuron's number (the helpers below), so the same seed gives the
same network on every device, run and process, and a process holding some targets of a network
draws their synapses alone (``targets=``), as the whole projection has them. Time and memory grow
with the number of synapses, not with ``n_pre * n_post``.
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


def all_to_all(n_pre: int, n_post: int, allow_self: bool = True, targets: torch.Tensor | None = None) -> Connectivity:
    """Every source neuron to every target neuron (``allow_self=False`` drops i -> i); ``targets``
    (ascending): only their synapses."""
    n_pre, n_post = _count(n_pre, "n_pre"), _count(n_post, "n_post")
    targets = torch.arange(n_post) if targets is None else _targets(targets, n_post)
    pre = torch.arange(n_pre).repeat_interleave(targets.numel())
    post = targets.repeat(n_pre)
    if not allow_self:
        keep = pre != post
        pre, post = pre[keep], post[keep]
    return Connectivity(pre, post, n_pre, n_post)


def one_to_one(n: int, targets: torch.Tensor | None = None) -> Connectivity:
    """Neuron i to neuron i; ``targets`` (ascending): only their synapses."""
    n = _count(n, "n")
    index = torch.arange(n) if targets is None else _targets(targets, n)
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


def _check_degree(k: Any, available: int, name: str) -> int:
    k = _count(k, name)
    if k > available:
        raise ValueError(f"{name}={k} exceeds the {available} neurons available to connect to")
    return k


def fixed_in_degree(
    n_pre: int,
    n_post: int,
    k: int,
    seed: int | None = None,
    allow_self: bool = True,
    targets: torch.Tensor | None = None,
) -> Connectivity:
    """Each target neuron receives exactly ``k`` synapses from distinct source neurons, chosen
    uniformly.

    Drawn target by target from streams keyed by the target (as `fixed_total_number`): target ``t``'s
    sources are the first ``k`` distinct candidates ``floor(m * keyed_uniform(seed, t, j, 1))``,
    ``j = 0, 1, ...``, among the ``m`` sources it may connect to (all, or all but ``t`` itself with
    ``allow_self=False`` where ``n_pre == n_post``); where ``2 k > m`` the ``m - k`` sources left out
    are drawn so instead (stream 2), so a target draws about ``0.7 m`` candidates at most, on average.
    ``targets`` (ascending) draws only their synapses, equal to theirs in the whole projection.
    Sources come from 32-bit hashes, so ``n_pre`` is at most ``2**24``.
    """
    n_pre, n_post = _count(n_pre, "n_pre"), _count(n_post, "n_post")
    _check_hashed(n_pre, "fixed_in_degree")
    exclude = not allow_self and n_pre == n_post
    available = max(n_pre - (1 if exclude else 0), 0)
    k = _check_degree(k, available, "k")
    seed = _seed(seed)
    targets = torch.arange(n_post) if targets is None else _targets(targets, n_post)
    position = _distinct_rows(targets, k, seed, available)
    return _keyed_rows(targets, torch.full_like(targets, k), position, n_pre, n_post, exclude)


def _distinct_rows(rows: torch.Tensor, k: int, seed: int, available: int) -> torch.Tensor:
    """``k`` distinct positions in ``[0, available)`` for each row, ascending, one row after another
    (`fixed_in_degree`'s sources of a target, `fixed_out_degree`'s targets of a source)."""
    complement = 2 * k > available
    need = available - k if complement else k  # drawn; where complement, the others are the row's
    if _kernels():
        return torch.ops.sapicore.keyed_distinct(rows, need, seed, 2 if complement else 1, available, complement)
    return _distinct_torch(rows, need, seed, available, complement)


def _distinct_torch(targets: torch.Tensor, need: int, seed: int, available: int, complement: bool) -> torch.Tensor:
    """`_distinct_rows` with torch ops (where the kernel library is not built): candidates in
    growing widths, each row's first ``need`` distinct ones kept (the same as the C++ op's)."""
    expected = available * (math.log(available) - math.log(available - need)) if need else 0.0
    out = torch.empty(targets.numel(), need, dtype=torch.int64)
    pending = torch.arange(targets.numel())
    width = int(expected + 4.0 * math.sqrt(expected) + 8.0)
    while pending.numel() and need:
        block = max(1, 4_000_000 // width)
        unfinished = []
        for rows in pending.split(block):
            u = keyed_uniform_rows(seed, targets[rows], torch.full_like(rows, width), 2 if complement else 1)
            drawn = u.mul_(available).floor_().clamp_(max=available - 1).to(torch.int64).reshape(-1, width)
            ordered, order = torch.sort(drawn, dim=1, stable=True)
            repeat = torch.zeros_like(drawn, dtype=torch.bool)
            repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
            first = ~torch.zeros_like(repeat).scatter_(1, order, repeat)
            rank = torch.cumsum(first, 1)
            done = rank[:, -1] >= need
            take = (first & (rank <= need))[done]
            out[rows[done]] = torch.sort(drawn[done][take].reshape(-1, need), dim=1)[0]
            unfinished.append(rows[~done])
        pending, width = torch.cat(unfinished), width * 2
    if not complement:
        return out.reshape(-1)
    keep = torch.ones(targets.numel(), available, dtype=torch.bool).scatter_(1, out, False)
    return torch.nonzero(keep)[:, 1]  # sync-ok: building connectivity


def _keyed_rows(
    targets: torch.Tensor, counts: torch.Tensor, position: torch.Tensor, n_pre: int, n_post: int, exclude: bool
) -> Connectivity:
    """A connectivity of ``counts[r]`` ascending ``position`` values (among the sources a target may
    connect to) for each target ``targets[r]``, sorted by source (a target skips itself where
    ``exclude``)."""
    post = torch.repeat_interleave(targets, counts)
    pre = position + (position >= post) if exclude else position
    order = stable_order(pre, n_pre)
    return Connectivity(pre.index_select(0, order), post.index_select(0, order), n_pre, n_post)


def _check_hashed(size: int, rule: str, name: str = "n_pre") -> None:
    if size > 2**24:
        side = "sources" if name == "n_pre" else "targets"
        raise ValueError(f"{rule} draws {side} from 32-bit hashes: {name} must be at most 2**24, got {size}")


def fixed_out_degree(n_pre: int, n_post: int, k: int, seed: int | None = None, allow_self: bool = True) -> Connectivity:
    """Each source neuron makes exactly ``k`` synapses onto distinct target neurons, chosen uniformly:
    `fixed_in_degree` with the roles swapped (rows keyed by the source, so a process holding some
    targets still draws every source's row). ``n_post`` is at most ``2**24``."""
    n_pre, n_post = _count(n_pre, "n_pre"), _count(n_post, "n_post")
    _check_hashed(n_post, "fixed_out_degree", "n_post")
    exclude = not allow_self and n_pre == n_post
    available = max(n_post - (1 if exclude else 0), 0)
    k = _check_degree(k, available, "k")
    sources = torch.arange(n_pre)
    position = _distinct_rows(sources, k, _seed(seed), available)
    pre = torch.repeat_interleave(sources, k)
    return Connectivity(pre, position + (position >= pre) if exclude else position, n_pre, n_post)


def fixed_probability(
    n_pre: int,
    n_post: int,
    p: float,
    seed: int | None = None,
    allow_self: bool = True,
    targets: torch.Tensor | None = None,
) -> Connectivity:
    """Each (pre, post) pair is connected independently with probability ``p``.

    Drawn target by target from streams keyed by the target (as `fixed_total_number`): the sources
    of target ``t`` are the successes of a row of Bernoulli trials over the ``m`` sources it may
    connect to (all, or all but ``t`` with ``allow_self=False`` where ``n_pre == n_post``), found by
    geometric gaps: with ``u_j = keyed_uniform(seed, t, j, 1)``, the next success lies
    ``floor(ln(u_j) / ln(1 - p))`` sources after the last. Time and memory grow with the synapses,
    not with ``n_pre * n_post``; ``targets`` (ascending) draws only their synapses, equal to theirs
    in the whole projection of the same ``seed``.
    """
    n_pre, n_post = _count(n_pre, "n_pre"), _count(n_post, "n_post")
    if not isinstance(p, numbers.Real) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
        raise ValueError(f"connection probability p must lie in [0, 1], got {p!r}")
    if max(n_pre, n_post) >= 2**32:
        raise ValueError("fixed_probability keys its draws by 32-bit numbers: at most 2**32 - 1 neurons a side")
    exclude = not allow_self and n_pre == n_post
    available = max(n_pre - (1 if exclude else 0), 0)
    seed = _seed(seed)
    targets = torch.arange(n_post) if targets is None else _targets(targets, n_post)
    if p == 0.0 or available == 0:
        counts, position = torch.zeros_like(targets), torch.zeros(0, dtype=torch.int64)
    elif p == 1.0:
        counts = torch.full_like(targets, available)
        position = torch.arange(available).repeat(targets.numel())
    elif _kernels():
        counts, position = torch.ops.sapicore.keyed_gaps(targets, seed, 1, available, math.log1p(-float(p)))
    else:
        counts, position = _gaps_torch(targets, seed, available, math.log1p(-float(p)))
    return _keyed_rows(targets, counts, position, n_pre, n_post, exclude)


def _gaps_torch(targets: torch.Tensor, seed: int, available: int, log_q: float) -> tuple[torch.Tensor, torch.Tensor]:
    """`fixed_probability`'s rows with torch ops (where the kernel library is not built): gaps in
    growing widths until each row has passed its last source (the same as the C++ op's)."""
    mean = available * -math.expm1(log_q)
    width = int(mean + 4.0 * math.sqrt(mean) + 8.0)
    counts = torch.zeros_like(targets)
    rows_of = [torch.zeros(0, dtype=torch.int64)]  # per block: the rows, then their positions
    found = [torch.zeros(0, dtype=torch.int64)]
    pending = torch.arange(targets.numel())
    while pending.numel():
        block = max(1, 4_000_000 // width)
        unfinished = []
        for rows in pending.split(block):
            u = keyed_uniform_rows(seed, targets[rows], torch.full_like(rows, width), 1).reshape(-1, width)
            gaps = (u.log_() / log_q).clamp_(max=float(available)).floor_().to(torch.int64)
            position = torch.cumsum(gaps + 1, 1) - 1
            done = position[:, -1] >= available
            inside = position[done] < available
            counts[rows[done]] = inside.sum(1)
            rows_of.append(rows[done].repeat_interleave(inside.sum(1)))
            found.append(position[done][inside])
            unfinished.append(rows[~done])
        pending, width = torch.cat(unfinished), width * 2
    rows, position = torch.cat(rows_of), torch.cat(found)
    return counts, position.index_select(0, torch.sort(rows, stable=True)[1])


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
    _check_hashed(n_pre, "fixed_total_number")
    seed = _seed(seed)
    in_degree = total_number_in_degree(n_pre, n_post, count, seed)
    targets = torch.arange(n_post) if targets is None else _targets(targets, n_post)
    counts = in_degree.index_select(0, targets)
    pre = keyed_sources(seed, targets, counts, n_pre)
    post = torch.repeat_interleave(targets, counts)
    order = stable_order(pre, n_pre)
    return Connectivity(pre.index_select(0, order), post.index_select(0, order), n_pre, n_post)


def _seed(seed: int | None) -> int:
    """``seed``, or a fresh random one where it is None."""
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
