"""PyNN's published examples (``examples/`` of PyNN's source distribution) run unchanged on
``sapicore.pynn`` and, given benchmark environments, on ``pyNN.brian2`` and ``pyNN.nest``: their
recorded data compared.

Each example runs as PyNN's users run it (``python VAbenchmarks.py <simulator> COBA``); the name
"sapicore" is registered as ``pyNN.sapicore`` for the example's ``get_simulator``. The files the
example writes (``Results/*.pkl``, Neo) are read back and summarised:

- spike trains: the mean firing rate (Hz) and the mean coefficient of variation of the ISIs, as
  mean ± standard deviation over ``--repeats`` runs (the Poisson stimuli differ between runs on both
  simulators: that is the seed-to-seed spread; with ``--seeded``, run k calls ``setup`` with
  ``rng_seed=k + 1`` on every simulator, so that NEST's runs differ too); runs of a network whose
  rate stays below 1 Hz (a stimulus that did not ignite it) are counted apart;
- signals (v, gsyn): for the networks with random stimuli, the signal's mean (mean ± standard
  deviation over runs); for the deterministic examples, the largest difference between the two
  simulators' traces, relative to the signal's range.

Usage:
    python benchmarks/pynn_examples.py [--sdist pynn-0.13.0.tar.gz] [--brian-python PATH]
        [--nest-python PATH] [--repeats 3] [--only NAME ...]

``--brian-python`` and ``--nest-python`` (or ``SAPICORE_BRIAN_PYTHON``, ``SAPICORE_NEST_PYTHON``) are
the Pythons of the environments ``benchmarks/setup_brian2.sh`` and ``benchmarks/setup_nest.sh`` make.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pynn_scenarios import _sdist  # noqa: E402

EXAMPLES = {  # name: (script, arguments, random: whether runs differ, network: whether traces are chaotic)
    "VA COBA": ("VAbenchmarks.py", ["COBA"], True, True),
    "VA CUBA": ("VAbenchmarks.py", ["CUBA"], False, True),  # no Poisson stimulus: every run the same
    "simple_STDP": ("simple_STDP.py", ["--dendritic-delay-fraction", "0"], False, False),  # pyNN.brian2 needs 0
    "tsodyksmarkram": ("tsodyksmarkram.py", [], False, False),
}  # multi_synapse.py and monolith_vs_composed.py save no data: benchmarks/pynn_composed.py compares composed cells

BOOT = """
import importlib, os, runpy, sys
try:
    import sapicore.pynn
    sys.modules["pyNN.sapicore"] = sapicore.pynn
except ImportError:
    pass
