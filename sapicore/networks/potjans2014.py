"""The cortical microcircuit of Potjans & Diesmann (2014): 77,169 LIF neurons in 8 populations.

Four layers (2/3, 4, 5, 6), each with an excitatory (E) and an inhibitory (I) population, connected
with the layer-specific probabilities of the paper; about 0.3 billion synapses at full scale.
Parameters follow the NEST example (``pynest/examples/Potjans_2014``):

* neurons: NEST's ``iaf_psc_exp``: C_m 250 pF, tau_m 10 ms (so ``r_mem`` = 40 MΩ), E_L = V_reset =
  -65 mV, V_th -50 mV, t_ref 2 ms, exponential current synapses with tau_syn 0.5 ms; initial
  potentials normal(-58, 10) mV;
* connectivity: for each pair of populations a fixed total number of synapses
  ``K = log(1 - p) / log(1 - 1 / (N_pre N_post))`` drawn with multapses and autapses allowed, target
  by target from streams keyed by the target (weights and delays too), so that a process draws its
  own targets' synapses alone (``share=``);
* weights: the current of a 0.15 mV PSP (87.8 pA), normal with relative sd 0.1, redrawn where the
  sign would flip; inhibitory weights -4 times as strong; L4E -> L2/3E doubled;
* delays: normal, excitatory 1.5 ms and inhibitory 0.75 ms means, relative sd 0.5, clipped below
  at dt;
* background: each neuron receives ``K_ext`` independent Poisson trains at 8 Hz through excitatory
  synapses, or the equivalent constant current (``background="dc"``).

The eight populations are the parts of one LIF population, ``cortex`` (so they step in one call;
their names work as population names: ``"L4E.spikes"``, projections, drives). The recurrent synapses
are one projection onto ``cortex``, ``synapses``. Its table ([`SynapseTable`][sapicore.functional.SynapseTable])
has rows of `ROW_WIDTH` slots, each source neuron taking as many consecutive rows as its out-degree
needs: rows as wide as the largest out-degree would be 43% padding at full scale (6,769 slots per row
for a mean of 3,873), these are 3%, 2.8 GB for the 0.3 billion synapses instead of 4.7. The Poisson
background is one population ``background`` ([`PoissonSource`][sapicore.functional.PoissonSource], one source per cortical neuron emitting the count of
its ``K_ext`` trains' spikes) with a one-to-one projection ``external``.

Downscaling: ``scale`` multiplies neuron numbers, ``k_scale`` (default ``scale``) in-degrees. With
fewer inputs per neuron the weights grow by ``1 / sqrt(k_scale)`` and a constant current restores
the mean input of the full-scale network at its published rates, as in the NEST example, so rates
stay close to the full-scale ones.

Two conventions adapt NEST's to Sapicore's time step: a projection delivers one step after emission
at the earliest, so the drawn delays are shortened by one step (NEST's delay ``d`` is Sapicore's
``d - dt``); and a synaptic current is held over each step, so each jump is scaled by
``tau (1 - exp(-dt / tau)) / dt`` to deliver the charge ``w tau_syn`` of the continuous current.
"""

from __future__ import annotations

import math
import warnings

import torch

import sapicore.functional as sf
from sapicore.functional import connectivity
from sapicore.functional.models.currents import keyed_normal

__all__ = [
    "POPULATIONS",
    "FULL_SIZES",
    "REFERENCE_RATES",
    "NEST3_RATES",
    "NEST34_RATES",
    "REFERENCE_SETS",
    "DOWNSCALED_NOTE",
    "CONNECTION_PROBABILITIES",
    "microcircuit",
    "initial_state",
    "initial_values",
    "synapse_counts",
]

