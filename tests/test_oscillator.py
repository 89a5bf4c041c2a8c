import math

import pytest
import torch

import sapicore.functional as sf
from sapicore import analysis
from sapicore.functional import connectivity
from sapicore.neuron.analog import OscillatorNeuron
from sapicore.spec import parse_spec


def run(model, steps, dt, shape=1, dtype=torch.float32, inputs=None):
    model = sf.to(model, dtype=dtype)
    state = model.init_state(shape, dtype=dtype)
    return sf.simulate(model, state, inputs, dt=dt, steps=steps, record="activation")


def test_the_spectrum_peaks_at_the_given_frequencies_with_the_given_amplitudes():
    as64 = dict(dtype=torch.float64)
    model = sf.Oscillator(
        amplitudes=torch.tensor([1.0, 0.5, 0.25], **as64),
        frequencies=torch.tensor([10.0, 40.0, 73.0], **as64),
        phases=torch.tensor([0.0, 0.5, 1.3], **as64),
    )
    _, rec = run(model, steps=10_000, dt=0.1, dtype=torch.float64)  # 1 s: bins of 1 Hz
    spectrum = torch.fft.rfft(rec["activation"][:, 0]).abs() * 2 / 10_000
    for hz, amplitude in ((10, 1.0), (40, 0.5), (73, 0.25)):
        assert spectrum[hz].item() == pytest.approx(amplitude, abs=1e-6)
    spectrum[[10, 40, 73]] = 0.0
    assert spectrum.max().item() < 1e-6  # nothing else
    t = rec["t"]  # and the waveform itself, phases in multiples of pi
    expected = (
        torch.sin(2 * math.pi * 10 * t / 1000)
        + 0.5 * torch.sin(2 * math.pi * 40 * t / 1000 + 0.5 * math.pi)
        + 0.25 * torch.sin(2 * math.pi * 73 * t / 1000 + 1.3 * math.pi)
    )
    assert torch.allclose(rec["activation"][:, 0], expected, atol=1e-9)


def test_phase_amplitude_coupling_is_found_at_amp_freq_by_the_modulation_index():
    """Three slow rhythms (3, 5, 8 Hz) and a 40 Hz component whose amplitude follows 5 Hz: the
    modulation index (Tort et al. 2010) is high for the 5 Hz phase only and matches its analytic
    value for an envelope (1 - cos) / 2, (1 - ln 2) / ln(bins) nats; without coupling it is 0."""
    slow = dict(amplitudes=[1.0, 1.0, 1.0, 0.5], frequencies=[3.0, 5.0, 8.0, 40.0], phases=[0.0, 0.3, 0.7, 0.0])
    _, coupled = run(sf.Oscillator(**slow, amp_freq=[0.0, 0.0, 0.0, 5.0]), steps=8000, dt=0.5)
    _, uncoupled = run(sf.Oscillator(**slow), steps=8000, dt=0.5)
    x, y = coupled["activation"][:, 0], uncoupled["activation"][:, 0]
    index = {hz: analysis.modulation_index(x, 0.5, (hz - 1, hz + 1), (30, 50)) for hz in (3.0, 5.0, 8.0)}
    assert index[5.0] == pytest.approx((1 - math.log(2)) / math.log(18), rel=0.03)
    assert index[3.0] < 1e-3 and index[8.0] < 1e-3
    assert analysis.modulation_index(y, 0.5, (4, 6), (30, 50)) < 1e-6
    phase = analysis.band_analytic(x, 0.5, (4, 6)).angle()  # the envelope peaks at the 5 Hz sine's crest
    envelope = analysis.band_analytic(x, 0.5, (30, 50)).abs()
    preferred = torch.angle((envelope * torch.exp(1j * phase)).sum()).item()
    assert preferred == pytest.approx(0.3 * math.pi - math.pi / 2 + math.pi, abs=0.05)


def test_heterogeneous_oscillators_per_neuron_equal_one_oscillator_each():
    frequencies = torch.tensor([[4.0], [8.0], [12.0]])  # one component per neuron
    amplitudes = torch.tensor([[1.0], [2.0], [3.0]])
    shift = torch.tensor([0.0, -1.0, 1.0])
    _, together = run(sf.Oscillator(amplitudes=amplitudes, frequencies=frequencies, baseline_shift=shift), 500, 0.1, 3)
    for i in range(3):
        alone = sf.Oscillator(
            amplitudes=amplitudes[i].item(), frequencies=frequencies[i].item(), baseline_shift=shift[i].item()
        )
        _, rec = run(alone, 500, 0.1)
        assert torch.allclose(together["activation"][:, i], rec["activation"][:, 0], atol=1e-6)
    batched = torch.func.vmap(lambda hz: run(sf.Oscillator(frequencies=hz), 500, 0.1)[1]["activation"])(
        torch.tensor([4.0, 8.0, 12.0])
    )
    for i, hz in enumerate((4.0, 8.0, 12.0)):
        assert torch.allclose(batched[i], run(sf.Oscillator(frequencies=hz), 500, 0.1)[1]["activation"], atol=1e-6)


