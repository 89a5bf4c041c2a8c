"""Projections, delays, plasticity and networks."""

import math

import pytest
import torch

import sapicore.functional as sf
from sapicore.functional import capacity, kernels
from sapicore.functional import connectivity as C
from sapicore.functional.pytree import stack_key, validate

DT = 0.1


def pair_change(spike_gap_ms, kind, rule):
    """Weight change of one synapse after one pre spike and one post spike ``spike_gap_ms`` apart."""
    proj = sf.projection("a", "b", C.one_to_one(1), 0.5, sf.Delta(), dt=DT, kind=kind, plasticity=rule)
    state = proj.init_state(torch.zeros(1, dtype=torch.float64))
    start = 100
    t_pre, t_post = (
        (start, start + round(spike_gap_ms / DT)) if spike_gap_ms > 0 else (start - round(spike_gap_ms / DT), start)
    )
    for step in range(400):
        pre = torch.tensor([float(step == t_pre)], dtype=torch.float64)
        post = torch.tensor([float(step == t_post)], dtype=torch.float64)
        state = proj.learn(state, pre, post, DT)
    return (state.weights[0, 0] - 0.5).item()


@pytest.mark.parametrize("kind", ["dense", "sparse"])
@pytest.mark.parametrize("gap", [5.0, 20.0, -5.0, -20.0])
def test_pair_stdp_weight_change_matches_the_exponential_window(kind, gap):
    rule = sf.STDP(a_plus=0.01, a_minus=0.012, tau_plus=16.8, tau_minus=33.7, w_min=0.0, w_max=1.0)
    expected = 0.01 * math.exp(-gap / 16.8) if gap > 0 else -0.012 * math.exp(gap / 33.7)
    assert pair_change(gap, kind, rule) == pytest.approx(expected, abs=1e-6)


def test_soft_bound_and_nearest_pairing():
    soft = sf.STDP(a_plus=0.01, tau_plus=20.0, soft_bound=True, w_max=1.0)
    assert pair_change(5.0, "dense", soft) == pytest.approx(0.01 * math.exp(-5.0 / 20.0) * (1.0 - 0.5), abs=1e-9)
    # two pre spikes before one post spike: all-to-all pairs both, nearest only the later one
    for nearest, expected in ((False, math.exp(-5.0 / 20.0) + math.exp(-10.0 / 20.0)), (True, math.exp(-5.0 / 20.0))):
        rule = sf.STDP(a_plus=0.01, a_minus=0.0, tau_plus=20.0, nearest=nearest)
        proj = sf.projection("a", "b", C.one_to_one(1), 0.5, sf.Delta(), dt=DT, kind="dense", plasticity=rule)
        state = proj.init_state(torch.zeros(1, dtype=torch.float64))
        for step in range(200):
            pre = torch.tensor([float(step in (50, 100))], dtype=torch.float64)
            post = torch.tensor([float(step == 150)], dtype=torch.float64)
            state = proj.learn(state, pre, post, DT)
        assert state.weights[0, 0].item() - 0.5 == pytest.approx(0.01 * expected, abs=1e-9)


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_gutig_exponents_give_the_power_law_weight_dependence(kind):
    """w = 0.5 between w_min = -1 and w_max = 1 (S = 2): potentiation S ((w_max - w) / S)^mu_plus,
    depression S ((w - w_min) / S)^mu_minus, times the pair window; mu = 1 is the soft bound."""
    rule = sf.STDP(a_plus=0.01, a_minus=0.012, tau_plus=20.0, tau_minus=30.0, w_min=-1.0, w_max=1.0, soft_bound=True)
    gutig = sf.replace(rule, mu_plus=0.5, mu_minus=2.0)
    validate(gutig)
    up, down = math.exp(-5.0 / 20.0), math.exp(-5.0 / 30.0)
    assert pair_change(5.0, kind, gutig) == pytest.approx(0.01 * up * 2.0 * (0.5 / 2.0) ** 0.5, abs=1e-12)
    assert pair_change(-5.0, kind, gutig) == pytest.approx(-0.012 * down * 2.0 * (1.5 / 2.0) ** 2.0, abs=1e-12)
    assert pair_change(5.0, kind, rule) == pytest.approx(0.01 * up * 0.5, abs=1e-12)
    ones = sf.replace(rule, mu_plus=torch.tensor(1.0, dtype=torch.float64))  # the power-law path with mu = 1
    assert pair_change(5.0, kind, ones) == pytest.approx(pair_change(5.0, kind, rule), abs=1e-15)
    additive = sf.replace(rule, mu_plus=0.0)  # mu = 0: a change of A S whatever the weight
    assert pair_change(5.0, kind, additive) == pytest.approx(0.01 * up * 2.0, abs=1e-12)


