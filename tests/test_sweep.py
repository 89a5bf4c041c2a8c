import pytest
import torch

import sapicore.functional as sf


def lif_lanes(n):
    taus = torch.linspace(8.0, 40.0, n).tolist()
    thresholds = torch.linspace(-55.0, -48.0, n).tolist()
    return sf.zipped(sf.LIF(tau_syn=2.0), tau_mem=taus, v_thresh=thresholds)


def test_vmap_over_32_lanes_equals_a_loop_over_the_lanes(device):
    lanes, labels = lif_lanes(32)
    lanes = sf.to(lanes, device=device)
    inputs = 4.0 * torch.rand(300, 20, device=device)
    final, rec = sf.sweep(lanes, inputs=inputs, dt=0.1, shape=(20,), record=("v", "spikes"))
    assert rec["v"].shape == (32, 300, 20)
    assert rec["spikes"].sum() > 0
    # CUDA's batched and single-lane kernels round differently: 9e-5 to 5e-4 mV after 300 steps in
    # float32 on an H200, never a different spike
    tolerance = 1e-6 if device.type == "cpu" else 2e-3
    for lane, label in enumerate(labels):
        model = sf.LIF(tau_syn=2.0, **label)
        lane_final, lane_rec = sf.simulate(
            model, model.init_state(20, device=device), inputs, dt=0.1, record=("v", "spikes")
        )
        assert (rec["v"][lane] - lane_rec["v"]).abs().max() <= tolerance
        assert torch.equal(rec["spikes"][lane], lane_rec["spikes"])
        assert (final.v[lane] - lane_final.v).abs().max() <= tolerance


def test_lanes_of_izhikevich_presets_and_per_lane_inputs():
    presets = ["RS", "FS", "CH", "IB"]
    lanes = sf.stack([sf.Izhikevich.preset(name) for name in presets])
    inputs = torch.stack(
        [torch.full((400, 3), 10.0), torch.full((400, 3), 5.0), torch.full((400, 3), 10.0), torch.rand(400, 3) * 15]
    )
    _, rec = sf.sweep(lanes, inputs=inputs, lane_inputs=True, dt=0.1, shape=3, record=("spikes", "u"))
    for lane, name in enumerate(presets):
        model = sf.Izhikevich.preset(name)
        _, alone = sf.simulate(model, model.init_state(3), inputs[lane], dt=0.1, record=("spikes", "u"))
        assert torch.equal(rec["spikes"][lane], alone["spikes"])
        assert (rec["u"][lane] - alone["u"]).abs().max() <= 1e-5


def test_grid_is_a_cartesian_product_with_labels():
    lanes, labels = sf.grid(sf.LIF(), tau_mem=[10, 20, 30], t_ref=[1.0, 2.0])
    assert sf.lane_count(lanes) == 6
    assert labels[:3] == [{"tau_mem": 10, "t_ref": 1.0}, {"tau_mem": 10, "t_ref": 2.0}, {"tau_mem": 20, "t_ref": 1.0}]
    assert torch.equal(lanes.tau_mem, torch.tensor([10.0, 10.0, 20.0, 20.0, 30.0, 30.0]))


def test_sweep_resumes_from_its_own_final_state():
    lanes, _ = lif_lanes(4)
    inputs = 4.0 * torch.rand(200, 5)
    _, whole = sf.sweep(lanes, inputs=inputs, dt=0.1, shape=5, record="v")
    middle, first = sf.sweep(lanes, inputs=inputs[:120], dt=0.1, shape=5, record="v")
    _, second = sf.sweep(lanes, middle, inputs[120:], dt=0.1, record="v")
    assert torch.equal(torch.cat([first["v"], second["v"]], dim=1), whole["v"])


def test_fast_sweep_equals_the_vmapped_loop():
    lanes, _ = lif_lanes(8)
    inputs = 4.0 * torch.rand(100, 10)
    _, ref = sf.sweep(lanes, inputs=inputs, dt=0.1, shape=10, record=("v", "spikes"))
    _, fast = sf.sweep(lanes, inputs=inputs, dt=0.1, shape=10, record=("v", "spikes"), fast="aot_eager", chunk=10)
    assert torch.equal(fast["spikes"], ref["spikes"])
    assert torch.allclose(fast["v"], ref["v"], atol=1e-5)


