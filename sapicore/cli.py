"""The ``sapicore`` command (also ``python -m sapicore``).

    sapicore run SPEC [--out DIR] [--duration MS] [--no-progress]
        simulate a spec (a YAML file, or the name of a shipped spec such as ``coba``) and write the
        NIX log of its records, a raster plot and ``summary.json`` (rates, ISI CV, wall time)
    sapicore inspect FILE
        list what a NIX log holds: its configuration and every data array with shape and time axis

Mistakes in a spec or a file are reported in one line, without a traceback, with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

__all__ = ["main", "run", "inspect"]


def run(spec_path: str | Path, out: str | Path, duration: float | None = None, progress: bool = True) -> dict:
    """Simulate a spec and write its outputs into ``out``; return the summary."""
    import sapicore.functional as sf
    from sapicore import analysis, plot
    from sapicore.logging.nix import NixRecordSink
    from sapicore.logging.tensorboard import TensorBoardSink
    from sapicore.spec import initial_state, load_spec

    spec = load_spec(spec_path)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = spec.simulation
    torch.manual_seed(settings.seed)
    network = sf.to(spec.network, device=settings.device)
    state = initial_state(spec)
    record = settings.record or network.default_record()
    sinks = []
    if spec.outputs.nix:
        sinks.append(NixRecordSink(out / "records.nix", overwrite=True, config_data={"spec": str(spec.source)}, flush_every=10))
    if spec.outputs.tensorboard:
        sinks.append(TensorBoardSink(out / "tensorboard"))
    start = time.perf_counter()
    with torch.no_grad():
        _, records = sf.simulate(
            network, state, dt=settings.dt, duration=duration or settings.duration, record=record,
            every=settings.every, fast=settings.fast, progress=progress, sinks=sinks,
        )
    wall = time.perf_counter() - start
    shutil.copyfile(spec.source, out / "spec.yaml")
    spikes = {name.split(".")[0]: records[name].cpu() for name in record if network.is_event(name)}
    window = settings.dt * settings.every
    summary = {
        "spec": str(spec.source),
        "duration_ms": duration or settings.duration,
        "dt_ms": settings.dt,
        "wall_seconds": round(wall, 3),
        "mean_rate_hz": {name: analysis.mean_rate(s, window) for name, s in spikes.items()},
        "isi_cv": {name: analysis.isi_cv(s, window) for name, s in spikes.items()},
        "outputs": ["summary.json", "spec.yaml"] + (["records.nix"] if spec.outputs.nix else []),
    }
    if spec.outputs.raster and spikes:
        plot.raster(spikes, window, out / "raster.png", title=spec.source.stem)
        summary["outputs"].append("raster.png")
    if spec.outputs.tensorboard:
        summary["outputs"].append("tensorboard/")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def inspect(path: str | Path) -> str:
    """A readable listing of a NIX log."""
    import nixio

    from sapicore.logging.nix import NixLogReader

    lines = [f"{path}"]
    with NixLogReader(path) as reader:
        config = reader.get_config()
        lines.append(f"  written by sapicore {config['sapicore_version']}, config: {json.dumps(config['config_data'])}")
        for block in reader.nix_file.blocks:
            lines.append(f"  block {block.name} ({block.type})")
            for array in block.data_arrays:
                axis = ""
                if array.dimensions and isinstance(array.dimensions[0], nixio.SampledDimension):
                    axis = f", time axis every {array.dimensions[0].sampling_interval} ms"
                lines.append(f"    {array.name}: shape {tuple(array.shape)}, {array.dtype}{axis}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sapicore", description="Sapicore: spiking network simulation.")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="simulate a spec and write its outputs")
    run_parser.add_argument("spec", help="a YAML spec file, or the name of a shipped spec (coba)")
    run_parser.add_argument("--out", default=None, help="output folder (default: outputs/<spec name>)")
    run_parser.add_argument("--duration", type=float, default=None, help="override the spec's duration (ms)")
    run_parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    inspect_parser = commands.add_parser("inspect", help="list what a NIX log holds")
    inspect_parser.add_argument("file")
    args = parser.parse_args(argv)

    from sapicore.spec import SpecError

    try:
        if args.command == "run":
            out = args.out or Path("outputs") / Path(args.spec).stem
            summary = run(args.spec, out, args.duration, progress=not args.no_progress)
            print(json.dumps(summary, indent=2))
            print(f"wrote {', '.join(summary['outputs'])} into {out}")
        else:
            print(inspect(args.file))
    except (SpecError, FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"sapicore: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
