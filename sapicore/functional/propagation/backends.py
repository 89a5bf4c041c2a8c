"""Which propagation backend a run of sparse projections uses.

A sparse projection moves spikes into its ring buffer of future input in one of these ways (its
``propagation`` field, a static string):

============== ==============================================================================
``cpu_kernel`` the compiled C++ operator (`sapicore.functional.propagation.kernels`): exact, fixed shapes,
               works eagerly, compiled and under ``vmap``; CPU, float32/64, no gradient.
``gpu_kernel`` the Triton kernel (`sapicore.functional.propagation.gpu_kernels`): the same on CUDA devices
               (and on the CPU under ``TRITON_INTERPRET=1``, for tests); no host synchronisation.
``nonzero``    torch ops on exactly the spiking sources (``torch.nonzero``): exact, one host
               synchronisation per step; plain eager runs only (no compile, no ``torch.func``).
``fixed``      torch ops on at most ``capacity`` sources (``nonzero_static``): fixed shapes, an
               overflow flag when more spike; compiled runs, gradients, GPUs without a kernel.
``topk``       as ``fixed``, with ``topk`` picking the sources, which has a ``vmap`` rule.
``auto``       decided at each step from the transforms then active (the default of a projection
               stepped by a loop of your own; ``simulate`` and ``sweep`` decide once per run).
============== ==============================================================================

``simulate`` and ``sweep`` build a `RunContext` from the device, dtype, whether a gradient can
flow, whether lanes are vmapped and whether chunks are compiled, and give every sparse projection left
at ``auto`` the backend `propagation` picks for it; a projection given a backend of its own
(``replace(proj, propagation="topk")``) keeps it, or the run refuses with the reason. When ``simulate`` itself runs inside an outer
``torch.func`` transform (``vmap(simulate)``, ``grad``), a chunk whose fixed capacity overflowed
cannot be rerun (that needs a host decision), so fixed-capacity projections then get room for every
source (``capacity = n_pre``): exact, at a cost ~ n_pre x out-degree per step.
"""

from __future__ import annotations

import torch

from ..transforms import RunContext, compiling, functorch_active, gradient_possible
from . import gpu_kernels, kernels

__all__ = ["PROPAGATIONS", "KERNELS", "propagation", "propagation_now"]

PROPAGATIONS = ("auto", "cpu_kernel", "gpu_kernel", "nonzero", "fixed", "topk")
#: the backends that propagate in one opaque op, with no capacity
KERNELS = ("cpu_kernel", "gpu_kernel")


def propagation(context: RunContext, requested: str = "auto") -> str:
    """The propagation backend for sparse projections in a run (see the module docstring): the
    ``requested`` one if it is not ``auto`` and can run in ``context`` (else a ValueError saying why)."""
    if requested != "auto":
        problem = _unusable(requested, context)
        if problem:
            raise ValueError(f"propagation={requested!r} cannot be used in this run: {problem}; leave it at 'auto'")
        return requested
    if context.device.type == "cpu" and not _unusable("cpu_kernel", context):
        return "cpu_kernel"
    if context.device.type == "cuda" and not _unusable("gpu_kernel", context):  # never the interpreter unasked
        return "gpu_kernel"
    if not (context.compiled or context.lanes or context.nested):
        return "nonzero"
    return "topk" if context.lanes else "fixed"


def _unusable(backend: str, context: RunContext) -> str:
    """Why ``backend`` cannot propagate in ``context`` ('' if it can)."""
    if backend in KERNELS:
        if context.dtype not in kernels.DTYPES:
            return f"the kernels take float32 or float64, not {context.dtype}"
        if context.gradient:
            return "a gradient can flow through the run and the kernels have none"
        if kernels.is_disabled():
            return "inside kernels.disabled()"
    if backend == "cpu_kernel" and (context.device.type != "cpu" or not kernels.available()):
        return "the CPU kernel needs CPU tensors and a built kernel (see sapicore.functional.kernels)"
    if backend == "gpu_kernel" and not gpu_kernels.available(context.device):
        return "the GPU kernel needs Triton and a CUDA device (or TRITON_INTERPRET=1 on the CPU)"
    if backend == "nonzero" and (context.compiled or context.lanes or context.nested):
        return "nonzero synchronises with the host each step: plain eager runs only (no fast=, sweep or torch.func)"
    if backend == "fixed" and context.lanes:
        return "fixed has no vmap rule; use topk for lanes"
    return ""


def propagation_now(spikes: torch.Tensor, weights: torch.Tensor) -> str:
    """The backend for one step of a projection left at ``auto``, from the transforms active now."""
    if kernels.usable(spikes, weights):
        return "cpu_kernel"
    if spikes.device.type == "cuda" and gpu_kernels.usable(spikes, weights):
        return "gpu_kernel"
    if compiling() or functorch_active() or gradient_possible(spikes):
        return "topk" if functorch_active() else "fixed"
    return "nonzero"