def test_sweep_errors():
    lanes, _ = lif_lanes(4)
    with pytest.raises(ValueError, match="needs a batched state or shape="):
        sf.sweep(lanes, steps=10, dt=0.1)
    with pytest.raises(ValueError, match="leading lane axis of size 4"):
        sf.sweep(lanes, sf.LIF().init_state(3), steps=10, dt=0.1)
    with pytest.raises(ValueError, match="lane inputs have 2 lanes"):
        sf.sweep(lanes, inputs=torch.ones(2, 10, 3), lane_inputs=True, shape=3, dt=0.1)
    with pytest.raises(ValueError, match="LIF has no parameter 'tau'"):
        sf.grid(sf.LIF(), tau=[1.0, 2.0])
    with pytest.raises(ValueError, match="LIF.tau_mem must be > 0"):
        sf.grid(sf.LIF(), tau_mem=[1.0, -2.0])
    with pytest.raises(ValueError, match="one length"):
        sf.zipped(sf.LIF(), tau_mem=[1.0, 2.0], t_ref=[1.0])
    with pytest.raises(ValueError, match="no tensor leaves"):
        sf.sweep(sf.LIF(), shape=3, steps=10, dt=0.1)


def _plastic_network(a_plus, drive):
    from sapicore.functional import connectivity as C

    lif = sf.LIF(tau_mem=20.0, v_rest=-60.0, v_reset=-60.0, v_thresh=-50.0, r_mem=100.0, t_ref=2.0)
    rule = sf.STDP(a_plus=a_plus, a_minus=0.002, w_min=0.0, w_max=0.1)
    return sf.Network(
        populations={"a": sf.Population(lif, 40), "b": sf.Population(lif, 30)},
        projections={
            "p": sf.projection(
                "a",
                "b",
                C.fixed_probability(40, 30, 0.3, seed=1),
                0.04,
                sf.Exponential(5.0),
                dt=0.1,
                delay=torch.rand(
                    len(C.fixed_probability(40, 30, 0.3, seed=1)), generator=torch.Generator().manual_seed(2)
                ),
                plasticity=rule,
                capacity=4,
            )
        },
        drive={"b": drive},
    )


def test_torch_func_vmap_of_simulate_equals_sweep_and_per_lane_runs(device):
    inputs = {"a": 0.15 + 0.2 * torch.rand(300, 40, dtype=torch.float64, device=device)}
    values = torch.tensor([0.002, 0.004, 0.008], dtype=torch.float64, device=device)
    base = sf.to(_plastic_network(0.004, 0.1), dtype=torch.float64, device=device)  # built once: connectivity is random

    def run(a_plus):
        proj = base.projections["p"]
        net = sf.replace(
            base, projections={"p": sf.replace(proj, plasticity=sf.replace(proj.plasticity, a_plus=a_plus))}
        )
        final, rec = sf.simulate(net, net.init_state(dtype=torch.float64), inputs, dt=0.1, record=("b.v", "b.spikes"))
        return rec["b.v"], rec["b.spikes"], final.projections["p"].weights

    v, spikes, weights = torch.func.vmap(run)(values)
    lanes = sf.stack([sf.to(_plastic_network(float(a), 0.1), dtype=torch.float64, device=device) for a in values])
    final, rec = sf.sweep(lanes, None, inputs, dt=0.1, record=("b.v", "b.spikes"))
    assert spikes.sum() > 20 and not torch.allclose(weights[0], weights[-1])
    assert torch.equal(spikes, rec["b.spikes"]) and torch.allclose(v, rec["b.v"], atol=1e-10)
    assert torch.allclose(weights, final.projections["p"].weights, atol=1e-12)
    for lane, a_plus in enumerate(values):
        alone_v, alone_spikes, alone_weights = run(a_plus)
        assert torch.equal(spikes[lane], alone_spikes) and torch.allclose(v[lane], alone_v, atol=1e-10)
        assert torch.allclose(weights[lane], alone_weights, atol=1e-12)


