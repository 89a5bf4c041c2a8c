"""Loggable declarations, NIX files (written, streamed, killed) and TensorBoard events."""

import math
import subprocess
import sys
import textwrap

import nixio
import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboardX import SummaryWriter

import sapicore.functional as sf
from sapicore.logging import (
    Loggable,
    dump_loggable,
    get_loggable_properties,
    load_save_get_loggable_properties,
    log_tensor_board,
    read_loggable_from_file,
    read_loggable_from_object,
    update_loggable_from_object,
)
from sapicore.logging.nix import NixLogReader, NixLogWriter, NixRecordSink, read_records
from sapicore.logging.tensorboard import TensorBoardSink
from sapicore.neuron.spiking import LIFNeuron


class Box(Loggable):
    _loggable_props_ = ("volume",)

    def __init__(self):
        self.volume = torch.arange(6.0).reshape(2, 3)


class Room(Loggable):
    _loggable_props_ = ("name_length",)
    _loggable_children_ = {"the box": "box"}

    def __init__(self):
        self.name_length = 4
        self.box = Box()


def test_loggable_dicts_round_trip_through_yaml_and_flatten(tmp_path):
    room = Room()
    loggable = read_loggable_from_object(room, False)
    assert loggable == {"the box": {"volume": False}, "name_length": False}
    loggable["the box"]["volume"] = True
    dump_loggable(tmp_path / "log.yaml", loggable)
    assert read_loggable_from_file(tmp_path / "log.yaml") == loggable
    flat = get_loggable_properties(room, loggable)
    assert [(path, prop) for path, _, prop, _ in flat] == [(["the box", "volume"], "volume")]
    assert update_loggable_from_object(room, {"name_length": True}, False) == {
        "the box": {"volume": False},
        "name_length": True,
    }
    assert len(load_save_get_loggable_properties(room, tmp_path / "new.yaml", True)) == 2
    with pytest.raises(ValueError, match="Room has no loggable property 'colour'"):
        get_loggable_properties(room, {"colour": True})


def test_missing_loggable_attribute_is_named():
    class Broken(Loggable):
        _loggable_props_ = ("missing",)

    with pytest.raises(AttributeError, match="Broken lists loggable property 'missing'"):
        read_loggable_from_object(Broken(), True)


def test_nix_writer_and_reader_round_trip_tensors_scalars_and_config(tmp_path):
    room = Room()
    path = tmp_path / "log.nix"
    flat = get_loggable_properties(room, read_loggable_from_object(room, True))
    with NixLogWriter(path, git_hash="abc", metadata={"seed": 3}, config_data={"tau": 20.0}) as writer:
        writer.create_block("train")
        arrays = writer.get_property_arrays("train", flat)
        for counter in range(3):
            room.box.volume = room.box.volume + 1
            room.name_length = counter
            writer.log(arrays, counter)
    with NixLogReader(path) as reader:
        assert reader.get_experiment_names() == ["train"]
        assert sorted(reader.get_experiment_property_paths("train")) == [("name_length",), ("the box", "volume")]
        counters, values = reader.get_experiment_property_data("train", ("the box", "volume"))
        assert counters.tolist() == [0, 1, 2]
        assert np.array_equal(values[2], (torch.arange(6.0).reshape(2, 3) + 3).numpy())
        assert reader.get_experiment_property_data("train", ("name_length",))[1] == [0.0, 1.0, 2.0]
        assert reader.get_config()["metadata"] == {"seed": 3} and reader.get_config()["config_data"] == {"tau": 20.0}
    with pytest.raises(FileExistsError, match="already exists; pass overwrite=True"):
        NixLogWriter(path).create_file()


def test_simulate_streams_records_into_nix_with_their_time_axis(tmp_path):
    model = sf.LIF()
    state = model.init_state(8)
    inputs = 4.0 * torch.rand(1000, 8)
    _, expected = sf.simulate(model, state, inputs, dt=0.1, record=("v", "spikes"), every=5)
    _, kept = sf.simulate(
        model,
        state,
        inputs,
        dt=0.1,
        record=("v", "spikes"),
        every=5,
        chunk=100,
        sinks=[NixRecordSink(tmp_path / "run.nix", flush_every=2)],
        keep=False,
    )
    assert set(kept) == {"t"}
    records = read_records(tmp_path / "run.nix")
    assert records["v"].shape == (200, 8) and np.allclose(records["v"], expected["v"].numpy())
    assert np.array_equal(records["spikes"], expected["spikes"].numpy())
    assert np.allclose(records["t"], expected["t"].numpy())
    with nixio.File.open(str(tmp_path / "run.nix"), nixio.FileMode.ReadOnly) as plain:  # plain nixio reads it too
        array = plain.blocks["records"].data_arrays["v"]
        assert array.shape == (200, 8) and array.dimensions[0].sampling_interval == pytest.approx(0.5)


