"""The object API and the functional core are one model: module loop == step() == simulate(to_functional())."""

import pytest
import torch

import sapicore.functional as sf
from sapicore.functional import connectivity as C
from sapicore.learning import SapicoreLearning
from sapicore.learning.plasticity import HebbianLearning, STDPLearning
from sapicore.model import SapicoreModel
from sapicore.neuron.analog import RateNeuron
from sapicore.neuron.spiking import AdExNeuron, HodgkinHuxleyNeuron, IzhikevichNeuron, LIFNeuron
from sapicore.synapse.projection import AlphaSynapse, ExponentialSynapse, ProjectionSynapse

STEPS = 600


class Plastic(SapicoreModel):
    """Input LIFs -> plastic, delayed, normalised synapses -> output LIFs, trained by STDP."""

    def __init__(self, kind="sparse", normalize=12.0):
        super().__init__()
        self.inp = LIFNeuron(shape=30, tau_mem=10.0, v_rest=-65.0, v_reset=-65.0, v_thresh=-50.0, r_mem=10.0, t_ref=2.0)
        self.out = LIFNeuron(shape=8, tau_mem=10.0, v_rest=-65.0, v_reset=-65.0, v_thresh=-50.0, r_mem=10.0, t_ref=2.0)
        conn = C.fixed_probability(30, 8, 0.5, seed=4)
        delays = torch.rand(len(conn), generator=torch.Generator().manual_seed(5)) * 1.5
        self.syn = ExponentialSynapse(conn, 1.0, tau=3.0, delay=delays, kind=kind, normalize=normalize)
        self.add_neuron(None, "inp", self.inp)
        self.add_synapse(self.inp, "syn", self.syn)
        self.add_neuron(self.syn, "out", self.out)
        self.stdp = STDPLearning(a_plus=0.02, a_minus=0.021, w_max=3.0)
        self.add_learning_rule("stdp", self.stdp)

    def forward(self, drive):
        spikes = self.inp(drive)
        return self.out(self.syn(spikes, self.out.v))

    def apply_learning(self, **kwargs):
        self.stdp.apply_learning(self.inp, self.syn, self.out)


def drive():
    return 1.6 + 0.8 * torch.rand(STEPS, 30, generator=torch.Generator().manual_seed(6))


@pytest.mark.parametrize("kind", ["sparse", "dense"])
def test_module_loop_step_and_simulate_of_to_functional_learn_identical_weights(kind):
    inputs = drive()
    looped = Plastic(kind)
    spikes = []
    with torch.no_grad():
        for x in inputs:
            spikes.append(looped(x))
            looped.apply_learning()
    spikes = torch.stack(spikes)
    assert spikes.sum() > 20

    stepped = Plastic(kind)
    stepped.stdp.bind(stepped.syn)
    stepped_spikes = torch.stack([stepped.step({"inp": x})["out"] for x in inputs])

    functional = Plastic(kind)
    functional.stdp.bind(functional.syn)
    net, state = functional.to_functional()
    assert isinstance(net.projections["syn"].plasticity, sf.STDP) and net.projections["syn"].normalize == 12.0
    final, rec = sf.simulate(net, state, {"inp": inputs}, dt=0.1, record=("out.spikes", "syn.weights"))
    functional.load_functional_state(final)

    learned = looped.syn.weights
    assert (learned - Plastic(kind).syn.weights).abs().max() > 1e-3  # the weights moved
    assert torch.equal(stepped_spikes, spikes) and torch.equal(rec["out.spikes"], spikes)
    assert torch.allclose(stepped.syn.weights, learned, atol=1e-6) and torch.allclose(
        functional.syn.weights, learned, atol=1e-6
    )
    incoming = net.projections["syn"].layout().incoming_sum(learned)
    assert torch.allclose(incoming, torch.full((8,), 12.0), atol=1e-4)  # normalize honoured by the module door too


