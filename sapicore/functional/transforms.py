"""Which torch transforms are active (compile, vmap, grad), and the `RunContext` of a run.

This is the one module that looks at torch's transform stack. Every other module asks it;
[`sapicore.functional.propagation.backends`][sapicore.functional.propagation.backends] uses it to
choose how sparse projections propagate.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch
from torch._C._functorch import TransformType
from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters

__all__ = [
    "RunContext",
    "compiling",
    "traced",
    "functorch_active",
    "vmap_active",
    "grad_transform_active",
    "gradient_possible",
    "run_context",
]


def compiling() -> bool:
    """True while ``torch.compile`` traces."""
    return torch.compiler.is_compiling()


def traced(tensor: torch.Tensor) -> bool:
    """True when ``tensor``'s values cannot be read: a vmap/grad wrapper, a fake tensor, or inside compile."""
    if torch._C._functorch.is_functorch_wrapped_tensor(tensor):
        return True
    return compiling() or isinstance(tensor, torch._subclasses.FakeTensor)


def functorch_active() -> bool:
    """True inside any ``torch.func`` transform (vmap, grad, jacrev, ...)."""
    return torch._C._are_functorch_transforms_active()


def vmap_active() -> bool:
    """True inside ``torch.func.vmap`` (at any depth), outside compile."""
    if compiling() or not functorch_active():
        return False
    return any(level.key() == TransformType.Vmap for level in retrieve_all_functorch_interpreters())


def grad_transform_active() -> bool:
    """True inside a ``torch.func`` transform other than vmap (grad, jacrev, ...), outside compile."""
    if compiling() or not functorch_active():  # dynamo cannot read the transform stack; it tracks requires_grad
        return False
    return any(level.key() != TransformType.Vmap for level in retrieve_all_functorch_interpreters())


def gradient_possible(*tensors: Any) -> bool:
    """True when a gradient can flow through any of ``tensors``: autograd, or a ``torch.func`` grad transform."""
    if torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in tensors):
        return True
    return grad_transform_active()


@attrs.frozen
class RunContext:
    """What a run looks like to the propagation backends.

    device, dtype: the state's; gradient: a gradient can flow through the run; lanes: steps run
    under vmap (``sweep``, or an outer ``vmap``); compiled: chunks are compiled (``fast``); nested:
    ``simulate`` runs inside an outer ``torch.func`` transform, so chunks cannot be rerun.
    """

    device: torch.device
    dtype: torch.dtype
    gradient: bool
    lanes: bool
    compiled: bool
    nested: bool


def run_context(leaves: list[Any], reference: torch.Tensor, *, lanes: bool, compiled: bool) -> RunContext:
    """The context of a run whose model, state and inputs hold ``leaves`` (tensors among them)."""
    return RunContext(
        device=reference.device,
        dtype=reference.dtype,
        gradient=gradient_possible(*leaves),
        lanes=lanes or vmap_active(),
        compiled=bool(compiled),
        nested=functorch_active(),
    )
