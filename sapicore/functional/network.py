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

from .neurons.base import NeuronModel, check_model
from .projection import Projection, ProjectionState, select_sources
from .pytree import check_values_finite, pytree, replace, tree_leaves
from .transforms import KERNELS, RunContext

__all__ = ["Network", "NetworkState", "Population", "own_buffers"]


def _check_population(instance: Population, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(instance.model, NeuronModel):
        raise TypeError(f"Population model must be a neuron model such as LIF(), got {instance.model!r}")
    check_model(instance.model)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"Population size must be a positive int (a number of neurons), got {value!r}")


@pytree
class Population:
    """A neuron model (parameters) and the number of neurons that share it."""

    model: Any
    size: int = attrs.field(validator=_check_population)


@pytree
class NetworkState:
    """populations: name -> neuron state; projections: name -> :class:`ProjectionState`."""

    populations: dict
    projections: dict


def names_of(group: str | tuple[str, ...]) -> tuple[str, ...]:
    """The population names of a projection's source or target (one name, or a tuple of them)."""
    return (group,) if isinstance(group, str) else group


def joined(group: str | tuple[str, ...], values: dict) -> Any:
    """``values[group]``, or the values of a group's populations one after the other."""
    return values[group] if isinstance(group, str) else torch.cat([values[name] for name in group])


def _check_network(instance: Network, attribute: attrs.Attribute, value: Any) -> None:
    populations, projections = instance.populations, instance.projections
    for name, population in populations.items():
        if not isinstance(population, Population):
            raise TypeError(f"population {name!r} must be a Population(model, size), got {type(population).__name__}")
        if "." in name:
            raise ValueError(f"population name {name!r} must not contain '.'")
    for name, proj in projections.items():
        if not isinstance(proj, Projection):
            raise TypeError(f"projection {name!r} must be built with sapicore.functional.projection(...)")
        if name in populations or "." in name:
            raise ValueError(f"projection name {name!r} must differ from population names and contain no '.'")
        for role, group in (("source", proj.source), ("target", proj.target)):
            for pop in names_of(group):
                if pop not in populations:
                    raise ValueError(
                        f"projection {name!r} has unknown {role} population {pop!r}; populations: {', '.join(populations)}"
                    )
        sizes = [sum(populations[pop].size for pop in names_of(group)) for group in (proj.source, proj.target)]
        if [proj.n_pre, proj.n_post] != sizes:
            raise ValueError(
                f"projection {name!r} connects {proj.n_pre} -> {proj.n_post} neurons but {proj.source!r} has "
                f"{sizes[0]} and {proj.target!r} has {sizes[1]}"
            )
        for target in names_of(proj.target):
            if not populations[target].model.receives_projections:
                raise ValueError(
                    f"projection {name!r} targets {target!r}, an input population that cannot receive synapses"
                )
            if proj.synapse.conductance_based and "v" not in populations[target].model.record_names():
                raise ValueError(f"projection {name!r} is conductance-based but {target!r} has no membrane potential v")
    steps = {proj.dt for proj in projections.values()}
    if len(steps) > 1:
        raise ValueError(
            f"the projections were built for different time steps {sorted(steps)} ms; build them all with one dt"
        )
    for name, drive in value.items():
        if name not in populations:
            raise ValueError(f"drive names unknown population {name!r}; populations: {', '.join(populations)}")
        is_number = isinstance(drive, numbers.Real) and not isinstance(drive, bool)
        if not (is_number or isinstance(drive, torch.Tensor) and drive.is_floating_point()):
            raise TypeError(f"drive[{name!r}] must be a number or a floating tensor (nA), got {type(drive).__name__}")
        check_values_finite(f"drive[{name!r}]", torch.as_tensor(drive))


@pytree
class Network:
    """Populations, projections and constant drives (nA per population); see the module docstring."""

    populations: dict = attrs.field(factory=dict)
    projections: dict = attrs.field(factory=dict)
    drive: dict = attrs.field(factory=dict, validator=_check_network)

    @property
    def dt(self) -> float | None:
        """The time step (ms) the projections' delays were built for; None without projections."""
        return next(iter(self.projections.values())).dt if self.projections else None

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
        known = set(self.populations) | self._modulators()
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
        populations, projections = dict(state.populations), dict(state.projections)
        # 1. arrivals into the synapse models, and their currents into the targets
        currents: dict[str, list] = {name: [] for name in self.populations}
        for name, proj in self.projections.items():
            pstate = projections[name]
            synapse = proj.synapse.update(pstate.synapse, proj.arrivals(pstate), dt)
            v = None
            if proj.synapse.conductance_based:
                v = joined(proj.target, {pop: populations[pop].v for pop in names_of(proj.target)})
            current = proj.synapse.current(synapse, v)
            if isinstance(proj.target, str):
                currents[proj.target].append(current)
            else:
                offset = 0
                for pop in proj.target:
                    size = self.populations[pop].size
                    currents[pop].append(current.narrow(0, offset, size))
                    offset += size
            projections[name] = replace(pstate, synapse=synapse)
        # 2. the populations
        outputs = {}
        for name, pop in self.populations.items():
            terms = currents[name] + [x for x in (self.drive.get(name), external.get(name)) if x is not None]
            total = terms[0] if terms else 0.0
            for term in terms[1:]:
                total = total + term
            populations[name], outputs[name] = pop.model.step(populations[name], total, dt)
        # 3. this step's output in transit, each source's spiking neurons picked once
        sources = {proj.source: joined(proj.source, outputs) for proj in self.projections.values()}
        selections = self._select_sources(sources, projections)
        for name, proj in self.projections.items():
            projections[name] = proj.emit(projections[name], sources[proj.source], selections.get(name))
        # 4. plasticity
        for name, proj in self.projections.items():
            modulator = external.get(proj.plasticity.modulator) if proj.plasticity is not None else None
            pre, post = sources[proj.source], joined(proj.target, outputs)
            projections[name] = proj.learn(projections[name], pre, post, dt, modulator)
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
        """What ``simulate`` records when not told: every population's output."""
        return tuple(f"{pop}.{population.model.output_name}" for pop, population in self.populations.items())

    def record_names(self) -> tuple[str, ...]:
        names = [
            f"{pop}.{var}" for pop, population in self.populations.items() for var in population.model.record_names()
        ]
        for name, proj in self.projections.items():
            names.append(f"{name}.weights")
            names += [f"{name}.{field.name}" for field in attrs.fields(type(proj.synapse.init_state(torch.zeros(1))))]
            if proj.plasticity is not None:
                traces = proj.plasticity.init(1, 1, torch.zeros(1, 1))
                if traces is not None:
                    names += [f"{name}.{field.name}" for field in attrs.fields(type(traces)) if field.name != "traces"]
        return tuple(names)

    def read(self, state: NetworkState, output: dict, name: str) -> torch.Tensor:
        owner, _, variable = name.partition(".")
        if owner in self.populations:
            return self.populations[owner].model.read(state.populations[owner], output[owner], variable)
        pstate: ProjectionState = state.projections[owner]
        if variable == "weights":
            return pstate.weights
        if hasattr(pstate.synapse, variable):
            return getattr(pstate.synapse, variable)
        return getattr(pstate.plasticity, variable)

    def is_event(self, name: str) -> bool:
        owner, _, variable = name.partition(".")
        return owner in self.populations and self.populations[owner].model.is_event(variable)


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
