"""The Potjans & Diesmann (2014) microcircuit: its connectivity, weights and delays, and its rates
at a scale small enough for every test run."""

import json
import math

import pytest
import torch

import sapicore.functional as sf
from sapicore.cli import main
from sapicore.networks import potjans2014 as pd

DT = 0.1


def test_full_scale_numbers_match_the_published_model():
    counts = pd.synapse_counts()
    assert sum(pd.FULL_SIZES) == 77_169
    assert 2.98e8 < float(counts.sum()) < 3.0e8  # about 0.3 billion synapses
    assert round(float(counts[0, 0])) == 45_499_806  # L2/3E -> L2/3E, log(1 - p) / log(1 - 1 / N^2)
    assert pd.psc_per_psp(250.0, 10.0, 0.5) * 0.15 == pytest.approx(87.81, abs=0.01)  # pA for 0.15 mV


@pytest.fixture(scope="module")
def small():
    return pd.microcircuit(scale=0.02, k_scale=0.05, seed=4)


def blocks(net):
    """Each (source, target) pair's recurrent synapses: {(i, j): (pre, post, weights, delays)}."""
    sizes = [size for _, size in net.populations["cortex"].parts]
    starts = torch.tensor([0] + sizes).cumsum(0)
    proj = net.projections["synapses"]
    mask = proj.mask
    pre = proj.row_sources()[:, None].expand_as(proj.targets)[mask]
    post, weights = proj.targets[mask].long(), proj.weights[mask]
    delays = proj.delays[mask] if isinstance(proj.delays, torch.Tensor) else torch.full_like(post, proj.delays)
    source_of = torch.bucketize(pre, starts[1:], right=True)
    target_of = torch.bucketize(post, starts[1:], right=True)
    found = {}
    for i in range(8):
        for j in range(8):
            keep = (source_of == i) & (target_of == j)
            if bool(keep.any()):
                found[i, j] = (pre[keep] - starts[i], post[keep] - starts[j], weights[keep], delays[keep])
    return found


def test_the_recurrent_synapses_are_one_table_of_narrow_rows(small):
    """One projection whose rows hold ROW_WIDTH slots, a neuron taking as many as its synapses need:
    at most one row of padding per neuron, where rows as wide as the largest out-degree waste more."""
    proj = small.projections["synapses"]
    assert set(small.projections) == {"synapses", "external"} and proj.source == "cortex"
    assert proj.targets.shape[1] == pd.ROW_WIDTH and proj.first_row is not None
    synapses, n_pre = int(proj.mask.sum()), proj.n_pre
    assert proj.targets.numel() - synapses < (n_pre + 1) * pd.ROW_WIDTH
    widest = int(torch.bincount(proj.row_sources()[:, None].expand_as(proj.targets)[proj.mask]).max())
    assert widest > pd.ROW_WIDTH and proj.targets.numel() < 0.8 * (n_pre + 1) * widest


def test_narrow_rows_give_the_spikes_of_rows_as_wide_as_the_widest_neuron(monkeypatch, small):
    monkeypatch.setattr(pd, "ROW_WIDTH", 10**9)
    wide = pd.microcircuit(scale=0.02, k_scale=0.05, seed=4)
    assert wide.projections["synapses"].first_row is None
    first, second = blocks(small), blocks(wide)
    assert first.keys() == second.keys()
    for pair, arrays in first.items():
        assert all(torch.equal(a, b) for a, b in zip(arrays, second[pair])), pair
    runs = []
    for net in (small, wide):
        torch.manual_seed(0)
        runs.append(sf.simulate(net, pd.initial_state(net, seed=2), steps=1000, dt=DT, record=("cortex.spikes",))[1])
    assert int(runs[0]["cortex.spikes"].sum()) > 100
    assert torch.equal(runs[0]["cortex.spikes"], runs[1]["cortex.spikes"])


