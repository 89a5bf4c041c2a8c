import math

import numpy as np
import pytest
import torch

import sapicore.functional as sf
from sapicore.functional import connectivity
from sapicore.spec import parse_spec

nir = pytest.importorskip("nir")
from sapicore.nir_io import NIRUnsupported, from_nir, to_nir  # noqa: E402

DT = 0.5


def mixed_network():
    """Every mapped element: inputs, LIF (per-neuron parameters, a drive), LIF with tau_syn (CubaLIF),
    an analog unit (LI), dense and sparse projections, a uniform delay."""
    populations = {
        "stimulus": sf.Population(sf.SpikeInput(), 6),
        "hidden": sf.Population(
            sf.LIF(tau_mem=10.0, tau_syn=5.0, t_ref=0.0, v_rest=-65.0, v_reset=-70.0, v_thresh=-50.0, r_mem=10.0), 8
        ),
        "out": sf.Population(sf.LIF(tau_mem=torch.linspace(8.0, 12.0, 3), t_ref=0.0), 3),
        "readout": sf.Population(sf.Analog(tau=20.0, gain=2.0, bias=-1.0), 2),
    }
    projections = {
        "feed": sf.projection(
            "stimulus",
            "hidden",
            connectivity.fixed_probability(6, 8, 0.5, seed=1),
            2.0,
            sf.Delta(),
            dt=DT,
            delay=1.0,
            kind="dense",
        ),
        "deep": sf.projection(
            "hidden", "out", connectivity.fixed_probability(8, 3, 0.7, seed=2), 1.5, sf.Delta(), dt=DT
        ),
        "decode": sf.projection(
            "out", "readout", connectivity.all_to_all(3, 2), torch.randn(6), sf.Delta(), dt=DT, kind="dense"
        ),
    }
    return sf.Network(populations, projections)


def test_a_round_trip_through_a_nir_file_simulates_identically(tmp_path):
    net = mixed_network()
    graph = to_nir(net, outputs=("out", "readout"))
    kinds = {name: type(node).__name__ for name, node in graph.nodes.items()}
    assert (
        kinds["stimulus"] == "Input"
        and kinds["hidden"] == "CubaLIF"
        and kinds["out"] == "LIF"
        and kinds["readout"] == "LI"
    )
    assert kinds["feed"] == "Linear" and kinds["feed.delay"] == "Delay" and graph.metadata["time_unit"] == "ms"
    assert np.allclose(graph.nodes["feed.delay"].delay, 1.0) and graph.nodes["feed"].weight.shape == (8, 6)
    assert np.allclose(graph.nodes["hidden"].w_in, 5.0 / DT) and np.allclose(graph.nodes["out"].tau, [8.0, 10.0, 12.0])
    assert np.allclose(graph.nodes["readout"].r, 2.0) and np.allclose(graph.nodes["readout"].v_leak, -1.0)
    nir.write(str(tmp_path / "net.nir"), graph)
    back, outputs = from_nir(tmp_path / "net.nir", dt=DT)
    assert set(outputs) == {"out.spikes", "readout.activation"}
    stimulus = (torch.rand(400, 6) < 0.3).float()
    names = ("hidden.spikes", "out.spikes", "out.v", "readout.activation")
    _, original = sf.simulate(net, net.init_state(), {"stimulus": stimulus}, dt=DT, record=names)
    _, imported = sf.simulate(back, back.init_state(), {"stimulus": stimulus}, dt=DT, record=names)
    assert original["hidden.spikes"].sum() > 50 and original["out.spikes"].sum() > 5
    for name in names:
        assert torch.equal(original[name], imported[name]), name


