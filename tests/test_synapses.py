import math

import pytest
import torch

import sapicore.functional as sf


def run_synapse(synapse, steps=400, dt=0.1):
    state = synapse.init_state(torch.zeros(1, dtype=torch.float64))
    values = []
    for step in range(steps):
        arrivals = torch.tensor([0.3 if step == 0 else 0.0], dtype=torch.float64)
        state = synapse.update(state, arrivals, dt)
        values.append(synapse.current(state, torch.tensor([-65.0], dtype=torch.float64)))
    return torch.cat(values)


def test_exponential_current_decays_exactly():
    current = run_synapse(sf.Exponential(tau=5.0))
    expected = 0.3 * torch.exp(-torch.arange(400, dtype=torch.float64) * 0.1 / 5.0)
    assert torch.allclose(current, expected, atol=1e-14)


def test_alpha_current_samples_the_alpha_function_and_peaks_at_tau():
    tau = 2.5
    current = run_synapse(sf.Alpha(tau=tau))
    t = torch.arange(400, dtype=torch.float64) * 0.1  # the arrival's step is t = 0
    expected = 0.3 * math.e * (t / tau) * torch.exp(-t / tau)
    assert torch.allclose(current, expected, rtol=1e-12, atol=1e-15)
    assert int(current.argmax()) == 25 and current.max().item() == pytest.approx(0.3, rel=1e-12)
    conductance = run_synapse(sf.Alpha(tau=tau, e_rev=0.0))  # at v = -65 mV
    assert torch.allclose(conductance, expected * 65.0, rtol=1e-12, atol=1e-13)
    # a dual exponential whose two times close in on tau tends to the alpha function
    close = run_synapse(sf.DualExponential(tau_rise=tau * 0.999, tau_decay=tau * 1.001))
    assert torch.allclose(close, expected, atol=2e-4)


def test_conductance_synapse_current_follows_the_driving_force():
    excitatory = run_synapse(sf.Exponential(tau=5.0, e_rev=0.0))
    inhibitory = run_synapse(sf.Exponential(tau=10.0, e_rev=-80.0))
    assert excitatory[0].item() == pytest.approx(0.3 * 65.0)
    assert inhibitory[0].item() == pytest.approx(0.3 * -15.0)


def test_dual_exponential_peaks_at_the_weight_at_the_analytic_time():
    current = run_synapse(sf.DualExponential(tau_rise=1.0, tau_decay=5.0), steps=600, dt=0.01)
    t_peak = 1.0 * 5.0 / (5.0 - 1.0) * math.log(5.0 / 1.0)
    assert current.max().item() == pytest.approx(0.3, rel=1e-4)
    assert int(current.argmax()) * 0.01 == pytest.approx(t_peak, abs=0.011)
    with pytest.raises(ValueError, match="tau_rise != tau_decay"):
        run_synapse(sf.DualExponential(tau_rise=2.0, tau_decay=2.0))


def test_delta_synapse_lasts_one_step():
    current = run_synapse(sf.Delta())
    assert current[0].item() == 0.3 and torch.all(current[1:] == 0)


def test_poisson_source_fires_at_its_rate_and_is_seedable():
    source = sf.PoissonSource(rate=torch.tensor([5.0, 50.0]))
    state = source.init_state(2)
    torch.manual_seed(1)
    _, rec = sf.simulate(source, state, duration=20_000.0, dt=1.0)
    counts, expected = rec["spikes"].sum(0), torch.tensor([100.0, 1000.0])
    assert torch.all((counts - expected).abs() < 4 * expected.sqrt())  # within 4 standard deviations
    torch.manual_seed(1)
    _, again = sf.simulate(source, state, duration=20_000.0, dt=1.0)
    assert torch.equal(rec["spikes"], again["spikes"])


def test_a_source_of_many_trains_emits_poisson_counts_whose_weights_add_up():
    source = sf.PoissonSource(rate=8.0, trains=1600)  # 12.8 kHz per neuron: about 1.3 spikes per step
    torch.manual_seed(2)
    _, rec = sf.simulate(source, source.init_state(500), steps=2000, dt=0.1)
    counts = rec["spikes"]
    mean = 8.0 * 1600 * 0.1 / 1000.0
    assert abs(counts.mean().item() - mean) < 0.01 and abs(counts.var().item() / mean - 1.0) < 0.05  # Poisson
    assert int(counts.max()) >= 4 and torch.equal(counts, counts.round())
    net = sf.Network(
        populations={"bg": sf.Population(source, 3), "cell": sf.Population(sf.LIF(), 3)},
        projections={"p": sf.projection("bg", "cell", sf.connectivity.one_to_one(3), 0.25, sf.Delta(), dt=0.1)},
    )
    torch.manual_seed(3)
    _, rec = sf.simulate(net, net.init_state(), steps=50, dt=0.1, record=("bg.spikes", "p.s"))
    assert torch.allclose(rec["p.s"][1:], 0.25 * rec["bg.spikes"][:-1])  # each count times the weight, a step later
    with pytest.raises(ValueError, match="PoissonSource.trains must be an int >= 1 or a tensor of them .*got 0"):
        sf.PoissonSource(trains=0)
    with pytest.raises(ValueError, match="PoissonSource.trains must hold whole numbers >= 1"):
        sf.PoissonSource(trains=torch.tensor([2.0, 0.5]))


def test_trains_may_differ_per_neuron():
    trains = torch.tensor([1.0, 10.0, 100.0]).repeat_interleave(400)
    source = sf.PoissonSource(rate=100.0, trains=trains)
    torch.manual_seed(4)
    _, rec = sf.simulate(source, source.init_state(1200), steps=1000, dt=0.1)
    means = rec["spikes"].reshape(1000, 3, 400).mean((0, 2))
    assert torch.allclose(means, torch.tensor([0.01, 0.1, 1.0]), rtol=0.06)  # 100 Hz x trains x 0.1 ms


def test_incoherent_parameters_are_refused_in_every_lane():
    with pytest.raises(ValueError, match="AdEx.v_peak \\(-80.0\\) must be above v_reset"):
        sf.AdEx(v_peak=-80.0)  # would fire at every step with no input
    with pytest.raises(ValueError, match="tau_rise != tau_decay in every entry"):
        sf.DualExponential(tau_rise=torch.tensor([1.0, 2.0]), tau_decay=torch.tensor([5.0, 2.0]))
    lanes = sf.stack([sf.DualExponential(tau_rise=1.0, tau_decay=5.0), sf.DualExponential(tau_rise=2.0, tau_decay=3.0)])
    bad = sf.replace(lanes, tau_decay=torch.tensor([5.0, 2.0]))  # replace does not validate; a run does
    net = sf.Network(
        populations={"a": sf.Population(sf.SpikeInput(), 2), "b": sf.Population(sf.LIF(tau_syn=None), 2)},
        projections={"p": sf.projection("a", "b", sf.connectivity.all_to_all(2, 2), 0.1, bad, dt=0.1)},
    )
    with pytest.raises(ValueError, match="tau_rise != tau_decay"):
        sf.simulate(net, net.init_state(), steps=5, dt=0.1)
