"""An exact event-driven propagation kernel for GPUs, written in Triton (``sapicore_gpu::propagate``).

The GPU counterpart of the CPU kernel (`sapicore.functional.propagation.kernels`), with the same arguments
and result: a copy of the ring buffer ``pending`` in which row ``step mod D`` (delivered this step) is
cleared and every outgoing synapse of every source neuron with a non-zero output ``s`` has added
``w * s`` at row ``(step + 1 + delay) mod D``, column ``target``. One program handles a block of ``BLOCK_N`` source neurons of one lane: it loads their
outputs, returns at once when none spiked, and otherwise adds the spiking rows' synapses, ``BLOCK_W``
at a time, with atomic additions (the out-rows of several sources can share targets). There is no
capacity, so no spike is ever dropped and no host synchronisation is needed: compiled chunks call it
as one opaque op and CUDA graphs capture it. Atomic additions make the order of accumulation, and so
the last bits of a sum of several spikes into one target, depend on scheduling: results equal the CPU
kernel to float rounding.

Lanes (``vmap``, ``sweep``) run in one launch: the op takes a leading lane axis, and its ``vmap``
rule folds the vmapped axis into it; a lane stride of 0 (an argument shared by all lanes) is read
without copying. It has no gradient: where a gradient can flow through spikes or weights, projections
use torch ops.

Triton is needed (``pip install triton``; it comes with the CUDA builds of torch on Linux). Without a
GPU, ``TRITON_INTERPRET=1`` (set before the first use) runs the same kernel on CPU tensors through
Triton's interpreter, slowly: that is how its tests run on machines without a GPU.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from typing import Any

import torch

from ..transforms import compiling, gradient_possible
from .kernels import DTYPES, delay_arguments, is_disabled, vmap_rule

__all__ = ["available", "interpreting", "usable", "propagate"]


def interpreting() -> bool:
    """True when Triton runs kernels through its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "yes", "on")


_REGISTERED: list[bool] = []  # [True] once the op is registered


def _triton_installed() -> bool:
    return importlib.util.find_spec("triton") is not None


def available(device: torch.device) -> bool:
    """True when the kernel can run on ``device``: a CUDA device with Triton, or the CPU under the
    Triton interpreter (registering the op on the first call)."""
    if is_disabled() or not (device.type == "cuda" or (device.type == "cpu" and interpreting())):
        return False
    if compiling():  # never register inside a trace (simulate registers it first)
        return bool(_REGISTERED)
    if not _REGISTERED and _triton_installed():
        _op()
        _REGISTERED.append(True)
    return bool(_REGISTERED)


def usable(spikes: torch.Tensor, weights: torch.Tensor) -> bool:
    """True where `propagate` applies: float32/float64 on an available device, no gradient."""
    if spikes.dtype not in DTYPES or weights.dtype != spikes.dtype or gradient_possible(spikes, weights):
        return False
    return available(spikes.device)


def propagate(
    pending: torch.Tensor,
    spikes: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    delays: Any,
    step: torch.Tensor,
) -> torch.Tensor:
    """``pending`` with row ``step mod D`` (delivered this step) cleared and this step's spikes added at
    their arrival rows; arguments as in [`sapicore.functional.propagation.kernels.propagate`][sapicore.functional.propagation.kernels.propagate] (one lane;
    ``vmap`` gives the lanes form)."""
    op = torch.ops.sapicore_gpu.propagate_lanes
    tensor, delay = delay_arguments(delays)
    delay_tensor = None if tensor is None else tensor[None]
    out = op(pending[None], spikes[None], targets[None], weights[None], delay_tensor, delay, step.reshape(1))
    return out[0]


