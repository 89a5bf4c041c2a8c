"""Izhikevich, AdEx, Hodgkin-Huxley and the analog unit against known behaviour."""

import math

import pytest
import torch
from helpers import spike_times

import sapicore.functional as sf


def izhikevich_isis(name, duration=500.0):
    (times,) = spike_times(sf.Izhikevich.preset(name), 10.0, 0.05, duration)
    return times, torch.diff(times)


def test_izhikevich_regular_spiking_adapts():
    _, isis = izhikevich_isis("RS")
    assert len(isis) >= 5
    assert isis[0] < 0.7 * isis[-1]


def test_izhikevich_fast_spiking_fires_fast_without_adaptation():
    times, isis = izhikevich_isis("FS")
    early = int(((times >= 0) & (times < 100)).sum())
    late = int(((times >= 400) & (times < 500)).sum())
    assert late >= 10  # > 100 Hz
    assert abs(early - late) <= 0.1 * late
    # RS, by contrast, loses a third of its early rate
    rs_times, _ = izhikevich_isis("RS")
    assert int((rs_times >= 400).sum()) < 0.8 * int((rs_times < 100).sum())


def test_izhikevich_chattering_fires_bursts():
    _, isis = izhikevich_isis("CH")
    short, long = isis < 5.0, isis > 20.0
    assert int(long.sum()) >= 5  # many bursts
    assert int(short.sum()) >= 2 * int(long.sum())  # several spikes in each
    assert float(isis.max() / isis.min()) > 8


def test_izhikevich_presets_and_unknown_names():
    ch = sf.Izhikevich.preset("ch", d=3.0)
    assert (ch.a, ch.b, ch.c, ch.d) == (0.02, 0.2, -50.0, 3.0)
    assert set(sf.PRESETS) == {"RS", "IB", "CH", "FS", "LTS", "TC", "RZ"}
    with pytest.raises(ValueError, match="unknown Izhikevich preset 'XX'; choose one of: RS, IB, CH, FS, LTS, TC, RZ"):
        sf.Izhikevich.preset("XX")


def test_adex_subthreshold_steady_state_solves_the_fixed_point_equation():
    model = sf.AdEx()
    current = 0.1  # nA, below rheobase
    state = model.init_state(1, dtype=torch.float64)
    final, _ = sf.simulate(model, state, inputs=current, duration=2000.0, dt=0.1, record=())

    def residual(v):  # total current at the fixed point, w = a (v - E_L)
        return (
            -model.g_leak * (v - model.e_leak)
            + model.g_leak * model.delta_t * math.exp((v - model.v_thresh) / model.delta_t)
            - model.a * (v - model.e_leak)
            + current
        )

    low, high = model.e_leak, model.v_thresh
    for _ in range(100):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if residual(mid) > 0 else (low, mid)
    assert final.v.item() == pytest.approx(low, abs=1e-6)
    assert final.w.item() == pytest.approx(model.a * (low - model.e_leak), abs=1e-8)


def test_adex_holds_v_at_reset_for_its_refractory_period_while_w_relaxes():
    model = sf.AdEx(t_ref=2.0)
    _, rec = sf.simulate(model, model.init_state(1, dtype=torch.float64), inputs=1.0, dt=0.1, duration=300.0,
                         record=("v", "w", "spikes"))  # fmt: skip
    first = int(torch.nonzero(rec["spikes"][:, 0])[0])
    assert torch.all(rec["v"][first : first + 21, 0] == model.v_reset)  # the spike's step and 20 more
    assert rec["v"][first + 21, 0] > model.v_reset
    assert torch.all(torch.diff(rec["w"][first : first + 21, 0]) < 0)  # w relaxes towards a (v_reset - e_leak)
    _, plain = sf.simulate(sf.AdEx(), sf.AdEx().init_state(1, dtype=torch.float64), inputs=1.0, dt=0.1,
                           duration=300.0, record=("spikes",))  # fmt: skip
    held, free = (torch.nonzero(r["spikes"][:, 0])[:2, 0] for r in (rec, plain))
    assert held[0] == free[0] and held[1] > free[1]  # t_ref = 0 (the default): no refractory period