def test_triplet_rule_adds_the_triplet_term():
    rule = sf.TripletSTDP(a2_plus=0.0, a3_plus=0.01, a2_minus=0.0, a3_minus=0.0)
    proj = sf.projection("a", "b", C.one_to_one(1), 0.5, sf.Delta(), dt=DT, kind="sparse", plasticity=rule)
    state = proj.init_state(torch.zeros(1, dtype=torch.float64))
    events = {"pre": {100}, "post": {50, 150}}  # post, pre 5 ms later, post 5 ms after that
    for step in range(200):
        pre = torch.tensor([float(step in events["pre"])], dtype=torch.float64)
        post = torch.tensor([float(step in events["post"])], dtype=torch.float64)
        state = proj.learn(state, pre, post, DT)
    expected = 0.01 * math.exp(-5.0 / 16.8) * math.exp(-10.0 / 125.0)
    assert state.weights[0, 0].item() - 0.5 == pytest.approx(expected, abs=1e-9)


def test_hebbian_oja_and_normalisation():
    proj = sf.projection(
        "a", "b", C.all_to_all(2, 1), 0.5, sf.Delta(), dt=1.0, kind="dense", plasticity=sf.Oja(eta=0.1)
    )
    state = proj.init_state(torch.zeros(1, dtype=torch.float64))
    x = torch.tensor([1.0, 0.5], dtype=torch.float64)
    y = torch.tensor([2.0], dtype=torch.float64)
    state = proj.learn(state, x, y, 1.0)
    assert torch.allclose(state.weights[:, 0], 0.5 + 0.1 * 2.0 * (x - 2.0 * 0.5))
    proj = sf.projection(
        "a",
        "b",
        C.all_to_all(3, 2),
        0.2,
        sf.Delta(),
        dt=1.0,
        kind="sparse",
        plasticity=sf.Hebbian(eta=0.5, w_max=10.0),
        normalize=1.0,
    )
    state = proj.init_state(torch.zeros(1, dtype=torch.float64))
    state = proj.learn(
        state, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), torch.tensor([1.0, 1.0], dtype=torch.float64), 1.0
    )
    assert torch.allclose(proj.layout().incoming_sum(state.weights), torch.ones(2, dtype=torch.float64))
    assert state.weights[0, 0] > state.weights[1, 0]


def impulse_network(kind, delays):
    n = len(delays)
    return sf.Network(
        populations={"src": sf.Population(sf.SpikeInput(), 1), "dst": sf.Population(sf.LIF(), n)},
        projections={
            "p": sf.projection(
                "src", "dst", C.all_to_all(1, n), 1.0, sf.Delta(), dt=DT, delay=torch.tensor(delays), kind=kind
            )
        },
    )


@pytest.mark.parametrize("kind", ["dense", "sparse"])
@pytest.mark.parametrize("delays", [[0.0], [2.0, 2.0], [0.0, 0.5, 1.23, 3.0]])
def test_an_impulse_arrives_exactly_one_plus_round_delay_over_dt_steps_later(kind, delays):
    net = impulse_network(kind, delays)
    spikes = torch.zeros(60, 1)
    spikes[10] = 1.0
    _, rec = sf.simulate(net, net.init_state(), {"src": spikes}, dt=DT, record=("p.s",))
    for neuron, delay in enumerate(delays):
        arrivals = torch.nonzero(rec["p.s"][:, neuron]).reshape(-1).tolist()
        assert arrivals == [10 + 1 + round(delay / DT)]


@pytest.mark.parametrize(
    "synapse",
    [sf.Delta(), sf.Exponential(tau=2.0), sf.Alpha(tau=2.0), sf.DualExponential(tau_rise=1.0, tau_decay=4.0)],
    ids=lambda synapse: type(synapse).__name__,
)
def test_every_synapse_records_its_synaptic_variable_as_s(synapse):
    """``<projection>.s`` is the current or conductance of any synapse model (for a dual exponential,
    ``decay - rise``): the value it drives the target with."""
    net = impulse_network("sparse", [0.0])
    net = sf.replace(net, projections={"p": sf.replace(net.projections["p"], synapse=synapse)})
    spikes = torch.zeros(80, 1)
    spikes[5] = 1.0
    names = ["p.s"] + [f"p.{field}" for field in ("decay", "rise") if isinstance(synapse, sf.DualExponential)]
    _, rec = sf.simulate(net, net.init_state(), {"src": spikes}, dt=DT, record=names)
    assert rec["p.s"][:, 0].max() == pytest.approx(1.0, rel=2e-3) and int(rec["p.s"][:, 0].argmax()) >= 6
    if isinstance(synapse, sf.DualExponential):
        assert torch.equal(rec["p.s"], rec["p.decay"] - rec["p.rise"])


