"""One markdown table of issue 11's GPU targets beside what gpu_check.sh measured in the same run.

Run:  python benchmarks/targets.py OUTDIR   (after benchmarks/gpu_check.sh OUTDIR has written its tables)
Reads OUTDIR/coba.md, coba_big.md, sweep.md, microcircuit.md and sync_guard.log (those that exist), prints the table and
writes it to OUTDIR/targets.md. A figure that is missing says which step did not produce it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def rows(path: Path) -> list[list[str]]:
    """The cells of every table row in a markdown file, grouped by table in order (empty if absent)."""
    if not path.exists():
        return []
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in path.read_text().splitlines()
        if line.startswith("|") and not line.startswith("|---")
    ]


def coba_figure(path: Path, neurons: int, label: str) -> str:
    """The wall s / bio s of the row starting with ``label`` in the table for ``neurons`` neurons."""
    if not path.exists():
        return f"not measured ({path.name} missing)"
    blocks = re.split(r"\n(?=COBA, )", path.read_text())
    for block in blocks:
        if block.startswith(f"COBA, {neurons:,} neurons"):
            for line in block.splitlines():
                cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
                if cells and cells[0].startswith(label):
                    return cells[1]
    return f"not measured (no {label!r} row for {neurons:,} neurons in {path.name})"


def sweep_figure(path: Path, lanes: int) -> str:
    for cells in rows(path):
        if cells and cells[0] == str(lanes):
            return cells[2]
    return f"not measured ({lanes} lanes missing from {path.name})"


def microcircuit_figure(path: Path, label: str) -> str:
    """The real-time factor (wall s per biological s) of the row ``label`` in bench_microcircuit's table."""
    for cells in rows(path):
        if cells and cells[0] == label:
            return cells[3]
    return f"not measured (no {label!r} row in {path.name})"


def main() -> None:
    out = Path(sys.argv[1])
    fast, loop = "Sapicore simulate (fast=True)", "plain torch loop"
    guard = out / "sync_guard.log"
    synced = guard.read_text().count("no host synchronisation") if guard.exists() else None
    lines = [
        "| target (one GPU) | goal | Sapicore fast=True | plain torch loop, same GPU |",
        "|---|---|---:|---:|",
        f"| COBA-4k, s per biological second | <= 0.05 | {coba_figure(out / 'coba.md', 4000, fast)} "
        f"| {coba_figure(out / 'coba.md', 4000, loop)} |",
        f"| COBA-400k, s per biological second | <= 0.3 | {coba_figure(out / 'coba_big.md', 400000, fast)} "
        f"| {coba_figure(out / 'coba_big.md', 400000, loop)} |",
        f"| 256 COBA-4k lanes, network-s per wall-s | >= 500 | {sweep_figure(out / 'sweep.md', 256)} | - |",
        "| Potjans-Diesmann microcircuit (the scale microcircuit.md names), real-time factor | <= 0.25 at full scale "
        f"| {microcircuit_figure(out / 'microcircuit.md', 'Sapicore fast=True')} | - |",
        f"| steps free of host synchronisation (eager step, compiled chunk) | 2 of 2 "
        f"| {'not measured (sync_guard.log missing)' if synced is None else f'{synced} of 2'} | - |",
    ]
    text = "\n".join(lines) + "\n"
    (out / "targets.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