def test_adex_adapts_under_constant_current():
    (times,) = spike_times(sf.AdEx(), 1.0, 0.1, 1000.0)
    isis = torch.diff(times)
    assert len(isis) > 10
    assert torch.all(torch.diff(isis) >= -0.2)  # non-decreasing, up to one step of jitter
    assert isis[-1] > 2 * isis[0]


def test_hodgkin_huxley_rests_and_fires_near_70_hz():
    model = sf.HodgkinHuxley()
    state = model.init_state(2, dtype=torch.float64)
    current = torch.tensor([0.0, 10.0], dtype=torch.float64)
    _, rec = sf.simulate(model, state, inputs=lambda t: current, duration=100.0, dt=0.025, record=("v", "spikes"))
    assert torch.all((rec["v"][:, 0] + 65.0).abs() < 0.05)
    assert rec["spikes"][:, 0].sum() == 0
    times = rec["t"][rec["spikes"][:, 1] > 0]
    rate = 1000.0 * (len(times) - 1) / (times[-1] - times[0]).item()
    assert 60.0 < rate < 75.0
    assert rec["v"][:, 1].max() > 30.0  # a real action potential


def test_hodgkin_huxley_methods_agree():
    rates = {}
    for method in ("exponential_euler", "rk4"):
        (times,) = spike_times(sf.HodgkinHuxley(method=method), 10.0, 0.02, 50.0)
        rates[method] = float(torch.diff(times)[-1])
    assert rates["exponential_euler"] == pytest.approx(rates["rk4"], rel=0.01)


def test_analog_unit_relaxes_exactly_and_clips():
    model = sf.Analog(tau=10.0, nonlinearity="tanh", gain=2.0, clip_min=-0.5, clip_max=0.5)
    state = model.init_state(3, dtype=torch.float64)
    drive = torch.tensor([0.1, 1.0, -1.0], dtype=torch.float64)
    final, rec = sf.simulate(model, state, inputs=lambda t: drive, steps=50, dt=0.2, record=("x", "activation"))
    x = drive * (1.0 - math.exp(-10.0 / 10.0))
    assert torch.allclose(final.x, x, atol=1e-12)
    assert torch.allclose(rec["activation"][-1], torch.clamp(torch.tanh(2.0 * x), -0.5, 0.5))


def test_analog_unit_without_memory_is_the_seed_example_neuron():
    model = sf.Analog(clip_min=-2.0, clip_max=2.0)
    state = model.init_state(5)
    data = torch.tensor([-3.0, -1.0, 0.0, 1.5, 4.0])
    _, activation = model.step(state, data, 1.0)
    assert torch.equal(activation, torch.clip(data, -2, 2))
    with pytest.raises(ValueError, match="unknown nonlinearity 'softplus'"):
        sf.Analog(nonlinearity="softplus")
    with pytest.raises(ValueError, match="clip_min .* must not exceed clip_max"):
        sf.Analog(clip_min=1.0, clip_max=0.0)


def test_traub_miles_rates_are_the_published_formulas_and_a_step_current_fires_it():
    model = sf.TraubMiles()
    v = torch.tensor([-80.0, -55.0, -31.5, 0.0, 20.0], dtype=torch.float64)
    u = v - model.v_offset
    expected = (
        0.32 * (13 - u) / (torch.exp((13 - u) / 4) - 1),
        0.28 * (u - 40) / (torch.exp((u - 40) / 5) - 1),
        0.128 * torch.exp((17 - u) / 18),
        4 / (1 + torch.exp((40 - u) / 5)),
        0.032 * (15 - u) / (torch.exp((15 - u) / 5) - 1),
        0.5 * torch.exp((10 - u) / 40),
    )
    for got, want in zip(model.rates(v), expected):
        torch.testing.assert_close(got, want)
    at_13 = model.rates(torch.tensor([model.v_offset + 13.0], dtype=torch.float64))[0]
    assert at_13.item() == pytest.approx(1.28)  # the removable singularity: 0.32 * 4
    _, rec = sf.simulate(model, model.init_state(1, dtype=torch.float64), inputs=1.0, dt=0.005, duration=50.0)
    assert rec["spikes"].sum() >= 3 and rec["spikes"].max() == 1.0  # one spike per upward crossing
