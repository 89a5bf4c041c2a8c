"""sapicore.pynn, the PyNN backend: analytic results, NEST's timing, one run equal to split runs and
to the functional network it builds, plasticity against its formulas, Neo files, bad input.
PyNN's own system scenarios run with benchmarks/pynn_scenarios.py."""

import math

import neo
import numpy as np
import pytest
import torch
from pyNN.parameters import Sequence
from pyNN.standardmodels import receptors

import sapicore.functional as sf
import sapicore.pynn as sim


@pytest.fixture(autouse=True)
def fresh():
    sim.setup(timestep=0.1)
    yield
    sim.end()


def signal(population, name):
    return population.get_data().segments[0].filter(name=name)[0]


def spike_times(population):
    return [np.asarray(train.magnitude) for train in population.get_data().segments[0].spiketrains]


def test_constant_current_fires_at_the_lif_rate():
    cells = sim.Population(1, sim.IF_curr_exp(i_offset=1.0, tau_m=20.0, cm=1.0, tau_refrac=2.0, v_reset=-65.0))
    cells.record("spikes")
    sim.run(1000.0)
    (times,) = spike_times(cells)
    period = 2.0 + 20.0 * math.log(20.0 / 5.0)  # t_ref + tau ln((r I + v_rest - v_reset) / (r I + v_rest - v_thresh))
    intervals = np.diff(times)
    assert intervals.min() >= period - 1e-6 and intervals.max() <= period + 0.1 + 1e-6  # crossings end a step
    lif = sf.LIF(tau_mem=20.0, v_rest=-65.0, v_reset=-65.0, v_thresh=-50.0, r_mem=20.0, t_ref=2.0)
    _, records = sf.simulate(lif, lif.init_state(1), inputs=1.0, dt=0.1, steps=10000, record=("spikes",))
    core = (torch.nonzero(records["spikes"][:, 0])[:, 0] + 1).double().numpy() * 0.1
    assert np.allclose(times, core)  # the backend is the core's LIF, parameters translated


@pytest.mark.parametrize("celltype", [sim.IF_curr_exp, sim.IF_cond_exp, sim.IF_curr_alpha, sim.IF_cond_alpha])
def test_a_spike_moves_v_in_the_step_after_its_arrival(celltype):
    """NEST's timing: a spike at 10 ms with a 1.5 ms delay jumps the synapse at 11.5 ms, so v first
    moves in the sample at 11.6 ms."""
    source = sim.Population(1, sim.SpikeSourceArray(spike_times=[10.0]))
    cells = sim.Population(1, celltype())
    sim.Projection(source, cells, sim.AllToAllConnector(), sim.StaticSynapse(weight=0.5, delay=1.5))
    cells.record("v")
    sim.run(20.0)
    v = signal(cells, "v").magnitude[:, 0]
    assert v.shape == (201,) and np.all(v[:116] == -65.0) and v[117] > -65.0


def test_delta_synapses_jump_v_by_the_weight_at_the_arrival_time():
    source = sim.Population(1, sim.SpikeSourceArray(spike_times=[10.0]))
    cells = sim.Population(1, sim.IF_curr_delta(tau_m=20.0, cm=1.0))
    sim.Projection(source, cells, sim.AllToAllConnector(), sim.StaticSynapse(weight=2.0, delay=1.0))
    cells.record("v")
    sim.run(15.0)
    v = signal(cells, "v").magnitude[:, 0]
    assert np.all(v[:110] == -65.0)
    assert v[110] == pytest.approx(-63.0, abs=1e-4)  # at 11.0 ms = 10 + 1, as NEST's iaf_psc_delta
    assert v[120] == pytest.approx(-65.0 + 2.0 * math.exp(-1.0 / 20.0), abs=1e-4)


def small_network(stdp=True):
    inputs = sim.Population(20, sim.SpikeSourcePoisson(rate=80.0), label="inputs")
    cells = sim.Population(10, sim.IF_cond_exp(tau_refrac=2.0), label="cells")
    cells.initialize(v=sim.RandomDistribution("uniform", (-65.0, -55.0), rng=sim.NumpyRNG(seed=1)))
    rule = sim.STDPMechanism(
        timing_dependence=sim.SpikePairRule(tau_plus=20.0, tau_minus=20.0, A_plus=0.05, A_minus=0.06),
        weight_dependence=sim.AdditiveWeightDependence(w_min=0.0, w_max=0.02),
        weight=0.01,
        delay=1.0,
    )
    plastic = sim.Projection(
        inputs, cells, sim.FixedProbabilityConnector(0.5, rng=sim.NumpyRNG(seed=2)), rule if stdp else None
    )
    depressing = sim.TsodyksMarkramSynapse(U=0.4, tau_rec=200.0, tau_facil=50.0, weight=0.005, delay=0.5)
    sim.Projection(cells, cells, sim.FixedProbabilityConnector(0.3, rng=sim.NumpyRNG(seed=3)), depressing)
    sim.DCSource(amplitude=0.2, start=20.0, stop=70.0).inject_into(cells[2:5])
    cells.record(["spikes", "v", "gsyn_exc"])
    return cells, plastic


