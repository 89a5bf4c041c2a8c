"""Steppers: run a pure ``step`` over time, recording chosen variables into preallocated buffers.

Time runs in *chunks* of steps. A chunk is a pure function ``(model, state, inputs, t0) -> (state,
records)``; the reference path calls it eagerly (a plain Python loop over ``model.step``), the fast
path calls the same function compiled with ``torch.compile`` (on CUDA, captured in CUDA graphs). Both
paths run the same code, so they agree up to the compiler's floating-point reordering. Records of each
chunk are copied into buffers allocated once for the whole run, on the state's device: no host
synchronisation happens inside a run.

Timing convention: step ``i`` (0-based) advances the state from ``t = i dt`` to ``t = (i + 1) dt``; an
input function is called with the step's start time; a record taken after step ``i`` is stamped
``(i + 1) dt``. With ``every = k`` a record is taken after steps k, 2k, ...: state variables are
sampled there, and event outputs (spikes) are summed over the k steps of the window, so no spike is
lost (a record then counts spikes per window).
"""

from __future__ import annotations

import contextlib
import logging
import math
import numbers
import sys
import time
import types
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import torch
from tqdm.auto import tqdm

from ..models.neurons.base import check_consistent, check_dt, check_model
from ..network import Network, own_buffers
from ..propagation import kernels
from ..pytree import lane_count, tree_leaves, tree_map, validate
from ..transforms import RunContext, run_context
from . import stored
from .capacity import Rerun, report_overflow
from .checks import FiniteWatch, check_fits, check_inputs, check_sinks, check_state
from .feed import SinkFeed
from .partition import gather_records, local_inputs
from .stored import StoredChunk

__all__ = ["simulate", "resolve_steps", "make_chunk", "run_chunks", "Plan", "plan_run"]

_FAST_FALLBACK_WARNED: set[str] = set()


def _tensor_leaves(inputs: Any) -> list[torch.Tensor]:
    if inputs is None or callable(inputs):
        return []
    return [leaf for leaf in tree_leaves(inputs) if isinstance(leaf, torch.Tensor)]


def _gradient_possible(context: RunContext, model: Any, state: Any, inputs: Any) -> bool:
    """False when no gradient can flow: none through the run's tensors (``context.gradient``), no
    outer transform and no function (which could close over a tensor that requires grad) among the
    run's leaves."""
    if context.gradient or context.nested or callable(inputs):
        return True
    return any(callable(leaf) for leaf in tree_leaves((model, state, inputs)))


def resolve_steps(inputs: Any, steps: int | None, duration: float | None, dt: float, time_dim: int = 0) -> int:
    """The number of steps implied by time-major input tensors, ``steps`` or ``duration`` (ms)."""
    if steps is not None and duration is not None:
        raise ValueError("give either steps or duration (ms), not both")
    if duration is not None:
        if not (isinstance(duration, numbers.Real) and math.isfinite(duration) and duration > 0):
            raise ValueError(f"duration must be a positive number of milliseconds, got {duration!r}")
        steps = int(round(duration / dt))
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0):
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    tensors = _tensor_leaves(inputs)
    for tensor in tensors:
        if tensor.dim() <= time_dim:
            raise ValueError(
                f"an input of shape {tuple(tensor.shape)} has no time axis {time_dim}; give a time-major "
                "tensor (steps, *population_shape), a function of time, or a number"
            )
    lengths = sorted({tensor.shape[time_dim] for tensor in tensors})
    if len(lengths) > 1:
        raise ValueError(f"input tensors disagree on the number of steps along axis {time_dim}: {lengths}")
    if lengths:
        if steps is not None and steps != lengths[0]:
            raise ValueError(
                f"inputs hold {lengths[0]} steps along axis {time_dim} but {steps} steps were asked for "
                "(an input tensor is time-major; for an input constant in time pass a function, "
                "inputs=lambda t: current)"
            )
        return lengths[0]
    if steps is None:
        raise ValueError("without an input tensor, give steps= or duration= (ms)")
    return steps


def floating_leaf(tree: Any) -> torch.Tensor:
    """The first floating tensor of a state: it gives the run's device and dtype."""
    return next(leaf for leaf in tree_leaves(tree) if isinstance(leaf, torch.Tensor) and leaf.is_floating_point())


def trial_step(model: Any, state: Any, x: Any, dt: float, device: torch.device) -> None:
    """Run one step and discard it, so bad input fails here with a clear message, not mid-run.

    The random generators are restored afterwards: a run consumes exactly the random numbers of its
    own steps, so a run split in two and resumed draws what one uninterrupted run draws.
    """
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        model.step(own_buffers(model, state), x, dt)


