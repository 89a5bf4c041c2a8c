import math

import pytest
import torch

import sapicore.functional as sf
from sapicore.functional.models.integrators import canonical_method


def growth(y):
    return (y[0],)


def test_one_step_of_exponential_growth_matches_the_issue_values():
    y0 = (torch.tensor(math.e, dtype=torch.float64),)
    assert sf.rk4(growth, y0, 1.0)[0].item() == pytest.approx(7.362013, abs=1e-6)
    assert sf.euler(growth, y0, 1.0)[0].item() == pytest.approx(5.436564, abs=1e-6)


def test_exponential_euler_is_exact_for_linear_relaxation():
    tau, target = 7.0, torch.tensor([3.0, -2.0], dtype=torch.float64)
    y = (torch.tensor([0.0, 5.0], dtype=torch.float64),)
    for _ in range(10):
        y = sf.exponential_euler(lambda y: ((tau,), (target,)), y, 0.5)
    exact = target + (torch.tensor([0.0, 5.0], dtype=torch.float64) - target) * math.exp(-5.0 / tau)
    assert torch.allclose(y[0], exact, atol=1e-12, rtol=0)


def test_exponential_euler_of_growth_is_exact():
    y0 = (torch.tensor(math.e, dtype=torch.float64),)
    y1 = sf.exponential_euler(lambda y: ((-1.0,), (0.0,)), y0, 1.0)
    assert y1[0].item() == pytest.approx(math.e**2, rel=1e-12)


@pytest.mark.parametrize("method, order", [("euler", 1), ("rk4", 4)])
def test_convergence_order(method, order):
    def error(dt):
        y = (torch.tensor(1.0, dtype=torch.float64),)
        for _ in range(int(round(1.0 / dt))):
            y = sf.integrate(method, y, dt, derivative=lambda y: (-y[0],))
        return abs(y[0].item() - math.exp(-1.0))

    ratio = error(0.02) / error(0.01)
    assert ratio == pytest.approx(2**order, rel=0.1)


def test_method_names():
    assert canonical_method("runge_kutta") == "rk4"
    with pytest.raises(ValueError, match="unknown integration method 'leapfrog'.*euler, rk4, exponential_euler"):
        canonical_method("leapfrog")
    with pytest.raises(ValueError, match="supports: euler, rk4"):
        sf.Izhikevich(method="exponential_euler")
    with pytest.raises(ValueError, match="relaxation form"):
        sf.integrate("exponential_euler", (torch.zeros(1),), 0.1, derivative=growth)
