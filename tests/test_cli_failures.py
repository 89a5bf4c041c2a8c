"""The command's edges: folders that never mix, failures in one line (no space, read-only, Ctrl-C,
SIGTERM) that leave nothing behind, and runs too large for their disk refused before they start."""

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from tree_config.yaml import yaml_dumps, yaml_loads

from sapicore.cli import LOCK, main

SPEC = textwrap.dedent("""
    simulation: {dt: 0.1, duration: 50.0, seed: 3, record: [a.spikes, a.v], every: 5}
    populations:
      a: {model: LIF, size: 20, parameters: {t_ref: 1.0}}
    drive: {a: 3.0}
    outputs: {nix: true, raster: true, tensorboard: false}
""")
SWEEP = SPEC + "sweep:\n  grid: {drive.a: [2.0, 3.0, 4.0, 5.0]}\n"


def spec_file(folder: Path, text: str = SPEC, **changes) -> Path:
    data = yaml_loads(text)
    for dotted, value in changes.items():
        *keys, last = dotted.split("__")
        node = data
        for key in keys:
            node = node[key]
        node[last] = value
    path = folder / "spec.yaml"
    path.write_text(yaml_dumps(data))
    return path


def files(folder: Path) -> dict:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def sapicore(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "sapicore", *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_a_finished_folder_is_replaced_only_when_asked_and_then_holds_the_new_run_alone(tmp_path, capsys):
    spec = spec_file(tmp_path)
    out = tmp_path / "out"
    assert main(["sweep", str(spec_file(tmp_path, SWEEP)), "--out", str(out), "--no-progress"]) == 0
    assert (out / "lanes" / "3" / "records.nix").exists()
    before = files(out)
    assert main(["run", str(spec), "--out", str(out), "--no-progress"]) == 2
    assert one_line(capsys.readouterr().err) == (
        f"sapicore: error: {out} holds the outputs of an earlier run (sweep.csv, sweep.json, lanes); give another "
        "--out, or --overwrite to replace them"
    )
    assert files(out) == before  # untouched
    spec = spec_file(tmp_path, SPEC, outputs__raster=False)
    assert main(["run", str(spec), "--out", str(out), "--no-progress", "--overwrite"]) == 0
    assert sorted(path.name for path in out.iterdir()) == ["records.nix", "spec.yaml", "summary.json"]


def test_a_smaller_sweep_replaces_the_lanes_of_a_larger_one_as_a_whole(tmp_path):
    out = tmp_path / "out"
    assert main(["sweep", str(spec_file(tmp_path, SWEEP)), "--out", str(out), "--no-progress"]) == 0
    two = SPEC + "sweep:\n  grid: {drive.a: [2.0, 3.0]}\n"
    assert main(["sweep", str(spec_file(tmp_path, two)), "--out", str(out), "--no-progress", "--overwrite"]) == 0
    assert sorted(path.name for path in (out / "lanes").iterdir()) == ["0", "1"]
    assert len((out / "sweep.csv").read_text().splitlines()) == 3


def test_claiming_a_folder_removes_partial_files_a_killed_run_left_anywhere_under_it(tmp_path):
    out = tmp_path / "out"
    for stale in (out / "records.part.nix", out / "lanes.part" / "3" / "records.part.nix", out / "summary.part.json"):
        stale.parent.mkdir(parents=True, exist_ok=True)
        stale.write_bytes(b"half a file")
    (out / "notes.part.txt").write_text("the user's own file")  # not one of ours: kept
    assert main(["run", str(spec_file(tmp_path)), "--out", str(out), "--no-progress"]) == 0
    assert not (out / "lanes.part").exists() and not list(out.rglob("*.part.nix")) and not list(out.glob("*.part.json"))
    assert (out / "notes.part.txt").exists() and not (out / LOCK).exists()


@pytest.mark.parametrize(
    "argument, message",
    [
        ("0", "--duration must be a positive number of milliseconds, got 0"),
        ("-5", "--duration must be a positive number of milliseconds, got -5"),
        ("nan", "--duration must be a positive number of milliseconds, got nan"),
        ("inf", "--duration must be a positive number of milliseconds, got inf"),
        ("0.01", "--duration 0.01 ms is shorter than one step (dt = 0.1 ms)"),
    ],
)
def test_durations_that_are_no_run_are_refused(tmp_path, capsys, argument, message):
    spec = spec_file(tmp_path)
    for command in ("run", "sweep"):
        used = spec if command == "run" else spec_file(tmp_path, SWEEP)
        assert main([command, str(used), "--out", str(tmp_path / "new"), "--duration", argument]) == 2
        assert one_line(capsys.readouterr().err) == f"sapicore: error: {used}: {message}"
        assert not (tmp_path / "new").exists()


def test_run_refuses_a_spec_with_a_sweep_section_and_names_the_command_that_runs_it(tmp_path, capsys):
    spec = spec_file(tmp_path, SWEEP)
    assert main(["run", str(spec), "--out", str(tmp_path / "new")]) == 2
    assert one_line(capsys.readouterr().err) == (
        f"sapicore: error: {spec}: has a sweep: section; run its lanes with 'sapicore sweep {spec}'"
    )


def test_a_run_too_large_for_its_disk_is_refused_with_both_numbers(tmp_path, capsys):
    spec = spec_file(tmp_path, SPEC, simulation__dt=0.001, simulation__every=1)
    assert main(["run", str(spec), "--out", str(tmp_path / "new"), "--duration", "1e9"]) == 2
    error = one_line(capsys.readouterr().err)
    assert error.startswith(
        f"sapicore: error: {tmp_path / 'new'}: this run would write 80.0 TB of records (a.v: 80.0 TB)"
    )
    assert " are free; record fewer variables, raise simulation.every, or shorten the run" in error
    assert not (tmp_path / "new").exists()


def test_an_out_inside_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "file.txt").write_text("keep")
    out = tmp_path / "file.txt" / "out"
    assert main(["run", str(spec_file(tmp_path)), "--out", str(out)]) == 2
    assert one_line(capsys.readouterr().err) == (
        f"sapicore: error: {out}: Not a directory; a part of that path is a file, not a folder"
    )


