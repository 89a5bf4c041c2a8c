"""The ``sapicore`` command (also ``python -m sapicore``).

    sapicore run SPEC [--out DIR] [--duration MS] [--set KEY=VALUE ...] [--no-progress]
        simulate a spec (a YAML file, or the name of a shipped spec such as ``coba``) and write the
        NIX log of its records (spikes as time/neuron events), a raster plot and ``summary.json``
        (rates, ISI CV, wall time)
    sapicore sweep SPEC [--out DIR] [--duration MS]
        run the lanes of the spec's ``sweep:`` section as vmap lanes and write ``sweep.csv`` and
        ``sweep.json``: one row per lane with its parameter values, rates and ISI CVs, and each lane's
        outputs (as ``run`` writes them) into ``lanes/<lane>/``. Launched with
        ``torchrun --nproc_per_node N``, the lanes are shared out over the N processes (gloo on the CPU,
        NCCL on GPUs; each process uses the spec's device, or GPU ``LOCAL_RANK`` when it is cuda) and
        rank 0 writes the merged table.
    sapicore inspect FILE
        list what a NIX log holds: its configuration and every data array with shape and time axis

Mistakes in a spec or a file, and a run whose variables turn NaN or infinite, are reported in one line,
without a traceback, with exit status 2.
A run holds its output folder: a second run into the same folder refuses (naming the process that
holds it). Files are written under partial names (``records.part.nix``) and renamed when complete,
so a finished output is never half-written (a killed run leaves its partial NIX log, readable up to
the last flush); a run that fails removes its partial files, and the folder if it created it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

try:
    import fcntl
except ImportError:  # Windows: no folder lock
    fcntl = None

__all__ = ["main", "run", "sweep", "inspect"]


@contextlib.contextmanager
def claimed(out: str | Path) -> Iterator[Path]:
    """Hold the output folder ``out`` for one run (created if missing): another run holding it makes
    this one refuse with a FileExistsError naming it; if the block fails, a folder it created is removed."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder (it is created if missing)")
    existed = out.exists()
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".sapicore.lock", "a+") as handle:  # the lock goes with the process, however it ends
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise FileExistsError(
                    f"{out} is in use by another sapicore run ({holder}); wait for it to end or give another --out"
                ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}")
        handle.flush()
        try:
            yield out
        except BaseException:
            if not existed:
                shutil.rmtree(out, ignore_errors=True)
            else:
                _remove_partial(out)
            raise


def partial(path: Path) -> Path:
    """The name a file or folder is written under until it is complete (``records.part.nix``)."""
    return path.with_name(f"{path.stem}.part{path.suffix}")


def _remove_partial(out: Path) -> None:
    for path in out.rglob("*.part*"):
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def publish(out: Path, names: list[str]) -> None:
    """Rename each complete output ``out/name`` from its partial name, replacing an older one."""
    for name in names:
        final = out / name.rstrip("/")
        if final.is_dir():
            shutil.rmtree(final)
        os.replace(partial(final), final)


def _sinks(spec: Any, folder: Path, spike_records: tuple[str, ...]) -> tuple[Any, list, list[str]]:
    """The sinks a spec's ``outputs:`` asks for, writing under partial names in ``folder``: (the spike
    events kept in memory for the summary and raster, every sink, the outputs' final names)."""
    import sapicore.functional as sf
    from sapicore.logging.nix import NixRecordSink
    from sapicore.logging.tensorboard import TensorBoardSink

    folder.mkdir(parents=True, exist_ok=True)
    spike_events = sf.SpikeEvents(spike_records) if spike_records else None
    sinks: list = [spike_events] if spike_events else []
    names: list[str] = []
    if spec.outputs.nix:  # spikes are stored as (time, neuron) events
        sinks.append(
            NixRecordSink(
                partial(folder / "records.nix"),
                overwrite=True,
                config_data={"spec": str(spec.source)},
                flush_every=10,
                events=spike_records,
            )
        )
        names.append("records.nix")
    if spec.outputs.tensorboard:
        sinks.append(TensorBoardSink(partial(folder / "tensorboard")))
        names.append("tensorboard/")
    return spike_events, sinks, names


def _duration(source: Path, settings: Any, duration: float | None) -> float:
    """The run's duration (ms): ``--duration`` or the spec's, which must outlast ``simulation.discard``."""
    from sapicore.spec import SpecError

    duration = duration or settings.duration
    if settings.discard and duration <= settings.discard:
        raise SpecError(
            f"{source}: --duration {duration} ms is not longer than simulation.discard ({settings.discard} ms)"
        )
    return duration