def random_network(kind, n_exc=160, n_inh=40, plastic=False):
    lif = sf.LIF(tau_mem=20.0, v_rest=-60.0, v_reset=-60.0, v_thresh=-50.0, r_mem=100.0, t_ref=2.0)
    n = n_exc + n_inh
    delays = (
        torch.rand(len(C.fixed_probability(n_exc, n, 0.1, seed=1)), generator=torch.Generator().manual_seed(9)) * 2.0
    )
    rule = sf.STDP(a_plus=1e-4, a_minus=1e-4, w_min=0.0, w_max=0.05) if plastic else None
    return sf.Network(
        populations={"exc": sf.Population(lif, n_exc), "all": sf.Population(lif, n)},
        projections={
            "e": sf.projection(
                "exc",
                "all",
                C.fixed_probability(n_exc, n, 0.1, seed=1),
                0.02,
                sf.Exponential(5.0),
                dt=DT,
                delay=delays,
                kind=kind,
                plasticity=rule,
                capacity=n_exc,
            ),
            "r": sf.projection(
                "all",
                "exc",
                C.fixed_in_degree(n, n_exc, 10, seed=2),
                0.004,
                sf.Exponential(10.0, e_rev=-80.0),
                dt=DT,
                delay=1.0,
                kind=kind,
                capacity=n,
            ),
        },
        drive={"exc": 0.11, "all": 0.11},
    )


def test_dense_and_sparse_projections_agree_over_1000_steps():
    inputs = {"exc": 0.2 * torch.rand(1000, 160, dtype=torch.float64)}
    results = {}
    for kind in ("dense", "sparse"):
        net = sf.to(random_network(kind), dtype=torch.float64)
        final, rec = sf.simulate(
            net, net.init_state(dtype=torch.float64), inputs, dt=DT, record=("exc.spikes", "all.spikes", "r.s")
        )
        results[kind] = rec
    assert results["dense"]["exc.spikes"].sum() > 50 and results["dense"]["all.spikes"].sum() > 50
    assert torch.equal(results["dense"]["exc.spikes"], results["sparse"]["exc.spikes"])
    assert torch.equal(results["dense"]["all.spikes"], results["sparse"]["all.spikes"])
    assert torch.allclose(results["dense"]["r.s"], results["sparse"]["r.s"], atol=1e-12)


def as_dense(proj, weights):
    """Sparse weights ``(n_pre + 1, width)`` as the dense ``(n_pre, n_post)`` matrix of the same synapses."""
    matrix = torch.zeros(proj.n_pre, proj.n_post + 1, dtype=weights.dtype)
    matrix.scatter_(1, proj.targets[:-1].long(), weights[:-1])
    return matrix[:, :-1]


@pytest.mark.parametrize("normalize", [None, 0.3])
def test_dense_and_sparse_agree_with_plasticity_and_heterogeneous_delays_over_a_long_run(normalize, device):
    # weights change while spikes are in transit: both kinds read a spike's weight at its emission
    inputs = {"exc": 0.25 * torch.rand(3000, 160, dtype=torch.float64, device=device)}
    results = {}
    for kind in ("dense", "sparse"):
        net = random_network(kind, plastic=True)
        rule = sf.STDP(a_plus=2e-3, a_minus=2.2e-3, w_min=0.0, w_max=0.05)
        net = sf.replace(
            net,
            projections={
                **net.projections,
                "e": sf.replace(net.projections["e"], plasticity=rule, normalize=normalize),
            },
        )
        net = sf.to(net, dtype=torch.float64, device=device)
        final, rec = sf.simulate(net, net.init_state(), inputs, dt=DT, record=("exc.spikes", "all.spikes"))
        results[kind] = (sf.to(net, device="cpu"), sf.to(final, device="cpu"), sf.to(rec, device="cpu"))
    (dense, dense_final, dense_rec), (sparse, sparse_final, sparse_rec) = results["dense"], results["sparse"]
    assert dense_rec["all.spikes"].sum() > 300
    assert torch.equal(dense_rec["exc.spikes"], sparse_rec["exc.spikes"])
    assert torch.equal(dense_rec["all.spikes"], sparse_rec["all.spikes"])
    built = dense.projections["e"].weights
    learned = dense_final.projections["e"].weights
    assert (learned - built).abs().max() > 1e-3  # the weights really moved
    assert torch.allclose(as_dense(sparse.projections["e"], sparse_final.projections["e"].weights), learned, atol=1e-12)


