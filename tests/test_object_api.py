"""The object API: the original README example, adapters, bridges to the functional core, config."""

import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import tree_config

import sapicore.functional as sf
from sapicore.adapter import FunctionalNeuron
from sapicore.functional import connectivity as C
from sapicore.learning.plasticity import STDPLearning
from sapicore.model import SapicoreModel
from sapicore.network import SapicoreNetwork
from sapicore.neuron import SapicoreNeuron
from sapicore.neuron.adapters import wrap
from sapicore.neuron.analog import RateNeuron
from sapicore.neuron.spiking import IzhikevichNeuron, LIFNeuron, SpikingNeuron
from sapicore.synapse.projection import ProjectionSynapse

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "seed_readme_example.py"


def test_the_original_readme_example_runs_and_prints_two_weight_lines():
    done = subprocess.run([sys.executable, str(EXAMPLE)], check=True, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if "learning weight" in line]
    assert [line.split(":")[0] for line in lines] == ["Pre-learning weight", "Post-learning weight"]


def test_the_example_learns_the_product_of_absolute_activations():
    example = runpy.run_path(str(EXAMPLE), run_name="example")
    torch.manual_seed(3)
    model = example["MyModel"]()
    model.initialize_state()
    model.initialize_learning_state()
    before = model.synapse.weight.clone()
    factor = torch.ones(5)
    with torch.no_grad():
        for _ in range(3):
            model.forward(torch.normal(0, 1, size=(5,)))
            factor *= model.neuron_1.activation.abs() * model.neuron_2.activation.abs()
            model.apply_learning()
    assert torch.allclose(model.synapse.weight, before * factor)


def test_forward_moves_inputs_to_the_module_device():
    class Echo(SapicoreNeuron):
        def forward(self, data):
            return data

    echo = Echo()
    echo._device_marker = torch.empty(0, device="meta")  # stands in for a GPU here
    assert echo(torch.ones(3)).device.type == "meta"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_the_readme_example_runs_with_the_model_on_the_gpu():
    example = runpy.run_path(str(EXAMPLE), run_name="example")
    model = example["MyModel"]()
    model.initialize_state()
    model.to("cuda")
    model.forward(torch.ones(5))
    model.apply_learning()
    assert model.synapse.weight.device.type == "cuda"


def test_adapter_owns_one_state_that_saves_loads_moves_and_resets():
    neuron = LIFNeuron(shape=4, tau_mem=10.0)
    for _ in range(50):
        neuron(torch.full((4,), 3.0))
    assert set(neuron.state_dict()) == {"state__v", "state__refractory_left", "state__i_syn"}
    copy = LIFNeuron(shape=4, tau_mem=10.0)
    copy.load_state_dict(neuron.state_dict())
    assert torch.equal(copy.v, neuron.v) and isinstance(copy.state, sf.LIFState)
    double = copy.double()
    assert double.v.dtype == torch.float64 and double(torch.full((4,), 3.0)).dtype == torch.float64
    neuron.initialize_state()
    assert torch.all(neuron.v == -65.0)


def test_adapter_parameters_are_validated_configurable_properties():
    neuron = IzhikevichNeuron(shape=2, preset="FS")
    assert neuron.a == 0.1 and neuron.integrator == "euler"
    neuron.integrator = "runge_kutta"
    assert neuron.model.method == "rk4"
    with pytest.raises(ValueError, match="tau_mem must be > 0"):
        LIFNeuron().tau_mem = -3.0
    with pytest.raises(TypeError, match="LIF.tau_mem must be a number or a floating tensor, got str 'fast'"):
        LIFNeuron().tau_mem = "fast"
    config = tree_config.read_config_from_object(LIFNeuron(tau_mem=12.0))
    assert config["tau_mem"] == 12.0 and config["dt"] == 0.1
    assert isinstance(wrap(sf.AdEx()), SpikingNeuron) and isinstance(wrap(sf.Analog()), RateNeuron)


