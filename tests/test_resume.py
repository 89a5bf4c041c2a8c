"""Runs that save checkpoints as they go and resume after a kill: ``simulate(checkpoint=...)`` with
`sapicore.checkpoint.Checkpoints`, sinks that go on from a checkpoint (NIX, spike events,
TensorBoard), and ``sapicore run --checkpoint-every MS`` / ``--resume``. A resumed run ends with the
records and state of one uninterrupted run."""

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils._pytree import tree_flatten

import sapicore.functional as sf
from sapicore.checkpoint import Checkpoints, load_checkpoint, resume_sinks
from sapicore.cli import CHECKPOINT, LOCK, main
from sapicore.logging.nix import NixRecordSink, read_events, read_records
from sapicore.logging.tensorboard import TensorBoardSink

sys.path.insert(0, str(Path(__file__).parent))
from test_checkpoint import noisy_network  # noqa: E402

RECORD = ("noise.spikes", "cells.spikes", "cells.v", "drive.weights")
EVENTS = ("noise.spikes", "cells.spikes")
STEPS, EVERY = 1000, 2


class Stop:
    """A sink that interrupts the run (as Ctrl-C would) when it gets chunk ``at``."""

    def __init__(self, at: int) -> None:
        self.at, self.chunks = at, 0

    def begin(self, dt, every):
        pass

    def write(self, records):
        self.chunks += 1
        if self.chunks == self.at:
            raise KeyboardInterrupt

    def end(self):
        pass


def sinks(folder: Path, name: str) -> list:
    return [
        NixRecordSink(folder / f"{name}.nix", events=EVENTS),
        sf.SpikeEvents(EVENTS),
        TensorBoardSink(folder / f"{name}-tb"),
    ]


def same_state(a, b) -> bool:
    left, spec = tree_flatten(a)
    right, other = tree_flatten(b)
    return spec == other and all(torch.equal(x, y) for x, y in zip(left, right))


def test_a_run_killed_after_a_checkpoint_and_resumed_writes_what_one_uninterrupted_run_writes(tmp_path):
    """Poisson noise, STDP: killed in the chunk ending at step 700, after the checkpoint at step 600; the resumed run
    cuts the NIX file back to that step (the killed run had appended its 7th chunk) and goes on:
    events, sampled records, spike events in memory and the final state equal the uninterrupted
    run's; the TensorBoard sink goes on from the checkpoint's record."""
    net = noisy_network()
    chunk = 100  # checkpoints are taken between chunks, outside compiled code: fast=True takes them alike
    options = dict(dt=0.1, record=RECORD, every=EVERY, chunk=chunk, keep=False)
    torch.manual_seed(7)
    whole_sinks = sinks(tmp_path, "whole")
    final, _ = sf.simulate(net, net.init_state(), steps=STEPS, sinks=whole_sinks, **options)

    torch.manual_seed(7)
    first = sinks(tmp_path, "part")
    saving = Checkpoints(tmp_path / "run.ckpt", net, first, extra={"note": "kept"})
    with pytest.raises(KeyboardInterrupt):
        sf.simulate(
            net,
            net.init_state(),
            steps=STEPS,
            sinks=[*first, Stop(700 // chunk)],
            checkpoint=saving,
            checkpoint_every=300,
            **options,
        )
    assert saving.step == 600
    assert sorted(path.name for path in tmp_path.glob("run.ckpt*")) == ["run.ckpt", "run.ckpt.model"]
    assert torch.load(tmp_path / "run.ckpt", weights_only=False)["model"] is None  # the network is kept once, apart
    assert read_records(tmp_path / "part.nix")["cells.v"].shape[0] == 700 // EVERY  # the killed run wrote on
    torch.manual_seed(12345)  # whatever happens in between
    saved = load_checkpoint(tmp_path / "run.ckpt")
    assert saved["step"] == 600 and saved["extra"]["note"] == "kept"
    second = sinks(tmp_path, "part")
    resume_sinks(saved, second)
    resumed, _ = sf.simulate(saved["model"], saved["state"], steps=STEPS - 600, start_step=600, sinks=second, **options)
    assert same_state(resumed, final)
    for name in EVENTS:
        expected, found = read_events(tmp_path / "whole.nix", name), read_events(tmp_path / "part.nix", name)
        assert len(expected[0]) > 10 and all(np.array_equal(a, b) for a, b in zip(expected, found))
        assert torch.equal(second[1].times[name], whole_sinks[1].times[name])
        assert torch.equal(second[1].neurons[name], whole_sinks[1].neurons[name])
    expected, found = read_records(tmp_path / "whole.nix"), read_records(tmp_path / "part.nix")
    assert sorted(expected) == sorted(found) == ["cells.v", "drive.weights", "t"]
    assert all(np.array_equal(expected[name], found[name]) for name in expected)
    assert second[2].index == whole_sinks[2].index == STEPS // EVERY


def test_checkpoints_come_at_the_chunk_ends_where_a_multiple_is_reached_and_not_at_the_end():
    net = noisy_network()
    steps = []
    sf.simulate(
        net,
        net.init_state(),
        dt=0.1,
        steps=1000,
        start_step=50,
        chunk=100,
        checkpoint=lambda state, step: steps.append(step),
        checkpoint_every=150,
    )
    assert steps == [150, 350, 450, 650, 750, 950]  # chunk ends 150, 250, ... 1050 (the run's end)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda sink: sink.resume({"records": 0, "names": ("other.spikes",), "interval": 0.2}), "kept other.spikes"),
        (lambda sink: sink.resume({"records": 0, "names": EVENTS, "interval": 0.5}), "every 0.5 ms"),
        (lambda sink: sink.resume("position"), "takes what NixRecordSink.checkpoint"),
    ],
)
def test_a_sink_resumed_from_another_run_is_refused(tmp_path, change, message):
    net = noisy_network()
    sink = NixRecordSink(tmp_path / "run.nix", events=EVENTS)
    sf.simulate(net, net.init_state(), dt=0.1, steps=20, record=RECORD, every=EVERY, sinks=[sink])
    sink = NixRecordSink(tmp_path / "run.nix", events=EVENTS)
    change(sink)
    with pytest.raises(ValueError, match=message):
        sf.simulate(net, net.init_state(), dt=0.1, steps=20, record=RECORD, every=EVERY, sinks=[sink])


