"""Spike records as events: (time, neuron) pairs whose size grows with the number of spikes.

A dense spike record holds neurons x steps numbers (1.6 GB for 40,000 neurons over 1 s at
dt = 0.1 ms in float32, and filling fresh memory costs time as well). `SpikeEvents` is a sink
for ``simulate``: with ``keep=False`` it keeps only the events, converting each chunk's records as
they come::

    events = SpikeEvents(("exc.spikes",))
    simulate(net, state, duration=1000.0, dt=0.1, record=("exc.spikes",), sinks=[events], keep=False)
    events.times["exc.spikes"], events.neurons["exc.spikes"]   # ms (float64), flat neuron index (int64)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ..propagation import kernels

__all__ = ["SpikeEvents", "to_events", "chunk_events", "check_resumed"]


_SCANNED = (torch.float32, torch.float64)


def chunk_events(
    records: Sequence[torch.Tensor], first_record: int, interval: float
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """The events of one chunk of several event records, each ``(records, *shape)``: (times in ms,
    flat neuron indices, how many events came from each record), the events of ``records[0]`` first.

    Records count spikes (>= 0). Record ``k`` of the chunk is the ``first_record + k + 1``-th of the
    run and ends at that number times ``interval`` (ms); a record counting n spikes of a neuron in its
    window gives n events at the window's end. NaN (the records of a lane quarantined after its state
    diverged) gives none. On the CPU one scan of the C++ kernel library serves every record (it skips
    blocks of zeros; a dozen dispatched ops per record otherwise).
    """
    values = [value.detach() for value in records]
    if (
        values
        and kernels.available()
        and all(value.device.type == "cpu" and value.dtype in _SCANNED for value in values)
    ):
        times, neurons, found = torch.ops.sapicore.events(values, first_record, interval)
        return times, neurons, found.tolist()  # sync-ok: CPU tensors, once per chunk
    parts = [_torch_events(value, first_record, interval) for value in values]
    if not parts:
        return torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.int64), []
    return torch.cat([t for t, _ in parts]), torch.cat([n for _, n in parts]), [len(t) for t, _ in parts]


def by_name(
    chunks: Sequence[tuple[torch.Tensor, torch.Tensor, list[int]]], names: Sequence[str]
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each name's (times, neurons) from chunks of `chunk_events` over the records of ``names``, in
    time order: one pass over all the chunks' events, however many chunks and names."""
    times = torch.cat([t for t, _, _ in chunks]) if chunks else torch.zeros(0, dtype=torch.float64)
    neurons = torch.cat([n for _, n, _ in chunks]) if chunks else torch.zeros(0, dtype=torch.int64)
    found = torch.tensor([count for _, _, f in chunks for count in f], dtype=torch.int64)
    owner = torch.arange(len(names)).repeat(found.numel() // len(names)).repeat_interleave(found)
    return {name: (times[owner == index], neurons[owner == index]) for index, name in enumerate(names)}


def to_events(values: torch.Tensor, first_record: int, interval: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The events of one chunk of event records ``(records, *shape)``: (times in ms, flat neuron
    indices); see `chunk_events`."""
    times, neurons, _ = chunk_events([values], first_record, interval)
    return times, neurons


def _torch_events(values: torch.Tensor, first_record: int, interval: float) -> tuple[torch.Tensor, torch.Tensor]:
    width = values[0].numel() if values.shape[0] else 1
    flat = values.reshape(-1)
    position = torch.nonzero(flat.nan_to_num(0.0)).reshape(-1)  # sync-ok: once per chunk, outside the steps
    counts = flat.index_select(0, position)
    if bool((counts > 1.5).any()):  # sync-ok: a neuron spiked more than once in a window
        position = position.repeat_interleave(counts.round().to(torch.int64).clamp(min=1))
    index = torch.div(position, width, rounding_mode="floor")
    neuron = position - index * width
    times = index.to(torch.float64).add_(first_record + 1).mul_(interval)
    return times, neuron


def check_event_names(sink: str, wanted: Sequence[str], names: Sequence[str], events: Sequence[str]) -> None:
    """Raise if a sink ``wanted`` event records that a run does not take, or that are not events."""
    missing = [name for name in wanted if name not in names]
    if missing:
        raise ValueError(
            f"{sink} keeps {', '.join(map(repr, missing))} but the run does not record it; add it to record= "
            f"(recorded: {', '.join(names) or 'nothing'})"
        )
    sampled = [name for name in wanted if name not in events]
    if sampled:
        raise ValueError(
            f"{sink} keeps {', '.join(map(repr, sampled))} as events, but it is a sampled variable, not an event "
            f"output; events recorded: {', '.join(events) or 'none'}"
        )


def check_resumed(sink: str, saved: Any, names: Sequence[str], interval: float) -> None:
    """Raise unless ``saved`` is the checkpoint of a sink that kept ``names`` every ``interval`` ms."""
    if not isinstance(saved, dict) or "records" not in saved:
        raise ValueError(f"{sink}.resume takes what {sink}.checkpoint() returned, got {type(saved).__name__}")
    if tuple(saved.get("names", ())) != tuple(names):
        raise ValueError(
            f"{sink} keeps {', '.join(names) or 'nothing'} but the checkpoint it resumes from kept "
            f"{', '.join(saved.get('names', ())) or 'nothing'}"
        )
    if not math.isclose(saved["interval"], interval, rel_tol=1e-9):
        raise ValueError(
            f"{sink} resumes a run recorded every {saved['interval']:g} ms, but this run records every {interval:g} ms "
            "(dt x every); resume with the same dt and every"
        )


class EventStore:
    """Events appended chunk by chunk (`chunk_events`' results) into two tensors that double in size
    when full: a few long-lived blocks, where a pair of small tensors kept per chunk (thousands in a
    long run) fragmented the heap so that every chunk's large records cost more to allocate and
    free: a 20-s COBA-4k run recording its spikes ran 1.75-2.0 times slower than with the events
    dropped, and 0.97-1.14 times with them stored so."""

    def __init__(self) -> None:
        self.times = torch.empty(4096, dtype=torch.float64)
        self.neurons = torch.empty(4096, dtype=torch.int64)
        self.size = 0
        self.found: list[int] = []  # each chunk's events per name, chunk after chunk

    def append(self, times: torch.Tensor, neurons: torch.Tensor, found: list[int]) -> None:
        end = self.size + times.numel()
        if end > self.times.numel():
            capacity = max(end, 2 * self.times.numel())
            self.times = torch.cat([self.times[: self.size], self.times.new_empty(capacity - self.size)])
            self.neurons = torch.cat([self.neurons[: self.size], self.neurons.new_empty(capacity - self.size)])
        self.times[self.size : end] = times
        self.neurons[self.size : end] = neurons
        self.size = end
        self.found.extend(found)

    def chunks(self) -> list[tuple[torch.Tensor, torch.Tensor, list[int]]]:
        """The events so far as one chunk for `by_name`."""
        return [(self.times[: self.size], self.neurons[: self.size], self.found)]


class SpikeEvents:
    """A ``simulate`` sink keeping the named event records (spikes) as events, in memory.

    After the run, ``times[name]`` (ms, float64, in time order) and ``neurons[name]`` (flat index
    into the population shape, int64) hold one entry per spike, on the CPU.

    A run that saves checkpoints ([`Checkpoints`][sapicore.checkpoint.Checkpoints]) keeps the events
    so far in each (`checkpoint`); `resume` with them before the resumed run, which then ends with
    every event since the start, as if never stopped.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = (names,) if isinstance(names, str) else tuple(names)
        if not self.names:
            raise ValueError("SpikeEvents needs the names of the event records to keep, e.g. ('exc.spikes',)")
        self.times: dict[str, torch.Tensor] = {}
        self.neurons: dict[str, torch.Tensor] = {}
        self.resumed: dict | None = None

    def check(self, names: Sequence[str], events: Sequence[str]) -> None:
        """Raise before a run that does not record (as events) every name this sink keeps."""
        check_event_names(type(self).__name__, self.names, names, events)

    def begin(self, dt: float, every: int) -> None:
        self.interval = dt * every
        self.records_written = 0
        self._store = EventStore()
        if self.resumed is not None:
            saved, self.resumed = self.resumed, None
            check_resumed(type(self).__name__, saved, self.names, self.interval)
            self._store.append(*saved["events"])
            self.records_written = saved["records"]

    def checkpoint(self) -> dict:
        """What `resume` needs to go on from here: the events so far (one chunk's worth of memory
        more than the sink holds anyway)."""
        joined = by_name(self._store.chunks(), self.names)
        found = [len(joined[name][0]) for name in self.names]
        times = torch.cat([joined[name][0] for name in self.names])
        neurons = torch.cat([joined[name][1] for name in self.names])
        return {
            "names": self.names,
            "interval": self.interval,
            "records": self.records_written,
            "events": (times, neurons, found),
        }

    def resume(self, saved: dict) -> None:
        """Start the next run from ``saved`` (a `checkpoint` of this kind of sink, same names)."""
        self.resumed = saved

    def write(self, records: dict[str, torch.Tensor]) -> None:
        times, neurons, found = chunk_events(
            [records[name] for name in self.names], self.records_written, self.interval
        )
        self._store.append(times.cpu(), neurons.cpu(), found)  # sync-ok: once per chunk, outside the steps
        self.records_written += records[self.names[0]].shape[0]

    def end(self) -> None:
        for name, (times, neurons) in by_name(self._store.chunks(), self.names).items():
            self.times[name], self.neurons[name] = times, neurons
