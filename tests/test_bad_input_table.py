"""A second table of bad input, across the public entry points a new user meets beyond the core
run (the first table is test_bad_input.py, specs and the command test_spec_cli.py and
test_cli_failures.py): every case must raise, and its message must name the culprit."""

import math

import attrs
import numpy as np
import pytest
import torch

import sapicore.functional as sf
from sapicore import analysis
from sapicore.checkpoint import Checkpoints, load_checkpoint, resume_sinks, save_checkpoint
from sapicore.cli import main
from sapicore.functional import connectivity as conn
from sapicore.functional import encoders
from sapicore.functional.pytree import validate
from sapicore.functional.running.partition import partition_built
from sapicore.functional.running.reshard import reshard
from sapicore.logging.nix import NixRecordSink, read_events, read_records
from sapicore.logging.tensorboard import TensorBoardSink
from sapicore.networks import coba, potjans2014

PARAMETERISED = [
    sf.LIF,
    sf.AdEx,
    sf.Izhikevich,
    sf.HodgkinHuxley,
    sf.Analog,
    sf.Oscillator,
    sf.PoissonSource,
    sf.Exponential,
    sf.DualExponential,
    sf.Alpha,
    sf.Delta,
    sf.STDP,
    sf.TripletSTDP,
    sf.Hebbian,
    sf.Oja,
    sf.RewardSTDP,
    sf.TsodyksMarkram,
]


def field_cases():
    """Every field of every model, synapse and rule given text, NaN and a list holding text."""
    cases = {}
    for cls in PARAMETERISED:
        for field in attrs.fields(cls):
            for label, value in (("text", "abc"), ("NaN", math.nan), ("a list with text", [1.0, "x"])):
                if label == "text" and field.name in ("method", "surrogate", "nonlinearity", "modulator"):
                    continue  # names: text is their type (an unknown one is its own case below)
                cases[f"{cls.__name__}.{field.name}: {label}"] = (
                    lambda cls=cls, name=field.name, value=value: cls(**{name: value}),
                    (TypeError, ValueError),
                    field.name,
                )
    return cases


def lif_state(n=5):
    return sf.LIF().init_state(n)


def run(**kwargs):
    kwargs.setdefault("dt", 0.1)
    kwargs.setdefault("steps", 10)
    return sf.simulate(sf.LIF(), lif_state(), **kwargs)


def resumed(sink, position):
    """``sink``, told to resume from ``position``."""
    sink.resume(position)
    return sink


def lanes():
    return sf.grid(sf.LIF(), tau_mem=[10.0, 20.0])[0]


def small_network():
    return sf.Network(
        {"a": sf.Population(sf.LIF(), 10), "b": sf.Population(sf.LIF(), 10)},
        {"ab": sf.projection("a", "b", conn.all_to_all(10, 10), 0.1, sf.Exponential(), dt=0.1)},
    )


def _projection(source, target, n_pre, n_post):
    return sf.projection(source, target, conn.all_to_all(n_pre, n_post), 0.1, sf.Exponential(), dt=0.1)


def signal():
    return torch.sin(torch.arange(4000) * 0.5 / 1000 * 2 * math.pi * 5)


def nir_graph(**changes):
    import nir

    nodes = {
        "in": nir.Input(input_type={"input": np.array([3])}),
        "lif": nir.LIF(tau=np.full(3, 10.0), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3)),
        "out": nir.Output(output_type={"output": np.array([3])}),
    }
    nodes.update(changes)
    return nir.NIRGraph(
        nodes=nodes, edges=[("in", "lif"), ("lif", "out")], metadata={"time_unit": "ms"}, type_check=False
    )


def nir_node(kind, **fields):
    """A NIR node whose input shape is left undeclared, as snnTorch and Norse write neuron nodes."""
    import nir

    node = getattr(nir, kind)(**fields)
    if kind != "Input":
        node.input_type = {"input": np.array([])}
    return node


def from_nir(graph, **kwargs):
    from sapicore.nir_io import from_nir as read

    return read(graph, **kwargs)


def classifier(**params):
    from sapicore.estimators import SpikingClassifier

    X, y = np.random.default_rng(0).random((10, 3)), np.array([0, 1] * 5)
    return SpikingClassifier(**{"n_hidden": 5, "duration": 5.0, **params}).fit(X, y)


def regressor(y=None, **params):
    from sapicore.estimators import SpikingRegressor

    X = np.random.default_rng(0).random((10, 3))
    return SpikingRegressor(**{"n_hidden": 5, "duration": 5.0, **params}).fit(X, X[:, 0] if y is None else y)


def narrow_table() -> sf.SynapseTable:
    """Three sources with 2, 3 and 9 synapses onto 4 targets, in rows of 2 slots (8 rows)."""
    table = sf.SynapseTable(torch.tensor([2, 3, 9]), 4, 0.1, width=2)
    pre = torch.repeat_interleave(torch.arange(3), torch.tensor([2, 3, 9]))
    table.add(pre, pre.remainder(4), 0.5, 0.0)
    return table


def narrow_propagate(first_row: torch.Tensor) -> torch.Tensor:
    from sapicore.functional import kernels

    proj = narrow_table().projection("a", "b", sf.Delta())
    if not kernels.available():
        pytest.skip("the CPU kernel could not be built here")
    pending, spikes = torch.zeros(1, 5), torch.ones(3)
    return kernels.propagate(pending, spikes, proj.targets, proj.weights, 0, torch.tensor(0), first_row=first_row)


