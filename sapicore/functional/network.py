"""Networks: named populations, projections between them and constant drives, as one pytree.

One network step (all populations and projections advance by ``dt`` ms) runs in this order:

1. every projection takes the input arriving at the start of this step (spikes emitted in earlier
   steps, at their delays) into its synapse model, and computes the synaptic current into its target
   population from the target's membrane potential at the end of the previous step;
2. every population steps with the sum of its synaptic currents, its constant ``drive`` (nA) and the
   external input given to ``step`` for it;
3. every projection puts this step's source spikes in transit, each carrying the weight its synapse
   has now (before this step's plasticity update) to its target's future input;
4. every projection applies its plasticity rule to this step's source and target outputs.

This is also the order of a loop over the object API's modules (neurons, then each synapse's
``forward``, then ``apply_learning``), so both doors give the same results.

So every projection delivers one step later at the earliest (a delay of d ms adds round(d / dt)
steps), whatever the order of populations, and the result does not depend on the order in which
populations or projections are listed.

``simulate(network, network.init_state(), inputs=..., dt=...)`` runs it; ``inputs`` is a dict with
one entry per population that receives external input (a time-major tensor, a number or a function
of time returning such a dict) and the modulatory signals that plasticity rules read (``"reward"``).
Record names are ``"population.variable"`` (``"exc.v"``, ``"exc.spikes"``) and
``"projection.variable"`` (``"ee.weights"``, ``"ee.s"``, plasticity traces such as ``"ee.x_pre"``).
"""

from __future__ import annotations

import numbers
from typing import Any

import attrs
import torch

from .models.neurons.base import NeuronModel, check_model
from .models.short_term import ShortTermState
from .propagation.backends import KERNELS
from .propagation.projection import Projection, ProjectionState, select_sources
from .pytree import check_values_finite, pytree, replace, tree_leaves
from .transforms import RunContext

__all__ = ["Network", "NetworkState", "Population", "own_buffers"]


def _check_population(instance: Population, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(instance.model, NeuronModel):
        raise TypeError(f"Population model must be a neuron model such as LIF(), got {instance.model!r}")
    check_model(instance.model)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"Population size must be a positive int (a number of neurons), got {value!r}")


def _parts_tuple(value: Any) -> tuple:
    return tuple(value.items()) if isinstance(value, dict) else value


def _check_parts(instance: Population, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, tuple):
        raise TypeError(f"Population parts must be a dict {{name: number of neurons}}, got {type(value).__name__}")
    if not value:
        return
    for name, size in value:
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"Population part name {name!r} must be a non-empty str without '.'")
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ValueError(f"Population part {name!r} must have a positive int number of neurons, got {size!r}")
    total = sum(size for _, size in value)
    if total != instance.size:
        raise ValueError(f"Population parts hold {total} neurons in all but the population has {instance.size}")
    if len({name for name, _ in value}) != len(value):
        raise ValueError(f"Population part names must differ, got {[name for name, _ in value]}")


@pytree
class Population:
    """A neuron model (parameters) and the number of neurons that share it.

    ``parts`` ({name: number of neurons}, in order, summing to ``size``) names consecutive ranges of
    neurons (as Brian2's subgroups): a part's name may stand wherever a population's does (a
    projection's source or target, ``drive``, ``inputs``, record names such as ``"L4E.spikes"``). One
    population with parts steps in one call where separate populations step one by one, so
    populations that share a model run faster joined (with per-neuron parameters where they differ).
    """

    model: Any
    size: int = attrs.field(validator=_check_population)
    parts: tuple = attrs.field(default=(), converter=_parts_tuple, validator=_check_parts)


@pytree
class NetworkState:
    """populations: name -> neuron state; projections: name -> `ProjectionState`."""

    populations: dict
    projections: dict


def names_of(group: str | tuple[str, ...]) -> tuple[str, ...]:
    """The population (or part) names of a projection's source or target: one name, or a tuple."""
    return (group,) if isinstance(group, str) else group