def test_the_clock_keeps_its_precision_over_long_float32_runs():
    """A float32 clock summing dt = 0.1 ms drifts by a third of a millisecond within 2 s; the split
    clock (whole ms + fraction) by about 1e-8 ms per step: after 50,000 steps (5 s) it is within
    0.002 ms, and a 40 Hz sine within 1e-3 of its exact value."""
    model = sf.Oscillator(amplitudes=1.0, frequencies=40.0, phases=0.25)
    final, rec = sf.simulate(model, model.init_state(1), dt=0.1, steps=50_000, record="activation", every=50_000)
    assert (final.ms + final.ms_fraction).item() == pytest.approx(5_000.0, abs=2e-3)
    expected = math.sin(2 * math.pi * 40 * 5.0 + 0.25 * math.pi)
    assert rec["activation"][-1, 0].item() == pytest.approx(expected, abs=1e-3)
    naive = torch.zeros((), dtype=torch.float32)
    for _ in range(20_000):  # what a plain float32 clock would hold after 2 s
        naive = naive + 0.1
    assert abs(naive.item() - 2000.0) > 0.1


def test_inputs_add_to_the_wave_and_gradients_match_finite_differences():
    model = sf.Oscillator(amplitudes=[1.0, 0.5], frequencies=[10.0, 40.0], amp_freq=[0.0, 6.0])
    current = torch.randn(300, 2)
    _, with_input = run(model, 300, 0.1, shape=2, inputs=current)
    _, without = run(model, 300, 0.1, shape=2)
    assert torch.allclose(with_input["activation"] - without["activation"], current, atol=1e-6)

    def loss(amplitudes, phases, shift):
        osc = sf.Oscillator(
            amplitudes=amplitudes, frequencies=[10.0, 40.0], phases=phases, amp_freq=[0.0, 6.0], baseline_shift=shift
        )
        osc = sf.to(osc, dtype=torch.float64)  # the fixed lists arrive as float32
        _, rec = sf.simulate(osc, osc.init_state(1, dtype=torch.float64), dt=0.1, steps=200, record="activation")
        return (rec["activation"] ** 2).mean()

    args = (
        torch.tensor([1.0, 0.5], dtype=torch.float64),
        torch.tensor([0.1, 0.4], dtype=torch.float64),
        torch.tensor(0.2, dtype=torch.float64),
    )
    assert torch.autograd.gradcheck(loss, tuple(a.requires_grad_(True) for a in args))


def test_a_compiled_run_equals_the_reference_loop():
    model = sf.Oscillator(amplitudes=[1.0, 0.5], frequencies=[10.0, 40.0], amp_freq=[0.0, 6.0], baseline_shift=0.5)
    _, ref = run(model, 400, 0.1, shape=4)
    state = model.init_state(4)
    _, fast = sf.simulate(model, state, dt=0.1, steps=400, record="activation", fast="aot_eager")
    assert torch.allclose(fast["activation"], ref["activation"], atol=1e-5)


def test_bad_parameters_are_refused_with_what_to_do():
    with pytest.raises(ValueError, match="same number of components .* amplitudes 2, frequencies 3"):
        sf.Oscillator(amplitudes=[1.0, 2.0], frequencies=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="frequencies must be >= 0"):
        sf.Oscillator(frequencies=-4.0)
    with pytest.raises(ValueError, match="amp_freq must be >= 0"):
        sf.Oscillator(amp_freq=[0.0, -1.0], amplitudes=[1.0, 1.0])
    with pytest.raises(ValueError, match="amplitudes must be finite"):
        sf.Oscillator(amplitudes=float("nan"))
    with pytest.raises(ValueError, match="does not broadcast to the population shape"):
        sf.Oscillator(frequencies=torch.ones(3, 2)).init_state(5)  # 3 neurons' worth of 2 components


