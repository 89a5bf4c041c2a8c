"""From PyNN's objects to a functional network, and a run of it.

``advance(state, steps)`` builds ``sapicore.functional.Network`` from the populations and
projections as they are now (parameters, weights, delays), carries the state of the previous run
into it, runs it with ``sapicore.functional.simulate`` and hands spikes and samples to the
recorders. Populations become ``p0, p1, ...``; a projection becomes one sparse projection per pair
of (source, target) populations it connects, ``j<k>_<pre>_<post>``.

Timing is NEST's: a spike emitted in the step that ends at t reaches its target's synapse at
t + delay (delays rounded to the step), and a current source's value at a step's start time acts
over that step.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pyNN import common

import sapicore.functional as sf
from sapicore.functional.running.events import to_events

BLOCK_VALUES = 1 << 24  # input values (steps x neurons) made at once: a long run goes in blocks of
# whole thousands of steps (whole chunks of the reference loop and of compiled runs)


@dataclass
class Part:
    """One functional projection of a PyNN projection: the connections it holds (indices into the
    PyNN arrays), their slots in its table, and the weight scale of their targets."""

    projection: Any
    name: str
    pre: int
    post: int
    connections: np.ndarray
    slots: np.ndarray
    scale: np.ndarray | None


def _tensor(values: Any, like: dict) -> torch.Tensor:
    return torch.as_tensor(np.array(values, dtype=float), **like)


def _parameters(population: Any, like: dict) -> dict:
    """A population's parameters: a float where all its neurons share the value (the models' fast
    paths for numbers), else a tensor of one value per neuron; spike times as they are."""
    out = {}
    for name, value in population._parameters.items():
        array = np.asarray(value)
        if array.dtype == object:
            out[name] = value
        elif array.size and np.all(array == array.reshape(-1)[0]):
            out[name] = float(array.reshape(-1)[0])
        else:
            out[name] = _tensor(np.broadcast_to(array, (population.size,)), like)
    return out


def _locate(group: Any, indices: np.ndarray, index: dict) -> tuple[np.ndarray, np.ndarray]:
    """For indices into a Population, PopulationView or Assembly: (population number, index in
    that population)."""
    if isinstance(group, common.Assembly):
        bounds = np.cumsum([0] + [p.size for p in group.populations])
        which = np.searchsorted(bounds, indices, side="right") - 1
        numbers = np.empty_like(indices)
        local = np.empty_like(indices)
        for k, member in enumerate(group.populations):
            chosen = which == k
            numbers[chosen], local[chosen] = _locate(member, indices[chosen] - bounds[k], index)
        return numbers, local
    if isinstance(group, common.PopulationView):
        parent = group.grandparent
        return np.full_like(indices, index[id(parent)]), np.asarray(group.index_in_grandparent(indices)).reshape(-1)
    return np.full_like(indices, index[id(group)]), indices


def _uniform(values: np.ndarray, what: str, label: str) -> float:
    unique = np.unique(values)
    if unique.size > 1:
        raise NotImplementedError(
            f"projection {label!r}: sapicore.pynn needs one value of {what} for all its synapses, got {unique[:5]}"
        )
    return float(unique[0]) if unique.size else 0.0


def _short_term(prj: Any, connections: np.ndarray, pre: np.ndarray, n_pre: int, dtype: torch.dtype) -> Any:
    """The core's per-source Tsodyks-Markram parameters from per-connection values."""
    params = {}
    for name in ("U", "tau_rec", "tau_facil"):
        values = prj._values[name][connections]
        per_source = np.full(n_pre, values.mean() if values.size else 0.5)
        per_source[pre] = values
        if not np.allclose(per_source[pre], values):
            raise NotImplementedError(
                f"projection {prj.label!r}: sapicore.pynn's Tsodyks-Markram synapses keep one {name} per source "
                "neuron; give all synapses of a source the same value"
            )
        params[name] = _tensor(per_source, {"dtype": dtype})
    return sf.TsodyksMarkram(**params)


