"""Moving a run's state onto another partition of its network (running.reshard, and
``load_checkpoint(path, model=...)``): a state taken mid-run from one process to 2 ranks, on to 3 and
back is the same state, leaf for leaf, with spikes in transit, plastic weights, per-synapse and
per-target rule states; a network that differs is refused naming what differs. (Runs resumed on
another number of ranks under torchrun: tests/test_partition.py.)"""

import sys
from pathlib import Path

import pytest
import torch
from torch.utils._pytree import tree_flatten

import sapicore.functional as sf
from sapicore.checkpoint import load_checkpoint, save_checkpoint
from sapicore.functional import connectivity as C
from sapicore.functional.pytree import replace
from sapicore.functional.running.partition import gather_synapses
from sapicore.functional.running.reshard import reshard

sys.path.insert(0, str(Path(__file__).parent))
from test_partition import DT, network, spike_inputs  # noqa: E402

HALF = 700


def rewarded():
    """The partition tests' network with reward-modulated STDP (one eligibility per synapse) on its
    sparse excitatory projection, pair STDP on its dense inhibitory one and short-term depression on
    the Poisson noise."""
    net = network()
    projections = dict(net.projections)
    projections["ee"] = replace(projections["ee"], plasticity=sf.RewardSTDP(stdp=sf.STDP(a_plus=0.001, a_minus=0.0012)))
    projections["ie"] = replace(projections["ie"], plasticity=sf.STDP(a_plus=0.001, a_minus=0.0012, w_max=0.05))
    projections["ne"] = replace(projections["ne"], short_term=sf.TsodyksMarkram(U=0.4, tau_rec=200.0, tau_facil=0.0))
    links = C.fixed_total_number(40, 200, 6000, seed=5)  # many pairs connected several times
    weights = torch.rand(6000, generator=torch.Generator().manual_seed(6)) * 0.005  # each multapse its own weight
    projections["mm"] = sf.projection("src", "cells", links, weights, sf.Exponential(5.0), dt=DT, delay=1.0)
    return replace(net, projections=projections)


def mid_run(net):
    inputs = {
        "src": spike_inputs()["src"][:HALF],
        **({"reward": 1.0} if net.projections["ee"].plasticity.modulator else {}),
    }
    state, _ = sf.simulate(net, net.init_state(), inputs, dt=DT, steps=HALF)
    return state


def differences(a, b) -> list:
    """Leaves of two states that differ (the ring buffers' last column, where padding synapses add
    and nothing reads, left out)."""

    def readable(state):
        return replace(
            state, projections={n: replace(p, pending=p.pending[:, :-1]) for n, p in state.projections.items()}
        )

    (left, spec), (right, other) = tree_flatten(readable(a)), tree_flatten(readable(b))
    assert spec == other
    return [k for k, (x, y) in enumerate(zip(left, right)) if x.shape != y.shape or not torch.equal(x, y)]


@pytest.mark.parametrize("make", [network, rewarded], ids=["stdp", "reward-stdp-and-short-term"])
def test_a_state_goes_to_two_ranks_on_to_three_and_back_unchanged(make, monkeypatch):
    monkeypatch.setattr("sapicore.functional.running.reshard.BLOCK_SLOTS", 300)  # synapses matched in blocks
    whole = make()
    state = mid_run(whole)
    assert all(bool(p.pending.ne(0).any()) for p in state.projections.values())  # spikes in transit everywhere
    if make is rewarded:
        assert bool(state.projections["ee"].plasticity.eligibility.ne(0).any())
    two = [sf.partition(whole, rank, 2) for rank in range(2)]
    on_two = [reshard(share, [(whole, state)]) for share in two]
    three = [sf.partition(whole, rank, 3) for rank in range(3)]
    on_three = [reshard(share, list(zip(two, on_two))) for share in three]
    back = reshard(whole, list(zip(three, on_three)))
    assert differences(state, back) == []
    for share, moved in zip(three, on_three):  # fixed weights stay the share's own tensors
        assert moved.projections["in"].weights is share.projections["in"].weights
    if make is rewarded:  # multapses: a pair's synapses keep their order (and their weights)
        pre, post, _ = gather_synapses(whole, state, "mm")
        assert len(torch.unique(pre * 200 + post)) < len(pre)