class Depressing(SapicoreModel):
    """Input LIFs -> depressing and facilitating synapses (Tsodyks-Markram) -> output LIFs."""

    def __init__(self, kind="sparse"):
        super().__init__()
        self.inp = LIFNeuron(shape=20, tau_mem=10.0, v_rest=-65.0, v_reset=-65.0, v_thresh=-50.0, r_mem=10.0, t_ref=2.0)
        self.out = LIFNeuron(shape=6, tau_mem=10.0, v_rest=-65.0, v_reset=-65.0, v_thresh=-50.0, r_mem=10.0, t_ref=2.0)
        rule = sf.TsodyksMarkram(U=0.4, tau_rec=150.0, tau_facil=60.0)
        self.syn = ExponentialSynapse(C.fixed_probability(20, 6, 0.6, seed=2), 2.5, tau=3.0, kind=kind, short_term=rule)
        self.add_neuron(None, "inp", self.inp)
        self.add_synapse(self.inp, "syn", self.syn)
        self.add_neuron(self.syn, "out", self.out)

    def forward(self, drive):
        return self.out(self.syn(self.inp(drive), self.out.v))


@pytest.mark.parametrize("kind", ["sparse", "dense"])
def test_short_term_plasticity_is_the_same_through_the_module_and_the_functional_network(kind):
    inputs = drive()[:, :20]
    looped = Depressing(kind)
    with torch.no_grad():
        spikes = torch.stack([looped(x) for x in inputs])
    functional = Depressing(kind)
    net, state = functional.to_functional()
    assert float(net.projections["syn"].short_term.tau_rec) == 150.0
    _, rec = sf.simulate(net, state, {"inp": inputs}, dt=0.1, record=("out.spikes", "syn.resources"))
    assert spikes.sum() > 5 and torch.equal(rec["out.spikes"], spikes)
    assert torch.allclose(rec["syn.resources"][-1], looped.syn.state.short_term.resources, atol=1e-6)
    assert float(looped.syn.state.short_term.resources.min()) < 0.9  # the synapses were depressed


class AlphaNet(SapicoreModel):
    """Input LIFs -> alpha-function conductances -> output LIFs."""

    def __init__(self):
        super().__init__()
        self.inp = LIFNeuron(shape=10, tau_mem=10.0, v_rest=-65.0, v_reset=-65.0, v_thresh=-50.0, r_mem=10.0, t_ref=2.0)
        self.out = LIFNeuron(shape=4, tau_mem=10.0, v_rest=-65.0, v_reset=-65.0, v_thresh=-50.0, r_mem=10.0, t_ref=2.0)
        self.syn = AlphaSynapse(C.all_to_all(10, 4), 0.02, tau=2.0, e_rev=0.0, delay=0.5)
        self.add_neuron(None, "inp", self.inp)
        self.add_synapse(self.inp, "syn", self.syn)
        self.add_neuron(self.syn, "out", self.out)

    def forward(self, drive):
        return self.out(self.syn(self.inp(drive), self.out.v))


def test_alpha_synapses_are_the_same_through_the_module_and_the_functional_network():
    inputs = drive()[:, :10]
    looped = AlphaNet()
    with torch.no_grad():
        spikes = torch.stack([looped(x) for x in inputs])
    net, state = AlphaNet().to_functional()
    assert isinstance(net.projections["syn"].synapse, sf.Alpha)
    _, rec = sf.simulate(net, state, {"inp": inputs}, dt=0.1, record=("out.spikes",))
    assert spikes.sum() > 5 and torch.equal(rec["out.spikes"], spikes)


def test_a_trained_rule_and_synapse_round_trip_through_state_dict_into_a_fresh_model():
    inputs = drive()
    trained = Plastic()
    with torch.no_grad():
        for x in inputs[:300]:
            trained(x)
            trained.apply_learning()
    fresh = Plastic()
    saved = trained.state_dict()
    assert any("plasticity" in key for key in saved)
    fresh.load_state_dict(saved)  # traces of the trained rule load before the rule is attached
    again = fresh.state_dict()  # and come back out of the fresh model, before and after it learns
    assert again.keys() == saved.keys() and all(torch.equal(again[key], saved[key]) for key in saved)
    with torch.no_grad():
        for x in inputs[300:]:
            for model in (trained, fresh):
                model(x)
                model.apply_learning()
    assert torch.equal(trained.syn.weights, fresh.syn.weights)
    assert torch.equal(trained.syn.state.plasticity.x_pre, fresh.syn.state.plasticity.x_pre)