CASES = {
    **field_cases(),
    "LIF.method: unknown": (lambda: sf.LIF(method="leapfrog"), ValueError, "leapfrog"),
    "LIF.surrogate: unknown": (lambda: sf.LIF(surrogate="relu"), ValueError, "surrogate 'relu'"),
    "Analog.nonlinearity: unknown": (lambda: sf.Analog(nonlinearity="softmax"), ValueError, "nonlinearity 'softmax'"),
    "STDP.soft_bound: a number": (lambda: sf.STDP(soft_bound=1), TypeError, "STDP.soft_bound must be True or False"),
    "STDP.mu_plus: without soft bounds": (lambda: sf.STDP(mu_plus=0.5), ValueError, "set soft_bound=True"),
    "STDP.mu_minus: negative": (lambda: sf.STDP(soft_bound=True, mu_minus=-1.0), ValueError, "mu_minus must be >= 0"),
    "STDP.mu_plus: unbounded weights": (
        lambda: sf.STDP(soft_bound=True, w_max=math.inf, mu_plus=0.5),
        ValueError,
        "needs finite bounds",
    ),
    "STDP.w_min: +inf": (lambda: sf.STDP(w_min=math.inf, w_max=math.inf), ValueError, "w_min"),
    "Oja.w_max: -inf": (lambda: sf.Oja(w_min=-math.inf, w_max=-math.inf), ValueError, "w_max"),
    "RewardSTDP.stdp: a Hebbian rule": (lambda: sf.RewardSTDP(stdp=sf.Hebbian()), TypeError, "RewardSTDP.stdp"),
    "RewardSTDP.modulator: a dotted name": (lambda: sf.RewardSTDP(modulator="a.b"), TypeError, "modulator"),
    "Izhikevich.preset: unknown": (lambda: sf.Izhikevich.preset("XX"), ValueError, "XX"),
    "PoissonSource.trains: zero": (lambda: sf.PoissonSource(trains=0), ValueError, "trains"),
    "PoissonSource.trains: fractional": (lambda: sf.PoissonSource(trains=torch.tensor([1.5])), ValueError, "trains"),
    # init_state
    "init_state: a negative size": (lambda: sf.LIF().init_state(-3), ValueError, "shape"),
    "init_state: text for a size": (lambda: sf.LIF().init_state("10"), (TypeError, ValueError), "shape"),
    "init_state: an integer dtype": (lambda: sf.LIF().init_state(3, dtype=torch.int32), TypeError, "dtype"),
    # simulate's keywords
    "simulate: dt NaN": (lambda: run(dt=math.nan), ValueError, "dt"),
    "simulate: dt infinite": (lambda: run(dt=math.inf), ValueError, "dt"),
    "simulate: dt zero": (lambda: run(dt=0.0), ValueError, "dt"),
    "simulate: dt text": (lambda: run(dt="0.1"), TypeError, "dt"),
    "simulate: dt True": (lambda: run(dt=True), TypeError, "dt"),
    "simulate: steps zero": (lambda: run(steps=0), ValueError, "steps"),
    "simulate: steps negative": (lambda: run(steps=-5), ValueError, "steps"),
    "simulate: steps fractional": (lambda: run(steps=2.5), ValueError, "steps"),
    "simulate: steps True": (lambda: run(steps=True), ValueError, "steps"),
    "simulate: steps text": (lambda: run(steps="10"), ValueError, "steps"),
    "simulate: steps and duration": (lambda: run(steps=10, duration=1.0), ValueError, "steps or duration"),
    "simulate: duration zero": (lambda: run(steps=None, duration=0.0), ValueError, "duration"),
    "simulate: duration negative": (lambda: run(steps=None, duration=-1.0), ValueError, "duration"),
    "simulate: duration NaN": (lambda: run(steps=None, duration=math.nan), ValueError, "duration"),
    "simulate: duration infinite": (lambda: run(steps=None, duration=math.inf), ValueError, "duration"),
    "simulate: duration text": (lambda: run(steps=None, duration="1"), ValueError, "duration"),
    "simulate: neither steps nor duration": (lambda: run(steps=None), ValueError, "steps= or duration="),
    "simulate: every zero": (lambda: run(every=0), ValueError, "every"),
    "simulate: every fractional": (lambda: run(every=1.5), ValueError, "every"),
    "simulate: every True": (lambda: run(every=True), ValueError, "every"),
    "simulate: chunk zero": (lambda: run(chunk=0), ValueError, "chunk"),
    "simulate: chunk not a multiple of every": (lambda: run(every=2, chunk=3), ValueError, "chunk"),
    "simulate: chunk text": (lambda: run(chunk="5"), ValueError, "chunk"),
    "simulate: fast a number": (lambda: run(fast=3), TypeError, "fast"),
    "simulate: fast an unknown backend": (lambda: run(fast="turbo"), ValueError, "fast='turbo'"),
    "simulate: record a list with a number": (lambda: run(record=["v", 3]), TypeError, "record"),
    "simulate: record a name twice": (lambda: run(record=("v", "v")), ValueError, "record names repeat"),
    "simulate: record a population that is not there": (
        lambda: sf.simulate(small_network(), small_network().init_state(), dt=0.1, steps=5, record="c.spikes"),
        ValueError,
        "'c.spikes'",
    ),
    "simulate: start_step negative": (lambda: run(start_step=-1), ValueError, "start_step"),
    "simulate: start_step fractional": (lambda: run(start_step=1.5), ValueError, "start_step"),
    "simulate: strict text": (lambda: run(strict="yes"), TypeError, "strict"),
    "simulate: sinks a PerLane": (lambda: run(sinks=[sf.PerLane([[]])]), TypeError, "PerLane"),
    "simulate: inputs text": (lambda: run(inputs="1.0"), TypeError, "inputs"),
    "simulate: inputs a bool tensor": (
        lambda: run(steps=None, inputs=torch.ones(10, 5, dtype=torch.bool)),
        TypeError,
        "input",
    ),
    "simulate: inputs on a device that is not there": (
        lambda: run(inputs=torch.ones(10, 5, device="meta"), steps=None),
        ValueError,
        "meta",
    ),
    "simulate: a float64 state for a float32 model": (
        lambda: sf.simulate(
            sf.LIF(tau_mem=torch.tensor(10.0)), sf.LIF().init_state(3, dtype=torch.float64), dt=0.1, steps=3
        ),
        TypeError,
        "dtype",
    ),
    "simulate: a state of another model, stepped directly": (
        lambda: sf.LIF().step(sf.AdEx().init_state(3), 1.0, 0.1),
        TypeError,
        "LIF.step takes a LIFState, got AdExState",
    ),
    # sweeps and lanes
    "sweep: strict text": (lambda: sf.sweep(lanes(), dt=0.1, steps=5, shape=3, strict=1), TypeError, "strict"),
    "sweep: no shape for a neuron model": (lambda: sf.sweep(lanes(), dt=0.1, steps=5), ValueError, "shape="),
    "sweep: a PerLane for other lanes": (
        lambda: sf.sweep(lanes(), dt=0.1, steps=5, shape=3, sinks=[sf.PerLane([[], [], []])]),
        ValueError,
        "PerLane\\) holds sinks for 3 lanes but the sweep has 2",
    ),
    "sweep: lane inputs of another lane count": (
        lambda: sf.sweep(lanes(), inputs=torch.ones(3, 5, 3), lane_inputs=True, dt=0.1, shape=3),
        ValueError,
        "lanes",
    ),
    "sweep: lane inputs that are not a tensor": (
        lambda: sf.sweep(lanes(), inputs=1.0, lane_inputs=True, dt=0.1, steps=5, shape=3),
        ValueError,
        "lane_inputs",
    ),
    "stack: nothing": (lambda: sf.stack([]), ValueError, "at least one"),
    "stack: two classes": (lambda: sf.stack([sf.LIF(), sf.AdEx()]), TypeError, "AdEx"),
    "stack: two methods": (lambda: sf.stack([sf.LIF(), sf.LIF(method="euler")]), ValueError, "method"),
    "stack: two sizes": (
        lambda: sf.stack([sf.Population(sf.LIF(), 3), sf.Population(sf.LIF(), 4)]),
        ValueError,
        "Population.size: lanes differ in a structural setting",
    ),
    "stack: shapes that do not broadcast": (
        lambda: sf.stack([sf.LIF(tau_mem=torch.ones(3)), sf.LIF(tau_mem=torch.ones(4))]),
        ValueError,
        "tau_mem",
    ),
    "lane_count: a tree without lanes": (lambda: sf.lane_count(sf.LIF()), ValueError, "no tensor leaves"),
    "zipped: a single value": (lambda: sf.zipped(sf.LIF(), tau_mem=10.0), TypeError, "tau_mem"),
    "grid: text values": (lambda: sf.grid(sf.LIF(), tau_mem="abc"), TypeError, "tau_mem"),
    "replace: an unknown field": (lambda: sf.replace(sf.LIF(), tau=1.0), TypeError, "tau"),
    "to: an integer dtype": (lambda: sf.to(sf.LIF(), dtype=torch.int64), TypeError, "dtype"),
    # connectivity
    "all_to_all: a negative size": (lambda: conn.all_to_all(-1, 3), ValueError, "n_pre"),
    "all_to_all: a fractional size": (lambda: conn.all_to_all(2.5, 3), (TypeError, ValueError), "n_pre"),
    "one_to_one: negative": (lambda: conn.one_to_one(-1), ValueError, "n must be"),
    "one_to_one: targets beyond the neurons": (lambda: conn.one_to_one(3, targets=[3]), ValueError, "ascending"),
    "all_to_all: targets out of order": (lambda: conn.all_to_all(3, 5, targets=[2, 1]), ValueError, "ascending"),
    "fixed_probability: NaN": (lambda: conn.fixed_probability(3, 3, math.nan), ValueError, "p"),
    "fixed_probability: negative": (lambda: conn.fixed_probability(3, 3, -0.1), ValueError, "p"),
    "fixed_probability: a seed of text": (lambda: conn.fixed_probability(3, 3, 0.5, seed="1"), TypeError, "seed"),
    "fixed_in_degree: negative": (lambda: conn.fixed_in_degree(3, 3, -1), ValueError, "k"),
    "fixed_in_degree: without self, all sources": (
        lambda: conn.fixed_in_degree(3, 3, 3, allow_self=False),
        ValueError,
        "k",
    ),
    "fixed_out_degree: above the targets": (lambda: conn.fixed_out_degree(3, 3, 4), ValueError, "k"),
    "fixed_probability: targets out of order": (
        lambda: conn.fixed_probability(3, 5, 0.5, seed=1, targets=[3, 1]),
        ValueError,
        "ascending",
    ),
    "fixed_probability: float targets": (
        lambda: conn.fixed_probability(3, 5, 0.5, seed=1, targets=[0.5]),
        TypeError,
        "integer indices",
    ),
    "fixed_probability: more neurons than its keys tell apart": (
        lambda: conn.fixed_probability(2**32, 3, 0.5, seed=1),
        ValueError,
        "2\\*\\*32 - 1 neurons",
    ),
    "fixed_in_degree: targets beyond the population": (
        lambda: conn.fixed_in_degree(3, 5, 2, seed=1, targets=[5]),
        ValueError,
        "ascending",
    ),
    "fixed_in_degree: more sources than its hashes tell apart": (
        lambda: conn.fixed_in_degree(2**24 + 1, 3, 2, seed=1),
        ValueError,
        "n_pre must be at most 2\\*\\*24",
    ),
    "fixed_out_degree: more targets than its hashes tell apart": (
        lambda: conn.fixed_out_degree(3, 2**24 + 1, 2, seed=1),
        ValueError,
        "n_post must be at most 2\\*\\*24",
    ),
    "fixed_out_degree: a seed of text": (lambda: conn.fixed_out_degree(3, 3, 2, seed="1"), TypeError, "seed"),
    "fixed_total_number: negative": (lambda: conn.fixed_total_number(3, 3, -1), ValueError, "count"),
    "fixed_total_number: no targets": (lambda: conn.fixed_total_number(3, 0, 2), ValueError, "neurons on both sides"),
    "fixed_total_number: targets out of order": (
        lambda: conn.fixed_total_number(3, 5, 2, seed=1, targets=torch.tensor([3, 1])),
        ValueError,
        "distinct indices in \\[0, 5\\), ascending",
    ),
    "fixed_total_number: targets beyond the population": (
        lambda: conn.fixed_total_number(3, 5, 2, seed=1, targets=[5]),
        ValueError,
        "ascending",
    ),
    "fixed_total_number: float targets": (
        lambda: conn.fixed_total_number(3, 5, 2, seed=1, targets=[0.5]),
        TypeError,
        "targets must be integer indices",
    ),
    "fixed_total_number: more sources than its hashes tell apart": (
        lambda: conn.fixed_total_number(2**24 + 1, 3, 2, seed=1),
        ValueError,
        "n_pre must be at most 2\\*\\*24",
    ),
    "fixed_total_number: a seed of text": (lambda: conn.fixed_total_number(3, 3, 2, seed="1"), TypeError, "seed"),
    "keyed_uniform_rows: negative count": (
        lambda: conn.keyed_uniform_rows(1, torch.tensor([0, 1]), torch.tensor([2, -1]), 1),
        ValueError,
        "counts must be >= 0",
    ),
    "keyed_uniform_rows: rows and counts of other lengths": (
        lambda: conn.keyed_uniform_rows(1, torch.tensor([0, 1]), torch.tensor([2]), 1),
        ValueError,
        "of one length",
    ),
    "stable_order: a key beyond the bins": (
        lambda: conn.stable_order(torch.tensor([0, 4]), 4),
        ValueError,
        "keys must lie in \\[0, 4\\)",
    ),
    "stable_order: float keys": (lambda: conn.stable_order(torch.tensor([0.5]), 4), ValueError, "integers"),
    "target_pieces: pieces of zero": (
        lambda: list(conn.target_pieces(torch.tensor([1, 2]), 0)),
        ValueError,
        "size must be a positive int",
    ),
    "from_indices: negative index": (lambda: conn.from_indices([-1], [0], 3, 3), ValueError, "pre indices must lie in"),
    "from_indices: float indices": (lambda: conn.from_indices([0.5], [0], 3, 3), (TypeError, ValueError), "ind"),
    # projections and networks
    "dense projection: full set where the mask has gaps": (
        lambda: validate(
            sf.replace(
                sf.projection(
                    "a", "b", conn.fixed_probability(4, 4, 0.5, seed=0), 1.0, sf.Delta(), dt=0.1, kind="dense"
                ),
                full=True,
            )
        ),
        ValueError,
        r"full=True, but its mask leaves some \(source, target\) pairs out",
    ),
    "dense projection: full not a bool": (
        lambda: validate(
            sf.replace(sf.projection("a", "b", conn.all_to_all(2, 2), 1.0, sf.Delta(), dt=0.1, kind="dense"), full=1)
        ),
        TypeError,
        "DenseProjection.full must be True or False",
    ),
    "projection: an unknown kind": (
        lambda: sf.projection("a", "b", conn.all_to_all(2, 2), 0.1, sf.Delta(), dt=0.1, kind="csr"),
        ValueError,
        "kind",
    ),
    "projection: weights of the wrong length": (
        lambda: sf.projection("a", "b", conn.all_to_all(2, 2), torch.ones(3), sf.Delta(), dt=0.1),
        ValueError,
        "weight",
    ),
    "projection: integer weights": (
        lambda: sf.projection("a", "b", conn.all_to_all(2, 2), torch.ones(4, dtype=torch.int64), sf.Delta(), dt=0.1),
        TypeError,
        "weights",
    ),
    "projection: negative conductances": (
        lambda: sf.projection("a", "b", conn.all_to_all(2, 2), -0.1, sf.Exponential(e_rev=0.0), dt=0.1),
        ValueError,
        "conductance",
    ),
    "projection: a NaN delay": (
        lambda: sf.projection("a", "b", conn.all_to_all(2, 2), 0.1, sf.Delta(), dt=0.1, delay=math.nan),
        ValueError,
        "delays",
    ),
    "projection: dt zero": (
        lambda: sf.projection("a", "b", conn.all_to_all(2, 2), 0.1, sf.Delta(), dt=0.0),
        ValueError,
        "dt",
    ),
    "projection: a synapse that is not one": (
        lambda: sf.projection("a", "b", conn.all_to_all(2, 2), 0.1, "Exponential", dt=0.1),
        TypeError,
        "synapse",
    ),
    "projection: a rule that is not one": (
        lambda: sf.projection("a", "b", conn.all_to_all(2, 2), 0.1, sf.Delta(), dt=0.1, plasticity="STDP"),
        TypeError,
        "plasticity",
    ),
    "projection: an unknown propagation": (
        lambda: sf.validate(
            sf.replace(sf.projection("a", "b", conn.all_to_all(2, 2), 0.1, sf.Delta(), dt=0.1), propagation="magic")
        ),
        ValueError,
        "propagation must be one of auto, .* got 'magic'",
    ),
    "network: a projection to a missing population": (
        lambda: sf.Network(
            {"a": sf.Population(sf.LIF(), 2)},
            {"ab": sf.projection("a", "b", conn.all_to_all(2, 2), 0.1, sf.Delta(), dt=0.1)},
        ),
        ValueError,
        "'b'",
    ),
    "network: a projection of the wrong size": (
        lambda: sf.Network(
            {"a": sf.Population(sf.LIF(), 2), "b": sf.Population(sf.LIF(), 3)},
            {"ab": sf.projection("a", "b", conn.all_to_all(2, 2), 0.1, sf.Delta(), dt=0.1)},
        ),
        ValueError,
        "ab",
    ),
    "network: a projection onto a source": (
        lambda: sf.Network(
            {"a": sf.Population(sf.LIF(), 2), "b": sf.Population(sf.PoissonSource(), 2)},
            {"ab": sf.projection("a", "b", conn.all_to_all(2, 2), 0.1, sf.Delta(), dt=0.1)},
        ),
        ValueError,
        "b",
    ),
    "network: parts that do not add up": (
        lambda: sf.Population(sf.LIF(), 10, parts={"x": 3, "y": 3}),
        ValueError,
        "parts",
    ),
    "network: a part named with a dot": (
        lambda: sf.Population(sf.LIF(), 10, parts={"x.y": 10}),
        ValueError,
        "x.y",
    ),
    "network: a population of size zero": (lambda: sf.Population(sf.LIF(), 0), ValueError, "size"),
    "network: a drive for an unknown population": (
        lambda: sf.Network({"a": sf.Population(sf.LIF(), 2)}, {}, drive={"c": 1.0}),
        ValueError,
        "'c'",
    ),
    # analysis
    "mean_rate: dt zero": (lambda: analysis.mean_rate(torch.zeros(10, 3), 0.0), ValueError, "dt"),
    "mean_rate: a list": (lambda: analysis.mean_rate([[0.0]], 0.1), TypeError, "spikes"),
    "mean_rate: no steps": (lambda: analysis.mean_rate(torch.zeros(0, 3), 0.1), ValueError, "spikes"),
    "mean_rate: NaN records": (lambda: analysis.mean_rate(torch.full((5, 3), math.nan), 0.1), ValueError, "NaN"),
    "modulation_index: dt zero": (lambda: analysis.modulation_index(signal(), 0.0, (4, 6), (30, 50)), ValueError, "dt"),
    "modulation_index: dt negative": (
        lambda: analysis.modulation_index(signal(), -0.5, (4, 6), (30, 50)),
        ValueError,
        "dt",
    ),
    "modulation_index: a band above Nyquist": (
        lambda: analysis.modulation_index(signal(), 0.5, (4, 6), (900, 1200)),
        ValueError,
        "Nyquist frequency 1000 Hz",
    ),
    "modulation_index: a band narrower than the resolution": (
        lambda: analysis.modulation_index(signal()[:100], 0.5, (4, 6), (30, 50)),
        ValueError,
        "holds no frequency",
    ),
    "modulation_index: bins zero": (
        lambda: analysis.modulation_index(signal(), 0.5, (4, 6), (30, 50), bins=0),
        ValueError,
        "bins",
    ),
    "modulation_index: bins one": (
        lambda: analysis.modulation_index(signal(), 0.5, (4, 6), (30, 50), bins=1),
        ValueError,
        "bins",
    ),
    "modulation_index: one NaN sample": (
        lambda: analysis.modulation_index(torch.cat([signal(), torch.tensor([math.nan])]), 0.5, (4, 6), (30, 50)),
        ValueError,
        "NaN",
    ),
    "modulation_index: a 2-d signal": (
        lambda: analysis.modulation_index(torch.zeros(10, 2), 0.5, (4, 6), (30, 50)),
        ValueError,
        "1-d",
    ),
    "modulation_index: a band upside down": (
        lambda: analysis.modulation_index(signal(), 0.5, (6, 4), (30, 50)),
        ValueError,
        "band",
    ),
    "modulation_index: a band of text": (
        lambda: analysis.modulation_index(signal(), 0.5, ("a", "b"), (30, 50)),
        ValueError,
        "band",
    ),
    "band_analytic: a band at Nyquist": (
        lambda: analysis.band_analytic(signal(), 0.5, (10, 1000)),
        ValueError,
        "Nyquist",
    ),
    "oscillator: a frequency above Nyquist": (
        lambda: sf.simulate(sf.Oscillator(frequencies=600.0), sf.Oscillator().init_state(1), dt=1.0, steps=5),
        ValueError,
        "Oscillator.frequencies reaches 600 Hz, at or above the Nyquist frequency 500 Hz",
    ),
    "oscillator: an amp_freq at Nyquist": (
        lambda: sf.simulate(sf.Oscillator(amp_freq=500.0), sf.Oscillator().init_state(1), dt=1.0, steps=5),
        ValueError,
        "Oscillator.amp_freq",
    ),
    "oscillator: a lane above Nyquist": (
        lambda: sf.sweep(sf.grid(sf.Oscillator(), frequencies=[10.0, 700.0])[0], dt=1.0, steps=5, shape=1),
        ValueError,
        "Oscillator.frequencies reaches 700 Hz",
    ),
    "LIF: Euler with dt above tau_syn": (
        lambda: sf.simulate(sf.LIF(tau_syn=0.5, method="euler"), sf.LIF().init_state(1), dt=1.0, steps=5),
        ValueError,
        "dt=1.0 ms is too long for method='euler' with tau_syn down to 0.5 ms",
    ),
    "LIF: RK4 with dt far above tau_mem in one lane": (
        lambda: sf.sweep(sf.grid(sf.LIF(method="rk4"), tau_mem=[20.0, 0.1])[0], dt=1.0, steps=5, shape=1),
        ValueError,
        "with tau_mem down to 0.1 ms",
    ),
    # encoders
    "poisson_rate: values above 1": (lambda: encoders.poisson_rate(torch.tensor([1.5]), 10, 0.1), ValueError, "values"),
    "poisson_rate: NaN values": (
        lambda: encoders.poisson_rate(torch.tensor([math.nan]), 10, 0.1),
        ValueError,
        "values",
    ),
    "poisson_rate: steps zero": (lambda: encoders.poisson_rate(torch.tensor([0.5]), 0, 0.1), ValueError, "steps"),
    "poisson_rate: a rate beyond one spike per step": (
        lambda: encoders.poisson_rate(torch.tensor([0.5]), 10, 1.0, max_rate=2000.0),
        ValueError,
        "max_rate",
    ),
    "poisson_rate: a negative rate": (
        lambda: encoders.poisson_rate(torch.tensor([0.5]), 10, 1.0, max_rate=-1.0),
        ValueError,
        "max_rate",
    ),
    "poisson_rate: dt zero": (lambda: encoders.poisson_rate(torch.tensor([0.5]), 10, 0.0), ValueError, "dt"),
    "latency: t_max beyond the window": (
        lambda: encoders.latency(torch.tensor([0.5]), 10, 1.0, t_max=50.0),
        ValueError,
        "t_max",
    ),
    "latency: negative values": (lambda: encoders.latency(torch.tensor([-0.5]), 10, 1.0), ValueError, "values"),
    # short-term plasticity and current sources
    "TsodyksMarkram.U: above 1": (lambda: sf.TsodyksMarkram(U=1.5), ValueError, "U must be in"),
    "projection: short_term not a rule": (
        lambda: sf.projection("a", "b", conn.all_to_all(2, 2), 1.0, sf.Exponential(5.0), dt=0.1, short_term={"U": 0.5}),
        TypeError,
        "short_term must be None or a TsodyksMarkram",
    ),
    "DCCurrent: stop before start": (lambda: sf.DCCurrent(start=10.0, stop=5.0), ValueError, "must be after start"),
    "StepCurrent: times not increasing": (
        lambda: sf.StepCurrent(times=[3.0, 3.0], amplitudes=[1.0, 2.0]),
        ValueError,
        "times must increase strictly",
    ),
    "StepCurrent: amplitudes per time": (
        lambda: sf.StepCurrent(times=[1.0, 2.0, 3.0], amplitudes=[1.0, 2.0]),
        ValueError,
        "3 times, got 2",
    ),
    "ACCurrent: NaN phase": (lambda: sf.ACCurrent(phase=math.nan), ValueError, "phase must be finite"),
    "NoisyCurrent: text seed": (lambda: sf.NoisyCurrent(seed="one"), ValueError, "seed must be an int"),
    "NoisyCurrent: huge seed": (lambda: sf.NoisyCurrent(seed=2**40), ValueError, "seed must be an int"),
    "NoisyCurrent: negative stdev": (lambda: sf.NoisyCurrent(stdev=-1.0), ValueError, "stdev must be >= 0"),
    "NoisyCurrent: negative first": (lambda: sf.NoisyCurrent(first=-1), ValueError, "first must be >= 0"),
    # logging and checkpoints
    "NixRecordSink: gather zero": (
        lambda: NixRecordSink("never.nix", gather=0),
        ValueError,
        "gather must be None or a positive int",
    ),
    "NixRecordSink: gather True": (lambda: NixRecordSink("never.nix", gather=True), ValueError, "gather"),
    "NixRecordSink: gather a float": (lambda: NixRecordSink("never.nix", gather=2.5), ValueError, "gather"),
    "NixRecordSink: an existing file": (
        lambda: sf.simulate(sf.LIF(), lif_state(), dt=0.1, steps=5, sinks=[NixRecordSink(__file__)]),
        FileExistsError,
        "already exists",
    ),
    "read_records: a missing file": (lambda: read_records("no-such-file.nix"), FileNotFoundError, "no-such-file"),
    "read_records: a file that is not NIX": (lambda: read_records(__file__), ValueError, "not a readable NIX file"),
    "read_events: a file that is not NIX": (lambda: read_events(__file__, "a.spikes"), ValueError, "not a readable"),
    "TensorBoardSink: an unknown reduction": (lambda: TensorBoardSink("tb", reduce="median"), ValueError, "median"),
    "save_checkpoint: a fractional step": (
        lambda: save_checkpoint("x.ckpt", lif_state(), step=1.5),
        ValueError,
        "step",
    ),
    "load_checkpoint: a Python file": (lambda: load_checkpoint(__file__), ValueError, "not a readable"),
    "load_checkpoint: a model that is not a network": (
        lambda: load_checkpoint(__file__, model="network"),
        TypeError,
        "model must be the Network",
    ),
    "simulate: a checkpoint that is a path": (
        lambda: sf.simulate(sf.LIF(), lif_state(), dt=0.1, steps=5, checkpoint="run.ckpt", checkpoint_every=2),
        TypeError,
        "checkpoint must be a function checkpoint",
    ),
    "simulate: checkpoint_every zero": (
        lambda: sf.simulate(sf.LIF(), lif_state(), dt=0.1, steps=5, checkpoint=print, checkpoint_every=0),
        ValueError,
        "checkpoint_every must be a positive number of steps",
    ),
    "simulate: checkpoint_every True": (
        lambda: sf.simulate(sf.LIF(), lif_state(), dt=0.1, steps=5, checkpoint=print, checkpoint_every=True),
        ValueError,
        "checkpoint_every",
    ),
    "simulate: checkpoint_every without a checkpoint": (
        lambda: sf.simulate(sf.LIF(), lif_state(), dt=0.1, steps=5, checkpoint_every=2),
        TypeError,
        "given with checkpoint_every",
    ),
    "Checkpoints: a sink that cannot resume": (
        lambda: Checkpoints("x.ckpt", small_network(), sinks=[sf.PerLane([[]])]),
        TypeError,
        "PerLane cannot go on after a checkpoint",
    ),
    "Checkpoints: a folder that does not exist": (
        lambda: Checkpoints("no-such-folder/run.ckpt", small_network()),
        FileNotFoundError,
        "no folder .*no-such-folder to keep the checkpoints run.ckpt in",
    ),
    "Checkpoints: extra that is not a dict": (
        lambda: Checkpoints("x.ckpt", small_network(), extra=["note"]),
        TypeError,
        "extra must be a dict",
    ),
    "resume_sinks: a checkpoint without sinks' positions": (
        lambda: resume_sinks({"extra": {}}, []),
        ValueError,
        "not saved by Checkpoints",
    ),
    "resume_sinks: fewer sinks than positions": (
        lambda: resume_sinks({"extra": {"sinks": [{}]}}, []),
        ValueError,
        "positions of 1 sinks, but 0 were given",
    ),
    "TensorBoardSink: resumed from something else": (
        lambda: sf.simulate(sf.LIF(), lif_state(), dt=0.1, steps=5, sinks=[resumed(TensorBoardSink("tb"), 3)]),
        ValueError,
        "TensorBoardSink.resume takes what TensorBoardSink.checkpoint",
    ),
    "SpikeEvents: resumed from something else": (
        lambda: sf.simulate(
            sf.LIF(), lif_state(), dt=0.1, steps=5, record="spikes", sinks=[resumed(sf.SpikeEvents("spikes"), 3)]
        ),
        ValueError,
        "SpikeEvents.resume takes what SpikeEvents.checkpoint",
    ),
    "reshard: no shard": (lambda: reshard(small_network(), []), ValueError, "no shard"),
    "reshard: a shard whose model is a state": (
        lambda: reshard(small_network(), [(lif_state(), lif_state())]),
        TypeError,
        "must be a Network",
    ),
    # standard networks
    "coba: an unknown kind": (lambda: coba(400, kind="csr"), ValueError, "csr"),
    "coba: zero neurons": (lambda: coba(0), ValueError, "n"),
    "microcircuit: scale zero": (lambda: potjans2014.microcircuit(scale=0.0), ValueError, "scale"),
    "microcircuit: scale above one": (lambda: potjans2014.microcircuit(scale=2.0), ValueError, "scale"),
    "microcircuit: k_scale text": (lambda: potjans2014.microcircuit(scale=0.01, k_scale="x"), ValueError, "k_scale"),
    "SynapseTable: rows of zero slots": (
        lambda: sf.SynapseTable(torch.ones(3, dtype=torch.int64), 2, 0.1, width=0),
        ValueError,
        "width must be None",
    ),
    "SynapseTable: a width of True": (
        lambda: sf.SynapseTable(torch.ones(3, dtype=torch.int64), 2, 0.1, width=True),
        ValueError,
        "positive int of slots",
    ),
    "SynapseTable: a fractional width": (
        lambda: sf.SynapseTable(torch.ones(3, dtype=torch.int64), 2, 0.1, width=2.5),
        ValueError,
        "got 2.5",
    ),
    "SynapseTable: a capacity beyond the narrow rows": (
        lambda: narrow_table().projection("a", "b", sf.Delta(), capacity=9),
        ValueError,
        "the table's rows=8",
    ),
    "SparseProjection: first_row ending before the table's rows": (
        lambda: validate(
            sf.replace(narrow_table().projection("a", "b", sf.Delta()), first_row=torch.tensor([0, 1, 3, 7]))
        ),
        ValueError,
        "first_row must ascend from 0 to the table's 8 rows",
    ),
    "SparseProjection: first_row of int32": (
        lambda: validate(
            sf.replace(
                narrow_table().projection("a", "b", sf.Delta()), first_row=torch.tensor([0, 1, 3, 8], dtype=torch.int32)
            )
        ),
        ValueError,
        "first_row must be None or an int64 tensor of n_pre \\+ 1 = 4 entries",
    ),
    "propagate: first_row as int32": (
        lambda: narrow_propagate(first_row=torch.tensor([0, 2, 4, 8], dtype=torch.int32)),
        RuntimeError,
        "first_row must be an int64",
    ),
    "propagate: first_row of the wrong length": (
        lambda: narrow_propagate(first_row=torch.tensor([0, 2, 8])),
        RuntimeError,
        "first_row must be an int64 CPU tensor \\(N \\+ 1,\\)",
    ),
    "propagate: first_row descending": (
        lambda: narrow_propagate(first_row=torch.tensor([0, 4, 2, 8])),
        RuntimeError,
        "first_row must ascend",
    ),
    "propagate: first_row beyond the table": (
        lambda: narrow_propagate(first_row=torch.tensor([0, 2, 4, 9])),
        RuntimeError,
        "first_row must ascend within the table's rows",
    ),
    "microcircuit: an unknown background": (
        lambda: potjans2014.microcircuit(scale=0.01, background="noise"),
        ValueError,
        "background",
    ),
    "microcircuit: a scale without neurons": (
        lambda: potjans2014.microcircuit(scale=1e-9),
        RuntimeWarning,
        "fewer than one neuron",
    ),
    "microcircuit: an in-degree below one synapse": (
        lambda: potjans2014.microcircuit(scale=0.01, k_scale=1e-4),
        RuntimeWarning,
        "fewer than one recurrent synapse per neuron",
    ),
    # NIR
    "from_nir: a missing file": (lambda: from_nir("absent.nir", dt=0.1), FileNotFoundError, "absent.nir"),
    "from_nir: a file that is not NIR": (lambda: from_nir(__file__, dt=0.1), ValueError, "is not a readable NIR file"),
    "from_nir: an empty graph": (
        lambda: from_nir(nir_graph().__class__(nodes={}, edges=[]), dt=0.1),
        ValueError,
        "no nodes",
    ),
    "from_nir: an Output of another size": (
        lambda: from_nir(nir_graph(out=__import__("nir").Output(output_type={"output": np.array([5])})), dt=0.1),
        ValueError,
        "node 'out': an Output of 5 values after population 'lif' of 3 neurons",
    ),
    "from_nir: a negative time constant names the node": (
        lambda: from_nir(
            nir_graph(
                lif=__import__("nir").LIF(
                    tau=np.full(3, -1.0), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3)
                )
            ),
            dt=0.1,
        ),
        ValueError,
        "node 'lif': LIF.tau_mem must be > 0",
    ),
    "from_nir: no time unit": (
        lambda: from_nir(
            __import__("nir").NIRGraph(nodes=nir_graph().nodes, edges=nir_graph().edges, type_check=False), dt=0.1
        ),
        ValueError,
        "time_unit",
    ),
    "from_nir: a neuron node of no known size": (
        lambda: from_nir(
            nir_graph(
                lif=nir_node(
                    "LIF", tau=np.array(10.0), r=np.array(1.0), v_leak=np.array(0.0), v_threshold=np.array(1.0)
                ),
                **{"in": nir_node("Input", input_type={"input": np.array([])})},
            ),
            dt=0.1,
        ),
        ValueError,
        "its number of neurons is not declared",
    ),
    "from_nir: two node names that differ only by '.' and '_'": (
        lambda: from_nir(
            nir_graph(
                **{
                    "x.y": nir_node("Input", input_type={"input": np.array([2])}),
                    "x_y": nir_node("Input", input_type={"input": np.array([2])}),
                }
            ),
            dt=0.1,
        ),
        ValueError,
        "would both be called 'x_y'",
    ),
    "from_nir: not a graph": (lambda: from_nir({"nodes": {}}, dt=0.1), TypeError, "NIRGraph"),
    "from_nir: dt zero": (lambda: from_nir(nir_graph(), dt=0.0), ValueError, "dt"),
    # the estimator
    "SpikingRegressor: readout_alpha zero": (lambda: regressor(readout_alpha=0.0), ValueError, "readout_alpha"),
    "SpikingRegressor: readout_alpha NaN": (lambda: regressor(readout_alpha=math.nan), ValueError, "readout_alpha"),
    "SpikingRegressor: a NaN target": (lambda: regressor(y=np.array([0.0] * 9 + [math.nan])), ValueError, "NaN"),
    "SpikingRegressor: text targets": (lambda: regressor(y=np.array(["a"] * 10)), ValueError, "could not convert"),
    "SpikingRegressor: targets of another length": (lambda: regressor(y=np.zeros(7)), ValueError, "inconsistent"),
    "SpikingRegressor: an unknown encoder": (lambda: regressor(encoder="rank"), ValueError, "encoder"),
    "SpikingClassifier: random_state text": (lambda: classifier(random_state="x"), ValueError, "random_state"),
    "SpikingClassifier: random_state negative": (lambda: classifier(random_state=-1), ValueError, "random_state"),
    "SpikingClassifier: a silent hidden layer": (
        lambda: classifier(weight_scale=1e-9),
        RuntimeWarning,
        "the hidden layer never spiked",
    ),
    "SpikingClassifier: an unknown encoder": (lambda: classifier(encoder="rank"), ValueError, "encoder"),
    "SpikingClassifier: n_hidden zero": (lambda: classifier(n_hidden=0), ValueError, "n_hidden"),
    "SpikingClassifier: dt NaN": (lambda: classifier(dt=math.nan), ValueError, "dt"),
    "SpikingClassifier: duration below dt": (lambda: classifier(dt=1.0, duration=0.5), ValueError, "duration"),
    "SpikingClassifier: a negative rinse": (lambda: classifier(rinse=-1.0), ValueError, "rinse"),
    "SpikingClassifier: fast text": (lambda: classifier(fast="yes"), ValueError, "fast must be True or False"),
    "SpikingClassifier: receptive_fields zero": (
        lambda: classifier(receptive_fields=0),
        ValueError,
        "receptive_fields",
    ),
    "SpikingClassifier: receptive_fields text": (
        lambda: classifier(receptive_fields="many"),
        ValueError,
        "receptive_fields",
    ),
}


