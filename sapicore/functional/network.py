"""Networks: named populations, projections between them and constant drives, as one pytree.

One network step (all populations and projections advance by ``dt`` ms) runs in this order:

1. every projection takes the input arriving at the start of this step (spikes emitted in earlier
   steps, at their delays) into its synapse model, and computes the synaptic current into its target
   population from the target's membrane potential at the end of the previous step;
2. every population steps with the sum of its synaptic currents, its constant ``drive`` (nA) and the
   external input given to ``step`` for it;
3. every projection applies its plasticity rule to this step's source and target outputs;
4. every projection puts this step's source spikes in transit (with the weights after learning).

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

import math
import warnings
from typing import Any

import attrs
import torch

from . import kernels
from .neurons.base import check_dt
from .projection import Projection, ProjectionState, select_sources
from .pytree import pytree, replace, tree_leaves

__all__ = ["Network", "NetworkState", "Population"]


@pytree
class Population:
    """A neuron model (parameters) and the number of neurons that share it."""

    model: Any
    size: int = attrs.field(validator=attrs.validators.instance_of(int))


@pytree
class NetworkState:
    """populations: name -> neuron state; projections: name -> :class:`ProjectionState`."""

    populations: dict
    projections: dict


def _check_network(instance: "Network", attribute: attrs.Attribute, value: Any) -> None:
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
        for role, pop in (("source", proj.source), ("target", proj.target)):
            if pop not in populations:
                raise ValueError(f"projection {name!r} has unknown {role} population {pop!r}; populations: {', '.join(populations)}")
        if proj.n_pre != populations[proj.source].size or proj.n_post != populations[proj.target].size:
            raise ValueError(
                f"projection {name!r} connects {proj.n_pre} -> {proj.n_post} neurons but {proj.source!r} has "
                f"{populations[proj.source].size} and {proj.target!r} has {populations[proj.target].size}"
            )
        if not getattr(populations[proj.target].model, "receives_projections", True):
            raise ValueError(f"projection {name!r} targets {proj.target!r}, an input population that cannot receive synapses")
        if proj.synapse.conductance_based and "v" not in populations[proj.target].model.record_names():
            raise ValueError(f"projection {name!r} is conductance-based but {proj.target!r} has no membrane potential v")
    for name in value:
        if name not in populations:
            raise ValueError(f"drive names unknown population {name!r}; populations: {', '.join(populations)}")


@pytree
class Network:
    """Populations, projections and constant drives (nA per population); see the module docstring."""

    populations: dict = attrs.field(factory=dict)
    projections: dict = attrs.field(factory=dict)
    drive: dict = attrs.field(factory=dict, validator=_check_network)

    output_name = "spikes"

    def init_state(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> NetworkState:
        """Every population at rest, every projection with its built weights and nothing in transit."""
        if not self.populations:
            raise ValueError("the network has no populations")
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
            raise TypeError(f"network inputs must be a dict keyed by population (or modulator) name, got {type(inputs).__name__}")
        known = set(self.populations) | self._modulators()
        unknown = sorted(set(inputs) - known)
        if unknown:
            raise ValueError(f"inputs name unknown populations or modulators {unknown}; known: {', '.join(sorted(known))}")
        return inputs

    def _modulators(self) -> set[str]:
        return {proj.plasticity.modulator for proj in self.projections.values() if hasattr(proj.plasticity, "modulator")}

    def step(self, state: NetworkState, inputs: Any, dt: float) -> tuple[NetworkState, dict]:
        """Advance the whole network by ``dt`` ms; return the new state and each population's spikes."""
        dt = check_dt(dt)
        external = self._external(inputs)
        populations, projections = dict(state.populations), dict(state.projections)
        currents: dict[str, list] = {name: [] for name in self.populations}
        for name, proj in self.projections.items():
            if not math.isclose(proj.dt, dt, rel_tol=1e-9):
                raise ValueError(f"projection {name!r} was built for dt={proj.dt} ms, not dt={dt} ms; rebuild it")
            pstate, arriving = proj.arrivals(projections[name])
            synapse = proj.synapse.update(pstate.synapse, arriving, dt)
            v = getattr(populations[proj.target], "v", None)
            currents[proj.target].append(proj.synapse.current(synapse, v))
            projections[name] = replace(pstate, synapse=synapse)
        outputs = {}
        for name, pop in self.populations.items():
            terms = currents[name] + [x for x in (self.drive.get(name), external.get(name)) if x is not None]
            total = terms[0] if terms else 0.0
            for term in terms[1:]:
                total = total + term
            populations[name], outputs[name] = pop.model.step(populations[name], total, dt)
        for name, proj in self.projections.items():
            modulator = external.get(getattr(proj.plasticity, "modulator", None))
            projections[name] = proj.learn(projections[name], outputs[proj.source], outputs[proj.target], dt, modulator)
        kernel = {
            name: proj.kind == "sparse" and kernels.usable(outputs[proj.source], projections[name].weights)
            for name, proj in self.projections.items()
        }
        selections = self._select_sources(outputs, kernel)
        for name, proj in self.projections.items():
            projections[name] = proj.emit(projections[name], outputs[proj.source], selections.get(proj.source), kernel[name])
        return replace(state, populations=populations, projections=projections), outputs

    def default_record(self) -> tuple[str, ...]:
        """What ``simulate`` records when not told: every population's output."""
        return tuple(f"{pop}.{population.model.output_name}" for pop, population in self.populations.items())

    def _select_sources(self, outputs: dict, kernel: dict) -> dict:
        """Pick each source population's spiking neurons once for its sparse projections that use torch ops."""
        capacities: dict[str, int] = {}
        for name, proj in self.projections.items():
            if proj.kind == "sparse" and not kernel[name]:
                capacities[proj.source] = max(capacities.get(proj.source, 0), proj.capacity)
        return {source: select_sources(outputs[source], capacity) for source, capacity in capacities.items()}

    def record_names(self) -> tuple[str, ...]:
        names = [f"{pop}.{var}" for pop, population in self.populations.items() for var in population.model.record_names()]
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

    def overflowed(self, state: NetworkState) -> torch.Tensor | None:
        """True (0-d bool tensor) if any sparse projection's overflow flag is raised; None without any."""
        flags = [state.projections[name].overflow.any() for name, proj in self.projections.items() if proj.kind == "sparse"]
        return torch.stack(flags).any() if flags else None

    def full_capacity(self) -> "Network":
        """This network with room for every source spike in each sparse projection (capacity = n_pre)."""
        projections = {name: replace(p, capacity=p.n_pre) if p.kind == "sparse" else p for name, p in self.projections.items()}
        return replace(self, projections=projections)

    def report_overflow(self, state: NetworkState) -> None:
        """Warn for every sparse projection whose spike buffer overflowed during the run."""
        for name, proj in self.projections.items():
            if proj.kind == "sparse" and bool(state.projections[name].overflow.any()):  # sync-ok: after the run
                warnings.warn(
                    f"projection {name!r}: more than capacity={proj.capacity} source neurons spiked in one step; "
                    "the excess spikes were not delivered. Rebuild it with a larger capacity.",
                    RuntimeWarning,
                    stacklevel=5,
                )
