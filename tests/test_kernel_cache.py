"""The CPU kernel's build cache: one folder per build key, a lock that cannot go stale, no thrash."""

import os
import shutil
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
from sapicore.functional.propagation import kernels


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


def fake_builds(monkeypatch):
    """Replace the compiler by a stub that records each build and writes an empty library."""
    calls = []

    def fake_load(name, sources, extra_cflags, build_directory, is_python_module):
        calls.append((sources, build_directory))
        library = Path(build_directory) / f"{name}.so"
        library.touch()
        return str(library)

    monkeypatch.setattr(cpp_extension, "load", fake_load)
    monkeypatch.setattr(torch.ops, "load_library", lambda path: None)
    return calls


def test_load_builds_a_copy_of_the_source_in_its_folder_and_says_so_once(source, monkeypatch, capfd):
    calls = fake_builds(monkeypatch)
    kernel_cache.load_library("k", source, ["-O3"])
    folder = kernel_cache.build_directory("k", source, ["-O3"])
    assert calls == [([str(folder / "propagate.cpp")], str(folder))]
    assert (folder / "propagate.cpp").read_bytes() == source.read_bytes()
    assert (folder / kernel_cache.COMPLETE).read_text() == "k.so\n"
    assert "building the CPU spike propagation kernel for this environment" in capfd.readouterr().err
    kernel_cache.load_library("k", source, ["-O3"])
    assert len(calls) == 1 and capfd.readouterr().err == ""  # built before: loaded quietly


def test_two_environments_that_alternate_build_once_each_and_never_again(source, monkeypatch):
    calls = fake_builds(monkeypatch)
    environments = {  # torch in two virtual environments: its headers and libraries lie in its folder
        "venv-a": "/venvs/a/site-packages/torch/__init__.py",
        "venv-b": "/venvs/b/site-packages/torch/__init__.py",
    }
    folders = set()
    for _ in range(3):
        for location in environments.values():
            monkeypatch.setattr(torch, "__file__", location)
            kernel_cache.load_library("k", source, ["-O3"])
            folders.add(kernel_cache.build_directory("k", source, ["-O3"]))
    assert len(folders) == 2 and len(calls) == 2  # one build per environment, none when they alternate


def test_what_a_build_depends_on_is_in_its_key(source, monkeypatch):
    first = kernel_cache.build_key(source, ["-O3"])
    monkeypatch.setenv("CXX", "no-such-compiler-here")
    assert kernel_cache.build_key(source, ["-O3"]) != first
    monkeypatch.delenv("CXX")
    monkeypatch.setattr(torch, "__file__", "/elsewhere/torch/__init__.py")  # another torch, its headers with it
    assert kernel_cache.build_key(source, ["-O3"]) != first


def test_a_complete_build_loads_without_a_lock_or_a_write(source, monkeypatch, capfd):
    fake_builds(monkeypatch)
    kernel_cache.load_library("k", source, ["-O3"])
    capfd.readouterr()

    def no_lock(folder):
        raise AssertionError("a complete build must load without the build lock")

    def no_build(*args, **kwargs):
        raise AssertionError("a complete build must not be rebuilt")

    monkeypatch.setattr(kernel_cache, "build_lock", no_lock)
    monkeypatch.setattr(cpp_extension, "load", no_build)
    kernel_cache.load_library("k", source, ["-O3"])
    assert capfd.readouterr().err == ""


def read_only_mount(folder):
    """Bind-mount ``folder`` read-only over itself (root on Linux); False where that is not allowed."""
    done = subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)], capture_output=True)
    return done.returncode == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="bind mounts")
def test_a_read_only_prebuilt_cache_loads_the_real_kernel(tmp_path):
    """The real kernel's build, copied into a cache that is then mounted read-only, loads in a new process."""
    from sapicore.functional import kernels

    if not kernels.available():
        pytest.skip("the CPU kernel cannot be built here")
    folder = kernel_cache.build_directory(kernels._NAME, kernels._SOURCES, ["-O3"])
    cache = tmp_path / "cache"
    shutil.copytree(folder, cache / folder.name)
    run = lambda: subprocess.run(  # noqa: E731
        [sys.executable, "-c", "from sapicore.functional import kernels; print(kernels.available())"],
        env={**os.environ, "SAPICORE_KERNEL_CACHE": str(cache)},
        capture_output=True,
        text=True,
    )
    if not read_only_mount(cache):
        pytest.skip("cannot mount read-only here (needs root)")
    try:
        loaded = run()
        assert loaded.stdout.strip() == "True" and loaded.stderr == "", loaded.stderr
    finally:
        subprocess.run(["umount", str(cache)])


def test_loading_a_finished_build_does_not_import_torchs_extension_builder():
    """``torch.utils.cpp_extension`` warns as it is imported wherever a CUDA build of torch finds no
    CUDA runtime (a line on stderr of every run, which would break one-line failures): a process
    that loads a finished build never imports it."""
    if not kernels.available():  # built here if this environment had no build yet
        pytest.skip("the kernel library cannot be built here")
    code = (
        "import sys\n"
        "from sapicore.functional.propagation import kernels\n"
        "assert kernels.available()\n"
        "print('torch.utils.cpp_extension' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False" and done.stderr == ""