def first_input(inputs: Any, reference: torch.Tensor, lane_inputs: bool = False) -> Any:
    """The input of the first step, for checking it before a run."""
    if inputs is None:
        return 0.0
    if callable(inputs):
        return inputs(torch.zeros((), dtype=reference.dtype, device=reference.device))
    take = (lambda leaf: leaf[0, 0]) if lane_inputs else (lambda leaf: leaf[0])
    return tree_map(lambda leaf: take(leaf) if isinstance(leaf, torch.Tensor) else leaf, inputs)


def _record_names(model: Any, record: Sequence[str] | str | None) -> tuple[str, ...]:
    if record is None:
        record = model.default_record()
    elif isinstance(record, str):
        record = (record,)
    if not (isinstance(record, (list, tuple)) and all(isinstance(name, str) for name in record)):
        raise TypeError(f"record must be a name or a list of names such as ('v', 'spikes'), got {record!r}")
    names = tuple(record)
    known = model.record_names()
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(
            f"cannot record {', '.join(map(repr, unknown))}; {type(model).__name__} offers: {', '.join(known)}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"record names repeat: {names}")
    return names


def make_chunk(
    model: Any,
    names: tuple[str, ...],
    steps: int,
    every: int,
    dt: float,
    inputs: Any,
) -> Callable[[Any, Any, Any, torch.Tensor], tuple[Any, dict[str, torch.Tensor]]]:
    """A pure function running ``steps`` steps: ``(model, state, xs, t0) -> (state, records)``.

    ``xs`` is the chunk's slice of the time-major input tensors (or ``None`` when ``inputs`` is a
    function of time, a number or ``None``); ``t0`` (0-d tensor, ms) is the chunk's start time.
    ``records[name]`` stacks ``steps // every`` records along a new leading axis.
    """
    events = tuple(name for name in names if model.is_event(name))
    constant = 0.0 if inputs is None else inputs

    def chunk(model: Any, state: Any, xs: Any, t0: torch.Tensor) -> tuple[Any, dict[str, torch.Tensor]]:
        records: dict[str, list[torch.Tensor]] = {name: [] for name in names}
        windows: dict[str, torch.Tensor] = {}
        for i in range(steps):
            if xs is not None:
                x = tree_map(lambda leaf: leaf[i] if isinstance(leaf, torch.Tensor) else leaf, xs)
            elif callable(constant):
                x = constant(t0 + i * dt)
            else:
                x = constant
            state, out = model.step(state, x, dt)
            for name in events:
                value = model.read(state, out, name)
                windows[name] = value if name not in windows else windows[name] + value
            if (i + 1) % every == 0:
                for name in names:
                    records[name].append(windows.pop(name) if name in windows else model.read(state, out, name))
        return state, {name: torch.stack(values) for name, values in records.items() if values}

    return chunk


def check_fast(fast: Any) -> None:
    """Raise unless ``fast`` is True, False or the name of a ``torch.compile`` backend."""
    if isinstance(fast, bool):
        return
    if not isinstance(fast, str):
        raise TypeError(f"fast must be True, False or a torch.compile backend name, got {type(fast).__name__}")
    import torch._dynamo

    known = torch._dynamo.list_backends(exclude_tags=())
    if fast not in known:
        raise ValueError(
            f"fast={fast!r} names no torch.compile backend; use True (inductor) or one of: {', '.join(known)}"
        )


_CODE_COPIES: dict[Any, types.CodeType] = {}  # structure key -> the code object its chunks compile under
_MOST_COPIES = 256


def _own_code(chunk: Callable, key: Any) -> Callable:
    """``chunk`` as a function whose code object belongs to ``key`` alone.

    Dynamo keeps its compiled graphs per code object and, past ``recompile_limit`` (8) variants of
    one, silently runs the frame eagerly: chunks of different networks, lane counts, Python-number
    parameters or ``strict`` settings all share ``chunk``'s code. Each key gets its own copy of the
    code (runs of the same structure and numbers share one, and its compiled graph), so a process
    that runs many variants keeps compiling each instead of falling back to the slow loop.
    """
    code = _CODE_COPIES.get(key)
    if code is None:
        if len(_CODE_COPIES) >= _MOST_COPIES:
            _CODE_COPIES.pop(next(iter(_CODE_COPIES)))
        code = _CODE_COPIES[key] = chunk.__code__.replace()
    own = types.FunctionType(code, chunk.__globals__, chunk.__name__, chunk.__defaults__, chunk.__closure__)
    return own


def structure_key(tree: Any, steps: int, *settings: Any) -> tuple:
    """What a compiled chunk's graph depends on: ``tree`` (a run's model, state and inputs) described
    down to its leaves (a tensor's shape, dtype and device; every other value, Python numbers
    included, itself), the chunk's length and ``settings``."""
    return (_describe(tree), steps, settings)


def _describe(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), value.dtype, str(value.device), value.requires_grad)
    if attrs.has(type(value)):  # fields marked metadata={"keyed": False} never reach the graph
        fields = [f for f in attrs.fields(type(value)) if f.metadata.get("keyed", True)]
        return (type(value), tuple((f.name, _describe(getattr(value, f.name))) for f in fields))
    if isinstance(value, dict):
        return ("dict", tuple((key, _describe(item)) for key, item in value.items()))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_describe(item) for item in value))
    try:
        hash(value)
        return (type(value).__name__, value)
    except TypeError:  # a mutable object known by its id: equal only to itself, never written to disk
        return ByIdentity(type(value).__name__, id(value))


