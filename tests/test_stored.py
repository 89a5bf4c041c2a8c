"""Compiled chunks kept on disk (`sapicore.functional.running.stored`): loaded by a second process,
equal to the chunks ``torch.compile`` builds, compiled again when a source changes, never a wrong
or broken package used."""

import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import sapicore.functional as sf
from sapicore.functional.running import stepper, stored

SCRIPT = """
import logging, sys, torch
logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
logging.getLogger("torch").setLevel(logging.ERROR)
import sapicore.functional as sf
sys.path.insert(0, {folder!r})
from cell import Cell

from sapicore.functional import connectivity

delays = torch.rand(480, generator=torch.Generator().manual_seed(1)) * 1.5 + 0.5  # ms
net = sf.Network(
    populations={{"cells": sf.Population(Cell(), 60), "drive": sf.Population(sf.PoissonSource(rate=400.0, seed=3), 40)}},
    projections={{
        "feed": sf.projection(
            "drive", "cells", connectivity.fixed_in_degree(40, 60, 8, seed=1), 0.8, sf.Exponential(tau=2.0), dt=0.1,
            delay=delays[:480],
        )
    }},
)
state = net.init_state()
_, records = sf.simulate(net, state, steps=400, dt=0.1, record=("cells.spikes", "cells.v"), fast={fast}, chunk=5)
torch.save(records, {out!r})
"""

CELL = """
import math
from typing import Any
import torch
import sapicore.functional as sf

GAIN = {gain}


@sf.pytree
class CellState:
    v: torch.Tensor


@sf.pytree
class Cell(sf.NeuronModel):
    tau_mem: Any = sf.parameter(10.0)  # ms
    state_class = CellState

    def initial_values(self, shape, zeros):
        return {{"v": zeros - 65.0}}

    def step(self, state, input, dt):
        current = sf.check_input(input, state.v)
        v = -65.0 + (state.v + 65.0) * math.exp(-dt / self.tau_mem) + GAIN * current * dt
        spikes, fired = sf.threshold(v, -55.0)
        return CellState(v=torch.where(fired, -65.0, v)), spikes
"""


def run(tmp_path: Path, cache: Path, gain: float) -> tuple[dict, str]:
    """Run SCRIPT with the cell's gain ``gain`` in a new process with the compile cache ``cache``:
    its records and its log."""
    (tmp_path / "cell.py").write_text(CELL.format(gain=gain))
    out = tmp_path / "out.pt"
    script = SCRIPT.format(folder=str(tmp_path), out=str(out), fast="True")
    env = {**os.environ, "SAPICORE_COMPILE_CACHE": str(cache), "TORCHINDUCTOR_COMPILE_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(out), done.stdout


def reference(tmp_path: Path, gain: float) -> dict:
    """SCRIPT's records from the reference loop, in this process."""
    (tmp_path / "cell.py").write_text(CELL.format(gain=gain))
    out = tmp_path / "reference.pt"
    namespace = {"__name__": f"reference{int(gain)}"}
    sys.modules.pop("cell", None)
    exec(SCRIPT.format(folder=str(tmp_path), out=str(out), fast="False"), namespace)
    sys.modules.pop("cell", None)
    return torch.load(out)


@pytest.mark.slow
def test_a_second_process_loads_the_chunk_and_an_edited_model_compiles_again(tmp_path):
    cache = tmp_path / "cache"
    first, log = run(tmp_path, cache, gain=1.0)
    assert "compiling chunks of 5 steps" in log and "kept in" in log
    (folder,) = [p for p in cache.iterdir() if p.is_dir()]
    listed = json.loads((folder / stored.SOURCES).read_text())["sources"]
    assert str(tmp_path / "cell.py") in listed  # the user's model file is watched, as are Sapicore's
    assert any(path.endswith(os.path.join("functional", "network.py")) for path in listed)
    expected = reference(tmp_path, gain=1.0)
    assert torch.equal(first["cells.spikes"], expected["cells.spikes"])
    assert torch.allclose(first["cells.v"], expected["cells.v"], atol=1e-3)

    second, log = run(tmp_path, cache, gain=1.0)
    assert "loaded from" in log and "compiling" not in log
    assert torch.equal(second["cells.spikes"], first["cells.spikes"]) and torch.equal(
        second["cells.v"], first["cells.v"]
    )

    changed, log = run(tmp_path, cache, gain=3.0)  # the same key, an edited model file
    assert "compiling chunks" in log
    expected = reference(tmp_path, gain=3.0)
    assert torch.equal(changed["cells.spikes"], expected["cells.spikes"])
    assert changed["cells.spikes"].sum() > first["cells.spikes"].sum()


def lif_run(model=None, **options):
    model = sf.LIF() if model is None else model
    state = model.init_state(5)
    inputs = 3.0 * torch.rand(60, 5, generator=torch.Generator().manual_seed(0))
    return sf.simulate(model, state, inputs, dt=0.1, record=("v", "spikes"), chunk=20, **options)[1]


@pytest.mark.slow
def test_stored_chunks_equal_torch_compile_and_a_broken_package_is_compiled_again(tmp_path, monkeypatch, caplog):
    reference_loop = lif_run()

    def cannot_compile(*args):
        raise OSError("no space left on device")

    monkeypatch.setenv("SAPICORE_COMPILE_CACHE", str(tmp_path / "blocked"))
    monkeypatch.setattr(stored.StoredChunk, "_compile", cannot_compile)
    with caplog.at_level(logging.INFO, logger="sapicore.compile"):
        compiled = lif_run(fast=True)  # the package cannot be written: torch.compile's chunks
    assert "could not keep the compiled chunk on disk" in caplog.text
    assert torch.equal(compiled["spikes"], reference_loop["spikes"])
    assert torch.allclose(compiled["v"], reference_loop["v"], atol=1e-4)

    monkeypatch.undo()
    cache = tmp_path / "cache"
    monkeypatch.setenv("SAPICORE_COMPILE_CACHE", str(cache))
    kept = lif_run(fast=True)
    (folder,) = [p for p in cache.iterdir() if p.is_dir()]
    assert torch.equal(kept["spikes"], compiled["spikes"]) and torch.equal(kept["v"], compiled["v"])

    (folder / stored.PACKAGE).write_bytes(b"not a package")  # a disk error, a foreign torch build
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="sapicore.compile"):
        again = lif_run(fast=True)
    assert "compiling it again" in caplog.text
    assert torch.equal(again["spikes"], kept["spikes"]) and torch.equal(again["v"], kept["v"])
    assert (folder / stored.SOURCES).is_file()

    taus = torch.linspace(5.0, 30.0, 10)  # ms; a strided view and a copy: a package each
    for tau_mem in (taus[::2], taus[::2].clone()):
        model = sf.LIF(tau_mem=tau_mem)
        got, expected = lif_run(model, fast=True), lif_run(model)
        assert torch.equal(got["spikes"], expected["spikes"])
        assert torch.allclose(got["v"], expected["v"], atol=1e-4)
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 3