def test_a_share_of_a_single_process_checkpoint_is_the_share_of_its_state(tmp_path):
    """A single process's checkpoint loaded with ``model=`` a rank's share (no process group is
    needed to move it) is that share's part of the state; loaded with the whole network, it is read
    as saved, generators included."""
    whole = network()
    state = mid_run(whole)
    save_checkpoint(tmp_path / "run.ckpt", state, step=HALF, model=whole)
    share = sf.partition(whole, 1, 2)
    loaded = load_checkpoint(tmp_path / "run.ckpt", model=share)
    assert loaded["resharded"] == (1, 2) and loaded["step"] == HALF and loaded["model"] is share
    assert differences(loaded["state"], reshard(share, [(whole, state)])) == []
    plain = load_checkpoint(tmp_path / "run.ckpt", model=whole)
    assert "resharded" not in plain and plain["rng"] is not None
    assert differences(plain["state"], state) == []


def other_seed():
    net = network()
    changed = sf.projection(
        "exc", "cells", C.fixed_probability(161, 200, 0.1, seed=99), 0.004, sf.Exponential(5.0), dt=DT
    )
    return replace(net, projections={**net.projections, "ee": replace(net.projections["ee"], **_table(changed))})


def _table(proj):
    return {field: getattr(proj, field) for field in ("targets", "weights", "delays", "max_delay", "first_row")}


def test_a_network_that_differs_is_refused_naming_what_differs(tmp_path):
    whole = network()
    state = mid_run(whole)
    share = sf.partition(whole, 0, 2)
    with pytest.raises(ValueError, match="projection 'ee': the checkpoint's synapses or delays differ"):
        reshard(sf.partition(other_seed(), 0, 2), [(whole, state)])
    smaller = replace(whole, populations={**whole.populations, "src": sf.Population(sf.SpikeInput(), 41)})
    with pytest.raises(ValueError, match="other populations, sizes or projections"):
        reshard(share, [(smaller, state)])
    halves = [sf.partition(whole, rank, 2) for rank in range(2)]
    states = [reshard(half, [(whole, state)]) for half in halves]
    with pytest.raises(ValueError, match="rank order"):
        reshard(whole, [(halves[1], states[1]), (halves[0], states[0])])
    with pytest.raises(ValueError, match="saved by 2 processes, but 1 shards"):
        reshard(whole, [(halves[0], states[0])])
    with pytest.raises(ValueError, match="no shard"):
        reshard(whole, [])
    lanes = sf.stack([state, state])  # a sweep's state: 2 lanes
    with pytest.raises(ValueError, match="a sweep's lanes cannot be moved onto a partition"):
        reshard(share, [(whole, lanes)])
    save_checkpoint(tmp_path / "bare.ckpt", state, step=HALF)
    with pytest.raises(ValueError, match="saved without its network"):
        load_checkpoint(tmp_path / "bare.ckpt", model=share)
    save_checkpoint(tmp_path / "run.ckpt", state, step=HALF, model=whole)
    with pytest.raises(TypeError, match="model must be the Network"):
        load_checkpoint(tmp_path / "run.ckpt", model="network")


def test_shards_on_disk_are_read_by_the_step_their_manifest_names(tmp_path):
    """The manifest names the step of its shards (``run.ckpt.step700.rank0-of-2``): shards of that
    step merge onto the whole network; a shard of another step under that name (a run killed while
    saving could leave one) is refused, naming both steps; shards named as before steps were in the
    names are still read."""
    from sapicore.checkpoint import FORMAT, shard_path

    whole = network()
    state = mid_run(whole)
    halves = [sf.partition(whole, rank, 2) for rank in range(2)]
    path = tmp_path / "run.ckpt"

    def write(rank, step, named_step):
        shard = {"format": FORMAT, "state": reshard(halves[rank], [(whole, state)]), "model": halves[rank]}
        shard.update(step=step, share=(rank, 2), rng=torch.get_rng_state(), cuda_rng=None, extra={})
        torch.save(shard, shard_path(path, rank, 2, named_step))

    torch.save({"format": FORMAT, "step": HALF, "world": 2}, path)
    for rank in range(2):
        write(rank, HALF, HALF)
    assert differences(load_checkpoint(path, model=whole)["state"], state) == []
    write(1, HALF - 100, HALF)
    with pytest.raises(ValueError, match="holds step 600, but its manifest .* step 700"):
        load_checkpoint(path, model=whole)
    for rank in range(2):
        shard_path(path, rank, 2, HALF).unlink()
        write(rank, HALF, None)
    assert differences(load_checkpoint(path, model=whole)["state"], state) == []
