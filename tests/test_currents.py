"""Current sources: DC, step, AC and counter-based noise, as functions of time in runs of every kind."""

import math

import pytest
import torch

import sapicore.functional as sf


def at(source, *times):
    return torch.stack([source(torch.tensor(t, dtype=torch.float64)) for t in times])


def test_dc_step_and_ac_currents_take_their_values_in_their_windows():
    dc = sf.DCCurrent(amplitude=torch.tensor([1.0, 2.0]), start=10.0, stop=20.0)
    assert at(dc, 9.9, 10.0, 19.9, 20.0).tolist() == [[0.0, 0.0], [1.0, 2.0], [1.0, 2.0], [0.0, 0.0]]
    step = sf.StepCurrent(times=[5.0, 8.0, 12.0], amplitudes=[0.5, -0.25, 0.0])
    assert at(step, 0.0, 4.9, 5.0, 7.9, 8.0, 11.9, 12.0, 100.0).tolist() == [0, 0, 0.5, 0.5, -0.25, -0.25, 0, 0]
    rows = sf.StepCurrent(times=[1.0], amplitudes=[[0.1, 0.2, 0.3]])  # one row per time: per neuron
    assert at(rows, 0.0, 1.0)[1].tolist() == pytest.approx([0.1, 0.2, 0.3])
    ac = sf.ACCurrent(amplitude=2.0, offset=0.5, frequency=50.0, phase=90.0, start=1.0)
    t = torch.linspace(1.0, 60.0, 50, dtype=torch.float64)
    expected = 0.5 + 2.0 * torch.sin(2 * math.pi * 50.0 * t / 1000.0 + math.pi / 2)
    assert torch.allclose(at(ac, *t.tolist()), expected, atol=1e-12) and float(ac(torch.tensor(0.5))) == 0.0


def test_noise_is_gaussian_held_per_interval_and_independent_across_neurons_and_intervals():
    noise = sf.NoisyCurrent(mean=0.2, stdev=0.5, interval=0.5, size=2000, seed=11)
    values = at(noise, *[0.5 * k + 0.1 for k in range(60)])  # one time in each of 60 intervals
    assert float(values.mean()) == pytest.approx(0.2, abs=0.01)
    assert float(values.std()) == pytest.approx(0.5, rel=0.02)
    z = (values - 0.2) / 0.5
    assert float((z**4).mean()) == pytest.approx(3.0, abs=0.15)  # Gaussian kurtosis
    assert abs(float(torch.corrcoef(torch.stack([z[:, :-1].flatten(), z[:, 1:].flatten()]))[0, 1])) < 0.02
    assert abs(float(torch.corrcoef(torch.stack([z[:-1].flatten(), z[1:].flatten()]))[0, 1])) < 0.02
    assert torch.equal(at(noise, 0.1)[0], at(noise, 0.49)[0])  # held within an interval
    other = sf.replace(noise, seed=12)
    assert not torch.equal(at(other, 0.1), at(noise, 0.1))


def test_noise_of_any_slice_of_a_population_is_that_slice_of_the_whole():
    whole = sf.NoisyCurrent(stdev=1.0, interval=0.1, size=100, seed=5)
    part = sf.NoisyCurrent(stdev=1.0, interval=0.1, size=30, seed=5, first=40)
    for t in (0.0, 3.05, 1234.5):
        assert torch.equal(at(part, t)[0], at(whole, t)[0][40:70])
    single = sf.replace(whole, size=1, first=99)
    assert torch.equal(at(single, 7.0)[0], at(whole, 7.0)[0][99:])
    as_float32 = whole(torch.tensor(2.0, dtype=torch.float32))
    assert torch.allclose(as_float32.double(), at(whole, 2.0)[0], atol=1e-6)


