"""YAML specs and the sapicore command."""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import attrs
import numpy as np
import pytest
import torch
from tree_config.yaml import yaml_dumps, yaml_loads

import sapicore
import sapicore.functional as sf
from sapicore.cli import main
from sapicore.logging.nix import read_events, read_records
from sapicore.spec import SHIPPED, SpecError, initial_state, load_spec, parse_spec

SMALL = textwrap.dedent("""
    simulation: {dt: 0.1, duration: 50.0, seed: 3, record: [a.spikes, b.v], every: 5}
    populations:
      a:
        model: LIF
        size: 20
        parameters: {tau_mem: {distribution: uniform, low: 10.0, high: 30.0}, t_ref: 1.0}
        initial: {v: {distribution: normal, mean: -60.0, std: 2.0}}
      b: {model: Izhikevich, size: 5, preset: RS}
    projections:
      ab:
        source: a
        target: b
        connectivity: {rule: fixed_in_degree, k: 4, seed: 2}
        synapse: {model: Exponential, tau: 5.0}
        weight: {distribution: lognormal, mean: 0.0, std: 0.5}
        delay: 1.0
        plasticity: {rule: STDP, a_plus: 0.01}
    drive: {a: 3.0}
    outputs: {nix: true, raster: true, tensorboard: false}
""")


def small():
    return yaml_loads(SMALL)


def test_a_spec_builds_the_network_it_describes():
    spec = parse_spec(small(), "small.yaml")
    net = spec.network
    assert net.populations["a"].size == 20 and net.populations["b"].model.d == 8.0
    taus = net.populations["a"].model.tau_mem
    assert taus.shape == (20,) and bool(((taus >= 10.0) & (taus <= 30.0)).all())
    proj = net.projections["ab"]
    assert proj.max_delay == 10 and isinstance(proj.plasticity, sf.STDP) and int(proj.mask.sum()) == 20
    state = initial_state(spec)
    assert abs(float(state.populations["a"].v.mean()) + 60.0) < 2.0
    again = parse_spec(small(), "small.yaml")
    assert torch.equal(again.network.populations["a"].model.tau_mem, taus)  # the seed makes draws repeatable


@pytest.mark.parametrize("rule", ["fixed_probability", "fixed_in_degree", "fixed_total_number"])
def test_a_connectivity_without_seed_is_drawn_from_the_specs_seed(rule):
    """The same spec builds the same network every time (and on every rank of a partitioned run);
    another ``simulation.seed`` another one."""
    size = {"fixed_probability": {"p": 0.3}, "fixed_in_degree": {"k": 4}, "fixed_total_number": {"count": 60}}
    targets = []
    for seed, explicit_none in ((3, False), (3, True), (4, False)):
        data = small()
        data["simulation"]["seed"] = seed
        data["projections"]["ab"]["connectivity"] = {
            "rule": rule,
            **size[rule],
            **({"seed": None} if explicit_none else {}),
        }
        targets.append(parse_spec(data, "seedless.yaml").network.projections["ab"].targets)
    assert torch.equal(targets[0], targets[1]) and not torch.equal(targets[0], targets[2])


