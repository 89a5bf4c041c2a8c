"""A compiled CPU kernel for event-driven spike propagation (``sapicore::propagate``).

Sparse projections add each spiking source neuron's outgoing synapses into a ring buffer of future
input. In torch ops that takes a selection of the spiking rows (``nonzero``, or a fixed capacity with
``nonzero_static``/``topk`` under ``torch.compile`` and ``vmap``), gathers and a scatter, about ten
dispatched ops per projection per step, and with a fixed capacity the work of ``capacity`` rows
whatever the number of spikes. The kernel in ``csrc/propagate.cpp`` does it in one call: a scan of
the source output (skipping 64-byte blocks of zeros) and ``spikes x out-degree`` additions. It has
fixed output shapes, so compiled chunks call it as one opaque op, and it never overflows. It has a
``vmap`` rule (lanes run in one call) and no gradient: where a gradient could flow through spikes or
weights, projections use torch ops. The same library holds ``sapicore::events``, the scan that turns
spike records into events ([`sapicore.functional.running.events`][sapicore.functional.running.events]).
Compiled graphs call the ops through C entry points of the library (`compile_options`), not through
torch's boxed proxy executor.

It is built on first use with `torch.utils.cpp_extension` (a C++ compiler and ninja are needed;
about a minute on two cores), once per environment (source, torch and its location, compiler, flags,
Python ABI), in a cache that ``SAPICORE_KERNEL_CACHE`` can move ([`sapicore.functional.propagation.kernel_cache`][sapicore.functional.propagation.kernel_cache]);
later processes load the finished build without a lock or a rebuild. If the build fails, Sapicore warns once and uses torch ops. Set the
environment variable ``SAPICORE_KERNELS=0`` to never build or use it.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..transforms import compiling, gradient_possible, vmap_active
from . import kernel_cache

__all__ = [
    "available",
    "usable",
    "propagate",
    "take_row_",
    "poisson",
    "keyed_poisson",
    "delay_arguments",
    "disabled",
    "is_disabled",
    "key_compile_caches",
    "compile_options",
    "library",
    "DTYPES",
]

_SOURCES = tuple(Path(__file__).parent / "csrc" / name for name in ("propagate.cpp", "exchange.cpp", "package.cpp"))
_NAME = "sapicore_kernels"
_LOADED: dict[str, Any] = {}
_OFF = [0]  # depth of nested `disabled()` blocks
_REGISTERED: set[str] = set()
DTYPES = (torch.float32, torch.float64)


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Within this block projections use torch ops (e.g. to compare with the kernel, or to test them)."""
    _OFF[0] += 1
    try:
        yield
    finally:
        _OFF[0] -= 1


def is_disabled() -> bool:
    """True inside a `disabled` block."""
    return bool(_OFF[0])


def available() -> bool:
    """True when the kernel is built and loaded (building it on the first call)."""
    if "ok" not in _LOADED:
        # inside a graph being traced, load outside it (decorating _load instead would import
        # torch._dynamo with this module: 150 MB and a second and a half for every process)
        (torch.compiler.disable(_load) if torch.compiler.is_compiling() else _load)()
    return _LOADED["ok"]


def _load() -> None:
    _LOADED["ok"] = False
    if os.environ.get("SAPICORE_KERNELS", "1").strip().lower() in ("0", "false", "no", "off"):
        return
    try:
        library = kernel_cache.load_library(_NAME, _SOURCES, ["-O3"])
        # its symbols global: the code of compiled graphs calls the ops' C entry points by name
        _LOADED["library"] = ctypes.CDLL(str(library), mode=ctypes.RTLD_GLOBAL)
        for name, lane_axis in (("propagate", False), ("propagate_lanes", True)):
            if name not in _REGISTERED:  # once per process, however often loading is retried
                torch.library.register_fake(f"sapicore::{name}")(_fake)
                rule = vmap_rule(torch.ops.sapicore.propagate_lanes, lane_axis)
                torch.library.register_vmap(f"sapicore::{name}")(rule)
                _REGISTERED.add(name)
        if "poisson" not in _REGISTERED:
            torch.library.register_fake("sapicore::poisson")(lambda mean: torch.empty_like(mean))
            _REGISTERED.add("poisson")
        if "keyed_poisson" not in _REGISTERED:
            torch.library.register_fake("sapicore::keyed_poisson")(lambda mean, *args: torch.empty_like(mean))
            torch.library.register_vmap("sapicore::keyed_poisson")(_keyed_poisson_lanes)
            _REGISTERED.add("keyed_poisson")
        if "propagate_" not in _REGISTERED:
            torch.library.register_fake("sapicore::propagate_")(lambda *args: None)
            torch.library.register_fake("sapicore::propagate_lanes_")(lambda *args: None)
            torch.library.register_fake("sapicore::take_row_")(
                lambda pending, step: pending.new_empty(pending.shape[1])
            )
            torch.library.register_fake("sapicore::take_row_lanes_")(
                lambda pending, step: pending.new_empty((pending.shape[0], pending.shape[2]))
            )
            torch.library.register_vmap("sapicore::propagate_")(_propagate_in_place_lanes)
            torch.library.register_vmap("sapicore::take_row_")(_take_row_lanes)
            _REGISTERED.add("propagate_")
        if "exchange_gather" not in _REGISTERED and hasattr(torch.ops.sapicore, "exchange_gather"):  # POSIX only
            torch.library.register_fake("sapicore::exchange_gather")(
                lambda local, channel, segments: local.new_empty((*local.shape[:-1], sum(segments[1::2])))
            )
            _REGISTERED.add("exchange_gather")
    except Exception as err:  # no compiler, no ninja, a read-only cache: torch ops still work
        warnings.warn(
            f"sapicore could not build its CPU propagation kernel ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
            "sparse projections use torch ops instead (slower). Set SAPICORE_KERNELS=0 to silence this.",
            RuntimeWarning,
            stacklevel=3,
        )
        return
    _LOADED["ok"] = True


