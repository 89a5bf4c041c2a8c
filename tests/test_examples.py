"""The README's main job runs and writes what it promises."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_lif_population_example_writes_figures_and_summary(tmp_path):
    out = tmp_path / "lif"
    subprocess.run(
        [sys.executable, str(ROOT / "examples" / "lif_population.py"), "--out", str(out), "--neurons", "40", "--duration", "300"],
        check=True,
        capture_output=True,
    )
    summary = json.loads((out / "summary.json").read_text())
    assert (out / "raster.png").stat().st_size > 1000 and (out / "fi_curve.png").stat().st_size > 1000
    assert summary["max_relative_deviation_of_isi_rate_from_analytic"] < 0.02
    rates = [lane["mean_rate_hz"] for lane in summary["sweep"]]
    assert rates[0] > rates[1] > rates[2] > 0  # shorter tau_mem, faster firing
