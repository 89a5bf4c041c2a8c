"""Partitioned networks (running.partition): a run over 2 and 3 processes (gloo, started by torchrun)
gives the single-process run's spikes, membrane potentials, synaptic variables and plastic weights bit
for bit; the shares of a network together hold each neuron and synapse once; seeded Poisson draws do
not depend on how a run is split; bad input is refused."""

import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import attrs
import pytest
import torch
from tree_config.yaml import yaml_dumps, yaml_loads

import sapicore.functional as sf
from sapicore.functional import connectivity as C
from sapicore.functional.running.partition import gather_synapses

DT = 0.1
STEPS = 1500
RECORD = ("cells.spikes", "cells.v", "ee.s", "noise.spikes")

WORKER = """
import sys
import torch
import torch.distributed as dist
sys.path.insert(0, {tests!r})
import sapicore.functional as sf
from sapicore.functional.running.partition import gather_synapses
from test_partition import RECORD, STEPS, DT, network, spike_inputs

dist.init_process_group("gloo")
local = sf.partition(network(), transport={transport!r})
state, records = sf.simulate(
    local, local.init_state(), spike_inputs(), dt=DT, steps=STEPS, record=RECORD, fast={fast!r}, chunk={chunk}
)
for name in local.projections:
    records.update(zip([name + ".pre", name + ".post", name + ".w"], gather_synapses(local, state, name)))
records["shared"] = local.exchange.channel is not None
records["gloo"] = {{**local.exchange.gloo, "step bytes": local.exchange.plans.get("step bytes", 0)}}
if {fast!r} and {transport!r} == "gloo":  # over gloo, chunks not kept on disk would hold the lock: refused
    import os

    os.environ["SAPICORE_COMPILE_CACHE"] = "off"
    try:
        sf.simulate(local, local.init_state(), spike_inputs(), dt=DT, steps=STEPS, fast=True, chunk=10)
    except NotImplementedError as err:
        refused = str(err)
torch.save(records, {out!r} + f"/rank{{dist.get_rank()}}.pt")
if {fast!r} and {transport!r} == "gloo":
    torch.save(refused, {out!r} + f"/refused{{dist.get_rank()}}.pt")
dist.barrier()  # no rank tears its process group down while another still exchanges
dist.destroy_process_group()
"""


def network():
    """Spike inputs and seeded Poisson noise onto one population with two parts (161 excitatory, 39
    inhibitory LIF neurons, sizes that no number of ranks divides), conductance synapses,
    heterogeneous delays, STDP, a per-neuron drive."""
    g = torch.Generator().manual_seed(3)
    n_exc, n_inh = 161, 39
    lif = sf.LIF(tau_mem=20.0, v_rest=-60.0, v_reset=-60.0, v_thresh=-50.0, r_mem=100.0, t_ref=2.0)
    populations = {
        "src": sf.Population(sf.SpikeInput(), 40),
        "noise": sf.Population(sf.PoissonSource(rate=torch.linspace(5.0, 50.0, 30), trains=3, seed=11), 30),
        "cells": sf.Population(lif, n_exc + n_inh, parts={"exc": n_exc, "inh": n_inh}),
    }
    c_in, c_ee = C.fixed_probability(40, 200, 0.2, seed=1), C.fixed_probability(n_exc, 200, 0.1, seed=2)
    c_ie, c_noise = C.fixed_probability(n_inh, 200, 0.1, seed=3), C.fixed_probability(30, 200, 0.3, seed=4)
    excitatory, inhibitory = sf.Exponential(tau=5.0, e_rev=0.0), sf.Exponential(tau=10.0, e_rev=-80.0)
    projections = {
        "in": sf.projection(
            "src",
            "cells",
            c_in,
            torch.rand(len(c_in), generator=g) * 0.02,
            excitatory,
            dt=DT,
            delay=torch.rand(len(c_in), generator=g) * 3.0,
        ),  # fmt: skip
        "ee": sf.projection(
            "exc",
            "cells",
            c_ee,
            0.004,
            excitatory,
            dt=DT,
            delay=torch.rand(len(c_ee), generator=g) * 2,
            plasticity=sf.STDP(a_plus=0.001, a_minus=0.0012, w_max=0.02),
        ),  # fmt: skip
        "ne": sf.projection("noise", "cells", c_noise, 0.01, excitatory, dt=DT, delay=0.5),
        "ie": sf.projection("inh", ("exc", "inh"), c_ie, 0.03, inhibitory, dt=DT, delay=1.0, kind="dense"),
    }
    return sf.Network(populations=populations, projections=projections, drive={"exc": torch.linspace(0.0, 0.05, n_exc)})


def spike_inputs():
    return {"src": (torch.rand(STEPS, 40, generator=torch.Generator().manual_seed(7)) < 0.05).float()}


RESUMED = """
import sys
import torch
import torch.distributed as dist
sys.path.insert(0, {tests!r})
import sapicore.functional as sf
from sapicore.checkpoint import load_checkpoint, save_checkpoint
from sapicore.functional.running.partition import gather_synapses
from test_partition import RECORD, STEPS, DT, network, spike_inputs

dist.init_process_group("gloo")
local, src, half = sf.partition(network()), spike_inputs()["src"], 700
state, first = sf.simulate(local, local.init_state(), {{"src": src[:half]}}, dt=DT, steps=half, record=RECORD)
save_checkpoint({out!r} + "/run.ckpt", state, step=0, model=local)  # replaced by the next: its shards go
save_checkpoint({out!r} + "/run.ckpt", state, step=half, model=local)
del local, state
saved = load_checkpoint({out!r} + "/run.ckpt")
local = saved["model"]
state, second = sf.simulate(
    local, saved["state"], {{"src": src[half:]}}, dt=DT, steps=STEPS - half, record=RECORD, start_step=saved["step"]
)
records = {{name: torch.cat([first[name], second[name]]) for name in RECORD}}
for name in local.projections:
    records.update(zip([name + ".pre", name + ".post", name + ".w"], gather_synapses(local, state, name)))
torch.save(records, {out!r} + f"/rank{{dist.get_rank()}}.pt")
dist.barrier()  # no rank tears its process group down while another still exchanges
dist.destroy_process_group()
"""


