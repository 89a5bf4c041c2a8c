"""NIX (HDF5) log files: properties logged with a counter, and simulation records streamed in chunks.

`NixLogWriter` creates a file with a ``config`` section (Sapicore version, time, git hash,
configuration as YAML, metadata) and logs properties of an object tree, of any shape, each with a
counter (`NixLogWriter.log`). `NixLogReader` reads them back. `NixRecordSink`
takes the records of ``simulate`` chunk by chunk (``simulate(..., sinks=[sink])``): each recorded
variable becomes a data array ``(time, *shape)`` with a sampled time axis in ms; chunks are appended
``gather`` at a time (or every `BUFFER_SECONDS`) and the file is flushed after every ``flush_every``
appends, so a run that dies keeps every flushed chunk readable.

HDF5 cannot recover from a full disk (its next flush or close crashes the interpreter), so before
each write a writer checks the free space of the file's disk: a write that would leave less than
`MARGIN` free beside everything not yet flushed raises ``OSError`` (``ENOSPC``) naming the file,
before HDF5 sees it, and the file can still be closed.
"""

from __future__ import annotations

import datetime
import errno
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tree_config.yaml import yaml_dumps, yaml_loads

from ..functional.running.events import by_name, check_event_names, check_resumed, chunk_events

__all__ = ["NixLogWriter", "NixLogReader", "NixRecordSink", "read_records", "read_events", "MARGIN"]

#: bytes a NIX log keeps free on its disk for HDF5's own bookkeeping when it flushes and closes
MARGIN = 1 << 20


def _nix() -> Any:
    import nixio

    return nixio


def _open_for_reading(filename: str | Path, mode: Any = None) -> Any:
    path = Path(filename)
    if not path.exists():
        raise FileNotFoundError(f"no NIX log at {path}")
    nix = _nix()
    try:
        return nix.File.open(str(path), mode or nix.FileMode.ReadOnly)
    except Exception as err:  # h5py/nixio raise many types for damaged files
        raise ValueError(
            f"{path} is not a readable NIX file (truncated or corrupt: {type(err).__name__}); "
            "a run that died before its first flush leaves such a file"
        ) from err


def _close(nix_file: Any) -> None:
    """Flush and close a NIX file. nixio's own ``close`` first runs a full ``gc.collect()``, 0.15-0.3 s
    in a process holding compiled graphs; HDF5's close (h5py closes every object still open in the
    file) is all a written file needs."""
    h5file = getattr(nix_file, "_h5file", None)
    if h5file is None:
        nix_file.close()
        return
    h5file.flush()
    h5file.close()


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


