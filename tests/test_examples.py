"""The README's main job runs and writes what it promises."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_lif_population_example_writes_figures_and_summary(tmp_path):
    out = tmp_path / "lif"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "lif_population.py"),
            "--out",
            str(out),
            "--neurons",
            "40",
            "--duration",
            "300",
        ],
        check=True,
        capture_output=True,
    )
    summary = json.loads((out / "summary.json").read_text())
    assert (out / "raster.png").stat().st_size > 1000 and (out / "fi_curve.png").stat().st_size > 1000
    assert summary["max_relative_deviation_of_isi_rate_from_analytic"] < 0.02
    rates = [lane["mean_rate_hz"] for lane in summary["sweep"]]
    assert rates[0] > rates[1] > rates[2] > 0  # shorter tau_mem, faster firing


def run_brette(tmp_path, network):
    out = tmp_path / network
    subprocess.run(
        [sys.executable, str(ROOT / "examples" / "brette2007.py"), "--network", network, "--out", str(out)],
        check=True,
        capture_output=True,
    )
    assert (out / "raster.png").stat().st_size > 1000
    return json.loads((out / "summary.json").read_text())


def test_coba_settles_into_asynchronous_irregular_firing(tmp_path):
    summary = run_brette(tmp_path, "coba")
    for population in ("exc", "inh"):
        assert 15.0 < summary["mean_rate_hz"][population] < 30.0  # Brian2: 22 Hz for this network
        assert summary["isi_cv"][population] > 1.0  # irregular (Brian2: 1.6)


def test_cuba_fires_like_brian2(tmp_path):
    summary = run_brette(tmp_path, "cuba")
    for population in ("exc", "inh"):
        assert 4.0 < summary["mean_rate_hz"][population] < 8.0  # Brian2's CUBA example: 5.6 Hz
        assert 0.3 < summary["isi_cv"][population] < 0.8  # Brian2: 0.52


def test_basic_network_example_configures_trains_logs_and_reads_back(tmp_path):
    import tree_config

    from sapicore.logging.nix import NixLogReader

    script = [sys.executable, str(ROOT / "examples" / "basic_network.py"), "--out", str(tmp_path)]
    first = subprocess.run(script, check=True, capture_output=True, text=True)
    assert first.stdout.count("output spikes") == 5 and "mean weight" in first.stdout
    assert list((tmp_path / "tensorboard").iterdir())
    config = tree_config.read_config_from_file(tmp_path / "config.yaml")
    config["epochs"] = 2
    config["model"]["output"]["tau_mem"] = 15.0
    tree_config.dump_config(tmp_path / "config.yaml", config)
    second = subprocess.run(script, check=True, capture_output=True, text=True)
    assert second.stdout.count("output spikes") == 2  # the edited configuration was applied
    with NixLogReader(tmp_path / "log.nix") as reader:
        epochs, weights = reader.get_experiment_property_data("training", ("synapses", "weights"))
        assert epochs.tolist() == [0, 1] and weights[0].shape == (40, 10)
        assert reader.get_config()["config_data"]["model"]["output"]["tau_mem"] == 15.0


def test_adaptive_lif_example_defines_a_model_that_runs_everywhere():
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "adaptive_lif.py"), "--duration", "200"],
        check=True,
        capture_output=True,
        text=True,
    )
    lines = dict(line.split(":", 1) for line in done.stdout.strip().splitlines())
    rates = [float(part.split(":")[1].split()[0]) for part in lines["sweep"].split(",")]
    assert rates == sorted(rates, reverse=True) and rates[0] > rates[-1]  # stronger adaptation, lower rate
    assert lines["network (fast=False)"] == lines["network (fast=aot_eager)"]


def test_digits_example_cross_validates_each_model_beside_the_baseline(tmp_path):
    out = tmp_path / "digits"
    script = [
        sys.executable,
        str(ROOT / "examples" / "digits.py"),
        "--out",
        str(out),
        "--samples",
        "150",
        "--folds",
        "2",
    ]
    subprocess.run(script, check=True, capture_output=True)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 150 and summary["folds"] == 2
    assert "logistic regression, raw pixels" in summary["models"] and len(summary["models"]) == 4
    for row in summary["models"].values():
        assert len(row["fold_accuracies"]) == 2 and row["accuracy_mean"] > 0.5  # chance is 0.1
    assert "| SpikingClassifier (Poisson, linear readout) |" in (out / "table.md").read_text()