@pytest.mark.parametrize("backend", ["nonzero", "fixed", "topk", "cpu_kernel"])
def test_every_propagation_backend_equals_the_dense_projection(backend):
    if backend == "cpu_kernel" and not kernels.available():
        pytest.skip("the CPU kernel could not be built here")
    inputs = {"exc": 0.25 * torch.rand(500, 160, dtype=torch.float64)}
    dense = sf.to(random_network("dense", plastic=True), dtype=torch.float64)
    _, expected = sf.simulate(
        dense, dense.init_state(dtype=torch.float64), inputs, dt=DT, record=("all.spikes", "exc.v")
    )
    sparse = sf.to(random_network("sparse", plastic=True), dtype=torch.float64)
    sparse = sf.replace(
        sparse, projections={k: sf.replace(p, propagation=backend) for k, p in sparse.projections.items()}
    )
    state, spikes, v = sparse.init_state(dtype=torch.float64), [], []
    for x in inputs["exc"]:  # a loop of our own: the backend stays as set (simulate would choose its own)
        state, out = sparse.step(state, {"exc": x}, DT)
        spikes.append(out["all"])
        v.append(state.populations["exc"].v)
    assert torch.equal(expected["all.spikes"], torch.stack(spikes))
    assert torch.allclose(expected["exc.v"], torch.stack(v), atol=1e-10)
    assert not bool(state.projections["e"].overflow)


def test_overflow_flag_rises_in_a_step_loop_and_the_steppers_rerun_overflowing_chunks():
    net = sf.Network(
        populations={"src": sf.Population(sf.SpikeInput(), 5), "dst": sf.Population(sf.LIF(), 2)},
        projections={"p": sf.projection("src", "dst", C.all_to_all(5, 2), 0.1, sf.Delta(), dt=DT, capacity=2)},
    )
    many = torch.zeros(40, 5)
    many[3, :2] = 1.0
    many[7] = 1.0  # five sources at once, capacity 2
    _, full = sf.simulate(net, net.init_state(), {"src": many}, dt=DT, record=("p.s",))  # every spike delivered
    with kernels.disabled():
        # the fixed-capacity torch path, as under compile or on a GPU: a step loop raises the flag
        state = net.init_state()
        step = torch.compile(net.step, backend="aot_eager", fullgraph=True)
        for x in many[:10]:
            state, _ = step(state, {"src": x}, DT)
        assert state.projections["p"].overflow
        with pytest.warns(RuntimeWarning, match="projection 'p': more than capacity=2 source neurons spiked"):
            capacity.report_overflow(net, state)
        # simulate reruns the chunk that overflowed on the full-capacity path: nothing is lost
        final, rec = sf.simulate(
            net, net.init_state(), {"src": many}, dt=DT, fast="aot_eager", chunk=10, record=("p.s",)
        )
        assert not final.projections["p"].overflow
        assert torch.equal(rec["p.s"], full["p.s"]) and torch.allclose(rec["p.s"][8], torch.full((2,), 0.5))
        # overflowing in most chunks is slow: the user hears about it
        often = torch.ones(40, 5)
        with pytest.warns(
            RuntimeWarning, match="chunks had more spiking sources in a step than a projection's capacity"
        ):
            sf.simulate(net, net.init_state(), {"src": often}, dt=DT, fast="aot_eager", chunk=10)


def plastic_lanes(n_lanes, kind):
    nets = []
    for lane in range(n_lanes):
        base = random_network(kind, plastic=True)
        pops = dict(base.populations)
        pops["all"] = sf.Population(
            sf.LIF(tau_mem=15.0 + lane, v_rest=-60.0, v_reset=-60.0, v_thresh=-50.0, r_mem=100.0, t_ref=2.0), 200
        )
        projs = dict(base.projections)
        projs["e"] = sf.replace(
            projs["e"], plasticity=sf.STDP(a_plus=1e-4 * (1 + lane), a_minus=1e-4, w_min=0.0, w_max=0.05)
        )
        nets.append(sf.replace(base, populations=pops, projections=projs))
    return nets


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_vmap_over_16_lanes_of_a_plastic_network_equals_the_loop(kind):
    nets = plastic_lanes(16, kind)
    inputs = {"exc": 0.25 * torch.rand(300, 160)}
    lanes = sf.stack(nets)
    final, rec = sf.sweep(lanes, sf.init_lanes(lanes), inputs, dt=DT, record=("all.spikes", "e.weights"))
    assert rec["all.spikes"].sum() > 0
    for lane, net in enumerate(nets):
        lane_final, alone = sf.simulate(net, net.init_state(), inputs, dt=DT, record=("all.spikes", "e.weights"))
        assert torch.equal(rec["all.spikes"][lane], alone["all.spikes"])
        assert (rec["e.weights"][lane] - alone["e.weights"]).abs().max() <= 1e-6
    assert not torch.allclose(final.projections["e"].weights[0], final.projections["e"].weights[-1])


