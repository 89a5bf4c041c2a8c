import contextlib
import subprocess
import sys

import pytest
import torch

from sapicore.functional import connectivity as C
from sapicore.functional.models.currents import keyed_uniform
from sapicore.functional.propagation import kernels
from sapicore.functional.propagation import projection as projection_module


def test_all_to_all_and_one_to_one():
    c = C.all_to_all(3, 2)
    assert c.pre.tolist() == [0, 0, 1, 1, 2, 2] and c.post.tolist() == [0, 1, 0, 1, 0, 1]
    c = C.all_to_all(3, 3, allow_self=False)
    assert len(c) == 6 and not bool((c.pre == c.post).any())
    c = C.one_to_one(4)
    assert torch.equal(c.pre, c.post) and len(c) == 4


def test_fixed_in_and_out_degree_are_exact_distinct_and_seeded():
    c = C.fixed_in_degree(500, 300, 25, seed=4, allow_self=True)
    assert torch.all(c.in_degree() == 25)
    assert len(set(zip(c.pre.tolist(), c.post.tolist()))) == len(c)
    again = C.fixed_in_degree(500, 300, 25, seed=4)
    assert torch.equal(c.pre, again.pre) and torch.equal(c.post, again.post)
    other = C.fixed_in_degree(500, 300, 25, seed=5)
    assert not torch.equal(c.pre, other.pre)
    c = C.fixed_out_degree(200, 200, 199, seed=1, allow_self=False)
    assert torch.all(c.out_degree() == 199) and not bool((c.pre == c.post).any())


def test_fixed_in_degree_draws_sources_uniformly():
    c = C.fixed_in_degree(10, 20_000, 3, seed=2)
    share = torch.bincount(c.pre, minlength=10).double() / len(c)
    assert torch.allclose(share, torch.full((10,), 0.1, dtype=torch.float64), atol=0.01)


def test_fixed_probability_matches_the_expected_count():
    c = C.fixed_probability(1000, 800, 0.05, seed=7, allow_self=False)
    expected, sd = 1000 * 800 * 0.05, (1000 * 800 * 0.05 * 0.95) ** 0.5
    assert abs(len(c) - expected) < 5 * sd
    assert len(C.fixed_probability(50, 50, 0.0, seed=1)) == 0
    assert len(C.fixed_probability(50, 50, 1.0, seed=1, allow_self=False)) == 50 * 49


@pytest.mark.parametrize("p", [0.003, 0.3, 0.97])
def test_fixed_probability_connects_every_pair_alone_with_probability_p(p):
    """Independent coin flips: distinct pairs, in-degrees of binomial mean and variance, every source
    as likely, and a pair's neighbour (the next source of the same target) connected with probability
    p whether or not the pair is."""
    n_pre, n_post = 400, 3000
    c = C.fixed_probability(n_pre, n_post, p, seed=11)
    key = c.post * n_pre + c.pre
    assert bool(((c.pre * n_post + c.post)[1:] > (c.pre * n_post + c.post)[:-1]).all())  # sorted, distinct
    degree = c.in_degree().double()
    mean, var = n_pre * p, n_pre * p * (1 - p)
    assert abs(degree.mean().item() - mean) < 5 * (var / n_post) ** 0.5
    assert abs(degree.var().item() / var - 1) < 0.1
    out = c.out_degree().double()
    assert abs(out.var().item() / (n_post * p * (1 - p)) - 1) < 0.25  # sources alike: binomial spread
    connected = torch.zeros(n_post * n_pre, dtype=torch.bool)
    connected[key] = True
    pairs = connected.reshape(n_post, n_pre)
    both, first = (pairs[:, 1:] & pairs[:, :-1]).sum().item(), pairs[:, :-1].sum().item()
    assert abs(both / first - p) < 5 * (p * (1 - p) / first) ** 0.5


def test_fixed_in_degree_draws_sources_uniformly_when_most_are_taken():
    """Where a target takes more than half of its sources (the left-out ones are drawn instead), every
    source is as likely and none is taken twice."""
    c = C.fixed_in_degree(10, 20_000, 7, seed=2, allow_self=False)
    assert torch.all(c.in_degree() == 7) and len(set(zip(c.pre.tolist(), c.post.tolist()))) == len(c)
    share = torch.bincount(c.pre, minlength=10).double() / len(c)
    assert torch.allclose(share, torch.full((10,), 0.1, dtype=torch.float64), atol=0.01)
    square = C.fixed_in_degree(12, 12, 8, seed=2, allow_self=False)
    assert not bool((square.pre == square.post).any()) and torch.all(square.in_degree() == 8)
    assert len(C.fixed_in_degree(12, 12, 11, seed=2, allow_self=False)) == 12 * 11


