"""The CPU kernel's build cache: one folder per build key, a lock that cannot go stale, no thrash."""

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch
from torch.utils import cpp_extension

from sapicore.functional import kernel_cache


@pytest.fixture
def source(tmp_path, monkeypatch):
    monkeypatch.setenv("SAPICORE_KERNEL_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "src" / "propagate.cpp"
    path.parent.mkdir()
    path.write_text("// a kernel\n")
    return path


def test_builds_get_one_folder_per_source_torch_and_flags_and_none_per_checkout(source, tmp_path, monkeypatch):
    first = kernel_cache.build_directory("k", source, ["-O3"])
    assert first.parent == tmp_path / "cache"
    other_checkout = tmp_path / "elsewhere.cpp"
    other_checkout.write_bytes(source.read_bytes())
    assert kernel_cache.build_directory("k", other_checkout, ["-O3"]) == first  # the same build
    assert kernel_cache.build_directory("k", source, ["-O2"]) != first
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    assert kernel_cache.build_directory("k", source, ["-O3"]) != first
    monkeypatch.undo()
    monkeypatch.setenv("SAPICORE_KERNEL_CACHE", str(tmp_path / "cache"))
    source.write_text("// another kernel\n")
    assert kernel_cache.build_directory("k", source, ["-O3"]) != first


HOLD = """
import importlib.util, sys, time
from pathlib import Path
spec = importlib.util.spec_from_file_location("kernel_cache", sys.argv[3])  # without importing torch
kernel_cache = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kernel_cache)
folder = Path(sys.argv[1])
with kernel_cache.build_lock(folder):
    (folder / "lock").touch()  # what torch's build leaves while it compiles
    print("building", flush=True)
    time.sleep(float(sys.argv[2]))
    (folder / "lock").unlink()
"""


def hold_lock(folder, seconds):
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLD), str(folder), str(seconds), kernel_cache.__file__],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "building"
    return process


def acquire_within(folder, seconds):
    """Take the build lock in a thread; the time it took, or None if it did not come in time."""
    took = []

    def take():
        start = time.perf_counter()
        with kernel_cache.build_lock(folder):
            took.append(time.perf_counter() - start)

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    thread.join(seconds)
    return took[0] if took else None


@pytest.mark.skipif(kernel_cache.fcntl is None, reason="no flock on this system")
def test_a_build_killed_mid_way_leaves_no_lock_that_blocks_the_next(tmp_path, capfd):
    folder = tmp_path / "build"
    process = hold_lock(folder, 120)
    process.kill()  # as a user's Ctrl-\ or an out-of-memory kill would
    process.wait()
    assert (folder / "lock").exists()
    assert acquire_within(folder, 10) is not None
    assert not (folder / "lock").exists()
    assert "removing a stale build lock" in capfd.readouterr().err


@pytest.mark.skipif(kernel_cache.fcntl is None, reason="no flock on this system")
def test_a_second_process_waits_for_a_build_in_progress(tmp_path):
    folder = tmp_path / "build"
    process = hold_lock(folder, 1.5)
    took = acquire_within(folder, 30)
    process.wait()
    assert took is not None and took > 0.5


def test_load_builds_a_copy_of_the_source_in_its_folder_and_says_so_once(source, monkeypatch, capfd):
    calls = []

    def fake_load(name, sources, extra_cflags, build_directory, is_python_module):
        calls.append((sources, build_directory))
        (Path(build_directory) / f"{name}.so").touch()

    monkeypatch.setattr(cpp_extension, "load", fake_load)
    kernel_cache.load_library("k", source, ["-O3"])
    folder = kernel_cache.build_directory("k", source, ["-O3"])
    assert calls == [([str(folder / "propagate.cpp")], str(folder))]
    assert (folder / "propagate.cpp").read_bytes() == source.read_bytes()
    assert "building the CPU spike propagation kernel" in capfd.readouterr().err
    kernel_cache.load_library("k", source, ["-O3"])
    assert "building" not in capfd.readouterr().err  # built before: loaded quietly