POPULATIONS = ("L23E", "L23I", "L4E", "L4I", "L5E", "L5I", "L6E", "L6I")
FULL_SIZES = (20683, 5834, 21915, 5479, 4850, 1065, 14395, 2948)
#: row: target, column: source, in the order of POPULATIONS
CONNECTION_PROBABILITIES = (
    (0.1009, 0.1689, 0.0437, 0.0818, 0.0323, 0.0, 0.0076, 0.0),
    (0.1346, 0.1371, 0.0316, 0.0515, 0.0755, 0.0, 0.0042, 0.0),
    (0.0077, 0.0059, 0.0497, 0.135, 0.0067, 0.0003, 0.0453, 0.0),
    (0.0691, 0.0029, 0.0794, 0.1597, 0.0033, 0.0, 0.1057, 0.0),
    (0.1004, 0.0622, 0.0505, 0.0057, 0.0831, 0.3726, 0.0204, 0.0),
    (0.0548, 0.0269, 0.0257, 0.0022, 0.06, 0.3158, 0.0086, 0.0),
    (0.0156, 0.0066, 0.0211, 0.0166, 0.0572, 0.0197, 0.0396, 0.2252),
    (0.0364, 0.001, 0.0034, 0.0005, 0.0277, 0.008, 0.0658, 0.1443),
)
K_EXT = (1600, 1500, 2100, 1900, 2000, 1900, 2900, 2100)
#: mean rates (Hz) of the full-scale network in NEST's example of 2016 (tested with NEST 2.10), the
#: reference of the DC compensation of downscaled networks (as in that example)
REFERENCE_RATES = (0.971, 2.868, 4.746, 5.396, 8.142, 9.078, 0.991, 7.523)
#: the same from NEST's example of March 2020 (NEST 3.0 to 3.3; 12 MPI processes)
NEST3_RATES = (0.943, 3.026, 4.368, 5.882, 7.733, 8.664, 1.096, 7.851)
#: the same from NEST's example since December 2022 (NEST 3.4 and later; no MPI, 4 threads, one run)
NEST34_RATES = (0.903, 2.965, 4.414, 5.876, 7.569, 8.633, 1.105, 7.829)
#: every full-scale reference set, labelled with its source and year
REFERENCE_SETS = {
    "NEST example 2016 (NEST 2.10)": REFERENCE_RATES,
    "NEST example 2020 (NEST 3.0-3.3, 12 MPI processes)": NEST3_RATES,
    "NEST example 2022 (NEST 3.4 and later, 4 threads)": NEST34_RATES,
}
#: how far a downscaled network's rates lie from the full-scale references: NEST 3.10 itself, on this
#: builder's network at scale 0.1 (one thread, 1.5 s, rates over the last second, 2026-11-27), differs
#: from the 2016 set by up to 30% per population (L4I +30%, L2/3E -28%) and from the 2022 set by up to 22%
DOWNSCALED_NOTE = (
    "a downscaled network is expected to deviate from the full-scale reference rates: NEST's own run of this "
    "network at scale 0.1 differs from them by up to 30% per population (L4I +30%, L2/3E -28% against the 2016 "
    "set; up to 22% against the 2022 one)"
)
BACKGROUND_RATE = 8.0  # Hz per external synapse
NEURON = dict(c_m=250.0, tau_m=10.0, e_l=-65.0, v_th=-50.0, v_reset=-65.0, t_ref=2.0, tau_syn=0.5)  # pF, ms, mV
PSP_EXC = 0.15  # mV
WEIGHT_REL_STD = 0.1
G = -4.0
DELAY_MEAN = {"E": 1.5, "I": 0.75}  # ms
DELAY_REL_STD = 0.5
V0_MEAN, V0_STD = -58.0, 10.0  # mV


def psc_per_psp(c_m: float, tau_m: float, tau_syn: float) -> float:
    """The amplitude (pA) of an exponential current that makes a 1 mV peak PSP in ``iaf_psc_exp``."""
    sub = 1.0 / (tau_syn - tau_m)
    pre = tau_m * tau_syn / c_m * sub
    frac = (tau_m / tau_syn) ** sub
    return 1.0 / (pre * (frac**tau_m - frac**tau_syn))


def synapse_counts(sizes: tuple[int, ...] = FULL_SIZES) -> torch.Tensor:
    """Synapses per (target, source) pair of populations for the connection probabilities, float64."""
    n = torch.tensor(sizes, dtype=torch.float64)
    product = n[:, None] * n[None, :]
    p = torch.tensor(CONNECTION_PROBABILITIES, dtype=torch.float64)
    return torch.log1p(-p) / torch.log1p(-1.0 / product)