def test_what_nir_cannot_express_is_listed_element_by_element():
    populations = {
        "noise": sf.Population(sf.PoissonSource(rate=10.0), 4),
        "adex": sf.Population(sf.AdEx(), 4),
        "lif": sf.Population(sf.LIF(), 4, parts={"a": 2, "b": 2}),
        "clock": sf.Population(sf.Oscillator(), 1),
    }
    projections = {
        "conductance": sf.projection(
            "noise", "lif", connectivity.all_to_all(4, 4), 0.1, sf.Exponential(e_rev=0.0), dt=DT
        ),
        "plastic": sf.projection(
            "noise", "adex", connectivity.all_to_all(4, 4), 0.1, sf.Delta(), dt=DT, plasticity=sf.STDP()
        ),
        "spread": sf.projection(
            "adex", "lif", connectivity.all_to_all(4, 4), 0.1, sf.Delta(), dt=DT, delay=torch.linspace(0.0, 3.0, 16)
        ),
        "depressing": sf.projection(
            "lif", "adex", connectivity.all_to_all(4, 4), 0.1, sf.Delta(), dt=DT, short_term=sf.TsodyksMarkram()
        ),
    }
    with pytest.raises(NIRUnsupported) as caught:
        to_nir(sf.Network(populations, projections))
    text = "\n".join(caught.value.problems)
    for expected in (
        "'noise': PoissonSource has no NIR primitive",
        "'adex': AdEx has no NIR primitive",
        "'clock': Oscillator has no NIR primitive",
        "'lif': a refractory period",
        "'lif': parts",
        "'conductance': Exponential with e_rev (conductance)",
        "'plastic': plasticity (STDP)",
        "'spread': per-synapse delays",
        "'depressing': short-term plasticity (TsodyksMarkram)",
    ):
        assert expected in text, expected


def test_a_graph_in_seconds_as_snntorch_and_norse_write_it_imports_with_its_time_unit():
    """An LIF driven by an Affine's bias (a constant current), time constants in seconds: imported
    with time_unit="s" it fires at the analytic rate of NIR's LIF equation (no refractory period)."""
    n = 3
    current = np.array([2.0, 3.0, 4.0])
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([1])}),
            "affine": nir.Affine(weight=np.zeros((n, 1)), bias=current),
            "lif": nir.LIF(
                tau=np.full(n, 0.02),
                r=np.full(n, 10.0),
                v_leak=np.zeros(n),
                v_threshold=np.full(n, 15.0),
                v_reset=np.zeros(n),
            ),
            "output": nir.Output(output_type={"output": np.array([n])}),
        },
        edges=[("input", "affine"), ("affine", "lif"), ("lif", "output")],
    )
    with pytest.raises(ValueError, match="time unit is not given: pass time_unit='ms'.* or 's'"):
        from_nir(graph, dt=0.1)
    net, outputs = from_nir(graph, dt=0.1, time_unit="s")
    assert outputs == ("lif.spikes",) and net.populations["lif"].model.tau_mem.tolist() == pytest.approx([20.0] * n)
    _, rec = sf.simulate(net, net.init_state(), dt=0.1, duration=1000.0, record="lif.spikes")
    for i, amps in enumerate(current):
        times = torch.nonzero(rec["lif.spikes"][:, i]).flatten().double() * 0.1
        period = 20.0 * math.log(10 * amps / (10 * amps - 15.0))  # ms, from v_reset = v_leak
        assert times.diff().mean().item() == pytest.approx(period, abs=0.1)  # spikes fall on the 0.1 ms grid


def test_cuba_lif_input_weights_follow_w_in():
    """tau_syn dI/dt = -I + w_in S: one spike of weight w (a value held for one step) adds
    w w_in dt / tau_syn to the synaptic current."""
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([1])}),
            "linear": nir.Linear(weight=np.array([[3.0]])),
            "cell": nir.CubaLIF(
                tau_syn=np.array([4.0]),
                tau_mem=np.array([10.0]),
                r=np.array([1.0]),
                v_leak=np.array([0.0]),
                v_threshold=np.array([100.0]),
                w_in=np.array([2.0]),
            ),
        },
        edges=[("input", "linear"), ("linear", "cell")],
    )
    net, _ = from_nir(graph, dt=0.5, time_unit="ms")
    spike = torch.zeros(3, 1)
    spike[0] = 1.0
    _, rec = sf.simulate(net, net.init_state(), {"input": spike}, dt=0.5, record="cell.i_syn")
    jump = rec["cell.i_syn"][1, 0].item()  # the projection delivers one step after emission
    assert jump == pytest.approx(3.0 * 2.0 * 0.5 / 4.0)


