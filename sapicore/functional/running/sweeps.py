"""Parameter sweeps: many parameter sets of one model run as vmap lanes in one call.

Build lanes with `grid` (cartesian product) or `zipped` (values side by side), or stack
models yourself with [`sapicore.functional.stack`][sapicore.functional.stack]; then `sweep` runs them all at once with
``torch.func.vmap``. Each lane's result equals running that parameter set alone with ``simulate``.

Randomness inside a step (noise, Poisson inputs) follows ``vmap(randomness=...)``: ``"different"``
(default) draws independently per lane, ``"same"`` draws once for all lanes; seed with
``torch.manual_seed`` before the call for a reproducible run.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import attrs
import torch

from ..models.neurons.base import NeuronModel
from ..pytree import lane_count, stack, tree_leaves, tree_map, validate
from .partition import local_inputs
from .stepper import first_input, floating_leaf, make_chunk, open_exchange, plan_run, run_chunks, trial_step

__all__ = ["sweep", "grid", "zipped", "init_lanes"]


def _value_lists(function: str, values: dict[str, Any]) -> dict[str, list]:
    """Each parameter's values as a list, refusing a single value where a list belongs."""
    if not values:
        raise ValueError(f"{function} needs at least one parameter with a list of values")
    lists = {}
    for name, given in values.items():
        if isinstance(given, (str, bytes)) or not isinstance(given, Sequence) and not isinstance(given, torch.Tensor):
            raise TypeError(f"{function} needs a list of values for {name}, got {given!r}; write {name}=[{given!r}]")
        lists[name] = list(given)
        if not lists[name]:
            raise ValueError(f"{function} got an empty list of values for {name}")
    return lists


def _lanes_from(model: Any, labels: list[dict[str, Any]]) -> Any:
    fields = {field.name for field in attrs.fields(type(model))}
    for name in labels[0] if labels else ():
        if name not in fields:
            raise ValueError(
                f"{type(model).__name__} has no parameter {name!r}; its fields are: {', '.join(sorted(fields))}"
            )
    return stack([attrs.evolve(model, **label) for label in labels])


def grid(model: Any, **values: Sequence[Any]) -> tuple[Any, list[dict[str, Any]]]:
    """Lanes for every combination of the given parameter values (cartesian product).

    ``grid(lif, tau_mem=[10, 20], v_thresh=[-50, -45])`` gives 4 lanes and their labels
    ``[{"tau_mem": 10, "v_thresh": -50}, ...]`` (first parameter varies slowest).
    """
    lists = _value_lists("grid", values)
    labels = [dict(zip(lists, combo)) for combo in itertools.product(*lists.values())]
    return _lanes_from(model, labels), labels


def zipped(model: Any, **values: Sequence[Any]) -> tuple[Any, list[dict[str, Any]]]:
    """Lanes whose i-th lane takes the i-th value of every given parameter (lists of equal length)."""
    lists = _value_lists("zipped", values)
    lengths = {name: len(v) for name, v in lists.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"zipped needs value lists of one length, got lengths {lengths}")
    labels = [dict(zip(lists, combo)) for combo in zip(*lists.values())]
    return _lanes_from(model, labels), labels


def init_lanes(lanes: Any, *args: Any, **kwargs: Any) -> Any:
    """The initial states of every lane (leading lane axis), each from its own parameters.

    Arguments are passed to the model's ``init_state`` (a population shape for a neuron model,
    nothing for a network).
    """
    return torch.func.vmap(lambda model: model.init_state(*args, **kwargs))(lanes)


def _lane(tree: Any, index: int) -> Any:
    return tree_map(lambda leaf: leaf[index] if isinstance(leaf, torch.Tensor) else leaf, tree)


