import subprocess
import sys

import pytest
import torch

from sapicore.functional import connectivity as C
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


def test_fixed_total_number_in_two_stages_draws_the_same_synapses():
    out_degree, draw = C.fixed_total_number_staged(40, 30, 5_000, seed=7)
    links = C.fixed_total_number(40, 30, 5_000, seed=7)
    first, again = draw(), draw()  # a draw does not move on the stream: the same synapses each time
    assert torch.equal(out_degree, links.out_degree())
    for drawn in (first, again):
        assert torch.equal(drawn.pre, links.pre) and torch.equal(drawn.post, links.post)
    small = draw(torch.int32)  # the same numbers in half the memory
    assert small.pre.dtype == small.post.dtype == torch.int32
    assert torch.equal(small.pre.long(), links.pre) and torch.equal(small.post.long(), links.post)


def test_fixed_total_number_draws_its_sources_in_pieces_as_in_one_draw(monkeypatch):
    whole = C.fixed_total_number(40, 30, 5_000, seed=7)  # one piece of sources (5,000 < SOURCE_PIECE)
    monkeypatch.setattr(C, "SOURCE_PIECE", 7)  # 715 pieces, the last shorter
    pieced = C.fixed_total_number(40, 30, 5_000, seed=7)
    assert torch.equal(pieced.out_degree(), whole.out_degree())
    assert torch.equal(pieced.pre, whole.pre) and torch.equal(pieced.post, whole.post)  # the stream moved on alike


@pytest.mark.parametrize("size", [1, 7, 64, 599, 600])
def test_staged_synapses_drawn_in_pieces_are_the_synapses_of_one_draw(size):
    """Pieces of any size (crossing sources, starting and ending inside one, beside sources without
    synapses) give each synapse the source of the whole table, which ``repeat_interleave`` of the out
    degrees gives."""
    _, draw = C.fixed_total_number_staged(300, 30, 600, seed=3)  # 2 per source: some get none
    assert int((draw.out_degree == 0).sum()) > 0
    pieces = list(draw.pieces(size))
    assert [len(piece.pre) for piece in pieces[:-1]] == [size] * (len(pieces) - 1)
    expected = torch.repeat_interleave(torch.arange(300), draw.out_degree)
    assert torch.equal(torch.cat([piece.pre for piece in pieces]), expected)
    assert torch.equal(torch.cat([piece.post for piece in pieces]), draw().post)


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
