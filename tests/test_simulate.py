import logging
import warnings

import pytest
import torch

import sapicore.functional as sf
from sapicore.functional import stepper as stepper_module


def reference_loop(model, state, inputs, dt):
    """The plainest possible loop over ``step``: what simulate must reproduce."""
    vs, spikes = [], []
    for x in inputs:
        state, out = model.step(state, x, dt)
        vs.append(state.v)
        spikes.append(out)
    return state, torch.stack(vs), torch.stack(spikes)


def test_simulate_equals_a_plain_loop_over_step(device):
    model = sf.LIF(tau_syn=3.0)
    state = model.init_state((4, 5), device=device)
    inputs = 3.0 * torch.rand(250, 4, 5, device=device)
    final, v, spikes = reference_loop(model, state, inputs, 0.1)
    got_final, rec = sf.simulate(model, state, inputs, dt=0.1, record=("v", "spikes"), chunk=100)
    assert torch.equal(rec["v"], v) and torch.equal(rec["spikes"], spikes)
    assert torch.equal(got_final.v, final.v) and torch.equal(got_final.i_syn, final.i_syn)
    assert rec["v"].device.type == device.type
    assert torch.allclose(rec["t"], 0.1 * torch.arange(1, 251, device=device, dtype=torch.float32))


def test_every_samples_states_and_sums_spikes_over_the_window():
    model = sf.LIF()
    state = model.init_state(3)
    inputs = 4.0 * torch.rand(1000, 3)
    _, full = sf.simulate(model, state, inputs, dt=0.1, record=("v", "spikes"))
    _, sparse = sf.simulate(model, state, inputs, dt=0.1, record=("v", "spikes"), every=10, chunk=30)
    assert sparse["v"].shape == (100, 3)
    assert torch.equal(sparse["v"], full["v"][9::10])
    assert torch.equal(sparse["spikes"], full["spikes"].reshape(100, 10, 3).sum(1))
    assert torch.allclose(sparse["t"], full["t"][9::10])
    assert full["spikes"].sum() > 0