#: the ops of ``csrc/propagate.cpp`` (``sapicore::<name>``)
OPS = (
    "propagate",
    "propagate_",
    "propagate_lanes",
    "propagate_lanes_",
    "take_row_",
    "take_row_lanes_",
    "events",
    "poisson",
    "keyed_poisson",
    "exchange_gather",
)


def key_compile_caches() -> None:
    """Key torch's caches of compiled graphs (inductor's FX graph cache, AOTAutograd's) by the C++
    source of these ops, before anything compiles. Their own keys do not cover a custom op's schema:
    a graph compiled against another version of an op (another argument list) would be loaded from
    the cache and call it with the wrong arguments (a crash, or worse). Imports ``torch._inductor``."""
    import torch._inductor.config as config

    marked = getattr(config, "unsafe_marked_cacheable_functions", None)  # torch 2.6 and later
    if isinstance(marked, dict):
        marked.update({f"torch.ops.sapicore.{op}": source_digest(_SOURCES) for op in OPS})


#: the C entry points of ``csrc/`` that compiled graphs call, declared as inductor calls them
_HANDLES = "AtenTensorHandle pending, AtenTensorHandle spikes, AtenTensorHandle targets, AtenTensorHandle weights, "
_SCALARS = "AtenTensorHandle* delays, int64_t delay, AtenTensorHandle step, AtenTensorHandle* first_row"
C_SHIMS = {
    "propagate": f"AOTITorchError aoti_torch_cpu_propagate({_HANDLES}{_SCALARS}, AtenTensorHandle* out)",
    "propagate_": f"AOTITorchError aoti_torch_cpu_propagate_({_HANDLES}{_SCALARS}, AtenTensorHandle* none)",
    "propagate_lanes": f"AOTITorchError aoti_torch_cpu_propagate_lanes({_HANDLES}{_SCALARS}, AtenTensorHandle* out)",
    "propagate_lanes_": f"AOTITorchError aoti_torch_cpu_propagate_lanes_({_HANDLES}{_SCALARS}, AtenTensorHandle* none)",
    "take_row_": "AOTITorchError aoti_torch_cpu_take_row_(AtenTensorHandle pending, AtenTensorHandle step, "
    "AtenTensorHandle* out)",
    "take_row_lanes_": "AOTITorchError aoti_torch_cpu_take_row_lanes_(AtenTensorHandle pending, AtenTensorHandle step, "
    "AtenTensorHandle* out)",
    "keyed_poisson": "AOTITorchError aoti_torch_cpu_keyed_poisson(AtenTensorHandle mean, AtenTensorHandle zero, "
    "AtenTensorHandle step, AtenTensorHandle neuron, int64_t seed, int64_t stream, AtenTensorHandle* out)",
    "exchange_gather": "AOTITorchError aoti_torch_cpu_exchange_gather(AtenTensorHandle local, int64_t channel, "
    "const int64_t* segments, int64_t segments_len_, AtenTensorHandle* out)",
}


def library() -> ctypes.CDLL | None:
    """The loaded library (for the C functions of ``csrc/exchange.cpp``), or None where it is not built."""
    return _LOADED.get("library") if available() else None


def compile_options() -> dict[str, Any]:
    """Inductor settings for a graph that may call these ops on the CPU: with the library loaded, its
    C++ code (AOT Inductor's, or the C++ wrapper's) calls their C entry points directly instead of
    through torch's proxy executor, about a microsecond less per call (two calls a step in COBA:
    7% of a compiled COBA-4k step)."""
    import torch._inductor.config as config

    if not available() or not hasattr(config.aot_inductor, "custom_ops_to_c_shims"):  # an older torch
        return {}
    shims = {getattr(torch.ops.sapicore, name).default: [declaration] for name, declaration in C_SHIMS.items()}
    return {"aot_inductor.custom_ops_to_c_shims": shims}