def test_from_indices_sorts_and_checks():
    c = C.from_indices([2, 0, 1], [0, 1, 1], 3, 2)
    assert c.pre.tolist() == [0, 1, 2] and c.post.tolist() == [1, 1, 0]
    with pytest.raises(ValueError, match="post indices must lie in \\[0, 2\\)"):
        C.from_indices([0], [2], 3, 2)
    with pytest.raises(ValueError, match="connect some pair twice"):
        C.from_indices([0, 0], [1, 1], 3, 2)
    with pytest.raises(ValueError, match="differ in length"):
        C.from_indices([0, 1], [1], 3, 2)


def test_bad_arguments():
    with pytest.raises(ValueError, match="probability p must lie in \\[0, 1\\], got 1.5"):
        C.fixed_probability(10, 10, 1.5)
    with pytest.raises(ValueError, match="k=11 exceeds the 10 neurons"):
        C.fixed_in_degree(10, 5, 11)
    with pytest.raises(ValueError, match="n_pre must be a non-negative int"):
        C.all_to_all(-1, 3)


def test_fixed_total_number_draws_exactly_that_many_uniform_pairs_with_multapses():
    n_pre, n_post, count = 40, 30, 60_000
    links = C.fixed_total_number(n_pre, n_post, count, seed=3)
    assert len(links) == count and bool((links.pre[1:] >= links.pre[:-1]).all())
    pairs = torch.bincount(links.pre * n_post + links.post, minlength=n_pre * n_post).double()
    expected = count / (n_pre * n_post)  # 50 per pair, Poisson-like spread
    assert abs(pairs.mean().item() - expected) < 1e-9 and abs(pairs.var().item() / expected - 1.0) < 0.15
    assert int((pairs > 1).sum()) > 0  # multapses
    assert abs(links.out_degree().double().mean().item() - count / n_pre) < 1e-9
    assert links.in_degree().double().std().item() < 3 * (count / n_post) ** 0.5
    again = C.fixed_total_number(n_pre, n_post, count, seed=3)
    assert torch.equal(again.pre, links.pre) and torch.equal(again.post, links.post)
    assert len(C.fixed_total_number(5, 5, 0)) == 0
    with pytest.raises(ValueError, match="count must be a non-negative int"):
        C.fixed_total_number(5, 5, -1)
    with pytest.raises(ValueError, match="count=3 synapses need neurons on both sides"):
        C.fixed_total_number(0, 5, 3)


RULES_BY_TARGET = {
    "fixed_total_number": lambda seed, **kw: C.fixed_total_number(40, 31, 5_000, seed=seed, **kw),
    "fixed_probability": lambda seed, **kw: C.fixed_probability(40, 31, 0.3, seed=seed, **kw),
    "fixed_probability, no autapses": lambda seed, **kw: C.fixed_probability(31, 31, 0.6, seed, False, **kw),
    "fixed_in_degree": lambda seed, **kw: C.fixed_in_degree(40, 31, 9, seed=seed, **kw),
    "fixed_in_degree, most sources": lambda seed, **kw: C.fixed_in_degree(31, 31, 25, seed, False, **kw),
    "all_to_all": lambda seed, **kw: C.all_to_all(40, 31, **kw),
    "all_to_all, no autapses": lambda seed, **kw: C.all_to_all(31, 31, False, **kw),
    "one_to_one": lambda seed, **kw: C.one_to_one(31, **kw),
}


@pytest.mark.parametrize("rule", RULES_BY_TARGET)
@pytest.mark.parametrize("world", [1, 2, 3])
def test_a_rule_draws_any_targets_alone_as_among_the_whole(rule, world):
    """A process holding some targets (round-robin shares, a random subset, none) draws exactly their
    synapses of the whole projection, in the whole's order, with the C++ ops and with torch ops."""
    draw = RULES_BY_TARGET[rule]
    whole = draw(7)
    assert bool(((whole.pre * 31 + whole.post)[1:] >= (whole.pre * 31 + whole.post)[:-1]).all())
    subsets = [torch.arange(rank, 31, world) for rank in range(world)]
    subsets += [torch.sort(torch.randperm(31, generator=torch.Generator().manual_seed(world))[:9])[0], torch.zeros(0)]
    for targets in subsets:
        mine = torch.isin(whole.post, targets.long())
        for ops in (contextlib.nullcontext(), kernels.disabled()):
            with ops:
                part = draw(7, targets=targets.long())
            assert torch.equal(part.pre, whole.pre[mine]) and torch.equal(part.post, whole.post[mine])
    if rule.startswith("fixed"):
        assert not torch.equal(draw(8).pre, whole.pre)