def test_gradient_wrt_stdp_learning_rate_matches_finite_differences():
    pre_spikes = (torch.rand(100, 20, generator=torch.Generator().manual_seed(3)) < 0.05).double()
    kicks = torch.zeros(100, 5, dtype=torch.float64)
    kicks[30::25] = 5000.0  # makes every target fire at fixed steps

    def loss(a_plus):
        rule = sf.STDP(a_plus=a_plus, a_minus=0.004, tau_plus=10.0, tau_minus=10.0, w_min=-10.0, w_max=10.0)
        net = sf.Network(
            populations={"src": sf.Population(sf.SpikeInput(), 20), "dst": sf.Population(sf.LIF(), 5)},
            projections={
                "p": sf.projection("src", "dst", C.all_to_all(20, 5), 1e-9, sf.Exponential(5.0), dt=DT, plasticity=rule)
            },
        )
        net = sf.to(net, dtype=torch.float64)
        final, _ = sf.simulate(
            net, net.init_state(dtype=torch.float64), {"src": pre_spikes, "dst": kicks}, dt=DT, record=()
        )
        return (final.projections["p"].weights ** 2).sum()

    a_plus = torch.tensor(0.01, dtype=torch.float64)
    grad = torch.func.grad(loss)(a_plus)
    h = 1e-6
    expected = (loss(a_plus + h) - loss(a_plus - h)) / (2 * h)
    assert grad.item() == pytest.approx(expected.item(), rel=1e-3)
    assert grad.item() != 0.0


def test_network_errors():
    lif = sf.LIF()
    ok = sf.projection("a", "b", C.all_to_all(3, 2), 0.1, sf.Delta(), dt=DT)
    with pytest.raises(ValueError, match="unknown target population 'b'; populations: a"):
        sf.Network(populations={"a": sf.Population(lif, 3)}, projections={"p": ok})
    with pytest.raises(ValueError, match="connects 3 -> 2 neurons but 'a' has 4 and 'b' has 2"):
        sf.Network(populations={"a": sf.Population(lif, 4), "b": sf.Population(lif, 2)}, projections={"p": ok})
    with pytest.raises(ValueError, match="delays must be finite and >= 0 ms"):
        sf.projection("a", "b", C.all_to_all(3, 2), 0.1, sf.Delta(), dt=DT, delay=-1.0)
    with pytest.raises(TypeError, match="weights must be floating point"):
        sf.projection("a", "b", C.all_to_all(3, 2), torch.ones(6, dtype=torch.int64), sf.Delta(), dt=DT)
    with pytest.raises(ValueError, match="conductance-based synapses need weights >= 0"):
        sf.projection("a", "b", C.all_to_all(3, 2), -0.1, sf.Exponential(5.0, e_rev=0.0), dt=DT)
    with pytest.raises(ValueError, match="weight must be a number or one value per synapse \\(6\\)"):
        sf.projection("a", "b", C.all_to_all(3, 2), torch.ones(5), sf.Delta(), dt=DT)
    with pytest.raises(ValueError, match="an input population that cannot receive synapses"):
        sf.Network(
            populations={"a": sf.Population(lif, 3), "b": sf.Population(sf.PoissonSource(), 2)}, projections={"p": ok}
        )
    net = sf.Network(populations={"a": sf.Population(lif, 3), "b": sf.Population(lif, 2)}, projections={"p": ok})
    with pytest.raises(ValueError, match="unknown populations or modulators \\['c'\\]"):
        sf.simulate(net, net.init_state(), {"c": 1.0}, steps=3, dt=DT)
    with pytest.raises(ValueError, match="built for dt=0.1 ms, not dt=0.2 ms"):
        sf.simulate(net, net.init_state(), steps=3, dt=0.2)
    with pytest.raises(ValueError, match="cannot record 'a.w'"):
        sf.simulate(net, net.init_state(), steps=3, dt=DT, record=("a.w",))


def test_reward_modulated_stdp_turns_eligibility_into_weight_change_only_with_reward():
    rule = sf.RewardSTDP(
        stdp=sf.STDP(a_plus=0.01, a_minus=0.0, tau_plus=20.0), tau_e=100.0, eta=2.0, w_min=-1.0, w_max=1.0
    )
    proj = sf.projection("a", "b", C.one_to_one(1), 0.5, sf.Delta(), dt=DT, kind="dense", plasticity=rule)
    state = proj.init_state(torch.zeros(1, dtype=torch.float64))
    for step in range(201):
        pre = torch.tensor([float(step == 100)], dtype=torch.float64)
        post = torch.tensor([float(step == 150)], dtype=torch.float64)
        reward = 3.0 if step == 200 else 0.0
        before = state.weights.clone()
        state = proj.learn(state, pre, post, DT, modulator=reward)
        if step < 200:
            assert torch.equal(state.weights, before)  # no reward, no change
    eligibility = 0.01 * math.exp(-5.0 / 20.0) * math.exp(-5.0 / 100.0)
    assert state.weights[0, 0].item() - 0.5 == pytest.approx(2.0 * DT * 3.0 * eligibility, abs=1e-12)
    net = sf.Network(
        populations={"a": sf.Population(sf.LIF(), 1), "b": sf.Population(sf.LIF(), 1)}, projections={"p": proj}
    )
    sf.simulate(
        sf.to(net, dtype=torch.float32), net.init_state(), {"reward": torch.ones(5)}, dt=DT
    )  # a known input name