def source_digest(paths: Path | tuple[Path, ...]) -> str:
    """A short hash of files' bytes (the ops' C++ sources, for `key_compile_caches`)."""
    digest = hashlib.sha256()
    for path in [paths] if isinstance(paths, Path) else paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def usable(spikes: torch.Tensor, weights: torch.Tensor) -> bool:
    """True where `propagate` applies: CPU, float32/float64, no gradient through spikes or weights."""
    if _OFF[0] or spikes.device.type != "cpu" or spikes.dtype not in DTYPES or weights.dtype != spikes.dtype:
        return False
    if gradient_possible(spikes, weights):
        return False
    if compiling() and "ok" not in _LOADED:  # never build inside a trace (simulate loads it first)
        return False
    return available()


def delay_arguments(delays: Any) -> tuple[torch.Tensor | None, int]:
    """``delays`` (an int number of steps, or a per-synapse int64 tensor) as the ops take them:
    (the tensor or None, the steps for all synapses)."""
    return (delays, 0) if isinstance(delays, torch.Tensor) else (None, int(delays))


def propagate(
    pending: torch.Tensor,
    spikes: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    delays: Any,
    step: torch.Tensor,
    in_place: bool = False,
    first_row: torch.Tensor | None = None,
) -> torch.Tensor:
    """``pending`` with row ``step mod D`` (delivered this step) cleared and this step's spikes added
    at their arrival rows (see ``csrc/propagate.cpp``).

    Args:
        pending: future input ``(max_delay + 1, n_post + 1)``; row ``k`` acts at the steps equal to
            ``k`` modulo the number of rows.
        spikes: the source output ``(n_pre,)``; only non-zero entries do work.
        targets, weights: padded outgoing synapses ``(n_pre + 1, width)``.
        delays: an int (steps, for all synapses) or an int64 tensor shaped like ``targets``.
        step: steps taken so far (0-d int64).
        in_place: change ``pending`` (contiguous) itself and return it, instead of a copy; only for a
            run that owns it (``simulate`` copies the ring buffers it is given once).
        first_row: None (row ``i`` of the tables holds source ``i``'s synapses), or int64 ``(n_pre + 1,)``:
            source ``i``'s synapses fill rows ``first_row[i]`` to ``first_row[i + 1] - 1`` of tables with
            ``first_row[n_pre] + 1`` rows (see `SynapseTable`'s ``width``).
    """
    tensor, delay = delay_arguments(delays)
    if in_place:
        torch.ops.sapicore.propagate_(pending, spikes, targets, weights, tensor, delay, step, first_row)
        return pending
    return torch.ops.sapicore.propagate(pending, spikes, targets, weights, tensor, delay, step, first_row)


