"""``sapicore sweep`` means what it says: every lane runs with its own settings (dt, duration, seed,
sizes), equals its single ``sapicore run`` and is reported truly in ``sweep.csv``; a diverging lane
is stopped while the others run on."""

import csv
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from tree_config.yaml import yaml_dumps, yaml_loads

import sapicore.functional as sf
from sapicore.cli import main
from sapicore.logging.nix import read_events, read_records

BASE = textwrap.dedent("""
    simulation: {dt: 0.1, duration: 60.0, seed: 3, record: [b.spikes, b.v], every: 2}
    populations:
      a: {model: PoissonSource, size: 30, parameters: {rate: 200.0}}
      b: {model: LIF, size: 10, parameters: {t_ref: 1.0}}
    projections:
      ab: {source: a, target: b, connectivity: {rule: fixed_in_degree, k: 10, seed: 2}, synapse: {model: Exponential, tau: 5.0}, weight: 2.0}
    drive: {b: 1.0}
    outputs: {nix: true, raster: false, tensorboard: false}
""")
DETERMINISTIC = BASE.replace(
    "{model: PoissonSource, size: 30, parameters: {rate: 200.0}}", "{model: LIF, size: 30}"
).replace("drive: {b: 1.0}", "drive: {b: 1.0, a: 3.0}")


def set_path(data, dotted, value):
    *keys, last = dotted.split(".")
    for key in keys:
        data = data[key]
    data[last] = value


def sweep_of(folder: Path, text: str, sweep: dict) -> Path:
    data = yaml_loads(text)
    data["sweep"] = sweep
    path = folder / "sweep.yaml"
    path.write_text(yaml_dumps(data))
    return path


def single_run(folder: Path, text: str, label: dict, name: str) -> Path:
    data = yaml_loads(text)
    for key, value in label.items():
        set_path(data, key, value)
    spec = folder / f"{name}.yaml"
    spec.write_text(yaml_dumps(data))
    out = folder / name
    assert main(["run", str(spec), "--out", str(out), "--no-progress"]) == 0
    return out


def rows(out: Path) -> list[dict]:
    with open(out / "sweep.csv") as handle:
        return list(csv.DictReader(handle))


def same_outputs(lane: Path, single: Path) -> None:
    for name in ("b.spikes",):
        for lane_part, single_part in zip(
            read_events(lane / "records.nix", name), read_events(single / "records.nix", name)
        ):
            np.testing.assert_array_equal(lane_part, single_part)
    lane_records, single_records = read_records(lane / "records.nix"), read_records(single / "records.nix")
    assert lane_records.keys() == single_records.keys()
    for key in lane_records:
        np.testing.assert_array_equal(lane_records[key], single_records[key])


@pytest.mark.parametrize(
    "text, sweep",
    [
        (DETERMINISTIC, {"zip": {"simulation.dt": [0.1, 0.2, 0.1], "simulation.duration": [60.0, 60.0, 30.0]}}),
        (BASE, {"grid": {"simulation.seed": [1, 2, 3]}}),
        (DETERMINISTIC, {"grid": {"populations.a.size": [20, 30], "drive.a": [3.0, 4.0]}}),
    ],
    ids=["dt and duration", "seeds of a Poisson-driven network", "sizes and drives"],
)
def test_every_lane_equals_its_single_run_and_the_table_says_what_ran(tmp_path, text, sweep):
    out = tmp_path / "sweep"
    assert main(["sweep", str(sweep_of(tmp_path, text, sweep)), "--out", str(out), "--no-progress"]) == 0
    table = rows(out)
    kind, values = next(iter(sweep.items()))
    assert len(table) == (
        len(next(iter(values.values()))) if kind == "zip" else np.prod([len(v) for v in values.values()])
    )
    for row in table:
        label = {key: yaml_loads(row[key]) for key in values}  # the lane's values, as the table reports them
        single = single_run(tmp_path, text, label, f"single{row['lane']}")
        same_outputs(out / "lanes" / row["lane"], single)
        summary = json.loads((single / "summary.json").read_text())
        assert float(row["rate_hz.b"]) == summary["mean_rate_hz"]["b"]
        assert float(row["ran.dt_ms"]) == summary["dt_ms"] and float(row["ran.duration_ms"]) == summary["duration_ms"]
        assert row["ran.seed"] == str(label.get("simulation.seed", 3)) and row["diverged_by_ms"] == ""


