"""The CPU propagation kernel against torch ops: same sums, under vmap and compile, same networks."""

import contextlib
import math

import attrs
import pytest
import torch
from helpers import random_table, reference

import sapicore.functional as sf
from sapicore.functional import connectivity as C
from sapicore.functional import kernels
from sapicore.functional.running.events import chunk_events, to_events
from sapicore.functional.transforms import RunContext
from sapicore.networks import coba, initial_state

pytestmark = pytest.mark.skipif(not kernels.available(), reason="the CPU kernel could not be built here")

DT = 0.1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("per_synapse", [None, torch.int8, torch.int16, torch.int32])  # None: one delay for all
@pytest.mark.parametrize("target_type", [torch.int32, torch.uint16])
def test_kernel_adds_every_spiking_synapse_at_its_delay(dtype, per_synapse, target_type):
    pending, spikes, targets, weights, delays = random_table(dtype=dtype)
    delays = delays.to(per_synapse) if per_synapse else 3
    step = torch.tensor(7)
    before = pending.clone()
    out = kernels.propagate(pending, spikes, targets.to(target_type), weights, delays, step)
    assert torch.equal(pending, before)  # pure: the input is not changed
    assert torch.allclose(
        out, reference(pending, spikes, targets, weights, delays, step), rtol=1e-6 if dtype == torch.float32 else 1e-12
    )
    silent = kernels.propagate(pending, torch.zeros_like(spikes), targets, weights, delays, step)
    assert torch.equal(silent, pending.index_fill(0, torch.tensor([7 % len(pending)]), 0.0))  # delivered


def test_kernel_under_vmap_equals_a_loop_over_lanes_with_shared_and_lane_arguments():
    tables = [random_table(seed=seed) for seed in range(5)]
    pending = torch.stack([t[0] for t in tables])
    spikes = torch.stack([t[1] for t in tables])
    _, _, targets, weights, delays = tables[0]  # one structure shared by all lanes
    steps = torch.arange(5)
    lanes = torch.func.vmap(kernels.propagate, in_dims=(0, 0, None, None, None, 0))(
        pending, spikes, targets, weights, delays, steps
    )
    loop = torch.stack([kernels.propagate(pending[i], spikes[i], targets, weights, delays, steps[i]) for i in range(5)])
    assert torch.equal(lanes, loop)
    # nested vmap folds both axes into the kernel's lanes
    nested = torch.func.vmap(
        torch.func.vmap(kernels.propagate, in_dims=(0, 0, None, None, None, None)),
        in_dims=(0, 0, None, None, None, None),
    )
    grid = nested(
        pending.reshape(5, 1, *pending.shape[1:]).expand(5, 2, *pending.shape[1:]),
        spikes[:, None].expand(5, 2, -1),
        targets,
        weights,
        delays,
        steps[0],
    )
    assert torch.equal(
        grid[:, 1],
        torch.func.vmap(kernels.propagate, in_dims=(0, 0, None, None, None, None))(
            pending, spikes, targets, weights, delays, steps[0]
        ),
    )


def test_the_in_place_ops_under_vmap_change_each_lanes_own_buffer_like_a_loop_over_lanes():
    """A sweep's projections add into every lane's ring buffer in place: vmap of ``take_row_`` and
    ``propagate_`` (one call of their lanes forms per step) equals the ops lane by lane, for buffers
    laid out lane first, lanes along another axis (changed through a copy that is written back), eager
    and compiled; a buffer shared by all lanes is refused."""
    tables = [random_table(seed=seed) for seed in range(4)]
    spikes = torch.stack([t[1] for t in tables])
    _, _, targets, weights, delays = tables[0]
    steps = torch.tensor([0, 3, 5, 9])

    def step(pending, spikes, step):
        row = kernels.take_row_(pending, step)
        kernels.propagate(pending, spikes, targets, weights, delays, step, in_place=True)
        return row

    def loop(buffers):
        rows = []
        for lane in range(4):
            rows.append(kernels.take_row_(buffers[lane], steps[lane]))
            kernels.propagate(buffers[lane], spikes[lane], targets, weights, delays, steps[lane], in_place=True)
        return torch.stack(rows)

    first = torch.stack([t[0] for t in tables])
    expected = first.clone()
    expected_rows = loop(expected)
    assert not torch.equal(expected, first)
    for run in (torch.func.vmap(step), torch.compile(torch.func.vmap(step), backend="aot_eager", fullgraph=True)):
        buffers = first.clone()
        assert torch.equal(run(buffers, spikes, steps), expected_rows) and torch.equal(buffers, expected)
    across = first.transpose(0, 1).clone()  # (D, lanes, P): each lane's rows are not contiguous
    rows = torch.func.vmap(step, in_dims=(1, 0, 0))(across, spikes, steps)
    assert torch.equal(rows, expected_rows) and torch.equal(across.transpose(0, 1), expected)
    with pytest.raises(RuntimeError, match="needs a lane axis"):
        torch.func.vmap(step, in_dims=(None, 0, 0))(first[0].clone(), spikes, steps)