@attrs.frozen
class ByIdentity:
    """An unhashable value in a `structure_key`: the same object, but not the same values (it may
    change in place, and its id may be reused by another object once it is gone)."""

    kind: str
    number: int


def compile_chunk(chunk: Callable, fast: bool | str, device: torch.device, key: Any = None) -> Callable:
    """``chunk`` (``(model, state, xs, t0) -> (state, ...)``) compiled for ``fast`` (True: inductor, a
    C++ wrapper on the CPU and CUDA graphs on a GPU; or a backend's name), under a code object of its
    own for ``key`` (see `structure_key` and `_own_code`). On CUDA each call starts a new graph step
    and returns a state copied out of the graph's pool (`unaliased`)."""
    if key is not None:
        chunk = _own_code(chunk, (key, str(fast), str(device)))
    kernels.key_compile_caches()
    backend = "inductor" if fast is True else fast
    options = {"backend": backend, "dynamic": False}
    if device.type == "cuda" and backend == "inductor":
        options["mode"] = "reduce-overhead"
    elif backend == "inductor":  # a C++ wrapper calls the chunk's kernels: half the time of Python's at COBA-4k
        options["options"] = {"cpp_wrapper": True, **kernels.compile_options()}
    compiled = torch.compile(chunk, **options)
    if device.type != "cuda":
        return compiled

    def call(model: Any, state: Any, xs: Any, t0: torch.Tensor) -> Any:
        torch.compiler.cudagraph_mark_step_begin()
        new_state, *rest = compiled(model, state, xs, t0)  # (state, records[, NaN-watch sum])
        return (unaliased(state, new_state), *rest)

    return call


def unaliased(before: Any, after: Any) -> Any:
    """``after``, a compiled chunk's output state, with every tensor the chunk wrote copied out of the
    CUDA-graph pool: the next replay reuses that memory, so a state fed back from it would be read after
    it was overwritten. Tensors the chunk passed through unchanged (fixed weights) stay as they are.
    (Its records and NaN-watch sum are copied right after the chunk by the feed and the watch.)"""
    given = {id(leaf) for leaf in tree_leaves(before) if isinstance(leaf, torch.Tensor)}
    return tree_map(
        lambda leaf: leaf.clone() if isinstance(leaf, torch.Tensor) and id(leaf) not in given else leaf, after
    )


def mark_static(model: Any, state: Any) -> None:
    """Tell the compiler that the model's tensors (connectivity, delays, parameters) and the weights of
    projections without plasticity keep their memory from chunk to chunk: CUDA graphs then read them in
    place instead of copying them into the graph's pool at every replay."""
    import torch._dynamo

    evolving = {id(leaf) for leaf in tree_leaves(state)}  # a state may start from a model's tensor (weights)
    fixed = [leaf for leaf in tree_leaves(model) if isinstance(leaf, torch.Tensor) and id(leaf) not in evolving]
    if isinstance(model, Network):
        fixed += [
            state.projections[name].weights for name, proj in model.projections.items() if proj.plasticity is None
        ]
    for tensor in fixed:
        torch._dynamo.mark_static_address(tensor)


COMPILE_LOG = logging.getLogger("sapicore.compile")


