"""The neuron-model contract: what a model of one's own needs, and the errors that say what is missing."""

from typing import Any

import pytest
import torch

import sapicore.functional as sf


@sf.pytree
class LeakState:
    v: torch.Tensor


@sf.pytree
class Leak(sf.NeuronModel):
    """dv/dt = (i - v) / tau: a complete minimal model."""

    tau: Any = sf.parameter(10.0, check=sf.check_positive)
    state_class = LeakState
    output_name = "v"
    output_is_event = False

    def initial_values(self, shape, zeros):
        return {"v": zeros.clone()}

    def step(self, state, input, dt):
        v = state.v + dt * (sf.check_input(input, state.v) - state.v) / self.tau
        return sf.replace(state, v=v), v


def test_a_minimal_model_of_ones_own_runs_and_differentiates():
    model = Leak()
    _, rec = sf.simulate(model, model.init_state(3), inputs=1.0, steps=100, dt=0.1)
    assert torch.allclose(rec["v"][-1], torch.full((3,), 1.0 - (1.0 - 0.01) ** 100))
    grad = torch.func.grad(
        lambda tau: sf.simulate(sf.replace(model, tau=tau), model.init_state(1), inputs=1.0, steps=50, dt=0.1)[1][
            "v"
        ].sum()
    )
    assert grad(torch.tensor(10.0)) < 0
    with pytest.raises(ValueError, match="Leak.tau must be > 0"):
        Leak(tau=-1.0)


def test_missing_pieces_are_named():
    @sf.pytree
    class NoStep(sf.NeuronModel):
        state_class = LeakState

        def initial_values(self, shape, zeros):
            return {"v": zeros}

    @sf.pytree
    class NoState(sf.NeuronModel):
        def initial_values(self, shape, zeros):
            return {"v": zeros}

        def step(self, state, input, dt):
            return state, state.v

    class NotATree(sf.NeuronModel):  # no @pytree
        pass

    @sf.pytree
    class WrongValues(Leak):
        def initial_values(self, shape, zeros):
            return {"u": zeros}

    with pytest.raises(TypeError, match=r"NoStep needs a method step\(state, input, dt\)"):
        NoStep().init_state(2)
    with pytest.raises(TypeError, match="NoState needs state_class"):
        NoState().init_state(2)
    with pytest.raises(TypeError, match="NotATree must be decorated with @sapicore.functional.pytree"):
        NotATree().init_state(2)
    with pytest.raises(
        TypeError, match=r"must return a dict with one value per field of LeakState \['v'\], got \['u'\]"
    ):
        WrongValues().init_state(2)
    with pytest.raises(TypeError, match="expected a neuron model .* or a Network, got str"):
        sf.simulate("lif", Leak().init_state(2), steps=3, dt=0.1)