def test_a_killed_run_keeps_every_flushed_chunk(tmp_path):
    path = tmp_path / "killed.nix"
    script = textwrap.dedent(f"""
        import os, signal, torch
        import sapicore.functional as sf
        from sapicore.logging.nix import NixRecordSink
        def drive(t):
            if float(t) >= 250.0:  # 2,500 steps in: die without any cleanup
                os.kill(os.getpid(), signal.SIGKILL)
            return 3.0
        model = sf.LIF()
        sf.simulate(model, model.init_state(4), drive, steps=10_000, dt=0.1, record=("v",), chunk=1000,
                    sinks=[NixRecordSink({str(path)!r}, gather=1)], keep=False)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert done.returncode == -9
    records = read_records(path)
    assert records["v"].shape == (2000, 4)  # the two chunks written before the kill


@pytest.mark.parametrize("gather", [50, None])
def test_a_killed_run_keeps_every_gathered_append(tmp_path, gather):
    """Chunks are appended ``gather`` at a time, or (by default) once the last append is a second old:
    a kill loses only the chunks gathered since the last append, and what the file holds is a whole
    number of chunks, exactly the records of the run's start. (By default each step sleeps 2 ms, so
    the 125 chunks before the kill take 2.5 s and at least one append happens.)"""
    path = tmp_path / "killed.nix"
    script = textwrap.dedent(f"""
        import os, signal, time, torch
        import sapicore.functional as sf
        from sapicore.logging.nix import NixRecordSink
        def drive(t):
            if float(t) >= 125.0:  # 1,250 steps (125 chunks) in
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep({0.002 if gather is None else 0.0})
            return 3.0
        model = sf.LIF()
        sf.simulate(model, model.init_state(4), drive, steps=10_000, dt=0.1, record=("v",), chunk=10,
                    sinks=[NixRecordSink({str(path)!r}, gather={gather!r})], keep=False)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert done.returncode == -9
    kept = read_records(path)["v"]
    model = sf.LIF()
    _, full = sf.simulate(model, model.init_state(4), lambda t: 3.0, steps=1300, dt=0.1, record=("v",), chunk=10)
    low = 1250 - 50 * 10 if gather == 50 else 10  # at most the last 50 chunks lost (a 1 s append may come first)
    assert low <= kept.shape[0] <= 1250 and kept.shape[0] % 10 == 0
    assert np.array_equal(kept, full["v"][: kept.shape[0]].numpy())


def test_corrupt_or_missing_nix_files_give_plain_errors(tmp_path):
    broken = tmp_path / "broken.nix"
    broken.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(ValueError, match="is not a readable NIX file"):
        read_records(broken)
    with pytest.raises(FileNotFoundError, match="no NIX log at"):
        NixLogReader(tmp_path / "absent.nix").open_file()


def test_tensorboard_events_are_read_back(tmp_path):
    model = sf.LIF()
    _, expected = sf.simulate(
        model,
        model.init_state(3),
        4.0 * torch.rand(300, 3),
        dt=0.1,
        record=("v",),
        every=10,
        sinks=[TensorBoardSink(tmp_path / "tb")],
    )
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    scalars = events.Scalars("v/mean")
    assert [e.step for e in scalars] == list(range(30))
    assert np.allclose([e.value for e in scalars], expected["v"].mean(1).numpy(), atol=1e-4)

    neuron = LIFNeuron(shape=2)
    writer = SummaryWriter(str(tmp_path / "props"))
    flat = get_loggable_properties(neuron, {"v": True})
    log_tensor_board(writer, flat, global_step=0)
    writer.close()
    events = EventAccumulator(str(tmp_path / "props"))
    events.Reload()
    assert sorted(events.Tags()["scalars"]) == ["v/0", "v/1"]