def _mean_currents() -> torch.Tensor:
    """Mean PSC amplitude (pA) of each (target, source) pair at full scale."""
    psc = PSP_EXC * psc_per_psp(NEURON["c_m"], NEURON["tau_m"], NEURON["tau_syn"])
    currents = torch.full((8, 8), psc, dtype=torch.float64)
    currents[:, 1::2] *= G  # inhibitory sources
    currents[0, 2] *= 2.0  # L4E -> L2/3E
    return currents


#: synapses drawn at once while building (the same synapses, weights and delays whatever the pieces):
#: pieces of 256k keep the build's arrays in the caches (pieces of 4 million took 1.7 times as long to
#: draw and order at scale 0.3)
PIECE = 1 << 18


def _keyed_redrawn(
    weights: torch.Tensor, mean: float, seed: int, targets: torch.Tensor, degree: torch.Tensor
) -> torch.Tensor:
    """``weights`` (normal about ``mean``, ``degree[r]`` of each target ``targets[r]`` in a row) with
    those of the wrong sign drawn again, each from draws keyed by its target and number there, until
    none is left (at a relative sd of 0.1, a 10-sigma event)."""
    bad = weights <= 0 if mean > 0 else weights >= 0
    attempt = 0
    while bool(bad.any()):  # sync-ok: building the network
        attempt += 1
        where = torch.nonzero(bad).reshape(-1)
        starts = torch.cumsum(degree, 0) - degree
        row = torch.searchsorted(starts + degree, where, right=True)
        again = keyed_normal(seed + attempt * 1_000_003, targets[row], where - starts[row], torch.float32)
        weights[where] = mean + abs(mean) * WEIGHT_REL_STD * again
        bad = weights <= 0 if mean > 0 else weights >= 0
    return weights


def _warn_if_degenerate(scale: float, k_scale: float, sizes: list[int], counts: torch.Tensor) -> None:
    """Warn when scaling leaves a population with fewer than one neuron (rounded up to one) or its
    neurons with fewer than one recurrent synapse each: such a network no longer resembles the model,
    and its rates are not comparable with the full-scale references."""
    empty = [name for name, n, full in zip(POPULATIONS, sizes, FULL_SIZES) if full * scale < 0.5]
    if empty:
        warnings.warn(
            f"scale={scale:g} leaves {', '.join(empty)} with fewer than one neuron (each given one): this network "
            "no longer resembles the microcircuit, and its rates are not comparable with the reference",
            RuntimeWarning,
            stacklevel=3,
        )
    in_degree = counts.sum(1).to(torch.float64) / torch.tensor(sizes, dtype=torch.float64)
    sparse = [name for name, k in zip(POPULATIONS, in_degree.tolist()) if k < 1.0]
    if sparse:
        warnings.warn(
            f"scale={scale:g}, k_scale={k_scale:g} leave fewer than one recurrent synapse per neuron in "
            f"{', '.join(sparse)}: this network no longer resembles the microcircuit, and its rates are not "
            "comparable with the reference",
            RuntimeWarning,
            stacklevel=3,
        )


#: slots per row of the recurrent synapse table: a source neuron takes ceil(out-degree / ROW_WIDTH) rows,
#: so a row of padding at most per neuron (3% of the slots at full scale); the CPU kernel reads a
#: neuron's rows as one run of slots, so narrow rows cost nothing per step
ROW_WIDTH = 256