def test_kernel_compiles_as_one_opaque_op():
    pending, spikes, targets, weights, delays = random_table()
    step = torch.tensor(2)
    compiled = torch.compile(kernels.propagate, backend="aot_eager", fullgraph=True)
    assert torch.equal(
        compiled(pending, spikes, targets, weights, delays, step),
        kernels.propagate(pending, spikes, targets, weights, delays, step),
    )


def test_kernel_rejects_mismatched_arguments_with_a_message():
    pending, spikes, targets, weights, delays = random_table()
    with pytest.raises(RuntimeError, match="targets and weights must be"):
        kernels.propagate(pending, spikes[:-1], targets, weights, delays, torch.tensor(0))
    with pytest.raises(RuntimeError, match="share one floating dtype"):
        kernels.propagate(pending, spikes.float(), targets, weights, delays, torch.tensor(0))
    with pytest.raises(RuntimeError, match="at least one row"):
        kernels.propagate(pending[:0], spikes, targets, weights, delays, torch.tensor(0))
    with pytest.raises(RuntimeError, match="out of range"):
        kernels.propagate(pending, torch.ones_like(spikes), targets + 100, weights, delays, torch.tensor(0))
    # the lanes forms that vmap runs in place: one buffer shared by the lanes (stride 0) would mix them
    ops, steps = torch.ops.sapicore, torch.tensor([0, 1])
    shared = pending.expand(2, *pending.shape)
    lanes = (spikes.expand(2, -1), targets.expand(2, -1, -1), weights.expand(2, -1, -1), delays.expand(2, -1, -1))
    with pytest.raises(RuntimeError, match="each lane of pending must be contiguous, lanes apart"):
        ops.propagate_lanes_(shared, *lanes, 0, steps, None)
    with pytest.raises(RuntimeError, match="lanes apart"):
        ops.take_row_lanes_(shared, steps)
    with pytest.raises(RuntimeError, match=r"step must be an int64 CPU tensor \(L,\)"):
        ops.take_row_lanes_(pending.expand(2, *pending.shape).clone(), torch.tensor([0, 1, 2]))
    with pytest.raises(RuntimeError, match=r"step must be >= 0"):
        ops.take_row_lanes_(pending.expand(2, *pending.shape).clone(), torch.tensor([0, -1]))
    mean = torch.rand(2, 5, dtype=torch.float64)
    with pytest.raises(RuntimeError, match=r"per lane and neuron \(L, N\)"):
        ops.keyed_poisson(
            mean, torch.exp(-mean)[:, :4], steps[:, None].expand(2, 5), torch.arange(5).expand(2, 5), 1, 1
        )
    # the connectivity rows (connectivity.fixed_probability, fixed_in_degree and fixed_out_degree check first)
    with pytest.raises(RuntimeError, match=r"index must be a contiguous CPU int64 tensor \(R,\)"):
        ops.keyed_gaps(torch.tensor([0.5]), 1, 1, 10, -0.1)
    with pytest.raises(RuntimeError, match="available must be >= 0 and log_q < 0"):
        ops.keyed_gaps(torch.tensor([0]), 1, 1, 10, 0.0)
    with pytest.raises(RuntimeError, match=r"count must lie in \[0, available\], got 11 of 10"):
        ops.keyed_distinct(torch.tensor([0]), 11, 1, 1, 10, False)