def test_a_spec_exports_and_bad_graphs_are_refused_with_reasons():
    spec = parse_spec(
        {
            "simulation": {"dt": 0.1, "duration": 10.0},
            "populations": {
                "inp": {"model": "SpikeInput", "size": 4},
                "cells": {"model": "LIF", "size": 5, "parameters": {"t_ref": 0.0}},
            },
            "projections": {
                "syn": {
                    "source": "inp",
                    "target": "cells",
                    "connectivity": {"rule": "all_to_all"},
                    "synapse": {"model": "Delta"},
                    "weight": 0.3,
                    "representation": "dense",
                }
            },
        },
        "small.yaml",
    )
    graph = to_nir(spec)
    assert set(graph.nodes) == {"inp", "cells", "syn", "cells.output"} and np.allclose(graph.nodes["syn"].weight, 0.3)
    bad = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([2])}),
            "linear": nir.Linear(weight=np.ones((3, 4))),
            "cell": nir.LIF(tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3)),
            "late": nir.Delay(delay=np.array([0.25, 0.25, 0.25])),
            "integrator": nir.I(r=np.ones(3)),
        },
        edges=[("input", "linear"), ("linear", "cell"), ("cell", "integrator")],
        type_check=False,
    )
    with pytest.raises(NIRUnsupported) as caught:
        from_nir(bad, dt=0.1, time_unit="ms")
    text = "\n".join(caught.value.problems)
    assert "'integrator': I is not supported" in text
    bad.nodes.pop("integrator")
    bad.edges = [("input", "linear"), ("linear", "cell")]
    with pytest.raises(NIRUnsupported, match=r"weight of shape \(3, 4\) between 2 sources and 3 targets"):
        from_nir(bad, dt=0.1, time_unit="ms")
    bad.nodes["linear"] = nir.Linear(weight=np.ones((3, 2)))
    bad.edges = [("input", "linear"), ("linear", "late"), ("late", "cell")]
    with pytest.raises(NIRUnsupported, match="0.25 ms is not a whole number of steps of dt=0.1"):
        from_nir(bad, dt=0.1, time_unit="ms")


def test_a_leaky_neuron_exported_the_snntorch_way_keeps_its_firing_period():
    """snnTorch (1.0's export_nir) writes its Leaky neuron (mem <- beta mem + input, reset to zero
    above threshold) as NIR's LIF with tau = dt / (1 - beta) and r = tau / dt, in seconds with
    dt = 1e-4 s. Imported, it fires with the period of snnTorch's own recurrence (7 steps for beta
    0.9, input 0.2, threshold 1). (snnTorch 1.0's exporter itself fails against nir 1.0.8's type
    inference for scalar parameters, so the graph is written here as it writes it.)"""
    beta, drive, dt_s = 0.9, 0.2, 1e-4
    tau = dt_s / (1 - beta)
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([1])}),
            "affine": nir.Affine(weight=np.zeros((1, 1)), bias=np.array([drive])),
            "leaky": nir.LIF(
                tau=np.array([tau]),
                r=np.array([tau / dt_s]),
                v_leak=np.zeros(1),
                v_threshold=np.ones(1),
                v_reset=np.zeros(1),
            ),
        },
        edges=[("input", "affine"), ("affine", "leaky")],
    )
    net, _ = from_nir(graph, dt=0.1, time_unit="s")
    _, rec = sf.simulate(net, net.init_state(), dt=0.1, steps=200, record="leaky.spikes")
    steps = torch.nonzero(rec["leaky.spikes"][:, 0]).flatten()
    mem, fired = 0.0, []
    for step in range(200):  # snnTorch's documented recurrence
        mem = beta * mem + drive
        if mem > 1.0:
            fired.append(step)
            mem = 0.0
    assert set(steps.diff().tolist()) == set(np.diff(fired).tolist()) == {7}


