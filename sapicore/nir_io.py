"""Model exchange through NIR, the Neuromorphic Intermediate Representation (``pip install 'sapicore[nir]'``).

``to_nir(network)`` writes a functional network (or a parsed spec) as a ``nir.NIRGraph``;
``from_nir(graph, dt=...)`` builds a network back. ``nir.write(path, graph)`` and ``nir.read(path)``
store graphs in NIR's HDF5 files; ``from_nir`` also takes such a path.

What maps (NIR's units: time in ms, potentials in mV, as its primitives table states):

| Sapicore | NIR |
|---|---|
| `SpikeInput` population | `Input` (shape `[n]`) |
| `LIF` (`tau_syn=None`, `t_ref=0`) | `LIF` (tau = tau_mem, r = r_mem, v_leak = v_rest) |
| `LIF` with `tau_syn` (`t_ref=0`) | `CubaLIF` (`w_in = tau_syn / dt`, see below) |
| `Analog` (identity, no clipping) | `LI` (r = gain, v_leak = bias) |
| projection with `Delta` current synapses | `Linear` (`weight`: (targets, sources)) |
| a delay of `d` steps shared by all its synapses | `Delay` (`d * dt` ms) after the `Linear` |
| a population's constant drive `I` | folded into `v_leak` (+ `r I`) of an LIF or LI |
| output populations | `Output` (shape `[n]`) |

Conventions. A spike is the value 1 held for one step of ``dt`` ms, and a projection's output a
current held over the next step (Sapicore delivers every projection one step after emission; a
library that runs a feed-forward graph layer by layer within one step sees each layer one step
earlier). For ``CubaLIF``, ``tau_syn dI/dt = -I + w_in S``: a spike then adds ``w_in dt / tau_syn``
times its weight to ``I``, as Sapicore's LIF adds the arriving weight to ``i_syn``; so
``w_in = tau_syn / dt`` on export, and on import the incoming weights are scaled by
``w_in dt / tau_syn``. NIR's threshold is ``v > v_threshold``, Sapicore's ``v >= v_thresh``. A
network whose drive was folded into ``v_leak`` comes back resting at that ``v_leak`` (the original
starts from ``v_rest``): give the imported network the original's initial ``v`` to replay a run.

What does not map raises ``NIRUnsupported`` listing every element and why (AdEx, Izhikevich,
Hodgkin-Huxley, Poisson sources, oscillators, refractory periods, conductance, exponential and
dual-exponential synapses, plasticity, short-term plasticity, per-synapse delays, parts and grouped
populations); nothing
is approximated silently. Graphs written by snnTorch or Norse give time constants in seconds: pass
``time_unit="s"`` to ``from_nir`` (graphs written here say ``"ms"`` in their metadata), and
``method="euler"``: the LIF then decays its synaptic current by ``1 - dt / tau_syn`` per step as
they do, and their spikes come out exactly (``benchmarks/nir_exchange.py``). Norse 1.1 writes
``tau = dt / tau_mem_inv`` (its step times the time constant): divide by its step (1 ms) first.
Graphs traced from a batched sample (an ``Input`` of shape ``[1, n]``) and neuron nodes with no
declared shape import; their sizes come from their parameters or the ``Linear`` that feeds them.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

try:
    import nir
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("sapicore.nir_io needs the nir package: pip install 'sapicore[nir]' (or nir)") from err

import sapicore.functional as sf
from sapicore.functional import connectivity
from sapicore.functional.models.neurons.base import check_dt

__all__ = ["NIRUnsupported", "to_nir", "from_nir"]

TIME_UNITS = {"ms": 1.0, "s": 1000.0}


class NIRUnsupported(ValueError):
    """Elements of a network or graph that NIR (or Sapicore) cannot express, each with the reason."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("cannot convert: " + "; ".join(problems))


def _array(value: Any, n: int) -> np.ndarray:
    """A parameter (number or tensor) as a float array of ``n`` values."""
    return np.broadcast_to(_values(value), (n,)).copy()