def build(state: Any) -> tuple[sf.Network, list[Part], dict]:
    """The functional network of the PyNN objects as they are now."""
    like = {"dtype": state.dtype, "device": state.device}
    index = {id(p): k for k, p in enumerate(state.populations)}
    params = [_parameters(p, like) for p in state.populations]
    populations, drive = {}, {}
    for k, population in enumerate(state.populations):
        populations[f"p{k}"] = sf.Population(population.celltype.core(params[k]), population.size)
        offset = population.celltype.drive(params[k])
        if offset is not None and bool(torch.as_tensor(offset).ne(0).any()):
            drive[f"p{k}"] = offset
    projections, parts = {}, []
    for j, prj in enumerate(state.projections):
        pre_pop, pre = _locate(prj.pre, prj._pre, index)
        post_pop, post = _locate(prj.post, prj._post, index)
        for a, b in sorted(set(zip(pre_pop.tolist(), post_pop.tolist()))):
            chosen = np.flatnonzero((pre_pop == a) & (post_pop == b))
            chosen = chosen[np.argsort(pre[chosen], kind="stable")]
            part, projections[part.name] = _part(
                state, prj, f"j{j}_{a}_{b}", a, b, chosen, pre[chosen], post[chosen], params
            )
            parts.append(part)
    network = sf.Network(populations=populations, projections=projections, drive=drive)
    return (network if state.device.type == "cpu" else sf.to(network, state.device)), parts, params


def _part(
    state: Any, prj: Any, name: str, a: int, b: int, chosen: np.ndarray, pre: np.ndarray, post: np.ndarray, params: list
) -> tuple[Part, sf.SparseProjection]:
    """The sparse projection of the connections ``chosen`` of ``prj`` from population ``a`` to
    ``b`` (``pre``, ``post``: their indices there, sorted by ``pre``), and how to find them in it."""
    n_pre, n_post = state.populations[a].size, state.populations[b].size
    celltype = state.populations[b].celltype
    scale = celltype.weight_scale(prj.receptor_type, params[b], state.dt)
    scale = None if scale is None else np.broadcast_to(torch.as_tensor(scale).cpu().double().numpy(), (n_post,))[post]
    weights = prj._values["weight"][chosen] * (1.0 if scale is None else scale)
    degree = np.bincount(pre, minlength=n_pre)
    table = sf.SynapseTable(torch.as_tensor(degree), n_post, state.dt, dtype=state.dtype)
    starts = np.concatenate([[0], np.cumsum(degree)[:-1]])
    slots = pre * table.targets.shape[1] + (np.arange(pre.size) - starts[pre])
    synapse = celltype.synapse(prj.receptor_type, params[b])
    table.add(
        torch.as_tensor(pre),
        torch.as_tensor(post),
        _tensor(weights, {}),
        _tensor(np.maximum(prj._values["delay"][chosen] - celltype.delay_shift * state.dt, 0.0), {}),
        synapse,
    )
    kwargs = {}
    if "U" in prj._values:
        kwargs["short_term"] = _short_term(prj, chosen, pre, n_pre, state.dtype)
    if hasattr(prj.synapse_type, "rule"):
        names = [n for n in prj._values if n not in ("weight", "delay")]
        kwargs["plasticity"] = prj.synapse_type.rule({n: _uniform(prj._values[n][chosen], n, prj.label) for n in names})
    return Part(prj, name, a, b, chosen, slots, scale), table.projection(f"p{a}", f"p{b}", synapse, **kwargs)


def _resized_ring(pending: torch.Tensor, step: int, rows: int, name: str) -> torch.Tensor:
    """A ring buffer of input in transit (row = step mod its length) moved into one of ``rows`` rows,
    each arrival at the same step (the longest delay of the projection changed between runs)."""
    offsets = torch.arange(min(rows, pending.shape[0]), device=pending.device)
    resized = pending.new_zeros((rows, *pending.shape[1:]))
    resized[(step + offsets) % rows] = pending[(step + offsets) % pending.shape[0]]
    if pending.shape[0] > rows and bool(pending.abs().sum() > resized.abs().sum() * (1 + 1e-6)):
        warnings.warn(
            f"projection {name}: input in transit beyond its new longest delay ({rows - 1} steps) is dropped",
            stacklevel=4,
        )
    return resized