NIX_OPTIONS = dict(dt=0.1, record=RECORD, every=EVERY, chunk=10)


def nix_positions(net, path: Path, every: int) -> list[dict]:
    """Run ``net`` 40 steps into a NIX file at ``path``; the sink's position at each checkpoint."""
    sink, positions = NixRecordSink(path, events=EVENTS), []
    sf.simulate(
        net,
        net.init_state(),
        steps=40,
        sinks=[sink],
        checkpoint=lambda state, step: positions.append(sink.checkpoint()),
        checkpoint_every=every,
        **NIX_OPTIONS,
    )
    return positions


def test_a_damaged_nix_file_is_refused_saying_its_records_are_lost(tmp_path):
    net = noisy_network()
    positions = nix_positions(net, tmp_path / "run.nix", 20)
    (tmp_path / "run.nix").write_bytes((tmp_path / "run.nix").read_bytes()[:3000])  # killed mid-append
    again = NixRecordSink(tmp_path / "run.nix", events=EVENTS)
    again.resume(positions[0])
    with pytest.raises(
        ValueError, match=r"run.nix cannot be resumed \(truncated or corrupt: .*\): .* records are lost"
    ):
        sf.simulate(net, net.init_state(), steps=10, sinks=[again], **NIX_OPTIONS)


def test_a_nix_file_shorter_than_its_checkpoint_is_refused(tmp_path):
    """A sink given the position of a longer run's file refuses to cut a shorter file back to it."""
    net = noisy_network()
    short = [NixRecordSink(tmp_path / "short.nix", events=EVENTS)]
    sf.simulate(net, net.init_state(), steps=20, sinks=short, **NIX_OPTIONS)
    positions = nix_positions(net, tmp_path / "long.nix", 30)
    assert positions[0]["records"] == 15 and positions[0]["lengths"]["cells.v"] == 15
    other = NixRecordSink(tmp_path / "short.nix", events=EVENTS)
    other.resume(positions[0])
    with pytest.raises(
        ValueError, match=r"holds fewer records than the checkpoint it resumes from: .*cells.v \(10 of 15\)"
    ):
        sf.simulate(net, net.init_state(), steps=10, sinks=[other], **NIX_OPTIONS)