def _dense_weights(projection: Any, weights: torch.Tensor) -> np.ndarray:
    """The (sources, targets) weight matrix of a dense or sparse projection."""
    weights = weights.detach().to("cpu", torch.float64)
    if projection.kind == "dense":
        return (weights * projection.mask.cpu()).numpy()
    n_pre, n_post = projection.n_pre, projection.n_post
    targets = projection.targets.long().cpu()
    sources = projection.row_sources().cpu()[:, None].expand_as(targets)
    full = torch.zeros(n_pre + 1, n_post + 1, dtype=torch.float64)
    full.index_put_((sources, targets), weights, accumulate=True)
    return full[:n_pre, :n_post].numpy()


def _uniform_delay(projection: Any) -> int | None:
    """The projection's delay in steps if all its synapses share it, else None."""
    if not isinstance(projection.delays, torch.Tensor):
        return int(projection.delays)
    real = projection.delays[projection.mask].long()
    if real.numel() == 0:
        return 0
    first = int(real.flatten()[0])
    return first if bool((real == first).all()) else None


def to_nir(
    network: Any,
    *,
    dt: float | None = None,
    outputs: tuple[str, ...] | None = None,
    state: sf.NetworkState | None = None,
    time_unit: str = "ms",
) -> nir.NIRGraph:
    """``network`` (a ``sf.Network``, or a spec from ``sapicore.spec``) as a NIR graph.

    Args:
        dt: the step (ms), needed for ``CubaLIF`` and delays; default the network's (its
            projections') or the spec's.
        outputs: populations to expose as ``Output`` nodes; default those that project nowhere
            (inputs aside).
        state: weights to write (e.g. after learning); default the network's built weights.
        time_unit: "ms" (NIR's table) or "s" (what snnTorch and Norse read: snnTorch takes every
            file's time constants as seconds), the unit of the time constants and delays written.
    """
    if time_unit not in TIME_UNITS:
        raise ValueError(f"time_unit must be 'ms' or 's', got {time_unit!r}")
    if hasattr(network, "network") and hasattr(network, "simulation"):  # a parsed spec
        dt = network.simulation.dt if dt is None else dt
        network = network.network
    if not isinstance(network, sf.Network):
        raise TypeError(f"to_nir takes a sapicore.functional.Network or a spec, got {type(network).__name__}")
    dt = network.dt if dt is None else dt
    problems: list[str] = []
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    delays = {name: _uniform_delay(projection) for name, projection in network.projections.items()}
    for name, projection in network.projections.items():
        source, target = projection.source, projection.target
        if not (isinstance(source, str) and isinstance(target, str)) or not (
            source in network.populations and target in network.populations
        ):
            problems.append(f"projection {name!r}: joins parts or groups of populations (NIR needs whole ones)")
            continue
        synapse = projection.synapse
        if type(synapse) is not sf.Delta or synapse.e_rev is not None:
            kind = f"{type(synapse).__name__}" + (
                " with e_rev (conductance)" if getattr(synapse, "e_rev", None) is not None else ""
            )
            problems.append(
                f"projection {name!r}: {kind} synapses (NIR's Linear carries current-based Delta synapses; "
                "for exponential currents give the target LIF a tau_syn)"
            )
        if projection.plasticity is not None:
            problems.append(f"projection {name!r}: plasticity ({type(projection.plasticity).__name__}) has no NIR form")
        if projection.normalize is not None:
            problems.append(f"projection {name!r}: weight normalisation has no NIR form")
        if projection.short_term is not None:
            problems.append(f"projection {name!r}: short-term plasticity (TsodyksMarkram) has no NIR form")
        if delays[name] is None:
            problems.append(f"projection {name!r}: per-synapse delays (NIR's Delay holds one per node)")
    needs_dt = [n for n, p in network.populations.items() if type(p.model) is sf.LIF and p.model.tau_syn is not None]
    needs_dt += [name for name, delay in delays.items() if delay]
    if needs_dt and dt is None:
        raise ValueError(f"give dt (ms): {', '.join(needs_dt)} need it (CubaLIF's w_in, delays)")
    for name, population in network.populations.items():
        model, n = population.model, population.size
        if population.parts:
            problems.append(f"population {name!r}: parts (NIR has no named ranges; export whole populations)")
        node = _node_of(name, model, n, dt, network.drive.get(name, 0.0), problems)
        if node is not None:
            nodes[name] = node
    for name, projection in network.projections.items():
        if not isinstance(projection.source, str) or not isinstance(projection.target, str):
            continue
        weights = _dense_weights(projection, projection.weights if state is None else state.projections[name].weights)
        nodes[name] = nir.Linear(weight=weights.T.copy())
        edges.append((projection.source, name))
        delay = delays[name] or 0
        if delay > 0:
            nodes[f"{name}.delay"] = nir.Delay(delay=np.full(projection.n_post, delay * dt))
            edges += [(name, f"{name}.delay"), (f"{name}.delay", projection.target)]
        else:
            edges.append((name, projection.target))
    if problems:
        raise NIRUnsupported(problems)
    sources = {p.source for p in network.projections.values()}
    if outputs is None:
        outputs = tuple(
            n for n, p in network.populations.items() if n not in sources and not isinstance(p.model, sf.SpikeInput)
        )
    for name in outputs:
        if name not in network.populations:
            raise ValueError(f"outputs: no population {name!r}; the network has {', '.join(network.populations)}")
        nodes[f"{name}.output"] = nir.Output(output_type={"output": np.array([network.populations[name].size])})
        edges.append((name, f"{name}.output"))
    per_unit = 1.0 / TIME_UNITS[time_unit]  # ms -> the unit written
    for node in nodes.values():
        for field in ("tau", "tau_mem", "tau_syn", "delay"):
            if isinstance(node, (nir.LIF, nir.CubaLIF, nir.LI, nir.Delay)) and hasattr(node, field):
                setattr(node, field, np.asarray(getattr(node, field)) * per_unit)
    metadata = {"time_unit": time_unit, "written_by": "sapicore"} | ({} if dt is None else {"dt_ms": float(dt)})
    methods = sorted({p.model.method for p in network.populations.values() if hasattr(p.model, "method")})
    if len(methods) > 1:
        raise NIRUnsupported(
            [f"populations integrate with several methods ({', '.join(methods)}); the graph names one"]
        )
    if methods:  # NIR's nodes are equations; the integrator travels as the graph's metadata (from_nir's default)
        metadata["integration_method"] = methods[0]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def _node_of(name: str, model: Any, n: int, dt: float | None, drive: Any, problems: list[str]) -> Any:
    """The NIR node of one population (None, with a problem noted, if it has none)."""
    if isinstance(model, sf.SpikeInput):
        if not (isinstance(drive, (int, float)) and drive == 0):
            problems.append(f"population {name!r}: a drive on an input population")
        return nir.Input(input_type={"input": np.array([n])})
    if type(model) is sf.LIF:
        if not (isinstance(model.t_ref, (int, float)) and model.t_ref == 0) and not (
            isinstance(model.t_ref, torch.Tensor) and bool((model.t_ref == 0).all())
        ):
            problems.append(
                f"population {name!r}: a refractory period (t_ref={model.t_ref}; NIR's LIF has none: set 0)"
            )
        r = _array(model.r_mem, n)
        v_leak = _array(model.v_rest, n) + r * _array(drive, n)
        common = dict(r=r, v_leak=v_leak, v_threshold=_array(model.v_thresh, n), v_reset=_array(model.v_reset, n))
        if model.tau_syn is None:
            return nir.LIF(tau=_array(model.tau_mem, n), **common)
        if not (isinstance(drive, (int, float)) and drive == 0):
            problems.append(f"population {name!r}: a drive on an LIF with tau_syn (it would pass through the synapse)")
        tau_syn = _array(model.tau_syn, n)
        return nir.CubaLIF(tau_syn=tau_syn, tau_mem=_array(model.tau_mem, n), w_in=tau_syn / dt, **common)
    if type(model) is sf.Analog:
        if (
            model.tau is None
            or model.nonlinearity != "identity"
            or model.clip_min is not None
            or model.clip_max is not None
        ):
            problems.append(
                f"population {name!r}: an Analog unit maps to LI only with a tau, the identity and no clipping"
            )
            return None
        return nir.LI(
            tau=_array(model.tau, n),
            r=_array(model.gain, n),
            v_leak=_array(model.bias, n) + _array(model.gain, n) * _array(drive, n),
        )
    problems.append(f"population {name!r}: {type(model).__name__} has no NIR primitive")
    return None