def results(cells, plastic):
    data = cells.get_data().segments[-1]
    return (
        [np.asarray(t) for t in data.spiketrains],
        np.asarray(data.filter(name="v")[0]),
        np.asarray(data.filter(name="gsyn_exc")[0]),
        plastic.get("weight", format="array"),
    )


def test_split_runs_equal_one_run_and_reset_repeats_it():
    sim.setup(timestep=0.1, rng_seed=7)
    cells, plastic = small_network()
    sim.run(100.0)
    whole = results(cells, plastic)
    assert sum(len(t) for t in whole[0]) > 10  # the network is active
    assert not np.allclose(whole[3][~np.isnan(whole[3])], 0.01)  # and learns
    sim.reset()
    for _ in range(4):
        sim.run(25.0)
    split = results(cells, plastic)
    for a, b in zip(whole, split):
        if isinstance(a, list):
            assert all(np.array_equal(x, y) for x, y in zip(a, b))
        else:
            np.testing.assert_array_equal(a, b)
    assert len(cells.get_data().segments) == 2


def test_the_network_it_builds_runs_the_same_in_the_functional_core():
    cells = sim.Population(30, sim.IF_curr_exp(i_offset=0.8, tau_refrac=2.0))
    cells.initialize(v=np.linspace(-65.0, -51.0, 30))
    sim.Projection(
        cells,
        cells,
        sim.FixedProbabilityConnector(0.2, rng=sim.NumpyRNG(seed=4)),
        sim.StaticSynapse(weight=0.3, delay=sim.RandomDistribution("uniform", (0.5, 3.0), rng=sim.NumpyRNG(seed=5))),
    )
    network, state, names = sim.to_network()
    cells.record("spikes")
    sim.run(200.0)
    _, records = sf.simulate(network, state, dt=0.1, steps=2000, record=(f"{names[cells.label]}.spikes",))
    core = records[f"{names[cells.label]}.spikes"]
    step, neuron = torch.nonzero(core, as_tuple=True)
    for k, times in enumerate(spike_times(cells)):
        np.testing.assert_allclose(times, (step[neuron == k] + 1).double().numpy() * 0.1, atol=1e-9)
    assert core.sum() > 30


def test_stdp_changes_a_weight_by_the_pair_rule():
    """One pre spike, then one post spike Δt later: additive Δw = w_max A_plus exp(-Δt/tau_plus)."""
    pre = sim.Population(1, sim.SpikeSourceArray(spike_times=[10.0]))
    kick = sim.Population(1, sim.SpikeSourceArray(spike_times=[14.0]))
    post = sim.Population(1, sim.IF_curr_exp(tau_refrac=50.0))
    rule = sim.STDPMechanism(
        timing_dependence=sim.SpikePairRule(tau_plus=16.0, tau_minus=33.0, A_plus=0.1, A_minus=0.12),
        weight_dependence=sim.AdditiveWeightDependence(w_min=0.0, w_max=0.5),
        weight=0.25,
        delay=1.0,
    )
    prj = sim.Projection(pre, post, sim.AllToAllConnector(), rule)
    sim.Projection(kick, post, sim.AllToAllConnector(), sim.StaticSynapse(weight=50.0, delay=0.1))
    post.record("spikes")
    sim.run(60.0)
    ((t_post,),) = spike_times(post)
    expected = 0.25 + 0.5 * 0.1 * math.exp(-(t_post - 10.0) / 16.0)
    assert prj.get("weight", format="list", with_address=False) == pytest.approx([expected], abs=1e-6)


def test_tsodyks_markram_jumps_follow_the_recursion():
    times = np.arange(10.0, 200.0, 20.0)
    source = sim.Population(1, sim.SpikeSourceArray(spike_times=times))
    cells = sim.Population(1, sim.IF_cond_exp(tau_syn_E=3.0, v_thresh=0.0))
    synapse = sim.TsodyksMarkramSynapse(U=0.2, tau_rec=150.0, tau_facil=300.0, weight=0.01, delay=1.0)
    sim.Projection(source, cells, sim.AllToAllConnector(), synapse)
    cells.record("gsyn_exc")
    sim.run(220.0)
    g = signal(cells, "gsyn_exc").magnitude[:, 0]
    arrivals = np.rint((times + 1.0) / 0.1).astype(int)  # NEST's convention: the jump shows at t + delay
    jumps = g[arrivals] - g[arrivals - 1] * math.exp(-0.1 / 3.0)
    u, x, last, expected = 0.0, 1.0, None, []
    for t in times:  # NEST's tsodyks2_synapse
        if last is not None:
            x = 1.0 + (x - 1.0) * math.exp(-(t - last) / 150.0)
            u = u * math.exp(-(t - last) / 300.0)
        u = u + 0.2 * (1.0 - u)
        expected.append(0.01 * u * x)
        x -= u * x
        last = t
    np.testing.assert_allclose(jumps, expected, rtol=1e-4)


