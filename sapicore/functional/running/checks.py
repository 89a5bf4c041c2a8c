"""What the steppers check: once at entry (inputs, states, sinks) and once per chunk (NaN watch).

Entry checks read every value once, before the first step. A state must be a state *of the model
it is given to*: `check_fits` compares it, class by class and shape by shape, with the state
the model would build (on the ``meta`` device, so nothing is allocated), and names the first field
that differs. During a run `FiniteWatch` checks once per chunk, not per step, that no neuron or
synapse variable has become NaN or infinite, and names the variable, the steps and the lane.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import attrs
import torch
import torch.utils._pytree as _pytree

from ..network import Network, NetworkState
from ..pytree import check_values_finite, finite, is_concrete, to, tree_leaves, tree_map
from .feed import PerLane

__all__ = ["check_inputs", "check_state", "check_fits", "check_sinks", "FiniteWatch", "DivergenceWarning"]


def check_inputs(inputs: Any, device: torch.device | None = None) -> None:
    """Raise for inputs that are not tensors, numbers, a function or None, that are not finite, or
    (given the state's ``device``) that lie on another device.

    Inputs may be a dict (e.g. one entry per population) of time-major tensors and numbers.
    """
    if inputs is None or callable(inputs):
        return
    for leaf in tree_leaves(inputs):
        if isinstance(leaf, numbers.Real) and not isinstance(leaf, bool):
            if not math.isfinite(leaf):
                raise ValueError(f"a constant input must be finite, got {leaf}")
        elif isinstance(leaf, torch.Tensor):
            if device is not None and is_concrete(leaf) and leaf.device != device:
                raise ValueError(
                    f"an input tensor is on {leaf.device} but the state is on {device}; move it with .to('{device}')"
                )
            check_values_finite("inputs", leaf)
        else:
            raise TypeError(
                "inputs must be a time-major tensor, a function of time t (ms), a number, None, or a dict of "
                f"tensors and numbers; got {type(leaf).__name__}"
            )


def check_state(state: Any) -> None:
    """Raise if a state holds NaN or infinite values (the run would only spread them)."""
    for index, leaf in enumerate(_pytree.tree_leaves(state)):
        if isinstance(leaf, torch.Tensor) and not finite(leaf):
            path = _pytree.tree_flatten_with_path(state)[0][index][0]  # its name, for the message
            check_values_finite(f"state{_pytree.keystr(path)}", leaf)


def _expected_state(model: Any, state: Any, lanes: bool) -> Any:
    """The state ``model`` builds itself, on the meta device (one lane of it when ``lanes``)."""
    model = to(model, device="meta")
    if lanes:
        model = tree_map(lambda leaf: leaf[0] if isinstance(leaf, torch.Tensor) else leaf, model)
    floating = next(leaf for leaf in tree_leaves(state) if isinstance(leaf, torch.Tensor) and leaf.is_floating_point())
    if isinstance(model, Network):
        return model.init_state(device="meta", dtype=floating.dtype)
    shape = tuple(floating.shape[1:] if lanes else floating.shape)
    return model.init_state(shape, device="meta", dtype=floating.dtype)


def _mismatch(expected: Any, given: Any, path: str, lanes: bool) -> str | None:
    """How ``given`` differs from ``expected`` at the first place it does (None if it fits)."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(given, torch.Tensor):
            return f"state{path} is a {type(given).__name__}, not a tensor"
        shape = tuple(given.shape[1:] if lanes else given.shape)
        if shape != tuple(expected.shape):
            return f"state{path} has shape {shape} where {tuple(expected.shape)} is needed"
        if given.is_floating_point() != expected.is_floating_point():
            return f"state{path} has dtype {given.dtype} where {expected.dtype} is needed"
        return None
    if type(given) is not type(expected):
        return f"state{path} is of class {type(given).__name__} where {type(expected).__name__} is needed"
    if isinstance(expected, dict):
        if set(given) != set(expected):
            return f"state{path} holds {sorted(given)} where {sorted(expected)} are needed"
        children = [(f"{path}[{key!r}]", expected[key], given[key]) for key in expected]
    elif attrs.has(type(expected)):
        children = [
            (f"{path}.{f.name}", getattr(expected, f.name), getattr(given, f.name))
            for f in attrs.fields(type(expected))
        ]
    else:
        return None
    for child_path, want, have in children:
        found = _mismatch(want, have, child_path, lanes)
        if found is not None:
            return found
    return None


def _other_wiring(network: Network, state: Any, lanes: bool) -> str | None:
    """Which projection's state was built for other synapses (targets, delays or dt) than the
    network's, though its shapes fit (None if every one matches)."""
    for name, projection in network.projections.items():
        given = state.projections[name].wiring
        if given is None:
            continue
        expected = projection.lane_wiring() if lanes else projection.wiring()
        if not torch.equal(expected.to(given.device).expand_as(given), given):
            return (
                f"state.projections[{name!r}] was built for other synapses (which pairs are connected, their "
                "delays or dt differ from this network's, though the shapes agree)"
            )
    return None


def check_fits(model: Any, state: Any, lanes: bool = False) -> None:
    """Raise if ``state`` is not a state of ``model`` (another model class, another network, other
    sizes or delay buffers); with ``lanes`` every tensor carries a leading lane axis."""
    if not attrs.has(type(state)):
        raise TypeError(
            f"state must be the model's state, e.g. model.init_state(shape) (network.init_state() for a "
            f"network), got {type(state).__name__}"
        )
    leaves = [leaf for leaf in tree_leaves((model, state)) if isinstance(leaf, torch.Tensor)]
    if not all(is_concrete(leaf) for leaf in leaves):
        return  # inside vmap, grad or compile: the outer call checked
    expected = _expected_state(model, state, lanes)
    found = _mismatch(expected, state, "", lanes)
    if found is None and isinstance(model, Network):
        found = _other_wiring(model, state, lanes)
    if found is not None:
        if isinstance(model, Network):
            origin, build = "another network (other populations, sizes, projections or delays)", "network.init_state()"
        else:
            origin, build = f"another model than this {type(model).__name__}", "model.init_state(shape)"
        raise ValueError(f"{found}: the state comes from {origin}; build it with {build}")


def check_sinks(sinks: Any, names: tuple[str, ...], events: tuple[str, ...], lanes: int | None = None) -> None:
    """Raise unless ``sinks`` is a list of objects with ``begin``, ``write`` and ``end`` whose own
    ``check(names, events)`` (where they have one) accepts what the run records; a
    [`PerLane`][sapicore.functional.running.feed.PerLane] needs a sweep (``lanes``, its number of lanes) with as
    many lanes as it has lists of sinks."""
    if not isinstance(sinks, (list, tuple)):
        raise TypeError(f"sinks must be a list of sinks, got {type(sinks).__name__}; wrap one sink in a list")
    for index, sink in enumerate(sinks):
        missing = [method for method in ("begin", "write", "end") if not callable(getattr(sink, method, None))]
        if missing:
            raise TypeError(
                f"sinks[{index}] ({type(sink).__name__}) is not a sink: it lacks {', '.join(missing)}; "
                "see sapicore.logging.nix.NixRecordSink"
            )
        if isinstance(sink, PerLane):
            if lanes is None:
                raise TypeError(
                    f"sinks[{index}] is a PerLane, which gives each lane of a sweep its own sinks; this run has no "
                    "lanes: pass the sinks themselves"
                )
            if len(sink.lanes) != lanes:
                raise ValueError(
                    f"sinks[{index}] (PerLane) holds sinks for {len(sink.lanes)} lanes but the sweep has {lanes}"
                )
            for lane_sinks in sink.lanes:  # each lane's sinks receive what a single run's would
                check_sinks(lane_sinks, names, events)
        elif callable(getattr(sink, "check", None)):
            sink.check(names, events)


def _watched(state: Any) -> list[tuple[str, torch.Tensor]]:
    """(name, tensor) of the floating tensors the NaN watch reads: a network's neuron and synapse
    states (any NaN that matters reaches them), every floating tensor of another model's state."""
    if isinstance(state, NetworkState):
        parts = {f".populations[{name!r}]": pop for name, pop in state.populations.items()}
        parts |= {f".projections[{name!r}].synapse": proj.synapse for name, proj in state.projections.items()}
    else:
        parts = {"": state}
    watched = []
    for prefix, tree in parts.items():
        if attrs.has(type(tree)):  # the common case, without a generic (slower) flatten
            items = [(f".{field.name}", getattr(tree, field.name)) for field in attrs.fields(type(tree))]
        else:
            pairs, _ = _pytree.tree_flatten_with_path(tree)
            items = [(_pytree.keystr(path), leaf) for path, leaf in pairs]
        watched += [
            (f"state{prefix}{key}", leaf)
            for key, leaf in items
            if isinstance(leaf, torch.Tensor) and leaf.is_floating_point()
        ]
    return watched


class DivergenceWarning(RuntimeWarning):
    """Some lanes of a non-strict run turned NaN or infinite and were stopped (see `FiniteWatch`)."""


class FiniteWatch:
    """After each chunk, check that the neuron and synapse variables are still finite.

    A chunk costs one sum per variable and lane (a NaN or infinity makes it non-finite; only then are
    the variables looked at one by one, so a sum that merely overflows raises nothing). The chunk
    computes those sums itself (`wrap`): compiled, they fuse with the chunk's last step and read
    the state while it is still in cache.

    ``strict`` (single runs, ``sweep(strict=True)``): ``check`` raises ``FloatingPointError`` naming
    the variable, the chunk's steps and (with lanes) the lane. On the CPU the check is immediate; on
    CUDA the sum is copied to the host on the side and read after the next chunk has been launched, so
    the GPU never waits.

    Not ``strict`` (the default of ``sweep``): a lane whose state is no longer finite is *quarantined*:
    `screen` sets its records to NaN from the chunk where it happened to the end of the run,
    while the other lanes go on untouched (lanes never mix, so they equal running them alone).
    `diverged` gives the time by which each lane had diverged, `warn` one warning
    listing them. On CUDA the masking runs on the device, with no wait; the host learns which lanes
    diverged one chunk later.
    """

    def __init__(self, device: torch.device, dt: float, lanes: bool, enabled: bool, strict: bool = True) -> None:
        self.device, self.dt, self.lanes, self.enabled, self.strict = device, dt, lanes, enabled, strict
        self.waiting: tuple[Any, torch.Tensor, int, int] | None = None  # (copy done, host sum or flags, steps)
        self.dead: torch.Tensor | None = None  # quarantined lanes, on the device (non-strict)
        self.windows: dict[int, tuple[int, int]] = {}  # lane -> (first step, end step) of its chunk

    def wrap(self, chunk: Any) -> Any:
        """``chunk`` (``(model, state, xs, t0) -> (state, records)``) also returning the sum that
        `check` reads (one per lane when lanes may be quarantined), or None when the watch is off."""
        per_lane = self.lanes and not self.strict

        def watched(model: Any, state: Any, xs: Any, t0: torch.Tensor) -> tuple[Any, dict, Any]:
            state, records = chunk(model, state, xs, t0)
            if not self.enabled:
                return state, records, None
            total = None
            for _, leaf in _watched(state):  # a sum per variable: no copy of the state
                leaf = leaf.detach()
                part = leaf.reshape(leaf.shape[0], -1).sum(1) if per_lane else leaf.sum()
                total = part if total is None else total + part
            return state, records, total

        return watched

    def check(self, total: torch.Tensor | None, state: Any, first_step: int, end_step: int) -> None:
        """(strict) Check the sums ``total`` of the state after steps ``first_step`` to
        ``end_step - 1`` (0-based, absolute), raising ``FloatingPointError`` if one is not finite."""
        if total is None:
            return
        if self.device.type != "cuda":
            if not math.isfinite(total.item()):  # sync-ok: once per chunk, after the chunk (see the docstring)
                self._raise(state, first_step, end_step)
            return
        self.flush(state)
        host = total.to("cpu", non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        self.waiting = (done, host, first_step, end_step)

    def screen(self, total: torch.Tensor | None, records: dict, first_step: int, end_step: int) -> dict:
        """(not strict) Quarantine the lanes whose sums in ``total`` are not finite; return ``records``
        with the quarantined lanes' values set to NaN."""
        if total is None:
            return records
        bad = ~torch.isfinite(total)
        if self.device.type != "cuda":
            if self.dead is None and not bool(bad.any()):  # sync-ok: once per chunk, as the strict check
                return records
            self.dead = bad if self.dead is None else self.dead | bad
            self._learn(self.dead, first_step, end_step)
        else:
            self.dead = bad if self.dead is None else self.dead | bad
            self.flush(None)
            host = self.dead.to("cpu", non_blocking=True)
            done = torch.cuda.Event()
            done.record()
            self.waiting = (done, host, first_step, end_step)
        return {name: self._masked(values) for name, values in records.items()}

    def _masked(self, values: torch.Tensor) -> torch.Tensor:
        if not values.is_floating_point():
            return values
        dead = self.dead.reshape(self.dead.shape + (1,) * (values.dim() - self.dead.dim()))
        return values.masked_fill(dead, math.nan)

    def _learn(self, dead: torch.Tensor, first_step: int, end_step: int) -> None:
        """Note the chunk of each lane that ``dead`` (host or CPU flags) shows quarantined for the first time."""
        for lane in torch.nonzero(dead.reshape(-1)).reshape(-1).tolist():  # sync-ok: flags already on the host
            self.windows.setdefault(lane, (first_step, end_step))

    def flush(self, state: Any) -> None:
        """Read what the chunk still in transit (CUDA) copied to the host: its sum (strict: raising if
        it went bad) or its quarantine flags."""
        if self.waiting is None:
            return
        done, host, first_step, end_step = self.waiting
        self.waiting = None
        done.synchronize()  # sync-ok: the previous chunk's copy, while the GPU runs the next chunk
        if not self.strict:
            self._learn(host, first_step, end_step)
        elif not math.isfinite(host.item()):  # sync-ok: a host tensor, already copied
            self._raise(state, first_step, end_step)

    def diverged(self, count: int) -> torch.Tensor:
        """For each of ``count`` lanes (a 0-d tensor for a run without lanes), the time (ms) at the end
        of the chunk in which it was quarantined, NaN for lanes that stayed finite."""
        times = torch.full((count,), math.nan, dtype=torch.float64)
        for lane, (_, end_step) in self.windows.items():
            times[lane] = end_step * self.dt
        return times if self.lanes else times[0]

    def warn(self, count: int) -> None:
        """One warning naming every quarantined lane and its chunk, if any."""
        if not self.windows:
            return
        windows = {
            lane: f"steps {first + 1} to {end} (t = {first * self.dt:g} to {end * self.dt:g} ms)"
            for lane, (first, end) in sorted(self.windows.items())
        }
        if self.lanes:
            listed = "; ".join(f"lane {lane}: {window}" for lane, window in windows.items())
            message = (
                f"{len(windows)} of {count} lanes turned NaN or infinite and were stopped ({listed}); their records "
                "from that chunk on are NaN, the other lanes ran on unchanged (strict=True raises instead)"
            )
        else:
            message = (
                f"the state turned NaN or infinite during {windows[0]}; the records from that chunk on are NaN "
                "(strict=True raises instead)"
            )
        warnings.warn(message, DivergenceWarning, stacklevel=4)

    def _raise(self, state: Any, first_step: int, end_step: int) -> None:
        """Name the first non-finite variable (and lane) of ``state``, if any, and raise."""
        for name, leaf in _watched(state):
            bad = ~torch.isfinite(leaf.detach())
            if not bool(bad.any()):  # sync-ok: only when a chunk's sum was not finite
                continue
            lane = ""
            if self.lanes:
                lane = f" in lane {int(torch.nonzero(bad.reshape(bad.shape[0], -1).any(1))[0])}"  # sync-ok: as above
            raise FloatingPointError(
                f"{name}{lane} became NaN or infinite during steps {first_step + 1} to {end_step} "
                f"(t = {first_step * self.dt:g} to {end_step * self.dt:g} ms); check the inputs, drives, weights "
                "and parameters, or a time step too large for the model"
            )