def test_a_drive_is_folded_into_v_leak_and_replays_the_run_from_the_same_start():
    net = sf.Network(
        {"inp": sf.Population(sf.SpikeInput(), 2), "cells": sf.Population(sf.LIF(t_ref=0.0, r_mem=10.0), 4)},
        {"syn": sf.projection("inp", "cells", connectivity.all_to_all(2, 4), 0.8, sf.Delta(), dt=DT)},
        drive={"cells": torch.tensor([1.0, 1.4, 1.6, 2.0])},
    )
    graph = to_nir(net)
    assert np.allclose(graph.nodes["cells"].v_leak, -65.0 + 10.0 * np.array([1.0, 1.4, 1.6, 2.0]))
    back, _ = from_nir(graph, dt=DT)
    assert not back.drive
    start = back.init_state()
    start = sf.replace(start, populations={**start.populations, "cells": net.init_state().populations["cells"]})
    stimulus = (torch.rand(600, 2) < 0.2).float()
    _, original = sf.simulate(net, net.init_state(), {"inp": stimulus}, dt=DT, record=("cells.v", "cells.spikes"))
    _, imported = sf.simulate(back, start, {"inp": stimulus}, dt=DT, record=("cells.v", "cells.spikes"))
    assert original["cells.spikes"].sum() > 20
    assert torch.equal(original["cells.spikes"], imported["cells.spikes"])
    assert torch.allclose(original["cells.v"], imported["cells.v"], atol=1e-4)


def test_every_integration_method_exports_and_comes_back_with_the_graph(tmp_path):
    """NIR's nodes are equations; the integrator travels as metadata, so a euler or rk4 network's file
    imports integrating the same way, and ``method=`` chooses for files of other writers."""
    for method in ("euler", "rk4"):
        net = mixed_network()
        net = sf.replace(
            net,
            populations={
                name: sf.Population(sf.replace(pop.model, method=method), pop.size)
                if hasattr(pop.model, "method")
                else pop
                for name, pop in net.populations.items()
            },
        )
        graph = to_nir(net, outputs=("out", "readout"))
        assert graph.metadata["integration_method"] == method
        nir.write(str(tmp_path / f"{method}.nir"), graph)
        back, _ = from_nir(tmp_path / f"{method}.nir", dt=DT)
        assert back.populations["hidden"].model.method == method
        stimulus = (torch.rand(300, 6) < 0.3).float()
        names = ("hidden.spikes", "out.v", "readout.activation")
        _, original = sf.simulate(net, net.init_state(), {"stimulus": stimulus}, dt=DT, record=names)
        _, imported = sf.simulate(back, back.init_state(), {"stimulus": stimulus}, dt=DT, record=names)
        for name in names:
            assert torch.equal(original[name], imported[name]), (method, name)
    chosen, _ = from_nir(tmp_path / "rk4.nir", dt=DT, method="euler")
    assert chosen.populations["out"].model.method == "euler"
    with pytest.raises(ValueError, match="method must be one of euler, rk4, exponential_euler, got 'leapfrog'"):
        from_nir(tmp_path / "rk4.nir", dt=DT, method="leapfrog")
    mixed = mixed_network()
    mixed = sf.replace(
        mixed, populations={**mixed.populations, "out": sf.Population(sf.LIF(t_ref=0.0, method="euler"), 3)}
    )
    with pytest.raises(NIRUnsupported, match="several methods"):
        to_nir(mixed)