def sweep(
    lanes: Any,
    state: Any = None,
    inputs: Any = None,
    *,
    dt: float,
    shape: int | Sequence[int] | None = None,
    lane_inputs: bool = False,
    randomness: str = "different",
    steps: int | None = None,
    duration: float | None = None,
    record: Sequence[str] | str | None = None,
    every: int = 1,
    fast: bool | str = False,
    chunk: int | None = None,
    progress: bool | None = None,
    sinks: Sequence[Any] = (),
    keep: bool = True,
    strict: bool = False,
) -> tuple[Any, dict[str, torch.Tensor]]:
    """Run B parameter lanes of one model in one vmapped call; like ``simulate``, with a lane axis.

    Args:
        lanes: a stacked model (from `grid`, `zipped` or ``stack``), B lanes; or, on each rank of a
            partitioned run, the stacked shares of B networks partitioned alike
            (``stack([partition(network) for network in networks])``): every step, the lanes' outputs
            travel in one exchange through shared memory (ranks of one machine; not over gloo).
        state: a batched state with a leading lane axis (from `init_lanes` or a previous sweep),
            or ``None`` to start every lane from its own ``init_state(shape)``.
        inputs: as for ``simulate`` and shared by all lanes; with ``lane_inputs=True`` a tensor
            ``(B, steps, *population_shape)`` holding each lane's own inputs.
        shape: population shape, needed when ``state`` is ``None`` for a neuron model (a network
            knows its sizes).
        randomness: ``vmap``'s randomness mode for random ops inside steps ('different', 'same', 'error').
        dt: as for ``simulate`` (and ``steps``, ``duration``, ``record``, ``every``, ``fast``,
            ``chunk``, ``progress``).
        sinks: as for ``simulate``; they receive records with the lane axis first
            ``(B, records, ...)``; [`PerLane`][sapicore.functional.running.feed.PerLane] gives each lane its own sinks.
        keep: also return the records in memory (as for ``simulate``).
        strict: ``False`` (default) quarantines a lane whose state turns NaN or infinite: its records
            are NaN from the chunk where that happened to the end, the other lanes run on and equal
            running them alone, and one [`DivergenceWarning`][sapicore.functional.running.checks.DivergenceWarning]
            lists the diverged lanes and their steps. ``True`` raises ``FloatingPointError`` instead,
            as ``simulate`` does.

    Returns:
        ``(final_states, records)`` with a leading lane axis: ``records[name]`` has shape
        ``(B, steps // every, *shape)``; ``records["t"]`` (ms) has shape ``(steps // every,)``; with
        ``strict=False``, ``records["diverged"]`` (B,) holds the time (ms) at the end of the chunk
        in which each lane diverged, NaN for lanes that stayed finite.
    """
    exchange = getattr(lanes, "exchange", None)  # one rank's share (running.partition)
    if exchange is not None:
        inputs = local_inputs(lanes, inputs)
    n_lanes = lane_count(lanes)
    if state is None:
        if shape is None and isinstance(lanes, NeuronModel):
            raise ValueError("sweep needs a batched state or shape= to build each lane's initial state")
        validate(lanes)
        state = init_lanes(lanes) if shape is None else init_lanes(lanes, shape)
    else:
        leaves = [leaf for leaf in tree_leaves(state) if isinstance(leaf, torch.Tensor)]
        if any(leaf.dim() == 0 or leaf.shape[0] != n_lanes for leaf in leaves):
            raise ValueError(
                f"state must carry a leading lane axis of size {n_lanes} (use init_lanes(lanes, shape) or "
                "pass state=None with shape=)"
            )
    if lane_inputs and not isinstance(inputs, torch.Tensor):
        raise ValueError("lane_inputs=True needs an input tensor of shape (lanes, steps, *population_shape)")
    if lane_inputs and inputs.shape[0] != n_lanes:
        raise ValueError(f"lane inputs have {inputs.shape[0]} lanes along axis 0 but the sweep has {n_lanes}")
    lanes, plan = plan_run(
        lanes,
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
        lanes=True,
        input_axis=1 if lane_inputs else 0,
        sinks=sinks,
        strict=strict,
    )
    if exchange is not None:
        why = open_exchange(exchange, plan, lanes)
        if exchange.channel is None:  # vmap cannot batch a gloo collective
            raise NotImplementedError(
                "lanes of a partitioned network exchange through shared memory between the ranks of one machine, "
                f"which this run cannot use ({why or 'transport=gloo'}); run each lane's share with "
                "simulate, or sweep the whole network in one process"
            )
    first_model, first_state = _lane(lanes, 0), _lane(state, 0)
    reference = floating_leaf(first_state)
    trial_step(first_model, first_state, first_input(inputs, reference, lane_inputs), plan.dt, reference.device)
    input_dim = 0 if lane_inputs else None

    def build(n: int) -> Any:
        chunk_fn = make_chunk(lanes, plan.names, n, plan.every, plan.dt, inputs)
        return torch.func.vmap(chunk_fn, in_dims=(0, 0, input_dim, None), randomness=randomness)

    return run_chunks(build, lanes, state, inputs, plan, sinks, keep, settings=(randomness, input_dim))
