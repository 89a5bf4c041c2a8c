"""Gradients through simulated runs against central finite differences (float64)."""

import pytest
import torch

import sapicore.functional as sf


def central_difference(fn, x, h):
    return (fn(x + h) - fn(x - h)) / (2 * h)


def test_grad_of_mean_voltage_of_a_subthreshold_lif_wrt_tau_mem():
    inputs = 1.2 * torch.rand(400, 8, dtype=torch.float64)  # below rheobase (1.5 nA)

    def mean_v(tau_mem):
        model = sf.replace(sf.LIF(tau_syn=3.0), tau_mem=tau_mem)
        _, rec = sf.simulate(model, model.init_state(8, dtype=torch.float64), inputs, dt=0.1, record="v")
        return rec["v"].mean()

    tau = torch.tensor(15.0, dtype=torch.float64)
    grad = torch.func.grad(mean_v)(tau)
    expected = central_difference(mean_v, tau, 1e-4)
    assert grad.item() == pytest.approx(expected.item(), rel=1e-3)
    assert grad.item() != 0.0


def test_grad_of_mean_voltage_of_a_spiking_hodgkin_huxley_neuron_wrt_g_na():
    def mean_v(g_na):
        model = sf.replace(sf.HodgkinHuxley(), g_na=g_na)
        state = model.init_state(1, dtype=torch.float64)
        _, rec = sf.simulate(model, state, inputs=10.0, duration=20.0, dt=0.025, record="v")
        return rec["v"].mean()

    g_na = torch.tensor(120.0, dtype=torch.float64)
    grad = torch.func.grad(mean_v)(g_na)
    expected = central_difference(mean_v, g_na, 1e-3)
    assert grad.item() == pytest.approx(expected.item(), rel=1e-3)


def test_grad_through_a_sweep_equals_per_lane_finite_differences():
    inputs = 1.0 * torch.rand(200, 4, dtype=torch.float64)

    def lane_means(tau_mem):
        lanes = sf.replace(sf.LIF(), tau_mem=tau_mem)
        _, rec = sf.sweep(lanes, inputs=inputs, dt=0.1, shape=4, record="v")
        return rec["v"].mean(dim=(1, 2))

    taus = torch.tensor([10.0, 20.0, 30.0], dtype=torch.float64)
    grads = torch.func.jacrev(lane_means)(taus).diagonal()
    for lane in range(3):
        bump = torch.zeros(3, dtype=torch.float64)
        bump[lane] = 1e-4
        expected = (lane_means(taus + bump) - lane_means(taus - bump))[lane] / 2e-4
        assert grads[lane].item() == pytest.approx(expected.item(), rel=1e-3)


def test_surrogate_gradient_flows_from_spike_counts_to_the_input():
    def spike_count(current):
        model = sf.LIF(surrogate="arctan", surrogate_slope=0.5)
        _, rec = sf.simulate(
            model, model.init_state(1, dtype=torch.float64), inputs=lambda t: current, steps=500, dt=0.1
        )
        return rec["spikes"].sum()

    grad = torch.func.grad(spike_count)(torch.tensor([2.5], dtype=torch.float64))
    assert torch.isfinite(grad).all() and grad.item() > 0