class NixLogWriter:
    """Write a NIX log file. Use as a context manager or call `create_file` / `close_file`.

    Raises ``FileExistsError`` if ``filename`` exists, unless ``overwrite=True``.
    """

    def __init__(
        self,
        filename: str | Path,
        git_hash: str = "",
        metadata: dict | None = None,
        config_data: dict | None = None,
        overwrite: bool = False,
    ) -> None:
        self.filename = Path(filename)
        self.git_hash = git_hash
        self.metadata = metadata or {}
        self.config_data = config_data or {}
        self.overwrite = overwrite
        self.nix_file: Any = None
        self.unflushed = 0  # bytes handed to HDF5 since the last flush

    def reserve(self, nbytes: int) -> None:
        """Raise ``OSError`` (``ENOSPC``) unless the disk has room for ``nbytes`` more, beside what is
        not yet flushed and `MARGIN`; count them as written."""
        free = shutil.disk_usage(self.filename.absolute().parent).free  # no symlink walk: once per chunk
        need = self.unflushed + nbytes + MARGIN
        if free < need:
            raise OSError(
                errno.ENOSPC,
                f"no space left on device for this NIX log (it needs {need} bytes to go on, {free} are free)",
                str(self.filename),
            )
        self.unflushed += nbytes

    def __enter__(self) -> NixLogWriter:
        self.create_file()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close_file()

    def create_file(self) -> None:
        """Create the file and its ``config`` section."""
        import sapicore

        if self.filename.exists() and not self.overwrite:
            raise FileExistsError(f"{self.filename} already exists; pass overwrite=True to replace it")
        nix = _nix()
        self.reserve(0)
        self.nix_file = nix.File.open(str(self.filename), nix.FileMode.Overwrite)
        section = self.nix_file.create_section("config", "configuration")
        section["sapicore_version"] = sapicore.__version__
        section["current_utc_time"] = str(datetime.datetime.now(datetime.timezone.utc))
        section["git_hash"] = self.git_hash
        section["config_data"] = yaml_dumps(self.config_data)
        metadata = section.create_section("metadata", "metadata")
        for key, value in self.metadata.items():
            metadata[key] = yaml_dumps(value)
        self.nix_file.flush()

    def reopen_file(self) -> None:
        """Open the existing file to write more into it (a resumed run)."""
        nix = _nix()
        self.reserve(0)
        self.nix_file = _open_for_reading(self.filename, nix.FileMode.ReadWrite)

    def close_file(self) -> None:
        if self.nix_file is not None:
            _close(self.nix_file)
            self.nix_file = None

    def flush(self) -> None:
        """Write everything so far to disk; a run killed later keeps it."""
        self.nix_file.flush()
        self.unflushed = 0

    def create_block(self, name: str) -> None:
        """Create the blocks that hold the logged properties of experiment ``name``."""
        for suffix, kind in (("shape_len", "shape"), ("shape", "shape"), ("log", "data"), ("counter", "counter")):
            self.nix_file.create_block(f"{name}_data_{suffix}", kind)

    def get_property_arrays(self, name: str, loggable_properties: list) -> list:
        """Data arrays for each selected property (from ``get_loggable_properties``) of ``name``."""
        blocks = {
            suffix: self.nix_file.blocks[f"{name}_data_{suffix}"] for suffix in ("shape_len", "shape", "log", "counter")
        }
        arrays = []
        for names, obj, prop, selection in loggable_properties:
            if not selection:
                continue
            value = getattr(obj, prop)
            if isinstance(value, torch.Tensor):
                dtype = _to_numpy(value).dtype
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                dtype = np.float64
            else:
                raise TypeError(
                    f"cannot log {type(obj).__name__}.{prop}: a {type(value).__name__} is neither a tensor nor a number"
                )
            tag = ":".join(names)
            if tag not in blocks["log"].data_arrays:
                blocks["log"].create_data_array(tag, "data", dtype=dtype, data=np.zeros(0, dtype=dtype))
                blocks["counter"].create_data_array(tag, "counter", dtype=np.int64, data=np.zeros(0, dtype=np.int64))
                blocks["shape_len"].create_data_array(tag, "shape_len", dtype=np.int8, data=np.zeros(0, dtype=np.int8))
                blocks["shape"].create_data_array(tag, "shape", dtype=np.int32, data=np.zeros(0, dtype=np.int32))
            arrays.append((obj, prop, *(blocks[s].data_arrays[tag] for s in ("counter", "log", "shape_len", "shape"))))
        return arrays

    def log(self, property_arrays: list, counter: int) -> None:
        """Append the current value of every property with ``counter`` (a step or epoch number)."""
        values = [_to_numpy(getattr(obj, prop)) for obj, prop, *_ in property_arrays]
        self.reserve(sum(value.nbytes + 8 * (value.ndim + 2) for value in values))
        for (_, _, counters, data, shape_len, shape), value in zip(property_arrays, values):
            counters.append(np.array([counter], dtype=np.int64))
            shape_len.append(np.array([value.ndim], dtype=np.int8))
            if value.ndim:
                shape.append(np.array(value.shape, dtype=np.int32))
            data.append(np.ravel(value).astype(data.dtype))