def from_nir(
    graph: nir.NIRGraph | str | Path, *, dt: float, time_unit: str | None = None, method: str | None = None
) -> tuple[sf.Network, tuple[str, ...]]:
    """A network built from a NIR graph (or a NIR file), and the record names of its outputs.

    Args:
        dt: the step (ms) the network will run with (delays are rounded to it; CubaLIF's input
            scaling uses it).
        time_unit: "ms" or "s", the unit of the graph's time constants and delays; default the
            graph's ``time_unit`` metadata (graphs written by Sapicore), else an error asking for it.
        method: how the neuron nodes' equations are integrated (``"exponential_euler"``, ``"euler"``,
            ``"rk4"``); default the graph's ``integration_method`` metadata (graphs written by Sapicore
            record their models' method), else exponential Euler. snnTorch and Norse integrate with
            forward Euler: ``method="euler"`` reproduces their spikes.

    ``Input`` nodes become ``SpikeInput`` populations (feed them with ``inputs={name: train}``; a node
    name's '.' becomes '_', as for snnTorch's flattened subgraphs: '1.lif' is population '1_lif'),
    ``Linear``/``Affine`` (and a following ``Delay``) projections with ``Delta`` synapses (an
    Affine's bias a drive), neuron nodes populations; the outputs are ``"<population>.spikes"``
    (``.activation`` for LI).
    """
    if not isinstance(graph, (str, Path)):
        return _from_graph(graph, dt, time_unit, method)
    path = Path(graph)
    if not path.is_file():
        raise FileNotFoundError(f"no NIR file at {path}")
    try:
        graph = nir.read(str(path))
    except Exception as err:  # h5py and nir raise many kinds for a damaged or foreign file
        raise ValueError(f"{path} is not a readable NIR file ({type(err).__name__}: {err})") from None
    try:
        return _from_graph(graph, dt, time_unit, method)
    except NIRUnsupported as err:
        raise NIRUnsupported([f"{path}: {problem}" for problem in err.problems]) from None
    except (ValueError, TypeError) as err:
        raise type(err)(f"{path}: {err}") from None


