"""NIR files exchanged with snnTorch and Norse, both ways: do the spikes agree?

Run in the peers' environment (Sapicore never imports snnTorch or Norse):

    bash benchmarks/setup_peers.sh            # .peers-env with snnTorch 1.0, Norse 1.1 and Sapicore
    .peers-env/bin/python benchmarks/nir_exchange.py

Each case runs one two-layer network (20 inputs -> 30 hidden -> 10 output neurons, weights without
bias) on the same random input spikes (400 steps, probability 0.2 per input and step) in the peer
and in Sapicore, after a trip through NIR:

- snnTorch -> Sapicore: ``snntorch.export_nir.export_to_nir`` (a ``Synaptic`` hidden layer, a
  ``Leaky`` output), then ``sapicore.nir_io.from_nir(graph, dt=0.1, time_unit="s",
  method="euler")``. snnTorch 1.0's exporter fails nir 1.0.8's type inference (its neuron nodes carry
  no shape); the check is switched off for the export, and Sapicore infers the sizes.
- snnTorch -> Sapicore, recurrent: an ``RLeaky`` layer of 30 neurons with inhibitory recurrent
  weights, which snnTorch's exporter flattens into nodes named '1.lif' and '1.w_rec'.
- Norse -> Sapicore: ``norse.torch.to_nir`` of ``LIFBoxCell`` layers from a batched sample (shape
  [1, 20]), imported with ``dt=1.0``. Norse 1.1's exporter writes ``tau = dt / tau_mem_inv``, its
  step (1 ms) times the time constant (Norse's own ``from_nir`` of that file changes the spikes: 14
  spikes become 306 in a small test); the script divides by the step before the import.
- Sapicore -> snnTorch and Sapicore -> Norse: a Sapicore network (a current-based LIF with
  ``tau_syn``, i.e. a ``CubaLIF``, then a plain LIF, ``method="euler"``) written with
  ``to_nir(time_unit="s")`` to a NIR file, read back by ``snntorch.import_nir.import_from_nir`` and
  ``norse.torch.from_nir``.

Sapicore delivers a projection's spikes one step after they are emitted, where the peers run a
feed-forward graph layer by layer within a step: layer ``k`` spikes ``k`` steps later in Sapicore,
and the table compares after that shift. It prints, per case and layer, the spike counts of both
and the number of (step, neuron) spikes that differ.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import nir
import norse.torch as norse
import snntorch as snn
import torch
from snntorch.export_nir import export_to_nir
from snntorch.import_nir import import_from_nir

import sapicore.functional as sf
from sapicore.functional import connectivity
from sapicore.nir_io import from_nir, to_nir

STEPS, N_IN, N_HIDDEN, N_OUT = 400, 20, 30, 10
NORSE_DT = 1e-3  # s, the step of Norse's cells and exporter by default


def inputs(seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(STEPS, N_IN, generator=generator) < 0.2).float()


def weights(seed: int, first: float, second: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform random weights of the two layers, up to ``first`` and ``second``."""
    generator = torch.Generator().manual_seed(seed)
    return (
        torch.rand(N_HIDDEN, N_IN, generator=generator) * first,
        torch.rand(N_OUT, N_HIDDEN, generator=generator) * second,
    )


def sapicore_spikes(network: sf.Network, outputs: list[str], x: torch.Tensor, dt: float, shift: int) -> list:
    """Spikes (steps, neurons) of each named population, shifted back by its depth in the graph."""
    padded = torch.cat([x, torch.zeros(shift, x.shape[1])])
    with torch.no_grad():
        _, records = sf.simulate(network, network.init_state(), {"input": padded}, dt=dt, record=tuple(outputs))
    return [records[name][depth : depth + STEPS] for depth, name in enumerate(outputs, start=1)]


def compare(case: str, layers: list[str], peer: list, ours: list) -> list[str]:
    rows = []
    for layer, a, b in zip(layers, peer, ours):
        a, b = a.to(torch.bool), b.to(torch.bool)
        rows.append(f"| {case} | {layer} | {int(a.sum())} | {int(b.sum())} | {int((a ^ b).sum())} |")
    return rows


