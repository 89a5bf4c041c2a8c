"""MkDocs hook: run the gallery's examples at small sizes before each build, so its figures are
made by the code they illustrate. Outputs go to docs/gallery/ (not kept in git)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GALLERY = ROOT / "docs" / "gallery"
RUNS = {
    "lif_population": [sys.executable, "examples/lif_population.py", "--neurons", "40", "--duration", "300"],
    "coba": [sys.executable, "examples/brette2007.py", "--network", "coba", "--neurons", "1000", "--duration", "300"],
    "microcircuit": [
        sys.executable,
        "-m",
        "sapicore",
        "run",
        "microcircuit",
        "--no-progress",
        "--duration",
        "600",
        "--set",
        "builder.scale=0.05",
        "--set",
        "builder.k_scale=0.1",
        "--set",
        "simulation.discard=200",
    ],
}


def on_pre_build(config, **kwargs) -> None:
    for name, command in RUNS.items():
        out = GALLERY / name
        if (out / "raster.png").exists():  # made by an earlier build of this checkout
            continue
        out.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([*command, "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"the gallery example {name} failed:\n{done.stderr[-2000:]}")


def on_post_build(config, **kwargs) -> None:
    """Fail the build if a public name of sapicore.functional has no entry in the API reference, or if
    a page shows a raw reStructuredText role (``:class:`...```) instead of a link or code."""
    import re

    import sapicore.functional as sf

    page = Path(config["site_dir"]) / "api" / "functional" / "index.html"
    anchors = set(re.findall(r'id="(sapicore\.functional[\w.]*)"', page.read_text()))
    constants = {"NONLINEARITIES", "METHODS", "PRESETS", "SURROGATES"}  # listed in the page's text
    missing = [
        name
        for name in sf.__all__
        if name not in constants
        and not any(a == f"sapicore.functional.{name}" or a.endswith(f".{name}") for a in anchors)
    ]
    if missing:
        raise RuntimeError(f"the API reference lacks: {', '.join(missing)}")
    raw = re.compile(r":(class|func|meth|mod|attr|data|exc|obj):(<code>|`)")
    pages = sorted(
        str(path.relative_to(config["site_dir"]))
        for path in Path(config["site_dir"]).rglob("*.html")
        if raw.search(path.read_text())
    )
    if pages:  # reStructuredText roles are not rendered: docstrings link with [`name`][full.path]
        raise RuntimeError(f"raw reStructuredText roles in the built site: {', '.join(pages)}")