def _segments(group: str | tuple[str, ...], ranges: dict) -> list[tuple[str, int, int]]:
    """A group's neurons as (population, first neuron, count) ranges, adjacent ranges merged."""
    segments: list[tuple[str, int, int]] = []
    for name in names_of(group):
        pop, start, size = ranges[name]
        if segments and segments[-1][0] == pop and segments[-1][1] + segments[-1][2] == start:
            segments[-1] = (pop, segments[-1][1], segments[-1][2] + size)
        else:
            segments.append((pop, start, size))
    return segments


def _gather(segments: list, values: dict, sizes: dict) -> torch.Tensor:
    """The values of ``segments``' neurons (from ``values``, per population) one after the other."""
    pieces = [
        values[pop] if size == sizes[pop] else values[pop].narrow(-1, start, size) for pop, start, size in segments
    ]
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces, -1)


def _place(value: Any, start: int, size: int, total: int, like: Any) -> Any:
    """``value`` (for ``size`` neurons from ``start``) as a value for all ``total`` neurons of its
    population, zero elsewhere; ``like``: a tensor or state of that population (device, dtype)."""
    if size == total:
        return value
    like = tree_leaves(like)[0]
    value = torch.as_tensor(value, dtype=like.dtype, device=like.device).expand(size)
    return torch.nn.functional.pad(value, (start, total - start - size))


def _ranges(populations: dict) -> dict[str, tuple[str, int, int]]:
    """Every population and part name -> (population, first neuron, number of neurons)."""
    found: dict[str, tuple[str, int, int]] = {}
    for name, population in populations.items():
        found[name] = (name, 0, population.size)
        start = 0
        for part, size in population.parts:
            if part in found or part in populations:
                raise ValueError(f"part name {part!r} of population {name!r} is already a population or part name")
            found[part] = (name, start, size)
            start += size
    return found


def check_projection(name: str, proj: Any, populations: dict, ranges: dict, source_ranges: dict) -> None:
    """Raise unless ``proj`` (named ``name``) connects groups of ``populations`` (``ranges``: their
    population and part names, `_ranges`; ``source_ranges`` those its sources may come from) with
    the sizes it was built for, onto models that receive synapses."""
    if not isinstance(proj, Projection):
        raise TypeError(f"projection {name!r} must be built with sapicore.functional.projection(...)")
    if name in ranges or "." in name:
        raise ValueError(f"projection name {name!r} must differ from population and part names and contain no '.'")
    for role, group, known in (("source", proj.source, source_ranges), ("target", proj.target, ranges)):
        for pop in names_of(group):
            if pop not in known:
                raise ValueError(
                    f"projection {name!r} has unknown {role} population {pop!r}; populations: {', '.join(known)}"
                )
    sizes = [
        sum(known[pop][2] for pop in names_of(group))
        for group, known in ((proj.source, source_ranges), (proj.target, ranges))
    ]
    if [proj.n_pre, proj.n_post] != sizes:
        raise ValueError(
            f"projection {name!r} connects {proj.n_pre} -> {proj.n_post} neurons but {proj.source!r} has "
            f"{sizes[0]} and {proj.target!r} has {sizes[1]}"
        )
    for target in names_of(proj.target):
        model = populations[ranges[target][0]].model
        if not model.receives_projections:
            raise ValueError(
                f"projection {name!r} targets {target!r}, an input population that cannot receive synapses"
            )
        if proj.synapse.conductance_based and "v" not in model.record_names():
            raise ValueError(f"projection {name!r} is conductance-based but {target!r} has no membrane potential v")