def snntorch_to_sapicore(x: torch.Tensor) -> list[str]:
    w1, w2 = weights(1, 0.06, 0.12)
    fc1, fc2 = torch.nn.Linear(N_IN, N_HIDDEN, bias=False), torch.nn.Linear(N_HIDDEN, N_OUT, bias=False)
    fc1.weight.data, fc2.weight.data = w1, w2
    hidden = snn.Synaptic(alpha=0.8, beta=0.9, reset_mechanism="zero", reset_delay=False, init_hidden=True)
    out = snn.Leaky(beta=0.9, reset_mechanism="zero", reset_delay=False, init_hidden=True)
    model = torch.nn.Sequential(fc1, hidden, fc2, out)
    check = nir.NIRGraph.infer_types
    nir.NIRGraph.infer_types = lambda self: None  # snnTorch 1.0's graph fails nir 1.0.8's check
    try:
        graph = export_to_nir(model, torch.zeros(N_IN))
    finally:
        nir.NIRGraph.infer_types = check
    peer = [[], []]
    with torch.no_grad():
        hidden.reset_hidden(), out.reset_hidden()
        for row in x:
            s1 = hidden(fc1(row))
            s2 = out(fc2(s1))
            peer[0].append(s1.clone()), peer[1].append(s2.clone())
    peer = [torch.stack(p) for p in peer]
    names = {type(node).__name__: name for name, node in graph.nodes.items()}
    network, _ = from_nir(graph, dt=0.1, time_unit="s", method="euler")
    network = rename_input(network, graph)
    ours = sapicore_spikes(network, [f"{names['CubaLIF']}.spikes", f"{names['LIF']}.spikes"], x, 0.1, 2)
    return compare("snnTorch -> Sapicore", ["hidden (Synaptic)", "output (Leaky)"], peer, ours)


def snntorch_recurrent_to_sapicore(x: torch.Tensor) -> list[str]:
    """An ``RLeaky`` layer (inhibitory recurrent weights), exported as snnTorch flattens it: nodes
    '1.lif' and '1.w_rec' (imported as '1_lif', '1_w_rec'); the recurrent input is the last step's
    spikes in snnTorch as in Sapicore."""
    w1, _ = weights(4, 0.3, 0.0)
    fc = torch.nn.Linear(N_IN, N_HIDDEN, bias=False)
    fc.weight.data = w1
    layer = snn.RLeaky(beta=0.9, linear_features=N_HIDDEN, reset_mechanism="zero", reset_delay=False, init_hidden=True)
    layer.recurrent.weight.data = -0.2 * torch.rand(N_HIDDEN, N_HIDDEN, generator=torch.Generator().manual_seed(5))
    layer.recurrent.bias.data.zero_()
    check = nir.NIRGraph.infer_types
    nir.NIRGraph.infer_types = lambda self: None
    try:
        graph = export_to_nir(torch.nn.Sequential(fc, layer), torch.zeros(N_IN))
    finally:
        nir.NIRGraph.infer_types = check
    with torch.no_grad():
        layer.reset_hidden()
        peer = torch.stack([layer(fc(row)).clone() for row in x])
    network, _ = from_nir(graph, dt=0.1, time_unit="s", method="euler")
    ours = sapicore_spikes(rename_input(network, graph), ["1_lif.spikes"], x, 0.1, 1)
    return compare("snnTorch -> Sapicore", ["recurrent (RLeaky)"], [peer], ours)


def norse_to_sapicore(x: torch.Tensor) -> list[str]:
    w1, w2 = weights(2, 0.8, 0.8)
    fc1, fc2 = torch.nn.Linear(N_IN, N_HIDDEN, bias=False), torch.nn.Linear(N_HIDDEN, N_OUT, bias=False)
    fc1.weight.data, fc2.weight.data = w1, w2
    model = norse.SequentialState(fc1, norse.LIFBoxCell(), fc2, norse.LIFBoxCell())
    graph = norse.to_nir(model, torch.zeros(1, N_IN))
    for node in graph.nodes.values():  # Norse 1.1 writes tau = dt / tau_mem_inv: its dt (1 ms) times tau
        if isinstance(node, nir.LIF):
            node.tau = node.tau / NORSE_DT
    peer, state = [[], []], None
    with torch.no_grad():
        for row in x:
            h = fc1(row[None])
            s1, state1 = model[1](h, None if state is None else state[0])
            s2, state2 = model[3](fc2(s1), None if state is None else state[1])
            state = (state1, state2)
            peer[0].append(s1[0]), peer[1].append(s2[0])
    peer = [torch.stack(p) for p in peer]
    network, _ = from_nir(graph, dt=1.0, time_unit="s", method="euler")
    network = rename_input(network, graph)
    lifs = [name for name, node in graph.nodes.items() if isinstance(node, nir.LIF)]
    lifs.sort(key=lambda name: int(name))
    ours = sapicore_spikes(network, [f"{name}.spikes" for name in lifs], x, 1.0, 2)
    return compare("Norse -> Sapicore", ["hidden (LIFBox)", "output (LIFBox)"], peer, ours)