def test_projections_sharing_a_source_pick_its_spikes_once_with_their_own_capacities():
    net = sf.Network(
        populations={
            "src": sf.Population(sf.SpikeInput(), 6),
            "a": sf.Population(sf.LIF(), 2),
            "b": sf.Population(sf.LIF(), 2),
        },
        projections={
            "small": sf.projection("src", "a", C.all_to_all(6, 2), 0.1, sf.Delta(), dt=DT, capacity=2),
            "large": sf.projection("src", "b", C.all_to_all(6, 2), 0.1, sf.Delta(), dt=DT, capacity=6),
        },
    )
    spikes = torch.zeros(10, 6)
    spikes[4, 1:5] = 1.0  # four sources at once
    state = net.init_state()
    step = torch.compile(net.step, backend="aot_eager", fullgraph=True)
    with kernels.disabled():
        for x in spikes[:6]:
            state, _ = step(state, {"src": x}, DT)
    assert bool(state.projections["small"].overflow) and not bool(state.projections["large"].overflow)
    large, small = state.projections["large"].synapse.s, state.projections["small"].synapse.s
    assert torch.allclose(large, torch.full((2,), 0.4)) and torch.allclose(small, torch.full((2,), 0.2))


def test_sweep_reruns_overflowing_chunks_under_vmap_on_the_torch_path():
    lanes = sf.stack(
        [
            sf.Network(
                populations={"src": sf.Population(sf.SpikeInput(), 5), "dst": sf.Population(sf.LIF(tau_mem=tau), 2)},
                projections={"p": sf.projection("src", "dst", C.all_to_all(5, 2), 0.1, sf.Delta(), dt=DT, capacity=2)},
            )
            for tau in (10.0, 20.0)
        ]
    )
    spikes = torch.zeros(20, 5)
    spikes[7] = 1.0
    with kernels.disabled():  # vmap then picks sources with topk(capacity)
        final, rec = sf.sweep(lanes, inputs={"src": spikes}, dt=DT, chunk=10, record=("p.s",))
    assert not bool(final.projections["p"].overflow.any())
    assert torch.allclose(rec["p.s"][:, 8], torch.full((2, 2), 0.5))


def test_compiled_network_on_each_device_equals_the_reference_and_loses_no_spike(device):
    from sapicore.networks import coba, initial_state

    net = sf.to(coba(400), device=device)
    # capacity 8: the initial burst overflows the torch path (GPU), whose chunks are then rerun
    net = sf.replace(net, projections={k: sf.replace(p, capacity=8) for k, p in net.projections.items()})
    state = initial_state(net, device=device)
    _, reference = sf.simulate(net, state, steps=60, dt=DT)
    final, fast = sf.simulate(net, state, steps=60, dt=DT, fast="aot_eager", chunk=10)
    assert reference["exc.spikes"].sum() > 50
    assert torch.equal(reference["exc.spikes"], fast["exc.spikes"]) and torch.equal(
        reference["inh.spikes"], fast["inh.spikes"]
    )
    assert not bool(capacity.overflowed(net, final))
    with kernels.disabled():  # the fixed-capacity torch path on the CPU as well
        final, torch_ops = sf.simulate(net, state, steps=60, dt=DT, fast="aot_eager", chunk=10)
    assert torch.equal(reference["exc.spikes"], torch_ops["exc.spikes"]) and not bool(capacity.overflowed(net, final))


def test_rerun_keeps_copies_of_chunk_outputs_but_not_of_unchanged_input_tensors():
    net = random_network("sparse")
    state = net.init_state()
    rerun = capacity.Rerun(net, state, torch.device("cpu"), keep_outputs=True, nested=False)  # as under CUDA graphs
    after, _ = net.step(state, None, DT)
    kept, _, _ = rerun.before(after)
    assert kept.projections["e"].weights is after.projections["e"].weights  # passed through: not copied
    assert kept.populations["exc"].v is not after.populations["exc"].v  # written by the step: copied
    assert torch.equal(kept.populations["exc"].v, after.populations["exc"].v)


