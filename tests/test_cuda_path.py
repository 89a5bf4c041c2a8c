"""What the CPU can show of the CUDA path's first run: compiled chunks hand back state that no later
CUDA-graph replay overwrites, the model's tables stay put in memory, and chunks start without a
host-to-device copy."""

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import sapicore.functional as sf
from sapicore.functional import connectivity as C
from sapicore.functional.running.stepper import mark_static, unaliased


def network(plastic: bool = False):
    return sf.Network(
        {"a": sf.Population(sf.LIF(), 20), "b": sf.Population(sf.LIF(), 10)},
        {
            "ab": sf.projection(
                "a",
                "b",
                C.fixed_out_degree(20, 10, 3, seed=1),
                0.4,
                sf.Exponential(),
                dt=0.1,
                delay=0.5,
                plasticity=sf.STDP() if plastic else None,
            )
        },
        drive={"a": 3.0},
    )


def test_a_chunks_written_state_is_copied_out_and_what_it_passed_through_is_kept():
    net = network()
    before = net.init_state()
    after = sf.replace(before, populations={"a": sf.replace(before.populations["a"], v=before.populations["a"].v + 1)})
    kept = unaliased(before, after)
    written = after.populations["a"].v
    assert kept.populations["a"].v is not written and torch.equal(kept.populations["a"].v, written)
    assert kept.populations["a"].v.untyped_storage().data_ptr() != written.untyped_storage().data_ptr()
    assert kept.projections["ab"].weights is before.projections["ab"].weights  # passed through: no copy


def test_the_tables_of_the_model_and_fixed_weights_are_marked_static_and_plastic_weights_are_not():
    for plastic in (False, True):
        net = network(plastic)
        state = net.init_state()
        mark_static(net, state)
        targets = net.projections["ab"].targets
        assert getattr(targets, "_dynamo_static_input_type", None) is not None
        weights = state.projections["ab"].weights
        assert (getattr(weights, "_dynamo_static_input_type", None) is not None) is (not plastic)


class Lifted(TorchDispatchMode):
    """Counts the tensors made from Python values (``torch.tensor(x)``: a blocking host copy on CUDA)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if "lift_fresh" in str(func):
            self.count += 1
        return func(*args, **(kwargs or {}))


def test_chunk_start_times_are_made_on_the_device_without_a_host_copy():
    net = network()
    counts = []
    for chunks in (2, 8):
        with Lifted() as lifted:
            sf.simulate(net, net.init_state(), dt=0.1, steps=10 * chunks, chunk=10, record="b.v")
        counts.append(lifted.count)
    assert counts[0] == counts[1]  # nothing per chunk
