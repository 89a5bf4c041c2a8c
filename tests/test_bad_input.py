"""Incoherent and malformed input, per public entry point: each case asserts the exception type and
that the message names the culprit. (Specs and the command have their own table in test_spec_cli.)"""

import math

import pytest
import torch

import sapicore.functional as sf
from sapicore.checkpoint import load_checkpoint, save_checkpoint
from sapicore.functional import connectivity as conn
from sapicore.logging.nix import NixRecordSink


def network(delay=1.0, n=20, kind="sparse"):
    populations = {"a": sf.Population(sf.LIF(), n), "b": sf.Population(sf.LIF(), n)}
    ab = sf.projection(
        "a", "b", conn.fixed_probability(n, n, 0.3, seed=0), 0.5, sf.Exponential(), dt=0.1, delay=delay, kind=kind
    )
    return sf.Network(populations=populations, projections={"ab": ab}, drive={"a": 2.0})


def run(model, state, **kwargs):
    kwargs.setdefault("dt", 0.1)
    kwargs.setdefault("steps", 10)
    return sf.simulate(model, state, **kwargs)


def _with_nan_in_b(state):
    """A network state whose population b has a NaN potential at neuron 2 (after a's leaves)."""
    v = state.populations["b"].v.clone()
    v[2] = math.nan
    return sf.replace(state, populations={**state.populations, "b": sf.replace(state.populations["b"], v=v)})


def run_turning_nan(**kwargs):
    """A LIF run whose input turns NaN at t = 2.5 ms, in the second of two 20-step chunks."""
    inputs = lambda t: torch.where(t >= 2.5, math.nan, 1.0) * torch.ones(5)  # noqa: E731
    return run(sf.LIF(), lif_state(), inputs=inputs, steps=40, chunk=20, **kwargs)


def with_projection(state, **changes):
    return sf.replace(state, projections={"ab": sf.replace(state.projections["ab"], **changes)})


def lif_state(n=5):
    return sf.LIF().init_state(n)