@pytest.mark.parametrize("e_rev", [None, -70.0])
def test_a_projection_joining_populations_equals_one_projection_per_pair(e_rev):
    lif = sf.LIF(tau_mem=20.0, v_rest=-60.0, v_reset=-60.0, v_thresh=-50.0, r_mem=100.0, t_ref=2.0)
    sizes = {"a": 30, "b": 20, "c": 25}
    synapse = sf.Exponential(5.0, e_rev=e_rev)
    weight = 0.004 if e_rev is None else 0.002
    blocks = {  # (source, target) -> connectivity
        ("a", "c"): C.fixed_probability(30, 25, 0.3, seed=1),
        ("b", "c"): C.fixed_probability(20, 25, 0.3, seed=2),
        ("a", "b"): C.fixed_probability(30, 20, 0.3, seed=3),
    }
    delays = {
        key: torch.rand(len(links), generator=torch.Generator().manual_seed(7)) * 2.0 for key, links in blocks.items()
    }
    populations = {name: sf.Population(lif, size) for name, size in sizes.items()}
    drive = {"a": 0.13, "b": 0.12, "c": 0.13}
    pairs = sf.Network(
        populations=populations,
        projections={
            f"{s}{t}": sf.projection(s, t, links, weight, synapse, dt=DT, delay=delays[s, t])
            for (s, t), links in blocks.items()
        },
        drive=drive,
    )
    start = {"a": 0, "b": 30}, {"b": 0, "c": 20}
    pre = torch.cat([links.pre + start[0][s] for (s, t), links in blocks.items()])
    post = torch.cat([links.post + start[1][t] for (s, t), links in blocks.items()])
    order = torch.argsort(pre * 45 + post, stable=True)
    joined_links = C.Connectivity(pre[order], post[order], 50, 45)
    joined_delays = torch.cat(list(delays.values()))[order]
    joined = sf.Network(
        populations=populations,
        projections={
            "all": sf.projection(("a", "b"), ("b", "c"), joined_links, weight, synapse, dt=DT, delay=joined_delays)
        },
        drive=drive,
    )
    record = ("a.spikes", "b.spikes", "c.spikes", "c.v")
    _, one = sf.simulate(pairs, pairs.init_state(), steps=500, dt=DT, record=record)
    _, other = sf.simulate(joined, joined.init_state(), steps=500, dt=DT, record=record)
    assert int(one["c.spikes"].sum()) > 20
    for name in record[:3]:
        assert torch.equal(one[name], other[name])
    assert torch.allclose(one["c.v"], other["c.v"], atol=1e-4)
    with pytest.raises(ValueError, match="projection 'all' connects 50 -> 45 neurons but \\('a', 'c'\\) has 55"):
        sf.Network(
            populations=populations,
            projections={"all": sf.projection(("a", "c"), ("b", "c"), joined_links, weight, synapse, dt=DT)},
        )


def test_a_population_with_parts_equals_separate_populations():
    """Parts stand for populations as sources, targets (a part of the target: padded currents),
    drives, inputs and records; adding the zeros of other parts changes no value."""
    lif = sf.LIF(tau_mem=20.0, v_rest=-60.0, v_reset=-60.0, v_thresh=-50.0, r_mem=100.0, t_ref=2.0)
    sizes = {"a": 30, "b": 20, "c": 25}
    blocks = {
        ("a", "c"): C.fixed_probability(30, 25, 0.3, seed=1),
        ("b", "c"): C.fixed_probability(20, 25, 0.3, seed=2),
        ("a", "b"): C.fixed_probability(30, 20, 0.3, seed=3),
        ("c", "a"): C.fixed_probability(25, 30, 0.3, seed=4),
    }
    synapses = {"a": sf.Exponential(5.0, e_rev=0.0), "b": sf.Exponential(5.0), "c": sf.Exponential(10.0, e_rev=-80.0)}
    weights = {"a": 0.002, "b": 0.004, "c": 0.004}

    def network(populations):
        projections = {
            f"{s}{t}": sf.projection(s, t, links, weights[s], synapses[s], dt=DT, delay=0.4 * len(s + t))
            for (s, t), links in blocks.items()
        }
        return sf.Network(populations=populations, projections=projections, drive={"a": 0.13, "b": 0.12, "c": 0.1})

    separate = network({name: sf.Population(lif, size) for name, size in sizes.items()})
    parts = network({"abc": sf.Population(lif, 75, parts=sizes)})
    inputs = {"b": 0.05 * torch.rand(400, 20, generator=torch.Generator().manual_seed(3))}
    record = ("a.spikes", "b.spikes", "c.spikes", "c.v", "ab.s")
    _, one = sf.simulate(separate, separate.init_state(), inputs, steps=400, dt=DT, record=record)
    _, other = sf.simulate(parts, parts.init_state(), inputs, steps=400, dt=DT, record=record)
    assert min(int(one[f"{name}.spikes"].sum()) for name in "abc") > 10
    for name in record:
        assert torch.equal(one[name], other[name]), name
    assert parts.default_record() == ("a.spikes", "b.spikes", "c.spikes")
    links = C.fixed_probability(25, 20, 0.3, seed=6)
    moved = sf.replace(parts, projections={"ab": sf.projection("c", "b", links, 0.1, sf.Delta(), dt=DT)})
    moved.step(moved.init_state(), None, DT)  # its own segments, not those parts cached (replace copies caches)
    assert moved._layout()[2]["ab"] == ([("abc", 50, 25)], [("abc", 30, 20)])
    assert parts.ranges()["c"] == ("abc", 50, 25) and "abc.v" in parts.record_names()