def test_vmap_of_grad_and_grad_of_vmap_of_simulate_equal_per_lane_gradients():
    inputs = {"a": 0.15 + 0.2 * torch.rand(200, 40, dtype=torch.float64)}
    base = sf.to(_plastic_network(0.004, 0.1), dtype=torch.float64)

    def mean_v(drive):
        net = sf.replace(base, drive={"b": drive})
        _, rec = sf.simulate(net, net.init_state(dtype=torch.float64), inputs, dt=0.1, record=("b.v",))
        return rec["b.v"].mean()

    drives = torch.tensor([0.05, 0.1, 0.12], dtype=torch.float64)
    per_lane = torch.stack([torch.func.grad(mean_v)(d) for d in drives])
    assert torch.allclose(torch.func.vmap(torch.func.grad(mean_v))(drives), per_lane, atol=1e-10)
    assert torch.allclose(torch.func.grad(lambda d: torch.func.vmap(mean_v)(d).sum())(drives), per_lane, atol=1e-10)
    assert (per_lane > 0).all()  # more drive, higher mean potential (a surrogate gradient through spikes)


def test_stacking_numbers_follows_the_trees_dtype():
    nets = [sf.to(_plastic_network(0.004, drive), dtype=torch.float64) for drive in (0.1, 0.2)]
    lanes = sf.stack(nets)
    assert lanes.drive["b"].dtype == torch.float64 and lanes.drive["b"].tolist() == [0.1, 0.2]


def test_a_diverging_lane_is_quarantined_and_the_others_equal_their_single_runs():
    bs = [0.0, 1e38, 0.05, 0.1]  # lane 1: the adaptation current overflows at the first spike

    def network(b):
        return sf.Network({"a": sf.Population(sf.AdEx(b=b), 5)}, {}, drive={"a": 5.0})

    lanes = sf.stack([network(b) for b in bs])
    record = ("a.v", "a.spikes")
    with pytest.warns(sf.DivergenceWarning, match=r"1 of 4 lanes .* \(lane 1: steps 1 to 100 \(t = 0 to 10 ms\)\)"):
        _, rec = sf.sweep(lanes, dt=0.1, steps=400, record=record, chunk=100)
    assert torch.equal(rec["diverged"].isnan(), torch.tensor([True, False, True, True]))
    assert rec["diverged"][1] == 10.0
    assert rec["a.v"][1].isnan().all() and rec["a.spikes"][1].isnan().all()  # NaN from its first chunk on
    for lane in (0, 2, 3):
        alone = network(bs[lane])
        _, single = sf.simulate(alone, alone.init_state(), dt=0.1, steps=400, record=record, chunk=100)
        assert torch.equal(single["a.v"], rec["a.v"][lane]) and torch.equal(single["a.spikes"], rec["a.spikes"][lane])
    with pytest.raises(FloatingPointError, match="in lane 1 became NaN or infinite during steps 1 to 100"):
        sf.sweep(lanes, dt=0.1, steps=400, record=record, chunk=100, strict=True)


def test_a_single_run_that_is_not_strict_stops_its_records_and_says_when():
    net = sf.Network({"a": sf.Population(sf.AdEx(b=1e38), 5)}, {}, drive={"a": 5.0})
    events = sf.SpikeEvents("a.spikes")
    with pytest.warns(sf.DivergenceWarning, match=r"during steps 1 to 100 \(t = 0 to 10 ms\)"):
        _, rec = sf.simulate(
            net,
            net.init_state(),
            dt=0.1,
            steps=300,
            record=("a.v", "a.spikes"),
            chunk=100,
            strict=False,
            sinks=[events],
        )
    assert rec["diverged"] == 10.0 and rec["a.v"].isnan().all()
    assert len(events.times["a.spikes"]) == 0  # NaN records give no events


def test_lanes_with_their_own_synapses_take_only_their_own_states():
    def network(seed):
        return sf.Network(
            {"a": sf.Population(sf.LIF(), 30)},
            {
                "aa": sf.projection(
                    "a", "a", sf.connectivity.fixed_out_degree(30, 30, 3, seed=seed), 0.5, sf.Exponential(), dt=0.1
                )
            },
            drive={"a": 3.0},
        )

    lanes = sf.stack([network(1), network(2)])
    sf.sweep(lanes, sf.init_lanes(lanes), dt=0.1, steps=5)
    swapped = sf.init_lanes(sf.stack([network(2), network(1)]))
    with pytest.raises(ValueError, match=r"state.projections\['aa'\] was built for other synapses"):
        sf.sweep(lanes, swapped, dt=0.1, steps=5)
    shared = sf.stack([network(1), network(1)])  # one table for both lanes: its fingerprint is taken once
    sf.sweep(shared, sf.init_lanes(shared), dt=0.1, steps=5)
