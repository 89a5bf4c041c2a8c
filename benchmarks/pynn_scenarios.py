"""PyNN's own system scenarios (``test/system/scenarios`` of PyNN's source distribution) run on
Sapicore's backend and, where a Brian2 environment is given, on ``pyNN.brian2``: one table of
scenario x simulator.

Every scenario that lists "brian2" among its simulators also runs with "sapicore"
(``sapicore.pynn``, registered as ``pyNN.sapicore`` for the scenarios' loader); nothing of the
scenarios is changed. ``--every`` also runs Sapicore on the scenarios listed for NEST, NEURON or
Arbor only.

Usage:
    python benchmarks/pynn_scenarios.py [--sdist pynn-0.13.0.tar.gz] [--brian-python PATH] [-k EXPR] [--every]

``--brian-python`` (or ``SAPICORE_BRIAN_PYTHON``) is the Python of a benchmark-only environment with
Brian2 and PyNN (``bash benchmarks/setup_brian2.sh`` makes one). Without ``--sdist`` the source
distribution of the installed PyNN version is downloaded with pip.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

CONFTEST = """
import os
import sys

try:  # absent from a Brian2-only environment: its scenarios then skip
    import sapicore.pynn

    sys.modules["pyNN.sapicore"] = sapicore.pynn
except ImportError:
    pass

from . import fixtures  # noqa: E402

_original = fixtures.run_with_simulators


def _with_sapicore(*names):
    every = os.environ.get("SAPICORE_EVERY_SCENARIO")  # --every: also those pyNN.brian2 is not listed for
    return _original(*names, *(("sapicore",) if "brian2" in names or every else ()))


fixtures.run_with_simulators = _with_sapicore
"""


def _sdist(path: str | None, folder: Path) -> Path:
    if path:
        return Path(path)
    import pyNN

    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            f"pyNN=={pyNN.__version__}",
            "--no-binary",
            ":all:",
            "--no-deps",
            "-q",
            "-d",
            str(folder),
        ],
        check=True,
    )
    return next(folder.glob("*.tar.gz"))


def _scenarios(sdist: Path, folder: Path) -> Path:
    with tarfile.open(sdist) as archive:
        members = [m for m in archive.getmembers() if "/test/system/" in m.name]
        archive.extractall(folder, members=members, filter="data")
    system = next(folder.glob("*/test/system"))
    (system / "scenarios" / "conftest.py").write_text(CONFTEST)
    return system.parent


def _run(python: str, root: Path, selection: str, every: bool = False) -> dict[str, str]:
    """pytest outcomes by test id, e.g. {'test_scenario1[sapicore]': 'passed'}."""
    command = [python, "-m", "pytest", "system/scenarios", "-q", "-rA", "-p", "no:cacheprovider", "-k", selection]
    environment = dict(os.environ, **({"SAPICORE_EVERY_SCENARIO": "1"} if every else {}))
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, env=environment)
    outcomes = {}
    for line in done.stdout.splitlines():
        found = re.match(r"(PASSED|FAILED|SKIPPED|ERROR)\s+\S*::(\S+)", line)
        if found:
            outcomes[found.group(2)] = found.group(1).lower()
        skipped = re.match(r"SKIPPED \[\d+\] (\S+):\d+: (.*)", line)
        if skipped:
            outcomes.setdefault(skipped.group(1), "skipped")
    if not outcomes:
        print(done.stdout[-3000:], done.stderr[-3000:])
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sdist", help="PyNN's source distribution (.tar.gz); downloaded when not given")
    parser.add_argument("--brian-python", default=os.environ.get("SAPICORE_BRIAN_PYTHON"))
    parser.add_argument("-k", default="", help="a pytest -k expression narrowing the scenarios")
    parser.add_argument("--every", action="store_true", help="run Sapicore on the NEST/NEURON-only scenarios too")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="pynn-scenarios-"))
    try:
        root = _scenarios(_sdist(args.sdist, folder), folder)
        narrow = f" and ({args.k})" if args.k else ""
        columns = {"sapicore": _run(sys.executable, root, f"sapicore{narrow}", args.every)}
        if args.brian_python:
            columns["brian2"] = _run(args.brian_python, root, f"brian2{narrow}")
        names = sorted({re.sub(r"\[.*\]$", "", test) for column in columns.values() for test in column})
        print(f"| scenario | {' | '.join(columns)} |")
        print(f"|---|{'---|' * len(columns)}")
        for name in names:
            cells = [columns[sim].get(f"{name}[{sim}]", "-") for sim in columns]
            print(f"| {name} | {' | '.join(cells)} |")
        for sim, column in columns.items():
            counts = {k: list(column.values()).count(k) for k in ("passed", "failed", "error", "skipped")}
            print(f"{sim}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
