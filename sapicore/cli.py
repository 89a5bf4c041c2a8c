"""The ``sapicore`` command (also ``python -m sapicore``).

    sapicore run SPEC [--out DIR] [--duration MS] [--set KEY=VALUE ...] [--overwrite] [--no-progress]
                 [--checkpoint-every MS] [--resume]
        simulate a spec (a YAML file, or the name of a shipped spec such as ``coba``) and write the
        NIX log of its records (spikes as time/neuron events), a raster plot and ``summary.json``
        (rates, ISI CV, wall time). With ``--checkpoint-every MS`` the run saves its state into
        ``DIR/checkpoint.pt`` that often (every rank its shard under torchrun); a run killed or
        stopped after one keeps it with its partial records, and ``--resume`` (same spec and
        ``--set`` values) goes on from there, on any number of processes, and ends with the outputs
        of one uninterrupted run (the checkpoint is then removed)
    sapicore sweep SPEC [--out DIR] [--duration MS] [--set KEY=VALUE ...] [--overwrite] [--no-progress]
        run the lanes of the spec's ``sweep:`` section and write ``sweep.csv`` and ``sweep.json``: one
        row per lane with its parameter values, what it ran with (dt, duration, seed, ...), rates and
        ISI CVs, and each lane's outputs (as ``run`` writes them) into ``lanes/<lane>/``. Lanes that
        share their run settings and structure run together as vmap lanes; lanes that differ in a
        ``simulation.*`` value or in sizes run as separate groups, and so do lanes with different
        seeds in a network that draws random numbers (each then equals its single run). A lane whose
        state turns NaN or infinite is stopped there (its records are NaN from then on; the row's
        ``diverged_by_ms`` says when) while the others run on. Launched with
        ``torchrun --nproc_per_node N``, the lanes are shared out over the N processes (gloo on the CPU,
        NCCL on GPUs; each process uses the spec's device, or GPU ``LOCAL_RANK`` when it is cuda) and
        rank 0 writes the merged table.
    sapicore inspect FILE
        list what a NIX log holds: its configuration and every data array with shape and time axis

Every failure is one line on stderr without a traceback: mistakes in a spec or a file, a single run
whose variables turn NaN or infinite, and a file system that refuses (no space, read-only, not a
folder, no permission) exit with status 2; Ctrl-C exits with 130 and SIGTERM with 143, both after
cleaning up.

Output folders never mix: a run holds its ``--out`` folder (a second run into a folder in use
refuses, naming the process that holds it), and a folder that holds the outputs of an earlier run is
only replaced with ``--overwrite``, which then leaves exactly the new run's outputs (a sweep's
``lanes/`` is replaced as a whole). Files are written under partial names (``records.part.nix``)
and renamed when complete, so a finished output is never half-written; a run that fails or is
interrupted removes its partial files (and the folder, if it created it), and claiming a folder
removes partial files that a killed run left anywhere under it. Before a run starts, the size of its
sampled records is compared with the free space of ``--out``: a run that cannot fit is refused.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import os
import shutil
import signal
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

try:
    import fcntl
except ImportError:  # Windows: no folder lock
    fcntl = None

__all__ = ["main", "run", "sweep", "inspect", "claimed", "OUTPUTS"]

#: every output name a run or a sweep writes into its folder
OUTPUTS = (
    "summary.json",
    "records.nix",
    "raster.png",
    "rates.png",
    "spec.yaml",
    "tensorboard",
    "sweep.csv",
    "sweep.json",
    "lanes",
)
LOCK = ".sapicore.lock"
#: where ``run --checkpoint-every`` keeps the checkpoint of a run not yet finished (shards beside it)
CHECKPOINT = "checkpoint.pt"
#: one line when a run will write more than this (bytes)
LARGE = 10 * 2**30


class Terminated(BaseException):
    """SIGTERM arrived: unwinds like Ctrl-C, so every partial output is removed."""


def partial(path: Path) -> Path:
    """The name a file or folder is written under until it is complete (``records.part.nix``)."""
    return path.with_name(f"{path.stem}.part{path.suffix}")


PARTIAL_NAMES = frozenset(partial(Path(name)).name for name in OUTPUTS)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _remove_partial(out: Path) -> None:
    """Remove every partial output anywhere under ``out`` (a killed run's, or this run's on failure)."""
    for path in sorted(out.rglob("*"), key=lambda path: len(path.parts)):
        if path.name in PARTIAL_NAMES and path.exists():
            _remove(path)


def _lock(out: Path) -> Any:
    """Open and lock ``out/.sapicore.lock``, refusing if another run holds it."""
    path = out / LOCK
    while True:
        handle = open(path, "a+")
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                handle.close()
                raise FileExistsError(
                    f"{out} is in use by another sapicore run ({holder}); wait for it to end or give another --out"
                ) from None
        try:  # the run before this one removes the file when it ends: hold the file that is there now
            same = os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            handle.seek(0)
            handle.truncate()
            handle.write(f"process {os.getpid()}")
            handle.flush()
            return handle
        handle.close()


def _remove_checkpoint(out: Path) -> None:
    """Remove the checkpoint of an interrupted run (its manifest, shards and partial files) from ``out``."""
    for path in out.glob(f"{CHECKPOINT}*"):
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def claimed(out: str | Path, overwrite: bool = False, resume: bool = False) -> Iterator[Path]:
    """Hold the output folder ``out`` for one run (created if missing).

    Refuses (FileExistsError) when another run holds it, when it holds an earlier run's outputs and
    ``overwrite`` is False, or the checkpoint of an interrupted run (`CHECKPOINT`) and neither
    ``resume`` nor ``overwrite`` is given. Partial outputs left anywhere under it by a killed run are
    removed, unless ``resume`` (they belong to the checkpoint, which must then be there). If the
    block fails or is interrupted, its partial outputs are removed, and the folder if it created it,
    except where a checkpoint was saved: the checkpoint and the partial outputs then stay for
    ``--resume``. The lock file goes in every case.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder (it is created if missing)")
    existed = out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        handle = _lock(out)
    except BaseException:
        if not existed:
            shutil.rmtree(out, ignore_errors=True)
        raise
    try:
        if resume and not (out / CHECKPOINT).is_file():
            raise FileNotFoundError(
                f"{out} holds no interrupted run to resume (no {CHECKPOINT}); a run saves one with --checkpoint-every MS"
            )
        if not resume:
            if (out / CHECKPOINT).exists() and not overwrite:
                raise FileExistsError(
                    f"{out} holds an interrupted run (its {CHECKPOINT}); continue it with --resume, or give --overwrite "
                    "to start again"
                )
            _remove_checkpoint(out)
            _remove_partial(out)
            finished = [name for name in OUTPUTS if (out / name).exists()]
            if finished and not overwrite:
                raise FileExistsError(
                    f"{out} holds the outputs of an earlier run ({', '.join(finished)}); give another --out, or "
                    "--overwrite to replace them"
                )
        yield out
    except BaseException:
        if (out / CHECKPOINT).is_file():
            pass  # an interrupted run: its checkpoint and partial records stay for --resume
        elif not existed:
            shutil.rmtree(out, ignore_errors=True)
        else:
            _remove_partial(out)
        raise
    finally:
        (out / LOCK).unlink(missing_ok=True)
        handle.close()