@contextlib.contextmanager
def mounted(folder: Path, options: str, source: str = "tmpfs", kind: str = "tmpfs"):
    """A tmpfs (or a bind mount) at ``folder``; skips where this user may not mount (root on Linux)."""
    folder.mkdir(parents=True, exist_ok=True)
    command = ["mount", "-t", kind, "-o", options, source, str(folder)]
    if kind == "bind":
        command = ["mount", "--bind", "-o", options, source, str(folder)]
    if not sys.platform.startswith("linux") or subprocess.run(command, capture_output=True).returncode != 0:
        pytest.skip("cannot mount a file system here (needs root on Linux)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def test_a_read_only_out_is_one_line(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    with mounted(tmp_path / "readonly", "ro", source=str(source), kind="bind") as folder:
        done = sapicore("run", spec_file(tmp_path), "--out", folder / "out")
        assert done.returncode == 2
        assert one_line(done.stderr) == (
            f"sapicore: error: {folder / 'out'}: Read-only file system; give an --out on a writable disk"
        )


def test_a_full_disk_while_streaming_the_log_is_one_line_and_leaves_older_outputs_as_they_were(tmp_path):
    with mounted(tmp_path / "disk", "size=4m") as disk:
        out = disk / "out"
        small = sapicore("run", spec_file(tmp_path), "--out", out, "--no-progress")
        assert small.returncode == 0, small.stderr
        before = files(out)
        big = spec_file(  # only spikes: the estimate before the run sees no sampled records, the stream fills the disk
            tmp_path,
            SPEC.replace("size: 20", "size: 2000"),
            simulation__duration=5000.0,
            simulation__record=["a.spikes"],
        )
        done = sapicore("run", big, "--out", out, "--no-progress", "--overwrite")
        assert done.returncode == 2, done.stderr  # not a crash (139)
        error = one_line(done.stderr)
        assert error.startswith(
            f"sapicore: error: {out / 'records.part.nix'}: no space left on device for this NIX log"
        )
        assert files(out) == before and not (out / LOCK).exists()


def test_a_full_disk_while_drawing_the_raster_is_one_line(tmp_path):
    with mounted(tmp_path / "disk", "size=24k") as disk:
        spec = spec_file(tmp_path, SPEC, outputs__nix=False)
        done = sapicore("run", spec, "--out", disk / "out", "--no-progress")
        assert done.returncode == 2, done.stderr
        error = one_line(done.stderr)
        assert error.startswith(f"sapicore: error: {disk / 'out' / 'raster.part.png'}: No space left on device")
        assert not (disk / "out").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize(
    "signum, code, message", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated (SIGTERM)")]
)
def test_ctrl_c_and_sigterm_mid_run_clean_up_in_one_line(tmp_path, signum, code, message):
    out = tmp_path / "out"
    first = sapicore("run", spec_file(tmp_path), "--out", out, "--no-progress")
    assert first.returncode == 0, first.stderr
    before = files(out)
    long = spec_file(tmp_path, SPEC, simulation__duration=1e6)
    process = subprocess.Popen(
        [sys.executable, "-m", "sapicore", "run", str(long), "--out", str(out), "--no-progress", "--overwrite"],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not (out / "records.part.nix").exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # mid-run
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code
    assert one_line(stderr) == f"sapicore: {message}; partial outputs removed"
    assert files(out) == before and not (out / LOCK).exists()


def test_a_folder_is_held_again_once_its_lock_is_gone(tmp_path):
    out = tmp_path / "out"
    assert main(["run", str(spec_file(tmp_path)), "--out", str(out), "--no-progress"]) == 0
    assert not (out / LOCK).exists()
    assert main(["run", str(spec_file(tmp_path)), "--out", str(out), "--no-progress", "--overwrite"]) == 0
    assert os.listdir(out) and not (out / LOCK).exists()


def test_a_full_disk_under_the_tensorboard_log_is_one_line_and_never_hangs(tmp_path):
    with mounted(tmp_path / "disk", "size=2m") as disk:
        spec = spec_file(
            tmp_path,
            SPEC.replace("size: 20", "size: 200"),
            outputs__nix=False,
            outputs__raster=False,
            outputs__tensorboard=True,
            simulation__duration=100000.0,
            simulation__every=1,
        )
        done = sapicore("run", spec, "--out", disk / "out", "--no-progress", timeout=120)
        assert done.returncode == 2, done.stderr
        error = one_line(done.stderr)
        assert error.startswith(f"sapicore: error: {disk / 'out' / 'tensorboard.part'}: no space left on device")
        assert not (disk / "out").exists()
