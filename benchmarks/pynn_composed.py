"""PyNN's composed cells (``PointNeuron``) on ``sapicore.pynn`` beside ``pyNN.brian2`` and ``pyNN.nest``:
the network of PyNN's scenario ``test_composed_neuron_model_homogeneous_receptors`` (an AdExp cell
with AMPA, NMDA and GABAA alpha conductances, a LIF cell with the three as exponential currents, each
fed one spike per receptor), its recorded traces compared. PyNN's own examples of composed cells
(``multi_synapse.py``, ``monolith_vs_composed.py``) save no data, so this script records it.

Each row: a recorded signal, its range on Sapicore, and for each peer the largest difference from
Sapicore's trace (relative to the signal's range) and the time of the peak on each side. Brian2
delivers a spike one step later than NEST and Sapicore (its synapses act at the end of the arrival
step), so its traces are compared shifted by one step.

Usage:
    python benchmarks/pynn_composed.py [--brian-python PATH] [--nest-python PATH]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SCRIPT = """
import sys
import numpy as np
from pyNN.parameters import Sequence
name, out = sys.argv[1], sys.argv[2]
if name == "sapicore":
    import sapicore.pynn as sim
else:
    import importlib
    sim = importlib.import_module("pyNN." + name)
sim.setup(timestep=0.1, min_delay=0.1)
adexp = sim.PointNeuron(sim.AdExp(tau_m=10.0, v_rest=-60.0), AMPA=sim.AlphaPSR(tau_syn=1.0, e_syn=0.0),
                        NMDA=sim.AlphaPSR(tau_syn=20.0, e_syn=0.0), GABAA=sim.AlphaPSR(tau_syn=1.5, e_syn=-70.0))
lif = sim.PointNeuron(sim.LIF(tau_m=10.0, v_rest=-60.0), AMPA=sim.CurrExpPostSynapticResponse(tau_syn=1.0),
                      NMDA=sim.CurrExpPostSynapticResponse(tau_syn=20.0),
                      GABAA=sim.CurrExpPostSynapticResponse(tau_syn=1.5))
one = sim.Population(1, adexp, initial_values={"v": -60.0})
two = sim.Population(1, lif, initial_values={"v": -60.0})
one.record(["v", "AMPA.gsyn", "NMDA.gsyn", "GABAA.gsyn"])
two.record(["v", "AMPA.isyn", "NMDA.isyn", "GABAA.isyn"])
inputs = sim.Population(3, sim.SpikeSourceArray(spike_times=[Sequence([30.0]), Sequence([60.0]), Sequence([90.0])]))
for k, (receptor, w_one, w_two) in enumerate([("AMPA", 0.01, 0.01), ("GABAA", 0.1, -0.1), ("NMDA", 0.005, 0.005)]):
    for cells, weight in ((one, w_one), (two, w_two)):
        sim.Projection(inputs[k:k + 1], cells, sim.AllToAllConnector(), sim.StaticSynapse(weight=weight, delay=1.5),
                       receptor_type=receptor)
sim.run(200.0)
signals = {}
for label, cells in (("AdExp", one), ("LIF", two)):
    for signal in cells.get_data().segments[0].analogsignals:
        signals[label + " " + signal.name] = np.asarray(signal)[:, 0]
np.savez(out, **signals)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--brian-python", default=os.environ.get("SAPICORE_BRIAN_PYTHON"))
    parser.add_argument("--nest-python", default=os.environ.get("SAPICORE_NEST_PYTHON"))
    args = parser.parse_args()
    simulators = {"sapicore": sys.executable, "brian2": args.brian_python, "nest": args.nest_python}
    folder = Path(tempfile.mkdtemp(prefix="pynn-composed-"))
    traces, failed = {}, {}
    for name, python in simulators.items():
        if python is None:
            continue
        out = folder / f"{name}.npz"
        done = subprocess.run([python, "-c", SCRIPT, name, str(out)], capture_output=True, text=True)
        if done.returncode != 0:
            failed[name] = done.stderr.strip().splitlines()[-1][:150]
            continue
        traces[name] = dict(np.load(out))
    peers = [name for name in simulators if name != "sapicore" and simulators[name]]
    print(f"| signal | sapicore range | {' | '.join(peers)} |")
    print(f"|---|---|{'---|' * len(peers)}")
    for signal, ours in traces["sapicore"].items():
        cells = []
        for peer in peers:
            if peer not in traces:
                cells.append(f"fails: {failed[peer]}")
                continue
            theirs = traces[peer][signal][1:] if peer == "brian2" else traces[peer][signal]
            mine = ours[: theirs.size]
            span = max(np.ptp(mine), 1e-12)
            peaks = f"peak {np.argmax(np.abs(mine - mine[0])) * 0.1:.1f} vs {np.argmax(np.abs(theirs - theirs[0])) * 0.1:.1f} ms"
            cells.append(f"max diff {np.abs(theirs - mine).max() / span:.2%}; {peaks}")
        print(f"| {signal} | {ours.min():.4g} to {ours.max():.4g} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