@pytest.mark.slow
def test_a_process_loads_a_package_once_and_again_when_it_changes_on_disk(tmp_path, monkeypatch):
    """Short runs one after another reuse the loaded package (loading took 2 ms of each); a package
    rewritten on disk (compiled again by another process, say) is loaded again."""
    monkeypatch.setenv("SAPICORE_COMPILE_CACHE", str(tmp_path))
    loads = []
    loaded = stored.StoredChunk._loaded
    monkeypatch.setattr(stored.StoredChunk, "_loaded", staticmethod(lambda path: loads.append(path) or loaded(path)))
    first = lif_run(fast=True)
    assert [lif_run(fast=True)["spikes"].sum() for _ in range(3)] == [first["spikes"].sum()] * 3
    assert len(loads) == 1
    (package,) = tmp_path.glob(f"*/{stored.PACKAGE}")
    os.utime(package, ns=(package.stat().st_atime_ns, package.stat().st_mtime_ns + 10**9))
    assert torch.equal(lif_run(fast=True)["v"], first["v"]) and len(loads) == 2


def test_the_unlocked_runner_equals_torchs_loader_and_a_failing_run_is_not_compiled_around(
    tmp_path, monkeypatch, caplog
):
    """The kernel library's loader (`_unlocked_runner`, which releases Python's lock while a package
    runs: chunks whose graphs wait for gloo all-gathers) gives torch's loader's results bit for bit and
    says why a package cannot run; a package that loaded but fails while it runs (an exchange with a
    rank that died) fails the run (`ChunkFailed`) instead of compiling the chunk again another way."""
    monkeypatch.setenv("SAPICORE_COMPILE_CACHE", str(tmp_path))
    expected = lif_run(fast=True)
    monkeypatch.setattr(stored, "_RUNNERS", {})
    monkeypatch.setattr(stored.StoredChunk, "_loaded", staticmethod(stored._unlocked_runner))
    got = lif_run(fast=True)
    assert torch.equal(got["spikes"], expected["spikes"]) and torch.equal(got["v"], expected["v"])
    (package,) = tmp_path.glob(f"*/{stored.PACKAGE}")
    with pytest.raises(RuntimeError, match="input"):
        stored._unlocked_runner(str(package))([torch.zeros(3)])
    with pytest.raises(RuntimeError, match="cannot load"):
        stored._unlocked_runner(str(tmp_path / "missing.pt2"))

    def fails(path):
        def run(flat):
            raise RuntimeError("Connection closed by peer [gloo]")

        return run

    monkeypatch.setattr(stored, "_RUNNERS", {})
    monkeypatch.setattr(stored.StoredChunk, "_loaded", staticmethod(fails))
    with caplog.at_level(logging.INFO, logger="sapicore.compile"), pytest.raises(stored.ChunkFailed, match="gloo"):
        lif_run(fast=True)
    assert "could not keep the compiled chunk" not in caplog.text