def _with_fallback(compiled: Callable, eager: Callable, label: str, steps: int) -> Callable:
    """Call ``compiled``; if compilation fails, tell the user once and use ``eager`` from then on.

    The first call compiles: it is announced, and its time reported, on the ``sapicore.compile``
    logger (INFO; ``sapicore run`` and ``sweep`` print both lines and keep the seconds in the summary).
    """
    use = [compiled]
    first = [True]

    def call(*args: Any) -> Any:
        if use[0] is eager:
            return eager(*args)
        try:
            if not first[0]:
                return compiled(*args)
            COMPILE_LOG.info("compiling chunks of %d steps (fast=%s) ...", steps, label)
            start = time.perf_counter()
            result = compiled(*args)
            seconds = time.perf_counter() - start
            first[0] = False
            COMPILE_LOG.info("compiled in %.1f s", seconds, extra={"compile_seconds": seconds})
            return result
        except Exception as err:  # the chunk is pure, so running it again eagerly is safe
            use[0] = eager
            if label not in _FAST_FALLBACK_WARNED:
                _FAST_FALLBACK_WARNED.add(label)
                warnings.warn(
                    f"the fast path could not compile ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
                    "running the reference loop instead",
                    RuntimeWarning,
                    stacklevel=4,
                )
            return eager(*args)

    return call


def _stored_chunk(
    chunk: Callable, key: tuple, plan: Plan, grad: bool, settings: tuple, unlocked: bool
) -> StoredChunk | None:
    """The run's chunk compiled ahead of time and kept on disk (see `stored`), or None where that
    does not apply: another backend than inductor, another device than the CPU, a gradient, an outer
    ``torch.func`` transform, a disabled cache or a run that cannot be keyed. ``settings``: what else
    the chunk's code depends on (the strides of the model's and the inputs' tensors; a sweep's
    randomness and input lanes). ``unlocked``: run it with Python's lock released (see `_gloo_in_graph`)."""
    context = plan.context
    root = stored.cache_root()
    if plan.fast is not True or context.device.type != "cpu" or grad or context.nested or root is None:
        return None
    name = stored.chunk_key(key, (plan.names, plan.every, plan.dt, plan.strict, plan.input_axis, *settings))
    if name is None:
        return None
    return StoredChunk(chunk, plan.names, root, name, plan.chunk, unlocked=unlocked)


def _no_unlocked_compile(*args: Any) -> Any:
    raise NotImplementedError("over gloo, only a chunk compiled ahead of time runs without holding Python's lock")


def _gloo_in_graph(model: Any) -> bool:
    """Whether ``model`` is a share whose compiled chunks all-gather over gloo (see `open_exchange`)."""
    exchange = getattr(model, "exchange", None)
    return exchange is not None and exchange.group_name is not None


def _lazy(make: Callable, *arguments: Any) -> Callable:
    """A function that calls ``make(*arguments)`` on its first call and forwards every call to the result
    (``torch.compile`` takes a second to import: a run that loads its chunk from disk never pays it)."""
    made: list[Callable] = []

    def call(*args: Any) -> Any:
        if not made:
            made.append(make(*arguments))
        return made[0](*args)

    return call


def _stored_or(chunk: StoredChunk, fallback: Callable) -> Callable:
    """Call ``chunk``; if it cannot be exported, compiled or loaded, say so on the ``sapicore.compile``
    logger and use ``fallback`` (``torch.compile``) from then on."""
    use: list[Callable] = [chunk]

    def call(*args: Any) -> Any:
        if use[0] is chunk:
            try:
                return chunk(*args)
            except stored.ChunkFailed:
                raise
            except Exception as err:  # the chunk is pure, so running it again is safe
                first = str(err).splitlines()[0] if str(err) else ""
                COMPILE_LOG.info("could not keep the compiled chunk on disk (%s: %s)", type(err).__name__, first)
                use[0] = fallback
        return use[0](*args)

    return call


@attrs.frozen
class Plan:
    """A checked run: what to record (``names``), how long (``steps`` of ``dt`` ms, records ``every``
    steps, in chunks of ``chunk`` steps, from ``start_step``), how (``fast``, ``progress``), where the
    time axis of input tensors is (``input_axis``) and of records (``record_axis``, 1 when a lane
    axis comes first), the [`RunContext`][sapicore.functional.transforms.RunContext], and whether a state
    turning NaN raises (``strict``) or is quarantined (see [`FiniteWatch`][sapicore.functional.running.checks.FiniteWatch])."""

    names: tuple
    steps: int
    every: int
    dt: float
    chunk: int
    fast: Any
    progress: Any
    start_step: int
    input_axis: int
    record_axis: int
    context: RunContext
    strict: bool = True