def take_row_(pending: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """A copy of row ``step mod D`` of ``pending`` (the input delivered this step), which is cleared
    in place: the in-place counterpart of reading that row before ``propagate(..., in_place=True)``."""
    return torch.ops.sapicore.take_row_(pending, step)


def poisson(mean: torch.Tensor) -> torch.Tensor:
    """One Poisson count per entry of ``mean`` (>= 0), from torch's default generator: the C++
    sampler of ``csrc/propagate.cpp`` where `usable` (3-4 times faster than ``torch.poisson``
    for means below 10, such as spike counts per step), else ``torch.poisson``. The two draw
    different, equally distributed counts. Under ``vmap`` it is always ``torch.poisson``, which vmap
    knows to be random (each lane its own counts with ``randomness="different"``)."""
    if usable(mean, mean) and not vmap_active():
        return torch.ops.sapicore.poisson(mean)
    return torch.poisson(mean)


def keyed_poisson(
    mean: torch.Tensor, step: torch.Tensor, seed: int, numbering: tuple[int, int], stream: int
) -> torch.Tensor | None:
    """Seeded Poisson counts (float64) of ``mean`` (>= 0, at most 100) for neurons ``numbering[0] +
    numbering[1] * i`` at their counters ``step`` (int64), from the C++ op where `usable` (one pass,
    no host synchronisation, so compiled chunks keep it), else None: the caller then draws the same
    counts with torch ops (``sapicore.functional.models.sources``)."""
    if not usable(mean, mean) or mean.dim() != 1:
        return None
    mean = mean.to(torch.float64)
    first, stride = numbering
    neuron = first + stride * torch.arange(mean.shape[0], device=mean.device)
    return torch.ops.sapicore.keyed_poisson(mean, torch.exp(-mean), step, neuron, seed, stream)


def _keyed_poisson_lanes(info: Any, in_dims: tuple, mean, zero, step, neuron, seed, stream) -> tuple[torch.Tensor, int]:
    """``vmap`` of ``sapicore::keyed_poisson``: the lanes' neurons in one call of its form with a row per
    lane (each draw depends on its own arguments only). The rows stay rows, shared arguments expanded
    without a copy: flattened to one axis, a compiled graph indexed them by division and computed
    ``zero`` one element at a time (a scalar ``exp``, 14% of a 4-lane microcircuit sweep)."""
    lanes = [_fold(info.batch_size, t, d, lane_axis=False) for t, d in zip((mean, zero, step, neuron), in_dims[:4])]
    shape = lanes[0].shape  # (lanes, neurons), or more leading axes under nested vmaps
    out = torch.ops.sapicore.keyed_poisson(*(t.reshape(-1, shape[-1]) for t in lanes), seed, stream)
    return out.reshape(shape), 0


def _fake(pending: torch.Tensor, *args: Any) -> torch.Tensor:
    return torch.empty_like(pending, memory_format=torch.contiguous_format)


def _fold(size: int, tensor: Any, dim: Any, lane_axis: bool) -> Any:
    """``tensor`` with the vmapped axis first, expanded to ``size`` (a stride-0 view when shared) and,
    for an argument that already has a lane axis, merged into it."""
    if tensor is None:
        return None
    tensor = tensor.unsqueeze(0) if dim is None else tensor.movedim(dim, 0)
    tensor = tensor.expand(size, *tensor.shape[1:])
    return tensor.reshape(size * tensor.shape[1], *tensor.shape[2:]) if lane_axis else tensor


def _lanes_of_buffer(pending: torch.Tensor, dim: Any, op: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The vmapped ring buffer with its lane axis first, and the tensor an in-place lanes op changes:
    that view itself where each lane's rows are contiguous and lanes apart, else a contiguous copy
    (written back by the caller)."""
    if dim is None:  # one buffer for every lane cannot take each lane's spikes
        raise RuntimeError(
            f"sapicore::{op} under vmap changes each lane's ring buffer in place, so the buffer needs a lane axis"
        )
    lanes = pending.movedim(dim, 0)
    apart = lanes.dim() == 3 and lanes.stride(2) == 1 and lanes.stride(1) == lanes.shape[2]
    apart = apart and (lanes.shape[0] == 1 or lanes.stride(0) >= lanes.shape[1] * lanes.shape[2])
    return lanes, (lanes if apart else lanes.contiguous())


def _propagate_in_place_lanes(
    info: Any, in_dims: tuple, pending, spikes, targets, weights, delays, delay, step, first_row
) -> tuple[None, None]:
    """``vmap`` of ``sapicore::propagate_``: every lane's events added into its own ring buffer in one
    call of ``sapicore::propagate_lanes_``, in place (no copy of the buffers each step, as for one run)."""
    size = info.batch_size
    lanes, work = _lanes_of_buffer(pending, in_dims[0], "propagate_")
    tensors = [_fold(size, t, d, False) for t, d in zip((spikes, targets, weights, delays), in_dims[1:5])]
    steps, rows = _fold(size, step, in_dims[6], False), _fold(size, first_row, in_dims[7], False)
    torch.ops.sapicore.propagate_lanes_(work, *tensors, delay, steps, rows)
    if work is not lanes:
        lanes.copy_(work)
    return None, None


def _take_row_lanes(info: Any, in_dims: tuple, pending, step) -> tuple[torch.Tensor, int]:
    """``vmap`` of ``sapicore::take_row_``: each lane's row delivered this step, cleared in place."""
    lanes, work = _lanes_of_buffer(pending, in_dims[0], "take_row_")
    taken = torch.ops.sapicore.take_row_lanes_(work, _fold(info.batch_size, step, in_dims[1], False))
    if work is not lanes:
        lanes.copy_(work)
    return taken, 0


def vmap_rule(lanes_op: Any, lane_axis: bool) -> Any:
    """A ``vmap`` rule that runs a propagation op's lanes form ``lanes_op`` once for all lanes; with
    ``lane_axis`` the op being vmapped is itself the lanes form (the vmapped axis joins its lanes)."""

    def rule(
        info: Any, in_dims: tuple, pending, spikes, targets, weights, delays, delay, step, *first_row
    ) -> tuple[torch.Tensor, int]:
        size = info.batch_size
        tensors = (pending, spikes, targets, weights, delays)
        folded = [_fold(size, t, d, lane_axis) for t, d in zip(tensors, in_dims[:5])]
        rows = [_fold(size, t, d, lane_axis) for t, d in zip(first_row, in_dims[7:])]  # the CPU ops only
        out = lanes_op(*folded, delay, _fold(size, step, in_dims[6], lane_axis), *rows)
        return (out.reshape(size, out.shape[0] // size, *out.shape[1:]) if lane_axis else out), 0

    return rule
