"""Synapse tables whose rows are narrower than the widest source (``SynapseTable(width=...)``, each
source in consecutive rows): every way to propagate, learn, run, partition and export them gives what
rows as wide as the widest source give."""

import pytest
import torch

import sapicore.functional as sf
from sapicore.functional import connectivity as C
from sapicore.functional import kernels
from sapicore.functional.propagation.projection import row_layout
from sapicore.functional.running.partition import gather_synapses

DT = 0.1
N_PRE, N_POST = 80, 50


def synapses():
    """Out-degrees from 0 to 59 and one hub of 200, random targets, weights and delays (0-2 ms)."""
    g = torch.Generator().manual_seed(7)
    degree = torch.randint(0, 60, (N_PRE,), generator=g)
    degree[5], degree[11] = 0, 200
    pre = torch.repeat_interleave(torch.arange(N_PRE), degree)
    post = torch.randint(0, N_POST, (pre.numel(),), generator=g)
    weights = torch.rand(pre.numel(), generator=g, dtype=torch.float64) * 0.05
    return C.Connectivity(pre, post, N_PRE, N_POST), weights, torch.rand(pre.numel(), generator=g) * 2.0


def built(width, synapse=None, source="a", target="b", **options):
    links, weights, delays = synapses()
    table = sf.SynapseTable(links.out_degree(), N_POST, DT, dtype=torch.float64, width=width)
    table.add(links.pre, links.post, weights, delays)
    return table.projection(source, target, synapse or sf.Exponential(tau=5.0), **options)


def in_order(proj):
    """Every synapse as (source, target, weight, delay), in the table's order."""
    mask = proj.mask
    sources = proj.row_sources()[:, None].expand_as(proj.targets)
    return sources[mask], proj.targets[mask], proj.weights[mask], proj.delays[mask]


def test_row_layout_gives_each_source_its_consecutive_rows():
    degree = torch.tensor([0, 3, 9, 1])
    rows = row_layout(degree, 4)
    assert rows.width == 4 and rows.rows == 6
    assert rows.first_row.tolist() == [0, 1, 2, 5, 6] and rows.slot_start.tolist() == [0, 4, 8, 20]
    for width in (None, 9, 100):  # rows as wide as the widest source: one row each, no first_row
        rows = row_layout(degree, width)
        assert rows.first_row is None and rows.width == 9 and rows.slot_start.tolist() == [0, 9, 18, 27]
    assert row_layout(torch.zeros(3, dtype=torch.int64), 4).width == 1


def test_narrow_rows_hold_each_sources_synapses_in_the_order_added():
    narrow, wide = built(16), built(None)
    assert (
        wide.first_row is None and narrow.targets.shape[1] == 16 and narrow.targets.numel() < 0.5 * wide.targets.numel()
    )
    assert all(torch.equal(a, b) for a, b in zip(in_order(narrow), in_order(wide)))
    sources = narrow.row_sources()
    assert sources[-1] == N_PRE and int((sources[:-1] == 11).sum()) == 13  # the hub: 200 synapses in 13 rows
    assert int((sources[:-1] == 5).sum()) == 1  # no synapse: one empty row


def emit_steps(proj, steps=40, seed=3):
    """The ring buffer after ``steps`` steps of random spike counts through ``proj`` alone."""
    g = torch.Generator().manual_seed(seed)
    state = proj.init_state(torch.zeros((), dtype=torch.float64))
    for _ in range(steps):
        spikes = (torch.rand(N_PRE, generator=g) < 0.3).double() * torch.randint(1, 3, (N_PRE,), generator=g)
        state = proj.emit(state, spikes)
    return state


BACKENDS = ["nonzero", "fixed", "topk"] + (["cpu_kernel"] if kernels.available() else [])


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_propagates_narrow_rows_as_wide_rows(backend):
    wide = emit_steps(sf.replace(built(None), propagation="nonzero"))
    narrow = built(16)
    proj = sf.replace(narrow, propagation=backend, capacity=narrow.rows)
    assert torch.allclose(emit_steps(proj).pending, wide.pending, rtol=1e-12, atol=1e-15)
    if backend == "cpu_kernel":  # the kernel reads a source's rows as one run: the same sums, bit for bit
        kernel_wide = emit_steps(sf.replace(built(None), propagation="cpu_kernel"))
        assert torch.equal(emit_steps(proj).pending, kernel_wide.pending)
        in_place = emit_steps(sf.replace(proj, in_place=True))
        assert torch.equal(in_place.pending, kernel_wide.pending)