CASES = {
    # models
    "model: unknown parameter": (lambda: sf.LIF(tau=10.0), TypeError, "unexpected keyword argument 'tau'"),
    "model: text for a number": (lambda: sf.LIF(tau_mem="10"), TypeError, "LIF.tau_mem must be a number"),
    "model: negative time constant": (lambda: sf.LIF(tau_mem=-1.0), ValueError, "LIF.tau_mem must be > 0"),
    "model: threshold below reset": (
        lambda: sf.LIF(v_thresh=-70.0, v_reset=-60.0),
        ValueError,
        "v_thresh",
    ),
    "model: AdEx peak below reset": (lambda: sf.AdEx(v_peak=-80.0), ValueError, "v_peak"),
    "model: equal rise and decay in one lane": (
        lambda: sf.DualExponential(tau_rise=torch.tensor([1.0, 5.0]), tau_decay=torch.tensor([5.0, 5.0])),
        ValueError,
        "tau_rise",
    ),
    "model: parameter that does not fit the population": (
        lambda: run(sf.LIF(tau_mem=torch.full((3,), 10.0)), lif_state(5)),
        ValueError,
        r"LIF.tau_mem has shape \(3,\), which does not broadcast to the population shape \(5,\)",
    ),
    "model: a string": (lambda: run("LIF", lif_state()), TypeError, "expected a neuron model .* got str"),
    # states
    "state: None": (lambda: run(sf.LIF(), None), TypeError, "state must be the model's state.* got NoneType"),
    "state: another model's class": (
        lambda: run(sf.LIF(), sf.AdEx().init_state(5)),
        ValueError,
        "state is of class AdExState where LIFState is needed: the state comes from another model than this LIF",
    ),
    "state: NaN": (
        lambda: run(sf.LIF(), sf.replace(lif_state(), v=torch.tensor([0.0, math.nan, 0, 0, 0]))),
        ValueError,
        r"state.v has NaN or infinite values \(the first at index \(1,\)\)",
    ),
    "state: NaN deep in a network's state (named by its path)": (
        lambda: run(network(), _with_nan_in_b(network().init_state())),
        ValueError,
        r"state.populations\['b'\].v has NaN or infinite values \(the first at index \(2,\)\)",
    ),
    "state: another network's delays": (
        lambda: run(network(delay=1.0), network(delay=3.0).init_state()),
        ValueError,
        r"state.projections\['ab'\].pending has shape \(31, 21\) where \(11, 21\) is needed: the state comes from "
        "another network",
    ),
    "state: another network's sizes": (
        lambda: run(network(n=20), network(n=30).init_state()),
        ValueError,
        r"state.populations\['a'\].v has shape \(30,\) where \(20,\) is needed",
    ),
    "state: a dense network's state for a sparse one": (
        lambda: run(network(kind="sparse"), network(kind="dense").init_state()),
        ValueError,
        r"state.projections\['ab'\].weights has shape \(20, 20\)",
    ),
    "state: a population missing": (
        lambda: run(network(), sf.replace(network().init_state(), populations={"b": lif_state(20)})),
        ValueError,
        r"state.populations holds \['b'\] where \['a', 'b'\] are needed",
    ),
    "state: weights cut short": (
        lambda: run(network(), with_projection(network().init_state(), weights=torch.zeros(3, 4))),
        ValueError,
        r"state.projections\['ab'\].weights has shape \(3, 4\)",
    ),
    # simulate
    "simulate: negative dt": (lambda: run(sf.LIF(), lif_state(), dt=-0.1), ValueError, "dt must be a positive"),
    "simulate: dt as a tensor": (
        lambda: run(sf.LIF(), lif_state(), dt=torch.tensor(0.1)),
        TypeError,
        "dt must be a Python number of milliseconds, got Tensor",
    ),
    "simulate: input of the wrong shape": (
        lambda: run(sf.LIF(), lif_state(), inputs=torch.ones(10, 7), steps=None),
        ValueError,
        r"input of shape \(7,\) does not fit a population of shape \(5,\)",
    ),
    "simulate: integer input": (
        lambda: run(sf.LIF(), lif_state(), inputs=torch.ones(10, 5, dtype=torch.int64), steps=None),
        TypeError,
        "input must be a floating tensor",
    ),
    "simulate: input with infinity": (
        lambda: run(sf.LIF(), lif_state(), inputs=torch.full((10, 5), math.inf), steps=None),
        ValueError,
        r"inputs has NaN or infinite values \(the first at index \(0, 0\)\)",
    ),
    "simulate: input function turning NaN mid-run": (
        lambda: run_turning_nan(),
        FloatingPointError,
        r"state.v became NaN or infinite during steps 21 to 40 \(t = 2 to 4 ms\)",
    ),
    "simulate: input turning NaN mid-run, in a compiled chunk (which computes the watched sum)": (
        lambda: run_turning_nan(fast="aot_eager"),
        FloatingPointError,
        r"state.v became NaN or infinite during steps 21 to 40 \(t = 2 to 4 ms\)",
    ),
    "simulate: record a number": (
        lambda: run(sf.LIF(), lif_state(), record=5),
        TypeError,
        "record must be a name or a list of names",
    ),
    "simulate: record an unknown name": (
        lambda: run(sf.LIF(), lif_state(), record=("w",)),
        ValueError,
        "cannot record 'w'; LIF offers",
    ),
    "simulate: every beyond the run": (
        lambda: run(sf.LIF(), lif_state(), every=20),
        ValueError,
        r"every=20 steps is longer than the run \(10 steps\)",
    ),
    "simulate: unknown compiler backend": (
        lambda: run(sf.LIF(), lif_state(), fast="nonsense"),
        ValueError,
        "fast='nonsense' names no torch.compile backend",
    ),
    "simulate: a network input turning NaN mid-run": (
        lambda: run(
            network(), network().init_state(), inputs=lambda t: {"b": torch.where(t >= 0.5, math.nan, 0.0)}, chunk=5
        ),
        FloatingPointError,
        r"state.populations\['b'\].v became NaN or infinite during steps 6 to 10",
    ),
    # sinks
    "sinks: one sink not in a list": (
        lambda: run(sf.LIF(), lif_state(), sinks=sf.SpikeEvents("spikes")),
        TypeError,
        "sinks must be a list of sinks, got SpikeEvents",
    ),
    "sinks: a file name": (
        lambda: run(sf.LIF(), lif_state(), sinks=["out.nix"]),
        TypeError,
        r"sinks\[0\] \(str\) is not a sink: it lacks begin, write, end",
    ),
    "sinks: events that are not recorded": (
        lambda: run(sf.LIF(), lif_state(), record=("v",), sinks=[sf.SpikeEvents("spikes")]),
        ValueError,
        "SpikeEvents keeps 'spikes' but the run does not record it",
    ),
    "sinks: a sampled variable kept as events": (
        lambda: run(sf.LIF(), lif_state(), record=("v",), sinks=[sf.SpikeEvents("v")]),
        ValueError,
        "SpikeEvents keeps 'v' as events, but it is a sampled variable",
    ),
    # sweep, grid
    "grid: a number where a list belongs": (
        lambda: sf.grid(sf.LIF(), tau_mem=10.0),
        TypeError,
        r"grid needs a list of values for tau_mem, got 10.0; write tau_mem=\[10.0\]",
    ),
    "grid: unknown parameter": (lambda: sf.grid(sf.LIF(), tau=[1.0]), ValueError, "LIF has no parameter 'tau'"),
    "grid: an empty list": (lambda: sf.grid(sf.LIF(), tau_mem=[]), ValueError, "empty list of values for tau_mem"),
    "zipped: lists of other lengths": (
        lambda: sf.zipped(sf.LIF(), tau_mem=[10.0, 20.0], t_ref=[1.0]),
        ValueError,
        "zipped needs value lists of one length",
    ),
    "sweep: a model that is not stacked": (
        lambda: sf.sweep(sf.LIF(), dt=0.1, steps=10, shape=3),
        ValueError,
        "no lanes; build lanes with sapicore.functional.stack",
    ),
    "sweep: a state without the lane axis": (
        lambda: sf.sweep(sf.grid(sf.LIF(), tau_mem=[10.0, 20.0])[0], lif_state(), dt=0.1, steps=10),
        ValueError,
        "state must carry a leading lane axis of size 2",
    ),
    "sweep: one lane turning NaN, strict": (
        lambda: sf.sweep(
            sf.zipped(sf.AdEx(), b=[0.0, 1e38])[0],  # lane 1: the adaptation current overflows at a spike
            inputs=lambda t: torch.full((3,), 5.0),
            dt=0.1,
            steps=400,
            chunk=100,
            shape=3,
            strict=True,
        ),
        FloatingPointError,
        "state.v in lane 1 became NaN or infinite during steps 1 to 100",
    ),
    # connectivity
    "connectivity: probability above one": (
        lambda: conn.fixed_probability(10, 10, 1.5),
        ValueError,
        r"probability p must lie in \[0, 1\], got 1.5",
    ),
    "connectivity: index out of range": (
        lambda: conn.from_indices([0, 11], [1, 2], 10, 10),
        ValueError,
        r"pre indices must lie in \[0, 10\)",
    ),
    "connectivity: index lists of other lengths": (
        lambda: conn.from_indices([0, 1, 2], [1, 2], 10, 10),
        ValueError,
        r"pre \(3\) and post \(2\) index lists differ in length",
    ),
    "connectivity: in-degree above the sources": (
        lambda: conn.fixed_in_degree(5, 5, 9, allow_self=True),
        ValueError,
        "k",
    ),
    # projections
    "projection: a name that is not text": (
        lambda: sf.projection(0, "b", conn.all_to_all(3, 3), 0.5, sf.Exponential(), dt=0.1),
        TypeError,
        "source must be a population name",
    ),
    "projection: connectivity as text": (
        lambda: sf.projection("a", "b", "all", 0.5, sf.Exponential(), dt=0.1),
        TypeError,
        "connectivity must be a Connectivity",
    ),
    "projection: NaN weight": (
        lambda: sf.projection("a", "b", conn.all_to_all(3, 3), math.nan, sf.Exponential(), dt=0.1),
        ValueError,
        "weights must be finite",
    ),
    "projection: negative normalisation": (
        lambda: sf.projection("a", "b", conn.all_to_all(3, 3), 0.5, sf.Exponential(), dt=0.1, normalize=-1.0),
        ValueError,
        "normalize must be None or a positive number",
    ),
    "projection: a delay needing gigabytes": (
        lambda: sf.projection("a", "b", conn.all_to_all(3, 3), 0.5, sf.Exponential(), dt=0.1, delay=1e9),
        ValueError,
        r"a delay of 1e\+09 ms is 10000000000 steps of dt=0.1 ms: the projection's delay buffer .* GiB; check the "
        r"delay's unit \(ms\) and dt",
    ),
    "projection: capacity of zero": (
        lambda: sf.projection("a", "b", conn.all_to_all(3, 3), 0.5, sf.Exponential(), dt=0.1, capacity=0),
        ValueError,
        r"capacity must be an int in \[1, n_pre=3\]",
    ),
    # networks
    "network: a population of text": (
        lambda: sf.Population("LIF", 5),
        TypeError,
        "Population model must be a neuron model such as LIF\\(\\), got 'LIF'",
    ),
    "network: an empty population": (
        lambda: sf.Population(sf.LIF(), 0),
        ValueError,
        "Population size must be a positive int",
    ),
    "network: a NaN drive": (
        lambda: sf.Network(populations={"a": sf.Population(sf.LIF(), 3)}, drive={"a": math.nan}),
        ValueError,
        r"drive\['a'\] has NaN or infinite values",
    ),
    "network: a drive of text": (
        lambda: sf.Network(populations={"a": sf.Population(sf.LIF(), 3)}, drive={"a": "2"}),
        TypeError,
        r"drive\['a'\] must be a number or a floating tensor \(nA\), got str",
    ),
    "network: inputs for an unknown population": (
        lambda: run(network(), network().init_state(), inputs={"c": 1.0}),
        ValueError,
        r"unknown populations or modulators \['c'\]",
    ),
    "network: another dt than its projections": (
        lambda: run(network(), network().init_state(), dt=0.2),
        ValueError,
        "built for dt=0.1 ms, not dt=0.2 ms",
    ),
    # checkpoints
    "checkpoint: a missing file": (
        lambda: load_checkpoint("/nonexistent/run.pt"),
        FileNotFoundError,
        "no checkpoint at /nonexistent/run.pt",
    ),
    "checkpoint: a negative step": (
        lambda: save_checkpoint("/tmp/never.pt", lif_state(), step=-1),
        ValueError,
        "step must be an int >= 0, got -1",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_naming_the_culprit(case):
    call, error, message = CASES[case]
    with pytest.raises(error, match=message):
        call()


def test_a_checkpoint_that_is_not_one_is_refused(tmp_path):
    torch.save({"a": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt is not a Sapicore checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ValueError, match="text.pt is not a readable Sapicore checkpoint"):
        load_checkpoint(tmp_path / "text.pt")


def test_a_nix_sink_asked_for_unrecorded_events_refuses_before_creating_its_file(tmp_path):
    path = tmp_path / "run.nix"
    with pytest.raises(ValueError, match="NixRecordSink keeps 'spikes' but the run does not record it"):
        run(sf.LIF(), lif_state(), record=("v",), sinks=[NixRecordSink(path, events=("spikes",))])
    assert not path.exists()


def test_the_nan_watch_keeps_large_finite_values_and_the_records_before_the_bad_chunk():
    lif = sf.LIF(v_thresh=1e30, v_reset=-60.0)  # v grows to about 1e29: large, finite
    state = lif.init_state(1000)
    run(lif, state, inputs=1e29, dt=0.1, steps=200, record=("v",))
    kept = sf.SpikeEvents("spikes")
    with pytest.raises(FloatingPointError, match="during steps 41 to 60"):
        run(
            sf.LIF(),
            lif_state(),
            inputs=lambda t: torch.where(t >= 5.0, math.nan, 50.0) * torch.ones(5),
            steps=100,
            chunk=20,
            sinks=[kept],
        )
    assert kept.times["spikes"].numel() > 0  # the sink ended with the chunks before the NaN