RESHARDED = """
import sys
import torch
import torch.distributed as dist
sys.path.insert(0, {tests!r})
import sapicore.functional as sf
from sapicore.checkpoint import load_checkpoint
from sapicore.functional.running.partition import gather_synapses
from test_partition import RECORD, STEPS, DT, network, spike_inputs

dist.init_process_group("gloo")
saved = load_checkpoint({out!r} + "/run.ckpt", model=sf.partition(network()))
local, half = saved["model"], saved["step"]
state, records = sf.simulate(
    local, saved["state"], {{"src": spike_inputs()["src"][half:]}}, dt=DT, steps=STEPS - half, record=RECORD,
    start_step=half,
)
for name in local.projections:
    records.update(zip([name + ".pre", name + ".post", name + ".w"], gather_synapses(local, state, name)))
records["resharded"] = saved["resharded"]
torch.save(records, {out!r} + f"/resumed{{dist.get_rank()}}.pt")
dist.barrier()  # no rank tears its process group down while another still exchanges
dist.destroy_process_group()
"""


def _run_ranks(tmp_path: Path, template: str, world: int, **fields) -> None:
    """Run the worker script ``template`` (filled with the tests' folder, ``tmp_path`` and
    ``fields``) on ``world`` processes under torchrun, one thread each; it must succeed."""
    script = tmp_path / f"worker{world}.py"
    script.write_text(template.format(tests=str(Path(__file__).parent), out=str(tmp_path), **fields))
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={world}", str(script)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)
    assert done.returncode == 0, done.stderr[-3000:]


def _single_process_run() -> dict:
    whole = network()
    state, expected = sf.simulate(whole, whole.init_state(), spike_inputs(), dt=DT, steps=STEPS, record=RECORD)
    for name in whole.projections:
        expected.update(zip([name + ".pre", name + ".post", name + ".w"], gather_synapses(whole, state, name)))
    return expected


@pytest.mark.slow
def test_a_partitioned_run_resumes_from_its_shards_as_if_never_stopped(tmp_path):
    """Two ranks save a checkpoint halfway (a shard each and a manifest), load it and run on: the
    same spikes, potentials and plastic weights as the single process's uninterrupted run; the
    manifest refuses to load in a single process."""
    from sapicore.checkpoint import load_checkpoint

    _run_ranks(tmp_path, RESUMED, 2)
    assert sorted(path.name for path in tmp_path.glob("run.ckpt*")) == [
        "run.ckpt",
        "run.ckpt.step700.rank0-of-2",
        "run.ckpt.step700.rank1-of-2",
    ]
    expected = {name: value for name, value in _single_process_run().items() if name != "t"}
    for rank in range(2):
        records = torch.load(tmp_path / f"rank{rank}.pt")
        for name, value in expected.items():
            assert torch.equal(records[name], value), f"rank {rank}: {name} differs"
    with pytest.raises(ValueError, match="holds the shares of a run on 2 processes"):
        load_checkpoint(tmp_path / "run.ckpt")
    _resumes_on_three_ranks_and_on_one(tmp_path, expected)


def _resumes_on_three_ranks_and_on_one(tmp_path: Path, expected: dict) -> None:
    """The shards of 2 ranks, moved onto 3 ranks' shares and onto the whole network in this process
    (``load_checkpoint(path, model=...)``), go on with the uninterrupted run's spikes, potentials and
    weights."""
    from sapicore.checkpoint import load_checkpoint

    _run_ranks(tmp_path, RESHARDED, 3)
    whole = network()
    saved = load_checkpoint(tmp_path / "run.ckpt", model=whole)
    assert saved["resharded"] == (2, 1) and saved["model"] is whole and saved["rng"] is None
    half = saved["step"]
    state, here = sf.simulate(
        whole, saved["state"], {"src": spike_inputs()["src"][half:]}, dt=DT, steps=STEPS - half, record=RECORD,
        start_step=half,
    )  # fmt: skip
    for name in whole.projections:
        here.update(zip([name + ".pre", name + ".post", name + ".w"], gather_synapses(whole, state, name)))
    runs = {"this process": here, **{f"rank {r} of 3": torch.load(tmp_path / f"resumed{r}.pt") for r in range(3)}}
    for run, records in runs.items():
        assert records.get("resharded", (2, 1)) in ((2, 1), (2, 3)), run
        for name, value in expected.items():
            value = value[half:] if name in RECORD else value
            assert torch.equal(records[name], value), f"{run}: {name} differs"


