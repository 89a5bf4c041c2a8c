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
    for lane, label in enumerate(labels):
        model = sf.LIF(tau_syn=2.0, **label)
        lane_final, lane_rec = sf.simulate(model, model.init_state(20, device=device), inputs, dt=0.1, record=("v", "spikes"))
        assert (rec["v"][lane] - lane_rec["v"]).abs().max() <= 1e-6
        assert torch.equal(rec["spikes"][lane], lane_rec["spikes"])
        assert (final.v[lane] - lane_final.v).abs().max() <= 1e-6


def test_lanes_of_izhikevich_presets_and_per_lane_inputs():
    presets = ["RS", "FS", "CH", "IB"]
    lanes = sf.stack([sf.Izhikevich.preset(name) for name in presets])
    inputs = torch.stack([torch.full((400, 3), 10.0), torch.full((400, 3), 5.0), torch.full((400, 3), 10.0), torch.rand(400, 3) * 15])
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