def carry(network: sf.Network, old: Any, state: Any, params: list, rebuilt: bool = True) -> Any:
    """The state to start this run from: the previous run's (its weights those of the PyNN arrays
    when the network was ``rebuilt``, its spikes in transit kept), the initial values of what is
    new, then the initial values set since the last run."""
    like = torch.zeros((), dtype=state.dtype, device=state.device)
    if old is not None and not rebuilt:
        populations, projections = dict(old.populations), old.projections
    else:
        fresh = network.init_state(device=state.device, dtype=state.dtype)
        populations, projections = {}, {}
        for k, population in enumerate(state.populations):
            name = f"p{k}"
            kept = None if old is None else old.populations.get(name)
            if kept is not None and sf.tree_leaves(kept)[0].shape[-1] == population.size:
                populations[name] = kept
            else:
                model = network.populations[name].model
                populations[name] = population.celltype.state(
                    model, params[k], population._initial, population.size, like
                )
        for name, new in fresh.projections.items():
            kept = None if old is None else old.projections.get(name)
            if kept is not None and type(kept.synapse) is not type(new.synapse):
                raise ValueError(
                    f"projection {name}: its synapse changed form between runs ({type(kept.synapse).__name__} to "
                    f"{type(new.synapse).__name__}, e.g. a beta synapse given tau_rise == tau_decay); "
                    "make the change before the first run or after reset()"
                )
            if kept is not None and kept.weights.shape == new.weights.shape:
                pending = kept.pending
                if pending.shape != new.pending.shape:
                    pending = _resized_ring(pending, int(kept.step), new.pending.shape[0], name)
                new = sf.replace(kept, weights=new.weights, pending=pending, wiring=new.wiring)
            projections[name] = new
    for population, variable, neurons, values in state.pending_initial:
        name = f"p{state.populations.index(population)}"
        field = population.celltype.state_names.get(variable)
        if field is not None:
            current = getattr(populations[name], field).clone()
            current[torch.as_tensor(neurons)] = _tensor(values, {"dtype": current.dtype, "device": current.device})
            populations[name] = sf.replace(populations[name], **{field: current})
    return sf.NetworkState(populations=populations, projections=projections)


def _record_names(state: Any, parts: list[Part]) -> tuple[list[str], dict]:
    """The core's record names this run needs, and for each (population, PyNN variable) the names
    whose sum it is."""
    names, sources = [], {}
    for k, population in enumerate(state.populations):
        recorder = population.recorder
        if recorder.records_spikes():
            names.append(f"p{k}.spikes")
        for variable in recorder.signal_names():
            receptor = population.celltype.synaptic.get(variable)
            if receptor is not None:
                wanted = [f"{p.name}.s" for p in parts if p.post == k and p.projection.receptor_type == receptor]
            else:
                wanted = [f"p{k}.{population.celltype.variables[variable]}"]
            sources[k, variable] = wanted
            names += wanted
    return sorted(set(names)), sources


class _Collector:
    """A ``simulate`` sink: spikes to events, signals sampled every ``recorder.every`` steps.

    A membrane variable recorded at the end of a step is its value at that step's end time. A
    conductance recorded in a step is the one that acted over it, which NEST reports at the step's
    start time: it is filed there (and the run's first step's was taken before the run, see
    ``_sample_now``)."""

    def __init__(self, state: Any, sources: dict, first: int, run_first: int) -> None:
        self.state, self.sources, self.step, self.run_first = state, sources, first, run_first

    def begin(self, dt: float, every: int) -> None:
        pass

    def write(self, records: dict) -> None:
        chunk = next(iter(records.values())).shape[0]
        starts = np.arange(self.step, self.step + chunk)
        for k, population in enumerate(self.state.populations):
            recorder = population.recorder
            spikes = records.get(f"p{k}.spikes")
            if spikes is not None and recorder.records_spikes():
                times, neurons = to_events(spikes, self.step, self.state.dt)
                recorder.add_spikes(neurons.cpu().numpy(), times.cpu().numpy())
            at_ends = np.flatnonzero((starts + 1) % recorder.every == 0)
            at_starts = np.flatnonzero((starts % recorder.every == 0) & (starts > self.run_first))
            for variable in recorder.signal_names():
                values = _summed(records, self.sources[k, variable], chunk, population.size)
                synaptic = variable in population.celltype.synaptic
                recorder.add_samples(variable, values[at_starts if synaptic else at_ends])
        self.step += chunk

    def end(self) -> None:
        pass


def _summed(records: dict, names: list[str], steps: int, size: int) -> np.ndarray:
    total = np.zeros((steps, size))
    for name in names:
        total += records[name].detach().cpu().double().numpy().reshape(steps, size)
    return total


class _NoOutput(dict):
    """The outputs of no step: reading a state variable does not need one."""

    def __missing__(self, key: str) -> None:
        return None


_NO_OUTPUT = _NoOutput()