@pytest.mark.parametrize(
    "make",
    [
        lambda: LIFNeuron(shape=4, tau_mem=12.0),
        lambda: AdExNeuron(shape=4),
        lambda: IzhikevichNeuron(shape=4, preset="CH"),
        lambda: HodgkinHuxleyNeuron(shape=4),
        lambda: RateNeuron(shape=4),
        lambda: ExponentialSynapse(C.all_to_all(3, 4), 0.2, tau=4.0, delay=0.3),
        lambda: STDPLearning(a_plus=0.03),
        lambda: HebbianLearning(eta=0.1),
    ],
)
def test_every_adapters_state_dict_loads_into_a_freshly_built_one(make):
    used, fresh = make(), make()
    if isinstance(used, ProjectionSynapse):
        used(torch.ones(3))
    elif not isinstance(used, SapicoreLearning):
        used(torch.full((4,), 3.0))
    fresh.load_state_dict(used.state_dict())
    assert fresh.state_dict().keys() == used.state_dict().keys()
    for key, value in used.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


def test_a_synapse_state_saved_from_other_connectivity_is_refused():
    trained = ExponentialSynapse(C.fixed_out_degree(20, 20, 4, seed=1), 0.2)
    other = ExponentialSynapse(C.fixed_out_degree(20, 20, 4, seed=2), 0.2)  # the same shapes, other pairs
    with pytest.raises(ValueError, match="state was saved from other synapses"):
        other.load_state_dict(trained.state_dict())


def test_to_functional_refuses_what_it_cannot_carry():
    class NoisyLIF(LIFNeuron):
        def forward(self, data=0.0):
            return super().forward(data + 0.1 * torch.randn(self.shape))

    class GainSynapse(ExponentialSynapse):
        def forward(self, pre_spikes, v_post=None):
            return 2.0 * super().forward(pre_spikes, v_post)

    class Custom(SapicoreLearning):
        def apply_learning(self, **kwargs):
            pass

    model = Plastic()
    model.stdp.bind(model.syn)
    model.out = NoisyLIF(shape=8)  # the same name, a subclass that overrides forward
    model.neurons = {model.inp: [model.syn], model.out: []}
    model.synapses = {model.syn: [model.out]}
    with pytest.raises(TypeError, match="'out' is a NoisyLIF, which overrides forward"):
        model.to_functional()
    with pytest.raises(TypeError, match="NoisyLIF"):
        model.step({"inp": torch.ones(30)})

    model = Plastic()
    gain = GainSynapse(C.fixed_probability(30, 8, 0.5, seed=4), 0.3)
    model.syn = gain
    model.neurons = {model.inp: [gain], model.out: []}
    model.synapses = {gain: [model.out]}
    model.stdp.bind(gain)
    with pytest.raises(TypeError, match="'syn' is a GainSynapse, which overrides forward"):
        model.to_functional()

    model = Plastic()
    with pytest.raises(ValueError, match="learning rule 'stdp' is not attached to a synapse yet"):
        model.to_functional()
    model.stdp.bind(model.syn)
    model.add_learning_rule("custom", Custom())
    with pytest.raises(TypeError, match="learning rule 'custom' is a Custom, not a functional plasticity rule"):
        model.to_functional()


def test_learning_modules_check_their_synapse_and_dt():
    stdp = STDPLearning(dt=0.2)
    with pytest.raises(ValueError, match="dt=0.2 ms but its synapse steps with dt=0.1 ms"):
        stdp.bind(ExponentialSynapse(C.all_to_all(2, 2), 0.1))
    with pytest.raises(TypeError, match="learns on a ProjectionSynapse"):
        STDPLearning().bind(LIFNeuron(shape=2))
    with pytest.raises(ValueError, match="has no plasticity rule"):
        ExponentialSynapse(C.all_to_all(2, 2), 0.1).learn(torch.ones(2), torch.ones(2))


def test_a_changed_rule_parameter_reaches_the_synapse_and_keeps_its_traces():
    model = Plastic()
    with torch.no_grad():
        for x in drive()[:200]:
            model(x)
            model.apply_learning()
        traces = model.syn.state.plasticity.x_post.clone()
        model.stdp.a_plus = 0.05
        model.apply_learning()
    assert model.syn.projection.plasticity.a_plus == 0.05
    assert torch.allclose(
        model.syn.state.plasticity.x_post, traces * torch.exp(torch.tensor(-0.1 / 20.0)) + model.out.output
    )


def test_the_original_logging_import_path():
    from sapicore.logging import NixLogReader, NixLogWriter
    from sapicore.logging.nix import NixLogWriter as Writer

    assert NixLogWriter is Writer and NixLogReader is not None