def _check_network(instance: Network, attribute: attrs.Attribute, value: Any) -> None:
    populations, projections = instance.populations, instance.projections
    for name, population in populations.items():
        if not isinstance(population, Population):
            raise TypeError(f"population {name!r} must be a Population(model, size), got {type(population).__name__}")
        if "." in name:
            raise ValueError(f"population name {name!r} must not contain '.'")
    ranges = _ranges(populations)
    exchange = instance.exchange
    source_ranges = ranges if exchange is None else exchange.ranges()  # a partition's sources: all ranks'
    for name, proj in projections.items():
        check_projection(name, proj, populations, ranges, source_ranges)
    steps = {proj.dt for proj in projections.values()}
    if len(steps) > 1:
        raise ValueError(
            f"the projections were built for different time steps {sorted(steps)} ms; build them all with one dt"
        )
    for name, drive in value.items():
        if name not in ranges:
            raise ValueError(f"drive names unknown population {name!r}; populations: {', '.join(ranges)}")
        is_number = isinstance(drive, numbers.Real) and not isinstance(drive, bool)
        if not (is_number or isinstance(drive, torch.Tensor) and drive.is_floating_point()):
            raise TypeError(f"drive[{name!r}] must be a number or a floating tensor (nA), got {type(drive).__name__}")
        check_values_finite(f"drive[{name!r}]", torch.as_tensor(drive))


def _one_exchange(exchanges: list) -> Any:
    """The exchange of lanes stacked for a sweep: every lane is the same rank's share of one partition."""
    first = exchanges[0]
    if all(exchange is None for exchange in exchanges):
        return None

    def identity(exchange: Any) -> Any:
        return None if exchange is None else (exchange.layout(), exchange.group)

    if any(identity(exchange) != identity(first) for exchange in exchanges):
        raise ValueError(
            "cannot stack Network.exchange: lanes are shares of different partitions (or some are whole networks); "
            "stack the shares that one rank holds of networks partitioned alike"
        )
    return first