def plan_run(
    model: Any,
    state: Any,
    inputs: Any,
    *,
    dt: Any,
    steps: int | None,
    duration: float | None,
    record: Sequence[str] | str | None,
    every: Any,
    fast: bool | str,
    chunk: int | None,
    progress: bool | None,
    start_step: int = 0,
    lanes: bool = False,
    input_axis: int = 0,
    sinks: Sequence[Any] = (),
    strict: bool = True,
) -> tuple[Any, Plan]:
    """Check a run's arguments once; return the model as the run uses it (propagation backends chosen)
    and the run's `Plan`."""
    dt, steps, names = checked_arguments(model, state, inputs, dt, steps, duration, record, every, input_axis, lanes)
    check_fast(fast)
    if not isinstance(strict, bool):
        raise TypeError(f"strict must be True or False, got {strict!r}")
    check_sinks(
        sinks, names, tuple(name for name in names if model.is_event(name)), lane_count(state) if lanes else None
    )
    if isinstance(start_step, bool) or not isinstance(start_step, int) or start_step < 0:
        raise ValueError(f"start_step must be an int >= 0, got {start_step!r}")
    if chunk is None:  # compiled chunks are unrolled: 20 steps compile in tens of seconds (lanes too: a
        target = 20 if fast else 1000  # 64-lane COBA-4k step costs 20-25% less in 20-step chunks than in 5-step ones)
        chunk = every * max(1, math.ceil(target / every))
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk <= 0 or chunk % every:
        raise ValueError(f"chunk must be a positive multiple of every={every}, got {chunk!r}")
    chunk = min(chunk, max(every, steps - steps % every))
    leaves = tree_leaves((model, state)) + _tensor_leaves(inputs)
    context = run_context(leaves, floating_leaf(state), lanes=lanes, compiled=bool(fast))
    if isinstance(model, Network):
        model = model.for_run(context)
    plan = Plan(
        names, steps, every, dt, chunk, fast, progress, start_step, input_axis, 1 if lanes else 0, context, strict
    )
    return model, plan


def _flushing() -> bool:
    """Whether this thread already reads and writes subnormal floats as zero."""
    return torch.tensor([1e-39], dtype=torch.float32).mul(2.0).item() == 0.0  # sync-ok: CPU, once per run