def _adapter_cases():
    from sapicore.learning.plasticity import STDPLearning
    from sapicore.neuron.spiking import LIFNeuron
    from sapicore.synapse.projection import ExponentialSynapse

    def learn_before_a_step():
        STDPLearning().apply_learning(
            LIFNeuron(shape=3), ExponentialSynapse(conn.all_to_all(3, 4), 0.2), LIFNeuron(shape=4)
        )

    def load_other_synapses():
        ExponentialSynapse(conn.fixed_out_degree(8, 8, 2, seed=2), 0.2).load_state_dict(
            ExponentialSynapse(conn.fixed_out_degree(8, 8, 2, seed=1), 0.2).state_dict()
        )

    def set_a_bad_parameter():
        LIFNeuron(shape=3).tau_mem = -1.0

    def a_conductance_synapse_without_v():
        ExponentialSynapse(conn.all_to_all(3, 4), 0.2, e_rev=0.0)(torch.ones(3))

    return {
        "object API: learning before any step": (learn_before_a_step, ValueError, "pre_neuron .* has no output yet"),
        "object API: a state saved from other synapses": (load_other_synapses, ValueError, "other synapses"),
        "object API: a negative time constant set on a neuron": (set_a_bad_parameter, ValueError, "tau_mem"),
        "object API: a conductance synapse without v_post": (a_conductance_synapse_without_v, ValueError, "v_post"),
    }