def test_every_source_gives_the_same_values_on_every_device(device):
    sources = [
        sf.NoisyCurrent(mean=0.1, stdev=0.7, interval=0.3, size=500, seed=9, first=123),
        sf.StepCurrent(times=[1.0, 4.0], amplitudes=[[0.5, 1.0], [0.0, 2.0]]),
        sf.ACCurrent(amplitude=1.5, frequency=40.0, phase=30.0),
        sf.DCCurrent(amplitude=0.25, start=2.0, stop=3.0),
    ]
    for source in sources:
        moved = sf.to(source, device)
        for t in (0.0, 1.05, 2.5, 3.99, 77.7):
            here = source(torch.tensor(t, dtype=torch.float64))
            there = moved(torch.tensor(t, dtype=torch.float64, device=device))
            assert there.device.type == torch.device(device).type or there.dim() == 0
            assert torch.allclose(there.cpu(), here, rtol=1e-12, atol=1e-12), (type(source).__name__, t)


@pytest.mark.slow
def test_sources_drive_runs_alike_eager_compiled_and_in_lanes():
    lif = sf.LIF(v_thresh=-55.0)
    step = sf.StepCurrent(times=[10.0, 30.0], amplitudes=[2.0, 0.5])
    noise = sf.NoisyCurrent(mean=0.5, stdev=1.0, interval=1.0, size=8, seed=2)

    def drive(t):
        return step(t) + noise(t)

    state = lif.init_state(8, dtype=torch.float64)
    _, eager = sf.simulate(lif, state, drive, dt=0.1, duration=60.0, record=("v", "spikes"))
    # compiled chunks of 2 steps: each step's hash is unrolled into the graph, and inductor takes
    # seconds per noise call to compile (about 4 s each on one CPU thread with a cold cache)
    _, fast = sf.simulate(lif, state, drive, dt=0.1, duration=60.0, record=("v", "spikes"), fast=True, chunk=2)
    assert eager["spikes"].sum() > 5
    assert torch.allclose(fast["v"], eager["v"], atol=1e-9) and torch.equal(fast["spikes"], eager["spikes"])
    # chunks of any length see the same currents: the noise is a function of time, not of calls
    _, chunked = sf.simulate(lif, state, drive, dt=0.1, duration=60.0, record=("v",), chunk=7)
    assert torch.equal(chunked["v"], eager["v"])
    lanes = sf.stack([lif, sf.replace(lif, tau_mem=20.0)])
    _, swept = sf.sweep(lanes, sf.init_lanes(lanes, 8), drive, dt=0.1, duration=60.0, record=("v",), strict=True)
    _, second = sf.simulate(
        sf.replace(lif, tau_mem=20.0), lif.init_state(8), drive, dt=0.1, duration=60.0, record=("v",)
    )
    assert torch.allclose(swept["v"][1], second["v"], atol=1e-5)


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: sf.DCCurrent(start=5.0, stop=5.0), r"stop \(5.0\) must be after start"),
        (lambda: sf.DCCurrent(start=-1.0), "start must be >= 0"),
        (lambda: sf.DCCurrent(amplitude=math.nan), "amplitude must be finite"),
        (lambda: sf.StepCurrent(times=[2.0, 1.0], amplitudes=[1.0, 0.0]), "times must increase strictly"),
        (lambda: sf.StepCurrent(times=[1.0, 2.0], amplitudes=[1.0]), "one value .* per time: 2 times, got 1"),
        (lambda: sf.StepCurrent(times=[], amplitudes=[]), "non-empty 1-d list of times"),
        (lambda: sf.StepCurrent(times=[math.nan], amplitudes=[1.0]), "finite and >= 0 ms"),
        (lambda: sf.ACCurrent(frequency=-1.0), "frequency must be >= 0"),
        (lambda: sf.NoisyCurrent(stdev=-0.1), "stdev must be >= 0"),
        (lambda: sf.NoisyCurrent(interval=0.0), "interval must be > 0"),
        (lambda: sf.NoisyCurrent(size=0), "size must be an int >= 1"),
        (lambda: sf.NoisyCurrent(seed=-3), r"seed must be an int in \[0, 2\*\*32\)"),
    ],
)
def test_bad_sources_are_refused_naming_the_value(make, words):
    with pytest.raises(ValueError, match=words):
        make()