def test_current_sources_and_their_records():
    cells = sim.Population(4, sim.IF_curr_exp(v_thresh=0.0))
    sources = [
        sim.DCSource(amplitude=0.5, start=10.0, stop=20.0),
        sim.StepCurrentSource(times=[5.0, 15.0], amplitudes=[0.2, -0.1]),
        sim.ACSource(amplitude=0.3, offset=0.1, frequency=50.0, start=0.0, stop=30.0),
        sim.NoisyCurrentSource(mean=0.2, stdev=0.1, start=5.0, stop=25.0, dt=1.0, rng=sim.NumpyRNG(seed=9)),
    ]
    for k, source in enumerate(sources):
        source.inject_into(cells[k : k + 1])
        source.record()
    cells.record("v")
    sim.run(15.0)
    sim.run(15.0)
    t = np.arange(301) * 0.1
    dc, step, ac, noise = (np.asarray(s.get_data()).ravel() for s in sources)
    np.testing.assert_allclose(dc, np.where((t >= 10.0 - 1e-9) & (t < 20.0 - 1e-9), 0.5, 0.0))
    np.testing.assert_allclose(step, np.where(t < 5.0 - 1e-9, 0.0, np.where(t < 15.0 - 1e-9, 0.2, -0.1)))
    np.testing.assert_allclose(ac[:300], 0.1 + 0.3 * np.sin(2 * np.pi * 50.0 * t[:300] / 1000.0), atol=1e-12)
    inside = noise[50:250].reshape(20, 10)
    assert np.all(inside == inside[:, :1]) and len(np.unique(inside[:, 0])) == 20  # one draw per ms
    assert np.all(noise[:50] == 0.0) and np.all(noise[250:] == 0.0)
    v = signal(cells, "v").magnitude
    assert np.all(v[:101, 0] == -65.0) and v[101, 0] > -65.0  # the DC acts from the step starting at 10 ms


def test_data_written_to_nix_read_back(tmp_path):
    source = sim.Population(3, sim.SpikeSourceArray(spike_times=[[1.0, 4.0], [2.5], []]), label="source")
    source.record("spikes")
    sim.run(10.0)
    path = tmp_path / "spikes.nix"
    source.write_data(str(path))
    io = neo.io.NixIO(str(path), mode="ro")
    try:
        block = io.read_block()
        trains = [np.asarray(train.magnitude) for train in block.segments[0].spiketrains]
    finally:
        io.close()
    assert [list(t) for t in trains] == [[1.0, 4.0], [2.5], []]


def test_spike_sources_can_change_between_runs_and_views_initialize_mid_run():
    sources = sim.Population(2, sim.SpikeSourceArray(spike_times=[]))
    cells = sim.Population(3, sim.IF_curr_exp())
    sources.record("spikes")
    cells.record("v")
    sim.run(10.0)
    sources.set(spike_times=[Sequence([12.0, 15.0]), Sequence([17.0])])
    cells[1:2].initialize(v=-58.0)
    sim.run(10.0)
    assert [list(t) for t in spike_times(sources)] == [[12.0, 15.0], [17.0]]
    v = signal(cells, "v").magnitude
    assert v[100, 1] == -65.0 and -65.0 < v[101, 1] < -58.0 and v[101, 0] == -65.0


def test_multapses_and_lists_round_trip():
    pre = sim.Population(3, sim.SpikeSourceArray(spike_times=[5.0]))
    post = sim.Population(2, sim.IF_curr_exp())
    pairs = [(0, 1, 0.5, 1.0), (0, 1, 0.25, 2.0), (2, 0, 1.0, 0.3)]
    prj = sim.Projection(pre, post, sim.FromListConnector(pairs, column_names=["weight", "delay"]))
    assert len(prj) == 3 and prj.size() == 3
    assert sorted(prj.get(["weight", "delay"], format="list")) == sorted(
        [(0.0, 1.0, 0.5, 1.0), (0.0, 1.0, 0.25, 2.0), (2.0, 0.0, 1.0, 0.3)]
    )
    weights = prj.get("weight", format="array", multiple_synapses="sum")
    assert weights[0, 1] == 0.75 and weights[2, 0] == 1.0 and np.isnan(weights[1, 0])
    prj.set(weight=0.1)
    assert prj.get("weight", format="list", with_address=False) == [0.1, 0.1, 0.1]