def test_lanes_that_share_their_settings_run_together_and_lanes_that_differ_apart(tmp_path):
    sweep = {"zip": {"simulation.dt": [0.1, 0.1, 0.2], "drive.a": [3.0, 4.0, 3.0]}}
    out = tmp_path / "sweep"
    assert main(["sweep", str(sweep_of(tmp_path, DETERMINISTIC, sweep)), "--out", str(out), "--no-progress"]) == 0
    assert [row["ran.group"] for row in rows(out)] == ["0", "0", "1"]
    seeds = {"grid": {"simulation.seed": [1, 2], "drive.b": [1.0, 2.0]}}
    out = tmp_path / "seeds"
    assert main(["sweep", str(sweep_of(tmp_path, BASE, seeds)), "--out", str(out), "--no-progress"]) == 0
    groups = {(row["ran.seed"], row["ran.group"]) for row in rows(out)}
    assert groups == {("1", "0"), ("2", "1")} or groups == {("1", "1"), ("2", "0")}  # random draws: a group per seed


def test_one_diverging_lane_stops_alone_and_is_reported(tmp_path, capsys):
    text = DETERMINISTIC.replace(
        "b: {model: LIF, size: 10, parameters: {t_ref: 1.0}}", "b: {model: AdEx, size: 10, parameters: {b: 0.0}}"
    )
    sweep = {"zip": {"populations.b.parameters.b": [0.0, 1e38, 0.05, 0.1]}}  # lane 1 overflows at a spike
    text = text.replace("drive: {b: 1.0, a: 3.0}", "drive: {b: 5.0, a: 3.0}")
    out = tmp_path / "sweep"
    assert main(["sweep", str(sweep_of(tmp_path, text, sweep)), "--out", str(out), "--no-progress"]) == 0
    warning = capsys.readouterr().err.strip()
    assert warning == (
        "sapicore: warning: 1 of 4 lanes turned NaN or infinite and were stopped: lane 1 "
        "(populations.b.parameters.b=1e+38) by t = 60 ms; their records are NaN from then on (column diverged_by_ms "
        "of sweep.csv)"
    )
    table = rows(out)
    assert [row["diverged_by_ms"] for row in table] == ["", "60.0", "", ""] and table[1]["rate_hz.b"] == ""
    assert np.isnan(read_records(out / "lanes" / "1" / "records.nix")["b.v"]).all()
    for lane in (0, 2, 3):
        label = {"populations.b.parameters.b": sweep["zip"]["populations.b.parameters.b"][lane]}
        same_outputs(out / "lanes" / str(lane), single_run(tmp_path, text, label, f"single{lane}"))


def test_stacking_networks_of_different_structure_is_refused_naming_the_field():
    def network(size, dt=0.1):
        return sf.Network(
            {"a": sf.Population(sf.LIF(), size)},
            {"aa": sf.projection("a", "a", sf.connectivity.all_to_all(size, size), 0.1, sf.Exponential(), dt=dt)},
        )

    with pytest.raises(
        ValueError,
        match=r"cannot stack Network.populations\['a'\].size: lanes differ in a structural setting \(10, 20\)",
    ):
        sf.stack([network(10), network(20)])
    with pytest.raises(
        ValueError, match=r"cannot stack Network.projections\['aa'\].dt: lanes differ in a structural setting"
    ):
        sf.stack([network(10), network(10, dt=0.2)])