def test_a_graph_written_in_seconds_reads_back_the_same():
    net = mixed_network()
    graph = to_nir(net, outputs=("out",), time_unit="s")
    assert graph.metadata["time_unit"] == "s"
    assert np.allclose(graph.nodes["out"].tau, [0.008, 0.010, 0.012]) and np.allclose(
        graph.nodes["feed.delay"].delay, 0.001
    )
    assert np.allclose(graph.nodes["hidden"].w_in, 5.0 / DT)  # a ratio: the same in every unit
    back, _ = from_nir(graph, dt=DT)
    assert torch.allclose(back.populations["out"].model.tau_mem, torch.tensor([8.0, 10.0, 12.0]))
    with pytest.raises(ValueError, match="time_unit must be 'ms' or 's', got 'min'"):
        to_nir(net, time_unit="min")


def _snntorch_style_graph(w1: np.ndarray, w2: np.ndarray, alpha: float, beta: float) -> "nir.NIRGraph":
    """A graph as snnTorch 1.0's exporter writes Linear -> Synaptic -> Linear -> Leaky (dt = 1e-4 s,
    tau = dt / (1 - decay), r = tau / dt, w_in = tau_syn / dt, float32 scalars, neuron nodes with no
    declared shape)."""
    dt_s = np.float32(1e-4)
    tau_syn, tau_mem = dt_s / np.float32(1 - alpha), dt_s / np.float32(1 - beta)
    scalar = dict(
        v_leak=np.array(0.0, np.float32), v_threshold=np.array(1.0, np.float32), v_reset=np.array(0.0, np.float32)
    )
    nodes = {
        "input": nir.Input(input_type={"input": np.array([w1.shape[1]])}),
        "0": nir.Linear(weight=w1.astype(np.float32)),
        "1": nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem / dt_s, w_in=tau_syn / dt_s, **scalar),
        "2": nir.Linear(weight=w2.astype(np.float32)),
        "3": nir.LIF(tau=tau_mem, r=tau_mem / dt_s, **scalar),
        "output": nir.Output(output_type={"output": np.array([w2.shape[0]])}),
    }
    for name in ("1", "3"):
        nodes[name].input_type = {"input": np.array([])}
        nodes[name].output_type = {"output": np.array([])}
    edges = [("input", "0"), ("0", "1"), ("1", "2"), ("2", "3"), ("3", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def test_snntorch_synaptic_and_leaky_layers_give_the_same_spikes_after_import():
    """snnTorch's recurrences (reset_delay=False, reset to zero, as its importer builds them):
    syn <- alpha syn + W x; mem <- beta mem + syn; a spike where mem > 1, then mem = 0. Imported with
    method="euler" (the synaptic current decays by 1 - dt/tau_syn = alpha), both layers spike at the
    same steps (Sapicore's layer k one step per projection later), though the graph never says how
    many neurons a layer has."""
    generator = np.random.default_rng(4)
    w1, w2 = generator.uniform(0, 0.06, (30, 20)), generator.uniform(0, 0.12, (10, 30))
    alpha, beta, steps = 0.8, 0.9, 300
    x = (generator.uniform(size=(steps, 20)) < 0.2).astype(np.float32)
    graph = _snntorch_style_graph(w1, w2, alpha, beta)
    net, outputs = from_nir(graph, dt=0.1, time_unit="s", method="euler")
    assert outputs == ("3.spikes",) and net.populations["1"].size == 30 and net.populations["3"].size == 10
    padded = torch.cat([torch.as_tensor(x), torch.zeros(2, 20)])
    _, rec = sf.simulate(net, net.init_state(), {"input": padded}, dt=0.1, record=("1.spikes", "3.spikes"))
    w1, w2 = torch.as_tensor(w1, dtype=torch.float32), torch.as_tensor(w2, dtype=torch.float32)
    syn, mem1, mem2 = torch.zeros(30), torch.zeros(30), torch.zeros(10)
    hidden, output = [], []
    for row in torch.as_tensor(x):  # snnTorch's Synaptic and Leaky
        syn = alpha * syn + w1 @ row
        mem1 = beta * mem1 + syn
        s1 = (mem1 > 1.0).float()
        mem1 = mem1 * (1 - s1)
        mem2 = beta * mem2 + w2 @ s1
        s2 = (mem2 > 1.0).float()
        mem2 = mem2 * (1 - s2)
        hidden.append(s1), output.append(s2)
    hidden, output = torch.stack(hidden), torch.stack(output)
    assert 500 < hidden.sum() < 0.6 * hidden.numel() and output.sum() > 100  # neither silent nor saturated
    assert torch.equal(rec["1.spikes"][1 : steps + 1], hidden) and torch.equal(rec["3.spikes"][2:], output)


def test_a_graph_traced_from_a_batched_sample_with_torch_tensors_imports():
    """Norse's exporter records the sample it traced (an Input of shape [1, n]), gives neuron nodes 0-d
    torch tensors and no shape, and an Affine with zero bias for a Linear without one. The sizes come
    from the Linear layers; the LIFBox recurrence v <- v + dt/tau (W x - v), a spike where v > 1, then
    v = 0, is what the import runs with method="euler"."""
    generator = torch.Generator().manual_seed(5)
    w = torch.rand(6, 4, generator=generator) * 4.0
    lif = nir.LIF(
        tau=torch.tensor(0.01),
        r=torch.tensor(1.0),
        v_leak=torch.tensor(0.0),
        v_threshold=torch.tensor(1.0),
        v_reset=np.array(0.0, np.float32),
    )
    lif.input_type, lif.output_type = {"input": np.array([])}, {"output": np.array([])}
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([1, 4])}),
            "0": nir.Affine(weight=w.requires_grad_(), bias=torch.zeros(6)),
            "1": lif,
            "output": nir.Output(output_type={"output": np.array([1, 6])}),
        },
        edges=[("input", "0"), ("0", "1"), ("1", "output")],
        type_check=False,
    )
    net, outputs = from_nir(graph, dt=1.0, time_unit="s", method="euler")
    assert outputs == ("1.spikes",) and net.populations["input"].size == 4 and net.populations["1"].size == 6
    x = (torch.rand(200, 4, generator=generator) < 0.3).float()
    _, rec = sf.simulate(net, net.init_state(), {"input": torch.cat([x, torch.zeros(1, 4)])}, dt=1.0, record="1.spikes")
    v, expected = torch.zeros(6), []
    with torch.no_grad():
        for row in x:  # Norse's LIFBox step with dt = 1 ms, tau = 10 ms
            v = v + 0.1 * (w @ row - v)
            spikes = (v > 1.0).float()
            v = v * (1 - spikes)
            expected.append(spikes)
    expected = torch.stack(expected)
    assert 20 < expected.sum() < 0.5 * expected.numel() and torch.equal(rec["1.spikes"][1:], expected)