def test_runs_a_key_cannot_describe_are_not_kept():
    structure = stepper.structure_key((sf.LIF(), sf.LIF().init_state(3), None), 20, True, 0)
    assert stored.chunk_key(structure, ("v",)) == stored.chunk_key(structure, ("v",))
    assert stored.chunk_key(structure, ("v",)) != stored.chunk_key(structure, ("spikes",))
    drive = stepper.structure_key((sf.LIF(), sf.LIF().init_state(3), lambda t: 2.0), 20, True, 0)
    assert stored.chunk_key(drive, ()) is None  # an input function may read anything
    table = stepper.structure_key((sf.LIF(), bytearray(b"abc")), 20)
    assert stored.chunk_key(table, ()) is None  # known by its id, which another object may reuse

    @sf.pytree
    class Local(sf.LIF):  # defined inside a function: its name does not say which class it is
        pass

    assert stored.chunk_key(stepper.structure_key((Local(), None, None), 20), ()) is None


def test_a_cache_that_is_not_a_folder_is_refused_with_one_warning(tmp_path, monkeypatch):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("SAPICORE_COMPILE_CACHE", str(blocked))
    monkeypatch.setattr(stored, "_WARNED", set())
    with pytest.warns(RuntimeWarning, match="is not a folder, so compiled chunks are not kept on disk"):
        assert stored.cache_root() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert stored.cache_root() is None  # told once


@pytest.mark.parametrize("value", ["off", "0", "OFF", "none"])
def test_the_cache_can_be_turned_off(monkeypatch, value):
    monkeypatch.setenv("SAPICORE_COMPILE_CACHE", value)
    assert stored.cache_root() is None
    monkeypatch.setenv("SAPICORE_COMPILE_CACHE", "~/chunks")
    assert stored.cache_root() == Path.home() / "chunks"


@pytest.mark.slow
def test_a_sweep_is_kept_and_equals_the_loop_over_its_lanes(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("SAPICORE_COMPILE_CACHE", str(tmp_path))
    lanes, _ = sf.grid(sf.LIF(), tau_mem=[10.0, 20.0, 30.0])
    inputs = 3.0 * torch.rand(60, 5, generator=torch.Generator().manual_seed(0))

    def sweep(**options):
        return sf.sweep(lanes, inputs=inputs, dt=0.1, shape=5, record=("v", "spikes"), chunk=20, **options)[1]

    reference = sweep()
    kept = sweep(fast=True)
    assert torch.equal(kept["spikes"], reference["spikes"])
    assert torch.allclose(kept["v"], reference["v"], atol=1e-4)
    packages = {p.name for p in tmp_path.iterdir() if p.is_dir()}
    assert packages  # one per layout the lanes' state takes (the first, and the one the package returns)
    caplog.set_level(logging.INFO, logger="sapicore.compile")
    again = sweep(fast=True)
    assert "loaded from" in caplog.text and "compiling" not in caplog.text
    assert torch.equal(again["v"], kept["v"])
    caplog.clear()
    sweep(fast=True, randomness="same")  # vmap's randomness is part of the key
    assert "compiling" in caplog.text
    assert {p.name for p in tmp_path.iterdir() if p.is_dir()} > packages


def test_the_state_rebuilder_equals_tree_unflatten_for_every_kind_of_node():
    from collections import namedtuple

    from torch.utils._pytree import tree_flatten, tree_leaves, tree_unflatten

    from sapicore.functional.running.stored import rebuilder

    Pair = namedtuple("Pair", "first second")
    state = sf.LIF().init_state((3,))
    tree = {"a": state, "b": [torch.ones(2), None, (torch.zeros(1), Pair(torch.ones(1), 2.0))], "c": ()}
    leaves, spec = tree_flatten(tree)
    fresh = [leaf.clone() if isinstance(leaf, torch.Tensor) else leaf for leaf in leaves]
    rebuilt, expected = rebuilder(spec)(fresh), tree_unflatten(fresh, spec)
    assert tree_flatten(rebuilt)[1] == spec and type(rebuilt["a"]) is type(state)
    assert all(x is y for x, y in zip(tree_leaves(rebuilt), tree_leaves(expected)))
    assert isinstance(rebuilt["b"][2][1], Pair) and rebuilt["b"][1] is None