def test_spike_records_can_be_stored_as_events(tmp_path):
    from sapicore.logging.nix import read_events

    model = sf.LIF()
    inputs = 4.0 * torch.rand(1000, 6)
    _, expected = sf.simulate(model, model.init_state(6), inputs, dt=0.1, record=("v", "spikes"))
    sink = NixRecordSink(tmp_path / "events.nix", events=("spikes",))
    sf.simulate(model, model.init_state(6), inputs, dt=0.1, record=("v", "spikes"), chunk=300, sinks=[sink], keep=False)
    times, neurons = read_events(tmp_path / "events.nix", "spikes")
    steps, cells = torch.nonzero(expected["spikes"], as_tuple=True)
    assert len(times) == int(expected["spikes"].sum()) > 0
    order = np.lexsort((neurons, times))
    assert np.allclose(times[order], expected["t"][steps].numpy()) and np.array_equal(neurons[order], cells.numpy())
    assert set(read_records(tmp_path / "events.nix")) == {"v", "t"}


@pytest.mark.parametrize("gather", [1, None])
def test_events_of_several_populations_are_split_back_per_population(tmp_path, gather):
    """One scan serves every population's records; each name gets back exactly its own events (in
    the NIX file, whether chunks are appended one by one or together, and in SpikeEvents)."""
    from sapicore.logging.nix import read_events
    from sapicore.networks import coba, initial_state

    torch.manual_seed(3)
    net = coba(300, fan_in=20)
    names = ("exc.spikes", "inh.spikes")
    _, dense = sf.simulate(net, initial_state(net), dt=0.1, steps=600, record=(*names, "exc.v"))
    sink, kept = NixRecordSink(tmp_path / "net.nix", events=names, gather=gather), sf.SpikeEvents(names[::-1])
    sf.simulate(
        net, initial_state(net), dt=0.1, steps=600, record=("exc.v", *names), chunk=50, sinks=[sink, kept], keep=False
    )
    for name in names:
        steps, cells = torch.nonzero(dense[name], as_tuple=True)  # in time order, then neuron order
        assert len(steps) > 10
        times, neurons = read_events(tmp_path / "net.nix", name)
        assert np.allclose(times, dense["t"][steps].numpy()) and np.array_equal(neurons, cells.numpy())
        assert torch.allclose(kept.times[name], dense["t"][steps].double()) and torch.equal(kept.neurons[name], cells)
    assert np.allclose(read_records(tmp_path / "net.nix")["exc.v"], dense["exc.v"].numpy())


def test_events_keep_every_spike_when_records_sum_windows(tmp_path):
    from sapicore.logging.nix import read_events

    model = sf.LIF(t_ref=0.0)
    inputs = 40.0 * torch.rand(1000, 3)  # fast firing: several spikes per 5 ms window
    _, dense = sf.simulate(model, model.init_state(3), inputs, dt=0.1, every=50)
    sink = NixRecordSink(tmp_path / "w.nix", events=("spikes",))
    sf.simulate(model, model.init_state(3), inputs, dt=0.1, every=50, sinks=[sink], keep=False)
    times, neurons = read_events(tmp_path / "w.nix", "spikes")
    assert dense["spikes"].max() > 1 and len(times) == int(dense["spikes"].sum())


def test_every_sink_is_ended_when_one_fails_and_the_runs_own_failure_is_the_one_told(tmp_path):
    class Failing:
        def begin(self, dt, every):
            pass

        def write(self, records):
            pass

        def end(self):
            raise OSError("this sink could not close")

    log = NixRecordSink(tmp_path / "run.nix")
    with pytest.raises(OSError, match="could not close"):
        sf.simulate(sf.LIF(), sf.LIF().init_state(3), dt=0.1, steps=20, record="v", sinks=[Failing(), log])
    assert read_records(tmp_path / "run.nix")["v"].shape == (20, 3)  # closed whole all the same
    inputs = lambda t: torch.where(t >= 1.0, math.nan, 1.0) * torch.ones(3)  # noqa: E731
    with pytest.raises(FloatingPointError):
        sf.simulate(sf.LIF(), sf.LIF().init_state(3), inputs=inputs, dt=0.1, steps=40, chunk=20, sinks=[Failing()])