class NixLogReader:
    """Read a NIX log written by `NixLogWriter` or `NixRecordSink`.

    A missing file raises ``FileNotFoundError``; a damaged one ``ValueError`` with a plain message.
    """

    def __init__(self, filename: str | Path) -> None:
        self.filename = Path(filename)
        self.nix_file: Any = None

    def __enter__(self) -> NixLogReader:
        self.open_file()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close_file()

    def open_file(self) -> None:
        self.nix_file = _open_for_reading(self.filename)

    def close_file(self) -> None:
        if self.nix_file is not None:
            _close(self.nix_file)
            self.nix_file = None

    def get_config(self) -> dict:
        """The configuration and metadata stored when the file was created."""
        section = self.nix_file.sections["config"]
        metadata = section.sections["metadata"]
        return {
            "sapicore_version": section["sapicore_version"],
            "git_hash": section["git_hash"],
            "config_data": yaml_loads(section["config_data"]),
            "metadata": {prop.name: yaml_loads(metadata[prop.name]) for prop in metadata.props},
        }

    def get_experiment_names(self) -> list[str]:
        """Names of the experiments whose properties were logged."""
        return [block.name[: -len("_data_log")] for block in self.nix_file.blocks if block.name.endswith("_data_log")]

    def get_experiment_property_paths(self, name: str) -> list[tuple[str, ...]]:
        """The property paths logged in experiment ``name``."""
        return [tuple(array.name.split(":")) for array in self.nix_file.blocks[f"{name}_data_log"].data_arrays]

    def get_experiment_property_data(self, name: str, property_path: tuple[str, ...]) -> tuple[np.ndarray, list]:
        """(counters, values): one value (array of its logged shape, or a number) per log call."""
        tag = ":".join(property_path)
        read = lambda suffix: np.asarray(self.nix_file.blocks[f"{name}_data_{suffix}"].data_arrays[tag][:])  # noqa: E731
        counters, data, shape_len, shape = read("counter"), read("log"), read("shape_len"), read("shape")
        values: list = []
        data_at = shape_at = 0
        for n in shape_len:
            if n == 0:
                values.append(data[data_at].item())
                data_at += 1
                continue
            dims = tuple(int(d) for d in shape[shape_at : shape_at + n])
            size = int(np.prod(dims))
            values.append(data[data_at : data_at + size].reshape(dims))
            shape_at += n
            data_at += size
        return counters, values


BUFFER_BYTES = 8 * 1024 * 1024  # the most bytes a NixRecordSink gathers before appending them to the file
BUFFER_SECONDS = 1.0  # or the longest it waits (wall time)