CASES.update(_adapter_cases())

COMMAND = {
    "no command": ([], "required"),
    "an unknown command": (["simulate", "coba"], "invalid choice"),
    "run: an unknown option": (["run", "coba", "--speed", "2"], "unrecognized arguments: --speed 2"),
    "run: a misspelled option": (["run", "coba", "--devcie", "cpu"], "did you mean --device\\?"),
    "run: a misspelled command": (["rnu", "coba"], "did you mean run\\?"),
    "run: a device this machine lacks": (
        ["run", "coba", "--device", "cuda:7" if torch.cuda.is_available() else "cuda"],
        "simulation.device: ",
    ),
    "run: an unknown device": (
        ["run", "coba", "--device", "tpu"],
        "simulation.device: expected a device such as cpu or cuda",
    ),
    "run: duration text": (["run", "coba", "--duration", "long"], "invalid float value"),
    "run: --set without =": (["run", "coba", "--set", "simulation.dt"], "expected KEY=VALUE"),
    "run: --set of a missing key": (["run", "coba", "--set", "simulation.nope.x=1"], "no such key"),
    "run: --set of an unknown key": (["run", "coba", "--set", "simulation.speed=1"], "unknown key"),
    "run: --set a value of the wrong type": (["run", "coba", "--set", "simulation.dt=fast"], "simulation.dt"),
    "run: a misspelled shipped spec": (
        ["run", "cobaa"],
        "no such spec file \\(shipped specs: coba, microcircuit\\); did you mean coba\\?",
    ),
    "run: a duration of zero": (["run", "coba", "--duration", "0"], "--duration must be a positive number"),
    "run: a negative duration": (["run", "coba", "--duration", "-1"], "--duration must be a positive number"),
    "run: the microcircuit at scale zero": (["run", "microcircuit", "--set", "builder.scale=0"], "builder.scale"),
    "run: an option the builder does not take": (
        ["run", "microcircuit", "--set", "builder.tables=2"],
        "builder.tables",
    ),
    "run: an unknown builder": (["run", "microcircuit", "--set", "builder.name=brunel"], "builder.name"),
    "run: an unknown transport between processes": (
        ["run", "coba", "--set", "simulation.transport=tcp"],
        "simulation.transport: expected one of auto, shared, gloo, got 'tcp'",
    ),
    "sweep: a spec without a sweep section": (["sweep", "coba"], "no sweep: section"),
    "sweep: a grid of an empty list": (
        ["sweep", "coba", "--set", "sweep={grid: {drive.neurons: []}}"],
        "non-empty list",
    ),
    "sweep: two kinds at once": (
        ["sweep", "coba", "--set", "sweep={grid: {drive.neurons: [1]}, zip: {drive.neurons: [1]}}"],
        "exactly one of grid, zip or random",
    ),
    "sweep: a lane with an impossible value": (
        ["sweep", "coba", "--set", "sweep={grid: {simulation.dt: [0.1, -0.1]}}"],
        "simulation.dt: expected a number > 0, got -0.1 \\(in lane 1",
    ),
    "sweep: ranks per network that is not a whole number": (
        ["sweep", "coba", "--set", "sweep={grid: {drive.neurons: [1]}, ranks_per_network: 1.5}"],
        "sweep.ranks_per_network: expected an integer >= 1, got 1.5",
    ),
    "sweep: ranks per network of zero": (
        ["sweep", "coba", "--set", "sweep={grid: {drive.neurons: [1]}, ranks_per_network: 0}"],
        "sweep.ranks_per_network: expected an integer >= 1, got 0",
    ),
    "sweep: more ranks per network than processes": (
        ["sweep", "coba", "--set", "sweep={grid: {drive.neurons: [1]}, ranks_per_network: 2}"],
        "sweep.ranks_per_network is 2, but torchrun started 1 process\\(es\\): start a multiple of it",
    ),
    "inspect: a missing file": (["inspect", "absent.nix"], "no NIX log at absent.nix"),
}


