"""Tsodyks-Markram short-term plasticity: the analytic recursion, its fixed point, every way of
running it giving the same efficacies, gradients, records and checkpoints."""

import math

import pytest
import torch

import sapicore.functional as sf
from sapicore.checkpoint import load_checkpoint, save_checkpoint
from sapicore.functional.propagation import kernels

DT = 0.1
TAU_SYN = 5.0


def recursion(intervals, U, tau_rec, tau_facil):
    """The efficacies u_n x_n of spikes separated by ``intervals`` (ms), by the recursion of the
    module docstring (NEST's tsodyks2_synapse)."""
    u, x, found = U, 1.0, [U]
    for h in intervals:
        facil = math.exp(-h / tau_facil) if tau_facil > 0 else 0.0
        u, x = U + u * (1 - U) * facil, 1 + (x - x * u - 1) * math.exp(-h / tau_rec)
        found.append(u * x)
    return torch.tensor(found, dtype=torch.float64)


def network(n_pre, rule, kind="sparse", n_post=3, seed=0, p=0.7):
    g = torch.Generator().manual_seed(seed)
    links = sf.connectivity.fixed_probability(n_pre, n_post, p, seed=seed + 1)
    weights = torch.rand(len(links), generator=g, dtype=torch.float64) + 0.5
    projection = sf.projection(
        "src", "dst", links, weights, sf.Exponential(TAU_SYN), dt=DT, kind=kind, short_term=rule, delay=0.3
    )
    return sf.Network(
        {"src": sf.Population(sf.SpikeInput(), n_pre), "dst": sf.Population(sf.LIF(v_thresh=1e9), n_post)},
        {"p": projection},
    )


def delivered(records):
    """Each step's arrivals at the targets, from the exponential synapse's jumps."""
    s = records["p.s"]
    return s - torch.cat([torch.zeros_like(s[:1]), s[:-1]]) * math.exp(-DT / TAU_SYN)


def spike_trains(steps, n, rate, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(steps, n, generator=g, dtype=torch.float64) < rate * DT / 1000).double()


@pytest.mark.parametrize("U,tau_rec,tau_facil", [(0.5, 800.0, 0.0), (0.1, 100.0, 1000.0), (1.0, 50.0, 0.0)])
def test_one_source_transmits_the_efficacies_of_the_tsodyks_markram_recursion(U, tau_rec, tau_facil):
    g = torch.Generator().manual_seed(3)
    intervals = (torch.randint(1, 400, (40,), generator=g) * DT).tolist()  # 0.1 to 40 ms apart
    spike_steps = torch.tensor([0] + intervals).div(DT).round().long().cumsum(0) + 5
    spikes = torch.zeros(int(spike_steps[-1]) + 10, 1, dtype=torch.float64)
    spikes[spike_steps] = 1.0
    net = network(1, sf.TsodyksMarkram(U=U, tau_rec=tau_rec, tau_facil=tau_facil), n_post=1, p=1.0)
    weight = float(net.projections["p"].weights[0, 0])
    _, rec = sf.simulate(net, net.init_state(dtype=torch.float64), {"src": spikes}, dt=DT, record=("p.s",))
    arrivals = delivered(rec)[:, 0]
    found = arrivals[arrivals.abs() > 1e-12] / weight
    expected = recursion([float(h) for h in torch.diff(spike_steps).double() * DT], U, tau_rec, tau_facil)
    assert found.shape == expected.shape
    assert torch.allclose(found, expected, rtol=1e-10, atol=1e-12)
    # delays: each spike arrives 3 steps (0.3 ms) after it was emitted, plus one step of transit
    assert torch.equal(torch.nonzero(arrivals.abs() > 1e-12)[:, 0], spike_steps + 4)


def test_a_regular_train_settles_at_the_analytic_fixed_point():
    U, tau_rec, tau_facil, h = 0.2, 300.0, 200.0, 25.0
    period = round(h / DT)
    spikes = torch.zeros(150 * period, 1, dtype=torch.float64)
    spikes[period - 1 :: period] = 1.0
    net = network(1, sf.TsodyksMarkram(U=U, tau_rec=tau_rec, tau_facil=tau_facil), n_post=1, p=1.0)
    _, rec = sf.simulate(
        net, net.init_state(dtype=torch.float64), {"src": spikes}, dt=DT, record=("p.resources", "p.utilization")
    )
    u_star = U / (1 - (1 - U) * math.exp(-h / tau_facil))  # utilization at each spike
    x_star = (1 - math.exp(-h / tau_rec)) / (1 - (1 - u_star) * math.exp(-h / tau_rec))  # resources before it
    last = spikes.shape[0] - 1
    assert float(rec["p.utilization"][last, 0]) == pytest.approx(u_star, rel=1e-9)
    assert float(rec["p.resources"][last, 0]) == pytest.approx(x_star * (1 - u_star), rel=1e-9)
    assert "p.resources" in net.record_names() and "p.utilization" in net.record_names()