class TwoPopulations(SapicoreNetwork):
    _config_children_ = {"inp": "inp", "out": "out", "syn": "syn"}

    def __init__(self):
        super().__init__()
        self.inp = LIFNeuron(shape=30, t_ref=2.0)
        self.out = LIFNeuron(shape=10, tau_syn=None)
        self.syn = ProjectionSynapse(C.fixed_probability(30, 10, 0.3, seed=2), 1.5, sf.Exponential(5.0), delay=1.0)
        self.add_neuron(None, "inp", self.inp)
        self.add_synapse(self.inp, "syn", self.syn)
        self.add_neuron(self.syn, "out", self.out)


def functional_twin():
    return sf.Network(
        populations={"inp": sf.Population(sf.LIF(t_ref=2.0), 30), "out": sf.Population(sf.LIF(), 10)},
        projections={
            "syn": sf.projection(
                "inp", "out", C.fixed_probability(30, 10, 0.3, seed=2), 1.5, sf.Exponential(5.0), dt=0.1, delay=1.0
            )
        },
    )


def test_a_module_built_network_spikes_exactly_like_the_functional_one():
    drive = 2.0 + 2.0 * torch.rand(400, 30)
    net = functional_twin()
    _, expected = sf.simulate(net, net.init_state(), {"inp": drive}, dt=0.1, record=("inp.spikes", "out.spikes"))
    assert expected["out.spikes"].sum() > 0

    modules = TwoPopulations()
    as_functional, state = modules.to_functional()
    _, via_bridge = sf.simulate(as_functional, state, {"inp": drive}, dt=0.1, record=("inp.spikes", "out.spikes"))
    assert torch.equal(via_bridge["out.spikes"], expected["out.spikes"])

    stepped = torch.stack([modules.step({"inp": drive[i]})["out"] for i in range(400)])
    assert torch.equal(stepped, expected["out.spikes"])
    assert torch.equal(
        modules.out.v, sf.simulate(net, net.init_state(), {"inp": drive}, dt=0.1)[0].populations["out"].v
    )


def test_yaml_config_round_trip_changes_a_deep_parameter_that_the_next_run_uses(tmp_path):
    drive = 2.0 + 2.0 * torch.rand(400, 30)

    def output_spikes(modules):
        return sum(modules.step({"inp": drive[i]})["out"].sum() for i in range(400))

    baseline = output_spikes(TwoPopulations())
    modules = TwoPopulations()
    path = tmp_path / "config.yaml"
    tree_config.dump_config(path, tree_config.read_config_from_object(modules))
    config = tree_config.read_config_from_file(path)
    assert config["out"]["tau_mem"] == 20.0 and config["syn"]["dt"] == 0.1
    config["out"]["v_thresh"] = -45.0
    tree_config.dump_config(path, config)
    tree_config.apply_config(modules, tree_config.read_config_from_file(path))
    assert modules.out.v_thresh == -45.0
    assert modules.to_functional()[0].populations["out"].model.v_thresh == -45.0
    assert 0 <= output_spikes(modules) < baseline


def test_stdp_learning_module_changes_projection_weights():
    model = SapicoreModel()
    pre, post = LIFNeuron(shape=5), LIFNeuron(shape=3)
    syn = ProjectionSynapse(C.all_to_all(5, 3), 0.5, sf.Delta(), kind="dense")
    model.add_neuron(None, "pre", pre)
    model.add_synapse(pre, "syn", syn)
    model.add_neuron(syn, "post", post)
    rule = STDPLearning(a_plus=0.1, a_minus=0.0, tau_plus=5.0)
    model.add_learning_rule("stdp", rule)
    model.initialize_learning_state()
    before = syn.weights.clone()
    for step in range(100):
        pre(torch.full((5,), 1e4 if step == 10 else 0.0))  # one forced spike
        post(torch.full((3,), 1e4 if step == 20 else 0.0))
        rule.apply_learning(pre, syn, post)
    assert torch.allclose(
        syn.weights - before, torch.full((5, 3), 0.1 * torch.exp(torch.tensor(-1.0 / 5.0)).item()), atol=1e-5
    )


