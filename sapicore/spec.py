"""Network specifications in YAML: populations, projections, inputs, simulation and outputs.

A spec is checked as it is read: an unknown key, a missing field or a value of the wrong type raises
`SpecError` naming the file, the key path and what was expected. Example (``sapicore run
coba`` runs the shipped ``specs/coba.yaml``)::

    simulation: {dt: 0.1, duration: 1000.0, seed: 1, record: [exc.spikes], every: 1}
    populations:
      exc:
        model: LIF
        size: 3200
        parameters: {tau_mem: 20.0, v_rest: -60.0, r_mem: 100.0, t_ref: 5.0}
        initial: {v: {distribution: normal, mean: -55.0, std: 5.0}}
    projections:
      ee:
        source: exc
        target: exc
        connectivity: {rule: fixed_probability, p: 0.02, seed: 1}
        synapse: {model: Exponential, tau: 5.0, e_rev: 0.0}
        weight: 0.006
    drive: {exc: 0.2}
    outputs: {nix: true, raster: true, tensorboard: false}

Instead of ``populations`` and ``projections`` a spec may name a network builder, with its arguments
(``sapicore run microcircuit`` runs the shipped ``specs/microcircuit.yaml``)::

    builder: {name: potjans2014, scale: 0.1}

``simulation.discard`` (ms, default 0) leaves the first milliseconds out of the summary's rates and
ISI CVs (the transient after the initial state).
``simulation.transport`` (``auto``, the default, ``shared`` or ``gloo``) chooses how the processes
of a run under ``torchrun`` exchange spikes: shared memory where they share a machine, or gloo's
all-gather (any machines; with ``fast: true`` inside the compiled chunks too).

Connectivity rules: ``all_to_all``, ``one_to_one``, ``fixed_probability`` (``p``), ``fixed_in_degree``
and ``fixed_out_degree`` (``k``), ``fixed_total_number`` (``count``); a rule without ``seed`` takes one
drawn from ``simulation.seed``. Under ``torchrun`` a rank builds only its own targets' synapses
(``fixed_out_degree``, whose rows are drawn source by source, is drawn whole on every rank and cut).

A parameter, an initial value or a weight may be a number or a distribution drawn per neuron (or per
synapse) with the spec's seed: ``{distribution: normal, mean: m, std: s}``,
``{distribution: uniform, low: a, high: b}`` or ``{distribution: lognormal, mean: m, std: s}`` (of
the underlying normal). A weight or delay drawn per synapse is keyed by the synapse's target and its
number among that target's synapses (in the order of their sources), from a seed drawn from the
spec's seed, so a rank draws the values of its own synapses alone, as the whole network has them.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any

import attrs
import torch
from tree_config.yaml import yaml_loads

import sapicore.functional as sf
from sapicore.functional import connectivity as conn
from sapicore.functional.running.partition import TRANSPORTS, local_values, partition_built

__all__ = [
    "SpecError",
    "Spec",
    "load_spec",
    "load_data",
    "override",
    "parse_spec",
    "initial_state",
    "expand_sweep",
    "shipped_specs",
    "SHIPPED",
]

SHIPPED = Path(__file__).resolve().parent / "specs"

MODELS = {
    "LIF": sf.LIF,
    "AdEx": sf.AdEx,
    "Izhikevich": sf.Izhikevich,
    "HodgkinHuxley": sf.HodgkinHuxley,
    "Analog": sf.Analog,
    "Oscillator": sf.Oscillator,
    "PoissonSource": sf.PoissonSource,
    "SpikeInput": sf.SpikeInput,
}
SYNAPSES = {"Delta": sf.Delta, "Exponential": sf.Exponential, "DualExponential": sf.DualExponential, "Alpha": sf.Alpha}
RULES = {"STDP": sf.STDP, "TripletSTDP": sf.TripletSTDP, "Hebbian": sf.Hebbian, "Oja": sf.Oja}
SHORT_TERM = {"TsodyksMarkram": sf.TsodyksMarkram}
CONNECTIVITY = {
    "all_to_all": (conn.all_to_all, ("allow_self",)),
    "one_to_one": (conn.one_to_one, ()),
    "fixed_probability": (conn.fixed_probability, ("p", "seed", "allow_self")),
    "fixed_in_degree": (conn.fixed_in_degree, ("k", "seed", "allow_self")),
    "fixed_out_degree": (conn.fixed_out_degree, ("k", "seed", "allow_self")),
    "fixed_total_number": (conn.fixed_total_number, ("count", "seed")),
}
DISTRIBUTIONS = {"normal": ("mean", "std"), "uniform": ("low", "high"), "lognormal": ("mean", "std")}
BY_TARGET = ("all_to_all", "one_to_one", "fixed_probability", "fixed_in_degree", "fixed_total_number")  # targets=
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _potjans2014(reader: _Reader, arguments: dict, dt: float, share: Any = None) -> tuple[sf.Network, dict, dict]:
    from sapicore.networks import potjans2014

    options = reader.mapping(
        arguments, "builder", optional=("scale", "k_scale", "seed", "background")
    )  # BUILDER_OPTIONS
    values = {
        key: reader.number(options[key], f"builder.{key}", positive=True)
        for key in ("scale", "k_scale")
        if key in options
    }
    if "seed" in options:
        values["seed"] = reader.integer(options["seed"], "builder.seed")
    if "background" in options:
        values["background"] = reader.choice(options["background"], "builder.background", ("poisson", "keyed", "dc"))
    network = _build(lambda **kw: potjans2014.microcircuit(dt=dt, share=share, **kw), values, reader, "builder")
    reference = {
        label: dict(zip(potjans2014.POPULATIONS, rates)) for label, rates in potjans2014.REFERENCE_SETS.items()
    }
    notes = (potjans2014.DOWNSCALED_NOTE,) if values.get("scale", 1.0) < 1.0 else ()
    return network, potjans2014.initial_values(network, reader.generator), reference, notes


#: name -> function(reader, arguments, dt, share) -> (network, initial values, labelled sets of reference
#: rates in Hz, notes for the summary); ``share``: None, or (rank, world) to build only that rank's share
BUILDERS = {"potjans2014": _potjans2014}
#: what each builder takes (for the command's help)
BUILDER_OPTIONS = {
    "potjans2014": "scale (0, 1]: neurons; k_scale (0, 1], default scale: in-degrees; seed; "
    "background: poisson, keyed (Poisson keyed by neuron and step) or dc",
}


class SpecError(ValueError):
    """A mistake in a spec file: ``file: key.path: what is wrong``."""


@attrs.frozen
class Simulation:
    """dt and duration (ms), device, dtype, seed, recorded names, recording interval, fast path, and
    how the processes of a partitioned run (under torchrun) exchange spikes: ``transport`` "auto"
    (shared memory where the ranks share a machine, else gloo), "shared" or "gloo"."""

    dt: float
    duration: float
    device: str = "cpu"
    dtype: str = "float32"
    seed: int = 0
    record: tuple[str, ...] = ()
    every: int = 1
    fast: bool = False
    discard: float = 0.0
    transport: str = "auto"


@attrs.frozen
class Outputs:
    """Which files ``sapicore run`` writes: the NIX log of the records, a raster plot, TensorBoard."""

    nix: bool = True
    raster: bool = True
    tensorboard: bool = False


@attrs.frozen(eq=False)
class Spec:
    """A parsed spec: the network, how to initialise it, how to run it and what to write."""

    source: Path
    network: sf.Network
    initial: dict
    simulation: Simulation
    outputs: Outputs
    reference_rates: dict = attrs.field(factory=dict)  # label -> {population: Hz}
    notes: tuple = ()  # what a reader of the summary should know (a downscaled network's expected deviation)


def _device(reader: _Reader, value: Any) -> str:
    """A device this machine has, as a string (``cpu``, ``cuda``, ``cuda:1``)."""
    try:
        device = torch.device(str(value))
    except RuntimeError:
        raise reader.fail("simulation.device", f"expected a device such as cpu or cuda, got {value!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise reader.fail("simulation.device", "cuda was asked for but this machine has no usable CUDA GPU; use cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise reader.fail("simulation.device", f"{value} does not exist: {torch.cuda.device_count()} GPU(s) here")
    if device.type not in ("cpu", "cuda"):
        raise reader.fail("simulation.device", f"expected cpu or cuda, got {value!r}")
    return str(value)


class _Reader:
    """Type checks that name the file and the key path of each value."""

    def __init__(self, source: Path, generator: torch.Generator) -> None:
        self.source, self.generator = source, generator

    def fail(self, path: str, message: str) -> SpecError:
        return SpecError(f"{self.source}: {path or '(top level)'}: {message}")

    def mapping(self, value: Any, path: str, required: tuple = (), optional: Any = (), named: bool = False) -> dict:
        """A mapping with the given keys, or (``named``) one whose keys are names of the user's choice."""
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {type(value).__name__} {value!r}")
        if named:
            for key in value:
                if not isinstance(key, str) or not key or "." in key:
                    raise self.fail(path, f"names must be non-empty strings without '.', got {key!r}")
            return value
        unknown = sorted(set(value) - set(required) - set(optional))
        if unknown:
            allowed = ", ".join(list(required) + list(optional))
            raise self.fail(
                f"{path}.{unknown[0]}" if path else str(unknown[0]), f"unknown key; expected one of: {allowed}"
            )
        missing = [key for key in required if key not in value]
        if missing:
            raise self.fail(path, f"missing required key {missing[0]!r}")
        return value

    def number(self, value: Any, path: str, positive: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise self.fail(path, f"expected a finite number, got {value!r}")
        if positive and value <= 0:
            raise self.fail(path, f"expected a number > 0, got {value!r}")
        return float(value)

    def integer(self, value: Any, path: str, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(path, f"expected an integer >= {minimum}, got {value!r}")
        return value

    def choice(self, value: Any, path: str, choices: Any) -> str:
        if not isinstance(value, (str, type(None))) or value not in choices:  # a list is no name
            raise self.fail(path, f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"expected true or false, got {value!r}")
        return value

    def value(self, value: Any, path: str, count: int) -> Any:
        """A number, a list of numbers (e.g. an oscillator's components), or ``count`` draws from a
        distribution mapping."""
        if isinstance(value, list):
            if not value:
                raise self.fail(path, "expected a non-empty list of numbers")
            return torch.tensor(
                [self.number(item, f"{path}[{i}]") for i, item in enumerate(value)], dtype=torch.float64
            )
        if not isinstance(value, dict):
            return self.number(value, path)
        kind, a, b = self.distribution(value, path)
        if kind == "uniform":
            return a + (b - a) * torch.rand(count, generator=self.generator, dtype=torch.float64)
        draws = a + b * torch.randn(count, generator=self.generator, dtype=torch.float64)
        return torch.exp(draws) if kind == "lognormal" else draws

    def distribution(self, value: dict, path: str) -> tuple[str, float, float]:
        """A distribution mapping's kind and its two numbers, checked."""
        kind = self.choice(value.get("distribution"), f"{path}.distribution", DISTRIBUTIONS)
        first, second = DISTRIBUTIONS[kind]
        self.mapping(value, path, required=("distribution", first, second))
        a, b = self.number(value[first], f"{path}.{first}"), self.number(value[second], f"{path}.{second}")
        if kind == "uniform" and b < a:
            raise self.fail(path, f"high ({b}) must not be below low ({a})")
        if kind != "uniform" and b < 0:
            raise self.fail(f"{path}.std", f"expected a number >= 0, got {b}")
        return kind, a, b

    def synapse_values(self, value: Any, path: str, links: sf.Connectivity) -> Any:
        """A number, a list of numbers, or one draw per synapse of ``links`` from a distribution
        mapping, keyed by the synapse's target and its number among the target's synapses (in the
        order of their sources) from one seed drawn from the spec's generator: a share holding some
        targets draws their synapses' values as the whole network has them."""
        if not isinstance(value, dict):
            return self.value(value, path, len(links))
        kind, a, b = self.distribution(value, path)
        seed = int(torch.randint(0, 2**31 - 1, (), generator=self.generator))
        order = conn.stable_order(links.post, max(links.n_post, 1))  # the synapses target by target
        counts = torch.bincount(links.post, minlength=links.n_post)
        rows = torch.nonzero(counts).reshape(-1)
        if kind == "uniform":
            drawn = a + (b - a) * conn.keyed_uniform_rows(seed, rows, counts[rows], 4)
        else:
            drawn = a + b * conn.keyed_normal_rows(seed, rows, counts[rows])[0].to(torch.float64)
        values = torch.empty(len(links), dtype=torch.float64)
        values[order] = torch.exp(drawn) if kind == "lognormal" else drawn
        return values


def _keyed_values(entry: dict) -> bool:
    """Whether a projection's weight and delay are numbers or distributions (no list of values for
    the whole projection's synapses), so that a share may draw its own targets' synapses alone."""
    return not any(isinstance(entry.get(key), list) for key in ("weight", "delay"))


def _whole_setting(field: Any, value: Any) -> bool:
    """Whether ``value`` is an int given to a model field that is not a numeric parameter (a
    ``PoissonSource``'s ``seed`` or ``trains``), which takes it as it is."""
    return isinstance(value, int) and not isinstance(value, bool) and field.converter is None


def _build(factory: Any, arguments: dict, reader: _Reader, path: str) -> Any:
    try:
        return factory(**arguments)
    except SpecError:  # a part built inside (a share's projections) says where itself
        raise
    except (TypeError, ValueError) as err:
        raise reader.fail(path, str(err)) from None


def parse_spec(data: Any, source: str | Path = "<spec>", share: tuple[int, int] | None = None) -> Spec:
    """Check and build a spec from already-loaded YAML data. ``share=(rank, world)``: only that rank's
    share of its network (``sapicore.functional.partition``), the initial values cut to its neurons: a
    builder builds the share itself; a network given by populations draws every projection as the
    whole network does and cuts it to the rank's targets as soon as it is made, so that at most one
    whole projection is held at a time."""
    source = Path(source)
    generator = torch.Generator()
    reader = _Reader(source, generator)
    built = isinstance(data, dict) and "builder" in data
    top = reader.mapping(
        data,
        "",
        required=("simulation", "builder") if built else ("simulation", "populations"),
        optional=("outputs", "sweep") if built else ("projections", "drive", "outputs", "sweep"),
    )

    sim = reader.mapping(
        top["simulation"],
        "simulation",
        required=("dt", "duration"),
        optional=("device", "dtype", "seed", "record", "every", "fast", "discard", "transport"),
    )
    seed = reader.integer(sim.get("seed", 0), "simulation.seed")
    generator.manual_seed(seed)
    record = sim.get("record", [])
    if not isinstance(record, list) or not all(isinstance(name, str) for name in record):
        raise reader.fail("simulation.record", f"expected a list of names such as exc.spikes, got {record!r}")
    dt = reader.number(sim["dt"], "simulation.dt", positive=True)
    duration = reader.number(sim["duration"], "simulation.duration", positive=True)
    if duration < dt:
        raise reader.fail("simulation.duration", f"{duration} ms is shorter than one step (dt = {dt} ms)")
    simulation = Simulation(
        dt=dt,
        duration=duration,
        device=_device(reader, sim.get("device", "cpu")),
        dtype=reader.choice(sim.get("dtype", "float32"), "simulation.dtype", DTYPES),
        seed=seed,
        record=tuple(record),
        every=reader.integer(sim.get("every", 1), "simulation.every", minimum=1),
        fast=reader.boolean(sim.get("fast", False), "simulation.fast"),
        discard=reader.number(sim.get("discard", 0.0), "simulation.discard"),
        transport=reader.choice(sim.get("transport", "auto"), "simulation.transport", TRANSPORTS),
    )
    if not 0.0 <= simulation.discard < duration:
        raise reader.fail(
            "simulation.discard", f"expected a time in [0, duration = {duration}) ms, got {simulation.discard}"
        )
    outputs_spec = reader.mapping(top.get("outputs", {}), "outputs", optional=("nix", "raster", "tensorboard"))
    outputs = Outputs(**{key: reader.boolean(value, f"outputs.{key}") for key, value in outputs_spec.items()})
    if built:
        builder = top["builder"]
        if not isinstance(builder, dict):
            raise reader.fail(
                "builder", f"expected a mapping such as {{name: potjans2014, scale: 0.1}}, got {builder!r}"
            )
        name = reader.choice(builder.get("name"), "builder.name", BUILDERS)
        network, initial, reference, notes = BUILDERS[name](
            reader, {k: v for k, v in builder.items() if k != "name"}, dt, share
        )
        return _finish(reader, source, network, initial, simulation, outputs, reference, notes)

    populations, initial = {}, {}
    pops = reader.mapping(top["populations"], "populations", named=True)
    if not pops:
        raise reader.fail("populations", "expected at least one population")
    for name, entry in pops.items():
        path = f"populations.{name}"
        entry = reader.mapping(
            entry, path, required=("model", "size"), optional=("parameters", "preset", "initial", "parts")
        )
        model_cls = MODELS[reader.choice(entry["model"], f"{path}.model", MODELS)]
        size = reader.integer(entry["size"], f"{path}.size", minimum=1)
        parameters = reader.mapping(
            entry.get("parameters", {}), f"{path}.parameters", optional=[f.name for f in attrs.fields(model_cls)]
        )
        fields = attrs.fields_dict(model_cls)
        values = {  # numbers of numeric parameters as floats or draws; a whole number of another field (a seed) kept
            key: value
            if isinstance(value, str) or value is None or _whole_setting(fields[key], value)
            else reader.value(value, f"{path}.parameters.{key}", size)
            for key, value in parameters.items()
        }
        for key in model_cls.component_fields:  # drawn per neuron: one component each
            if isinstance(parameters.get(key), dict):
                values[key] = values[key].unsqueeze(-1)
        if "preset" in entry:
            if model_cls is not sf.Izhikevich:
                raise reader.fail(f"{path}.preset", "only the Izhikevich model has presets")
            model = _build(lambda **v: sf.Izhikevich.preset(entry["preset"], **v), values, reader, f"{path}.preset")
        else:
            model = _build(model_cls, values, reader, f"{path}.parameters")
        parts = reader.mapping(entry.get("parts", {}), f"{path}.parts", named=True)
        parts = {part: reader.integer(count, f"{path}.parts.{part}", minimum=1) for part, count in parts.items()}
        if parts and sum(parts.values()) != size:
            raise reader.fail(f"{path}.parts", f"the parts hold {sum(parts.values())} neurons but size is {size}")
        populations[name] = sf.Population(model, size, parts=parts)
        state_fields = [f.name for f in attrs.fields(model_cls.state_class)]
        init = reader.mapping(entry.get("initial", {}), f"{path}.initial", optional=state_fields)
        initial[name] = {key: reader.value(value, f"{path}.initial.{key}", size) for key, value in init.items()}

    counts = {}  # population and part names -> number of neurons
    offsets = {}  # ... -> number of their first neuron in their population (a share holds those = rank mod world)
    for name, population in populations.items():
        counts[name], offsets[name] = population.size, 0
        first = 0
        for part, count in population.parts:
            if part in counts or part in populations:
                raise reader.fail(f"populations.{name}.parts.{part}", "is already a population or part name")
            counts[part], offsets[part] = count, first
            first += count

    def made() -> Any:  # (name, projection), built one after the other
        for name, entry in reader.mapping(top.get("projections", {}), "projections", named=True).items():
            path = f"projections.{name}"
            entry = reader.mapping(
                entry,
                path,
                required=("source", "target", "connectivity", "synapse", "weight"),
                optional=("delay", "representation", "capacity", "plasticity", "normalize", "short_term"),
            )
            pre = reader.choice(entry["source"], f"{path}.source", counts)
            post = reader.choice(entry["target"], f"{path}.target", counts)
            n_pre, n_post = counts[pre], counts[post]
            spec_conn = entry["connectivity"]
            rule = reader.choice(
                spec_conn.get("rule") if isinstance(spec_conn, dict) else None,
                f"{path}.connectivity.rule",
                CONNECTIVITY,
            )
            builder, options = CONNECTIVITY[rule]
            needed = tuple(option for option in options if option in ("p", "k", "count"))  # the rule's size
            spec_conn = reader.mapping(
                spec_conn,
                f"{path}.connectivity",
                required=("rule", *needed),
                optional=tuple(option for option in options if option not in needed),
            )
            arguments = {key: value for key, value in spec_conn.items() if key != "rule"}
            if "seed" in options and arguments.get("seed") is None:  # the spec's seed decides (every rank alike)
                arguments["seed"] = int(torch.randint(0, 2**31 - 1, (), generator=reader.generator))
            if rule in BY_TARGET and share is not None and _keyed_values(entry):
                # drawn target by target: a share draws its own targets' synapses only (and their
                # weights and delays, keyed alike)
                rank, world = share
                arguments["targets"] = torch.arange((rank - offsets[post]) % world, n_post, world)
            sizes = {"n": n_pre} if rule == "one_to_one" else {"n_pre": n_pre, "n_post": n_post}
            if rule == "one_to_one" and n_pre != n_post:
                raise reader.fail(f"{path}.connectivity", f"one_to_one needs equal sizes, got {n_pre} -> {n_post}")
            connectivity = _build(builder, {**sizes, **arguments}, reader, f"{path}.connectivity")
            syn = reader.mapping(
                entry["synapse"],
                f"{path}.synapse",
                required=("model",),
                optional=("tau", "tau_rise", "tau_decay", "e_rev"),
            )
            syn_cls = SYNAPSES[reader.choice(syn["model"], f"{path}.synapse.model", SYNAPSES)]
            synapse = _build(syn_cls, {k: v for k, v in syn.items() if k != "model"}, reader, f"{path}.synapse")
            plasticity = None
            if "plasticity" in entry:
                plastic = entry["plasticity"]
                rule_name = reader.choice(
                    plastic.get("rule") if isinstance(plastic, dict) else None, f"{path}.plasticity.rule", RULES
                )
                rule_cls = RULES[rule_name]
                plastic = reader.mapping(
                    plastic, f"{path}.plasticity", required=("rule",), optional=[f.name for f in attrs.fields(rule_cls)]
                )
                plasticity = _build(
                    rule_cls, {k: v for k, v in plastic.items() if k != "rule"}, reader, f"{path}.plasticity"
                )
            short_term = None
            if "short_term" in entry:
                given = entry["short_term"]
                model = reader.choice(
                    given.get("model") if isinstance(given, dict) else None, f"{path}.short_term.model", SHORT_TERM
                )
                given = reader.mapping(
                    given,
                    f"{path}.short_term",
                    required=("model",),
                    optional=[f.name for f in attrs.fields(SHORT_TERM[model])],
                )
                short_term = _build(
                    SHORT_TERM[model], {k: v for k, v in given.items() if k != "model"}, reader, f"{path}.short_term"
                )
            options = {
                "dt": simulation.dt,
                "delay": reader.synapse_values(entry.get("delay", 0.0), f"{path}.delay", connectivity),
                "kind": reader.choice(
                    entry.get("representation", "sparse"), f"{path}.representation", ("sparse", "dense")
                ),
                "plasticity": plasticity,
                "short_term": short_term,
            }
            if "capacity" in entry:
                options["capacity"] = reader.integer(entry["capacity"], f"{path}.capacity", minimum=1)
            if "normalize" in entry:
                options["normalize"] = reader.number(entry["normalize"], f"{path}.normalize", positive=True)
            weight = reader.synapse_values(entry["weight"], f"{path}.weight", connectivity)
            built = _build(
                lambda **kw: sf.projection(pre, post, connectivity, weight, synapse, **kw), options, reader, path
            )
            connectivity = weight = options = None  # the synapse lists and per-synapse values: not held while cut
            yield name, built
            del built

    def drive() -> dict:
        values = {}
        for name, value in reader.mapping(top.get("drive", {}), "drive", optional=tuple(counts)).items():
            values[name] = reader.value(value, f"drive.{name}", counts[name])
        return values

    if share is None:
        projections = dict(made())
        network = _build(
            sf.Network,
            {"populations": populations, "projections": projections, "drive": drive()},
            reader,
            "projections",
        )
        return _finish(reader, source, network, initial, simulation, outputs, {})
    # this rank's share: each projection cut to the rank's targets as soon as it is built (the draws as
    # for the whole network, in the same order), the initial values to the rank's neurons
    rank, world = share
    network = _build(
        lambda **kw: partition_built(**kw, rank=rank, world=world),
        {"populations": populations, "projections": made(), "drive": drive},
        reader,
        "projections",
    )
    initial = {
        name: {key: local_values(populations[name].size, value, rank, world) for key, value in values.items()}
        for name, values in initial.items()
    }
    return _finish(reader, source, network, initial, simulation, outputs, {})


def _finish(
    reader: _Reader,
    source: Path,
    network: sf.Network,
    initial: dict,
    simulation: Simulation,
    outputs: Outputs,
    reference: dict,
    notes: tuple = (),
) -> Spec:
    """The spec of a built network: its dtype set, its records checked."""
    dtype = DTYPES[simulation.dtype]
    network = sf.to(network, dtype=dtype)
    known = set(network.record_names())
    for index, name in enumerate(simulation.record):
        if name not in known:
            raise reader.fail(
                f"simulation.record[{index}]",
                f"unknown record {name!r}; this network offers: {', '.join(sorted(known))}",
            )
    return Spec(source, network, initial, simulation, outputs, reference, notes)


def load_data(path: str | Path) -> tuple[Path, Any]:
    """The path and the raw YAML data of a spec file (or a shipped spec's name)."""
    path = Path(path)
    if not path.is_file() and (SHIPPED / f"{path.name}.yaml").exists():
        path = SHIPPED / f"{path.name}.yaml"
    if not path.is_file():
        import difflib

        names = sorted(p.stem for p in SHIPPED.glob("*.yaml"))
        close = difflib.get_close_matches(path.stem, names, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise SpecError(f"{path}: no such spec file (shipped specs: {', '.join(names)}){hint}")
    try:
        return path, yaml_loads(path.read_text())
    except Exception as err:  # ruamel's parser errors carry line and column
        raise SpecError(f"{path}: not valid YAML: {err}") from None


def shipped_specs() -> dict[str, str]:
    """The shipped specs (name -> the first line of the comment that opens each file)."""
    found = {}
    for path in sorted(SHIPPED.glob("*.yaml")):
        first = next((line for line in path.read_text().splitlines() if line.startswith("#")), "# ")
        found[path.stem] = first.lstrip("# ").rstrip(":")
    return found


def load_spec(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Spec:
    """Read and check a spec file; a shipped spec can be named without its path (``coba``).

    ``overrides``: ``"dotted.key=value"`` strings (the value in YAML) set before the spec is checked,
    e.g. ``"builder.scale=0.05"`` or ``"simulation.duration=200"``.
    """
    path, data = load_data(path)
    return parse_spec(override(data, overrides, path), path)


def override(data: Any, overrides: list[str] | tuple[str, ...], source: str | Path = "<spec>") -> Any:
    """``data`` with each ``"dotted.key=value"`` of ``overrides`` set (the value read as YAML)."""
    reader = _Reader(Path(source), torch.Generator())
    for item in overrides:
        key, equals, text = item.partition("=")
        if not equals or not key:
            raise reader.fail(f"--set {item}", "expected KEY=VALUE, e.g. builder.scale=0.05")
        try:
            value = yaml_loads(text) if text.strip() else None
        except Exception:
            raise reader.fail(f"--set {item}", "the value is not valid YAML") from None
        _set_path(data, key, value, reader, what="--set")
    return data


def _set_path(data: Any, dotted: str, value: Any, reader: _Reader, what: str = "sweep") -> None:
    keys = dotted.split(".")
    node = data
    for depth, key in enumerate(keys[:-1]):
        if not isinstance(node, dict) or key not in node:
            raise reader.fail(f"{what}: {dotted}", f"no such key {'.'.join(keys[: depth + 1])!r} in the spec")
        node = node[key]
    if not isinstance(node, dict):
        raise reader.fail(f"{what}: {dotted}", "does not lead to a mapping")
    node[keys[-1]] = value


def expand_sweep(data: Any, source: str | Path = "<spec>") -> tuple[list[Any], list[dict]]:
    """The lanes of a spec's ``sweep:`` section: one spec data per lane and its labels.

    ``sweep`` holds one of ``grid`` (every combination), ``zip`` (values side by side) or ``random``
    (``count`` draws, ``seed``, and a distribution per parameter); keys are dotted paths into the spec
    (``populations.exc.parameters.tau_mem``); beside it, ``ranks_per_network`` (see
    `ranks_per_network`). A spec without ``sweep`` is one lane.
    """
    import copy
    import itertools

    source = Path(source)
    reader = _Reader(source, torch.Generator())
    if not isinstance(data, dict) or "sweep" not in data:
        return [data], [{}]
    sweep = reader.mapping(data["sweep"], "sweep", optional=("grid", "zip", "random", "ranks_per_network"))
    sweep = {key: value for key, value in sweep.items() if key != "ranks_per_network"}
    if len(sweep) != 1:
        raise reader.fail("sweep", "give exactly one of grid, zip or random")
    kind, spec = next(iter(sweep.items()))
    if kind == "random":
        spec = reader.mapping(spec, "sweep.random", required=("count", "parameters"), optional=("seed",))
        count = reader.integer(spec["count"], "sweep.random.count", minimum=1)
        reader.generator.manual_seed(reader.integer(spec.get("seed", 0), "sweep.random.seed"))
        parameters = spec["parameters"]
        if not isinstance(parameters, dict) or not parameters:
            raise reader.fail("sweep.random.parameters", "expected a mapping of dotted paths to distributions")
        draws = {key: reader.value(value, f"sweep.random.parameters.{key}", count) for key, value in parameters.items()}
        labels = [{key: float(values[i]) for key, values in draws.items()} for i in range(count)]
    else:
        if not isinstance(spec, dict) or not spec:
            raise reader.fail(f"sweep.{kind}", "expected a mapping of dotted paths to lists of values")
        for key, values in spec.items():
            if not isinstance(values, list) or not values:
                raise reader.fail(f"sweep.{kind}.{key}", f"expected a non-empty list of values, got {values!r}")
        keys = list(spec)
        if kind == "grid":
            combos = itertools.product(*spec.values())
        else:
            lengths = {len(values) for values in spec.values()}
            if len(lengths) != 1:
                raise reader.fail(f"sweep.{kind}", f"zip needs lists of one length, got lengths {sorted(lengths)}")
            combos = zip(*spec.values())
        labels = [dict(zip(keys, combo)) for combo in combos]
    lanes = []
    for label in labels:
        lane = copy.deepcopy({key: value for key, value in data.items() if key != "sweep"})
        for key, value in label.items():
            _set_path(lane, key, value, reader)
        lanes.append(lane)
    return lanes, labels


def ranks_per_network(data: Any, source: str | Path = "<spec>") -> int:
    """A sweep's ``ranks_per_network`` (default 1): under ``torchrun``, the processes that run each
    network together, partitioned (``sapicore.functional.partition``); the processes form groups of
    that many, each group running its share of the lanes as vmap lanes of its ranks' shares."""
    sweep = data.get("sweep") if isinstance(data, dict) else None
    if not isinstance(sweep, dict) or "ranks_per_network" not in sweep:
        return 1
    return _Reader(Path(source), torch.Generator()).integer(
        sweep["ranks_per_network"], "sweep.ranks_per_network", minimum=1
    )


def initial_state(spec: Spec) -> sf.NetworkState:
    """The network's resting state with the spec's initial values applied."""
    dtype = DTYPES[spec.simulation.dtype]
    state = spec.network.init_state(device=spec.simulation.device, dtype=dtype)
    populations = {}
    for name, pop_state in state.populations.items():
        changes = {
            key: torch.zeros_like(getattr(pop_state, key))
            + torch.as_tensor(value, dtype=dtype).to(getattr(pop_state, key).device)
            for key, value in spec.initial.get(name, {}).items()
        }
        populations[name] = sf.replace(pop_state, **changes)
    return sf.replace(state, populations=populations)