def test_an_oscillator_clock_gates_a_population_into_its_trough():
    """LIF cells with a suprathreshold drive, inhibited by an 8 Hz clock ``-2 (1 + sin)`` nA, fire only
    where the inhibition is weakest: near the clock's phase 3 pi / 2 (its trough), a little later for
    the membrane's lag; dense and sparse projections of the analog output agree exactly."""
    records = {}
    for kind in ("dense", "sparse"):
        populations = {
            "clock": sf.Population(sf.Oscillator(amplitudes=1.0, frequencies=8.0, baseline_shift=1.0), 1),
            "cells": sf.Population(sf.LIF(tau_mem=5.0), 20),
        }
        inhibition = sf.projection(
            "clock", "cells", connectivity.all_to_all(1, 20), -2.0, sf.Delta(), dt=0.1, kind=kind
        )
        net = sf.Network(populations, {"inhibition": inhibition}, drive={"cells": 2.2})
        _, records[kind] = sf.simulate(
            net, net.init_state(), dt=0.1, duration=1000.0, record=("cells.spikes", "clock.activation")
        )
    assert torch.equal(records["dense"]["cells.spikes"], records["sparse"]["cells.spikes"])
    steps, _ = torch.nonzero(records["dense"]["cells.spikes"], as_tuple=True)
    assert steps.numel() > 100
    phase = 2 * math.pi * 8.0 * (steps + 1).double() * 0.1 / 1000.0
    mean = torch.exp(1j * phase).mean()
    # the net current 2.2 - 2 (1 + sin) nA exceeds the rheobase 1.5 nA for sin < -0.65: a window of
    # +-49.5 degrees around the trough, whose vector strength is sin(49.5 deg) / 0.864 = 0.88
    assert abs(mean) > 0.8
    assert math.degrees(torch.angle(mean).item()) % 360 == pytest.approx(270, abs=15)
    degrees = torch.rad2deg(phase) % 360
    assert ((degrees > 200) & (degrees < 340)).double().mean() > 0.95


def test_the_object_adapter_equals_the_functional_model_and_round_trips_its_state():
    neuron = OscillatorNeuron(
        shape=2, dt=0.1, amplitudes=[1.0, 0.5], frequencies=[10.0, 40.0], phases=[0.0, 0.5], amp_freq=[0.0, 5.0]
    )
    outputs = torch.stack([neuron(0.0) for _ in range(50)])
    model = sf.Oscillator(amplitudes=[1.0, 0.5], frequencies=[10.0, 40.0], phases=[0.0, 0.5], amp_freq=[0.0, 5.0])
    _, rec = run(model, 50, 0.1, shape=2)
    assert torch.equal(outputs, rec["activation"]) and torch.equal(neuron.voltage, rec["activation"][-1])
    fresh = OscillatorNeuron(
        shape=2, dt=0.1, amplitudes=[1.0, 0.5], frequencies=[10.0, 40.0], phases=[0.0, 0.5], amp_freq=[0.0, 5.0]
    )
    fresh.load_state_dict(neuron.state_dict())
    assert torch.equal(fresh(0.0), neuron(0.0))


def test_a_spec_declares_oscillators_with_component_lists_and_per_neuron_draws():
    spec = parse_spec(
        {
            "simulation": {"dt": 0.1, "duration": 100.0, "record": ["theta.activation", "clocks.activation"]},
            "populations": {
                "theta": {
                    "model": "Oscillator",
                    "size": 1,
                    "parameters": {"amplitudes": [1.0, 0.5], "frequencies": [6.0, 40.0], "amp_freq": [0.0, 6.0]},
                },
                "clocks": {
                    "model": "Oscillator",
                    "size": 4,
                    "parameters": {"frequencies": {"distribution": "uniform", "low": 4.0, "high": 12.0}},
                },
            },
        },
        "oscillators.yaml",
    )
    theta = spec.network.populations["theta"].model
    assert theta.amplitudes.tolist() == [1.0, 0.5] and theta.amp_freq.tolist() == [0.0, 6.0]
    clocks = spec.network.populations["clocks"].model
    assert clocks.frequencies.shape == (4, 1) and bool(((clocks.frequencies >= 4) & (clocks.frequencies <= 12)).all())
    with pytest.raises(ValueError, match="same number of components"):
        parse_spec(
            {
                "simulation": {"dt": 0.1, "duration": 1.0},
                "populations": {
                    "x": {
                        "model": "Oscillator",
                        "size": 1,
                        "parameters": {"amplitudes": [1.0, 2.0], "phases": [0.0, 1.0, 2.0]},
                    }
                },
            },
            "bad.yaml",
        )
