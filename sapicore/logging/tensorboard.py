"""TensorBoard output of simulation records (tensorboardX), for live display of long runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

__all__ = ["TensorBoardSink"]


class TensorBoardSink:
    """Write each record of ``simulate`` as a scalar per recorded time point (``simulate(..., sinks=[...])``).

    A recorded variable of many neurons is reduced over the neurons (``reduce``: 'mean', 'sum',
    'max' or 'min'); the scalar's tag is ``"<name>/<reduce>"`` and its step the record index.
    Spike records reduced with 'mean' give the population's spike count per neuron and window.
    """

    REDUCTIONS = {"mean": torch.mean, "sum": torch.sum, "max": torch.amax, "min": torch.amin}

    def __init__(self, logdir: str | Path, reduce: str = "mean", flush_every: int = 1) -> None:
        if reduce not in self.REDUCTIONS:
            raise ValueError(f"unknown reduction {reduce!r}; choose one of: {', '.join(self.REDUCTIONS)}")
        self.logdir, self.reduce, self.flush_every = Path(logdir), reduce, flush_every
        self.writer: Any = None

    def begin(self, dt: float, every: int) -> None:
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(str(self.logdir))
        self.index = 0
        self.chunks = 0

    def write(self, records: dict[str, torch.Tensor]) -> None:
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
        if self.writer is not None:
            self.writer.close()
