"""Timing helpers shared by the benchmark scripts (run as ``python benchmarks/<script>.py``, which puts
this folder on the import path)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work (nothing to wait for on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(run: Callable[[], object], device: torch.device) -> float:
    """Wall seconds of ``run()``, with the device's queued work finished before and after."""
    synchronize(device)
    start = time.perf_counter()
    run()
    synchronize(device)
    return time.perf_counter() - start


def warm(device: torch.device) -> None:
    """Build or load every cache a run uses before any timer starts: the CPU kernel (propagation and the
    events scan; built on first use, about a minute) and, on a GPU, the Triton kernel's JIT."""
    from sapicore.functional import events, gpu_kernels, kernels

    kernels.available()
    events.to_events(torch.zeros(2, 3), 0, 0.1)
    if device.type == "cuda" and gpu_kernels.available(device):
        pending = torch.zeros(2, 4, device=device)
        targets = torch.tensor([[0, 1], [3, 3]], dtype=torch.int32, device=device)
        gpu_kernels.propagate(
            pending,
            torch.ones(1, device=device),
            targets,
            torch.ones(2, 2, device=device),
            0,
            pending.new_zeros((), dtype=torch.int64),
        )
        synchronize(device)