@pytest.mark.slow
def test_compiled_runs_equal_the_reference_loop(tmp_path, monkeypatch):
    """A compiled run equals the reference loop and compiles one package: the chunk returns its state
    in the layout it came in (a leaf that the chunk made as a broadcast view gave the next chunk
    another layout, and a second compile of 30 s)."""
    sim.setup(timestep=0.1, rng_seed=3)
    cells, plastic = small_network(stdp=False)
    sim.run(50.0)
    eager = results(cells, plastic)
    monkeypatch.setenv("SAPICORE_COMPILE_CACHE", str(tmp_path))
    sim.setup(timestep=0.1, rng_seed=3, fast=True)
    cells, plastic = small_network(stdp=False)
    sim.run(50.0)
    fast = results(cells, plastic)
    assert all(np.array_equal(a, b) for a, b in zip(eager[0], fast[0]))
    np.testing.assert_allclose(eager[1], fast[1], atol=1e-4)
    assert len([folder for folder in tmp_path.iterdir() if folder.is_dir()]) == 1


COMPOSED = {
    "IF_curr_exp": (
        lambda: sim.IF_curr_exp(tau_m=10.0, v_rest=-60.0, tau_syn_E=1.0, tau_syn_I=2.0),
        lambda: sim.PointNeuron(
            sim.LIF(tau_m=10.0, v_rest=-60.0),
            excitatory=sim.CurrExpPostSynapticResponse(tau_syn=1.0),
            inhibitory=sim.CurrExpPostSynapticResponse(tau_syn=2.0),
        ),
        ("isyn", 0.5, -0.2),
    ),
    "IF_cond_exp": (
        lambda: sim.IF_cond_exp(tau_syn_E=1.0, tau_syn_I=2.0, e_rev_I=-75.0),
        lambda: sim.PointNeuron(
            sim.LIF(),
            excitatory=sim.ExpPSR(tau_syn=1.0, e_syn=0.0),
            inhibitory=sim.CondExpPostSynapticResponse(tau_syn=2.0, e_syn=-75.0),
        ),
        ("gsyn", 0.05, 0.1),
    ),
    "EIF_cond_alpha_isfa_ista": (
        lambda: sim.EIF_cond_alpha_isfa_ista(tau_m=10.0, i_offset=0.5, tau_syn_E=1.5),
        lambda: sim.PointNeuron(
            sim.AdExp(tau_m=10.0, i_offset=0.5),
            excitatory=sim.AlphaPSR(tau_syn=1.5, e_syn=0.0),
            inhibitory=sim.CondAlphaPostSynapticResponse(tau_syn=5.0, e_syn=-80.0),
        ),
        ("gsyn", 0.05, 0.1),
    ),
}


@pytest.mark.parametrize("monolith", sorted(COMPOSED))
def test_composed_cells_equal_their_monolithic_twins(monolith):
    """PyNN's monolith_vs_composed example as a test: one population of each, fed by the same
    projections (through an Assembly), give the same v and spikes; the composed cell's receptors
    record their own synaptic variables."""
    make_monolith, make_composed, (variable, w_exc, w_inh) = COMPOSED[monolith]
    one, two = sim.Population(1, make_monolith()), sim.Population(1, make_composed())
    both = one + two
    inputs = sim.Population(2, sim.SpikeSourceArray(spike_times=[Sequence([30.0, 50.0]), Sequence([120.0])]))
    sim.Projection(inputs[0:1], both, sim.AllToAllConnector(), sim.StaticSynapse(weight=w_exc, delay=1.5),
                   receptor_type="excitatory")  # fmt: skip
    sim.Projection(inputs[1:2], both, sim.AllToAllConnector(), sim.StaticSynapse(weight=w_inh, delay=1.5),
                   receptor_type="inhibitory")  # fmt: skip
    both.record(["v", "spikes"])
    two.record([f"excitatory.{variable}", f"inhibitory.{variable}"])
    sim.run(200.0)
    v = signal(both, "v").magnitude
    assert np.array_equal(v[:, 0], v[:, 1]) and np.ptp(v[:, 0]) > 1.0
    assert [t.tolist() for t in spike_times(one)] == [t.tolist() for t in spike_times(two)]
    exc = signal(two, f"excitatory.{variable}")
    assert str(exc.units.dimensionality) == ("nA" if variable == "isyn" else "uS")
    assert exc.magnitude[:, 0].max() == pytest.approx(w_exc, rel=0.02)  # peaks at the weight
    assert not np.any(signal(two, f"inhibitory.{variable}").magnitude[:1200])  # nothing before 121.5 ms