def test_a_neuron_node_whose_size_nothing_tells_is_refused():
    lif = nir.LIF(tau=np.array(10.0), r=np.array(1.0), v_leak=np.array(0.0), v_threshold=np.array(1.0))
    lif.input_type = {"input": np.array([])}
    graph = nir.NIRGraph(nodes={"cell": lif}, edges=[], type_check=False)
    with pytest.raises(NIRUnsupported, match="'cell': its number of neurons is not declared"):
        from_nir(graph, dt=0.1, time_unit="ms")


def test_a_cuba_lif_round_trip_is_exact_for_every_method():
    """Sapicore's LIF with tau_syn exported as CubaLIF and imported back runs the same spikes bit for
    bit, whatever the integrator (recorded in the graph)."""
    for method in ("euler", "rk4", "exponential_euler"):
        model = sf.LIF(
            tau_mem=4.0, tau_syn=2.0, t_ref=0.0, v_rest=0.0, v_reset=0.0, v_thresh=1.0, r_mem=1.0, method=method
        )
        net = sf.Network(
            {"inp": sf.Population(sf.SpikeInput(), 5), "cells": sf.Population(model, 7)},
            {
                "syn": sf.projection(
                    "inp",
                    "cells",
                    connectivity.all_to_all(5, 7),
                    torch.rand(35) * 0.6,
                    sf.Delta(),
                    dt=0.5,
                    kind="dense",
                )
            },
        )
        back, _ = from_nir(to_nir(net), dt=0.5)
        assert back.populations["cells"].model.method == method
        x = (torch.rand(400, 5) < 0.3).float()
        runs = [
            sf.simulate(n, n.init_state(), {"inp": x}, dt=0.5, record="cells.spikes")[1]["cells.spikes"]
            for n in (net, back)
        ]
        assert runs[0].sum() > 50 and torch.equal(runs[0], runs[1])


