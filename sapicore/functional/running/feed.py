"""Handing each chunk's records to the sinks without making the GPU wait for them.

On the CPU a sink gets a chunk's records as soon as the chunk returns. On CUDA the records are first
snapshotted on the device (compiled chunks in CUDA graphs reuse their output memory), copied to
pinned host memory on a side stream, and handed to the sinks one chunk late: the host writes chunk
``k`` (the NIX file, say) while the GPU already runs chunk ``k + 1``. Sinks then always receive CPU
tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["SinkFeed", "PerLane"]


class SinkFeed:
    """``begin`` every sink, ``put`` each chunk's records, ``close`` (flushing the last chunk on
    success) and ``end`` every sink whatever happened."""

    def __init__(self, sinks: Sequence[Any], device: torch.device) -> None:
        self.sinks = list(sinks)
        self.device = device
        self.stream = torch.cuda.Stream(device) if self.sinks and device.type == "cuda" else None
        self.waiting: tuple[Any, dict] | None = None  # (copy done event, host records) not yet written

    def begin(self, dt: float, every: int) -> None:
        for sink in self.sinks:
            sink.begin(dt, every)

    def put(self, records: dict[str, torch.Tensor]) -> None:
        if not self.sinks or not records:  # a last chunk shorter than a window takes no record
            return
        if self.stream is None:
            self._write(records)
            return
        snapshot = {name: values.clone() for name, values in records.items()}
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self.stream):
            host = {name: values.to("cpu", non_blocking=True) for name, values in snapshot.items()}  # pinned
            done = torch.cuda.Event()
            done.record(self.stream)
        for values in snapshot.values():  # freed only after the side stream has read them
            values.record_stream(self.stream)
        self.flush()
        self.waiting = (done, host)

    def flush(self) -> None:
        """Write the chunk still in transit (if any)."""
        if self.waiting is not None:
            done, host = self.waiting
            self.waiting = None
            done.synchronize()  # sync-ok: the previous chunk's copy, while the GPU runs the next chunk
            self._write(host)

    def _write(self, records: dict[str, torch.Tensor]) -> None:
        for sink in self.sinks:
            sink.write(records)

    def end(self) -> None:
        end_all(self.sinks)


def end_all(sinks: Sequence[Any]) -> None:
    """``end`` every sink, even when one fails (its files must still be closed), then raise the first
    failure."""
    failure = None
    for sink in sinks:
        try:
            sink.end()
        except Exception as err:
            failure = failure or err
    if failure is not None:
        raise failure


class PerLane:
    """A ``sweep`` sink that gives each lane its own sinks: ``PerLane([[lane0_sinks...], [lane1_sinks...]])``.

    A sweep's records carry a leading lane axis ``(lanes, records, ...)``; lane ``b``'s sinks receive
    ``records[name][b]``, time-major, as they would from ``simulate``.
    """

    def __init__(self, lanes: Sequence[Sequence[Any]]) -> None:
        self.lanes = [list(sinks) for sinks in lanes]

    def begin(self, dt: float, every: int) -> None:
        for sinks in self.lanes:
            for sink in sinks:
                sink.begin(dt, every)

    def write(self, records: dict[str, torch.Tensor]) -> None:
        count = next(iter(records.values())).shape[0] if records else len(self.lanes)
        if count != len(self.lanes):
            raise ValueError(f"PerLane holds sinks for {len(self.lanes)} lanes but the records have {count}")
        for lane, sinks in enumerate(self.lanes):
            own = {name: values[lane] for name, values in records.items()}
            for sink in sinks:
                sink.write(own)

    def end(self) -> None:
        end_all([sink for sinks in self.lanes for sink in sinks])