def test_the_kernel_the_torch_ops_and_a_dense_projection_transmit_the_same(device):
    rule = sf.TsodyksMarkram(U=0.3, tau_rec=200.0, tau_facil=100.0)
    spikes = spike_trains(800, 12, 80.0, seed=4).to(device)
    runs = []
    for kind, disabled in (("sparse", False), ("sparse", True), ("dense", False)):
        net = sf.to(network(12, rule, kind=kind), device)
        with kernels.disabled() if disabled else torch.no_grad():
            state = net.init_state(device=device, dtype=torch.float64)
            _, rec = sf.simulate(net, state, {"src": spikes}, dt=DT, record=("p.s",))
        runs.append(rec["p.s"].cpu())
    assert runs[0].abs().sum() > 1.0
    for other in runs[1:]:
        assert torch.allclose(other, runs[0], rtol=1e-12, atol=1e-12)
    plain = network(12, None)
    _, rec = sf.simulate(plain, plain.init_state(dtype=torch.float64), {"src": spikes.cpu()}, dt=DT, record=("p.s",))
    assert float(rec["p.s"].abs().sum()) > float(runs[0].abs().sum()) * 1.2  # depression transmits less


@pytest.mark.slow
def test_compiled_chunks_equal_the_reference_loop():
    net = network(10, sf.TsodyksMarkram(U=0.4, tau_rec=150.0, tau_facil=50.0))
    spikes = spike_trains(400, 10, 100.0, seed=5)
    record = ("p.s", "p.resources")
    state = net.init_state(dtype=torch.float64)
    _, eager = sf.simulate(net, state, {"src": spikes}, dt=DT, record=record)
    _, fast = sf.simulate(net, state, {"src": spikes}, dt=DT, record=record, fast=True)
    assert float(eager["p.s"].abs().sum()) > 1.0
    for name in record:
        assert torch.allclose(fast[name], eager[name], rtol=1e-10, atol=1e-12)


def test_a_sweep_over_the_utilization_equals_runs_one_by_one():
    Us = [0.1, 0.4, 0.9]
    spikes = spike_trains(300, 8, 120.0, seed=6)
    nets = [network(8, sf.TsodyksMarkram(U=U, tau_rec=100.0, tau_facil=300.0)) for U in Us]
    lanes = sf.stack(nets)
    state = sf.init_lanes(lanes)
    state = sf.tree_map(lambda t: t.double() if t.is_floating_point() else t, state)
    lanes = sf.tree_map(lambda t: t.double() if isinstance(t, torch.Tensor) and t.is_floating_point() else t, lanes)
    _, swept = sf.sweep(lanes, state, {"src": spikes}, dt=DT, record=("p.s",), strict=True)
    for lane, net in enumerate(nets):
        _, alone = sf.simulate(net, net.init_state(dtype=torch.float64), {"src": spikes}, dt=DT, record=("p.s",))
        assert torch.allclose(swept["p.s"][lane], alone["p.s"], rtol=1e-12, atol=1e-12)


def test_the_gradient_with_respect_to_U_matches_finite_differences():
    spikes = spike_trains(300, 6, 150.0, seed=7)

    def loss(U):
        net = network(6, sf.TsodyksMarkram(U=U, tau_rec=120.0, tau_facil=80.0))
        _, rec = sf.simulate(net, net.init_state(dtype=torch.float64), {"src": spikes}, dt=DT, record=("p.s",))
        return (rec["p.s"] ** 2).sum()

    U = torch.tensor(0.35, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(loss(U), U)
    eps = 1e-6
    numeric = (
        loss(torch.tensor(0.35 + eps, dtype=torch.float64)) - loss(torch.tensor(0.35 - eps, dtype=torch.float64))
    ) / (2 * eps)
    assert abs(float(grad)) > 1e-3
    assert float(grad) == pytest.approx(float(numeric), rel=1e-5)


def test_a_run_stopped_and_resumed_keeps_the_short_term_state(tmp_path):
    net = network(5, sf.TsodyksMarkram(U=0.5, tau_rec=300.0, tau_facil=0.0))
    spikes = spike_trains(500, 5, 200.0, seed=8)
    state = net.init_state(dtype=torch.float64)
    _, whole = sf.simulate(net, state, {"src": spikes}, dt=DT, record=("p.s",))
    middle, first = sf.simulate(net, state, {"src": spikes[:200]}, dt=DT, record=("p.s",))
    save_checkpoint(tmp_path / "run.ckpt", middle, step=200, model=net)
    checkpoint = load_checkpoint(tmp_path / "run.ckpt")
    assert checkpoint["state"].projections["p"].short_term is not None
    _, second = sf.simulate(
        checkpoint["model"], checkpoint["state"], {"src": spikes[200:]}, dt=DT, record=("p.s",), start_step=200
    )
    assert torch.equal(torch.cat([first["p.s"], second["p.s"]]), whole["p.s"])


@pytest.mark.parametrize(
    "make, error, words",
    [
        (lambda: sf.TsodyksMarkram(U=0.0), ValueError, "U must be > 0"),
        (lambda: sf.TsodyksMarkram(U=1.5), ValueError, "U must be in (0, 1]"),
        (lambda: sf.TsodyksMarkram(tau_rec=0.0), ValueError, "tau_rec must be > 0"),
        (lambda: sf.TsodyksMarkram(tau_facil=-1.0), ValueError, "tau_facil must be >= 0"),
        (lambda: sf.TsodyksMarkram(U=math.nan), ValueError, "U must be finite"),
        (lambda: network(3, "depressing"), TypeError, "short_term must be None or a TsodyksMarkram"),
    ],
)
def test_bad_short_term_parameters_are_refused_with_their_name(make, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        make()
