import attrs
import pytest
import torch
import torch.utils._pytree as pytree_utils

import sapicore.functional as sf
from sapicore.functional.pytree import check_positive, parameter, pytree


@pytree
class Pair:
    a: torch.Tensor
    scale: float = 2.0
    name: str = "pair"


def test_tensor_fields_are_leaves_and_others_static():
    tree = Pair(torch.ones(3), 3.0)
    leaves, spec = pytree_utils.tree_flatten(tree)
    assert len(leaves) == 1 and leaves[0] is tree.a
    rebuilt = pytree_utils.tree_unflatten([torch.zeros(3)], spec)
    assert isinstance(rebuilt, Pair)
    assert rebuilt.scale == 3.0 and rebuilt.name == "pair"
    assert torch.equal(rebuilt.a, torch.zeros(3))


def test_unflatten_skips_validators_and_keeps_children_for_non_tensor_leaves():
    @pytree
    class Checked:
        x: object = attrs.field(validator=attrs.validators.instance_of(torch.Tensor))

    tree = Checked(torch.ones(2))
    _, spec = pytree_utils.tree_flatten(tree)
    rebuilt = pytree_utils.tree_unflatten([0], spec)  # what vmap does with in_dims
    assert rebuilt.x == 0
    assert pytree_utils.tree_structure(rebuilt).num_leaves == 1


def test_frozen():
    tree = Pair(torch.ones(1))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        tree.scale = 1.0


def test_replace_changes_only_named_fields_and_rejects_unknown():
    tree = Pair(torch.ones(2))
    new = sf.replace(tree, scale=5.0)
    assert new.scale == 5.0 and tree.scale == 2.0 and new.a is tree.a
    with pytest.raises(TypeError, match="no field 'sclae'.*fields are: a, scale, name"):
        sf.replace(tree, sclae=1.0)


def test_to_moves_and_casts_floating_leaves_only():
    tree = {"f": torch.ones(2), "i": torch.arange(3)}
    moved = sf.to(tree, dtype=torch.float64)
    assert moved["f"].dtype == torch.float64 and moved["i"].dtype == torch.int64
    with pytest.raises(TypeError, match="floating dtype"):
        sf.to(tree, dtype=torch.int32)


def test_stack_makes_differing_numbers_lane_tensors_and_keeps_equal_ones_static():
    lanes = sf.stack([sf.LIF(tau_mem=10.0), sf.LIF(tau_mem=20.0, v_rest=torch.tensor([-65.0, -60.0]))])
    assert torch.equal(lanes.tau_mem, torch.tensor([10.0, 20.0]))
    assert torch.equal(lanes.v_rest, torch.tensor([[-65.0, -65.0], [-65.0, -60.0]]))
    assert lanes.v_thresh == -50.0
    assert sf.lane_count(lanes) == 2
    first, second = sf.unstack(lanes)
    assert float(first.tau_mem) == 10.0 and torch.equal(second.v_rest, torch.tensor([-65.0, -60.0]))


def test_stack_of_identical_lanes_still_has_lanes():
    lanes = sf.stack([sf.LIF(), sf.LIF(), sf.LIF()])
    assert sf.lane_count(lanes) == 3


def test_stack_rejects_different_settings():
    with pytest.raises(ValueError, match="non-numeric setting"):
        sf.stack([sf.LIF(method="euler"), sf.LIF(method="rk4")])


def test_parameter_converts_and_validates():
    @pytree
    class Model:
        tau: object = parameter(1.0, check=check_positive)

    assert Model(3).tau == 3.0 and isinstance(Model(3).tau, float)
    assert Model([1, 2]).tau.dtype == torch.get_default_dtype()
    with pytest.raises(ValueError, match=r"Model.tau must be > 0"):
        Model(-1.0)
    with pytest.raises(ValueError, match=r"Model.tau must be finite"):
        Model(torch.tensor([1.0, float("nan")]))
    with pytest.raises(TypeError, match="bool"):
        Model(True)


def test_validate_catches_what_replace_let_through():
    bad = sf.replace(sf.LIF(), tau_mem=-1.0)
    with pytest.raises(ValueError, match="tau_mem must be > 0"):
        sf.validate(bad)


def test_a_step_that_builds_its_state_with_the_class_compiles_in_one_graph_and_validates_outside():
    """attrs' frozen ``__init__`` calls ``object.__setattr__.__get__``, which torch.compile cannot
    trace; a pytree's ``__init__`` sets the fields directly inside a trace (a user's model built its
    state with ``State(v=...)`` and ran eagerly on the torch.compile path)."""

    @pytree
    class State:
        v: torch.Tensor
        count: int = 0
        gain: float = attrs.field(default=1.0, kw_only=True, validator=attrs.validators.gt(0))

    def step(state):
        return State(state.v * 2.0, state.count + 1, gain=0.5)

    compiled = torch.compile(step, backend="aot_eager", fullgraph=True)
    got, expected = compiled(State(torch.ones(3))), step(State(torch.ones(3)))
    assert torch.equal(got.v, expected.v) and (got.count, got.gain) == (expected.count, expected.gain) == (1, 0.5)
    assert pytree_utils.tree_leaves(got) == [got.v]
    with pytest.raises(ValueError, match="'gain' must be > 0"):
        State(torch.ones(3), gain=-1.0)  # outside a trace, attrs' own __init__ runs the validators
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'v'"):
        State()