def _spike_summary(spike_events: Any, network: Any, duration: float, discard: float) -> tuple[dict, dict, dict]:
    """(events per population for a raster, mean rates in Hz, ISI CVs), from the kept spike events
    after the first ``discard`` ms."""
    from sapicore import analysis

    events, rates, cvs = {}, {}, {}
    seconds = (duration - discard) / 1000.0
    ranges = network.ranges()
    for name in spike_events.names if spike_events else ():
        population = name.split(".")[0]
        times, neurons = spike_events.times[name], spike_events.neurons[name]
        size = ranges[population][2]
        events[population] = (times, neurons, size)
        kept = times > discard
        rates[population] = int(kept.sum()) / size / seconds
        cvs[population] = analysis.isi_cv_of_events(times[kept], neurons[kept], size)
    return events, rates, cvs


def _raster(spec: Any, folder: Path, events: dict, title: str, rates: dict) -> list[str]:
    """The raster (and, for a spec with reference rates, the rates beside them) under partial names."""
    from sapicore import plot

    if not (spec.outputs.raster and events):
        return []
    plot.raster_events(events, partial(folder / "raster.png"), title=title)
    if not spec.reference_rates:
        return ["raster.png"]
    plot.rate_bars(rates, spec.reference_rates, partial(folder / "rates.png"), title=f"{title}: mean rates")
    return ["raster.png", "rates.png"]


def run(
    spec_path: str | Path, out: str | Path, duration: float | None = None, progress: bool = True, overrides: tuple = ()
) -> dict:
    """Simulate a spec (with ``overrides``, ``"dotted.key=value"`` strings) and write its outputs into
    ``out`` (each under a partial name until it is complete, then renamed); return the summary."""
    import sapicore.functional as sf
    from sapicore.spec import initial_state, load_data, override, parse_spec

    path, data = load_data(spec_path)
    spec = parse_spec(override(data, overrides, path), path)
    out = Path(out)
    settings = spec.simulation
    duration = _duration(spec.source, settings, duration)
    torch.manual_seed(settings.seed)
    network = sf.to(spec.network, device=settings.device)
    state = initial_state(spec)
    record = settings.record or network.default_record()
    spike_records = tuple(name for name in record if network.is_event(name))
    spike_events, sinks, names = _sinks(spec, out, spike_records)
    start = time.perf_counter()
    with torch.no_grad():
        sf.simulate(
            network,
            state,
            dt=settings.dt,
            duration=duration,
            record=record,
            every=settings.every,
            fast=settings.fast,
            progress=progress,
            sinks=sinks,
            keep=False,  # records stream to the sinks: memory stays bounded
        )
    wall = time.perf_counter() - start
    if overrides:  # the spec as run, overrides applied
        from tree_config.yaml import yaml_dumps

        partial(out / "spec.yaml").write_text(yaml_dumps(data))
    else:
        shutil.copyfile(spec.source, partial(out / "spec.yaml"))
    events, rates, cvs = _spike_summary(spike_events, network, duration, settings.discard)
    names += ["spec.yaml"] + _raster(spec, out, events, spec.source.stem, rates)
    summary = {
        "spec": str(spec.source),
        "overrides": list(overrides),
        "duration_ms": duration,
        "dt_ms": settings.dt,
        "discarded_ms": settings.discard,
        "wall_seconds": round(wall, 3),
        "mean_rate_hz": rates,
        **({"reference_rates_hz": spec.reference_rates} if spec.reference_rates else {}),
        "isi_cv": cvs,
        "outputs": ["summary.json"] + names,
    }
    partial(out / "summary.json").write_text(json.dumps(summary, indent=2))
    publish(out, summary["outputs"])
    return summary


