"""Short-term synaptic plasticity on the source side of a projection: Tsodyks-Markram depression and
facilitation (units: ms).

A source neuron's spike releases a fraction of the resources its synapses hold, and how large that
fraction is depends on the spikes before it (Tsodyks & Markram 1997; Markram, Wang & Tsodyks 1998;
the recursion of NEST's ``tsodyks2_synapse``). With ``x`` the fraction of resources available
(1 at rest) and ``u`` the utilization (0 at rest), a spike ``n`` at interval ``h`` after spike
``n - 1`` finds::

    u_n = U + u_{n-1} (1 - U) exp(-h / tau_facil)
    x_n = 1 + (x_{n-1} - u_{n-1} x_{n-1} - 1) exp(-h / tau_rec)

and transmits ``weight * u_n * x_n``; the first spike (``u_0 = U``, ``x_0 = 1``) transmits
``weight * U``. ``tau_facil = 0`` gives pure depression (``u_n = U``). Between spikes ``x`` recovers
to 1 with ``tau_rec`` and ``u`` decays to 0 with ``tau_facil``, exactly (one exponential factor per
step), so a step-by-step run gives the recursion's efficacies up to rounding.

The state is one ``(x, u)`` per source neuron, shared by its outgoing synapses of the projection (the
parameters are the projection's: one value, or one per source neuron). A step's source output is
taken as one spike of that size: a count of several spikes in one step releases once, scaled by the
count.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import torch

from ..pytree import check_non_negative, check_positive, is_concrete, parameter, pytree, replace

__all__ = ["TsodyksMarkram", "ShortTermState"]


@pytree
class ShortTermState:
    """resources: the fraction ``x`` of each source's resources available (1 at rest);
    utilization: its utilization ``u`` since the last spike, decaying to 0 (0 at rest)."""

    resources: torch.Tensor
    utilization: torch.Tensor


def _check_fraction(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """attrs validator: the parameter lies in (0, 1] in every entry."""
    check_positive(instance, attribute, value)
    if is_concrete(value) and bool((torch.as_tensor(value) > 1).any()):  # sync-ok: validation
        raise ValueError(f"{type(instance).__name__}.{attribute.name} must be in (0, 1], got {value!r}")


def _decay(dt: float, tau: Any) -> Any:
    """``exp(-dt / tau)``, 0 where ``tau`` is 0 (no memory)."""
    if isinstance(tau, torch.Tensor):
        return torch.where(tau > 0, torch.exp(-dt / tau.clamp(min=1e-30)), torch.zeros_like(tau))
    return math.exp(-dt / tau) if tau > 0 else 0.0


@pytree
class TsodyksMarkram:
    """Tsodyks-Markram short-term depression and facilitation of a projection's sources.

    Args:
        U: utilization increment of a spike (release probability at rest), in (0, 1].
        tau_rec: recovery time constant of the resources (ms), > 0.
        tau_facil: decay time constant of the utilization (ms), >= 0; 0: no facilitation.

    Attach it to a projection with ``projection(..., short_term=TsodyksMarkram(...))`` (or
    ``replace(proj, short_term=...)``): each spike of source ``i`` is then transmitted with weight
    ``w * u_i * x_i`` (see the module docstring). Record ``"<projection>.resources"`` and
    ``"<projection>.utilization"`` to follow the state.
    """

    U: Any = parameter(0.5, check=_check_fraction)
    tau_rec: Any = parameter(800.0, check=check_positive)
    tau_facil: Any = parameter(0.0, check=check_non_negative)

    def init(self, n_pre: int, like: torch.Tensor) -> ShortTermState:
        """The resting state of ``n_pre`` sources, on ``like``'s device and dtype."""
        zeros = torch.zeros(n_pre, dtype=like.dtype, device=like.device)
        return ShortTermState(resources=zeros + 1.0, utilization=zeros)

    def release(self, state: ShortTermState, spikes: torch.Tensor, dt: float) -> tuple[torch.Tensor, ShortTermState]:
        """One step of ``dt`` ms: the state relaxes, then the sources that spiked release.

        Returns the spikes scaled by their efficacy ``u * x`` (what the projection transmits) and
        the new state.
        """
        resources = 1.0 - (1.0 - state.resources) * _decay(dt, self.tau_rec)
        utilization = state.utilization * _decay(dt, self.tau_facil)
        fired = spikes != 0
        increased = utilization + self.U * (1.0 - utilization)
        released = increased * resources
        transmitted = spikes * released
        new = replace(
            state,
            resources=torch.where(fired, resources - released, resources),
            utilization=torch.where(fired, increased, utilization),
        )
        return transmitted, new