if os.environ.get("PYNN_RNG_SEED"):  # --seeded: setup() gets rng_seed, the only change to the script
    simulator = importlib.import_module("pyNN." + sys.argv[2])
    unseeded = simulator.setup
    simulator.setup = lambda *a, **k: unseeded(*a, **{**k, "rng_seed": int(os.environ["PYNN_RNG_SEED"])})
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
"""


def _run(
    python: str, script: Path, simulator: str, arguments: list[str], folder: Path, seed: int | None = None
) -> dict[str, object]:
    """Run one example in ``folder`` (with ``setup(rng_seed=seed)`` when given); return its Neo blocks
    by file stem (simulator name removed)."""
    import neo

    folder.mkdir(parents=True)
    environment = dict(os.environ, **({"PYNN_RNG_SEED": str(seed)} if seed is not None else {}))
    done = subprocess.run(
        [python, "-c", BOOT, str(script), simulator, *arguments],
        cwd=folder,
        capture_output=True,
        text=True,
        env=environment,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{script.name} {simulator} failed:\n{done.stderr[-3000:]}")
    blocks = {}
    for path in sorted((folder / "Results").rglob("*.pkl")):  # PyNN files them under the date
        stem = path.name.split(f"_{simulator}")[0]
        blocks[stem] = neo.io.PickleIO(str(path)).read_block()
    return blocks


def _spike_summary(block) -> tuple[float, float] | None:
    trains = block.segments[0].spiketrains
    if not len(trains):
        return None
    duration = float(trains[0].t_stop - trains[0].t_start) / 1000.0
    rate = sum(len(t) for t in trains) / len(trains) / duration
    cvs = [np.std(np.diff(t.magnitude)) / np.mean(np.diff(t.magnitude)) for t in trains if len(t) > 2]
    return rate, float(np.mean(cvs)) if cvs else float("nan")


def _spread(values: list[float]) -> str:
    mean = statistics.mean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.3g} ± {sd:.2g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sdist", help="PyNN's source distribution (.tar.gz); downloaded when not given")
    parser.add_argument("--brian-python", default=os.environ.get("SAPICORE_BRIAN_PYTHON"))
    parser.add_argument("--nest-python", default=os.environ.get("SAPICORE_NEST_PYTHON"))
    parser.add_argument("--repeats", type=int, default=3, help="runs of the examples with random stimuli")
    parser.add_argument("--seeded", action="store_true", help="run k gets setup(rng_seed=k + 1) on every simulator")
    parser.add_argument("--only", nargs="*", help="example names to run (default: all)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="pynn-examples-"))
    try:
        with tarfile.open(_sdist(args.sdist, folder)) as archive:
            members = [m for m in archive.getmembers() if "/examples/" in m.name]
            archive.extractall(folder, members=members, filter="data")
        scripts = next(folder.glob("*/examples"))
        simulators = {"sapicore": sys.executable}
        if args.brian_python:
            simulators["brian2"] = args.brian_python
        if args.nest_python:
            simulators["nest"] = args.nest_python
        print(f"| example | file | measure | {' | '.join(simulators)} |")
        print(f"|---|---|---|{'---|' * len(simulators)}")
        for name, (script, arguments, repeated, network) in EXAMPLES.items():
            if args.only and name not in args.only:
                continue
            runs, failed = {}, {}
            for sim, python in simulators.items():
                try:
                    runs[sim] = [
                        _run(
                            python,
                            scripts / script,
                            sim,
                            arguments,
                            folder / f"{name}-{sim}-{k}".replace(" ", "_"),
                            k + 1 if args.seeded else None,
                        )
                        for k in range(args.repeats if repeated else 1)
                    ]
                except RuntimeError as err:  # the example fails on this simulator: say why, go on
                    lines = str(err).strip().splitlines()
                    failed[sim] = next((line for line in lines if re.match(r"\w*Error: ", line)), lines[-1])[:120]
            for sim, why in failed.items():
                print(f"| {name} | - | fails on {sim} | {why} |")
            if "sapicore" not in runs:
                continue
            for stem in runs["sapicore"][0]:
                summaries = {sim: [_spike_summary(r[stem]) for r in done] for sim, done in runs.items()}
                if summaries["sapicore"][0] is not None:
                    # a network whose stimulus did not ignite it (below 1 Hz) is counted apart
                    active = {
                        sim: [x for x in found if x is not None and x[0] >= 1.0] for sim, found in summaries.items()
                    }
                    if network and any(len(active[sim]) < len(runs[sim]) for sim in runs):
                        cells = [f"{len(runs[sim]) - len(active[sim])} of {len(runs[sim])}" if sim in runs else "-"
                                 for sim in simulators]  # fmt: skip
                        print(f"| {name} | {stem} | runs below 1 Hz (left out below) | {' | '.join(cells)} |")
                    for k, measure in enumerate(("rate (Hz)", "ISI CV")):
                        cells = [_spread([x[k] for x in active[sim]]) if active.get(sim) else "-" for sim in simulators]
                        print(f"| {name} | {stem} | {measure} | {' | '.join(cells)} |")
                for signal in runs["sapicore"][0][stem].segments[0].analogsignals:
                    if network:  # chaotic: traces part after a few spikes, so compare the signal's mean
                        means = {
                            sim: [float(np.mean(r[stem].segments[0].filter(name=signal.name)[0])) for r in done]
                            for sim, done in runs.items()
                        }
                        cells = [_spread(means[sim]) if sim in runs else "-" for sim in simulators]
                        print(f"| {name} | {stem} | mean {signal.name} | {' | '.join(cells)} |")
                        continue
                    ours = np.asarray(signal)
                    cells = [f"range {ours.min():.3g} to {ours.max():.3g}"]
                    for sim in list(simulators)[1:]:
                        if sim not in runs:
                            cells.append("-")
                            continue
                        theirs = np.asarray(runs[sim][0][stem].segments[0].filter(name=signal.name)[0])
                        span = max(np.ptp(theirs), 1e-12)
                        if theirs.shape == ours.shape:
                            cells.append(f"max diff {np.abs(theirs - ours).max() / span:.1%} of range")
                        else:
                            cells.append(f"shape {theirs.shape} vs {ours.shape}")
                    print(f"| {name} | {stem} | {signal.name} | {' | '.join(cells)} |")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