def _from_graph(graph: Any, dt: float, time_unit: str | None, method: str | None) -> tuple[sf.Network, tuple[str, ...]]:
    """`from_nir` of a graph in memory."""
    if not isinstance(graph, nir.NIRGraph):
        raise TypeError(f"from_nir takes a nir.NIRGraph or the path of a NIR file, got {type(graph).__name__}")
    if not graph.nodes:
        raise ValueError("the graph has no nodes")
    graph = _with_local_names(graph)
    dt = check_dt(dt)
    unit = time_unit or graph.metadata.get("time_unit")
    if isinstance(unit, bytes):
        unit = unit.decode()
    if unit not in TIME_UNITS:
        raise ValueError(
            f"the graph's time unit is {'not given' if unit is None else repr(unit)}: pass time_unit='ms' (NIR's "
            "primitives table) or 's' (snnTorch, Norse)"
        )
    to_ms = TIME_UNITS[unit]
    method = method or graph.metadata.get("integration_method") or "exponential_euler"
    if isinstance(method, bytes):
        method = method.decode()
    if method not in sf.METHODS:
        raise ValueError(f"method must be one of {', '.join(sf.METHODS)}, got {method!r}")
    problems: list[str] = []
    populations: dict[str, sf.Population] = {}
    scale_in: dict[str, np.ndarray] = {}
    sizes = _sizes(graph, problems)
    for name, node in graph.nodes.items():
        if isinstance(node, (nir.Input, *NEURON_NODES)) and name not in sizes:
            continue
        try:
            _population_of(name, node, sizes.get(name, 0), populations, scale_in, to_ms, dt, method, problems)
        except (ValueError, TypeError) as err:  # a parameter the model refuses (a negative time constant...)
            problems.append(f"node {name!r}: {err}")
    successors: dict[str, list[str]] = {}
    for source, target in graph.edges:
        for end in (source, target):
            if end not in graph.nodes:
                problems.append(f"edge ({source!r}, {target!r}): no node {end!r}")
        successors.setdefault(source, []).append(target)
    if not populations and not problems:
        problems.append("the graph has no Input or neuron node: nothing to simulate")
    if problems:
        raise NIRUnsupported(problems)
    projections: dict[str, Any] = {}
    drive: dict[str, Any] = {}
    outputs: list[str] = []
    for source in populations:
        for step in successors.get(source, []):
            node = graph.nodes[step]
            if isinstance(node, nir.Output):
                shape = _shape(node.output_type) or _shape(node.input_type) or (populations[source].size,)
                if populations[source].size not in (math.prod(shape), shape[-1]):  # [batch..., n]: a batched sample
                    size = math.prod(shape)
                    problems.append(
                        f"node {step!r}: an Output of {size} values after population {source!r} of "
                        f"{populations[source].size} neurons"
                    )
                suffix = "activation" if isinstance(populations[source].model, sf.Analog) else "spikes"
                outputs.append(f"{source}.{suffix}")
            elif step in populations:  # population to population: one to one, weight 1
                n = populations[source].size
                paths = [(step, step, 0.0)] if populations[step].size == n else []
                if not paths:
                    problems.append(
                        f"edge ({source!r}, {step!r}): populations of {n} and {populations[step].size} neurons need a Linear between them"
                    )
                _connect(populations, projections, drive, scale_in, source, paths, np.eye(n), None, dt, problems)
            elif isinstance(node, (nir.Linear, nir.Affine)):
                bias = _values(node.bias) if isinstance(node, nir.Affine) else None
                paths = [_path(graph, successors, step, after, to_ms, problems) for after in successors.get(step, [])]
                paths = [(step if len(paths) == 1 else f"{step}_{p[0]}", *p) for p in paths if p is not None]
                _connect(
                    populations,
                    projections,
                    drive,
                    scale_in,
                    source,
                    paths,
                    _values(node.weight),
                    bias,
                    dt,
                    problems,
                )
            else:
                problems.append(
                    f"node {step!r}: a {type(node).__name__} right after population {source!r} (expected Linear, Affine, Output or a neuron node)"
                )
    if problems:
        raise NIRUnsupported(problems)
    return sf.Network(populations, projections, drive=drive), tuple(outputs)