@pytest.mark.parametrize(
    "world, transport, fast",
    [
        (2, "auto", False),
        (2, "gloo", False),
        pytest.param(2, "auto", True, marks=pytest.mark.slow),
        pytest.param(2, "gloo", True, marks=pytest.mark.slow),
        pytest.param(3, "auto", False, marks=pytest.mark.slow),
        pytest.param(3, "gloo", False, marks=pytest.mark.slow),
    ],
)
def test_a_partitioned_run_equals_the_single_process_run_bit_for_bit(world, transport, fast, tmp_path):
    """Through shared memory ("auto" on one machine) or gloo, with the reference loop or compiled
    chunks (whose graphs hold the exchange: the shared channel's operator, or gloo all-gathers run
    with the interpreter lock released, the LIF cells' spikes in them as bits), on 2 or 3 ranks: the
    single process's results. In the reference loop over gloo, a step's outputs travel as a bitmap where
    every rank's are 0 or 1, else as they are (the noise's counts of 2 and 3 here)."""
    _run_ranks(tmp_path, WORKER, world, transport=transport, fast=fast, chunk=10 if fast else 100)
    expected = _single_process_run()
    assert expected["cells.spikes"].sum() > 1000 and expected["noise.spikes"].sum() > 100
    assert not torch.equal(expected["ee.w"], torch.full_like(expected["ee.w"], 0.004))  # STDP moved weights
    for rank in range(world):
        records = torch.load(tmp_path / f"rank{rank}.pt")
        assert records.pop("shared") == (transport == "auto")
        gloo = records.pop("gloo")
        if transport == "gloo" and fast:  # the steps' all-gathers run inside the compiled graphs
            assert gloo["dense"] == 0 and gloo["calls"] >= STEPS, gloo  # counted, with no bitmaps of the loop's
            dense = 4 * sum(-(-population.size // world) for population in network().populations.values())
            assert 0 < gloo["step bytes"] < 0.35 * dense, gloo  # the cells' spikes as bits, the rest as they are
            refused = torch.load(tmp_path / f"refused{rank}.pt")
            assert "kept on disk" in refused and "SAPICORE_COMPILE_CACHE=off" in refused, refused
        elif transport == "gloo":  # steps' spikes travel as bitmaps, but for those with the noise's counts of 2 or 3
            assert 1 <= gloo["dense"] <= STEPS // 100 and gloo["calls"] >= STEPS, gloo
        assert sorted(records) == sorted(expected)
        for name, value in expected.items():
            if fast and name in ("cells.v", "ee.s"):  # compiled arithmetic rounds differently (fused, reordered)
                torch.testing.assert_close(records[name], value, rtol=1e-5, atol=1e-4, msg=f"rank {rank}: {name}")
                continue
            assert torch.equal(records[name], value), f"rank {rank} of {world}: {name} differs"


LANES = """
import sys
import warnings
import torch
import torch.distributed as dist
sys.path.insert(0, {tests!r})
import sapicore.functional as sf
from test_partition import RECORD, STEPS, DT, diverging_lanes, lane_networks, spike_inputs

dist.init_process_group("gloo")
lanes = sf.stack([sf.partition(net) for net in lane_networks()])
_, records = sf.sweep(lanes, None, spike_inputs(), dt=DT, steps=STEPS, record=RECORD, fast={fast!r}, chunk={chunk})
if not {fast!r}:  # the rest once, with the reference loop
    before = lanes.exchange.traffic()["calls"]
    sf.sweep(lanes, None, spike_inputs(), dt=DT, steps=STEPS, record=(), chunk=250)
    records["calls"] = lanes.exchange.traffic()["calls"] - before
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sf.DivergenceWarning)
        _, diverged = sf.sweep(
            sf.stack([sf.partition(net) for net in diverging_lanes()]), dt=DT, steps=400, record=("a.v",), chunk=100
        )
    records.update({{"diverged": diverged["diverged"], "diverged.a.v": diverged["a.v"]}})
    try:
        sf.sweep(sf.stack([sf.partition(net, transport="gloo") for net in lane_networks()]), dt=DT, steps=10)
    except NotImplementedError as err:
        records["gloo"] = str(err)
    unkeyed = sf.partition(sf.Network({{"p": sf.Population(sf.PoissonSource(rate=200.0), 10)}}, {{}}))
    torch.manual_seed(0)  # the same generator state on both ranks
    try:
        sf.simulate(unkeyed, unkeyed.init_state(), dt=DT, steps=10)
    except ValueError as err:
        records["same streams"] = str(err)
    torch.manual_seed(dist.get_rank())
    records["unkeyed"] = sf.simulate(unkeyed, unkeyed.init_state(), dt=DT, steps=500, record=("p.spikes",))[1]["p.spikes"]
torch.save(records, {out!r} + f"/rank{{dist.get_rank()}}.pt")
dist.barrier()  # no rank tears its process group down while another still exchanges
dist.destroy_process_group()
"""


def lane_networks():
    """Three lanes of the test network that differ in their neurons' threshold (mV)."""
    lanes = []
    for v_thresh in (-50.0, -51.0, -49.5):
        whole = network()
        cells = whole.populations["cells"]
        model = attrs.evolve(cells.model, v_thresh=v_thresh)
        populations = {**whole.populations, "cells": sf.Population(model, cells.size, cells.parts)}
        lanes.append(sf.Network(populations, whole.projections, whole.drive))
    return lanes


def diverging_lanes():
    """Two lanes of 10 AdEx neurons; in the second, the neurons that rank 0 of 2 owns (even
    indices) overflow at their first spike, the others stay finite."""
    b = torch.zeros(10).index_fill(0, torch.arange(0, 10, 2), 1e38)
    return [sf.Network({"a": sf.Population(sf.AdEx(b=value), 10)}, {}, drive={"a": 5.0}) for value in (0.0, b)]


@pytest.mark.parametrize("fast", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_lanes_of_a_partitioned_network_equal_each_lanes_single_process_run(fast, tmp_path):
    """A sweep of 3 lanes of shares on 2 ranks: every lane's records on every rank equal that lane's
    single-process run (compiled chunks: spikes equal, potentials within rounding); the lanes of a
    step travel in one exchange; a lane that overflows on one rank only is quarantined on both at
    the same chunk; over gloo, lanes are refused in one line. Unkeyed draws from generators in the
    same state on both ranks are refused; seeded apart, they differ."""
    _run_ranks(tmp_path, LANES, 2, fast=fast, chunk=10 if fast else 250)
    singles = []
    for whole in lane_networks():
        singles.append(sf.simulate(whole, whole.init_state(), spike_inputs(), dt=DT, steps=STEPS, record=RECORD)[1])
    assert len({int(single["cells.spikes"].sum()) for single in singles}) == 3  # the lanes differ
    for rank in range(2):
        records = torch.load(tmp_path / f"rank{rank}.pt")
        for lane, single in enumerate(singles):
            for name in RECORD:
                if fast and name in ("cells.v", "ee.s"):  # compiled arithmetic rounds differently
                    torch.testing.assert_close(records[name][lane], single[name], rtol=1e-5, atol=1e-4)
                    continue
                assert torch.equal(records[name][lane], single[name]), f"rank {rank}, lane {lane}: {name} differs"
        if fast:
            continue
        assert records["calls"] <= STEPS + 1  # one exchange per step for all 3 lanes (and the trial step)
        assert torch.isnan(records["diverged"][0]) and records["diverged"][1] == 10.0
        assert records["diverged.a.v"][1].isnan().all() and not records["diverged.a.v"][0].isnan().any()
        assert "exchange through shared memory between the ranks of one machine" in records["gloo"]
        assert (
            "draws its random numbers from torch's generator, which is in the same state on ranks 0, 1"
            in (records["same streams"])
        )
        unkeyed = records["unkeyed"]  # the whole population on every rank: ranks own even and odd neurons
        assert unkeyed.sum() > 50 and not torch.equal(unkeyed[:, 0::2], unkeyed[:, 1::2])


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_chunks_over_gloo_send_binary_outputs_as_bits_and_the_others_as_they_are(dtype, world):
    """The message of a compiled chunk's step over gloo: the LIF cells' outputs (output_is_binary) as
    bits, the Poisson counts and spike inputs as their bytes; every rank's messages together give the
    whole network's outputs exactly, in a fraction of the bytes. An output said to be binary that is
    not is refused before the chunks are compiled."""
    from sapicore.functional.network import names_of
    from sapicore.functional.running.partition import _check_binary, _owned, _packed_message, _unpacked_message

    whole = network()
    group = tuple(whole.populations)
    assert [whole.populations[name].model.output_is_binary for name in names_of(group)] == [False, False, True]
    values = {name: (torch.rand(pop.size) < 0.3).to(dtype) for name, pop in whole.populations.items()}
    values["noise"] = torch.randint(0, 4, (whole.populations["noise"].size,)).to(dtype)
    messages, flats = [], []
    for rank in range(world):
        exchange = sf.partition(whole, rank, world).exchange
        lengths, widths, order = exchange._plan(group)
        pieces = [values[name][_owned(0, whole.populations[name].size, rank, world)] for name in group]
        flat = torch.cat([torch.nn.functional.pad(p, (0, w - len(p))) for p, w in zip(pieces, widths)])
        packing = exchange._packing(group)
        messages.append(_packed_message(flat, packing))
        flats.append(flat)
        _check_binary(flat, packing, group)
        wrong = flat.clone()
        wrong[packing[0][0][0] + 3] = 2.0  # a cell's output said to be binary
        with pytest.raises(ValueError, match="'cells'.*output_is_binary = False"):
            _check_binary(wrong, packing, group)
    assert len({message.numel() for message in messages}) == 1 and messages[0].dtype == torch.uint8
    assert messages[0].numel() < 0.5 * flats[0].numel() * flats[0].element_size()
    got = _unpacked_message(torch.cat(messages), world, flats[0], packing).index_select(-1, packing[2])
    assert got.dtype == dtype and torch.equal(got, torch.cat([values[name] for name in group]))
    assert torch.equal(torch.cat(flats).index_select(-1, order), got)  # as the values travelling as they are


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_spikes_travel_over_gloo_as_bitmaps_and_other_values_are_flagged(dtype):
    """A step's outputs of 0 and 1 become one bit each after a flag byte and come back exactly, for
    sizes that are no multiple of 8; counts, graded values, NaN or infinity are flagged to be sent as
    they are (the message has the same length, so every rank's fits one all-gather)."""
    from sapicore.functional.running.partition import _bitmap, _from_bitmap

    for size in (1, 7, 8, 9, 3861):
        spikes = (torch.rand(size, generator=torch.Generator().manual_seed(size)) < 0.3).to(dtype)
        message = _bitmap(spikes)
        assert message.dtype == torch.uint8 and message.numel() == 1 + -(-size // 8) and int(message[0]) == 1
        back = _from_bitmap(message, spikes)
        assert back.dtype == dtype and torch.equal(back, spikes)
        assert torch.equal(
            _from_bitmap(_bitmap(torch.zeros(size, dtype=dtype)), spikes), torch.zeros(size, dtype=dtype)
        )
        for other in (2.0, 0.5, float("nan"), float("inf"), -1.0):
            values = spikes.clone()
            values[size // 2] = other
            flagged = _bitmap(values)
            assert int(flagged[0]) == 0 and flagged.numel() == message.numel(), other


def test_the_shares_hold_every_neuron_and_synapse_once():
    whole = network()
    shares = [sf.partition(whole, rank, 3) for rank in range(3)]
    assert [share.populations["cells"].size for share in shares] == [67, 67, 66]
    assert [dict(share.populations["cells"].parts) for share in shares] == [
        {"exc": 54, "inh": 13},  # neurons 0, 3, ..., 159 and 162, ..., 198
        {"exc": 54, "inh": 13},
        {"exc": 53, "inh": 13},
    ]
    assert [share.populations["noise"].model.numbering for share in shares] == [(0, 3), (1, 3), (2, 3)]
    assert torch.equal(shares[1].drive["exc"], whole.drive["exc"][1::3])
    for name, proj in whole.projections.items():
        total = int(proj.mask.sum())
        assert sum(int(share.projections[name].mask.sum()) for share in shares) == total


def test_seeded_poisson_trains_do_not_depend_on_chunks_or_numbering():
    source = sf.PoissonSource(rate=torch.linspace(10.0, 400.0, 12), trains=4, seed=3)
    _, whole = sf.simulate(source, source.init_state(12), dt=0.1, steps=3000)
    _, chunked = sf.simulate(source, source.init_state(12), dt=0.1, steps=3000, chunk=7)
    assert torch.equal(whole["spikes"], chunked["spikes"])
    odd = sf.PoissonSource(rate=torch.linspace(10.0, 400.0, 12)[1::2], trains=4, seed=3, numbering=(1, 2))
    _, share = sf.simulate(odd, odd.init_state(6), dt=0.1, steps=3000)
    assert torch.equal(share["spikes"], whole["spikes"][:, 1::2])
    other = sf.replace(source, seed=4)
    _, differs = sf.simulate(other, other.init_state(12), dt=0.1, steps=3000)
    assert not torch.equal(differs["spikes"], whole["spikes"])


def test_seeded_poisson_counts_are_the_same_from_the_kernel_torch_ops_compiled_chunks_and_lanes():
    """The C++ op (one pass, no host synchronisation) and the torch ops draw the same counts, for
    means from 0 to 90 spikes per step; compiled chunks keep the op; lanes (vmap) use the torch ops."""
    from sapicore.functional import kernels

    rates = torch.cat([torch.zeros(3), torch.logspace(0, 3.5, 297)])
    source = sf.PoissonSource(rate=rates, trains=torch.linspace(1, 285, 300).round(), seed=5, numbering=(7, 3))
    _, eager = sf.simulate(source, source.init_state(300), dt=0.1, steps=300)
    assert float(eager["spikes"].max()) > 90 and float(eager["spikes"][:, :3].sum()) == 0
    with kernels.disabled():
        _, torch_ops = sf.simulate(source, source.init_state(300), dt=0.1, steps=300)
    assert torch.equal(eager["spikes"], torch_ops["spikes"])
    _, compiled = sf.simulate(source, source.init_state(300), dt=0.1, steps=300, fast="aot_eager", chunk=50)
    assert torch.equal(compiled["spikes"], eager["spikes"])
    _, lanes = sf.sweep(sf.stack([source, source]), dt=0.1, steps=300, shape=300)
    assert torch.equal(lanes["spikes"][1], eager["spikes"])


def test_seeded_poisson_counts_have_poisson_statistics():
    for trains in (1, 40):
        source = sf.PoissonSource(rate=250.0, trains=trains, seed=9)
        _, records = sf.simulate(source, source.init_state(2000), dt=0.1, steps=400)
        counts = records["spikes"].double()
        mean = 250.0 * trains * 0.1 / 1000.0
        assert abs(counts.mean().item() - mean) < 4 * (mean / counts.numel()) ** 0.5
        if trains > 1:  # Poisson: variance = mean
            assert counts.var().item() == pytest.approx(mean, rel=0.02)


def run_one_step(model, **options):
    return sf.simulate(model, model.init_state(), dt=DT, steps=1, **options)


def _save_share_alone() -> None:
    from sapicore.checkpoint import save_checkpoint

    share = sf.partition(network(), 0, 2)
    save_checkpoint("/tmp/never-written.ckpt", share.init_state(), step=1, model=share)


BAD = {
    "partition without a process group": (lambda: sf.partition(network()), RuntimeError, "init_process_group"),
    "a share saved without its process group": (_save_share_alone, ValueError, "initialised process group"),
    "lanes of shares of different partitions": (
        lambda: sf.stack([sf.partition(network(), 0, 2), sf.partition(network(), 0, 2, transport="gloo")]),
        ValueError,
        "lanes are shares of different partitions",
    ),
    "a rank outside the world": (lambda: sf.partition(network(), 2, 2), ValueError, "rank must lie in"),
    "a population smaller than the world": (
        lambda: sf.partition(network(), 0, 31),
        ValueError,
        "population or part .noise. has fewer neurons than there are ranks",
    ),
    "a partition partitioned again": (
        lambda: sf.partition(sf.partition(network(), 0, 2), 0, 2),
        ValueError,
        "already a partition",
    ),
    "a share run without a process group": (
        lambda: run_one_step(sf.partition(network(), 0, 1), fast=True),
        RuntimeError,
        "process group initialised on every rank",
    ),
    "an unknown transport": (
        lambda: sf.partition(network(), 0, 2, transport="tcp"),
        ValueError,
        "transport must be one of 'auto', 'shared', 'gloo'",
    ),
    "a seed that is not an int": (lambda: sf.PoissonSource(seed=1.5), ValueError, "seed must be None or an int"),
    "a numbering with stride 0": (lambda: sf.PoissonSource(numbering=(0, 0)), ValueError, "stride >= 1"),
    "a seeded mean beyond 100 per step": (
        lambda: (lambda source: sf.simulate(source, source.init_state(3), dt=DT, steps=1))(
            sf.PoissonSource(rate=2e6, trains=1000, seed=1)
        ),
        ValueError,
        "at most 100 spikes",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_refused(case):
    make, error, message = BAD[case]
    with pytest.raises(error, match=message):
        make()


@pytest.mark.slow
def test_the_example_writes_the_same_summary_on_one_and_two_processes(tmp_path):
    example = str(Path(__file__).resolve().parents[1] / "examples" / "partitioned.py")
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    one = [sys.executable, example, "--out", str(tmp_path / "one"), "--duration", "100"]
    two = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", example]
    for command in (one, two + ["--out", str(tmp_path / "two"), "--duration", "100"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)
        assert done.returncode == 0, done.stderr[-3000:]
    summaries = [json.loads((tmp_path / name / "summary.json").read_text()) for name in ("one", "two")]
    assert summaries[0]["spikes"] > 100 and [s["processes"] for s in summaries] == [1, 2]
    assert summaries[0]["digest"] == summaries[1]["digest"]


@pytest.mark.slow
@pytest.mark.parametrize(("fast", "transport"), [(False, "gloo"), (True, "auto"), (True, "gloo")])
def test_the_command_under_torchrun_writes_the_single_process_records(tmp_path, fast, transport):
    """``torchrun --nproc-per-node 2 -m sapicore run microcircuit`` with keyed background, with the
    reference loop over gloo (``simulation.transport``) or compiled chunks over shared memory or gloo:
    the same spike events in records.nix, and the same rates, as ``sapicore run`` in one process."""
    from sapicore.logging.nix import read_events

    options = ["--set", "builder.scale=0.05", "--set", "builder.background=keyed", "--set", "simulation.discard=50"]
    options += ["--set", f"simulation.fast={str(fast).lower()}", "--set", f"simulation.transport={transport}"]
    options += ["--duration", "150", "--no-progress"]
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    one = [sys.executable, "-m", "sapicore", "run", "microcircuit", *options, "--out", str(tmp_path / "one")]
    two = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "sapicore"]
    two += ["run", "microcircuit", *options, "--out", str(tmp_path / "two")]
    for command in (one, two):
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)
        assert done.returncode == 0, done.stderr[-3000:]
    summaries = [json.loads((tmp_path / name / "summary.json").read_text()) for name in ("one", "two")]
    assert summaries[1]["processes"] == 2 and summaries[0]["mean_rate_hz"] == summaries[1]["mean_rate_hz"]
    exchange = summaries[1]["exchange"]
    assert exchange["transport"] == ("gloo" if transport == "gloo" else "shared") and exchange["bytes"] > 0
    for population in ("L23E", "L4E", "L5I", "L6I"):
        events = [read_events(tmp_path / name / "records.nix", f"{population}.spikes") for name in ("one", "two")]
        assert len(events[0][0]) > 0
        assert all(torch.equal(torch.as_tensor(a), torch.as_tensor(b)) for a, b in zip(*events))


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_the_command_under_torchrun_stopped_resumes_in_one_process_to_the_single_process_records(tmp_path):
    """``torchrun --nproc-per-node 2 -m sapicore run microcircuit --checkpoint-every 10``, stopped by
    SIGTERM once its first checkpoint (two shards and a manifest) is there, resumed with
    ``sapicore run --resume`` in one process (the shards merge onto the whole network): the records
    of one uninterrupted single-process run."""
    import signal
    import time

    from sapicore.cli import CHECKPOINT
    from sapicore.logging.nix import read_events

    options = ["--set", "builder.scale=0.05", "--set", "builder.background=keyed", "--set", "simulation.discard=0"]
    options += ["--no-progress"]
    out = tmp_path / "two"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "sapicore"]
    command += ["run", "microcircuit", *options, "--duration", "60000", "--checkpoint-every", "10", "--out", str(out)]
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment)
    try:
        deadline = time.monotonic() + 240
        while not (out / CHECKPOINT).exists():
            assert launcher.poll() is None and time.monotonic() < deadline, "no checkpoint came"
            time.sleep(0.1)
        launcher.send_signal(signal.SIGTERM)
        output, _ = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert f"its last checkpoint and partial records stay in {out}: continue with --resume" in output, output[-3000:]
    saved = torch.load(out / CHECKPOINT)  # the manifest: the step, the number of ranks
    assert saved["world"] == 2 and sorted(path.name for path in out.glob(f"{CHECKPOINT}.*")) == [
        *(f"{CHECKPOINT}.rank{rank}-of-2.model" for rank in range(2)),  # each rank's share, written once
        *(f"{CHECKPOINT}.step{saved['step']}.rank{rank}-of-2" for rank in range(2)),
    ]
    duration = str(saved["step"] * 0.1 + 20.0)
    resumed = [sys.executable, "-m", "sapicore", "run", "microcircuit", *options, "--duration", duration]
    for arguments in ([*resumed, "--out", str(out), "--resume"], [*resumed, "--out", str(tmp_path / "one")]):
        done = subprocess.run(arguments, capture_output=True, text=True, timeout=300, env=environment)
        assert done.returncode == 0, done.stderr[-3000:]
    assert not list(out.glob(f"{CHECKPOINT}*"))
    for population in ("L23E", "L4E", "L5I", "L6I"):
        events = [read_events(tmp_path / name / "records.nix", f"{population}.spikes") for name in ("one", "two")]
        assert len(events[0][0]) > 0
        assert all(torch.equal(torch.as_tensor(a), torch.as_tensor(b)) for a, b in zip(*events))


def test_the_command_under_torchrun_refuses_what_partitions_do_not_run(monkeypatch):
    """A partitioned run on GPUs is refused in one line, before any process group is joined."""
    from types import SimpleNamespace

    from sapicore.cli import _partitioned
    from sapicore.spec import SpecError

    monkeypatch.setenv("WORLD_SIZE", "2")
    for fast in (False, True):
        with pytest.raises(SpecError, match="under torchrun a network runs partitioned on CPUs"):
            _partitioned(Path("coba.yaml"), SimpleNamespace(fast=fast, device="cuda"))


@pytest.mark.parametrize("value", ["abc", "-1", "0", "inf", "nan"])
def test_a_bad_exchange_timeout_is_refused_in_one_line(monkeypatch, tmp_path, capsys, value):
    from sapicore.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("SAPICORE_EXCHANGE_TIMEOUT", value)
    code = main(["run", "coba", "--out", str(tmp_path / "out"), "--no-progress"])
    error = capsys.readouterr().err
    assert code == 2 and "SAPICORE_EXCHANGE_TIMEOUT must be a positive number of seconds" in error
    assert not (tmp_path / "out").exists()


def _children(pid: int) -> list[int]:
    found = []
    for tasks in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(word) for word in tasks.read_text().split()]
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds torchrun's workers through /proc")
@pytest.mark.parametrize("transport, fast", [("auto", False), ("gloo", True)])
def test_a_rank_killed_mid_run_stops_the_other_with_one_line(tmp_path, transport, fast):
    """SIGKILL one of two ranks while they exchange spikes (through shared memory, or over gloo
    inside compiled chunks): the other notices (shared memory within milliseconds: the process is
    gone, or a zombie that torchrun has not reaped yet; gloo when its connection closes), says so in
    one line instead of a traceback, and torchrun ends the run."""
    import signal
    import time

    out = tmp_path / "out"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    command += ["--monitor-interval=5", "-m", "sapicore"]  # torchrun's SIGTERM comes after the survivor's line
    command += ["run", "microcircuit", "--set", "builder.scale=0.05", "--set", "builder.background=keyed"]
    command += ["--set", f"simulation.transport={transport}", "--set", f"simulation.fast={str(fast).lower()}"]
    command += ["--duration", "60000", "--no-progress", "--out", str(out)]
    environment = dict(os.environ, OMP_NUM_THREADS="1", SAPICORE_EXCHANGE_TIMEOUT="30")
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment)
    try:
        deadline = time.monotonic() + 480  # compiled: both ranks compile their chunks first
        while not (out / "records.part.nix").exists():  # rank 0 streams records: both ranks are running
            assert launcher.poll() is None and time.monotonic() < deadline, "the run did not start"
            time.sleep(0.5)
        created = (out / "records.part.nix").stat().st_size
        while (out / "records.part.nix").stat().st_size == created:  # the first records appended: steps ran
            assert launcher.poll() is None and time.monotonic() < deadline, "the run did not step"
            time.sleep(0.5)
        time.sleep(2.0)
        workers = _children(launcher.pid)
        assert len(workers) == 2, workers
        os.kill(workers[1], signal.SIGKILL)
        killed = time.monotonic()
        output, _ = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode != 0 and time.monotonic() - killed < 60
    lines = [line for line in output.splitlines() if line.startswith("sapicore: error: rank ")]
    assert len(lines) == 1, output[-3000:]
    assert "the exchange with the other processes failed" in lines[0] and "SAPICORE_EXCHANGE_TIMEOUT" in lines[0]
    if transport == "auto":
        assert "rank 1 (process" in lines[0] and "exited during the run" in lines[0]
    assert "[rank0]: Traceback" not in output and "[rank1]: Traceback" not in output


@pytest.mark.parametrize("k_scale", [0.03, 0.08])  # the whole network's rows narrower than its widest neuron at 0.08
def test_the_microcircuit_builds_a_share_equal_to_the_partition_of_the_whole(k_scale):
    """``microcircuit(share=(rank, world))`` draws the whole network's synapses and keeps the rank's
    targets': the same tables (targets, weights, delays, rows of each source, ring length) and initial
    potentials as ``partition`` of the whole network, in a little over half the memory."""
    from sapicore.networks import potjans2014

    whole = potjans2014.microcircuit(scale=0.03, k_scale=k_scale, background="keyed")
    assert (whole.projections["synapses"].first_row is None) == (k_scale == 0.03)
    v = potjans2014.initial_state(whole, seed=1).populations["cortex"].v
    for rank in range(2):
        built = potjans2014.microcircuit(scale=0.03, k_scale=k_scale, background="keyed", share=(rank, 2))
        cut = sf.partition(whole, rank, 2)
        assert built.exchange.rank == rank and sorted(built.projections) == sorted(cut.projections)
        for name, proj in cut.projections.items():
            for field in ("targets", "weights", "delays", "first_row"):
                ours, theirs = getattr(proj, field), getattr(built.projections[name], field)
                same = torch.equal(ours, theirs) if isinstance(ours, torch.Tensor) else ours == theirs
                assert same, (name, field)
            assert proj.max_delay == built.projections[name].max_delay and proj.n_post == built.projections[name].n_post
        # half the synapses; at this scale a rank's neurons have about 140 synapses each, so rows of 256
        # slots pad more than the whole network's (at full scale, about 1,900 each: 7%)
        assert built.projections["synapses"].targets.numel() < 0.65 * whole.projections["synapses"].targets.numel()
        assert torch.equal(potjans2014.initial_state(built, seed=1).populations["cortex"].v, v[rank::2])


SHARED_SPEC = """
simulation: {dt: 0.1, duration: 5.0, seed: 4, record: [cells.spikes]}
populations:
  noise: {model: PoissonSource, size: 30, parameters: {rate: 20.0, seed: 3}}
  cells:
    model: LIF
    size: 50
    parts: {exc: 40, inh: 10}
    parameters: {v_thresh: {distribution: uniform, low: -52.0, high: -48.0}, t_ref: 2.0}
    initial: {v: {distribution: normal, mean: -60.0, std: 4.0}}
projections:
  ee:
    source: exc
    target: cells
    connectivity: {rule: fixed_probability, p: 0.2, seed: 5}
    synapse: {model: Exponential, tau: 5.0, e_rev: 0.0}
    weight: {distribution: lognormal, mean: -5.0, std: 0.5}
    delay: {distribution: uniform, low: 0.5, high: 2.0}
    plasticity: {rule: STDP, a_plus: 0.001, a_minus: 0.001, w_max: 0.02}
  ie:
    source: inh
    target: cells
    connectivity: {rule: fixed_probability, p: 0.3, seed: 6}
    synapse: {model: Exponential, tau: 10.0, e_rev: -80.0}
    weight: 0.03
    representation: dense
  ni:
    source: noise
    target: inh
    connectivity: {rule: fixed_total_number, count: 120}
    synapse: {model: Exponential, tau: 5.0, e_rev: 0.0}
    weight: 0.004
    delay: 1.0
  ne:
    source: noise
    target: cells
    connectivity: {rule: fixed_probability, p: 0.1, seed: 7}
    synapse: {model: Exponential, tau: 5.0, e_rev: 0.0}
    weight: {distribution: uniform, low: 0.005, high: 0.01}
  ii:
    source: inh
    target: inh
    connectivity: {rule: fixed_in_degree, k: 6, allow_self: false}
    synapse: {model: Exponential, tau: 10.0, e_rev: -80.0}
    weight: {distribution: normal, mean: 0.03, std: 0.005}
    delay: {distribution: normal, mean: 1.0, std: 0.2}
  loop:
    source: exc
    target: exc
    connectivity: {rule: one_to_one}
    synapse: {model: Exponential, tau: 5.0, e_rev: 0.0}
    weight: 0.002
  all:
    source: inh
    target: inh
    connectivity: {rule: all_to_all, allow_self: false}
    synapse: {model: Exponential, tau: 10.0, e_rev: -80.0}
    weight: 0.001
drive: {exc: {distribution: uniform, low: 0.0, high: 0.05}}
"""


@pytest.mark.parametrize("world", [2, 3])
def test_a_spec_of_populations_builds_a_share_equal_to_the_partition_of_the_whole(world):
    """``parse_spec(data, share=(rank, world))`` of a network given by populations (random weights,
    delays, thresholds, drive and initial potentials; sparse, dense and plastic projections): each
    projection's synapses, weights and delays are drawn for the rank's targets alone (their streams
    keyed by target), and the share and initial state equal ``partition`` and ``local_state`` of the
    whole network's."""
    from sapicore.functional.running.partition import local_state
    from sapicore.spec import initial_state, parse_spec

    data = yaml_loads(SHARED_SPEC)
    whole = parse_spec(data)
    start = initial_state(whole)
    assert int(whole.network.projections["ni"].mask.sum()) == 120  # noise -> inh: seeded by the spec
    drawn = []  # the targets asked of every rule (number of targets, their first neuron's number in cells)
    targets_of, value_rows = C._targets, C.keyed_uniform_rows
    first = {50: 0, 40: 0, 10: 40}  # cells, exc, inh

    def targets(given, n_post):
        drawn.append((given.clone(), first[n_post]))
        return targets_of(given, n_post)

    for rank in range(world):
        drawn.clear()
        with (
            mock.patch.object(C, "_targets", targets),
            mock.patch.object(C, "keyed_uniform_rows", side_effect=value_rows) as values,
        ):
            built = parse_spec(data, share=(rank, world))
        assert len(drawn) == 7 and all(bool(((t + offset) % world == rank).all()) for t, offset in drawn)
        # weights and delays: keyed uniforms (two for a normal) of the rank's targets alone
        assert values.call_count >= 8
        assert all(call.args[1].numel() <= -(-50 // world) for call in values.call_args_list)
        cut = sf.partition(whole.network, rank, world)
        assert built.network.exchange.rank == rank and built.network.exchange.world == world
        ours, theirs = (
            torch.utils._pytree.tree_flatten((net.populations, net.projections, net.drive))
            for net in (built.network, cut)
        )
        assert ours[1] == theirs[1]
        for a, b in zip(ours[0], theirs[0]):
            assert torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b
        expected = local_state(cut, start)
        for a, b in zip(*(torch.utils._pytree.tree_leaves(s) for s in (initial_state(built), expected))):
            assert torch.equal(a, b)


def test_the_command_under_torchrun_runs_a_spec_of_populations_as_one_process(tmp_path):
    """``torchrun --nproc-per-node 2 -m sapicore run SPEC`` for a network given by populations (each
    rank building its share, projection after projection): the records.nix spike events of the
    single process's ``sapicore run``."""
    from sapicore.logging.nix import read_events

    data = yaml_loads(SHARED_SPEC)
    data["simulation"].update(duration=100.0, record=["cells.spikes", "noise.spikes"])
    data["drive"] = {"exc": {"distribution": "uniform", "low": 1.6, "high": 2.5}}  # nA: the cells spike
    data["outputs"] = {"nix": True, "raster": False, "tensorboard": False}
    spec = tmp_path / "shared.yaml"
    spec.write_text(yaml_dumps(data))
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    one = [sys.executable, "-m", "sapicore", "run", str(spec), "--no-progress", "--out", str(tmp_path / "one")]
    two = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "sapicore"]
    two += ["run", str(spec), "--no-progress", "--out", str(tmp_path / "two")]
    for command in (one, two):
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)
        assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["processes"] == 2
    for name in ("cells.spikes", "noise.spikes"):
        events = [read_events(tmp_path / folder / "records.nix", name) for folder in ("one", "two")]
        assert len(events[0][0]) > 20, name
        assert all(torch.equal(torch.as_tensor(a), torch.as_tensor(b)) for a, b in zip(*events)), name