SPEC = textwrap.dedent("""
    simulation: {dt: 0.1, duration: 100000.0, seed: 3, record: [a.spikes, b.spikes, b.v], every: 2}
    populations:
      a: {model: PoissonSource, size: 60, parameters: {rate: 100.0}}
      b: {model: LIF, size: 40, parameters: {t_ref: 1.0}}
    projections:
      ab: {source: a, target: b, connectivity: {rule: fixed_in_degree, k: 10, seed: 2}, synapse: {model: Exponential, tau: 5.0}, weight: 2.0}
    drive: {b: 1.0}
    outputs: {nix: true, raster: true, tensorboard: true}
""")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_the_command_stopped_by_sigterm_resumes_to_the_outputs_of_one_uninterrupted_run(tmp_path, capsys):
    """``sapicore run --checkpoint-every 20``, stopped by SIGTERM once a checkpoint is there: one line
    saying the checkpoint stays; the folder holds it and the partial records; a plain rerun is
    refused; ``--resume`` (to a duration past the checkpoint) writes the records and summary of an
    uninterrupted run of that duration, and removes the checkpoint."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "sapicore", "run", str(spec), "--out", str(out), "--no-progress"]
    process = subprocess.Popen(
        [*command, "--checkpoint-every", "20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 120
    while not (out / CHECKPOINT).exists() and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert stderr.strip() == (
        f"sapicore: terminated (SIGTERM); its last checkpoint and partial records stay in {out}: continue with --resume"
    )
    assert {path.name for path in out.iterdir()} >= {CHECKPOINT, "records.part.nix", "tensorboard.part"}
    assert not (out / LOCK).exists()
    reached = load_checkpoint(out / CHECKPOINT)["step"] * 0.1
    duration = str(reached + 30.0)

    assert main(["run", str(spec), "--out", str(out), "--no-progress"]) == 2
    assert "holds an interrupted run (its checkpoint.pt); continue it with --resume" in capsys.readouterr().err
    assert main(["run", str(spec), "--out", str(out), "--no-progress", "--resume", "--set", "drive.b=2.0"]) == 2
    assert "differs from the spec of the run interrupted in" in capsys.readouterr().err
    assert main(["run", str(spec), "--out", str(out), "--no-progress", "--resume", "--duration", "10"]) == 2
    assert "give a --duration beyond it" in capsys.readouterr().err

    assert main(["run", str(spec), "--out", str(out), "--no-progress", "--resume", "--duration", duration]) == 0
    capsys.readouterr()
    assert main(["run", str(spec), "--out", str(tmp_path / "whole"), "--no-progress", "--duration", duration]) == 0
    assert sorted(path.name for path in out.iterdir()) == sorted(path.name for path in (tmp_path / "whole").iterdir())
    for name in ("a.spikes", "b.spikes"):
        expected, found = read_events(tmp_path / "whole" / "records.nix", name), read_events(out / "records.nix", name)
        assert len(expected[0]) > 100 and all(np.array_equal(x, y) for x, y in zip(expected, found))
    assert np.array_equal(
        read_records(tmp_path / "whole" / "records.nix")["b.v"], read_records(out / "records.nix")["b.v"]
    )
    summaries = [json.loads((folder / "summary.json").read_text()) for folder in (tmp_path / "whole", out)]
    assert summaries[0]["mean_rate_hz"] == summaries[1]["mean_rate_hz"]
    assert summaries[1]["resumed_at_ms"] == pytest.approx(reached)


def test_the_command_refuses_resuming_what_cannot_be_resumed(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "out"
    run = ["run", str(spec), "--out", str(out), "--no-progress", "--duration", "20"]
    assert main([*run, "--resume"]) == 2
    assert "holds no interrupted run to resume (no checkpoint.pt)" in capsys.readouterr().err
    assert not out.exists()
    assert main([*run, "--resume", "--overwrite"]) == 2
    assert (
        "give --resume (continue the interrupted run) or --overwrite (start again), not both" in capsys.readouterr().err
    )
    for every in ("0", "-5", "nan", "0.01"):
        assert main([*run, "--checkpoint-every", every]) == 2
        assert "--checkpoint-every" in capsys.readouterr().err
    assert main([*run, "--checkpoint-every", "5"]) == 0  # a run that completes leaves no checkpoint
    assert not (out / CHECKPOINT).exists()


def test_the_network_is_written_once_and_read_with_each_checkpoint(tmp_path):
    """`Checkpoints` writes the network at its first checkpoint only; each checkpoint names that file;
    a missing or foreign network file is refused in one line."""
    net = noisy_network()
    state = net.init_state()
    saving = Checkpoints(tmp_path / "run.ckpt", net)
    saving(state, 10)
    written = (tmp_path / "run.ckpt.model").stat().st_mtime_ns
    saving(state, 20)
    assert (tmp_path / "run.ckpt.model").stat().st_mtime_ns == written
    saved = load_checkpoint(tmp_path / "run.ckpt")
    assert saved["step"] == 20 and same_state(saved["model"], net)
    torch.save({"weights": torch.ones(2)}, tmp_path / "run.ckpt.model")
    with pytest.raises(ValueError, match="run.ckpt.model is not the network of a Sapicore checkpoint"):
        load_checkpoint(tmp_path / "run.ckpt")
    (tmp_path / "run.ckpt.model").unlink()
    with pytest.raises(FileNotFoundError, match="no checkpoint's network at .*run.ckpt.model"):
        load_checkpoint(tmp_path / "run.ckpt")


def test_a_network_file_that_holds_the_network_already_is_not_written_again(tmp_path):
    """A resumed run's `Checkpoints` finds the interrupted run's network file: kept where it holds the
    same network (structure, settings, every tensor), written again where anything differs or the
    file is damaged."""
    from sapicore.functional.pytree import replace

    net = noisy_network()
    state = net.init_state()
    Checkpoints(tmp_path / "run.ckpt", net)(state, 10)
    path = tmp_path / "run.ckpt.model"
    written = path.stat().st_mtime_ns
    Checkpoints(tmp_path / "run.ckpt", noisy_network())(state, 20)  # rebuilt alike: kept
    assert path.stat().st_mtime_ns == written
    projection = net.projections["drive"]
    heavier = replace(
        net, projections={**net.projections, "drive": replace(projection, weights=projection.weights * 2)}
    )
    later = replace(net, projections={**net.projections, "drive": replace(projection, delays=projection.delays + 1)})
    for other in (heavier, later):
        Checkpoints(tmp_path / "run.ckpt", other)(other.init_state(), 30)
        assert path.stat().st_mtime_ns != written and same_state(load_checkpoint(tmp_path / "run.ckpt")["model"], other)
        written = path.stat().st_mtime_ns
    path.write_bytes(path.read_bytes()[:100])  # cut short
    Checkpoints(tmp_path / "run.ckpt", other)(other.init_state(), 40)
    assert same_state(load_checkpoint(tmp_path / "run.ckpt")["model"], other)


def test_fixed_weights_are_the_resumed_networks_where_they_hold_the_same_values(tmp_path):
    """A static projection's weights are its network's tensors, not the state's: checkpoints name them
    with a digest. Loaded onto the same network rebuilt, the state shares the rebuilt network's
    tensor (no second copy); onto a network whose weights differ, it keeps the saved values."""
    from sapicore.functional.pytree import replace
    from sapicore.networks import coba, initial_state

    net = coba(400, dt=0.1)
    state = initial_state(net)
    assert state.projections["excitatory"].weights is net.projections["excitatory"].weights
    Checkpoints(tmp_path / "run.ckpt", net)(state, 10)
    written = torch.load(tmp_path / "run.ckpt", weights_only=False)["state"].projections["excitatory"].weights
    assert type(written).__name__ == "_InModel"  # a place and a digest, not the values again
    rebuilt = coba(400, dt=0.1)
    saved = load_checkpoint(tmp_path / "run.ckpt", model=rebuilt)
    assert saved["state"].projections["excitatory"].weights is rebuilt.projections["excitatory"].weights
    projection = rebuilt.projections["excitatory"]
    heavier = replace(
        rebuilt, projections={**rebuilt.projections, "excitatory": replace(projection, weights=projection.weights * 2)}
    )
    kept = load_checkpoint(tmp_path / "run.ckpt", model=heavier)["state"].projections["excitatory"].weights
    assert kept is not heavier.projections["excitatory"].weights
    assert torch.equal(kept, net.projections["excitatory"].weights)
    alone = load_checkpoint(tmp_path / "run.ckpt")
    assert torch.equal(alone["state"].projections["excitatory"].weights, net.projections["excitatory"].weights)
    Checkpoints(tmp_path / "other.ckpt", heavier)(initial_state(heavier), 10)  # another run's network file
    (tmp_path / "other.ckpt.model").replace(tmp_path / "run.ckpt.model")
    with pytest.raises(ValueError, match="network file no longer holds the values its state names"):
        load_checkpoint(tmp_path / "run.ckpt")


def test_checkpoints_into_a_folder_that_cannot_take_them_are_refused_before_the_run(tmp_path):
    """Found when `Checkpoints` is made, not at its first checkpoint hours into a run."""
    from test_cli_failures import mounted

    net = noisy_network()
    with pytest.raises(FileNotFoundError, match="no folder .*absent to keep the checkpoints run.ckpt in"):
        Checkpoints(tmp_path / "absent" / "run.ckpt", net)
    source = tmp_path / "source"
    source.mkdir()
    with mounted(tmp_path / "readonly", "ro", source=str(source), kind="bind") as folder:
        with pytest.raises(PermissionError, match="cannot write the checkpoints run.ckpt into .*readonly"):
            Checkpoints(folder / "run.ckpt", net)