def _pynn_cases():
    """The PyNN backend's doors (tests/test_pynn.py holds its full table)."""
    import sapicore.pynn as sim

    return {
        "pynn: spike times out of order": (
            lambda: sim.Population(1, sim.SpikeSourceArray(spike_times=[3.0, 1.0])),
            Exception,
            "spike_times must be finite, non-negative and in increasing order",
        ),
        "pynn: a zero time step": (lambda: sim.setup(timestep=0.0), ValueError, "timestep must be a positive"),
        "pynn: step current times going back": (
            lambda: sim.StepCurrentSource(times=[2.0, 1.0], amplitudes=[1.0, 2.0]),
            ValueError,
            "times must be non-negative and increasing",
        ),
    }


CASES.update(_pynn_cases())
CASES.update(
    {
        "partition: no process group and no rank": (
            lambda: sf.partition(small_network()),
            RuntimeError,
            "partition needs rank and world",
        ),
        "partition: world given as a float": (
            lambda: sf.partition(small_network(), 0, 2.0),
            ValueError,
            "rank must lie in \\[0, world\\)",
        ),
        "partition: a neuron model, not a network": (
            lambda: sf.partition(sf.LIF(), 0, 2),
            TypeError,
            "takes a Network",
        ),
        "partition: more ranks than neurons": (
            lambda: sf.partition(small_network(), 1, 11),
            ValueError,
            "'a' has fewer neurons than there are ranks \\(11\\)",
        ),
        "partition: an unknown transport": (
            lambda: sf.partition(small_network(), 0, 2, transport="mpi"),
            ValueError,
            "transport must be one of 'auto', 'shared', 'gloo', got 'mpi'",
        ),
        "partition: an unknown transport set on a share": (
            lambda: setattr(sf.partition(small_network(), 0, 2).exchange, "transport", "nccl"),
            ValueError,
            "transport must be one of 'auto', 'shared', 'gloo', got 'nccl'",
        ),
        "partition_built: a projection onto an unknown population": (
            lambda: partition_built(small_network().populations, [("p", _projection("a", "c", 10, 10))], {}, 0, 2),
            ValueError,
            "projection 'p' has unknown target population 'c'",
        ),
        "partition_built: a projection of other sizes": (
            lambda: partition_built(small_network().populations, [("p", _projection("a", "a", 10, 11))], {}, 0, 2),
            ValueError,
            "projection 'p' connects 10 -> 11 neurons but 'a' has",
        ),
        "partition_built: projections as a dict": (
            lambda: partition_built(small_network().populations, {"p": _projection("a", "a", 10, 10)}, {}, 0, 2),
            TypeError,
            "takes the projections as \\(name, projection\\) pairs",
        ),
        "partition_built: a drive of an unknown population": (
            lambda: partition_built(small_network().populations, [], {"c": 0.1}, 0, 2),
            ValueError,
            "drive names unknown population 'c'",
        ),
        "partition_built: populations as a list": (
            lambda: partition_built(list(small_network().populations.values()), [], {}, 0, 2),
            TypeError,
            "takes the populations as a dict",
        ),
        "stack: shares of two ranks as lanes": (
            lambda: sf.stack([sf.partition(small_network(), 0, 2), sf.partition(small_network(), 1, 2)]),
            ValueError,
            "lanes are shares of different partitions",
        ),
        "sweep: lanes of a share without a process group": (
            lambda: sf.sweep(sf.stack([sf.partition(small_network(), 0, 2)] * 2), dt=0.1, steps=1),
            RuntimeError,
            "process group initialised on every rank",
        ),
        "simulate: a share without a process group": (
            lambda: (lambda share: sf.simulate(share, share.init_state(), dt=0.1, steps=1))(
                sf.partition(small_network(), 0, 2)
            ),
            RuntimeError,
            "process group initialised on every rank",
        ),
    }
)


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_refused_naming_the_culprit(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # cases that would write (a checkpoint, a log) write here
    make, error, message = CASES[case]
    if isinstance(error, type) and issubclass(error, Warning):
        with pytest.warns(error, match=message):
            make()
        return
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize("case", sorted(COMMAND))
def test_the_command_refuses_bad_arguments_in_one_line(case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv, message = COMMAND[case]
    try:
        code = main(argv + ["--out", str(tmp_path / "out")] if argv and argv[0] in ("run", "sweep") else argv)
    except SystemExit as done:  # argparse: usage and one error line
        code = done.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and __import__("re").search(message, err[-1]), err
    assert "Traceback" not in "\n".join(err)
    assert not (tmp_path / "out").exists()


def test_run_help_lists_the_shipped_specs_and_the_builders_options(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    assert "--device DEVICE" in text and "coba          The COBA benchmark network" in text
    assert "microcircuit  The cortical microcircuit" in text and "potjans2014   scale (0, 1]" in text