def _with_local_names(graph: Any) -> SimpleNamespace:
    """The graph's nodes and edges under names a network takes: '.' becomes '_' (snnTorch names the
    nodes of a flattened subgraph '1.lif', '1.w_rec'); names that would then collide are refused."""
    local: dict[str, str] = {}
    for name in graph.nodes:
        new = str(name).replace(".", "_")
        if new in local.values():
            other = next(old for old, taken in local.items() if taken == new)
            raise NIRUnsupported([f"nodes {other!r} and {name!r} would both be called {new!r} (no '.' in names here)"])
        local[name] = new
    return SimpleNamespace(
        nodes={local[name]: node for name, node in graph.nodes.items()},
        edges=[(local.get(a, a), local.get(b, b)) for a, b in graph.edges],
        metadata=graph.metadata,
    )


def _population_of(
    name: str,
    node: Any,
    n: int,
    populations: dict,
    scale_in: dict,
    to_ms: float,
    dt: float,
    method: str,
    problems: list[str],
) -> None:
    """The population of ``n`` neurons of a neuron or input node (into ``populations``), or the reason
    it has none."""
    if isinstance(node, nir.Input):
        populations[name] = sf.Population(sf.SpikeInput(), n)
    elif isinstance(node, (nir.LIF, nir.CubaLIF)):
        cuba = isinstance(node, nir.CubaLIF)
        tau_mem = _values(node.tau_mem if cuba else node.tau) * to_ms
        v_reset = node.v_reset if node.v_reset is not None else np.zeros(n)
        values = dict(
            tau_mem=_tensor(tau_mem),
            r_mem=_tensor(node.r),
            v_rest=_tensor(node.v_leak),
            v_thresh=_tensor(node.v_threshold),
            v_reset=_tensor(v_reset),
            t_ref=0.0,
            method=method,
        )
        if bool((values["v_thresh"] <= values["v_reset"]).any()):
            problems.append(f"node {name!r}: v_threshold must lie above v_reset")
            return
        if cuba:
            tau_syn = _values(node.tau_syn) * to_ms
            values["tau_syn"] = _tensor(tau_syn)
            scale_in[name] = np.broadcast_to(_values(node.w_in) * dt / tau_syn, (n,))
        populations[name] = sf.Population(sf.LIF(**values), n)
    elif isinstance(node, nir.LI):
        tau = _values(node.tau) * to_ms
        populations[name] = sf.Population(
            sf.Analog(tau=_tensor(tau), gain=_tensor(node.r), bias=_tensor(node.v_leak), method=method), n
        )
    elif not isinstance(node, (nir.Linear, nir.Affine, nir.Delay, nir.Output)):
        problems.append(
            f"node {name!r}: {type(node).__name__} is not supported (supported: Input, Output, LIF, CubaLIF, LI, Linear, Affine, Delay)"
        )