def test_networks_give_the_same_spikes_with_and_without_the_kernel():
    net = coba(800)
    state = initial_state(net)
    _, with_kernel = sf.simulate(net, state, steps=400, dt=DT, record=("exc.spikes", "inh.spikes", "excitatory.s"))
    with kernels.disabled():
        _, without = sf.simulate(net, state, steps=400, dt=DT, record=("exc.spikes", "inh.spikes", "excitatory.s"))
    assert with_kernel["exc.spikes"].sum() > 100
    assert torch.equal(with_kernel["exc.spikes"], without["exc.spikes"]) and torch.equal(
        with_kernel["inh.spikes"], without["inh.spikes"]
    )
    assert torch.equal(with_kernel["excitatory.s"], without["excitatory.s"])


def test_per_synapse_delays_and_plasticity_agree_with_torch_ops():
    lif = sf.LIF(tau_mem=20.0, v_rest=-60.0, v_reset=-60.0, v_thresh=-50.0, r_mem=100.0, t_ref=2.0)
    conn = C.fixed_probability(100, 60, 0.2, seed=3)
    delays = torch.rand(len(conn), generator=torch.Generator().manual_seed(4)) * 3.0
    rule = sf.STDP(a_plus=1e-3, a_minus=1e-3, w_min=0.0, w_max=0.1)
    net = sf.Network(
        populations={"a": sf.Population(lif, 100), "b": sf.Population(lif, 60)},
        projections={
            "p": sf.projection("a", "b", conn, 0.03, sf.Exponential(5.0), dt=DT, delay=delays, plasticity=rule)
        },
        drive={"a": 0.12},
    )
    net, state = sf.to(net, dtype=torch.float64), net.init_state(dtype=torch.float64)
    inputs = {"a": 0.1 * torch.rand(500, 100, dtype=torch.float64)}
    final, rec = sf.simulate(net, state, inputs, dt=DT, record=("b.spikes", "p.s"))
    with kernels.disabled():
        final_ops, rec_ops = sf.simulate(net, state, inputs, dt=DT, record=("b.spikes", "p.s"))
    assert rec["b.spikes"].sum() > 20
    assert torch.equal(rec["b.spikes"], rec_ops["b.spikes"])
    assert torch.allclose(rec["p.s"], rec_ops["p.s"], atol=1e-12)
    assert torch.allclose(final.projections["p"].weights, final_ops.projections["p"].weights, atol=1e-12)