MISTAKES = [
    (lambda d: d.pop("simulation"), "(top level): missing required key 'simulation'"),
    (lambda d: d.update(extra=1), "extra: unknown key; expected one of: simulation, populations"),
    (lambda d: d["simulation"].update(dt=-0.1), "simulation.dt: expected a number > 0, got -0.1"),
    (lambda d: d["simulation"].update(duration="long"), "simulation.duration: expected a finite number, got 'long'"),
    (lambda d: d["simulation"].update(duration=0.01), "simulation.duration: 0.01 ms is shorter than one step"),
    (lambda d: d["simulation"].update(device="tpu"), "simulation.device: expected a device such as cpu or cuda"),
    (lambda d: d["simulation"].update(device="cuda:7"), "simulation.device: "),
    (lambda d: d["populations"]["a"].update(model="LIFF"), "populations.a.model: expected one of LIF, AdEx"),
    (lambda d: d["populations"]["a"].update(size=0), "populations.a.size: expected an integer >= 1, got 0"),
    (
        lambda d: d["populations"]["a"]["parameters"].update(tau=5.0),
        "populations.a.parameters.tau: unknown key; expected one of: tau_mem",
    ),
    (
        lambda d: d["populations"]["a"]["parameters"].update(tau_mem=-5.0),
        "populations.a.parameters: LIF.tau_mem must be > 0",
    ),
    (
        lambda d: d["populations"]["a"]["parameters"].update(t_ref={"distribution": "gamma"}),
        "populations.a.parameters.t_ref.distribution: expected one of normal, uniform, lognormal",
    ),
    (lambda d: d["projections"]["ab"].update(target="c"), "projections.ab.target: expected one of a, b, got 'c'"),
    (
        lambda d: d["projections"]["ab"].update(target=["a", "b"]),
        "projections.ab.target: expected one of a, b, got ['a', 'b']",
    ),
    (
        lambda d: d["projections"]["ab"]["connectivity"].update(p=1.5),
        "projections.ab.connectivity.p: unknown key; expected one of: rule, k, seed, allow_self",
    ),
    (
        lambda d: d["projections"]["ab"].update(connectivity={"rule": "fixed_probability", "p": 1.5}),
        "projections.ab.connectivity: connection probability p must lie in [0, 1], got 1.5",
    ),
    (
        lambda d: d["projections"]["ab"].update(connectivity={"rule": "fixed_total_number"}),
        "projections.ab.connectivity: missing required key 'count'",
    ),
    (
        lambda d: d["projections"]["ab"].update(connectivity={"rule": "fixed_total_number", "count": -3}),
        "projections.ab.connectivity: count must be a non-negative int, got -3",
    ),
    (
        lambda d: d["projections"]["ab"].update(connectivity={"rule": "fixed_total_number", "count": 5, "p": 0.1}),
        "projections.ab.connectivity.p: unknown key; expected one of: rule, count, seed",
    ),
    (lambda d: d["projections"]["ab"].update(delay=-1.0), "projections.ab: delays must be finite and >= 0 ms"),
    (lambda d: d["projections"]["ab"]["synapse"].pop("model"), "projections.ab.synapse: missing required key 'model'"),
    (lambda d: d["simulation"].update(record=["c.spikes"]), "simulation.record[0]: unknown record 'c.spikes'"),
    (lambda d: d["outputs"].update(nix="yes"), "outputs.nix: expected true or false, got 'yes'"),
    (
        lambda d: d["populations"]["a"].update(parts={"x": 5, "y": 5}),
        "populations.a.parts: the parts hold 10 neurons but size is 20",
    ),
    (
        lambda d: d["populations"]["a"].update(parts={"x": 0, "y": 20}),
        "populations.a.parts.x: expected an integer >= 1",
    ),
    (lambda d: d["populations"]["a"].update(parts={"b": 20}), "populations.a.parts.b: is already a population or part"),
    (
        lambda d: (d["populations"]["a"].update(parts={"x": 5, "y": 15}), d["projections"]["ab"].update(target="z")),
        "projections.ab.target: expected one of a, x, y, b, got 'z'",
    ),
    (
        lambda d: d["projections"]["ab"].update(short_term={"model": "Markram", "U": 0.5}),
        "projections.ab.short_term.model: expected one of TsodyksMarkram, got 'Markram'",
    ),
    (
        lambda d: d["projections"]["ab"].update(short_term={"model": "TsodyksMarkram", "tau": 5.0}),
        "projections.ab.short_term.tau: unknown key; expected one of: model, U, tau_rec, tau_facil",
    ),
    (
        lambda d: d["projections"]["ab"].update(short_term={"model": "TsodyksMarkram", "U": 2.0}),
        "projections.ab.short_term: TsodyksMarkram.U must be in (0, 1]",
    ),
]