def _path(graph: Any, successors: dict, step: str, after: str, to_ms: float, problems: list[str]) -> tuple | None:
    """(target, delay ms) of the edge ``step -> after``, through a Delay node if ``after`` is one."""
    node = graph.nodes[after]
    if not isinstance(node, nir.Delay):
        return after, 0.0
    delays = _values(node.delay).reshape(-1) * to_ms
    follow = successors.get(after, [])
    if delays.size == 0 or not np.allclose(delays, delays[0]):
        problems.append(f"node {after!r}: per-neuron delays differ (a projection built here takes one delay)")
    elif len(follow) != 1:
        problems.append(f"node {after!r}: a Delay must lead to one neuron node, got {follow}")
    else:
        return follow[0], float(delays[0])
    return None


def _connect(populations, projections, drive, scale_in, source, paths, weight, bias, dt, problems) -> None:
    """A dense projection with Delta synapses from ``source`` along each (name, target, delay ms) path."""
    for name, target, delay_ms in paths:
        if target not in populations or isinstance(populations[target].model, sf.SpikeInput):
            problems.append(f"projection {name!r}: its target {target!r} must be a neuron node")
            continue
        n_pre, n_post = populations[source].size, populations[target].size
        if weight.shape != (n_post, n_pre):
            problems.append(
                f"projection {name!r}: weight of shape {weight.shape} between {n_pre} sources and {n_post} targets (expected ({n_post}, {n_pre}))"
            )
            continue
        steps = round(delay_ms / dt)
        if abs(steps * dt - delay_ms) > 1e-6 * max(1.0, delay_ms):
            problems.append(
                f"projection {name!r}: a delay of {delay_ms:g} ms is not a whole number of steps of dt={dt} ms"
            )
            continue
        scale = scale_in.get(target, np.ones(n_post))
        weights = _tensor((weight * scale[:, None]).T.reshape(-1))  # all_to_all runs source-major
        synapses = connectivity.all_to_all(n_pre, n_post)
        projections[name] = sf.projection(
            source, target, synapses, weights, sf.Delta(), dt=dt, delay=steps * dt, kind="dense"
        )
        if bias is not None:
            drive[target] = _tensor(bias * scale) + drive.get(target, 0.0)