def test_steps_not_a_multiple_of_every_or_chunk():
    model = sf.LIF()
    state = model.init_state(2)
    inputs = 4.0 * torch.rand(1003, 2)
    final_a, a = sf.simulate(model, state, inputs, dt=0.1, record=("v",), every=7, chunk=14)
    final_b, b = sf.simulate(model, state, inputs, dt=0.1, record=("v",))
    assert a["v"].shape == (1003 // 7, 2)
    assert torch.equal(a["v"], b["v"][6::7][: 1003 // 7])
    assert torch.equal(final_a.v, final_b.v)


def test_input_function_sees_the_start_time_of_each_step():
    model = sf.Analog()  # no memory: x is the input
    state = model.init_state(1, dtype=torch.float64)
    _, rec = sf.simulate(model, state, inputs=lambda t: t, duration=1.0, dt=0.25, record=("x",))
    assert torch.allclose(rec["x"][:, 0], torch.tensor([0.0, 0.25, 0.5, 0.75], dtype=torch.float64))


def test_constant_and_absent_inputs():
    model = sf.LIF()
    state = model.init_state(2)
    final, rec = sf.simulate(model, state, steps=100, dt=0.1, record=("v",))
    assert torch.allclose(rec["v"], torch.full((100, 2), -65.0))
    _, rec = sf.simulate(model, state, inputs=3.0, duration=50.0, dt=0.1)
    assert rec["spikes"].shape == (500, 2) and rec["spikes"].sum() > 0


def test_fast_path_equals_the_reference_loop():
    model = sf.LIF(tau_syn=2.0)
    state = model.init_state(50)
    inputs = 4.0 * torch.rand(205, 50)
    ref_final, ref = sf.simulate(model, state, inputs, dt=0.1, record=("v", "spikes"), every=5)
    fast_final, fast = sf.simulate(model, state, inputs, dt=0.1, record=("v", "spikes"), every=5, fast="aot_eager")
    assert torch.equal(fast["spikes"], ref["spikes"])
    assert torch.allclose(fast["v"], ref["v"], atol=1e-5)
    assert torch.allclose(fast_final.v, ref_final.v, atol=1e-5)


def test_a_compiled_run_is_reused_inside_and_outside_no_grad_and_gradients_still_flow():
    from torch._dynamo.utils import counters

    model = sf.LIF(tau_syn=2.0)
    state = model.init_state(8)
    inputs = 4.0 * torch.rand(40, 8)
    torch._dynamo.reset()
    sf.simulate(model, state, inputs, dt=0.1, record="v", fast="aot_eager")
    graphs = counters["stats"]["unique_graphs"]
    with torch.no_grad():  # no tensor needs a gradient: the run's grad mode is the same, so no recompile
        sf.simulate(model, state, inputs, dt=0.1, record="v", fast="aot_eager")
    assert counters["stats"]["unique_graphs"] == graphs
    current = inputs.clone().requires_grad_(True)  # one that does: autograd stays on and reaches it
    _, rec = sf.simulate(model, state, current, dt=0.1, record="v")
    rec["v"].sum().backward()
    assert current.grad is not None and bool(current.grad.abs().sum() > 0)


@pytest.mark.slow
def test_inductor_fast_path_equals_the_reference_loop(monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_COMPILE_THREADS", "1")
    model = sf.Izhikevich.preset("RS")
    state = model.init_state(64)
    inputs = 12.0 * torch.rand(400, 64)
    _, ref = sf.simulate(model, state, inputs, dt=0.1, record=("v", "spikes"))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*could not compile")  # a fallback would make this vacuous
        _, fast = sf.simulate(model, state, inputs, dt=0.1, record=("v", "spikes"), fast=True)
    assert torch.equal(fast["spikes"], ref["spikes"])
    assert torch.allclose(fast["v"], ref["v"], atol=1e-3)


def test_fast_path_falls_back_to_the_loop_with_one_warning(monkeypatch):
    def broken_compile(fn, **options):
        def fail(*args):
            raise RuntimeError("no compiler here")

        return fail

    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setenv("SAPICORE_COMPILE_CACHE", "off")  # chunks kept on disk do not go through torch.compile
    monkeypatch.setattr(stepper_module, "_FAST_FALLBACK_WARNED", set())
    model = sf.LIF()
    state = model.init_state(3)
    inputs = 4.0 * torch.rand(100, 3)
    _, ref = sf.simulate(model, state, inputs, dt=0.1)
    with pytest.warns(RuntimeWarning, match="could not compile \\(RuntimeError: no compiler here\\)"):
        _, got = sf.simulate(model, state, inputs, dt=0.1, fast=True)
    assert torch.equal(got["spikes"], ref["spikes"])
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*could not compile")
        sf.simulate(model, state, inputs, dt=0.1, fast=True)  # told once only


def test_progress_bar_counts_steps(capsys):
    model = sf.LIF()
    sf.simulate(model, model.init_state(2), steps=300, dt=0.1, progress=True, chunk=100)
    assert "300/300" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(dt=0.0, steps=10), ValueError, "dt must be a positive finite number"),
        (dict(dt=float("inf"), steps=10), ValueError, "dt must be a positive finite number"),
        (dict(dt=0.1), ValueError, "give steps= or duration="),
        (dict(dt=0.1, steps=10, duration=1.0), ValueError, "either steps or duration"),
        (dict(dt=0.1, steps=-3), ValueError, "steps must be a positive int"),
        (dict(dt=0.1, duration=-1.0), ValueError, "duration must be a positive number"),
        (dict(dt=0.1, steps=10, every=0), ValueError, "every must be a positive int"),
        (
            dict(dt=0.1, steps=10, record=("v", "w")),
            ValueError,
            "cannot record 'w'; LIF offers: v, refractory_left, i_syn, spikes",
        ),
        (dict(dt=0.1, steps=10, chunk=15, every=2), ValueError, "chunk must be a positive multiple of every=2"),
        (
            dict(dt=0.1, inputs=torch.ones(10, 3)),
            ValueError,
            "shape \\(3,\\) does not fit a population of shape \\(4,\\)",
        ),
        (
            dict(dt=0.1, inputs=torch.ones(10, 4), steps=20),
            ValueError,
            "inputs hold 10 steps .* inputs=lambda t: current",
        ),
        (
            dict(dt=0.1, inputs=torch.ones(10, 4, dtype=torch.float64)),
            TypeError,
            "dtype torch.float64 but the state is torch.float32",
        ),
        (
            dict(dt=0.1, inputs="ramp", steps=10),
            TypeError,
            "inputs must be a time-major tensor, a function of time t \\(ms\\), a number",
        ),
        (
            dict(dt=0.1, inputs=torch.ones(10, 4).index_fill_(0, torch.tensor([6]), float("nan"))),
            ValueError,
            "inputs has NaN or infinite values \\(the first at index \\(6, 0\\)\\)",
        ),
        (dict(dt=0.1, inputs=float("inf"), steps=10), ValueError, "a constant input must be finite"),
        (dict(dt=0.1, inputs=lambda t: torch.ones(5), steps=10), ValueError, "shape \\(5,\\) does not fit"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error, message):
    model = sf.LIF()
    inputs = kwargs.pop("inputs", None)
    with pytest.raises(error, match=message):
        sf.simulate(model, model.init_state(4), inputs, **kwargs)


def test_inconsistent_model_and_state_are_rejected():
    model = sf.LIF(tau_mem=torch.full((4,), 20.0, dtype=torch.float64))
    state = sf.LIF().init_state(4)
    with pytest.raises(TypeError, match="LIF.tau_mem has dtype torch.float64 but the state is torch.float32"):
        sf.simulate(model, state, steps=5, dt=0.1)
    with pytest.raises(ValueError, match="tau_mem must be > 0"):
        sf.simulate(sf.replace(sf.LIF(), tau_mem=-2.0), state, steps=5, dt=0.1)
    broken = sf.replace(state, v=torch.tensor([-65.0, float("nan"), -65.0, -65.0]))
    with pytest.raises(ValueError, match="state.v has NaN or infinite values \\(the first at index \\(1,\\)\\)"):
        sf.simulate(sf.LIF(), broken, steps=5, dt=0.1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_state_on_another_device_than_the_input_is_rejected():
    model = sf.LIF()
    state = model.init_state(4, device="cuda")
    with pytest.raises(ValueError, match="is on cpu but the state is on cuda"):
        sf.simulate(model, state, torch.ones(10, 4), dt=0.1)


@pytest.mark.parametrize("steps,size", [(300, 7), (2000, 300)])  # the second: 9,600 events, the store grows
def test_spike_events_sink_holds_every_spike_of_the_dense_record(steps, size):
    lif = sf.LIF(tau_mem=10.0, v_rest=-65.0, v_reset=-70.0, v_thresh=-50.0, r_mem=10.0, t_ref=1.0)
    current = 4.0 + torch.rand(steps, size)
    for every in (1, 4):
        events = sf.SpikeEvents("spikes")
        _, rec = sf.simulate(lif, lif.init_state((size,)), current, dt=0.1, every=every, sinks=[events], chunk=40)
        times, neurons = events.times["spikes"], events.neurons["spikes"]
        assert times.numel() == int(rec["spikes"].sum()) > 20
        counts = torch.zeros_like(rec["spikes"])
        counts.index_put_(
            (torch.round(times / (0.1 * every)).long() - 1, neurons), torch.ones(times.numel()), accumulate=True
        )
        assert torch.equal(counts, rec["spikes"])
        assert bool((times[1:] >= times[:-1]).all())
    with pytest.raises(ValueError, match="SpikeEvents keeps 'spikes' but the run does not record it"):
        sf.simulate(lif, lif.init_state((size,)), current, dt=0.1, record=("v",), sinks=[sf.SpikeEvents("spikes")])


class Collect:
    """A sink that keeps what it is given."""

    def begin(self, dt, every):
        self.chunks, self.ended = [], False

    def write(self, records):
        self.chunks.append(records)

    def end(self):
        self.ended = True


def test_a_last_chunk_shorter_than_a_window_reaches_no_sink(tmp_path):
    """600 steps recorded every 255: the last 90 steps take no record. Sinks get only whole windows
    (before, `SpikeEvents` failed on the empty chunk with a KeyError), and lose no spike."""
    lif = sf.LIF(tau_mem=10.0, v_rest=-65.0, v_reset=-70.0, v_thresh=-50.0, r_mem=10.0, t_ref=0.0)
    current = torch.full((600, 3), 40.0)  # fires often: a window of 255 steps counts dozens of spikes
    _, dense = sf.simulate(lif, lif.init_state(3), current, dt=0.1, every=255)
    sink, collect = sf.SpikeEvents("spikes"), Collect()
    sf.simulate(lif, lif.init_state(3), current, dt=0.1, every=255, sinks=[sink, collect], keep=False)
    assert [chunk["spikes"].shape[0] for chunk in collect.chunks] == [2] and collect.ended
    assert int(dense["spikes"].max()) > 40 and sink.times["spikes"].numel() == int(dense["spikes"].sum())


@pytest.mark.parametrize("fast", [False, "aot_eager"])
def test_sinks_get_every_chunk_in_order_as_cpu_tensors(device, fast):
    # on CUDA through pinned memory, one chunk late: the last chunk must still arrive
    lif = sf.LIF(tau_mem=10.0, v_rest=-65.0, v_reset=-70.0, v_thresh=-50.0, r_mem=10.0, t_ref=1.0)
    current = 4.0 + torch.rand(250, 7, device=device)
    sink = Collect()
    _, rec = sf.simulate(
        lif,
        lif.init_state(7, device=device),
        current,
        dt=0.1,
        chunk=40,
        sinks=[sink],
        fast=fast,
        record=("v", "spikes"),
    )
    assert sink.ended and [len(chunk["v"]) for chunk in sink.chunks] == [40] * 6 + [10]
    assert all(chunk["v"].device.type == "cpu" for chunk in sink.chunks)
    assert torch.equal(torch.cat([chunk["v"] for chunk in sink.chunks]), rec["v"].cpu())
    assert torch.equal(torch.cat([chunk["spikes"] for chunk in sink.chunks]), rec["spikes"].cpu())


def test_records_every_more_steps_than_the_run_is_an_error_not_an_empty_record():
    lif = sf.LIF()
    with pytest.raises(ValueError, match="every=20 steps is longer than the run \\(10 steps\\)"):
        sf.simulate(lif, lif.init_state(3), steps=10, dt=0.1, every=20)
    final, rec = sf.simulate(lif, lif.init_state(3), steps=10, dt=0.1, every=20, record=())  # nothing asked
    assert set(rec) == {"t"}


def test_subnormal_values_are_flushed_during_a_run_and_the_setting_restored():
    """A decaying current passes below float32's smallest normal number (1.2e-38) after a few hundred
    steps; during a run such values are taken as zero (they cost the CPU tens of times more per
    operation), and the caller's own setting is what it was after the run, either way."""
    from sapicore.functional.running.stepper import _flushing

    model = sf.LIF(tau_syn=1.0)
    pulse = torch.zeros(400, 1)
    pulse[0] = 1.0
    for before in (False, True):
        torch.set_flush_denormal(before)
        try:
            _, rec = sf.simulate(model, model.init_state(1), pulse, dt=0.25, record="i_syn")
            assert _flushing() is before
        finally:
            torch.set_flush_denormal(False)
        current = rec["i_syn"][:, 0]
        tiny = current[(current != 0) & (current.abs() < torch.finfo(torch.float32).tiny)]
        assert current[0] == 1.0 and tiny.numel() == 0 and current[-1] == 0.0


def test_the_first_compiled_chunk_is_announced_and_timed_on_the_compile_logger(caplog):
    model = sf.LIF()
    with caplog.at_level(logging.INFO, logger="sapicore.compile"):
        sf.simulate(model, model.init_state(3), torch.full((40, 3), 2.0), dt=0.1, fast="aot_eager", chunk=20)
    messages = [record for record in caplog.records if record.name == "sapicore.compile"]
    assert [m.getMessage().split(" (")[0] for m in messages[:1]] == ["compiling chunks of 20 steps"]
    assert len(messages) == 2 and messages[1].compile_seconds > 0 and messages[1].getMessage().startswith("compiled in")


def test_many_compiled_variants_in_one_process_stay_compiled():
    """Dynamo keeps at most 8 compiled variants of one function and runs further ones eagerly, without
    a word. Each run structure (Python numbers included) compiles under its own code object: twelve
    values of a float parameter all compile (a limit hit would raise here, and the fast path would
    warn), and going back to the first reuses its graph."""
    import torch._dynamo.config as dynamo_config

    from sapicore.functional.running import stepper

    inputs = torch.full((40, 3), 2.0)
    with dynamo_config.patch(fail_on_recompile_limit_hit=True), warnings.catch_warnings():
        warnings.simplefilter("error")
        runs = [
            sf.simulate(
                sf.LIF(tau_mem=5.0 + i), sf.LIF().init_state(3), inputs, dt=0.1, fast="aot_eager", chunk=20, record="v"
            )[1]["v"]
            for i in range(12)
        ]
        before = len(stepper._CODE_COPIES)
        again = sf.simulate(
            sf.LIF(tau_mem=5.0), sf.LIF().init_state(3), inputs, dt=0.1, fast="aot_eager", chunk=20, record="v"
        )[1]
    assert len(stepper._CODE_COPIES) == before and torch.equal(again["v"], runs[0])
    eager = [
        sf.simulate(sf.LIF(tau_mem=5.0 + i), sf.LIF().init_state(3), inputs, dt=0.1, record="v")[1]["v"]
        for i in (0, 11)
    ]
    assert (
        torch.allclose(runs[0], eager[0]) and torch.allclose(runs[11], eager[1]) and not torch.equal(runs[0], runs[11])
    )