@functools.cache
def _kernel() -> Any:
    """The Triton kernel, defined on first use (after ``TRITON_INTERPRET`` is read)."""
    import triton
    import triton.language as tl

    @triton.jit
    def push(
        out,
        spikes,
        targets,
        weights,
        delays,
        step,
        n_pre,
        rows,
        columns,
        lane_out,
        lane_spikes,
        lane_targets,
        lane_weights,
        lane_delays,
        lane_step,
        delay,
        width,
        blocks,
        HAS_DELAYS: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_W: tl.constexpr,
    ):
        # one axis for lanes and blocks (axis 1 holds at most 65,535 programs): program = lane x blocks + block
        program = tl.program_id(0).to(tl.int64)
        lane = program // blocks
        sources = (program % blocks) * BLOCK_N + tl.arange(0, BLOCK_N)
        values = tl.load(spikes + lane * lane_spikes + sources, mask=sources < n_pre, other=0.0)
        firing = values != 0.0
        if tl.max(firing.to(tl.int32), axis=0) > 0:
            first = (tl.load(step + lane * lane_step) + 1) % rows  # the row of delay 0
            for start in tl.range(0, width, BLOCK_W):  # a loop at run time: one compile for every width
                columns_here = start + tl.arange(0, BLOCK_W)
                mask = firing[:, None] & (columns_here[None, :] < width)
                offsets = sources[:, None] * width + columns_here[None, :]
                target = tl.load(targets + lane * lane_targets + offsets, mask=mask, other=0).to(tl.int64)  # uint16 too
                weight = tl.load(weights + lane * lane_weights + offsets, mask=mask, other=0.0)
                if HAS_DELAYS:
                    lag = tl.load(delays + lane * lane_delays + offsets, mask=mask, other=0).to(tl.int64)  # int8 too
                else:
                    lag = delay
                row = (first + lag) % rows
                real = mask & (target != columns - 1)  # padding entries add nothing
                tl.atomic_add(
                    out + lane * lane_out + row * columns + target, weight * values[:, None], mask=real, sem="relaxed"
                )

    return push


def _inner_contiguous(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` with contiguous inner (non-lane) dimensions; a lane stride of 0 is kept."""
    return tensor if tensor[0].is_contiguous() else tensor.contiguous()


def _propagate_lanes(
    pending: torch.Tensor,
    spikes: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    delays: torch.Tensor | None,
    delay: int,
    step: torch.Tensor,
) -> torch.Tensor:
    lanes, rows, columns = pending.shape
    n_pre, width = spikes.shape[1], targets.shape[2]
    if not (spikes.shape[0] == targets.shape[0] == weights.shape[0] == step.shape[0] == lanes):
        raise ValueError("sapicore_gpu::propagate: arguments disagree on the number of lanes")
    if targets.shape[1] != n_pre + 1 or weights.shape != targets.shape:
        raise ValueError("sapicore_gpu::propagate: targets and weights must be (lanes, N + 1, W) for spikes (lanes, N)")
    if delays is not None and delays.shape != targets.shape:
        raise ValueError("sapicore_gpu::propagate: delays must be shaped like targets")
    out = pending.contiguous().clone()
    if lanes == 0:
        return out
    # the rows delivered this step, cleared by a fill with a scalar: no host tensor, no synchronisation
    delivered = torch.arange(lanes, device=out.device) * rows + torch.remainder(step, rows)
    out.view(lanes * rows, columns).index_fill_(0, delivered, 0.0)
    if n_pre == 0 or width == 0:
        return out
    spikes, targets, weights = _inner_contiguous(spikes), _inner_contiguous(targets), _inner_contiguous(weights)
    delays_or_any = _inner_contiguous(delays) if delays is not None else targets
    block_n, block_w = block_sizes(n_pre, width)
    blocks = (n_pre + block_n - 1) // block_n
    grid = (blocks * lanes,)
    _kernel()[grid](
        out,
        spikes,
        targets,
        weights,
        delays_or_any,
        step,
        n_pre,
        rows,
        columns,
        out.stride(0),
        spikes.stride(0),
        targets.stride(0),
        weights.stride(0),
        delays_or_any.stride(0),
        step.stride(0),
        delay,
        width,
        blocks,
        HAS_DELAYS=delays is not None,
        BLOCK_N=block_n,
        BLOCK_W=block_w,
    )
    return out


def block_sizes(n_pre: int, width: int, gpu: bool | None = None) -> tuple[int, int]:
    """(sources, synapse slots) per program: 32 sources on a GPU, which pays per idle thread; up to
    1,024 under the interpreter, which pays per program (``gpu`` forces either choice)."""
    gpu = not interpreting() if gpu is None else gpu
    return (32 if gpu else min(_next_power_of_2(n_pre), 1024)), min(_next_power_of_2(width), 128)


def _next_power_of_2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


@functools.cache
def _op() -> Any:
    """Register ``sapicore_gpu::propagate_lanes``: a torch custom op with fake and vmap rules."""
    op = torch.library.custom_op("sapicore_gpu::propagate_lanes", mutates_args=())(_propagate_lanes)
    op.register_fake(lambda pending, *args: torch.empty_like(pending, memory_format=torch.contiguous_format))
    op.register_vmap(vmap_rule(op, lane_axis=True))
    return op