def test_parts_are_checked():
    lif = sf.LIF()
    with pytest.raises(ValueError, match="Population parts hold 30 neurons in all but the population has 40"):
        sf.Population(lif, 40, parts={"x": 10, "y": 20})
    with pytest.raises(ValueError, match="Population part 'x' must have a positive int number of neurons, got 0"):
        sf.Population(lif, 40, parts={"x": 0, "y": 40})
    with pytest.raises(TypeError, match="Population parts must be a dict"):
        sf.Population(lif, 40, parts=[10, 30])
    pops = {"p": sf.Population(lif, 40, parts={"x": 10, "y": 30}), "q": sf.Population(lif, 5, parts={"x": 5})}
    with pytest.raises(ValueError, match="part name 'x' of population 'q' is already a population or part name"):
        sf.Network(populations=pops)
    with pytest.raises(ValueError, match="projection name 'x' must differ from population and part names"):
        sf.Network(
            populations={"p": pops["p"]},
            projections={"x": sf.projection("x", "y", C.one_to_one(10), 0.1, sf.Delta(), dt=DT)},
        )
    with pytest.raises(ValueError, match="projection 'xy' connects 10 -> 10 neurons but 'x' has 10 and 'y' has 30"):
        sf.Network(
            populations={"p": pops["p"]},
            projections={"xy": sf.projection("x", "y", C.one_to_one(10), 0.1, sf.Delta(), dt=DT)},
        )


def _all_to_all_stdp_network(n_pre: int = 6, n_post: int = 5) -> sf.Network:
    populations = {"src": sf.Population(sf.SpikeInput(), n_pre), "dst": sf.Population(sf.LIF(t_ref=0.0), n_post)}
    projection = sf.projection(
        "src",
        "dst",
        C.all_to_all(n_pre, n_post),
        torch.linspace(0.2, 3.0, n_pre * n_post),
        sf.Exponential(tau=3.0),
        dt=0.5,
        kind="dense",
        plasticity=sf.STDP(w_min=-1.0, w_max=2.5),
    )
    return sf.Network(populations, {"syn": projection})


def test_a_full_dense_projection_learns_as_the_masked_one_does():
    """All-to-all dense projections skip masking their updates (``full``): the same run with the
    mask applied at every step gives the same weights bit for bit. A partial mask is never full, and
    lanes stack as full only if each is."""
    net = _all_to_all_stdp_network()
    assert net.projections["syn"].full
    masked = sf.Network(net.populations, {"syn": sf.replace(net.projections["syn"], full=False)})
    spikes = (torch.rand(600, 6, generator=torch.Generator().manual_seed(3)) < 0.2).float()
    finals = [
        sf.simulate(n, n.init_state(), {"src": spikes}, dt=0.5, record=())[0].projections["syn"].weights
        for n in (net, masked)
    ]
    assert not torch.equal(finals[0], net.projections["syn"].weights) and torch.equal(finals[0], finals[1])
    sparse = sf.projection("src", "dst", C.fixed_probability(6, 5, 0.5, seed=1), 1.0, sf.Delta(), dt=0.5, kind="dense")
    assert not sparse.full
    with pytest.raises(ValueError, match="full=True, but its mask leaves some"):
        validate(sf.replace(sparse, full=True))  # as every run does first
    lanes = sf.stack([net.projections["syn"], masked.projections["syn"]])
    assert lanes.full is False and stack_key(net.projections["syn"]) == stack_key(masked.projections["syn"])


def test_every_recordable_name_is_listed_once_so_a_run_can_record_them_all():
    """A Poisson source's state keeps its last draw under the output's name (``spikes``): listed once."""
    net = sf.Network(
        populations={
            "cells": sf.Population(sf.LIF(), 4),
            "drive": sf.Population(sf.PoissonSource(rate=500.0, seed=2), 3),
        },
        projections={"feed": sf.projection("drive", "cells", C.all_to_all(3, 4), 2.0, sf.Delta(), dt=DT)},
    )
    names = net.record_names()
    assert len(names) == len(set(names)) and names.count("drive.spikes") == 1
    assert sf.PoissonSource().record_names().count("spikes") == 1
    _, records = sf.simulate(net, net.init_state(), steps=50, dt=DT, record=names)
    assert set(names) <= set(records) and float(records["drive.spikes"].sum()) > 0