@contextlib.contextmanager
def flushing_subnormals(device: torch.device):
    """Subnormal floats (below 1.2e-38 in float32, 2.2e-308 in float64) taken as zero on the CPU while
    a run lasts (``torch.set_flush_denormal``), and the thread's setting restored after it.

    A variable that decays exponentially (a trace, a synaptic current, a conductance) passes through
    the subnormal range for hundreds of steps after its last input, and every arithmetic operation on a
    subnormal number costs the CPU tens of times more: STDP on a silent dense projection ran 4.5
    times slower (134 against 30 us per step). Results differ only where a value below 1.2e-38 would
    have mattered. GPUs (and CPUs without the setting) are left as they are.
    """
    if device.type != "cpu" or _flushing() or not torch.set_flush_denormal(True):
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def run_chunks(
    build: Callable[[int], Callable],
    model: Any,
    state: Any,
    inputs: Any,
    plan: Plan,
    sinks: Sequence[Any] = (),
    keep: bool = True,
    settings: tuple = (),
    checkpoint: tuple[Callable[[Any, int], Any], int] | None = None,
) -> tuple[Any, dict[str, torch.Tensor]]:
    """Run ``plan.steps`` steps in chunks built by ``build(n_steps)`` (whose code depends on nothing
    but the run's model, state, inputs, plan and ``settings``, numbers or names).

    ``checkpoint``: ``(save, every)``: ``save(state, step)`` is called at the end of each chunk in which
    the run's absolute step count reaches a multiple of ``every`` (but the last chunk), once the state
    is known finite and the sinks hold every record up to ``step`` (see ``simulate``).

    Chunks take their slice of an input tensor along ``plan.input_axis``; their records are gathered
    along ``plan.record_axis`` (into buffers allocated once; inside an outer ``torch.func`` transform,
    by concatenation, which transforms can follow) unless ``keep`` is False, and handed chunk by
    chunk to each sink (``begin(dt, every)``, ``write(records)``, ``end()``; on CUDA one chunk late,
    as CPU tensors, see [`sapicore.functional.running.feed`][sapicore.functional.running.feed]). After each chunk a
    [`FiniteWatch`][sapicore.functional.running.checks.FiniteWatch] raises ``FloatingPointError`` if a neuron or
    synapse variable became NaN or infinite (the sinks then hold the records up to that chunk).
    """
    steps, every, dt, chunk, fast, context = plan.steps, plan.every, plan.dt, plan.chunk, plan.fast, plan.context
    device, dtype, axis = context.device, context.dtype, plan.record_axis
    watch = FiniteWatch(device, dt, lanes=axis == 1, enabled=not context.nested, strict=plan.strict)
    full = watch.wrap(build(chunk))
    state = own_buffers(model, state)  # projections that add in place do so into the run's own copy
    # without a gradient, autograd bookkeeping is waste, and a compiled chunk (which guards on the
    # grad mode) then runs the same graph whether or not the caller is inside torch.no_grad()
    grad = torch.is_grad_enabled() and _gradient_possible(context, model, state, inputs)
    if fast:
        key = structure_key((model, state, inputs), chunk, plan.strict, axis)
        gloo = _gloo_in_graph(model)
        kept = _stored_chunk(full, key, plan, grad, (stored.layout((model, inputs)), *settings), unlocked=gloo)
        if kept is None and gloo:
            raise NotImplementedError(
                "fast=True over gloo runs chunks compiled ahead of time and kept on disk (their graphs wait for the "
                "all-gathers without holding Python's lock), which this run cannot keep (SAPICORE_COMPILE_CACHE=off, "
                "a fast= backend name, a gradient, or inputs given as a function of time); run it with fast=False"
            )
        # over gloo, torch.compile's graphs would hold the lock: a package that cannot be made falls back to the loop
        compile_it = _no_unlocked_compile if gloo else _lazy(compile_chunk, full, fast, device, key)
        compiled = _with_fallback(compile_it, full, str(fast), chunk)
        full = compiled if kept is None else _stored_or(kept, compiled)
    n_records = steps // every
    partitioned = getattr(model, "exchange", None) is not None
    time_major = bool(_tensor_leaves(inputs))
    rerun = Rerun(model, state, device, keep_outputs=bool(fast) and device.type == "cuda", nested=context.nested)
    if fast and device.type == "cuda" and not context.nested:
        mark_static(model, state)
    buffers: dict[str, Any] = {}
    show = plan.progress if plan.progress is not None else (steps >= 100_000 and sys.stderr.isatty())
    bar = tqdm(total=steps, unit="step", disable=not show)
    done = written = 0
    feed = SinkFeed(sinks, device)
    feed.begin(dt, every)
    with torch.set_grad_enabled(grad), flushing_subnormals(device):
        try:
            while done < steps:
                n = min(chunk, steps - done)
                run = full if n == chunk else watch.wrap(build(n))
                xs = None
                if time_major:
                    xs = tree_map(
                        lambda leaf: leaf.narrow(plan.input_axis, done, n) if isinstance(leaf, torch.Tensor) else leaf,
                        inputs,
                    )
                t0 = torch.full((), (plan.start_step + done) * dt, dtype=dtype, device=device)  # no host copy
                before = rerun.before(state)
                state, records, total = run(model, state, xs, t0)
                if rerun.needed(state):
                    state, records, total = rerun(watch.wrap(build(n)), before, xs, t0)
                if partitioned:  # one rank's share: the whole network's records, on every rank
                    records = gather_records(model, records)
                first, end = plan.start_step + done, plan.start_step + done + n
                if plan.strict:
                    feed.put(records)
                    watch.check(total, state, first, end)
                else:
                    if partitioned and total is not None:  # the ranks quarantine the same lanes
                        total = model.exchange.agree(total)
                    records = watch.screen(total, records, first, end)
                    feed.put(records)
                if checkpoint is not None and end // checkpoint[1] > first // checkpoint[1] and done + n < steps:
                    watch.flush(state)  # CUDA: the chunk's own check, which is otherwise read a chunk late
                    feed.flush()
                    checkpoint[0](state, end)
                for name, values in records.items() if keep else ():
                    if context.nested:  # functional: a list of chunks, concatenated at the end
                        buffers.setdefault(name, []).append(values)
                        continue
                    if name not in buffers:
                        shape = list(values.shape)
                        shape[axis] = n_records
                        buffers[name] = torch.empty(shape, dtype=values.dtype, device=values.device)
                    buffers[name].narrow(axis, written, values.shape[axis]).copy_(values)
                written += n // every
                done += n
                bar.update(n)
            feed.flush()
            watch.flush(state)
        except BaseException:
            bar.close()
            with contextlib.suppress(Exception):  # the sinks' files are closed; the run's failure is the one to tell
                feed.end()
            raise
        bar.close()
        feed.end()
    if context.nested:
        buffers = {name: torch.cat(parts, dim=axis) for name, parts in buffers.items()}
    buffers["t"] = (plan.start_step + torch.arange(1, n_records + 1, dtype=dtype, device=device) * every) * dt
    if not plan.strict:
        lanes = lane_count(state) if axis == 1 else 1
        buffers["diverged"] = watch.diverged(lanes)
        watch.warn(lanes)
    rerun.report(math.ceil(steps / chunk))
    if not context.nested:
        report_overflow(model, state)
    return state, buffers


