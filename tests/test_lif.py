import math

import pytest
import torch
from helpers import spike_times

import sapicore.functional as sf


def analytic_rate(model, current):
    drive = model.v_rest + model.r_mem * current
    period = model.t_ref + model.tau_mem * math.log((drive - model.v_reset) / (drive - model.v_thresh))
    return 1000.0 / period


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rate_for_constant_current_matches_the_analytic_rate(device, dtype):
    model = sf.LIF(tau_mem=20.0, v_rest=-65.0, v_reset=-70.0, v_thresh=-50.0, r_mem=10.0, t_ref=5.0)
    currents = torch.tensor([1.6, 2.0, 3.0, 5.0, 20.0])
    for neuron, times in enumerate(spike_times(model, currents, 0.01, 300.0, shape=(5,), dtype=dtype, device=device)):
        rate = 1000.0 * (len(times) - 1) / (times[-1] - times[0]).item()
        expected = analytic_rate(model, currents[neuron].item())
        assert rate == pytest.approx(expected, rel=0.01), f"I = {currents[neuron].item()} nA"


def test_no_spikes_below_rheobase():
    model = sf.LIF()
    rheobase = (model.v_thresh - model.v_rest) / model.r_mem
    (times,) = spike_times(model, rheobase * 0.99, 0.1, 1000.0)
    assert len(times) == 0
    (times,) = spike_times(model, rheobase * 1.05, 0.1, 1000.0)
    assert len(times) > 0


def test_refractory_period_holds_v_at_reset_for_round_t_ref_over_dt_steps():
    model = sf.LIF(t_ref=1.0, v_reset=-70.0)
    state = model.init_state(1, dtype=torch.float64)
    _, rec = sf.simulate(model, state, inputs=100.0, steps=40, dt=0.1, record=("v", "spikes", "refractory_left"))
    first = int(torch.nonzero(rec["spikes"][:, 0])[0])
    held = rec["v"][first + 1 : first + 11, 0]
    assert torch.all(held == -70.0)
    assert rec["v"][first + 11, 0] > -70.0
    assert rec["refractory_left"][first, 0] == 1.0


def test_heterogeneous_parameters_broadcast_per_neuron():
    taus = torch.tensor([10.0, 20.0, 40.0], dtype=torch.float64)
    model = sf.LIF(tau_mem=taus)
    times = spike_times(model, 3.0, 0.01, 300.0, shape=(3,))
    for tau, t in zip(taus.tolist(), times):
        rate = 1000.0 * (len(t) - 1) / (t[-1] - t[0]).item()
        assert rate == pytest.approx(analytic_rate(sf.LIF(tau_mem=tau), 3.0), rel=0.01)


def test_exponential_synaptic_current_decays_with_tau_syn():
    model = sf.LIF(tau_syn=5.0)
    state = model.init_state(2, dtype=torch.float64)
    pulse = torch.zeros(101, 2, dtype=torch.float64)
    pulse[0] = torch.tensor([1.0, 0.5])
    _, rec = sf.simulate(model, state, inputs=pulse, dt=0.1, record=("i_syn",))
    expected = torch.exp(-torch.arange(101, dtype=torch.float64) * 0.1 / 5.0)[:, None] * torch.tensor([1.0, 0.5])
    assert torch.allclose(rec["i_syn"], expected.to(torch.float64), atol=1e-12)


@pytest.mark.parametrize("method", ["euler", "rk4"])
def test_other_integrators_converge_to_the_same_rate(method):
    model = sf.LIF(method=method)
    (times,) = spike_times(model, 2.0, 0.01, 300.0)
    rate = 1000.0 * (len(times) - 1) / (times[-1] - times[0]).item()
    assert rate == pytest.approx(analytic_rate(model, 2.0), rel=0.02)


def test_init_state_uses_parameter_device_and_dtype_and_checks_shapes():
    model = sf.LIF(v_rest=torch.tensor([-65.0, -60.0], dtype=torch.float64))
    state = model.init_state(2)
    assert state.v.dtype == torch.float64 and torch.equal(state.v, model.v_rest)
    with pytest.raises(
        ValueError, match="v_rest has shape \\(2,\\), which does not broadcast to the population shape \\(3,\\)"
    ):
        model.init_state(3)
    with pytest.raises(TypeError, match="LIF.v_rest has dtype torch.float64 but the state is torch.float32"):
        model.init_state(2, dtype=torch.float32)


def test_bad_parameters_are_rejected_with_the_field_name():
    with pytest.raises(ValueError, match="LIF.tau_mem must be > 0"):
        sf.LIF(tau_mem=0.0)
    with pytest.raises(ValueError, match="LIF.v_rest must be finite"):
        sf.LIF(v_rest=float("nan"))
    with pytest.raises(ValueError, match="v_thresh .* must be above v_reset"):
        sf.LIF(v_thresh=-70.0, v_reset=-60.0)
    with pytest.raises(ValueError, match="LIF.t_ref must be >= 0"):
        sf.LIF(t_ref=-1.0)


def test_bad_step_inputs_are_rejected():
    model = sf.LIF()
    state = model.init_state(4)
    with pytest.raises(ValueError, match="shape \\(3,\\) does not fit a population of shape \\(4,\\)"):
        model.step(state, torch.ones(3), 0.1)
    with pytest.raises(ValueError, match="shape \\(2, 4\\) does not fit"):
        model.step(state, torch.ones(2, 4), 0.1)
    with pytest.raises(TypeError, match="dtype torch.float64 but the state is torch.float32"):
        model.step(state, torch.ones(4, dtype=torch.float64), 0.1)
    with pytest.raises(TypeError, match="floating tensor"):
        model.step(state, torch.ones(4, dtype=torch.int64), 0.1)
    with pytest.raises(ValueError, match="dt must be a positive finite number"):
        model.step(state, 1.0, -0.1)
    with pytest.raises(ValueError, match="dt must be a positive finite number"):
        model.step(state, 1.0, float("nan"))
    with pytest.raises(TypeError, match="dt must be a Python number"):
        model.step(state, 1.0, torch.tensor(0.1))


@pytest.mark.parametrize(
    "method, factor",
    [
        ("euler", lambda h: 1 - h),
        ("rk4", lambda h: 1 - h + h**2 / 2 - h**3 / 6 + h**4 / 24),
        ("exponential_euler", math.exp),
    ],
)
def test_the_synaptic_current_decays_as_its_method_integrates_it(method, factor):
    """Euler's decay (1 - dt/tau_syn per step) is what NIR's CubaLIF runs as in snnTorch and Norse."""
    model = sf.LIF(tau_syn=5.0, method=method)
    pulse = torch.zeros(21, 1, dtype=torch.float64)
    pulse[0] = 1.0
    _, rec = sf.simulate(model, model.init_state(1, dtype=torch.float64), inputs=pulse, dt=1.0, record=("i_syn",))
    a = factor(-0.2) if method == "exponential_euler" else factor(0.2)
    expected = torch.tensor([a**n for n in range(21)], dtype=torch.float64)
    assert torch.allclose(rec["i_syn"][:, 0], expected, rtol=1e-12)


@pytest.mark.parametrize(
    "method, dt, field", [("euler", 2.5, "tau_syn"), ("rk4", 6.0, "tau_syn"), ("euler", 30.0, "tau_mem")]
)
def test_a_step_too_long_for_the_method_is_refused(method, dt, field):
    model = sf.LIF(tau_syn=2.0, method=method)
    with pytest.raises(ValueError, match=f"too long for method='{method}' with {field} down to"):
        sf.simulate(model, model.init_state(1), inputs=torch.zeros(3, 1), dt=dt)