def rename_input(network: sf.Network, graph: nir.NIRGraph) -> sf.Network:
    """The network with its one Input population called "input"."""
    (name,) = [n for n, node in graph.nodes.items() if isinstance(node, nir.Input)]
    if name == "input":
        return network
    populations = {("input" if n == name else n): p for n, p in network.populations.items()}
    projections = {k: sf.replace(p, source="input") if p.source == name else p for k, p in network.projections.items()}
    return sf.Network(populations, projections, drive=network.drive)


def sapicore_network(dt: float, output_r: float) -> sf.Network:
    """Input -> CubaLIF (tau_syn 0.5 ms) -> LIF, with forward Euler; v in units of the threshold. The
    output layer's resistance is ``output_r`` (MOhm), its input weights scaled to the same dynamics."""
    w1, w2 = weights(3, 0.06, 0.12)
    w2 = w2 / (dt * output_r)
    common = dict(v_rest=0.0, v_reset=0.0, v_thresh=1.0, t_ref=0.0, method="euler", tau_mem=1.0)
    populations = {
        "input": sf.Population(sf.SpikeInput(), N_IN),
        "hidden": sf.Population(sf.LIF(tau_syn=0.5, r_mem=1.0 / dt, **common), N_HIDDEN),
        "output": sf.Population(sf.LIF(r_mem=output_r, **common), N_OUT),
    }

    def dense(source: str, target: str, w: torch.Tensor) -> object:
        n_post, n_pre = w.shape
        return sf.projection(
            source,
            target,
            connectivity.all_to_all(n_pre, n_post),
            w.T.reshape(-1),
            sf.Delta(),
            dt=dt,
            kind="dense",
        )

    projections = {"feed": dense("input", "hidden", w1), "out": dense("hidden", "output", w2)}
    return sf.Network(populations, projections)


def sapicore_to_peers(x: torch.Tensor, folder: Path) -> list[str]:
    dt = 0.1  # ms: snnTorch's importer assumes a step of 1e-4 s
    paths, ours = {}, {}
    for peer, output_r in (("snnTorch", 1.0 / dt), ("Norse", 1.0)):  # Norse's LIF ignores r (it warns)
        network = sapicore_network(dt, output_r)
        ours[peer] = sapicore_spikes(network, ["hidden.spikes", "output.spikes"], x, dt, 2)
        paths[peer] = folder / f"for-{peer}.nir"
        nir.write(str(paths[peer]), to_nir(network, dt=dt, time_unit="s"))
    modules = dict(import_from_nir(nir.read(str(paths["snnTorch"]))).named_modules())
    for name in ("hidden", "output"):
        modules[name].reset_hidden()
    peer = [[], []]
    with torch.no_grad():
        for row in x:
            s1 = modules["hidden"](modules["feed"](row))
            s2 = modules["output"](modules["out"](s1))
            peer[0].append(s1.clone()), peer[1].append(s2.clone())
    rows = compare(
        "Sapicore -> snnTorch", ["hidden (CubaLIF)", "output (LIF)"], [torch.stack(p) for p in peer], ours["snnTorch"]
    )
    modules = dict(norse.from_nir(nir.read(str(paths["Norse"])), dt=dt / 1000.0).named_modules())
    peer, hidden_state, output_state = [[], []], None, None
    with torch.no_grad():
        for row in x:
            s1, hidden_state = modules["hidden"](modules["feed"](row), hidden_state)
            s2, output_state = modules["output"](modules["out"](s1), output_state)
            peer[0].append(s1), peer[1].append(s2)
    rows += compare(
        "Sapicore -> Norse", ["hidden (CubaLIF)", "output (LIF)"], [torch.stack(p) for p in peer], ours["Norse"]
    )
    return rows


def main() -> None:
    torch.set_num_threads(1)
    x = inputs()
    rows = ["| case | layer | peer spikes | Sapicore spikes | spikes that differ |", "|---|---|---:|---:|---:|"]
    rows += snntorch_to_sapicore(x)
    rows += snntorch_recurrent_to_sapicore(x)
    rows += norse_to_sapicore(x)
    with tempfile.TemporaryDirectory() as folder:
        rows += sapicore_to_peers(x, Path(folder))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