def checked_arguments(
    model: Any,
    state: Any,
    inputs: Any,
    dt: Any,
    steps: int | None,
    duration: float | None,
    record: Sequence[str] | str | None,
    every: Any,
    time_dim: int = 0,
    lanes: bool = False,
) -> tuple[float, int, tuple[str, ...]]:
    """Check what ``simulate`` and ``sweep`` are given; return (dt, steps, record names)."""
    dt = check_dt(dt)
    if isinstance(model, Network) and model.dt is not None:
        if not math.isclose(model.dt, dt, rel_tol=1e-9):
            raise ValueError(f"the network's projections were built for dt={model.dt} ms, not dt={dt} ms; rebuild them")
        dt = model.dt
    floating = [leaf for leaf in tree_leaves(state) if isinstance(leaf, torch.Tensor) and leaf.is_floating_point()]
    check_inputs(inputs, floating[0].device if floating else None)
    if not isinstance(model, Network):
        check_model(model)
    validate(model)
    check_fits(model, state, lanes)
    check_consistent(model, state)
    for each in (
        [population.model for population in model.populations.values()] if isinstance(model, Network) else [model]
    ):
        if callable(getattr(each, "check_step", None)):
            each.check_step(dt)
    check_state(state)
    steps = resolve_steps(inputs, steps, duration, dt, time_dim=time_dim)
    if isinstance(every, bool) or not isinstance(every, int) or every <= 0:
        raise ValueError(f"every must be a positive int, got {every!r}")
    names = _record_names(model, record)
    if names and every > steps:
        raise ValueError(f"every={every} steps is longer than the run ({steps} steps): no record would be taken")
    return dt, steps, names


