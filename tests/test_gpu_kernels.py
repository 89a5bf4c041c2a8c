"""The Triton propagation kernel against torch ops and the CPU kernel: same sums, lanes, compiled chunks.

Without a GPU the kernel runs on CPU tensors through Triton's interpreter (``TRITON_INTERPRET=1``,
set by conftest.py before triton is imported); with one, on CUDA.
"""

import warnings

import pytest
import torch

pytest.importorskip("triton")

from helpers import random_table, reference  # noqa: E402

import sapicore.functional as sf  # noqa: E402
from sapicore.functional import connectivity as C  # noqa: E402
from sapicore.functional import gpu_kernels, kernels  # noqa: E402
from sapicore.functional.propagation.backends import propagation  # noqa: E402
from sapicore.functional.transforms import RunContext  # noqa: E402

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
DT = 0.1
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not gpu_kernels.available(DEVICE), reason="Triton cannot run the kernel here"),
]


def on_device(*tensors):
    return [t.to(DEVICE) if isinstance(t, torch.Tensor) else t for t in tensors]


def tolerance(dtype):  # atomic additions may sum several spikes into one target in any order
    return {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("per_synapse", [None, torch.int8, torch.int16, torch.int32])  # None: one delay for all
def test_gpu_kernel_adds_every_spiking_synapse_at_its_delay(dtype, per_synapse):
    pending, spikes, targets, weights, delays = on_device(*random_table(n_pre=300, width=40, dtype=dtype))
    delays = delays.to(per_synapse) if per_synapse else 3
    step = torch.tensor(7, device=DEVICE)
    before = pending.clone()
    out = gpu_kernels.propagate(pending, spikes, targets, weights, delays, step)
    assert torch.equal(pending, before)  # pure: the input is not changed
    assert torch.allclose(out, reference(pending, spikes, targets, weights, delays, step), **tolerance(dtype))
    silent = gpu_kernels.propagate(pending, torch.zeros_like(spikes), targets, weights, delays, step)
    assert torch.equal(silent, pending.index_fill(0, torch.tensor([7 % len(pending)], device=DEVICE), 0.0))


def test_gpu_kernel_handles_wide_rows_one_row_buffers_and_empty_tables():
    pending, spikes, targets, weights, delays = on_device(*random_table(n_pre=20, width=300, max_delay=0))
    step = torch.tensor(0, device=DEVICE)
    expected = reference(pending, spikes, targets, weights, 0, step)
    assert torch.allclose(gpu_kernels.propagate(pending, spikes, targets, weights, 0, step), expected, rtol=1e-12)
    empty = gpu_kernels.propagate(pending, spikes[:0], targets[:1], weights[:1], 0, step)
    assert torch.equal(empty, torch.zeros_like(pending))  # the one row was delivered


def test_gpu_kernel_under_vmap_equals_a_loop_over_lanes_with_shared_and_lane_arguments():
    tables = [on_device(*random_table(seed=seed)) for seed in range(4)]
    pending = torch.stack([t[0] for t in tables])
    spikes = torch.stack([t[1] for t in tables])
    weights_per_lane = torch.stack([t[3] for t in tables])
    _, _, targets, weights, delays = tables[0]  # one structure shared by all lanes
    steps = torch.arange(4, device=DEVICE)
    shared = torch.func.vmap(gpu_kernels.propagate, in_dims=(0, 0, None, None, None, 0))(
        pending, spikes, targets, weights, delays, steps
    )
    own = torch.func.vmap(gpu_kernels.propagate, in_dims=(0, 0, None, 0, None, 0))(
        pending, spikes, targets, weights_per_lane, delays, steps
    )
    for i in range(4):
        loop = gpu_kernels.propagate(pending[i], spikes[i], targets, weights, delays, steps[i])
        assert torch.allclose(shared[i], loop, rtol=1e-12, atol=1e-12)
        loop = gpu_kernels.propagate(pending[i], spikes[i], targets, weights_per_lane[i], delays, steps[i])
        assert torch.allclose(own[i], loop, rtol=1e-12, atol=1e-12)
    inner = torch.func.vmap(gpu_kernels.propagate, in_dims=(0, 0, None, None, None, None))
    nested = torch.func.vmap(inner, in_dims=(0, 0, None, None, None, 0))
    grid = nested(
        pending[:, None].expand(4, 2, *pending.shape[1:]), spikes[:, None].expand(4, 2, -1), targets, weights, 2, steps
    )
    expected = [reference(pending[i], spikes[i], targets, weights, 2, steps[i]) for i in range(4)]
    assert torch.allclose(grid[:, 1], torch.stack(expected), rtol=1e-12, atol=1e-12)


def test_gpu_kernel_compiles_as_one_opaque_op():
    pending, spikes, targets, weights, delays = on_device(*random_table())
    step = torch.tensor(2, device=DEVICE)
    compiled = torch.compile(gpu_kernels.propagate, backend="aot_eager", fullgraph=True)
    assert torch.allclose(
        compiled(pending, spikes, targets, weights, delays, step),
        gpu_kernels.propagate(pending, spikes, targets, weights, delays, step),
        rtol=1e-12,
        atol=1e-12,
    )


def test_gpu_kernel_rejects_mismatched_arguments_with_a_message():
    pending, spikes, targets, weights, delays = on_device(*random_table())
    step = torch.tensor(0, device=DEVICE)
    with pytest.raises(ValueError, match="targets and weights must be"):
        gpu_kernels.propagate(pending, spikes[:-1], targets, weights, delays, step)
    with pytest.raises(ValueError, match="delays must be shaped like targets"):
        gpu_kernels.propagate(pending, spikes, targets, weights, delays[:, :2], step)


def plastic_network(delay):
    lif = sf.LIF(tau_mem=20.0, v_rest=-60.0, v_reset=-60.0, v_thresh=-50.0, r_mem=100.0, t_ref=2.0)
    conn = C.fixed_probability(100, 60, 0.2, seed=3)
    if delay == "per_synapse":  # 0 to 3 ms
        delay = torch.rand(len(conn), generator=torch.Generator().manual_seed(4)) * 3.0
    rule = sf.STDP(a_plus=4e-3, a_minus=4e-3, w_min=0.0, w_max=0.1)
    net = sf.Network(
        populations={"a": sf.Population(lif, 100), "b": sf.Population(lif, 60)},
        projections={
            "p": sf.projection("a", "b", conn, 0.03, sf.Exponential(5.0), dt=DT, delay=delay, plasticity=rule),
            "q": sf.projection("b", "b", C.fixed_probability(60, 60, 0.1, seed=5), 0.01, sf.Exponential(3.0), dt=DT),
        },
        drive={"a": 0.12},
    )
    return sf.to(net, device=DEVICE, dtype=torch.float64)


def with_backend(net, backend):
    return sf.replace(net, projections={k: sf.replace(p, propagation=backend) for k, p in net.projections.items()})


REFERENCE = "cpu_kernel" if DEVICE.type == "cpu" and kernels.available() else "topk"


@pytest.mark.parametrize("delay", ["per_synapse", 1.0])
def test_networks_with_delays_and_plasticity_equal_the_reference_backend(delay):
    net = plastic_network(delay)
    state = net.init_state()
    inputs = {"a": 0.1 * torch.rand(300, 100, dtype=torch.float64, device=DEVICE)}
    record = ("b.spikes", "p.s", "q.s")
    final, rec = sf.simulate(with_backend(net, "gpu_kernel"), state, inputs, dt=DT, record=record)
    final_ref, rec_ref = sf.simulate(with_backend(net, REFERENCE), state, inputs, dt=DT, record=record)
    assert rec["b.spikes"].sum() > 20
    assert torch.equal(rec["b.spikes"], rec_ref["b.spikes"])
    for name in ("p.s", "q.s"):
        assert torch.allclose(rec[name], rec_ref[name], atol=1e-12)
    moved = (final.projections["p"].weights - state.projections["p"].weights).abs().max()
    assert moved > 1e-3
    assert torch.allclose(final.projections["p"].weights, final_ref.projections["p"].weights, atol=1e-12)


def test_sweep_runs_the_lanes_in_the_kernel_and_equals_per_lane_runs():
    net = with_backend(plastic_network(0.5), "gpu_kernel")
    state = net.init_state()
    nets = [sf.replace(net, drive={"a": drive}) for drive in (0.3, 0.35, 0.4)]
    _, rec = sf.sweep(sf.stack(nets), None, steps=100, dt=DT, record=("b.spikes",))
    for i, one_net in enumerate(nets):
        _, one = sf.simulate(one_net, state, steps=100, dt=DT, record=("b.spikes",))
        assert torch.equal(rec["b.spikes"][i], one["b.spikes"])
    assert rec["b.spikes"].sum() > 0


@pytest.mark.parametrize("backend", ["aot_eager"] + (["inductor"] if DEVICE.type == "cuda" else []))
def test_compiled_chunks_with_the_gpu_kernel_equal_the_reference_loop(backend):
    # on the CPU, inductor's C++ code generation of plastic chunks takes minutes: dynamo and AOT
    # (functionalization, the fake rule) are what the opaque op meets there; CUDA runs inductor too
    net = with_backend(sf.replace(plastic_network(1.0), drive={"a": 0.3, "b": 0.25}), "gpu_kernel")
    state = net.init_state()
    record = ("b.spikes", "p.s")
    fast = True if backend == "inductor" else backend
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback to the eager loop
        final_fast, compiled = sf.simulate(net, state, steps=120, dt=DT, record=record, fast=fast, chunk=10)
    final, eager = sf.simulate(net, state, steps=120, dt=DT, record=record)
    assert eager["b.spikes"].sum() > 0
    assert torch.equal(compiled["b.spikes"], eager["b.spikes"])
    assert torch.allclose(compiled["p.s"], eager["p.s"], atol=1e-12)
    assert torch.allclose(final_fast.projections["p"].weights, final.projections["p"].weights, atol=1e-12)


def context(device="cpu", **changes):
    fields = dict(device=torch.device(device), dtype=torch.float32, gradient=False, lanes=False, compiled=False)
    return RunContext(**(fields | {"nested": False} | changes))


def test_auto_picks_the_gpu_kernel_on_cuda_only_and_explicit_backends_are_checked(monkeypatch):
    assert propagation(context("cuda")) == "gpu_kernel"
    assert propagation(context("cuda", gradient=True)) == "nonzero"
    assert propagation(context("cuda", compiled=True, gradient=True)) == "fixed"
    assert propagation(context("cpu")) in ("cpu_kernel", "nonzero")  # never the interpreter unasked
    assert propagation(context("cpu"), "gpu_kernel") == "gpu_kernel"  # asked for, under the interpreter
    with pytest.raises(ValueError, match="gpu_kernel.*gradient"):
        propagation(context("cuda", gradient=True), "gpu_kernel")
    with pytest.raises(ValueError, match="nonzero.*plain eager runs only"):
        propagation(context(compiled=True), "nonzero")
    with pytest.raises(ValueError, match="fixed has no vmap rule"):
        propagation(context(lanes=True), "fixed")
    with pytest.raises(ValueError, match="float32 or float64"):
        propagation(context(dtype=torch.float16), "gpu_kernel")
    if DEVICE.type == "cpu":
        monkeypatch.setenv("TRITON_INTERPRET", "0")
        with pytest.raises(ValueError, match="Triton and a CUDA device"):
            propagation(context("cpu"), "gpu_kernel")


def test_a_run_refuses_a_backend_it_cannot_use_naming_the_projection():
    net = with_backend(plastic_network(0.5), "nonzero")
    lanes = sf.stack([sf.replace(net, drive={"a": drive}) for drive in (0.1, 0.2)])
    with pytest.raises(ValueError, match="projection 'a' -> 'b': propagation='nonzero' cannot be used"):
        sf.sweep(lanes, None, steps=5, dt=DT)


def test_the_gpu_tiling_equals_the_reference_for_multapses_tail_blocks_and_many_lanes(monkeypatch):
    """The interpreter normally takes one wide block; here it runs the GPU's 32-source blocks, with
    rows wider than one 128-slot column block, repeated targets within a row and a partial last block."""
    chosen = gpu_kernels.block_sizes
    monkeypatch.setattr(gpu_kernels, "block_sizes", lambda n_pre, width: chosen(n_pre, width, gpu=True))
    assert gpu_kernels.block_sizes(70, 200) == (32, 128)
    lanes = 5
    tables = [on_device(*random_table(n_pre=70, n_post=9, width=200, seed=seed)) for seed in range(lanes)]
    pending, spikes, targets, weights, delays = (torch.stack([t[i] for t in tables]) for i in range(5))
    assert bool((targets[:, :, :200] == targets[:, :, :1]).any())  # 9 targets in 200 slots: multapses
    steps = torch.arange(lanes, device=DEVICE)
    out = torch.func.vmap(gpu_kernels.propagate)(pending, spikes, targets, weights, delays, steps)
    for lane in range(lanes):
        expected = reference(pending[lane], spikes[lane], targets[lane], weights[lane], delays[lane], steps[lane])
        assert torch.allclose(out[lane], expected, rtol=1e-12, atol=1e-12)


def test_the_row_clear_fills_with_a_scalar_and_makes_no_host_tensor():
    """On CUDA, ``out[rows] = 0.0`` copies a host scalar tensor with a synchronisation (and is illegal in
    graph capture): the kernel's wrapper must not index-put from, or lift, a Python value."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Ops(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.names = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.names.append(str(func))
            return func(*args, **(kwargs or {}))

    pending, spikes, targets, weights, delays = on_device(*random_table())
    step = torch.tensor(3, device=DEVICE)
    with Ops() as ops:  # the op's body (a custom op dispatches as one op from outside)
        gpu_kernels._propagate_lanes(
            pending[None], spikes[None], targets[None], weights[None], delays[None], 0, step[None]
        )
    assert "aten.index_fill_.int_Scalar" in ops.names
    assert not [name for name in ops.names if "index_put" in name or "lift_fresh" in name or "_to_copy" in name]


def test_narrow_rows_propagate_as_wide_rows():
    """A table in rows narrower than its widest source (SynapseTable(width=...)) gives the GPU kernel
    its rows as sources: the same sums as rows as wide as the widest source."""
    links = C.fixed_probability(70, 40, 0.3, seed=6)
    delays = torch.rand(len(links), generator=torch.Generator().manual_seed(2)) * 2.0
    projections = []
    for width in (None, 4):
        table = sf.SynapseTable(links.out_degree(), 40, DT, dtype=torch.float64, width=width)
        table.add(links.pre, links.post, 0.25, delays)
        proj = table.projection("a", "b", sf.Exponential(5.0))
        projections.append(sf.to(sf.replace(proj, propagation="gpu_kernel"), device=DEVICE))
    assert projections[0].first_row is None and projections[1].first_row is not None
    spikes = (torch.rand(70, generator=torch.Generator().manual_seed(1)) < 0.4).to(DEVICE, torch.float64)
    wide, narrow = (proj.emit(proj.init_state(spikes), spikes) for proj in projections)
    assert torch.allclose(narrow.pending, wide.pending, **tolerance(torch.float64))
