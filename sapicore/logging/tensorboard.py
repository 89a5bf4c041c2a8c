"""TensorBoard output of simulation records (tensorboardX), for live display of long runs."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path
from typing import Any

import torch

from ..functional.running.events import check_resumed

__all__ = ["TensorBoardSink", "MARGIN"]

#: bytes the event files' disk keeps free (the writer's thread may still hold queued events)
MARGIN = 1 << 20
EVENT_BYTES = 128  # an upper bound on one scalar event on disk


class TensorBoardSink:
    """Write each record of ``simulate`` as a scalar per recorded time point (``simulate(..., sinks=[...])``).

    A recorded variable of many neurons is reduced over the neurons (``reduce``: 'mean', 'sum',
    'max' or 'min'); the scalar's tag is ``"<name>/<reduce>"`` and its step the record index.
    Spike records reduced with 'mean' give the population's spike count per neuron and window.

    tensorboardX writes from a thread of its own, which dies silently on a full disk (and a process
    whose writer died would then hang on its queue). So each ``write`` first checks that the writer
    is alive and that the disk keeps :data:`MARGIN` free beside the events it adds, raising
    ``OSError`` naming the folder otherwise, and ``end`` never waits on a dead writer.

    In a run that saves checkpoints ([`Checkpoints`][sapicore.checkpoint.Checkpoints]), `checkpoint`
    flushes the events and gives the record index reached; `resume` with it before the resumed run,
    which then writes into the same folder from that index on and hides from TensorBoard the events
    that the killed run wrote after its last checkpoint (tensorboardX's ``purge_step``).
    """

    REDUCTIONS = {"mean": torch.mean, "sum": torch.sum, "max": torch.amax, "min": torch.amin}

    def __init__(self, logdir: str | Path, reduce: str = "mean", flush_every: int = 1) -> None:
        if reduce not in self.REDUCTIONS:
            raise ValueError(f"unknown reduction {reduce!r}; choose one of: {', '.join(self.REDUCTIONS)}")
        self.logdir, self.reduce, self.flush_every = Path(logdir), reduce, flush_every
        self.writer: Any = None
        self.resumed: dict | None = None

    def begin(self, dt: float, every: int) -> None:
        from tensorboardX import SummaryWriter

        self.interval, self.index, self.chunks = dt * every, 0, 0
        saved, self.resumed = self.resumed, None
        if saved is not None:
            check_resumed(type(self).__name__, saved, (), self.interval)  # all records, no names
            self.index = saved["records"]
        self.writer = SummaryWriter(str(self.logdir), purge_step=self.index if saved is not None else None)

    def checkpoint(self) -> dict:
        """Flush the events; return the position `resume` goes on from."""
        self.writer.flush()
        return {"names": (), "interval": self.interval, "records": self.index}

    def resume(self, saved: dict) -> None:
        """Make the next run write on from ``saved`` (a `checkpoint` of a sink writing this folder)."""
        self.resumed = saved

    def _worker(self) -> Any:
        """tensorboardX's writing thread (None where its internals differ)."""
        event_writer = getattr(getattr(self.writer, "file_writer", None), "event_writer", None)
        return getattr(event_writer, "_worker", None)

    def _check(self, events: int) -> None:
        worker = self._worker()
        if worker is not None and not worker.is_alive():
            raise OSError(errno.EIO, "the TensorBoard writer has stopped (a failed write)", str(self.logdir))
        free = shutil.disk_usage(self.logdir).free
        need = events * EVENT_BYTES + MARGIN
        if free < need:
            raise OSError(
                errno.ENOSPC,
                f"no space left on device for the TensorBoard events (they need {need} bytes, {free} are free)",
                str(self.logdir),
            )

    def write(self, records: dict[str, torch.Tensor]) -> None:
        self._check(sum(values.shape[0] for values in records.values()))
        count = 0
        for name, values in records.items():
            flat = values.detach().reshape(values.shape[0], -1).to(torch.float64)
            reduced = self.REDUCTIONS[self.reduce](flat, dim=1).cpu().tolist()
            for offset, value in enumerate(reduced):
                self.writer.add_scalar(f"{name}/{self.reduce}", value, global_step=self.index + offset)
            count = len(reduced)
        self.index += count
        self.chunks += 1
        if self.chunks % self.flush_every == 0:
            self.writer.flush()

    def end(self) -> None:
        if self.writer is None:
            return
        event_writer = getattr(self.writer.file_writer, "event_writer", None)
        queue = getattr(event_writer, "_event_queue", None)
        if queue is not None:  # never let the interpreter wait at exit on events nobody will write
            queue.cancel_join_thread()
        worker = self._worker()
        if worker is None or worker.is_alive():
            self.writer.close()