def test_composed_receptors_have_their_own_time_courses_and_parameters():
    """PyNN's test_composed_neuron_model_homogeneous_receptors with the peaks checked: an alpha
    conductance peaks at the weight tau_syn after the arrival (spike + delay), a beta conductance at
    ``tau_r tau_d / (tau_d - tau_r) ln(tau_d / tau_r)``; receptors' parameters are read and set by
    ``"<receptor>.<name>"`` or by a dict per receptor."""
    celltype = sim.PointNeuron(
        sim.AdExp(tau_m=10.0, v_rest=-60.0),
        AMPA=sim.AlphaPSR(tau_syn=1.0, e_syn=0.0),
        NMDA=sim.CondBetaPostSynapticResponse(tau_rise=2.0, tau_decay=20.0, e_syn=0.0),
        GABAA=sim.AlphaPSR(tau_syn=1.5, e_syn=-70.0),
    )
    cells = sim.Population(1, celltype, initial_values={"v": -60.0})
    assert cells.get("GABAA.e_syn") == -70.0 and cells.get(["tau_m", "NMDA.tau_rise"]) == [10.0, 2.0]
    assert celltype.receptor_types == ["AMPA", "GABAA", "NMDA"] and celltype.conductance_based
    inputs = sim.Population(3, sim.SpikeSourceArray(spike_times=[Sequence([30.0]), Sequence([60.0]), Sequence([90.0])]))
    for k, (receptor, weight) in enumerate([("AMPA", 0.01), ("GABAA", 0.1), ("NMDA", 0.005)]):
        sim.Projection(inputs[k : k + 1], cells, sim.OneToOneConnector(), sim.StaticSynapse(weight=weight, delay=1.5),
                       receptor_type=receptor)  # fmt: skip
    cells.record(["v", "AMPA.gsyn", "NMDA.gsyn", "GABAA.gsyn"])
    sim.run(200.0)
    t_beta = 2.0 * 20.0 / 18.0 * math.log(10.0)
    for receptor, weight, peak_time in [("AMPA", 0.01, 32.5), ("GABAA", 0.1, 63.0), ("NMDA", 0.005, 91.5 + t_beta)]:
        g = signal(cells, f"{receptor}.gsyn").magnitude[:, 0]
        assert g.max() == pytest.approx(weight, rel=1e-3) and abs(g.argmax() * 0.1 - peak_time) <= 0.1 + 1e-9
    v = signal(cells, "v").magnitude[:, 0]
    assert v[600:900].min() < -65.0 and v[900:].max() > -56.0  # GABAA pulls v towards -70 mV, NMDA up towards 0 mV
    cells.set(**{"GABAA.e_syn": -75.0})
    cells.set(NMDA={"tau_rise": 5.0})
    assert cells.get(["GABAA.e_syn", "NMDA.tau_rise", "AMPA.tau_syn"]) == [-75.0, 5.0, 1.0]
    sim.run(100.0)
    assert signal(cells, "NMDA.gsyn").magnitude[2000:, 0].max() < 0.005  # the old train decays, none new
    cells.set(NMDA={"tau_rise": 20.0})  # equal times: the alpha function, the beta function's limit
    with pytest.raises(ValueError, match="changed form between runs"):
        sim.run(10.0)
    sim.reset()
    sim.run(200.0)
    g = cells.get_data().segments[-1].filter(name="NMDA.gsyn")[0].magnitude[:, 0]
    assert g.max() == pytest.approx(0.005, rel=1e-3) and abs(g.argmax() * 0.1 - 111.5) <= 0.1 + 1e-9