def test_a_flattened_recurrent_subgraph_with_dotted_names_imports_and_runs_its_recurrence():
    """snnTorch writes an RLeaky layer as nodes '1.lif' and '1.w_rec' (an Affine from the layer back to
    itself). The names become '1_lif' and '1_w_rec'; the recurrent input is the last step's spikes, as
    in snnTorch's recurrence mem <- beta mem + W x + V s(t-1), a spike where mem > 1, then mem = 0."""
    generator = np.random.default_rng(6)
    w = generator.uniform(0, 0.3, (8, 5)).astype(np.float32)
    v = -generator.uniform(0, 0.4, (8, 8)).astype(np.float32)
    dt_s, beta = np.float32(1e-4), 0.9
    tau = dt_s / np.float32(1 - beta)
    lif = nir.LIF(
        tau=np.full(8, tau, np.float32),
        r=np.full(8, tau / dt_s, np.float32),
        v_leak=np.zeros(8, np.float32),
        v_threshold=np.ones(8, np.float32),
        v_reset=np.zeros(8, np.float32),
    )
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([5])}),
            "0": nir.Linear(weight=w),
            "1.lif": lif,
            "1.w_rec": nir.Affine(weight=v, bias=np.zeros(8, np.float32)),
            "output": nir.Output(output_type={"output": np.array([8])}),
        },
        edges=[("input", "0"), ("0", "1.lif"), ("1.lif", "1.w_rec"), ("1.w_rec", "1.lif"), ("1.lif", "output")],
        type_check=False,
    )
    net, outputs = from_nir(graph, dt=0.1, time_unit="s", method="euler")
    assert outputs == ("1_lif.spikes",) and set(net.projections) == {"0", "1_w_rec"}
    x = (generator.uniform(size=(300, 5)) < 0.3).astype(np.float32)
    _, rec = sf.simulate(
        net,
        net.init_state(),
        {"input": torch.cat([torch.as_tensor(x), torch.zeros(1, 5)])},
        dt=0.1,
        record="1_lif.spikes",
    )
    mem, spikes, expected = torch.zeros(8), torch.zeros(8), []
    for row in torch.as_tensor(x):
        mem = beta * mem + torch.as_tensor(w) @ row + torch.as_tensor(v) @ spikes
        spikes = (mem > 1.0).float()
        mem = mem * (1 - spikes)
        expected.append(spikes)
    expected = torch.stack(expected)
    assert 50 < expected.sum() < 0.5 * expected.numel() and torch.equal(rec["1_lif.spikes"][1:], expected)
    twins = nir.NIRGraph(
        nodes={
            "a.b": nir.Input(input_type={"input": np.array([2])}),
            "a_b": nir.Input(input_type={"input": np.array([2])}),
        },
        edges=[],
        type_check=False,
    )
    with pytest.raises(NIRUnsupported, match="nodes 'a.b' and 'a_b' would both be called 'a_b'"):
        from_nir(twins, dt=0.1, time_unit="ms")