def test_large_blocks_are_drawn_in_pieces_with_the_same_synapses(monkeypatch, small):
    """Blocks above PIECE synapses are drawn piece by piece: the draws are keyed by target and synapse,
    so every synapse, weight and delay is the one drawn in one piece; a rank's share still equals the
    partition of the whole network."""
    monkeypatch.setattr(pd, "PIECE", 1000)
    pieced = pd.microcircuit(scale=0.02, k_scale=0.05, seed=4)
    before, after = blocks(small), blocks(pieced)
    assert before.keys() == after.keys() and max(len(arrays[0]) for arrays in before.values()) > 3000
    for pair, arrays in before.items():
        assert all(torch.equal(a, b) for a, b in zip(arrays, after[pair])), pair
    share = pd.microcircuit(scale=0.02, k_scale=0.05, seed=4, share=(1, 2))
    cut = sf.partition(pieced, 1, 2)
    for name, proj in cut.projections.items():
        assert torch.equal(proj.targets, share.projections[name].targets)
        assert torch.equal(proj.weights, share.projections[name].weights)


@pytest.mark.parametrize("world", [2, 3])
def test_a_share_draws_the_synapses_of_its_own_neurons_only(monkeypatch, world):
    """Every source a share draws is one of a synapse onto the rank's neurons (round-robin over the
    cortex's numbering), and the synapses drawn add up to the share's: no rank draws the whole network."""
    drawn = []
    keyed_sources = pd.connectivity.keyed_sources

    def recording(seed, targets, counts, n_pre):
        drawn.append((seed % 100 // 8, targets.clone(), int(counts.sum())))
        return keyed_sources(seed, targets, counts, n_pre)

    monkeypatch.setattr(pd.connectivity, "keyed_sources", recording)
    share = pd.microcircuit(scale=0.02, k_scale=0.05, seed=4, share=(1, world))
    starts = [0] + torch.tensor([round(n * 0.02) for n in pd.FULL_SIZES]).cumsum(0).tolist()
    assert drawn and all(bool(((targets + starts[t]) % world == 1).all()) for t, targets, _ in drawn)
    synapses = int(share.projections["synapses"].mask.sum())
    assert sum(count for _, _, count in drawn) == 2 * synapses  # two passes: sizes, then the synapses


def test_the_keyed_draws_of_torch_ops_build_the_network_of_the_kernel_library(small):
    """Without the C++ ops (``SAPICORE_KERNELS=0``, no compiler) the keyed draws and the ordering by
    source fall back to torch ops: the same synapses, weights and delays."""
    from sapicore.functional.propagation import kernels

    with kernels.disabled():
        fallback = pd.microcircuit(scale=0.02, k_scale=0.05, seed=4)
    first, second = blocks(small), blocks(fallback)
    assert first.keys() == second.keys()
    for pair, arrays in first.items():
        assert all(torch.equal(a, b) for a, b in zip(arrays, second[pair])), pair


def test_each_pair_of_populations_gets_its_fixed_total_number_with_multapses(small):
    sizes = [size for _, size in small.populations["cortex"].parts]
    expected = torch.round(pd.synapse_counts() * 0.02 * 0.05).to(torch.int64)
    found = blocks(small)
    for target in range(8):
        for source in range(8):
            count = int(found[source, target][0].numel()) if (source, target) in found else 0
            assert count == int(expected[target, source])
    pre, post, _, _ = found[2, 0]  # L4E -> L2/3E
    pairs = pre * sizes[0] + post
    repeated = 1.0 - torch.unique(pairs).numel() / pairs.numel()
    lam = pairs.numel() / (sizes[2] * sizes[0])  # Poisson number of synapses per pair
    assert repeated == pytest.approx(1.0 - (1.0 - math.exp(-lam)) / lam, abs=0.01)  # multapses as drawn
    external = small.projections["external"]  # one Poisson background source per neuron, K_ext trains each
    assert torch.equal(external.targets[:-1, 0].long(), torch.arange(sum(sizes)))
    trains = small.populations["background"].model.trains
    assert trains[0] == round(1600 * 0.05) and trains[-1] == round(2100 * 0.05)  # L2/3E first, L6I last


def test_weights_and_delays_follow_their_normal_distributions(small):
    found = blocks(small)
    charge = 0.5 * (1.0 - math.exp(-DT / 0.5)) / DT
    psc = pd.psc_per_psp(250.0, 10.0, 0.5) * 0.15 / math.sqrt(0.05) * charge / 1000.0  # nA
    assert torch.allclose(small.projections["external"].weights[:-1, 0], torch.tensor(psc))
    for (source, target), (_, _, weights, delays) in found.items():
        mean = psc * (-4.0 if source % 2 else 1.0) * (2.0 if (source, target) == (2, 0) else 1.0)
        assert abs(weights.mean().item() - mean) < 4 * 0.1 * abs(mean) / math.sqrt(weights.numel())
        assert bool((weights * mean > 0).all())  # signs kept
        if weights.numel() > 2000:
            assert weights.std().item() / abs(mean) == pytest.approx(0.1, abs=0.01)
            delay = 1.5 if source % 2 == 0 else 0.75
            drawn = (delays.double() + 1) * DT  # Sapicore adds one step to every delay
            assert drawn.min().item() == pytest.approx(DT)  # clipped below at dt
            clipped = torch.distributions.Normal(delay, delay / 2).cdf(torch.tensor(DT * 1.5)).item()
            spread = 5 * math.sqrt(clipped * (1 - clipped) / drawn.numel())  # five standard errors
            assert (drawn <= DT + 1e-9).double().mean().item() == pytest.approx(clipped, abs=spread)
            assert drawn.mean().item() == pytest.approx(delay, rel=0.06)


def test_the_microcircuit_command_writes_rates_beside_the_reference_within_a_band(tmp_path):
    """At 5% of the neurons and 10% of the in-degrees, over 0.4 s after 0.2 s, each population's
    rate lies within a factor 2 of the full-scale reference (the DC compensation keeps them there)."""
    out = tmp_path / "mc"
    overrides = ["builder.scale=0.05", "builder.k_scale=0.1", "simulation.discard=200"]
    argv = ["run", "microcircuit", "--out", str(out), "--duration", "600", "--no-progress"]
    assert main(argv + [item for pair in zip(["--set"] * 3, overrides) for item in pair]) == 0
    summary = json.loads((out / "summary.json").read_text())
    references = summary["reference_rates_hz"]
    assert list(references) == [
        "NEST example 2016 (NEST 2.10)",
        "NEST example 2020 (NEST 3.0-3.3, 12 MPI processes)",
        "NEST example 2022 (NEST 3.4 and later, 4 threads)",
    ]
    assert references["NEST example 2022 (NEST 3.4 and later, 4 threads)"] == dict(zip(pd.POPULATIONS, pd.NEST34_RATES))
    assert summary["notes"] == [pd.DOWNSCALED_NOTE]  # a downscaled network says what to expect
    for name, reference in references["NEST example 2016 (NEST 2.10)"].items():
        assert 0.5 * reference < summary["mean_rate_hz"][name] < 2.0 * reference, name
    assert summary["mean_rate_hz"]["L5E"] > 4 * summary["mean_rate_hz"]["L23E"]  # the layers' order
    assert (out / "raster.png").exists() and (out / "rates.png").exists() and summary["discarded_ms"] == 200.0
    assert "scale: 0.05" in (out / "spec.yaml").read_text()  # the spec as run, overrides applied


def test_builder_arguments_are_checked(capsys):
    with pytest.raises(ValueError, match="scale must be a number in \\(0, 1\\], got 2"):
        pd.microcircuit(scale=2)
    with pytest.raises(ValueError, match="background must be 'poisson', 'keyed' or 'dc', got 'noise'"):
        pd.microcircuit(scale=0.01, background="noise")
    assert main(["run", "microcircuit", "--set", "builder.scale=-1", "--out", "/tmp/never-written"]) == 2
    assert "builder.scale: expected a number > 0, got -1" in capsys.readouterr().err
    assert main(["run", "microcircuit", "--set", "builder.size=3", "--out", "/tmp/never-written"]) == 2
    assert "builder.size: unknown key" in capsys.readouterr().err
    assert main(["run", "microcircuit", "--set", "nokey", "--out", "/tmp/never-written"]) == 2
    assert "--set nokey: expected KEY=VALUE" in capsys.readouterr().err


def test_the_dc_background_gives_a_network_without_poisson_sources():
    net = pd.microcircuit(scale=0.01, background="dc")
    assert set(net.populations) == {"cortex"} and set(net.projections) == {"synapses"}
    assert [name for name, _ in net.populations["cortex"].parts] == list(pd.POPULATIONS)
    assert isinstance(net.populations["cortex"].model, sf.LIF) and bool((net.drive["cortex"] > 0).all())