def _bad_cases():
    def heterogeneous_stdp():
        pre, post = sim.Population(2, sim.SpikeSourcePoisson()), sim.Population(2, sim.IF_curr_exp())
        rule = sim.STDPMechanism(
            timing_dependence=sim.SpikePairRule(tau_plus=sim.RandomDistribution("uniform", (10.0, 20.0))),
            weight_dependence=sim.AdditiveWeightDependence(),
        )
        sim.Projection(pre, post, sim.AllToAllConnector(), rule)
        sim.run(1.0)

    def per_synapse_short_term():
        pre, post = sim.Population(1, sim.SpikeSourcePoisson()), sim.Population(2, sim.IF_curr_exp())
        prj = sim.Projection(pre, post, sim.AllToAllConnector(), sim.TsodyksMarkramSynapse())
        prj.set(U=np.array([[0.1, 0.9]]))
        sim.run(1.0)

    def composed_cell(**receptors):
        return sim.Population(1, sim.PointNeuron(sim.LIF(), **receptors))

    def unknown_cell_type():
        import pyNN.mock

        sim.Population(1, pyNN.mock.IF_curr_exp())

    return {
        "spike times out of order": (
            lambda: sim.Population(1, sim.SpikeSourceArray(spike_times=[3.0, 1.0])),
            "increasing order",
        ),
        "a NaN parameter": (lambda: sim.Population(2, sim.IF_curr_exp(tau_m=math.nan)), "tau_m must be finite"),
        "a NaN initial value": (lambda: sim.Population(2, sim.IF_curr_exp()).initialize(v=math.nan), "finite"),
        "an unknown initial variable": (lambda: sim.Population(2, sim.IF_curr_exp()).initialize(w=1.0), "w"),
        "another backend's cell type": (unknown_cell_type, "no model for IF_curr_exp"),
        "step current times not increasing": (
            lambda: sim.StepCurrentSource(times=[2.0, 1.0], amplitudes=[1.0, 2.0]),
            "increasing",
        ),
        "step current amplitudes missing": (
            lambda: sim.StepCurrentSource(times=[1.0, 2.0], amplitudes=[1.0]),
            "one amplitude per time",
        ),
        "noise dt not a multiple of the step": (
            lambda: (
                sim.NoisyCurrentSource(dt=0.25).inject_into(sim.Population(1, sim.IF_curr_exp())),
                sim.run(1.0),
            ),
            "multiple of the time step",
        ),
        "a sampling interval off the step": (
            lambda: sim.Population(1, sim.IF_curr_exp()).record("v", sampling_interval=0.25),
            "whole multiple",
        ),
        "STDP parameters that differ between synapses": (heterogeneous_stdp, "one value of tau_plus"),
        "short-term parameters that differ within a source": (per_synapse_short_term, "one U per source"),
        "a receptor type the cell lacks": (
            lambda: sim.Projection(
                sim.Population(1, sim.SpikeSourcePoisson()),
                sim.Population(1, sim.IF_curr_exp()),
                sim.AllToAllConnector(),
                receptor_type="NMDA",
            ),
            "NMDA",
        ),
        "a composed cell around a standard cell": (
            lambda: sim.PointNeuron(sim.IF_curr_exp(), AMPA=sim.AlphaPSR()),
            "takes its LIF\\(...\\) or AdExp\\(...\\) as the neuron",
        ),
        "a composed cell with another backend's receptor": (
            lambda: composed_cell(AMPA=receptors.CondExpPostSynapticResponse()),
            "receptor type 'AMPA'",
        ),
        "a neuron component as a cell type": (lambda: sim.Population(1, sim.LIF()), "use PointNeuron\\(LIF"),
        "an unknown receptor parameter": (
            lambda: composed_cell(AMPA=sim.AlphaPSR()).get("AMPA.tau_rise"),
            "AMPA.tau_rise",
        ),
        "an unknown receptor parameter set": (
            lambda: composed_cell(AMPA=sim.AlphaPSR()).set(AMPA={"tau": 2.0}),
            "AMPA.tau",
        ),
        "a NaN receptor parameter": (
            lambda: composed_cell(AMPA=sim.AlphaPSR(tau_syn=math.nan)),
            "AMPA.tau_syn must be finite",
        ),
        "a composed cell mixing current and conductance receptors": (
            lambda: sim.PointNeuron(sim.LIF(), AMPA=sim.CurrExpPostSynapticResponse(), GABAA=sim.ExpPSR()),
            "mix current- and conductance-based",
        ),
        "a projection onto a cell without receptors": (
            lambda: sim.Projection(
                sim.Population(1, sim.SpikeSourcePoisson()), composed_cell(), sim.AllToAllConnector()
            ),  # fmt: skip
            "no receptor types",
        ),
        "a receptor the composed cell lacks": (
            lambda: sim.Projection(
                sim.Population(1, sim.SpikeSourcePoisson()),
                composed_cell(AMPA=sim.AlphaPSR()),
                sim.AllToAllConnector(),
                receptor_type="GABAA",
            ),
            "GABAA",
        ),
        "a non-positive time step": (lambda: sim.setup(timestep=0.0), "timestep must be a positive"),
        "a dtype that is not floating": (lambda: sim.setup(dtype=torch.int32), "dtype must be"),
        "a negative rng_seed": (lambda: sim.setup(rng_seed=-1), "rng_seed must be an int"),
        "an infinite weight": (
            lambda: sim.Projection(
                sim.Population(1, sim.SpikeSourcePoisson()),
                sim.Population(1, sim.IF_curr_exp()),
                sim.AllToAllConnector(),
                sim.StaticSynapse(weight=math.inf),
            ),  # fmt: skip
            "weight must be finite",
        ),
        "a negative delay set on one connection": (
            lambda: setattr(
                sim.Projection(
                    sim.Population(1, sim.SpikeSourcePoisson()),
                    sim.Population(1, sim.IF_curr_exp()),
                    sim.AllToAllConnector(),
                )[0],  # fmt: skip
                "delay",
                -1.0,
            ),
            "delays must be >= 0",
        ),
    }


BAD = _bad_cases()


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_refused_naming_the_culprit(case):
    make, message = BAD[case]
    with pytest.raises(Exception, match=message):
        make()


def test_other_backends_settings_are_ignored_with_a_warning():
    with pytest.warns(UserWarning, match="ignores the setup\\(\\) parameters \\['t_flush'\\]"):
        sim.setup(timestep=0.1, t_flush=10.0)