def test_a_spec_names_alpha_synapses():
    data = small()
    data["projections"]["ab"]["synapse"] = {"model": "Alpha", "tau": 2.0, "e_rev": 0.0}
    data["projections"]["ab"]["weight"] = 0.01
    spec = parse_spec(data, "alpha.yaml")
    synapse = spec.network.projections["ab"].synapse
    assert isinstance(synapse, sf.Alpha) and float(synapse.tau) == 2.0 and float(synapse.e_rev) == 0.0


def test_a_spec_gives_a_projection_short_term_plasticity():
    data = small()
    data["projections"]["ab"]["short_term"] = {"model": "TsodyksMarkram", "U": 0.2, "tau_rec": 300.0, "tau_facil": 50.0}
    data["simulation"]["record"] = ["ab.resources"]
    spec = parse_spec(data, "short.yaml")
    rule = spec.network.projections["ab"].short_term
    assert isinstance(rule, sf.TsodyksMarkram)
    assert (float(rule.U), float(rule.tau_rec), float(rule.tau_facil)) == (0.2, 300.0, 50.0)
    _, rec = sf.simulate(spec.network, initial_state(spec), steps=300, dt=0.1, record=spec.simulation.record)
    assert float(rec["ab.resources"].min()) < 0.95  # the sources spiked and used their resources


def test_parts_in_a_spec_name_sources_drives_and_records():
    data = small()
    data["populations"]["a"]["parts"] = {"x": 5, "y": 15}
    data["projections"]["ab"]["source"] = "y"
    data["drive"] = {"x": 3.0}
    data["simulation"]["record"] = ["x.spikes", "y.v"]
    spec = parse_spec(data, "parts.yaml")
    assert spec.network.projections["ab"].n_pre == 15 and spec.network.ranges()["y"] == ("a", 5, 15)
    _, rec = sf.simulate(spec.network, initial_state(spec), steps=300, dt=0.1, record=spec.simulation.record)
    assert rec["x.spikes"].shape == (300, 5) and rec["y.v"].shape == (300, 15)
    assert rec["x.spikes"].sum() > 0 and rec["y.v"].max() < -55.0  # only the part x is driven


@pytest.mark.parametrize("share", [None, (1, 2)])
@pytest.mark.parametrize("mistake, message", MISTAKES)
def test_each_mistake_gives_one_clear_message(mistake, message, share):
    """The same message whether the spec builds the whole network or a rank's share (whose
    projections are made and cut one at a time)."""
    data = small()
    mistake(data)
    with pytest.raises(SpecError, match="^" + re.escape(f"bad.yaml: {message}")):
        parse_spec(data, "bad.yaml", share=share)