def test_gradients_through_weights_use_torch_ops():
    conn = C.all_to_all(3, 2)
    net = sf.Network(
        populations={"src": sf.Population(sf.SpikeInput(), 3), "dst": sf.Population(sf.LIF(tau_syn=None), 2)},
        projections={"p": sf.projection("src", "dst", conn, 0.5, sf.Exponential(5.0), dt=DT)},
    )
    state = net.init_state()
    weights = state.projections["p"].weights.clone().requires_grad_(True)
    state = sf.replace(state, projections={"p": sf.replace(state.projections["p"], weights=weights)})
    assert not kernels.usable(torch.ones(3), weights)
    spikes = torch.zeros(10, 3)
    spikes[2] = 1.0
    _, rec = sf.simulate(net, state, {"src": spikes}, dt=DT, record=("p.s",))
    rec["p.s"].sum().backward()
    assert weights.grad is not None and bool(weights.grad.abs().sum() > 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_event_scan_equals_the_torch_ops_across_block_boundaries_and_repeated_counts(dtype, monkeypatch):
    g = torch.Generator().manual_seed(5)
    cases = []
    for records, width in ((0, 7), (1, 1), (1, 15), (3, 16), (5, 17), (2, 1000), (7, 4099)):
        n = records * width
        values = torch.where(
            torch.rand(n, generator=g) < 0.01,
            torch.rand(n, generator=g, dtype=dtype) + 0.5,
            torch.zeros((), dtype=dtype),
        )
        if n > 20:  # a block edge, the tail, a negative zero, a count of 3, a negative value
            values[16], values[n - 1], values[7], values[n // 2], values[n // 3] = 2.0, 1.0, -0.0, 3.0, -1.0
        cases.append(values.reshape(records, width))
    with_kernel = [to_events(values, 11, 0.25) for values in cases]
    monkeypatch.setattr(kernels, "available", lambda: False)
    for values, (times, neurons) in zip(cases, with_kernel):
        expected_times, expected_neurons = to_events(values, 11, 0.25)
        assert times.dtype == torch.float64 and neurons.dtype == torch.int64
        assert torch.equal(times, expected_times) and torch.equal(neurons, expected_neurons)
    times, neurons = with_kernel[-1]
    spot = 7 * 4099 // 2  # the count of 3: three events at its record's end (first_record 11, 0.25 ms)
    at_spot = (neurons == spot % 4099) & (times == (spot // 4099 + 12) * 0.25)
    assert times.numel() > 100 and int(at_spot.sum()) == 3
    monkeypatch.undo()
    # one scan of every record (populations of different sizes) gives each record's events, in order
    times, neurons, found = chunk_events(cases, 11, 0.25)
    assert found == [t.numel() for t, _ in with_kernel]
    assert torch.equal(times, torch.cat([t for t, _ in with_kernel]))
    assert torch.equal(neurons, torch.cat([n for _, n in with_kernel]))
    assert chunk_events([], 0, 0.1)[2] == []
    monkeypatch.setattr(kernels, "available", lambda: False)  # the torch ops give the same, record by record
    fallback = chunk_events(cases, 11, 0.25)
    assert fallback[2] == found and torch.equal(fallback[0], times) and torch.equal(fallback[1], neurons)


def test_without_the_kernel_networks_fall_back_to_torch_ops(monkeypatch, tmp_path):
    monkeypatch.setenv("SAPICORE_KERNEL_CACHE", str(tmp_path / "empty cache"))  # no build to load
    monkeypatch.setattr(kernels, "_LOADED", {})
    monkeypatch.setenv("SAPICORE_KERNELS", "0")
    assert not kernels.available() and not kernels.usable(torch.ones(3), torch.ones(4, 2))
    monkeypatch.setattr(kernels, "_LOADED", {})
    monkeypatch.setenv("SAPICORE_KERNELS", "1")

    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler found")

    from torch.utils import cpp_extension  # imported by a build, not by loading a finished one

    monkeypatch.setattr(cpp_extension, "load", no_compiler)
    with pytest.warns(RuntimeWarning, match="could not build its CPU propagation kernel .*no C\\+\\+ compiler"):
        assert not kernels.available()
    net = coba(400)
    _, rec = sf.simulate(net, initial_state(net), steps=50, dt=DT)
    assert rec["exc.spikes"].sum() > 0


def test_a_first_call_inside_a_compiled_step_uses_torch_ops_without_a_graph_break(monkeypatch):
    monkeypatch.setattr(kernels, "_LOADED", {})  # as in a fresh process
    net = coba(200)
    state = initial_state(net)
    step = torch.compile(net.step, backend="eager", fullgraph=True)
    compiled, _ = step(state, None, DT)
    eager, _ = net.step(state, None, DT)
    assert torch.equal(compiled.populations["neurons"].v, eager.populations["neurons"].v)


def test_a_run_adds_into_its_own_ring_buffers_in_place_and_leaves_the_given_state_alone():
    net = coba(400, fan_in=20)
    net = sf.replace(
        net,
        projections={
            name: sf.projection(
                proj.source,
                proj.target,
                C.fixed_in_degree(proj.n_pre, proj.n_post, 20, seed=index),
                0.006 if proj.source == "exc" else 0.067,
                proj.synapse,
                dt=0.1,
                delay=torch.rand(20 * proj.n_post, generator=torch.Generator().manual_seed(index)) * 3.0,
            )
            for index, (name, proj) in enumerate(net.projections.items())
        },
    )
    state = initial_state(net)
    given = [p.pending.clone() for p in state.projections.values()]
    final, eager = sf.simulate(net, state, steps=300, dt=0.1)
    assert all(torch.equal(p.pending, g) for p, g in zip(state.projections.values(), given))
    context = sf.transforms.run_context(
        sf.tree_leaves(state), state.populations["neurons"].v, lanes=False, compiled=False
    )
    assert all(proj.in_place for proj in net.for_run(context).projections.values())
    # without delays the ring buffer is one row, which the functional kernel never copies
    assert not any(proj.in_place for proj in coba(400, fan_in=20).for_run(context).projections.values())
    loop = state  # the pure step (a copy of the ring buffer per step), as a loop of one's own runs it
    spikes = []
    for _ in range(300):
        loop, out = net.step(loop, None, 0.1)
        spikes.append(out["neurons"][:320])  # the part exc
    assert int(eager["exc.spikes"].sum()) > 30 and torch.equal(eager["exc.spikes"], torch.stack(spikes))
    assert all(torch.equal(final.projections[k].pending, loop.projections[k].pending) for k in net.projections)
    _, compiled = sf.simulate(net, state, steps=300, dt=0.1, fast="aot_eager", chunk=20)  # copies, see for_run
    assert torch.equal(compiled["exc.spikes"], eager["exc.spikes"])
    assert all(torch.equal(p.pending, g) for p, g in zip(state.projections.values(), given))
    # the lanes of a sweep add into their own buffers in place too, each lane as its own run
    lanes = sf.stack([net, sf.replace(net, drive={"neurons": 0.25})])
    states = sf.stack([state, state])
    given = [p.pending.clone() for p in states.projections.values()]
    assert all(proj.in_place for proj in lanes.for_run(attrs.evolve(context, lanes=True)).projections.values())
    _, swept = sf.sweep(lanes, states, steps=300, dt=0.1, record=("exc.spikes",))
    _, other = sf.simulate(sf.replace(net, drive={"neurons": 0.25}), state, steps=300, dt=0.1, record=("exc.spikes",))
    assert torch.equal(swept["exc.spikes"][0], eager["exc.spikes"]) and torch.equal(
        swept["exc.spikes"][1], other["exc.spikes"]
    )
    assert not torch.equal(other["exc.spikes"], eager["exc.spikes"])
    assert all(torch.equal(p.pending, g) for p, g in zip(states.projections.values(), given))


def test_a_synapse_table_filled_block_by_block_equals_the_projection_of_one_list():
    links = C.fixed_probability(60, 40, 0.2, seed=5)
    g = torch.Generator().manual_seed(1)
    weights, delays = torch.rand(len(links), generator=g, dtype=torch.float64), torch.rand(len(links), generator=g) * 2
    whole = sf.projection("a", "b", links, weights, sf.Exponential(5.0), dt=0.1, delay=delays)
    table = sf.SynapseTable(links.out_degree(), 40, 0.1, dtype=torch.float64)
    table.SLICE = 50  # several slices per block
    for block in (links.post < 20, links.post >= 20):  # targets 0-19 first: each row in another order
        table.add(links.pre[block], links.post[block], weights[block], delays[block], sf.Exponential(5.0))
    built = table.projection("a", "b", sf.Exponential(5.0))
    assert (
        built.targets.dtype == torch.uint16 and built.delays.dtype == torch.int8 and built.max_delay == whole.max_delay
    )

    def rows(proj):  # each source's synapses as sorted (target, weight, delay) triples
        keys = proj.targets.double() * 1e6 + proj.weights + proj.delays.double() * 1e-3
        return torch.sort(torch.where(proj.mask, keys, float("inf")), dim=1).values

    assert torch.equal(rows(built), rows(whole))
    with pytest.raises(ValueError, match="synapses must be added sorted by source neuron"):
        sf.SynapseTable(links.out_degree(), 40, 0.1).add(links.pre.flip(0), links.post, 0.1, 1.0)
    with pytest.raises(ValueError, match="more synapses added than its out_degree"):
        sf.SynapseTable(torch.zeros(60, dtype=torch.int64), 40, 0.1).add(links.pre, links.post, 0.1, 1.0)
    with pytest.raises(ValueError, match="received fewer synapses than its out_degree"):
        sf.SynapseTable(links.out_degree(), 40, 0.1).projection("a", "b", sf.Delta())
    with pytest.raises(ValueError, match="weights must be finite"):
        sf.SynapseTable(links.out_degree(), 40, 0.1).add(links.pre, links.post, float("nan"), 1.0)
    with pytest.raises(ValueError, match="delays must be finite and >= 0 ms"):
        sf.SynapseTable(links.out_degree(), 40, 0.1).add(links.pre, links.post, 0.1, -1.0)
    # finite weights whose sum overflows float32 are finite (the sum is only the quick check)
    huge = torch.full((len(links),), 3.0e38)
    sf.SynapseTable(links.out_degree(), 40, 0.1, dtype=torch.float32).add(links.pre, links.post, huge, 1.0)
    for bad in (math.inf, -math.inf):
        spoilt = huge.clone()
        spoilt[len(links) // 2] = bad
        with pytest.raises(ValueError, match="weights must be finite"):
            sf.SynapseTable(links.out_degree(), 40, 0.1).add(links.pre, links.post, spoilt, 1.0)
    with pytest.raises(ValueError, match="delays must be finite and >= 0 ms"):
        sf.SynapseTable(links.out_degree(), 40, 0.1).add(
            links.pre, links.post, 0.1, torch.full((len(links),), math.nan)
        )


@pytest.mark.skipif(not kernels.available(), reason="no C++ compiler")
def test_delays_beyond_int16_steps_widen_the_table_to_int32_and_still_propagate_exactly():
    links = C.all_to_all(3, 2)
    delays = {torch.int8: 12.7, torch.int16: 12.8, torch.int32: 3300.0}  # 127, 128 and 33,000 steps
    for dtype, longest in delays.items():
        built = sf.projection("a", "b", links, 1.0, sf.Delta(), dt=0.1, delay=torch.tensor([0.0, longest, 1.0] * 2))
        assert built.delays.dtype == dtype and built.max_delay == round(longest / 0.1)
    proj = sf.projection(
        "a", "b", links, 1.0, sf.Delta(), dt=0.1, delay=torch.tensor([0.0, 1.0, 3300.0, 3.5, 2.0, 0.3])
    )
    assert proj.delays.dtype == torch.int32 and proj.max_delay == 33000
    pending = torch.zeros(proj.max_delay + 1, 3)
    spikes, step = torch.tensor([1.0, 3.0, 2.0]), torch.tensor(7)
    out = kernels.propagate(pending, spikes, proj.targets, proj.weights, proj.delays, step)
    assert torch.equal(out, reference(pending, spikes, proj.targets, proj.weights, proj.delays, step))
    assert float(out[(7 + 1 + 33000) % 33001, 0]) == 3.0  # source 1's 3,300 ms synapse, weight 1 x count 3


@pytest.mark.parametrize("n_post, dtype", [(65535, torch.uint16), (65536, torch.int32)])
def test_targets_are_uint16_up_to_65535_neurons_and_reach_the_last_one_with_kernel_and_torch_ops(n_post, dtype):
    links = C.Connectivity(torch.tensor([0, 0, 1]), torch.tensor([n_post - 1, 0, n_post - 2]), 2, n_post)
    proj = sf.projection("a", "b", links, torch.tensor([1.0, 2.0, 3.0]), sf.Delta(), dt=0.1, delay=0.2)
    assert proj.targets.dtype == dtype and int(proj.mask.sum()) == 3
    state = proj.init_state(torch.zeros(()))
    spikes = torch.tensor([1.0, 2.0])
    arrived = {}
    for name, context in (("kernel", contextlib.nullcontext()), ("torch ops", kernels.disabled())):
        with context:
            sent = proj.emit(state, spikes)
        arrived[name] = sent.pending[(0 + 1 + 2) % 3]
    assert torch.equal(arrived["kernel"], arrived["torch ops"])
    assert arrived["kernel"][[0, n_post - 2, n_post - 1]].tolist() == [2.0, 6.0, 1.0]
    assert float(arrived["kernel"].sum()) == 9.0
    # plastic tables are int32 (plasticity reads them at every step): built so, or widened for a run
    plastic = sf.projection("a", "b", links, 1.0, sf.Delta(), dt=0.1, plasticity=sf.STDP())
    assert plastic.targets.dtype == torch.int32 and torch.equal(plastic.targets.long(), proj.targets.long())
    context = RunContext(torch.device("cpu"), torch.float32, False, False, False, False)
    widened = sf.replace(proj, plasticity=sf.STDP()).for_run(context)
    assert widened.targets.dtype == torch.int32 and torch.equal(widened.wiring(), proj.wiring())


@pytest.mark.skipif(not kernels.available(), reason="no C++ compiler")
@pytest.mark.parametrize("mean", [0.05, 1.3, 2.3, 9.9, 10.0, 40.0, 500.0])
def test_the_poisson_sampler_draws_the_poisson_distribution(mean):
    torch.manual_seed(5)
    n = 200_000
    counts = kernels.poisson(torch.full((n,), mean, dtype=torch.float64))
    assert torch.equal(counts, counts.round()) and bool((counts >= 0).all())
    values = torch.arange(int(mean + 6 * mean**0.5) + 6, dtype=torch.float64)
    expected = torch.exp(values * math.log(mean) - mean - torch.lgamma(values + 1)) * n  # the pmf
    found = torch.bincount(counts.long(), minlength=values.numel())[: values.numel()].double()
    kept = expected > 20  # a chi-square test over the cells with enough expected counts
    chi2 = float(((found[kept] - expected[kept]) ** 2 / expected[kept]).sum())
    cells = int(kept.sum())
    assert chi2 < cells + 6 * math.sqrt(2 * cells), (chi2, cells)
    torch.manual_seed(5)
    assert torch.equal(kernels.poisson(torch.full((n,), mean, dtype=torch.float64)), counts)  # seeded
    with pytest.raises(RuntimeError, match="means must be >= 0"):
        kernels.poisson(torch.tensor([1.0, -0.5]))


@pytest.mark.skipif(not kernels.available(), reason="no C++ compiler")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_the_poisson_sampler_draws_eight_at_a_time_as_one_at_a_time(dtype):
    """Eight neighbouring means in (0, 10) are drawn together (in AVX-512 lanes where the CPU has
    them), a shorter tail one at a time: from the same seed, the first seven of eight draws equal
    the seven drawn alone, whatever the means, and mixed blocks (a zero mean, a mean above 10) keep
    the order in which the uniforms are taken."""
    generator = torch.Generator().manual_seed(2)
    for seed in range(300):
        means = (torch.rand(8, generator=generator, dtype=torch.float64) * 10).clamp(min=1e-3).to(dtype)
        torch.manual_seed(seed)
        together = kernels.poisson(means)
        torch.manual_seed(seed)
        assert torch.equal(together[:7], kernels.poisson(means[:7])), means
    mixed = torch.tensor([2.0] * 8 + [0.0, 3.0, 15.0, 2.0, 2.0, 2.0, 2.0, 2.0] + [2.0] * 8, dtype=dtype)
    torch.manual_seed(0)
    drawn = kernels.poisson(mixed)
    assert drawn[8] == 0 and torch.equal(drawn, drawn.round())
    torch.manual_seed(0)
    assert torch.equal(kernels.poisson(mixed[:15]), drawn[:15])


@pytest.mark.skipif(not kernels.available(), reason="no C++ compiler")
def test_poisson_sources_draw_different_lanes_under_vmap_and_the_same_counts_compiled():
    means = torch.full((4, 1000), 2.0)
    lanes = torch.func.vmap(kernels.poisson, randomness="different")(means)
    assert not torch.equal(lanes[0], lanes[1]) and abs(float(lanes.mean()) - 2.0) < 0.05
    shared = torch.func.vmap(lambda m: kernels.poisson(torch.full((1000,), 2.0)), randomness="different")(means)
    assert not torch.equal(shared[0], shared[1])  # an unbatched mean still gives each lane its own counts
    source = sf.PoissonSource(rate=8.0, trains=torch.full((300,), 1600.0))
    net = sf.Network(
        populations={"bg": sf.Population(source, 300), "cell": sf.Population(sf.LIF(), 300)},
        projections={"p": sf.projection("bg", "cell", C.one_to_one(300), 0.05, sf.Exponential(0.5), dt=DT)},
    )
    record = ("bg.spikes", "cell.v")
    torch.manual_seed(8)
    _, eager = sf.simulate(net, net.init_state(), steps=60, dt=DT, record=record)
    torch.manual_seed(8)
    _, compiled = sf.simulate(net, net.init_state(), steps=60, dt=DT, record=record, fast="aot_eager", chunk=20)
    assert torch.equal(eager["bg.spikes"], compiled["bg.spikes"]) and not torch.equal(
        eager["bg.spikes"][0], eager["bg.spikes"][1]
    )


def test_the_ops_have_no_default_arguments_and_key_the_compile_caches(tmp_path):
    """Compiled graphs call the ops through the stable ABI with the arguments a call spelled out, so a
    default would be read past the end of them (a crash at 64 lanes); and torch's graph caches, which
    do not cover an op's schema, are keyed by the ops' C++ source."""
    import torch._inductor.config as config

    for name in kernels.OPS:
        schema = getattr(torch.ops.sapicore, name).default._schema
        assert not any(argument.has_default_value() for argument in schema.arguments), name
    kernels.key_compile_caches()
    digest = kernels.source_digest(kernels._SOURCES)
    for name in kernels.OPS:
        assert config.unsafe_marked_cacheable_functions[f"torch.ops.sapicore.{name}"] == digest
    changed = tmp_path / "exchange.cpp"
    changed.write_text(kernels._SOURCES[1].read_text() + "// another version\n")
    assert kernels.source_digest((kernels._SOURCES[0], changed)) != digest


@pytest.mark.slow
def test_compiled_graphs_call_each_op_through_its_c_entry_point_and_get_the_ops_results():
    """A graph compiled with ``kernels.compile_options()`` calls ``aoti_torch_cpu_<op>`` directly (not
    torch's proxy executor); a declaration that did not match the C++ would fail to compile."""
    from torch._inductor.utils import run_and_get_cpp_code

    pending, spikes, targets, weights, delays = random_table()
    step = torch.tensor(3)
    mean = torch.linspace(0.0, 30.0, 40, dtype=torch.float64)
    ops = torch.ops.sapicore

    def every_op(pending, spikes, targets, weights, delays, step, mean):
        out = ops.propagate(pending, spikes, targets, weights, delays, 0, step, None)
        own = pending.clone()
        ops.propagate_(own, spikes, targets, weights, None, 2, step, None)
        row = ops.take_row_(own, step)
        own_lanes = torch.stack([pending, out])
        ops.propagate_lanes_(
            own_lanes,
            spikes.expand(2, -1),
            targets.expand(2, -1, -1),
            weights.expand(2, -1, -1),
            None,
            1,
            torch.stack([step, step + 1]),
            None,
        )
        lane_rows = ops.take_row_lanes_(own_lanes, torch.stack([step, step + 1]))
        lanes = ops.propagate_lanes(
            torch.stack([pending, out]),
            spikes.expand(2, -1),
            targets.expand(2, -1, -1),
            weights.expand(2, -1, -1),
            delays.expand(2, -1, -1),
            0,
            torch.stack([step, step + 1]),
            None,
        )
        steps = step.expand(mean.shape).contiguous()
        counts = ops.keyed_poisson(mean, torch.exp(-mean), steps, torch.arange(mean.numel()), 7, 1)
        return out, own, row, own_lanes, lane_rows, lanes, counts

    arguments = (pending, spikes, targets, weights, delays, step, mean)
    compiled = torch.compile(every_op, options={"cpp_wrapper": True, **kernels.compile_options()}, fullgraph=True)
    results, code = run_and_get_cpp_code(compiled, *arguments)
    for name in kernels.C_SHIMS:
        assert f"aoti_torch_cpu_{name}(" in code, name
    assert "proxy_executor" not in code and "call_dispatcher" not in code
    for got, expected in zip(results, every_op(*arguments)):
        assert torch.equal(got, expected)


@pytest.mark.parametrize("size", [1, 7, 8, 9, 23])
def test_keyed_poisson_counts_equal_the_torch_ops_for_every_block_and_counter(size):
    """The op draws eight neurons at a time in vector lanes where the CPU has AVX-512, the rest one
    by one: for any number of neurons, means from 0 to 100 and counters and neuron numbers beyond
    2**32 (the hash keeps the low 32 bits of each product), it equals the torch ops bit for bit."""
    from sapicore.functional.models.currents import keyed_uniform
    from sapicore.functional.models.sources import _keyed_count

    if not kernels.available():
        pytest.skip("the CPU kernel cannot be built here")
    g = torch.Generator().manual_seed(size)
    mean = torch.cat([torch.zeros(1), torch.rand(size - 1, generator=g, dtype=torch.float64) * 3.0])
    mean[size // 2] = 100.0 if size > 2 else mean[size // 2]
    neuron = torch.randint(0, 1 << 40, (size,), generator=g)
    for step in (0, 1, (1 << 32) - 1, (5 << 32) + 3):
        steps = torch.full((size,), step, dtype=torch.int64)
        ours = torch.ops.sapicore.keyed_poisson(mean, torch.exp(-mean), steps, neuron, 11, 3)
        assert torch.equal(ours, _keyed_count(mean, keyed_uniform(11, neuron, steps, stream=3))), step