def test_reset_restores_the_weights_of_the_first_run_and_refuses_initial_conductances():
    source = sim.Population(1, sim.SpikeSourceArray(spike_times=[1.0]))
    cells = sim.Population(1, sim.IF_curr_exp())
    prj = sim.Projection(source, cells, sim.AllToAllConnector(), sim.StaticSynapse(weight=0.1))
    prj.set(weight=0.3)  # before the first run: kept by reset, as pyNN.brian2 does
    sim.run(5.0)
    prj.set(weight=0.7)
    sim.run(5.0)
    sim.reset()
    assert prj.get("weight", format="list", with_address=False) == [0.3]
    sim.setup(timestep=0.1)
    cells = sim.Population(1, sim.IF_cond_exp())
    cells.initialize(gsyn_exc=0.01)
    with pytest.raises(NotImplementedError, match="gsyn_exc"):
        sim.run(1.0)


def test_an_ac_source_counts_its_phase_from_its_start():
    cells = sim.Population(1, sim.IF_curr_exp(v_thresh=0.0))
    source = sim.ACSource(amplitude=0.4, offset=0.0, frequency=40.0, phase=30.0, start=12.5, stop=40.0)
    source.inject_into(cells)
    source.record()
    sim.run(50.0)
    t = np.arange(501) * 0.1
    on = (t >= 12.5 - 1e-9) & (t < 40.0 - 1e-9)
    expected = np.where(on, 0.4 * np.sin(2 * np.pi * 40.0 * (t - 12.5) / 1000.0 + np.radians(30.0)), 0.0)
    np.testing.assert_allclose(np.asarray(source.get_data()).ravel(), expected, atol=1e-9)


@pytest.mark.parametrize("new_delay", [4.0, 1.6])
def test_spikes_in_transit_keep_their_delay_when_delays_change_between_runs(new_delay):
    source = sim.Population(1, sim.SpikeSourceArray(spike_times=[5.0, 10.0]))
    cells = sim.Population(1, sim.IF_curr_exp())
    prj = sim.Projection(source, cells, sim.AllToAllConnector(), sim.StaticSynapse(weight=0.5, delay=2.0))
    cells.record("v")
    sim.run(5.5)  # the first spike is in transit, due at 7.0 ms
    prj.set(delay=new_delay)  # the ring buffer grows or shrinks
    sim.run(14.5)
    v = signal(cells, "v").magnitude[:, 0]
    assert np.all(v[:71] == -65.0) and v[71] > -65.0  # moves in the step after 7.0 ms
    second = int(round((10.0 + new_delay) / 0.1)) + 1
    assert v[second] - v[second - 1] > 0.9 * (v[72] - v[71])  # the second spike, with the new delay


def test_shortening_delays_below_the_input_in_transit_warns_that_it_is_dropped():
    source = sim.Population(1, sim.SpikeSourceArray(spike_times=[5.0]))
    cells = sim.Population(1, sim.IF_curr_exp())
    prj = sim.Projection(source, cells, sim.AllToAllConnector(), sim.StaticSynapse(weight=0.5, delay=2.0))
    sim.run(5.5)
    prj.set(delay=0.5)
    with pytest.warns(UserWarning, match="in transit beyond its new longest delay \\(5 steps\\) is dropped"):
        sim.run(1.0)


def test_the_standard_models_listed_are_the_ones_simulated():
    assert sim.list_standard_models() == [
        "IF_curr_exp", "IF_cond_exp", "IF_curr_alpha", "IF_cond_alpha", "IF_curr_delta",
        "EIF_cond_exp_isfa_ista", "EIF_cond_alpha_isfa_ista", "HH_cond_exp", "Izhikevich",
        "PointNeuron", "SpikeSourceArray", "SpikeSourcePoisson",
    ]  # fmt: skip


def test_eif_and_hh_cells_are_the_core_models_with_pynn_units():
    eif = sim.Population(1, sim.EIF_cond_exp_isfa_ista(i_offset=1.0, tau_refrac=2.0, a=4.0, v_spike=-40.0))
    hh = sim.Population(1, sim.HH_cond_exp(i_offset=1.0))
    eif.record(["spikes", "w"])
    hh.record("spikes")
    sim.run(200.0)
    adex = sf.AdEx(c_mem=0.281, g_leak=0.281 / 9.3667, a=0.004, v_peak=-40.0, t_ref=2.0)
    _, rec = sf.simulate(adex, adex.init_state(1), inputs=1.0, dt=0.1, steps=2000, record=("spikes", "w"))
    np.testing.assert_allclose(spike_times(eif)[0], (torch.nonzero(rec["spikes"][:, 0])[:, 0] + 1).numpy() * 0.1)
    np.testing.assert_allclose(signal(eif, "w").magnitude[1:, 0], rec["w"][:, 0].numpy(), rtol=1e-6)
    traub = sf.TraubMiles()
    state = sf.replace(traub.init_state(1), m=torch.zeros(1), h=torch.ones(1), n=torch.zeros(1))  # PyNN's start
    _, rec = sf.simulate(traub, state, inputs=1.0, dt=0.1, steps=2000)
    np.testing.assert_allclose(spike_times(hh)[0], (torch.nonzero(rec["spikes"][:, 0])[:, 0] + 1).numpy() * 0.1)
    assert len(spike_times(hh)[0]) > 5