def test_the_command_reports_a_bad_spec_in_one_line_without_a_traceback(tmp_path):
    data = small()
    data["populations"]["a"]["size"] = -3
    spec_file = tmp_path / "bad.yaml"
    spec_file.write_text(yaml_dumps(data))
    done = subprocess.run(
        [sys.executable, "-m", "sapicore", "run", str(spec_file), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == f"sapicore: error: {spec_file}: populations.a.size: expected an integer >= 1, got -3"
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2


def test_the_command_names_its_version_and_refuses_a_file_as_out(tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"sapicore {sapicore.__version__}"
    spec_file = tmp_path / "small.yaml"
    spec_file.write_text(SMALL)
    taken = tmp_path / "results.txt"
    taken.write_text("keep me")
    for command in ("run", "sweep"):
        assert main([command, str(spec_file), "--out", str(taken)]) == 2
        assert (
            capsys.readouterr().err.strip()
            == f"sapicore: error: --out {taken} is a file; give a folder (it is created if missing)"
        )
    assert taken.read_text() == "keep me"


def test_run_and_inspect_a_small_spec(tmp_path, capsys):
    spec_file = tmp_path / "small.yaml"
    spec_file.write_text(SMALL)
    assert main(["run", str(spec_file), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["mean_rate_hz"]["a"] > 0 and (tmp_path / "out" / "raster.png").exists()
    records = read_records(tmp_path / "out" / "records.nix")
    assert records["b.v"].shape == (100, 5) and "a.spikes" not in records
    times, neurons = read_events(tmp_path / "out" / "records.nix", "a.spikes")
    assert len(times) > 0 and neurons.max() < 20 and times.max() <= 50.0
    assert main(["inspect", str(tmp_path / "out" / "records.nix")]) == 0
    assert "b.v: shape (100, 5), float32, time axis every 0.5 ms" in capsys.readouterr().out


def test_the_shipped_coba_spec_runs_as_a_new_user_would(tmp_path):
    assert load_spec("coba").source == SHIPPED / "coba.yaml"
    script = Path(sys.executable).parent / "sapicore"  # the console script pip installed beside python
    command = str(script) if script.exists() else "sapicore"
    done = subprocess.run(
        [command, "run", "coba", "--out", str(tmp_path), "--no-progress"], capture_output=True, text=True, check=True
    )
    assert "records.nix" in done.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    for population in ("exc", "inh"):
        assert 15.0 < summary["mean_rate_hz"][population] < 30.0
    assert (tmp_path / "raster.png").stat().st_size > 1000
    times, neurons = read_events(tmp_path / "records.nix", "exc.spikes")
    assert len(times) == round(summary["mean_rate_hz"]["exc"] * 3200) and neurons.max() < 3200


SWEEP = textwrap.dedent("""
    simulation: {dt: 0.1, duration: 100.0, seed: 3}
    populations:
      a: {model: LIF, size: 20, parameters: {t_ref: 1.0}}
      b: {model: LIF, size: 10}
    projections:
      ab: {source: a, target: b, connectivity: {rule: fixed_in_degree, k: 5, seed: 2}, synapse: {model: Exponential, tau: 5.0}, weight: 1.0}
    drive: {a: 3.0}
    sweep:
      grid: {populations.a.parameters.tau_mem: [10.0, 20.0, 30.0], drive.a: [2.0, 4.0]}
""")


def test_sweep_sections_expand_into_labelled_lanes():
    from sapicore.spec import expand_sweep

    data = yaml_loads(SWEEP)
    lanes, labels = expand_sweep(data, "s.yaml")
    assert len(lanes) == 6 and labels[1] == {"populations.a.parameters.tau_mem": 10.0, "drive.a": 4.0}
    assert lanes[1]["drive"]["a"] == 4.0 and "sweep" not in lanes[1]
    data["sweep"] = {
        "random": {
            "count": 4,
            "seed": 1,
            "parameters": {"drive.a": {"distribution": "uniform", "low": 1.0, "high": 2.0}},
        }
    }
    lanes, labels = expand_sweep(data, "s.yaml")
    assert len(lanes) == 4 and all(1.0 <= label["drive.a"] <= 2.0 for label in labels)
    data["sweep"] = {"zip": {"drive.a": [1.0, 2.0], "drive.b": [1.0]}}
    with pytest.raises(
        SpecError, match=re.escape("s.yaml: sweep.zip: zip needs lists of one length, got lengths [1, 2]")
    ):
        expand_sweep(data, "s.yaml")
    data["sweep"] = {"grid": {"populations.c.size": [1, 2]}}
    with pytest.raises(
        SpecError, match=re.escape("s.yaml: sweep: populations.c.size: no such key 'populations.c' in the spec")
    ):
        expand_sweep(data, "s.yaml")


@pytest.mark.slow
def test_lanes_of_networks_partitioned_over_rank_groups_equal_the_one_process_sweep(tmp_path):
    """``sweep: {ranks_per_network: 2}`` under torchrun with 4 processes: two groups of 2 ranks, each
    running its lanes as vmap lanes of its ranks' shares; the table and every lane's records equal
    those of the one-process sweep."""
    spec_file, partitioned = tmp_path / "sweep.yaml", tmp_path / "partitioned.yaml"
    spec_file.write_text(SWEEP)
    partitioned.write_text(SWEEP + "  ranks_per_network: 2\n")
    assert main(["sweep", str(spec_file), "--out", str(tmp_path / "one"), "--no-progress"]) == 0
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "4", "-m"]
    command += ["sapicore", "sweep", str(partitioned), "--out", str(tmp_path / "four"), "--no-progress"]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1")
    )
    assert done.returncode == 0, done.stderr[-2000:]
    one = json.loads((tmp_path / "one" / "sweep.json").read_text())
    four = json.loads((tmp_path / "four" / "sweep.json").read_text())
    assert len(one) == 6 and one == four
    counts = {"a.spikes": 0, "b.spikes": 0}
    for row in one:
        for name in counts:
            expected = read_events(tmp_path / "one" / "lanes" / str(row["lane"]) / "records.nix", name)
            got = read_events(tmp_path / "four" / "lanes" / str(row["lane"]) / "records.nix", name)
            assert all(np.array_equal(a, b) for a, b in zip(expected, got)), f"lane {row['lane']}: {name}"
            counts[name] += len(expected[0])
    assert min(counts.values()) > 0
    assert not list(tmp_path.rglob("*.part*"))


def test_a_two_process_sweep_equals_the_one_process_sweep(tmp_path):
    spec_file = tmp_path / "sweep.yaml"
    spec_file.write_text(SWEEP)
    assert main(["sweep", str(spec_file), "--out", str(tmp_path / "one"), "--no-progress"]) == 0
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "sapicore",
            "sweep",
            str(spec_file),
            "--out",
            str(tmp_path / "two"),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    one = json.loads((tmp_path / "one" / "sweep.json").read_text())
    two = json.loads((tmp_path / "two" / "sweep.json").read_text())
    assert len(one) == 6 and one == two
    assert one[1]["rate_hz.a"] > one[0]["rate_hz.a"]  # more drive, more spikes
    for row in one:  # each lane's outputs, as 'sapicore run' writes them, from whichever process ran it
        for folder in (tmp_path / "one", tmp_path / "two"):
            lane = folder / "lanes" / str(row["lane"])
            times, _ = read_events(lane / "records.nix", "a.spikes")
            assert len(times) == round(row["rate_hz.a"] * 20 * 0.1) and (lane / "raster.png").exists()
    assert not list(tmp_path.rglob("*.part*"))
    assert (
        (tmp_path / "two" / "sweep.csv")
        .read_text()
        .splitlines()[0]
        .startswith("lane,populations.a.parameters.tau_mem,drive.a")
    )


def test_summaries_from_the_streamed_events_equal_those_from_memory(tmp_path):
    data = small()
    with_log = tmp_path / "log.yaml"
    with_log.write_text(yaml_dumps(data))
    data["outputs"]["nix"] = False
    in_memory = tmp_path / "memory.yaml"
    in_memory.write_text(yaml_dumps(data))
    for spec_file, out in ((with_log, "a"), (in_memory, "b")):
        assert main(["run", str(spec_file), "--out", str(tmp_path / out), "--no-progress"]) == 0
    a = json.loads((tmp_path / "a" / "summary.json").read_text())
    b = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert a["mean_rate_hz"] == b["mean_rate_hz"] and a["mean_rate_hz"]["a"] > 0
    assert a["isi_cv"]["a"] == pytest.approx(b["isi_cv"]["a"])
    assert not (tmp_path / "b" / "records.nix").exists()


def fields(tree):
    return {field.name: getattr(tree, field.name) for field in attrs.fields(type(tree))}


def test_the_python_coba_builder_is_the_shipped_spec():
    from sapicore.networks import coba
    from sapicore.spec import load_spec

    built, shipped = coba(), load_spec("coba").network
    assert built.drive == shipped.drive and built.dt == shipped.dt
    for name, population in shipped.populations.items():
        assert built.populations[name].size == population.size
        assert fields(built.populations[name].model) == fields(population.model)
    for name, proj in shipped.projections.items():
        other = built.projections[name]
        assert (
            type(other) is type(proj)
            and other.capacity == proj.capacity
            and fields(other.synapse) == fields(proj.synapse)
        )
        assert torch.equal(other.targets, proj.targets) and torch.equal(other.weights, proj.weights)
    scaled = coba(8000, fan_in=80, kind="dense")
    assert scaled.ranges()["exc"] == ("neurons", 0, 6400) and scaled.projections["inhibitory"].kind == "dense"
    assert int(scaled.projections["excitatory"].mask.sum()) == 8000 * 64


HOLD_FOLDER = """
import sys, time
from sapicore.cli import claimed
with claimed(sys.argv[1]):
    print("holding", flush=True)
    time.sleep(60)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="no flock")
def test_a_second_run_into_a_folder_in_use_refuses_in_one_line(tmp_path, capsys):
    spec_file = tmp_path / "small.yaml"
    spec_file.write_text(SMALL)
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_FOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        assert main(["run", str(spec_file), "--out", str(out), "--no-progress"]) == 2
        error = capsys.readouterr().err.strip()
        assert error == (
            f"sapicore: error: {out} is in use by another sapicore run (process {holder.pid}); "
            "wait for it to end or give another --out"
        )
    finally:
        holder.kill()
        holder.wait()
    assert main(["run", str(spec_file), "--out", str(out), "--no-progress"]) == 0  # the lock died with it
    assert (out / "summary.json").exists()


def test_a_run_that_fails_mid_way_keeps_the_older_outputs_and_leaves_no_partial_file(tmp_path, capsys):
    spec_file = tmp_path / "small.yaml"
    spec_file.write_text(SMALL)
    out = tmp_path / "out"
    assert main(["run", str(spec_file), "--out", str(out), "--no-progress"]) == 0
    before = {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()}
    assert {"records.nix", "summary.json", "raster.png", "spec.yaml"} <= set(before)
    data = small()
    data["populations"]["b"] = {"model": "AdEx", "size": 5, "parameters": {"b": 1e38}}  # w overflows at a spike
    data["drive"]["b"] = 5.0
    spec_file.write_text(yaml_dumps(data))
    assert main(["run", str(spec_file), "--out", str(out), "--no-progress", "--overwrite"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("sapicore: error: state.populations['b'].v became NaN or infinite during steps")
    assert "\n" not in error
    after = {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()}
    assert after == before  # the complete outputs of the first run, untouched; nothing partial


def test_a_failed_run_leaves_no_folder_behind_and_a_sweep_needs_a_sweep_section(tmp_path, capsys):
    spec_file = tmp_path / "small.yaml"
    spec_file.write_text(SMALL)
    assert main(["run", str(spec_file), "--out", str(tmp_path / "new"), "--duration", "-5"]) == 2
    assert "duration must be a positive number" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    assert main(["run", str(spec_file), "--out", str(kept), "--duration", "-5"]) == 2
    assert kept.is_dir() and "duration must be" in capsys.readouterr().err  # a folder the user made stays
    assert main(["sweep", str(spec_file), "--out", str(tmp_path / "s")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"sapicore: error: {spec_file}: no sweep: section (grid, zip or random); 'sapicore run' runs a spec without one"
    )


@pytest.mark.slow
def test_a_compiled_run_says_when_it_compiles_and_for_how_long(tmp_path, capsys):
    """The fast path's first chunk compiles: the command prints that and the seconds it took on stderr,
    and keeps them in summary.json (a plain run has no such field)."""
    spec_file = tmp_path / "small.yaml"
    spec_file.write_text(SMALL)
    out = tmp_path / "fast"
    assert main(["run", str(spec_file), "--out", str(out), "--no-progress", "--set", "simulation.fast=true"]) == 0
    err = capsys.readouterr().err
    assert "sapicore: compiling chunks of" in err and re.search(r"sapicore: compiled in \d+\.\d s", err)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["compile_seconds"] > 0
    plain = tmp_path / "plain"
    assert main(["run", str(spec_file), "--out", str(plain), "--no-progress"]) == 0
    assert "compile_seconds" not in json.loads((plain / "summary.json").read_text())
    assert "compiling" not in capsys.readouterr().err