def microcircuit(
    scale: float = 1.0,
    k_scale: float | None = None,
    dt: float = 0.1,
    seed: int = 1,
    background: str = "poisson",
    share: tuple[int, int] | None = None,
) -> sf.Network:
    """Build the microcircuit with ``scale`` x its neurons and ``k_scale`` x its in-degrees (see the
    module docstring). ``background``: "poisson" (K_ext Poisson trains per neuron, drawn from torch's
    generator), "keyed" (the same, with draws keyed by ``seed``, neuron and step: a run split over
    processes with ``partition`` gives the single process's spikes) or "dc" (their mean current).
    Seeded: the same arguments give the same network.

    ``share=(rank, world)`` builds only that rank's share (as ``sapicore.functional.partition`` of
    the whole network gives it, equal to it): its neurons and the synapses onto them. Each pair of
    populations draws its synapses target by target from streams keyed by ``seed``, the target and the
    synapse's number there (`connectivity.fixed_total_number`; weights and delays as
    `connectivity.keyed_normal_rows`), so a rank draws its own targets' synapses only: it holds about
    ``1 / world`` of the synapse table and spends about ``1 / world`` of the time drawing it.

    The recurrent synapses go block by block (one pair of populations at a time) into one
    [`SynapseTable`][sapicore.functional.SynapseTable] (see the module docstring), in pieces of at most
    `PIECE` synapses, so the build needs little memory beyond the table (about 2.8 GB at full scale:
    int32 targets, float32 weights and int8 delays; a share's targets are uint16 where the rank's
    neurons number at most 65,535, as with two ranks or more: 1.1 GB a rank).
    """
    if not (isinstance(scale, (int, float)) and 0 < scale <= 1):
        raise ValueError(f"scale must be a number in (0, 1], got {scale!r}")
    k_scale = scale if k_scale is None else k_scale
    if not (isinstance(k_scale, (int, float)) and 0 < k_scale <= 1):
        raise ValueError(f"k_scale must be a number in (0, 1], got {k_scale!r}")
    if background not in ("poisson", "keyed", "dc"):
        raise ValueError(f"background must be 'poisson', 'keyed' or 'dc', got {background!r}")
    sizes = [max(1, round(n * scale)) for n in FULL_SIZES]
    starts = [sum(sizes[:i]) for i in range(8)]
    total = sum(sizes)
    full_counts = synapse_counts()
    counts = torch.round(full_counts * scale * k_scale).to(torch.int64)
    tau_syn = NEURON["tau_syn"]
    charge = tau_syn * (1.0 - math.exp(-dt / tau_syn)) / dt / 1000.0  # jump scaling (module docstring), pA -> nA
    full_currents = _mean_currents()
    currents = full_currents / math.sqrt(k_scale)
    psc_ext_full = PSP_EXC * psc_per_psp(NEURON["c_m"], NEURON["tau_m"], tau_syn)
    psc_ext = psc_ext_full / math.sqrt(k_scale)
    k_ext = [max(1, round(k * k_scale)) for k in K_EXT]
    _warn_if_degenerate(scale, k_scale, sizes, counts)

    # constant current (pA) that restores the full network's mean input (NEST example's helpers)
    in_degree = full_counts / torch.tensor(FULL_SIZES, dtype=torch.float64)[:, None]
    recurrent = (full_currents * in_degree * torch.tensor(REFERENCE_RATES, dtype=torch.float64)).sum(1)
    external = psc_ext_full * torch.tensor(K_EXT, dtype=torch.float64) * BACKGROUND_RATE
    dc = 0.001 * tau_syn * (1.0 - math.sqrt(k_scale)) * (recurrent + external)
    if background == "dc":
        dc = dc + 0.001 * tau_syn * psc_ext * torch.tensor(k_ext, dtype=torch.float64) * BACKGROUND_RATE

    def per_neuron(values) -> torch.Tensor:
        return torch.repeat_interleave(torch.as_tensor(values, dtype=torch.float32), torch.tensor(sizes))

    lif = sf.LIF(
        tau_mem=NEURON["tau_m"],
        v_rest=NEURON["e_l"],
        v_reset=NEURON["v_reset"],
        v_thresh=NEURON["v_th"],
        r_mem=NEURON["tau_m"] / NEURON["c_m"] * 1000.0,  # MΩ
        t_ref=NEURON["t_ref"],
    )
    synapse = sf.Exponential(tau=tau_syn)
    populations = {"cortex": sf.Population(lif, total, parts=dict(zip(POPULATIONS, sizes)))}
    if background in ("poisson", "keyed"):
        trains = per_neuron(k_ext)
        source = sf.PoissonSource(rate=BACKGROUND_RATE, trains=trains, seed=seed if background == "keyed" else None)
        populations["background"] = sf.Population(source, total)
    drive = {"cortex": per_neuron(dc / 1000.0)} if bool((dc != 0).any()) else {}
    rank, world = (0, 1) if share is None else share
    skeleton = sf.Network(populations=populations, drive=drive)
    if share is not None:  # this rank's neurons (round-robin) and only the synapses onto them
        skeleton = sf.partition(skeleton, rank, world)
    n_local = skeleton.populations["cortex"].size

    blocks = [(s, t, int(counts[t, s])) for t in range(8) for s in range(8) if int(counts[t, s]) > 0]

    def seed_of(source: int, target: int) -> int:
        return seed * 100 + target * 8 + source

    # each block's synapses are drawn target by target (connectivity.fixed_total_number), so this rank
    # draws its own targets' synapses only: those whose cortex number is rank modulo world
    in_degree = {
        (source, target): connectivity.total_number_in_degree(
            sizes[source], sizes[target], count, seed_of(source, target)
        )
        for source, target, count in blocks
    }

    def pieces(source: int, target: int):
        """This rank's targets of a block (numbers within the target population), in pieces of at
        most `PIECE` synapses: (targets, their synapse counts, the synapses' sources)."""
        first = (rank - starts[target]) % world
        targets = torch.arange(first, sizes[target], world)
        degree = in_degree[source, target].index_select(0, targets)
        for part in connectivity.target_pieces(degree, PIECE):
            pre = connectivity.keyed_sources(seed_of(source, target), targets[part], degree[part], sizes[source])
            yield targets[part], degree[part], pre

    out_degree = torch.zeros(total, dtype=torch.int64)  # each cortical neuron's synapses on this rank
    for source, target, _ in blocks:  # first pass: each source neuron's number of synapses here
        for _, _, pre in pieces(source, target):
            out_degree[starts[source] : starts[source] + sizes[source]] += torch.bincount(pre, minlength=sizes[source])
    table = sf.SynapseTable(out_degree, n_local, dt, dtype=torch.float32, width=ROW_WIDTH)
    del out_degree
    for source, target, _ in sorted(blocks):  # second pass, by source population: rows fill in order
        mean = float(currents[target, source])
        delay_mean = DELAY_MEAN[POPULATIONS[source][-1]]
        key = seed_of(source, target)
        for targets, degree, pre in pieces(source, target):  # never a whole block at once
            weights, delays = connectivity.keyed_normal_rows(key, targets, degree)
            weights = _keyed_redrawn(weights.mul_(abs(mean) * WEIGHT_REL_STD).add_(mean), mean, key, targets, degree)
            delays = delays.mul_(delay_mean * DELAY_REL_STD).add_(delay_mean)
            # this rank's number of each target: round-robin over the cortex's numbering
            post = torch.repeat_interleave((targets + starts[target]).div_(world, rounding_mode="floor"), degree)
            order = connectivity.stable_order(pre, sizes[source])  # rows are filled by source
            # NEST's delay d is one step of latency plus d - dt (module docstring); in place, to spare memory
            table.add(
                pre.index_select(0, order).add_(starts[source]),
                post.index_select(0, order),
                weights.mul_(charge).index_select(0, order),
                delays.clamp_(min=dt).sub_(dt).index_select(0, order),
            )
            del pre, post, weights, delays, order
    projections = {"synapses": table.projection("cortex", "cortex", synapse)}
    if "background" in populations:
        owned = torch.arange(rank, total, world)
        external = connectivity.Connectivity(owned, torch.arange(n_local), total, n_local)
        projections["external"] = sf.projection("background", "cortex", external, psc_ext * charge, synapse, dt=dt)
    return sf.Network(
        populations=skeleton.populations, projections=projections, drive=skeleton.drive, exchange=skeleton.exchange
    )


def initial_values(network: sf.Network, generator: torch.Generator) -> dict[str, dict[str, torch.Tensor]]:
    """Initial membrane potentials normal(-58, 10) mV, as in the NEST example: {"cortex": {"v": ...}};
    for a rank's share (``microcircuit(share=...)``), those of its neurons among the whole network's."""
    exchange = network.exchange
    size = network.populations["cortex"].size if exchange is None else exchange.populations["cortex"].size
    v = V0_MEAN + V0_STD * torch.randn(size, generator=generator)
    return {"cortex": {"v": v if exchange is None else v[exchange.rank :: exchange.world]}}


def initial_state(network: sf.Network, seed: int = 0, device: torch.device | str | None = None) -> sf.NetworkState:
    """The network at rest with the initial potentials of `initial_values`."""
    values = initial_values(network, torch.Generator().manual_seed(seed))
    state = network.init_state(device=device)
    populations = dict(state.populations)
    for name, fields in values.items():
        v = populations[name].v
        populations[name] = sf.replace(populations[name], v=fields["v"].to(device=v.device, dtype=v.dtype))
    return sf.replace(state, populations=populations)