@pytest.mark.parametrize(
    "draw",
    [
        lambda: C.fixed_probability(3000, 2000, 0.02, seed=5),
        lambda: C.fixed_probability(500, 500, 0.7, seed=5, allow_self=False),
        lambda: C.fixed_in_degree(3000, 2000, 60, seed=5),
        lambda: C.fixed_in_degree(500, 500, 400, seed=5, allow_self=False),
        lambda: C.fixed_out_degree(700, 900, 50, seed=5),
        lambda: C.fixed_out_degree(300, 300, 299, seed=5, allow_self=False),
    ],
)
def test_the_rules_drawn_with_torch_ops_equal_those_of_the_kernel_library(draw):
    built = draw()
    with kernels.disabled():
        fallback = draw()
    assert len(built) > 0 and torch.equal(built.pre, fallback.pre) and torch.equal(built.post, fallback.post)


def test_the_keyed_draws_of_the_kernel_equal_torch_ops_and_do_not_depend_on_their_neighbours():
    rows, counts = torch.tensor([0, 5, 123_456, 7, 2**31 + 5, 9]), torch.tensor([3, 0, 1000, 513, 2, 77])
    number = torch.cat([torch.arange(int(c)) for c in counts])
    expected = keyed_uniform(17, torch.repeat_interleave(rows, counts), number, 3)
    assert torch.equal(C.keyed_uniform_rows(17, rows, counts, 3), expected)
    sources = torch.floor(keyed_uniform(17, torch.repeat_interleave(rows, counts), number, 1) * 977).long()
    assert torch.equal(C.keyed_sources(17, rows, counts, 977), sources)
    with kernels.disabled():
        assert torch.equal(C.keyed_uniform_rows(17, rows, counts, 3), expected)
        assert torch.equal(C.keyed_sources(17, rows, counts, 977), sources)
    # normals of rows drawn with others or alone are the same numbers to the last bit (float32 ops
    # element by element), and standard normal
    both = C.keyed_normal_rows(4, rows, counts)
    alone = [C.keyed_normal_rows(4, rows[i : i + 1], counts[i : i + 1]) for i in range(len(rows))]
    for k in range(2):
        assert torch.equal(both[k], torch.cat([part[k] for part in alone]))
    many = C.keyed_normal_rows(4, torch.arange(1000), torch.full((1000,), 200))
    for values in many:
        assert (
            values.dtype == torch.float32 and abs(values.mean().item()) < 0.01 and abs(values.std().item() - 1) < 0.01
        )
    assert abs(torch.corrcoef(torch.stack(many))[0, 1].item()) < 0.01
    keys = torch.randint(0, 50, (10_000,), generator=torch.Generator().manual_seed(1), dtype=torch.int32)
    for dtype in (torch.int32, torch.int64):
        assert torch.equal(C.stable_order(keys.to(dtype), 60), torch.sort(keys.to(dtype), stable=True)[1])
    assert C.stable_order(torch.zeros(0, dtype=torch.int64), 0).numel() == 0


def test_in_degrees_are_a_multinomial_draw_the_same_on_every_call():
    degree = C.total_number_in_degree(10, 77_000, 45_000_000, seed=3)
    assert int(degree.sum()) == 45_000_000 and degree.numel() == 77_000
    mean = 45_000_000 / 77_000
    assert abs(degree.double().var().item() / mean - 1) < 0.05  # multinomial: variance n p (1 - p)
    assert torch.equal(degree, C.total_number_in_degree(10, 77_000, 45_000_000, seed=3))
    assert torch.equal(C.total_number_in_degree(10, 1, 5, seed=3), torch.tensor([5]))
    assert C.total_number_in_degree(0, 0, 0, seed=3).numel() == 0


def test_target_pieces_cover_the_targets_in_order_within_the_size():
    counts = torch.tensor([3, 0, 5, 9, 1, 1, 0])
    pieces = list(C.target_pieces(counts, 6))
    assert pieces == [slice(0, 2), slice(2, 3), slice(3, 4), slice(4, 7)]  # 9 synapses: a piece alone
    assert list(C.target_pieces(torch.zeros(0, dtype=torch.int64), 6)) == []


@pytest.mark.skipif(projection_module._malloc_trim() is None, reason="no glibc malloc_trim here")
def test_a_build_gives_the_memory_its_temporaries_freed_back_to_the_system():
    """glibc keeps freed heap memory; a table allocated next would lie beside it and the peak count both."""
    code = (
        "import torch\n"
        "from sapicore.functional.propagation.projection import release_free_memory\n"
        "def rss():\n"
        "    return int(dict(l.split(':', 1) for l in open('/proc/self/status'))['VmRSS'].split()[0]) * 1024\n"
        "kept, freed = [], []\n"
        "for i in range(4000):\n"
        "    (kept if i % 2 else freed).append(torch.ones(16 * 1024))  # 64 KiB each, from the heap\n"
        "del freed\n"
        "before = rss()\n"
        "release_free_memory()\n"
        "print((before - rss()) / 2**20)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert float(out) > 100  # of the 125 MiB freed