def _sample_now(network: sf.Network, net_state: Any, state: Any, sources: dict, starting: bool) -> None:
    """The samples at the present time that the run's records do not give: when a run starts, each
    signal's first sample in this segment; when it ends, each conductance's sample (if the time is
    one of its sampling times), from the update the next step would make."""
    for k, population in enumerate(state.populations):
        recorder = population.recorder
        for variable in recorder.signal_names():
            synaptic = variable in population.celltype.synaptic
            if starting and not recorder.needs_first_sample(variable):
                continue
            if not starting and not (synaptic and state.steps % recorder.every == 0):
                continue
            values = {}
            for name in sources[k, variable]:
                if synaptic:
                    owner = network.projections[name.partition(".")[0]]
                    pstate = net_state.projections[name.partition(".")[0]]
                    values[name] = owner.synapse.update(pstate.synapse, owner.arrivals(pstate), state.dt).s[None]
                else:
                    values[name] = network.read(net_state, _NO_OUTPUT, name)[None]
            recorder.add_samples(variable, _summed(values, sources[k, variable], 1, population.size))


def _inputs(state: Any, params: list, first: int, steps: int) -> dict:
    """Each population's input over ``steps`` steps from step ``first``: spike sources' spikes,
    the injected current (nA) elsewhere."""
    inputs: dict[str, torch.Tensor] = {}
    for k, population in enumerate(state.populations):
        if population.celltype.source:
            spikes = population.celltype.spikes(params[k], first, steps, state.dt, state.generator)
            inputs[f"p{k}"] = spikes.to(dtype=state.dtype, device=state.device)
    for source in state.current_sources:
        cells: dict[int, list[int]] = {}  # population number -> the neurons fed (a neuron may repeat)
        for population, neuron in source.targets:
            if population in state.populations:
                cells.setdefault(state.populations.index(population), []).append(neuron)
        if not cells:
            continue
        current = torch.as_tensor(source.current(first, steps, state.dt), dtype=state.dtype)
        for k, neurons in cells.items():
            name = f"p{k}"
            if name not in inputs:
                inputs[name] = torch.zeros(steps, state.populations[k].size, dtype=state.dtype)
            index = torch.as_tensor(neurons)
            inputs[name].index_add_(1, index, current[:, None].expand(-1, index.numel()))
    return {name: value.to(state.device) for name, value in inputs.items()}


def _read_back(state: Any, parts: list[Part]) -> None:
    """Plastic weights from the run's state into the PyNN arrays."""
    for part in parts:
        if not hasattr(part.projection.synapse_type, "rule"):  # no plasticity: the arrays hold the weights
            continue
        weights = state.network_state.projections[part.name].weights.reshape(-1)
        values = weights.index_select(0, torch.as_tensor(part.slots, device=weights.device)).cpu().double().numpy()
        part.projection._values["weight"][part.connections] = values / (1.0 if part.scale is None else part.scale)


def advance(state: Any, steps: int) -> None:
    """Run the network for ``steps`` steps from where it is."""
    if not state.populations:
        state.steps += steps
        return
    if state.network_state is None:  # a start from t = 0: what reset will come back to
        for projection in state.projections:
            projection._keep_initial()
    rebuilt = state.built is None
    if rebuilt:
        state.built = build(state)
    network, parts, params = state.built
    net_state = carry(network, state.network_state, state, params, rebuilt)
    state.pending_initial = []
    names, sources = _record_names(state, parts)
    _sample_now(network, net_state, state, sources, starting=True)
    run_first = state.steps
    fed = {id(population) for source in state.current_sources for population, _ in source.targets}
    width = sum(p.size for p in state.populations if p.celltype.source or id(p) in fed)  # input values per step
    block = steps if width == 0 else max(1000, BLOCK_VALUES // width // 1000 * 1000)  # whole chunks
    done = 0
    while done < steps:
        count = min(block, steps - done)
        first = state.steps
        collector = _Collector(state, sources, first, run_first)
        net_state, _ = sf.simulate(
            network,
            net_state,
            _inputs(state, params, first, count),
            dt=state.dt,
            steps=count,
            record=names,
            fast=state.fast,
            progress=False,
            sinks=[collector],
            keep=False,
            start_step=first,
        )
        state.steps += count
        done += count
        state.network_state = net_state
    _sample_now(network, net_state, state, sources, starting=False)
    _read_back(state, parts)