def test_one_to_one_connects_neuron_i_to_i_even_for_one_neuron():
    one = sim.Projection(sim.Population(1, sim.SpikeSourcePoisson()), sim.Population(1, sim.IF_curr_exp()),
                         sim.OneToOneConnector(), sim.StaticSynapse(weight=0.3))  # fmt: skip
    assert one.get("weight", format="list") == [(0.0, 0.0, 0.3)]
    delays = sim.RandomDistribution("uniform", (1.0, 2.0), rng=sim.NumpyRNG(seed=1))
    many = sim.Projection(sim.Population(4, sim.SpikeSourcePoisson()), sim.Population(4, sim.IF_curr_exp()),
                          sim.OneToOneConnector(), sim.StaticSynapse(weight=0.3, delay=delays))  # fmt: skip
    rows = many.get("delay", format="list")
    assert [(i, j) for i, j, _ in rows] == [(k, k) for k in range(4)] and len({d for _, _, d in rows}) == 4
    with pytest.raises(sim.errors.ConnectionError, match="groups of one size"):
        sim.Projection(sim.Population(2, sim.SpikeSourcePoisson()), sim.Population(3, sim.IF_curr_exp()),
                       sim.OneToOneConnector())  # fmt: skip


def test_a_network_runs_the_same_on_every_device(device):
    """The CPU run against the same script on ``device`` (CUDA where present): same spikes, v to
    float tolerance."""
    outcomes = []
    for where in ("cpu", device):
        sim.setup(timestep=0.1, rng_seed=11, device=where)
        cells, plastic = small_network()
        sim.run(60.0)
        outcomes.append(results(cells, plastic))
    (spikes_a, v_a, g_a, w_a), (spikes_b, v_b, g_b, w_b) = outcomes
    assert all(np.array_equal(a, b) for a, b in zip(spikes_a, spikes_b))
    np.testing.assert_allclose(v_a, v_b, atol=1e-3)
    np.testing.assert_allclose(w_a, w_b, atol=1e-6)


def test_sampled_signals_do_not_depend_on_how_a_run_is_split():
    def traces(lengths):
        sim.setup(timestep=0.1)
        source = sim.Population(1, sim.SpikeSourceArray(spike_times=[2.0, 3.3, 7.1]))
        cells = sim.Population(2, sim.IF_cond_alpha())
        sim.Projection(source, cells, sim.AllToAllConnector(), sim.StaticSynapse(weight=0.02, delay=0.4))
        cells.record(["v", "gsyn_exc"], sampling_interval=0.5)
        for length in lengths:
            sim.run(length)
        return [np.asarray(signal(cells, name)) for name in ("v", "gsyn_exc")]

    whole = traces([10.0])
    assert whole[0].shape == whole[1].shape == (21, 2) and whole[1].max() > 0
    for lengths in ([0.7, 2.3, 7.0], [5.0, 5.0], [0.1] * 100):
        for a, b in zip(whole, traces(lengths)):
            np.testing.assert_array_equal(a, b)


def test_a_source_injected_twice_into_a_cell_adds_twice():
    cells = sim.Population(2, sim.IF_curr_exp(v_thresh=0.0))
    source = sim.DCSource(amplitude=0.1)
    source.inject_into(cells[0:1])
    source.inject_into(cells)
    cells.record("v")
    sim.run(5.0)
    v = signal(cells, "v").magnitude
    np.testing.assert_allclose(v[-1, 0] + 65.0, 2 * (v[-1, 1] + 65.0), atol=1e-4)  # float32 v near -65 mV


def test_poisson_trains_differ_between_setups_without_a_seed_and_repeat_after_reset():
    def trains():
        sources = sim.Population(50, sim.SpikeSourcePoisson(rate=100.0))
        sources.record("spikes")
        sim.run(100.0)
        first = [list(t) for t in spike_times(sources)]
        sim.reset()
        sim.run(100.0)
        second = [list(np.asarray(t)) for t in sources.get_data().segments[1].spiketrains]
        assert first == second
        return first

    sim.setup(timestep=0.1)
    a = trains()
    sim.setup(timestep=0.1)
    assert trains() != a


def test_long_runs_made_in_blocks_of_input_equal_one_block(monkeypatch):
    from sapicore.pynn import engine

    outcomes = []
    for values in (engine.BLOCK_VALUES, 20 * 1000):  # 20 fed neurons: blocks of 1,000 steps
        monkeypatch.setattr(engine, "BLOCK_VALUES", values)
        sim.setup(timestep=0.1, rng_seed=5)
        cells, plastic = small_network()
        sim.run(250.0)
        outcomes.append(results(cells, plastic))
    for a, b in zip(*outcomes):
        if isinstance(a, list):
            assert all(np.array_equal(x, y) for x, y in zip(a, b))
        else:
            np.testing.assert_array_equal(a, b)
