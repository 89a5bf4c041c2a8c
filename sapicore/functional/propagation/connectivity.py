"""Connectivity builders: seeded, reproducible lists of (pre, post) index pairs.

Each builder returns a `Connectivity` (a COO edge list sorted by pre then post index, int64 on
the CPU). Random builders draw from their own ``torch.Generator`` seeded with ``seed``, so the same
seed gives the same network on every device and run. Sampling without replacement scales with the
number of synapses, not with ``n_pre * n_post``, so fixed in-degree networks of millions of neurons
can be built.
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
    "fixed_total_number_out_degree",
    "fixed_total_number_staged",
    "StagedDraw",
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
        pre, post: int64 tensors of equal length (int32 where a builder asks for it, see
            `fixed_total_number_staged`), sorted by ``pre`` then ``post`` (by ``pre`` only for
            `fixed_total_number`, whose targets of one source stay in draw order).
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


def fixed_total_number(n_pre: int, n_post: int, count: int, seed: int | None = None) -> Connectivity:
    """Exactly ``count`` synapses, each from a source and to a target drawn uniformly and
    independently: a pair may be connected more than once (multapses) and a neuron to itself
    (autapses), as NEST's ``fixed_total_number`` rule with both allowed.

    Drawn in time and memory linear in ``count`` (no sort): the number of synapses of each source
    is a multinomial draw, the targets are uniform draws.
    """
    _, draw = fixed_total_number_staged(n_pre, n_post, count, seed)
    return draw()


def fixed_total_number_out_degree(n_pre: int, n_post: int, count: int, seed: int | None = None) -> torch.Tensor:
    """``fixed_total_number(n_pre, n_post, count, seed).out_degree()`` without drawing the targets:
    each source's number of synapses, to size a [`SynapseTable`][sapicore.functional.SynapseTable]."""
    return fixed_total_number_staged(n_pre, n_post, count, seed)[0]


def fixed_total_number_staged(
    n_pre: int, n_post: int, count: int, seed: int | None = None
) -> tuple[torch.Tensor, StagedDraw]:
    """``fixed_total_number`` in two stages, for a builder that sizes a
    [`SynapseTable`][sapicore.functional.SynapseTable] from every block before it fills it: each
    source's number of synapses now, and a `StagedDraw` drawing the synapses later (equal to
    ``fixed_total_number(n_pre, n_post, count, seed)``) without drawing those numbers again."""
    generator = _generator(seed)
    out_degree = _total_number_out_degree(n_pre, n_post, count, generator)
    return out_degree, StagedDraw(n_pre, n_post, out_degree, generator.get_state())


class StagedDraw:
    """The synapses of `fixed_total_number_staged`, drawn when asked: all at once (``draw()``), or
    in consecutive pieces (``draw.pieces(size)``) that together are the same synapses, so that a
    builder never holds a whole block (the microcircuit's largest has 45 million synapses: 0.73 GB of
    int64 indices). ``dtype``: int64, or int32 (the same numbers in half the memory)."""

    def __init__(self, n_pre: int, n_post: int, out_degree: torch.Tensor, state: torch.Tensor) -> None:
        self.n_pre, self.n_post, self.out_degree, self.state = n_pre, n_post, out_degree, state  # state: targets' draws
        self.count = int(out_degree.sum())  # sync-ok: building connectivity

    def __call__(self, dtype: torch.dtype = torch.int64) -> Connectivity:
        return next(self.pieces(max(self.count, 1), dtype))

    def pieces(self, size: int, dtype: torch.dtype = torch.int64) -> Iterator[Connectivity]:
        """The synapses in pieces of at most ``size`` (ordered by source; the last may be shorter)."""
        if dtype not in (torch.int32, torch.int64) or (dtype == torch.int32 and max(self.n_pre, self.n_post) >= 2**31):
            raise ValueError(
                f"indices of {self.n_pre} x {self.n_post} neurons need dtype int64 (or int32 below 2**31), got {dtype}"
            )
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive int (synapses per piece), got {size!r}")
        targets = torch.Generator().manual_seed(0)
        targets.set_state(self.state)  # drawn piece by piece, the targets are the same numbers
        ends = torch.cumsum(self.out_degree, 0)
        begins = ends - self.out_degree
        for start in range(0, self.count, size) if self.count else (0,):
            stop = min(start + size, self.count)
            pre = _sources_between(begins, ends, start, stop, dtype)
            post = torch.randint(0, max(self.n_post, 1), (stop - start,), generator=targets, dtype=dtype)
            yield Connectivity(pre, post, self.n_pre, self.n_post)


def _sources_between(
    begins: torch.Tensor, ends: torch.Tensor, start: int, stop: int, dtype: torch.dtype
) -> torch.Tensor:
    """The source of each synapse ``start`` to ``stop - 1`` of a table ordered by source, source ``i``
    holding synapses ``begins[i]`` to ``ends[i] - 1``: each source repeated over its synapses in that
    range (a search per synapse took 4.5 s of the full-scale microcircuit's build)."""
    if stop <= start:
        return torch.zeros(0, dtype=dtype)
    first = int(torch.searchsorted(ends, torch.tensor(start), right=True))  # sync-ok: building connectivity
    last = int(torch.searchsorted(ends, torch.tensor(stop - 1), right=True))  # sync-ok: building connectivity
    lengths = ends[first : last + 1].clamp(max=stop) - begins[first : last + 1].clamp(min=start)
    return torch.repeat_interleave(torch.arange(first, last + 1, dtype=dtype), lengths.clamp(min=0))


#: sources drawn at once by `_total_number_out_degree` (32 MB of int64): the draws of consecutive
#: pieces are the numbers of one draw of them all, without holding them all (45 million at once took
#: 0.36 GB in the microcircuit's build)
SOURCE_PIECE = 1 << 22


def _total_number_out_degree(n_pre: int, n_post: int, count: int, generator: torch.Generator) -> torch.Tensor:
    n_pre, n_post, count = _count(n_pre, "n_pre"), _count(n_post, "n_post"), _count(count, "count")
    if count and not (n_pre and n_post):
        raise ValueError(f"count={count} synapses need neurons on both sides, got n_pre={n_pre}, n_post={n_post}")
    degree = torch.zeros(n_pre, dtype=torch.int64)
    for start in range(0, count, SOURCE_PIECE):
        sources = torch.randint(0, max(n_pre, 1), (min(SOURCE_PIECE, count - start),), generator=generator)
        degree += torch.bincount(sources, minlength=n_pre)
    return degree