def simulate(
    model: Any,
    state: Any,
    inputs: Any = None,
    *,
    dt: float,
    steps: int | None = None,
    duration: float | None = None,
    record: Sequence[str] | str | None = None,
    every: int = 1,
    fast: bool | str = False,
    chunk: int | None = None,
    progress: bool | None = None,
    sinks: Sequence[Any] = (),
    keep: bool = True,
    start_step: int = 0,
    strict: bool = True,
    checkpoint: Callable[[Any, int], Any] | None = None,
    checkpoint_every: int | None = None,
) -> tuple[Any, dict[str, torch.Tensor]]:
    """Run ``model`` from ``state`` for a number of steps of ``dt`` ms; return the final state and records.

    Args:
        model: a neuron model (parameters pytree) with ``step(state, input, dt)``.
        state: its state, e.g. ``model.init_state(shape)``.
        inputs: a time-major tensor ``(steps, *population_shape)`` (or any shape that broadcasts to
            the population per step), a function ``f(t)`` of the step's start time ``t`` (0-d tensor,
            ms) returning the input, a constant number, or ``None`` (no input). For a network, a dict
            with one entry per population of such tensors or numbers.
        dt: time step (ms), > 0.
        steps: run length as a number of steps (or give ``duration``); implied by an input tensor.
        duration: run length in ms (``round(duration / dt)`` steps), instead of ``steps``.
        record: names of state variables and of the output (e.g. ``("v", "spikes")``); default the
            output only. See ``model.record_names()``.
        every: record every ``every`` steps; event outputs (spikes) are summed over each window.
        fast: ``False`` for the reference Python loop; ``True`` to run compiled chunks
            (``torch.compile``; CUDA graphs on a GPU), falling back to the loop with one warning if
            compilation fails; or the name of a ``torch.compile`` backend.
        chunk: steps per chunk (a multiple of ``every``); default 1,000 for the loop, 20 when fast.
        progress: show a tqdm progress bar; default: for runs of 100,000 steps or more on a terminal.
        sinks: a list of objects that receive the records chunk by chunk, e.g.
            ``sapicore.logging.nix.NixRecordSink`` or ``sapicore.logging.tensorboard.TensorBoardSink``:
            methods ``begin(dt, every)``, ``write(records)``, ``end()``, and optionally
            ``check(names, events)``, called before the run with the recorded names (and those that
            are events), which raises if the sink needs a record the run does not take.
        keep: also return the records in memory (False keeps memory bounded on long runs).
        start_step: steps already simulated before ``state`` (a resumed run): input functions and
            record times continue from ``start_step * dt``.
        strict: ``True`` (default) raises ``FloatingPointError`` when the state turns NaN or infinite;
            ``False`` stops the run's records there instead (NaN from that chunk on), warns once
            ([`DivergenceWarning`][sapicore.functional.running.checks.DivergenceWarning]) and returns
            ``records["diverged"]``, the time (ms) at the end of that chunk (NaN if it never happened).
        checkpoint: a function ``checkpoint(state, step)`` called during the run, every
            ``checkpoint_every`` steps, e.g. [`Checkpoints`][sapicore.checkpoint.Checkpoints], which
            saves what a killed run needs to go on (``step`` counts from the run's origin, as
            ``start_step`` does). It is called at the end of the chunk in which the step count
            reaches each multiple of ``checkpoint_every`` (so at most ``chunk - 1`` steps later),
            after the state was checked finite and every record up to ``step`` reached the sinks;
            not at the run's end (the returned state is that checkpoint).
        checkpoint_every: steps between checkpoints (a positive int; with ``checkpoint``).

    Returns:
        ``(final_state, records)``: ``records[name]`` has shape ``(steps // every, *shape)`` and
        ``records["t"]`` holds the time (ms) at the end of each recorded step.

    Raises:
        FloatingPointError: a neuron or synapse variable became NaN or infinite (checked once per
            chunk; the message names the variable and the chunk's steps), unless ``strict=False``.
    """
    saving = _checkpointing(checkpoint, checkpoint_every)
    exchange = getattr(model, "exchange", None)  # one rank's share of a network (see running.partition)
    if exchange is not None:
        inputs = local_inputs(model, inputs)
    model, plan = plan_run(
        model,
        state,
        inputs,
        dt=dt,
        steps=steps,
        duration=duration,
        record=record,
        every=every,
        fast=fast,
        chunk=chunk,
        progress=progress,
        start_step=start_step,
        sinks=sinks,
        strict=strict,
    )
    if exchange is not None:
        open_exchange(exchange, plan, model)
    trial_step(model, state, first_input(inputs, floating_leaf(state)), plan.dt, plan.context.device)
    build = lambda n: make_chunk(model, plan.names, n, plan.every, plan.dt, inputs)  # noqa: E731
    if saving is not None and plan.context.nested:
        raise ValueError("checkpoint= saves states during a run, which a run inside a torch.func transform cannot do")
    return run_chunks(build, model, state, inputs, plan, sinks, keep, checkpoint=saving)


def _checkpointing(checkpoint: Any, every: Any) -> tuple[Callable[[Any, int], Any], int] | None:
    """``simulate``'s ``(checkpoint, checkpoint_every)``, checked: None, or both."""
    if checkpoint is None and every is None:
        return None
    if checkpoint is None or not callable(checkpoint):
        raise TypeError(
            "checkpoint must be a function checkpoint(state, step), e.g. sapicore.checkpoint.Checkpoints(path, model), "
            f"given with checkpoint_every; got {type(checkpoint).__name__}"
        )
    if isinstance(every, bool) or not isinstance(every, int) or every <= 0:
        raise ValueError(f"checkpoint_every must be a positive number of steps, got {every!r}")
    return checkpoint, every


def open_exchange(exchange: Any, plan: Plan, network: Any) -> str | None:
    """Open a partitioned run's shared-memory channel (every rank runs this; compiled chunks need it)
    and check that the ranks' unkeyed random draws differ. None when the channel is open, else why
    not (then the exchange goes through gloo)."""
    on_cpu = plan.context.device.type == "cpu"
    why = exchange.connect() if on_cpu else "the network is not on the CPU"
    exchange.check_streams(network)
    if plan.fast and not on_cpu:
        raise NotImplementedError(
            "fast=True runs a partitioned network's exchange inside its compiled chunks on CPUs only (shared memory, "
            f"or gloo between machines); the network is on {plan.context.device}: run it with fast=False"
        )
    if plan.fast and exchange.channel is None:
        exchange.for_compiled()
    return why if exchange.channel is None else None