def _distributed(device: str) -> tuple[int, int]:
    """(rank, world size): from torchrun's environment, joining its process group; else (0, 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return dist.get_rank(), world


def sweep(
    spec_path: str | Path, out: str | Path, duration: float | None = None, progress: bool = True, overrides: tuple = ()
) -> list[dict]:
    """Run a spec's sweep lanes (sharded over torchrun processes); rank 0 writes and returns the table.

    Each lane writes the outputs the spec asks for (NIX log, raster, TensorBoard) into
    ``out/lanes/<lane>/``, as ``sapicore run`` writes them into ``out``.
    """
    import csv

    import sapicore.functional as sf
    from sapicore.spec import SpecError, expand_sweep, initial_state, load_data, override, parse_spec

    path, data = load_data(spec_path)
    data = override(data, overrides, path)
    if not isinstance(data, dict) or "sweep" not in data:
        raise SpecError(f"{path}: no sweep: section (grid, zip or random); 'sapicore run' runs a spec without one")
    lanes_data, labels = expand_sweep(data, path)
    specs = [parse_spec(lane, path) for lane in lanes_data]
    settings = specs[0].simulation
    duration = _duration(path, settings, duration)
    device = settings.device
    rank, world = _distributed(device)
    if device.startswith("cuda") and world > 1:
        device = f"cuda:{os.environ.get('LOCAL_RANK', rank)}"
    mine = list(range(rank, len(specs), world))
    rows: list[dict] = []
    if mine:
        try:
            lanes = sf.stack([sf.to(specs[i].network, device=device) for i in mine])
        except (ValueError, TypeError) as err:
            raise SpecError(
                f"{path}: sweep: the swept values change the network's structure, so lanes cannot share one run ({err})"
            ) from None
        states = sf.stack([sf.to(initial_state(specs[i]), device=device) for i in mine])
        record = settings.record or lanes.default_record()
        spike_records = tuple(name for name in record if lanes.is_event(name))
        folders = {lane: Path(out) / "lanes" / str(lane) for lane in mine}
        outputs = {lane: _sinks(specs[lane], folders[lane], spike_records) for lane in mine}
        torch.manual_seed(settings.seed)
        with torch.no_grad():
            sf.sweep(
                lanes,
                states,
                dt=settings.dt,
                duration=duration,
                record=record,
                every=settings.every,
                fast=settings.fast,
                progress=progress and rank == 0,
                sinks=[sf.PerLane([outputs[lane][1] for lane in mine])],
                keep=False,
            )
        for lane in mine:
            spike_events, _, names = outputs[lane]
            events, rates, cvs = _spike_summary(spike_events, specs[lane].network, duration, settings.discard)
            names += _raster(specs[lane], folders[lane], events, f"{path.stem} lane {lane}", rates)
            publish(folders[lane], names)
            row = {"lane": lane, **labels[lane]}
            for population in rates:
                row[f"rate_hz.{population}"] = rates[population]
                row[f"isi_cv.{population}"] = cvs[population]
            rows.append(row)
    if world > 1:
        import torch.distributed as dist

        gathered: list = [None] * world
        dist.all_gather_object(gathered, rows)
        rows = sorted((row for part in gathered for row in part), key=lambda row: row["lane"])
        dist.destroy_process_group()
    if rank == 0:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        partial(out / "sweep.json").write_text(json.dumps(rows, indent=2))
        with open(partial(out / "sweep.csv"), "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        publish(out, ["sweep.json", "sweep.csv"])
    return rows


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
    from sapicore import __version__

    parser = argparse.ArgumentParser(prog="sapicore", description="Sapicore: spiking network simulation.")
    parser.add_argument("--version", action="version", version=f"sapicore {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="simulate a spec and write its outputs")
    run_parser.add_argument("spec", help="a YAML spec file, or the name of a shipped spec (coba)")
    run_parser.add_argument("--out", default=None, help="output folder (default: outputs/<spec name>)")
    run_parser.add_argument("--duration", type=float, default=None, help="override the spec's duration (ms)")
    run_parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    run_parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="set a spec value, e.g. builder.scale=0.05"
    )
    sweep_parser = commands.add_parser("sweep", help="run the lanes of a spec's sweep section")
    sweep_parser.add_argument("spec")
    sweep_parser.add_argument("--out", default=None, help="output folder (default: outputs/<spec name>-sweep)")
    sweep_parser.add_argument("--duration", type=float, default=None, help="override the spec's duration (ms)")
    sweep_parser.add_argument("--no-progress", action="store_true")
    sweep_parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="set a spec value")
    inspect_parser = commands.add_parser("inspect", help="list what a NIX log holds")
    inspect_parser.add_argument("file")
    args = parser.parse_args(argv)

    from sapicore.spec import SpecError

    try:
        if args.command == "run":
            out = args.out or Path("outputs") / Path(args.spec).stem
            with claimed(out):
                summary = run(args.spec, out, args.duration, progress=not args.no_progress, overrides=tuple(args.set))
            print(json.dumps(summary, indent=2))
            print(f"wrote {', '.join(summary['outputs'])} into {out}")
        elif args.command == "sweep":
            out = args.out or Path("outputs") / f"{Path(args.spec).stem}-sweep"
            first = os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0 writes and holds the folder
            with claimed(out) if first else contextlib.nullcontext():
                rows = sweep(args.spec, out, args.duration, progress=not args.no_progress, overrides=tuple(args.set))
            if first:
                print(f"wrote sweep.csv and sweep.json ({len(rows)} lanes) into {out}")
        else:
            print(inspect(args.file))
    except (SpecError, FileNotFoundError, FileExistsError, ValueError, FloatingPointError) as err:
        print(f"sapicore: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