class NixRecordSink:
    """Stream the records of ``simulate`` into a NIX file (bounded memory, periodic flushes).

    ``simulate(model, state, ..., sinks=[NixRecordSink("run.nix")], keep=False)`` writes each
    recorded variable as a data array named after it in block ``block``, of shape
    ``(records, *shape)``, with its time axis (ms) as a sampled dimension. Records named in
    ``events`` (spike records) are stored as events instead, two arrays ``<name>.times`` (ms) and
    ``<name>.neurons`` (flat index), whose size grows with the number of spikes, not with
    neurons x steps; with ``every > 1`` a neuron's spikes in one window share the window's end time. Read them back with `read_records` and `read_events`.

    Chunks are gathered in memory and appended to the file together once the last append is
    `BUFFER_SECONDS` (1 s) old or they hold `BUFFER_BYTES` (8 MiB), or every ``gather`` chunks when
    given, and always at ``end``, which ``simulate`` calls even when a run fails. Each append to a
    NIX array costs about a millisecond, more than a compiled chunk of COBA-4k (a recorded COBA-4k
    run took 2.6 s per biological second with one append per chunk). A process killed outright
    loses the chunks gathered since the last append (at most the last second of the run by
    default, ``gather=1`` for none): the file keeps the complete records before them.

    A run that saves checkpoints ([`Checkpoints`][sapicore.checkpoint.Checkpoints]) appends and
    flushes the file at each one (`checkpoint` gives every array's length then). After a kill, a
    sink for the same file given that position (`resume`) opens it, cuts every array back to it
    (dropping what the killed run wrote after its last checkpoint) and appends the resumed run's
    records: the file then holds the records of one uninterrupted run.
    """

    def __init__(
        self,
        filename: str | Path,
        block: str = "records",
        flush_every: int = 1,
        overwrite: bool = False,
        metadata: dict | None = None,
        config_data: dict | None = None,
        events: tuple[str, ...] = (),
        gather: int | None = None,
    ) -> None:
        if gather is not None and (isinstance(gather, bool) or not isinstance(gather, int) or gather < 1):
            raise ValueError(
                f"gather must be None or a positive int (chunks appended to the file together), got {gather!r}"
            )
        self.gather = gather
        self.writer = NixLogWriter(filename, metadata=metadata, config_data=config_data, overwrite=overwrite)
        self.block_name = block
        self.flush_every = flush_every
        self.events = tuple(events)
        self.arrays: dict[str, Any] = {}
        self.chunks = 0
        self.pending: dict[str, list[np.ndarray]] = {}  # sampled records of the chunks not yet appended
        self.pending_events: list[tuple[torch.Tensor, torch.Tensor, list[int]]] = []  # chunk_events' per chunk
        self.event_names: tuple[str, ...] = ()
        self.layout: list[tuple[str, ...]] = []
        self.pending_bytes = self.pending_chunks = 0
        self.last_append = time.monotonic()
        self.resumed: dict | None = None

    def check(self, names: Sequence[str], events: Sequence[str]) -> None:
        """Raise before a run that does not record (as events) every name given as ``events``."""
        check_event_names(type(self).__name__, self.events, names, events)

    def begin(self, dt: float, every: int) -> None:
        self.interval = dt * every
        self.records_written = 0
        if self.resumed is not None:
            saved, self.resumed = self.resumed, None
            self._reopen(saved)
            return
        self.writer.create_file()
        self.block = self.writer.nix_file.create_block(self.block_name, "records")

    def checkpoint(self) -> dict:
        """Append and flush everything gathered; return the position `resume` goes on from: the
        records taken so far and every array's length."""
        self._write_pending()
        self.writer.flush()
        return {
            "names": self.events,
            "interval": self.interval,
            "records": self.records_written,
            "layout": list(self.layout),
            "event_names": self.event_names,
            "lengths": {name: array.shape[0] for name, array in self.arrays.items()},
        }

    def resume(self, saved: dict) -> None:
        """Make the next run append to the existing file from ``saved`` (a `checkpoint` of a sink
        writing the same file) on."""
        self.resumed = saved

    def _reopen(self, saved: dict) -> None:
        """Open the file and cut each array back to its length in ``saved``."""
        check_resumed(type(self).__name__, saved, self.events, self.interval)
        try:
            self.writer.reopen_file()
        except ValueError as err:  # damaged: a process killed in the middle of an append
            raise ValueError(
                f"{self.writer.filename} cannot be resumed (truncated or corrupt: {type(err.__cause__).__name__}): the run that "
                "wrote it was killed while writing it, and its records are lost; run again from the start"
            ) from err
        try:
            blocks = self.writer.nix_file.blocks
            if self.block_name not in blocks:
                raise ValueError(f"{self.writer.filename} has no block {self.block_name!r} of records to resume")
            self.block = blocks[self.block_name]
            arrays = {array.name: array for array in self.block.data_arrays}
            short = [
                f"{name} ({arrays[name].shape[0] if name in arrays else 'missing'} of {length})"
                for name, length in saved["lengths"].items()
                if name not in arrays or arrays[name].shape[0] < length
            ]
            if short:
                raise ValueError(
                    f"{self.writer.filename} holds fewer records than the checkpoint it resumes from: {', '.join(short)}; "
                    "it is not the file that run wrote"
                )
            for name, array in arrays.items():
                array.data_extent = (saved["lengths"].get(name, 0), *array.shape[1:])
        except BaseException:
            self.writer.close_file()
            raise
        self.arrays = arrays
        self.layout, self.event_names = list(saved["layout"]), tuple(saved["event_names"])
        self.records_written = saved["records"]

    def _append(self, name: str, data: np.ndarray, sampled: bool) -> None:
        if name not in self.arrays:
            array = self.block.create_data_array(
                name, "events" if not sampled else "record", dtype=data.dtype, data=data
            )
            if sampled:
                array.append_sampled_dimension(self.interval, label="time", unit="ms", offset=self.interval)
                for _ in range(data.ndim - 1):
                    array.append_set_dimension()
            self.arrays[name] = array
        else:
            self.arrays[name].append(data, axis=0)

    def write(self, records: dict[str, torch.Tensor]) -> None:
        events = tuple(name for name in records if name in self.events)
        if not self.layout:  # the arrays, in the order of the first chunk's records
            self.layout = [(f"{name}.times", f"{name}.neurons") if name in events else (name,) for name in records]
        if events:  # every population's events from one scan, split by population when appended
            times, neurons, found = chunk_events(
                [records[name] for name in events], self.records_written, self.interval
            )
            self.pending_events.append((times.cpu(), neurons.cpu(), found))  # sync-ok: once per chunk
            self.pending_bytes += times.numel() * 12  # float64 times, int32 neurons in the file
            self.event_names = events
        for name, values in records.items():
            if name not in self.events:
                data = _to_numpy(values)
                self.pending.setdefault(name, []).append(data)
                self.pending_bytes += data.nbytes
        self.pending_chunks += 1
        self.records_written += next(iter(records.values())).shape[0] if records else 0
        if (
            (self.gather is not None and self.pending_chunks >= self.gather)
            or self.pending_bytes >= BUFFER_BYTES
            or time.monotonic() - self.last_append >= BUFFER_SECONDS
        ):
            self._write_pending()

    def _joined_events(self) -> dict[str, np.ndarray]:
        """The gathered chunks' events, as one array of times and one of neurons per name."""
        out: dict[str, np.ndarray] = {}
        if self.pending_events:
            for name, (times, neurons) in by_name(self.pending_events, self.event_names).items():
                out[f"{name}.times"], out[f"{name}.neurons"] = times.numpy(), neurons.to(torch.int32).numpy()
        return out

    def _write_pending(self) -> None:
        """Append the gathered chunks to the file (one append per array), then flush it every
        ``flush_every`` such writes."""
        if not self.pending_chunks:
            return
        joined = {name: np.concatenate(parts) for name, parts in self.pending.items()}
        joined.update(self._joined_events())
        self.writer.reserve(sum(data.nbytes for data in joined.values()))
        for arrays in self.layout:
            for name in arrays:
                self._append(name, joined[name], sampled=len(arrays) == 1)
        self.pending, self.pending_events, self.pending_bytes, self.pending_chunks = {}, [], 0, 0
        self.last_append = time.monotonic()
        self.chunks += 1
        if self.chunks % self.flush_every == 0:
            self.writer.flush()

    def end(self) -> None:
        try:
            self._write_pending()
        finally:
            self.writer.close_file()


def read_records(filename: str | Path, block: str = "records") -> dict[str, np.ndarray]:
    """The sampled records a `NixRecordSink` wrote, with ``"t"`` (ms) rebuilt from the time axis."""
    with NixLogReader(filename) as reader:
        if block not in reader.nix_file.blocks:
            raise ValueError(f"{filename} has no block {block!r} of records")
        records: dict[str, np.ndarray] = {}
        for array in reader.nix_file.blocks[block].data_arrays:
            if array.type != "record":
                continue
            records[array.name] = np.asarray(array[:])
            time = array.dimensions[0]
            records["t"] = time.offset + time.sampling_interval * np.arange(array.shape[0])
        return records


def read_events(filename: str | Path, name: str, block: str = "records") -> tuple[np.ndarray, np.ndarray]:
    """(times in ms, neuron indices) of the events a `NixRecordSink` stored for ``name``."""
    with NixLogReader(filename) as reader:
        arrays = reader.nix_file.blocks[block].data_arrays
        if f"{name}.times" not in arrays:
            raise ValueError(f"{filename} holds no events named {name!r}")
        return np.asarray(arrays[f"{name}.times"][:]), np.asarray(arrays[f"{name}.neurons"][:])