def publish(out: Path, names: list[str], only: bool = False) -> None:
    """Rename each complete output ``out/name`` from its partial name, replacing an older one; with
    ``only``, also remove the earlier outputs this run did not write, so the folder holds this run's alone."""
    for name in names:
        final = out / name.rstrip("/")
        if final.exists():
            _remove(final)
        os.replace(partial(final), final)
    if only:
        written = {name.rstrip("/") for name in names}
        for name in OUTPUTS:
            if name not in written and (out / name).exists():
                _remove(out / name)


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

    if duration is None:
        duration = settings.duration
    elif not duration > 0 or duration == float("inf"):
        raise SpecError(f"{source}: --duration must be a positive number of milliseconds, got {duration:g}")
    if duration < settings.dt:
        raise SpecError(f"{source}: --duration {duration:g} ms is shorter than one step (dt = {settings.dt} ms)")
    if settings.discard and duration <= settings.discard:
        raise SpecError(
            f"{source}: --duration {duration} ms is not longer than simulation.discard ({settings.discard} ms)"
        )
    return duration


def _size(count: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if count < 1000 or unit == "PB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def _record_bytes(network: Any, state: Any, record: tuple[str, ...], steps: int, every: int) -> dict[str, float]:
    """Bytes each sampled record will take in the NIX log (spike events are not counted: their size
    depends on the rates)."""
    ranges = network.ranges() if network.exchange is None else network.exchange.ranges()  # records are whole
    sizes = {}
    for name in record:
        if network.is_event(name):
            continue
        owner, _, variable = name.partition(".")
        if owner in ranges:
            population, _, count = ranges[owner]
            value = getattr(state.populations[population], variable, None)
            per_neuron = value.numel() // network.populations[population].size if value is not None else 1
            numel = count * max(per_neuron, 1)
            itemsize = value.element_size() if value is not None else 4
        else:
            value = network.read(state, {}, name)
            numel, itemsize = value.numel(), value.element_size()
        sizes[name] = float(numel) * itemsize * (steps // every)
    return sizes


def _check_space(out: Path, sizes: dict[str, float]) -> None:
    """Refuse a run whose sampled records cannot fit on the disk of ``out``; say so when they are large."""
    total = sum(sizes.values())
    if not total:
        return
    free = shutil.disk_usage(out).free
    largest = ", ".join(f"{name}: {_size(size)}" for name, size in sorted(sizes.items(), key=lambda kv: -kv[1])[:3])
    if total > free:
        raise OSError(
            errno.ENOSPC,
            f"this run would write {_size(total)} of records ({largest}) but only {_size(free)} are free; record "
            "fewer variables, raise simulation.every, or shorten the run",
            str(out),
        )
    if total > LARGE:
        print(f"sapicore: this run will write {_size(total)} of records into {out} ({largest})", file=sys.stderr)


def _spike_summary(spike_events: Any, network: Any, duration: float, discard: float) -> tuple[dict, dict, dict]:
    """(events per population for a raster, mean rates in Hz, ISI CVs), from the kept spike events
    after the first ``discard`` ms."""
    from sapicore import analysis

    events, rates, cvs = {}, {}, {}
    seconds = (duration - discard) / 1000.0
    ranges = network.ranges() if network.exchange is None else network.exchange.ranges()  # the whole network's
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
    note = "\n(downscaled: expect deviations from the full-scale references, up to 30% in NEST's own run at scale 0.1)"
    heading = f"{title}: mean rates" + (note if spec.notes else "")
    plot.rate_bars(rates, spec.reference_rates, partial(folder / "rates.png"), title=heading)
    return ["raster.png", "rates.png"]


class _CompileReport(logging.Handler):
    """Prints the stepper's compile messages on stderr and adds up the seconds they report."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seconds = 0.0

    def emit(self, record: logging.LogRecord) -> None:
        self.seconds += getattr(record, "compile_seconds", 0.0)
        print(f"sapicore: {record.getMessage()}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _reporting_compiles() -> Iterator[_CompileReport]:
    """Within the block, compiles are announced and timed on stderr (`_CompileReport`)."""
    logger = logging.getLogger("sapicore.compile")
    report, level = _CompileReport(), logger.level
    logger.addHandler(report)
    logger.setLevel(logging.INFO)
    try:
        yield report
    finally:
        logger.removeHandler(report)
        logger.setLevel(level)


def run(
    spec_path: str | Path,
    out: str | Path,
    duration: float | None = None,
    progress: bool = True,
    overrides: tuple = (),
    checkpoint_every: float | None = None,
    resume: bool = False,
) -> dict:
    """Simulate a spec (with ``overrides``, ``"dotted.key=value"`` strings) and write its outputs into
    ``out`` (each under a partial name until it is complete, then renamed; the folder then holds this
    run's outputs alone); return the summary.

    ``checkpoint_every`` (ms of simulated time): save a checkpoint into ``out`` (`CHECKPOINT`) that
    often, so that a run that is killed or stops can go on with ``resume``: the run then continues
    from the checkpoint (same spec and overrides; ``duration`` defaults to the interrupted run's),
    appending to its records, and ends with the outputs of one uninterrupted run. The checkpoint is
    removed when the run completes."""
    import sapicore.functional as sf
    from sapicore.checkpoint import Checkpoints, resume_sinks
    from sapicore.functional.running.partition import local_state
    from sapicore.spec import SpecError, initial_state, load_data, override, parse_spec

    path, data = load_data(spec_path)
    data = override(data, overrides, path)
    if isinstance(data, dict) and "sweep" in data:
        raise SpecError(f"{path}: has a sweep: section; run its lanes with 'sapicore sweep {spec_path}'")
    world = int(os.environ.get("WORLD_SIZE", "1"))  # under torchrun a builder builds this rank's share only
    spec = parse_spec(data, path, share=(int(os.environ.get("RANK", "0")), world) if world > 1 else None)
    out = Path(out)
    settings = spec.simulation
    if not resume:  # checked before the network is built (a resumed run's defaults come from its checkpoint)
        duration = _duration(spec.source, settings, duration)
    _checkpoint_steps(spec.source, settings.dt, checkpoint_every)
    torch.manual_seed(settings.seed)
    network = sf.to(spec.network, device=settings.device)
    state = initial_state(spec)
    record = settings.record or network.default_record()
    rank, world = _partitioned(path, settings)
    if world > 1 and network.exchange is None:  # a network built whole: each rank takes its share
        network = sf.partition(network)
        state = local_state(network, state)
    if world > 1:
        network.exchange.transport = settings.transport
        torch.manual_seed(settings.seed + rank)  # unkeyed draws (a Poisson background): each rank its own stream
    saved = _resumed(out, spec.source, data, network, settings.device) if resume else None
    if saved is not None:
        state = saved["state"]
        duration = _duration(spec.source, settings, saved["extra"]["duration"] if duration is None else duration)
        checkpoint_every = saved["extra"]["checkpoint_every_ms"] if checkpoint_every is None else checkpoint_every
    steps = int(round(duration / settings.dt))
    start = 0 if saved is None else saved["step"]
    if start >= steps:
        raise SpecError(
            f"{out}: the interrupted run had reached {start * settings.dt:g} ms; give a --duration beyond it "
            f"(this run's is {duration:g} ms)"
        )
    options = _options(settings, duration, record, progress and rank == 0)
    if start:
        options.update(duration=None, steps=steps - start, start_step=start)
    every = _checkpoint_steps(spec.source, settings.dt, checkpoint_every)
    extra = {"spec": data, "duration": duration, "checkpoint_every_ms": checkpoint_every}
    if rank > 0:  # rank 0 holds the folder and writes every output
        if every:
            options.update(checkpoint=Checkpoints(out / CHECKPOINT, network, extra=extra), checkpoint_every=every)
        with torch.no_grad():
            sf.simulate(network, state, **options)
        return {}
    if spec.outputs.nix:
        _check_space(out, _record_bytes(network, state, record, steps - start, settings.every))
    spike_records = tuple(name for name in record if network.is_event(name))
    spike_events, sinks, names = _sinks(spec, out, spike_records)
    if saved is not None:
        resume_sinks(saved, sinks)
    if every:
        options.update(checkpoint=Checkpoints(out / CHECKPOINT, network, sinks, extra), checkpoint_every=every)
    began = time.perf_counter()
    with torch.no_grad(), _reporting_compiles() as compiles:
        sf.simulate(network, state, sinks=sinks, **options)
    wall = time.perf_counter() - began
    _write_spec(out, spec.source, data, overrides)
    events, rates, cvs = _spike_summary(spike_events, network, duration, settings.discard)
    names += ["spec.yaml"] + _raster(spec, out, events, spec.source.stem, rates)
    summary = {
        "spec": str(spec.source),
        "overrides": list(overrides),
        "duration_ms": duration,
        "dt_ms": settings.dt,
        "discarded_ms": settings.discard,
        "wall_seconds": round(wall, 3),
        **({"resumed_at_ms": round(start * settings.dt, 9)} if saved is not None else {}),
        **({"processes": world, "exchange": _exchange_summary(network.exchange)} if world > 1 else {}),
        **({"compile_seconds": round(compiles.seconds, 3)} if settings.fast else {}),
        "mean_rate_hz": rates,
        **({"reference_rates_hz": spec.reference_rates} if spec.reference_rates else {}),
        **({"notes": list(spec.notes)} if spec.notes else {}),
        "isi_cv": cvs,
        "outputs": ["summary.json"] + names,
    }
    partial(out / "summary.json").write_text(json.dumps(summary, indent=2))
    publish(out, summary["outputs"], only=True)
    _remove_checkpoint(out)
    return summary


def _checkpoint_steps(source: Path, dt: float, every_ms: float | None) -> int | None:
    """Steps between checkpoints for ``--checkpoint-every`` (ms), or None without it."""
    from sapicore.spec import SpecError

    if every_ms is None:
        return None
    if not every_ms > 0 or every_ms == float("inf"):
        raise SpecError(f"{source}: --checkpoint-every must be a positive number of milliseconds, got {every_ms:g}")
    if every_ms < dt:
        raise SpecError(f"{source}: --checkpoint-every {every_ms:g} ms is shorter than one step (dt = {dt} ms)")
    return int(round(every_ms / dt))


def _resumed(out: Path, source: Path, data: Any, network: Any, device: str) -> dict:
    """The checkpoint of the run interrupted in ``out``, moved onto ``network`` (this process's share,
    or the whole network); refused unless it ran the same spec (``data``, overrides applied; only
    ``simulation.device`` may differ)."""
    from sapicore.checkpoint import load_checkpoint
    from sapicore.spec import SpecError

    saved = load_checkpoint(out / CHECKPOINT, model=network, map_location=device)
    extra = saved.get("extra", {})
    if "spec" not in extra:
        raise SpecError(f"{out / CHECKPOINT} was not saved by 'sapicore run --checkpoint-every'")
    changed = _differences(extra["spec"], data)
    changed = [key for key in changed if key != "simulation.device"]
    if changed:
        raise SpecError(
            f"{source}: differs from the spec of the run interrupted in {out} ({', '.join(changed[:5])}); resume "
            "with the same spec and --set values, or give --overwrite to start again"
        )
    return saved


def _differences(before: Any, now: Any, prefix: str = "") -> list[str]:
    """The dotted keys at which two specs (nested dicts and lists) differ."""
    if isinstance(before, dict) and isinstance(now, dict):
        keys = list(before) + [key for key in now if key not in before]
        return [found for key in keys for found in _differences(before.get(key), now.get(key), f"{prefix}{key}.")]
    return [] if before == now else [prefix.rstrip(".") or "the whole spec"]


def _exchange_summary(exchange: Any) -> dict:
    """How rank 0 exchanged with the others: through shared memory or gloo, bytes received, seconds
    spent (waiting for the other ranks included)."""
    traffic = exchange.traffic()
    return {
        "transport": "shared" if exchange.channel is not None else "gloo",
        "bytes": int(traffic["bytes"]),
        "seconds": round(traffic["seconds"], 3),
    }


def _options(settings: Any, duration: float, record: tuple[str, ...], progress: bool) -> dict:
    """The keyword arguments of ``simulate`` (and ``sweep``) for a spec's ``simulation`` settings; records
    stream to the sinks (``keep=False``), so memory stays bounded."""
    return dict(
        dt=settings.dt,
        duration=duration,
        record=record,
        every=settings.every,
        fast=settings.fast,
        progress=progress,
        keep=False,
    )


def _write_spec(out: Path, source: Path, data: Any, overrides: tuple) -> None:
    """The spec as run (overrides applied) under its partial name."""
    if overrides:
        from tree_config.yaml import yaml_dumps

        partial(out / "spec.yaml").write_text(yaml_dumps(data))
    else:
        shutil.copyfile(source, partial(out / "spec.yaml"))


def _partitioned(path: Path, settings: Any) -> tuple[int, int]:
    """(rank, world size) of a run under torchrun, whose network each process runs its share of
    (``sapicore.functional.partition``); (0, 1) otherwise."""
    from sapicore.spec import SpecError

    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return 0, 1
    if settings.device != "cpu":
        raise SpecError(
            f"{path}: under torchrun a network runs partitioned on CPUs for now; --set simulation.device=cpu"
        )
    return _distributed(settings.device)


def _distributed(device: str) -> tuple[int, int]:
    """(rank, world size): from torchrun's environment, joining its process group (collectives time
    out after `exchange_timeout` seconds); else (0, 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import datetime

    import torch.distributed as dist

    from sapicore.functional.running.shared import exchange_timeout

    if not dist.is_initialized():
        timeout = datetime.timedelta(seconds=exchange_timeout())
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo", timeout=timeout)
    return dist.get_rank(), world


def _exchange_failure(err: BaseException) -> str | None:
    """One line for a collective that failed in a partitioned run (a process died or is stuck), or
    None when ``err`` is something else."""
    import re

    import torch.distributed as dist

    from sapicore.functional.running.shared import exchange_timeout, failure

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return None
    text = str(err)
    shared = failure()  # a shared-memory exchange's own words (a compiled chunk's error loses them)
    if shared is not None:
        text = shared
    elif not (isinstance(err, getattr(dist, "DistError", ())) or re.search(r"gloo|nccl|timed? ?out", text, re.I)):
        return None
    first = re.sub(r"^\[[^\]]*\]\s*", "", text.splitlines()[0] if text else type(err).__name__)
    first = first.split(" This is typically")[0].rstrip(". ")
    return (
        f"rank {dist.get_rank()} of {dist.get_world_size()}: the exchange with the other processes failed ({first}); "
        f"another process stopped or is stuck (its own output says why; collectives give up after "
        f"{exchange_timeout():g} s, SAPICORE_EXCHANGE_TIMEOUT); partial outputs removed"
    )


def _settings(spec: Any, duration: float) -> dict:
    """What a lane runs with, as its ``sweep.csv`` columns report it."""
    settings = spec.simulation
    return {
        "ran.dt_ms": settings.dt,
        "ran.duration_ms": duration,
        "ran.seed": settings.seed,
        "ran.every": settings.every,
        "ran.record": " ".join(settings.record),
        "ran.fast": settings.fast,
        "ran.dtype": settings.dtype,
        "ran.device": settings.device,
        "ran.discard_ms": settings.discard,
    }


def _stochastic(network: Any) -> bool:
    return any(getattr(population.model, "stochastic", False) for population in network.populations.values())


def _groups(specs: list, durations: list[float]) -> list[list[int]]:
    """Lanes that can run as vmap lanes of one call, in order: equal run settings (all of
    ``simulation`` but the seed, and the duration), equal structure (what ``stack`` needs to share),
    and, in a network that draws random numbers, equal seeds."""
    from sapicore.functional.pytree import stack_key

    groups: dict[Any, list[int]] = {}
    for lane, (spec, duration) in enumerate(zip(specs, durations)):
        settings = {k: v for k, v in _settings(spec, duration).items() if k != "ran.seed"}
        seed = spec.simulation.seed if _stochastic(spec.network) else None
        key = (tuple(settings.items()), seed, stack_key(spec.network))
        groups.setdefault(key, []).append(lane)
    return list(groups.values())


def _run_group(
    lanes: list[int],
    network: Any,
    state: Any,
    specs: list,
    duration: float,
    folders: dict,
    progress: bool,
    member: int = 0,
) -> dict:
    """Run lanes that share their settings (one alone with ``simulate``, exactly as ``sapicore run``;
    several, stacked into ``network`` and ``state``, as vmap lanes of one ``sweep``), none strict;
    return each lane's spike events, output names and divergence time (ms, NaN if none). ``member``:
    this rank's place in the group of ranks that run the lanes partitioned, whose first rank writes
    the outputs (the others write none) and whose ranks draw unkeyed random numbers from their own
    streams."""
    import sapicore.functional as sf

    settings = specs[lanes[0]].simulation
    record = settings.record or network.default_record()
    spike_records = tuple(name for name in record if network.is_event(name))
    write = member == 0
    outputs = {lane: _sinks(specs[lane], folders[lane], spike_records) if write else (None, [], []) for lane in lanes}
    options = {**_options(settings, duration, record, progress), "strict": False}
    torch.manual_seed(settings.seed + member)
    with torch.no_grad():
        if len(lanes) == 1:
            _, records = sf.simulate(network, state, sinks=outputs[lanes[0]][1], **options)
            diverged = records["diverged"].reshape(1)
        else:
            _, records = sf.sweep(network, state, sinks=[sf.PerLane([outputs[lane][1] for lane in lanes])], **options)
            diverged = records["diverged"]
    return {lane: (*outputs[lane][::2], float(diverged[index])) for index, lane in enumerate(lanes)}


def sweep(
    spec_path: str | Path, out: str | Path, duration: float | None = None, progress: bool = True, overrides: tuple = ()
) -> list[dict]:
    """Run a spec's sweep lanes (sharded over torchrun processes); rank 0 writes and returns the table.

    Every lane runs with its own settings: lanes are grouped by what they ran with (see
    `_groups`) and each group runs as vmap lanes of one call. Each lane writes the outputs the
    spec asks for (NIX log, raster, TensorBoard) into ``out/lanes/<lane>/``, as ``sapicore run``
    writes them into ``out``. A lane whose state turns NaN or infinite is stopped there (NaN records
    from then on, no rates) while the others run on; one line on stderr lists such lanes.
    """
    import csv
    import math
    import warnings

    import sapicore.functional as sf
    from sapicore.functional.running.partition import local_state
    from sapicore.spec import (
        SpecError,
        expand_sweep,
        initial_state,
        load_data,
        override,
        parse_spec,
        ranks_per_network,
    )

    path, data = load_data(spec_path)
    data = override(data, overrides, path)
    if not isinstance(data, dict) or "sweep" not in data:
        raise SpecError(f"{path}: no sweep: section (grid, zip or random); 'sapicore run' runs a spec without one")
    lanes_data, labels = expand_sweep(data, path)
    specs = []
    for lane, lane_data in enumerate(lanes_data):
        try:
            specs.append(parse_spec(lane_data, path))
        except SpecError as err:
            raise SpecError(f"{err} (in lane {lane}: {_label(labels[lane])})") from None
    durations = [_duration(path, spec.simulation, duration) for spec in specs]
    devices = {spec.simulation.device for spec in specs}
    per_network = ranks_per_network(data, path)
    rank, world = _distributed(sorted(devices)[0])
    if world % per_network:
        raise SpecError(
            f"{path}: sweep.ranks_per_network is {per_network}, but torchrun started {world} process(es): start a "
            "multiple of it (torchrun --nproc-per-node N)"
        )
    teams, team, member, process_group = world // per_network, rank // per_network, rank % per_network, None
    if world > 1:
        import torch.distributed as dist

        if len(devices) > 1:
            raise SpecError(f"{path}: sweep: lanes on several devices ({', '.join(sorted(devices))}) under torchrun")
        if per_network > 1 and devices != {"cpu"}:
            raise SpecError(f"{path}: sweep.ranks_per_network: partitioned networks run on CPUs for now")
        if per_network > 1:  # every rank makes every group, in the same order
            made = [dist.new_group(list(range(t * per_network, (t + 1) * per_network))) for t in range(teams)]
            process_group = made[team]
        dist.barrier()  # rank 0 has claimed the folder (removing stale partial outputs) before anyone writes
    local = f"cuda:{os.environ.get('LOCAL_RANK', rank)}" if world > 1 and devices == {"cuda"} else None
    for lane, spec in enumerate(specs):
        device = local or spec.simulation.device
        specs[lane] = spec = _on_device(spec, device)
    groups = _groups(specs, durations)
    group_of = {lane: number for number, group in enumerate(groups) for lane in group}
    mine = [group[team::teams] for group in groups]
    mine = [group for group in mine if group]
    states = {lane: initial_state(specs[lane]) for group in mine for lane in group}
    prepared = []  # (network, state) of each group, stacked before any lane runs (so a failure runs none)
    for group in mine:
        networks, group_states = [specs[lane].network for lane in group], [states[lane] for lane in group]
        if per_network > 1:  # this rank's share of each lane's network
            try:
                networks = [sf.partition(net, member, per_network, group=process_group) for net in networks]
            except ValueError as err:
                raise SpecError(f"{path}: sweep.ranks_per_network: {err}") from None
            group_states = [local_state(net, whole) for net, whole in zip(networks, group_states)]
        if len(group) == 1:
            prepared.append((networks[0], group_states[0]))
            continue
        try:
            prepared.append((sf.stack(networks), sf.stack(group_states)))
        except (ValueError, TypeError) as err:
            raise SpecError(f"{path}: sweep: lanes {group} cannot run together: {err}") from None
    if rank == 0:
        sizes = {}
        for lane, spec in enumerate(specs):
            network, steps = spec.network, int(round(durations[lane] / spec.simulation.dt))
            record = spec.simulation.record or network.default_record()
            if spec.outputs.nix:
                lane_state = states.get(lane) or initial_state(spec)
                for name, size in _record_bytes(network, lane_state, record, steps, spec.simulation.every).items():
                    sizes[name] = sizes.get(name, 0.0) + size
        _check_space(Path(out), sizes)
    lanes_folder = partial(Path(out) / "lanes")
    folders = {lane: lanes_folder / str(lane) for group in mine for lane in group}
    rows: list[dict] = []
    with warnings.catch_warnings(), _reporting_compiles():
        warnings.simplefilter("ignore", sf.DivergenceWarning)  # the command lists diverged lanes itself
        for group, (network, state) in zip(mine, prepared):
            lane_duration = durations[group[0]]
            ran = _run_group(
                group,
                network,
                state,
                specs,
                lane_duration,
                folders,
                progress and rank == 0,
                member=member,
            )
            for lane, (spike_events, names, diverged) in ran.items():
                if member != 0:  # the team's first rank writes the lane
                    continue
                events, rates, cvs = _spike_summary(
                    spike_events, specs[lane].network, lane_duration, specs[lane].simulation.discard
                )
                if math.isnan(diverged):
                    names += _raster(specs[lane], folders[lane], events, f"{path.stem} lane {lane}", rates)
                publish(folders[lane], names)
                row = {"lane": lane, **labels[lane], **_settings(specs[lane], lane_duration)}
                row["ran.group"] = group_of[lane]
                row["diverged_by_ms"] = None if math.isnan(diverged) else diverged
                for population in rates:
                    row[f"rate_hz.{population}"] = rates[population] if math.isnan(diverged) else None
                    row[f"isi_cv.{population}"] = cvs[population] if math.isnan(diverged) else None
                rows.append(row)
    if world > 1:
        import torch.distributed as dist

        gathered: list = [None] * world
        dist.all_gather_object(gathered, rows)
        rows = [row for part in gathered for row in part]
        dist.destroy_process_group()
    rows.sort(key=lambda row: row["lane"])
    if rank == 0:
        out = Path(out)
        partial(out / "sweep.json").write_text(json.dumps(rows, indent=2))
        with open(partial(out / "sweep.csv"), "w", newline="") as handle:
            columns = list(dict.fromkeys(key for row in rows for key in row))
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        publish(out, ["sweep.json", "sweep.csv", "lanes/"], only=True)
        diverged = [row for row in rows if row["diverged_by_ms"] is not None]
        if diverged:
            listed = "; ".join(
                f"lane {row['lane']} ({_label(labels[row['lane']])}) by t = {row['diverged_by_ms']:g} ms"
                for row in diverged
            )
            print(
                f"sapicore: warning: {len(diverged)} of {len(rows)} lanes turned NaN or infinite and were stopped: "
                f"{listed}; their records are NaN from then on (column diverged_by_ms of sweep.csv)",
                file=sys.stderr,
            )
    return rows


def _label(label: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in label.items())


def _on_device(spec: Any, device: str) -> Any:
    """The spec with its network on ``device`` (and its settings saying so)."""
    import attrs

    import sapicore.functional as sf

    simulation = attrs.evolve(spec.simulation, device=device)
    return attrs.evolve(spec, network=sf.to(spec.network, device=device), simulation=simulation)


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


def _os_message(err: OSError) -> str:
    """An OSError in one line: the path, the cause, and what to do."""
    where = err.filename or ""
    if err.filename2:
        where = f"{where} -> {err.filename2}"
    cause = err.strerror or str(err)
    hints = {
        errno.ENOSPC: "free some space or give another --out",
        errno.EROFS: "give an --out on a writable disk",
        errno.EACCES: "give an --out you may write to",
        errno.EPERM: "give an --out you may write to",
        errno.ENOTDIR: "a part of that path is a file, not a folder",
    }
    hint = hints.get(err.errno) if cause == os.strerror(err.errno) else None  # our own messages say what to do
    return f"{where}: {cause}" + (f"; {hint}" if hint else "") if where else cause


def _show_warning(message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
    """A warning during a command, in one line."""
    print(f"sapicore: warning: {message}", file=sys.stderr)


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated()


class _Parser(argparse.ArgumentParser):
    """Its usage errors name the nearest option or command where the given one is misspelled."""

    def error(self, message: str) -> None:  # type: ignore[override]
        import difflib

        known = [option for action in self._actions for option in action.option_strings]
        known += [
            name
            for action in self._actions
            if isinstance(action, argparse._SubParsersAction)
            for name in action.choices
        ]
        for word in message.replace(",", " ").replace("'", " ").split():
            if word.startswith("-") or message.startswith("argument command"):
                close = difflib.get_close_matches(word, known, n=1)
                if close and close[0] != word:
                    message += f"; did you mean {close[0]}?"
                    break
        super().error(message)


def _epilog() -> str:
    from sapicore.spec import BUILDER_OPTIONS, shipped_specs

    lines = ["shipped specs (give the name instead of a file):"]
    lines += [f"  {name:<14}{description}" for name, description in shipped_specs().items()]
    lines.append("options of the network builders (--set builder.KEY=VALUE):")
    lines += [f"  {name:<14}{options}" for name, options in BUILDER_OPTIONS.items()]
    lines.append("any value of a spec: --set KEY=VALUE, e.g. --set simulation.duration=200 --set simulation.dt=0.05")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    from sapicore import __version__

    parser = _Parser(prog="sapicore", description="Sapicore: spiking network simulation.")
    parser.add_argument("--version", action="version", version=f"sapicore {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--duration", type=float, default=None, help="override the spec's duration (ms, > 0)")
    shared.add_argument("--device", default=None, help="run on this device (cpu, cuda, cuda:1): sets simulation.device")
    shared.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    shared.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="set a spec value, e.g. builder.scale=0.05"
    )
    shared.add_argument("--overwrite", action="store_true", help="replace the outputs of an earlier run in --out")
    epilog = _epilog()
    for name, summary, spec_help, out in (
        (
            "run",
            "simulate a spec and write its outputs",
            "a YAML spec file, or the name of a shipped spec (listed below)",
            "outputs/<spec name>",
        ),
        (
            "sweep",
            "run the lanes of a spec's sweep section",
            "a YAML spec file with a sweep: section",
            "outputs/<spec name>-sweep",
        ),
    ):
        command = commands.add_parser(
            name, parents=[shared], help=summary, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        command.add_argument("spec", help=spec_help)
        command.add_argument("--out", default=None, help=f"output folder (default: {out})")
        if name == "run":
            command.add_argument(
                "--checkpoint-every",
                type=float,
                default=None,
                metavar="MS",
                help=f"save a checkpoint ({CHECKPOINT} in --out) every MS of simulated time, for --resume",
            )
            command.add_argument(
                "--resume",
                action="store_true",
                help="continue the run interrupted in --out from its checkpoint (same spec and --set values)",
            )
    inspect_parser = commands.add_parser("inspect", help="list what a NIX log holds")
    inspect_parser.add_argument("file")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # the command's own parser names them, with its usage and the nearest option
        parser._subparsers._group_actions[0].choices[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "device", None):
        args.set = [*args.set, f"simulation.device={args.device}"]

    from sapicore.spec import SpecError

    handles_signals = signal.getsignal(signal.SIGTERM) is not None and _main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if handles_signals else None
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return _command(args)
    except KeyboardInterrupt:
        print(f"sapicore: interrupted; {_left_behind(args)}", file=sys.stderr)
        return 130
    except Terminated:
        print(f"sapicore: terminated (SIGTERM); {_left_behind(args)}", file=sys.stderr)
        return 143
    except OSError as err:  # the system's (with an errno: no space, read-only, ...) or ours (a message)
        print(f"sapicore: error: {_os_message(err) if err.errno is not None else err}", file=sys.stderr)
        return 2
    except (SpecError, ValueError, FloatingPointError) as err:
        print(f"sapicore: error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:  # a partitioned run whose exchange failed says so in one line
        line = _exchange_failure(err)
        if line is None:
            raise
        print(f"sapicore: error: {line}", file=sys.stderr)
        return 1
    finally:
        if handles_signals:
            signal.signal(signal.SIGTERM, previous)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _out(args: argparse.Namespace) -> Path:
    """The output folder of a ``run`` or ``sweep`` command."""
    if args.out:
        return Path(args.out)
    return Path("outputs") / (Path(args.spec).stem + ("-sweep" if args.command == "sweep" else ""))


def _left_behind(args: argparse.Namespace) -> str:
    """What an interrupted command left in its folder: a run's checkpoint, or nothing."""
    if args.command == "run" and (_out(args) / CHECKPOINT).is_file():
        return f"its last checkpoint and partial records stay in {_out(args)}: continue with --resume"
    return "partial outputs removed"


def _command(args: argparse.Namespace) -> int:
    first = os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0 writes and holds the folder
    if args.command == "run":
        out = _out(args)
        if args.resume and args.overwrite:
            raise ValueError("give --resume (continue the interrupted run) or --overwrite (start again), not both")
        with claimed(out, overwrite=args.overwrite, resume=args.resume) if first else contextlib.nullcontext():
            summary = run(
                args.spec,
                out,
                args.duration,
                progress=not args.no_progress,
                overrides=tuple(args.set),
                checkpoint_every=args.checkpoint_every,
                resume=args.resume,
            )
        if first:
            print(json.dumps(summary, indent=2))
            print(f"wrote {', '.join(summary['outputs'])} into {out}")
    elif args.command == "sweep":
        out = _out(args)
        with claimed(out, overwrite=args.overwrite) if first else contextlib.nullcontext():
            rows = sweep(args.spec, out, args.duration, progress=not args.no_progress, overrides=tuple(args.set))
        if first:
            print(f"wrote sweep.csv and sweep.json ({len(rows)} lanes) into {out}")
    else:
        print(inspect(args.file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