def test_object_api_errors():
    network = SapicoreNetwork()
    with pytest.raises(TypeError, match="only a SapicoreNeuron can be added as a neuron, not a ProjectionSynapse"):
        network.add_neuron(None, "x", ProjectionSynapse(C.one_to_one(2), 0.1, sf.Delta()))
    with pytest.raises(TypeError, match="only a SapicoreLearning can be added"):
        SapicoreModel().add_learning_rule("r", LIFNeuron())
    with pytest.raises(TypeError, match="FunctionalNeuron needs model="):
        FunctionalNeuron()
    with pytest.raises(ValueError, match="the source neuron is not in this network"):
        network.add_synapse(LIFNeuron(), "s", ProjectionSynapse(C.one_to_one(2), 0.1, sf.Delta()))


def test_synapse_type_adapters_and_a_sweep_of_a_module_built_network():
    from sapicore.synapse.projection import DualExponentialSynapse, ExponentialSynapse

    syn = ExponentialSynapse(C.one_to_one(2), 0.5, tau=4.0, e_rev=0.0)
    current = syn(torch.ones(2), torch.full((2,), -65.0))  # nothing has arrived yet
    assert torch.all(current == 0)
    current = syn(torch.zeros(2), torch.full((2,), -65.0))
    assert torch.allclose(current, torch.full((2,), 0.5 * 65.0))
    assert isinstance(DualExponentialSynapse(C.one_to_one(2), 0.5).projection.synapse, sf.DualExponential)

    net, state = TwoPopulations().to_functional()
    lanes = sf.stack(
        [net, sf.replace(net, populations={**net.populations, "out": sf.Population(sf.LIF(v_thresh=-40.0), 10)})]
    )
    drive = 2.0 + 2.0 * torch.rand(300, 30)
    _, rec = sf.sweep(lanes, sf.init_lanes(lanes), {"inp": drive}, dt=0.1, record="out.spikes")
    assert rec["out.spikes"][0].sum() > rec["out.spikes"][1].sum()


def test_serve_presents_each_sample_for_duration_steps_then_rinses_and_fit_learns_every_step():
    """The original's fit passed duration and rinse in the wrong order; here fit(data, duration=3,
    rinse=2) steps 5 times per sample, learning after each, and serve learns never."""

    class Recorder(SapicoreModel):
        def __init__(self):
            super().__init__()
            self.neuron = LIFNeuron(shape=2, dt=0.1)
            self.add_neuron(None, "neuron", self.neuron)
            self.seen, self.learnt = [], 0

        def forward(self, data):
            self.seen.append(data.clone())
            return self.neuron(data)

        def apply_learning(self, **kwargs):
            self.learnt += 1

    data = torch.tensor([[20.0, 0.0], [0.0, 20.0]])
    model = Recorder()
    outputs = model.serve(data, duration=3, rinse=2)
    assert outputs.shape == (2, 3, 2) and model.learnt == 0
    assert [tuple(x.tolist()) for x in model.seen] == [(20.0, 0.0)] * 3 + [(0.0, 0.0)] * 2 + [(0.0, 20.0)] * 3 + [
        (0.0, 0.0)
    ] * 2
    assert model.fit(data, duration=3, rinse=2) is model and model.learnt == 10 and len(model.seen) == 20
    for bad in (dict(duration=0), dict(duration=2.5), dict(duration=3, rinse=-1)):
        with pytest.raises(ValueError, match="number of steps"):
            model.serve(data, **bad)
    with pytest.raises(ValueError, match="samples along its first axis"):
        model.serve(torch.zeros(0, 2), duration=3)
