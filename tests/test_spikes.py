import pytest
import torch

import sapicore.functional as sf

X = torch.linspace(-3.0, 3.0, 13, dtype=torch.float64)


@pytest.mark.parametrize("surrogate", sf.SURROGATES)
def test_forward_is_heaviside_and_gradient_is_the_surrogate(surrogate):
    slope = 1.5
    out = sf.spike(X, surrogate, slope)
    assert out.dtype == X.dtype
    assert torch.equal(out, (X >= 0).double())
    grad = torch.func.grad(lambda x: sf.spike(x, surrogate, slope).sum())(X)
    assert torch.allclose(grad, sf.surrogate_derivative(surrogate, X, slope))


@pytest.mark.parametrize("surrogate", sf.SURROGATES)
def test_surrogate_derivatives_integrate_to_one(surrogate):
    x = torch.linspace(-2000.0, 2000.0, 4_000_001, dtype=torch.float64)
    area = torch.trapezoid(sf.surrogate_derivative(surrogate, x, 2.0), x)
    assert area.item() == pytest.approx(1.0, abs=2e-3)


def test_vmap_and_vmap_of_grad():
    batch = torch.stack([X, X + 0.5])
    out = torch.func.vmap(lambda x: sf.spike(x, "arctan", 2.0))(batch)
    assert torch.equal(out, (batch >= 0).double())
    grads = torch.func.vmap(torch.func.grad(lambda x: sf.spike(x, "triangle", 0.5).sum()))(batch)
    assert torch.allclose(grads, sf.surrogate_derivative("triangle", batch, 0.5))


def test_autograd_backward():
    x = X.clone().requires_grad_()
    sf.spike(x * 2.0, "fast_sigmoid", 1.0).sum().backward()
    assert torch.allclose(x.grad, 2.0 * sf.surrogate_derivative("fast_sigmoid", 2.0 * X, 1.0))


def test_compile_gives_the_same_values_and_gradients():
    fn = torch.compile(lambda x: sf.spike(x, "sigmoid", 3.0).sum(), backend="aot_eager", fullgraph=True)
    x = X.clone().requires_grad_()
    value = fn(x)
    value.backward()
    assert value.item() == 7.0
    assert torch.allclose(x.grad, sf.surrogate_derivative("sigmoid", X, 3.0))


def test_unknown_surrogate():
    with pytest.raises(ValueError, match="unknown surrogate 'boxcar'; choose one of: fast_sigmoid"):
        sf.spike(X, "boxcar")
    with pytest.raises(ValueError, match="unknown surrogate"):
        sf.LIF(surrogate="boxcar")


def test_grad_of_vmap_keeps_the_surrogate_and_plain_vmap_skips_it():
    batch = torch.stack([X, X - 0.5])
    grads = torch.func.grad(lambda b: torch.func.vmap(lambda x: sf.spike(x, "arctan", 2.0))(b).sum())(batch)
    assert torch.allclose(grads, sf.surrogate_derivative("arctan", batch, 2.0))
    with torch.no_grad():
        assert torch.equal(torch.func.vmap(lambda x: sf.spike(x))(batch), (batch >= 0).double())