def test_a_fixed_capacity_counts_rows_and_flags_what_it_leaves_out():
    proj = sf.replace(built(16, capacity=5), propagation="fixed")
    rows = sum(max(1, -(-int(d) // 16)) for d in synapses()[0].out_degree())
    assert proj.with_full_capacity().capacity == proj.rows == rows
    state = proj.init_state(torch.zeros((), dtype=torch.float64))
    hub = torch.zeros(N_PRE, dtype=torch.float64)
    hub[11] = 1.0  # one spike, 13 rows: more than 5
    assert bool(proj.emit(state, hub).overflow)
    assert not bool(proj.with_full_capacity().emit(state, hub).overflow)


@pytest.mark.skipif(not kernels.available(), reason="the CPU kernel could not be built here")
def test_the_kernel_under_vmap_equals_a_loop_over_lanes():
    proj = built(16)
    g = torch.Generator().manual_seed(4)
    lanes = 4
    pending = torch.randn(lanes, proj.max_delay + 1, N_POST + 1, generator=g, dtype=torch.float64)
    spikes = (torch.rand(lanes, N_PRE, generator=g) < 0.4).double()
    steps = torch.tensor([0, 3, 5, 11])

    def one(p, s, step, first_row):
        return kernels.propagate(p, s, proj.targets, proj.weights, proj.delays, step, first_row=first_row)

    shared = torch.func.vmap(one, in_dims=(0, 0, 0, None))(pending, spikes, steps, proj.first_row)
    own = torch.func.vmap(one)(pending, spikes, steps, proj.first_row.expand(lanes, -1).clone())
    for i in range(lanes):
        loop = one(pending[i], spikes[i], steps[i], proj.first_row)
        assert torch.equal(shared[i], loop) and torch.equal(own[i], loop)


def network(width, plastic=True):
    """Poisson-like spike inputs onto 50 LIF neurons through a table of ``width``-slot rows, with STDP."""
    rule = sf.STDP(a_plus=0.002, a_minus=0.0024, w_max=0.05) if plastic else None
    lif = sf.LIF(tau_mem=20.0, v_rest=-60.0, v_reset=-60.0, v_thresh=-50.0, r_mem=100.0, t_ref=2.0)
    populations = {"src": sf.Population(sf.SpikeInput(), N_PRE), "cells": sf.Population(lif, N_POST)}
    synapse = sf.Exponential(tau=5.0, e_rev=0.0)
    proj = built(width, synapse, "src", "cells", plasticity=rule)
    proj = sf.replace(proj, weights=proj.weights * 0.01)  # far from every neuron firing at its refractory limit
    return sf.Network(populations=populations, projections={"in": proj}, drive={"cells": 0.12})


def spike_inputs(steps=400):
    g = torch.Generator().manual_seed(9)
    return {"src": (torch.rand(steps, N_PRE, generator=g) < 0.01).double()}  # 100 Hz


@pytest.mark.parametrize("fast", [False, pytest.param("aot_eager", marks=pytest.mark.slow)])
def test_a_plastic_network_runs_and_learns_the_same_on_narrow_and_wide_rows(fast):
    runs = []
    for width in (None, 16):
        net = network(width)
        state = net.init_state(dtype=torch.float64)
        final, records = sf.simulate(
            net, state, spike_inputs(), dt=DT, steps=400, record=("cells.spikes",), fast=fast, chunk=50
        )
        runs.append((records["cells.spikes"], gather_synapses(net, final, "in"), gather_synapses(net, state, "in")))
    (spikes_wide, synapses_wide, _), (spikes_narrow, synapses_narrow, initial) = runs
    assert int(spikes_wide.sum()) > 20 and torch.equal(spikes_narrow, spikes_wide)
    pre, post, weights = synapses_narrow
    assert torch.equal(pre, synapses_wide[0]) and torch.equal(post, synapses_wide[1])
    assert torch.allclose(weights, synapses_wide[2], rtol=1e-12) and not torch.allclose(weights, initial[2])


def test_a_partitioned_share_is_the_table_built_from_the_ranks_synapses():
    """``partition`` keeps each rank's targets' synapses in rows laid out as SynapseTable lays them:
    the share of the whole equals a table built from those synapses with the same width."""
    whole = network(16, plastic=False)
    links, weights, delays = synapses()
    for rank in range(2):
        share = sf.partition(whole, rank, 2).projections["in"]
        mine = links.post.remainder(2) == rank
        pre = links.pre[mine]
        table = sf.SynapseTable(torch.bincount(pre, minlength=N_PRE), 25, DT, dtype=torch.float64, width=16)
        table.add(pre, links.post[mine].div(2, rounding_mode="floor"), weights[mine] * 0.01, delays[mine])
        direct = table.projection("src", "cells", sf.Exponential(tau=5.0, e_rev=0.0))
        for field in ("targets", "weights", "delays", "first_row"):
            assert torch.equal(getattr(share, field), getattr(direct, field)), field


def test_the_nir_export_of_narrow_rows_has_the_wide_rows_weights():
    pytest.importorskip("nir")
    from sapicore.nir_io import _dense_weights

    narrow, wide = built(16), built(None)
    assert (_dense_weights(narrow, narrow.weights) == _dense_weights(wide, wide.weights)).all()
    assert narrow.wiring() != built(32).wiring()  # the rows are part of the structure


@pytest.mark.parametrize("backend", ["topk"] + (["cpu_kernel"] if kernels.available() else []))
def test_a_sweep_over_narrow_rows_equals_one_run_per_lane(backend):
    """Lanes with their own drive share one table of narrow rows (vmap folds them into one kernel
    call, or selects each lane's rows); each lane gives its own run's spikes."""
    drives = (0.1, 0.12, 0.15)
    nets = []
    for drive in drives:
        net = network(16, plastic=False)
        proj = net.projections["in"]
        projections = {"in": sf.replace(proj, propagation=backend, capacity=proj.rows)}
        nets.append(sf.replace(net, projections=projections, drive={"cells": drive}))
    inputs = spike_inputs(200)
    _, lanes = sf.sweep(sf.stack(nets), inputs=inputs, dt=DT, steps=200, record=("cells.spikes",))
    for lane, net in enumerate(nets):
        _, alone = sf.simulate(net, net.init_state(), inputs, dt=DT, steps=200, record=("cells.spikes",))
        assert torch.equal(lanes["cells.spikes"][lane], alone["cells.spikes"]), lane
    assert int(lanes["cells.spikes"][-1].sum()) > int(lanes["cells.spikes"][0].sum()) > 0