def _shape(shapes: dict | None) -> tuple[int, ...] | None:
    """The one shape of a node's ``input_type``/``output_type``, None where it is not declared (an empty
    or missing shape, as Norse writes for neuron nodes)."""
    if not shapes:
        return None
    (shape,) = shapes.values()
    shape = tuple(int(s) for s in np.asarray(shape).reshape(-1))
    return shape or None


NEURON_NODES = (nir.LIF, nir.CubaLIF, nir.LI)
WEIGHT_NODES = (nir.Linear, nir.Affine)


def _sizes(graph: Any, problems: list[str]) -> dict[str, int]:
    """The number of neurons of each Input and neuron node.

    An Input declared with more than one dimension whose following Linear takes its last dimension
    is a batched sample (Norse's exporter records the sample it traced, e.g. ``[5, 3]``): its leading
    dimensions are dropped. A neuron node without a declared shape takes the length of its
    per-neuron parameters, else the rows of the Linear (or Affine) that feeds it, else the size of
    the population that feeds it directly.
    """
    predecessors: dict[str, list[str]] = {}
    successors: dict[str, list[str]] = {}
    for source, target in graph.edges:
        predecessors.setdefault(target, []).append(source)
        successors.setdefault(source, []).append(target)
    sizes: dict[str, int] = {}
    for name, node in graph.nodes.items():
        if not isinstance(node, nir.Input):
            continue
        shape = _shape(node.input_type)
        if shape is None:
            problems.append(f"node {name!r}: an Input without a shape")
            continue
        columns = {
            int(np.shape(graph.nodes[s].weight)[1])
            for s in successors.get(name, [])
            if isinstance(graph.nodes[s], WEIGHT_NODES)
        }
        batched = len(shape) > 1 and columns == {shape[-1]} and math.prod(shape) != shape[-1]
        sizes[name] = shape[-1] if batched else math.prod(shape)
    pending = [name for name, node in graph.nodes.items() if isinstance(node, NEURON_NODES)]
    for _ in range(len(pending) + 1):  # a neuron node fed by another takes its size after it
        for name in list(pending):
            size = _neuron_size(graph, name, predecessors, sizes)
            if size is not None:
                sizes[name] = size
                pending.remove(name)
    for name in pending:
        problems.append(
            f"node {name!r}: its number of neurons is not declared (input_type) and no parameter or Linear "
            "feeding it tells it"
        )
    return sizes


def _neuron_size(graph: Any, name: str, predecessors: dict, sizes: dict) -> int | None:
    """`_sizes` of one neuron node, None while it cannot be told."""
    node = graph.nodes[name]
    shape = _shape(node.input_type)
    if shape is not None:
        return math.prod(shape)
    lengths = {_values(v).size for v in vars(node).values() if isinstance(v, (np.ndarray, torch.Tensor))} - {0, 1}
    if len(lengths) == 1:
        return lengths.pop()
    for before in predecessors.get(name, []):
        feeder = graph.nodes[before]
        if isinstance(feeder, nir.Delay):  # a Delay passes on what its Linear gives
            feeder = next(
                (graph.nodes[b] for b in predecessors.get(before, []) if isinstance(graph.nodes[b], WEIGHT_NODES)),
                feeder,
            )
        if isinstance(feeder, WEIGHT_NODES):
            return int(np.shape(feeder.weight)[0])
        if before in sizes:
            return sizes[before]
    return None


def _values(value: Any) -> np.ndarray:
    """A node's parameter as float64 numbers (graphs made in memory by Norse hold torch tensors)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
    return np.asarray(value, dtype=np.float64)


def _tensor(value: Any) -> torch.Tensor:
    tensor = torch.as_tensor(_values(value), dtype=torch.get_default_dtype())
    return tensor.reshape(-1) if tensor.dim() > 0 else tensor