@pytree
class Network:
    """Populations, projections and constant drives (nA per population); see the module docstring.

    ``exchange`` is None, or, for one rank's share of a network run over several processes, the
    `sapicore.functional.running.partition.Exchange` that gathers the outputs of source populations
    from all ranks each step (build such a network with ``partition``).
    """

    populations: dict = attrs.field(factory=dict)
    projections: dict = attrs.field(factory=dict)
    drive: dict = attrs.field(factory=dict, validator=_check_network)
    exchange: Any = attrs.field(default=None, kw_only=True, metadata={"lanes": _one_exchange})

    @property
    def dt(self) -> float | None:
        """The time step (ms) the projections' delays were built for; None without projections."""
        return next(iter(self.projections.values())).dt if self.projections else None

    def ranges(self) -> dict[str, tuple[str, int, int]]:
        """Every population and part name -> (population, first neuron, number of neurons)."""
        return self._layout()[0]

    def _layout(self) -> tuple[dict, dict, dict]:
        """(ranges, population sizes, each projection's (source, target) segments), worked out once
        per network and kept, since every step needs them. The cache holds the dicts it was worked out
        from and is used only while they are this network's (``replace`` copies it along)."""
        cached = self.__dict__.get("_layout_cache")
        if cached is not None and cached[0] is self.populations and cached[1] is self.projections:
            return cached[2]
        ranges = _ranges(self.populations)
        source_ranges = ranges if self.exchange is None else self.exchange.ranges()
        segments = {
            name: (_segments(proj.source, source_ranges), _segments(proj.target, ranges))
            for name, proj in self.projections.items()
        }
        layout = (ranges, {name: pop.size for name, pop in self.populations.items()}, segments)
        self.__dict__["_layout_cache"] = (self.populations, self.projections, layout)
        return layout

    def for_run(self, context: RunContext) -> Network:
        """This network with every projection as a run in ``context`` uses it (propagation backends)."""
        return replace(self, projections={name: proj.for_run(context) for name, proj in self.projections.items()})

    def init_state(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> NetworkState:
        """Every population at rest, every projection with its built weights and nothing in transit.

        ``device`` and ``dtype`` default to those of the network's floating tensors (its weights, say).
        """
        if not self.populations:
            raise ValueError("the network has no populations")
        like = next((x for x in tree_leaves(self) if isinstance(x, torch.Tensor) and x.is_floating_point()), None)
        if like is not None:
            device = like.device if device is None else device
            dtype = like.dtype if dtype is None else dtype
        populations = {
            name: pop.model.init_state(pop.size, device=device, dtype=dtype) for name, pop in self.populations.items()
        }
        like = tree_leaves(populations)[0]
        projections = {name: proj.init_state(like) for name, proj in self.projections.items()}
        return NetworkState(populations=populations, projections=projections)

    def _external(self, inputs: Any) -> dict:
        if inputs is None or (isinstance(inputs, (int, float)) and inputs == 0):
            return {}
        if not isinstance(inputs, dict):
            raise TypeError(
                f"network inputs must be a dict keyed by population (or modulator) name, got {type(inputs).__name__}"
            )
        known = set(self.ranges()) | self._modulators()
        unknown = sorted(set(inputs) - known)
        if unknown:
            raise ValueError(
                f"inputs name unknown populations or modulators {unknown}; known: {', '.join(sorted(known))}"
            )
        return inputs

    def _modulators(self) -> set[str]:
        return {
            proj.plasticity.modulator
            for proj in self.projections.values()
            if proj.plasticity is not None and proj.plasticity.modulator
        }

    def step(self, state: NetworkState, inputs: Any, dt: float) -> tuple[NetworkState, dict]:
        """Advance the whole network by ``dt`` ms; return the new state and each population's output.

        ``dt`` must be the step the projections were built for.
        """
        if self.projections and dt != self.dt:
            raise ValueError(f"the projections were built for dt={self.dt} ms, not dt={dt} ms; rebuild them")
        external = self._external(inputs)
        ranges, sizes, segments = self._layout()
        populations, projections = dict(state.populations), dict(state.projections)
        # 1. arrivals into the synapse models, and their currents into the targets
        currents: dict[str, list] = {name: [] for name in self.populations}
        for name, proj in self.projections.items():
            pstate = projections[name]
            synapse = proj.synapse.update(pstate.synapse, proj.arrivals(pstate), dt)
            targets = segments[name][1]
            v = None
            if proj.synapse.conductance_based:
                v = _gather(targets, {pop: populations[pop].v for pop, _, _ in targets}, sizes)
            current = proj.synapse.current(synapse, v)
            offset = 0
            for pop, start, size in targets:
                piece = current if size == proj.n_post else current.narrow(-1, offset, size)
                currents[pop].append(_place(piece, start, size, sizes[pop], piece))
                offset += size
            projections[name] = replace(pstate, synapse=synapse)
        for given in (self.drive, external):
            for key, value in given.items():
                if key in ranges:
                    pop, start, size = ranges[key]
                    currents[pop].append(_place(value, start, size, sizes[pop], populations[pop]))
        # 2. the populations (for one rank's share: those whose outputs other ranks need first, so
        # that gathering them from all ranks overlaps the update of the others)
        outputs, order, begun = {}, list(self.populations), None
        if self.exchange is not None:
            exchanged = tuple(sorted({pop for name in self.projections for pop, _, _ in segments[name][0]}))
            needed = self.exchange.needed(exchanged, self.projections)
            order = [name for name in order if name in needed] + [name for name in order if name not in needed]
        for name in order:
            terms = currents[name]
            total = terms[0] if terms else 0.0
            for term in terms[1:]:
                total = total + term
            populations[name], outputs[name] = self.populations[name].model.step(populations[name], total, dt)
            if self.exchange is not None and begun is None and all(pop in outputs for pop in needed):
                begun = self.exchange.begin(outputs, needed)
        # 3. this step's output in transit, each source's spiking neurons picked once
        sending, source_sizes = outputs, sizes
        if self.exchange is not None:  # one rank's share: the sources' outputs on all ranks
            sending = self.exchange.end(begun, outputs, exchanged)
            source_sizes = {name: self.exchange.populations[name].size for name in exchanged}
        sources = {
            proj.source: _gather(segments[name][0], sending, source_sizes) for name, proj in self.projections.items()
        }
        selections = self._select_sources(sources, projections)
        for name, proj in self.projections.items():
            projections[name] = proj.send(projections[name], sources[proj.source], dt, selections.get(name))
        # 4. plasticity
        for name, proj in self.projections.items():
            if proj.plasticity is not None:
                modulator = external.get(proj.plasticity.modulator)
                post = _gather(segments[name][1], outputs, sizes)
                projections[name] = proj.learn(projections[name], sources[proj.source], post, dt, modulator)
        return replace(state, populations=populations, projections=projections), outputs

    def _select_sources(self, outputs: dict, projections: dict) -> dict:
        """Each sparse projection's selection for this step: the kernel's name, or the spiking sources
        picked with torch ops, once per source (population or group, whose ``outputs`` are given) and
        backend (at the largest capacity asked)."""
        wanted: dict[str, tuple[str, str, int]] = {}
        decided: dict[str, Any] = {}
        for name, proj in self.projections.items():
            chosen = proj.selection_capacity(outputs[proj.source], projections[name].weights)
            if chosen is not None and chosen[0] in KERNELS:
                decided[name] = chosen[0]
            elif chosen is not None:
                wanted[name] = (proj.source, *chosen)
        largest: dict[tuple[str, str], int] = {}
        for source, backend, capacity in wanted.values():
            largest[source, backend] = max(largest.get((source, backend), 0), capacity)
        picks = {key: select_sources(outputs[key[0]], key[1], capacity) for key, capacity in largest.items()}
        return decided | {name: picks[source, backend] for name, (source, backend, _) in wanted.items()}

    def default_record(self) -> tuple[str, ...]:
        """What ``simulate`` records when not told: every population's output (each part's, for a
        population with parts)."""
        return tuple(
            f"{name}.{population.model.output_name}"
            for pop, population in self.populations.items()
            for name in ([part for part, _ in population.parts] or [pop])
        )

    def record_names(self) -> tuple[str, ...]:
        names = [
            f"{name}.{var}"
            for name, (pop, _, _) in self.ranges().items()
            for var in self.populations[pop].model.record_names()
        ]
        for name, proj in self.projections.items():
            names.append(f"{name}.weights")
            fields = [field.name for field in attrs.fields(type(proj.synapse.init_state(torch.zeros(1))))]
            names += [f"{name}.{variable}" for variable in fields + ["s"] * ("s" not in fields)]  # s: every synapse's
            if proj.plasticity is not None:
                traces = proj.plasticity.init(1, 1, torch.zeros(1, 1))
                if traces is not None:
                    names += [f"{name}.{field.name}" for field in attrs.fields(type(traces)) if field.name != "traces"]
            if proj.short_term is not None:
                names += [f"{name}.{field.name}" for field in attrs.fields(ShortTermState)]
        return tuple(names)

    def read(self, state: NetworkState, output: dict, name: str) -> torch.Tensor:
        owner, _, variable = name.partition(".")
        ranges = self.ranges()
        if owner in ranges:
            pop, start, size = ranges[owner]
            value = self.populations[pop].model.read(state.populations[pop], output[pop], variable)
            return value if size == self.populations[pop].size else value.narrow(-1, start, size)
        pstate: ProjectionState = state.projections[owner]
        if variable == "weights":
            return pstate.weights
        if hasattr(pstate.synapse, variable):
            return getattr(pstate.synapse, variable)
        if pstate.short_term is not None and hasattr(pstate.short_term, variable):
            return getattr(pstate.short_term, variable)
        return getattr(pstate.plasticity, variable)

    def is_event(self, name: str) -> bool:
        owner, _, variable = name.partition(".")
        ranges = self.ranges()
        return owner in ranges and self.populations[ranges[owner][0]].model.is_event(variable)


def own_buffers(model: Any, state: Any) -> Any:
    """``state`` with a copy of each ring buffer that ``model``'s projections add to in place
    (``in_place``, set for a run by ``simulate``), so that the caller's state is never changed."""
    if not isinstance(model, Network):
        return state
    owned = [name for name, proj in model.projections.items() if proj.in_place]
    if not owned:
        return state
    projections = dict(state.projections)
    for name in owned:
        projections[name] = replace(projections[name], pending=projections[name].pending.clone())
    return replace(state, projections=projections)
