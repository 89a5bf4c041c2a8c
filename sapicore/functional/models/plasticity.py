"""Plasticity rules as pure ``init``/``update`` pairs over explicit traces (time in ms).

``rule.init(n_pre, n_post, weights)`` returns the rule's state (traces); each step, after the neurons
have spiked, ``rule.update(state, pre, post, weights, dt, layout, modulator)`` returns the new state and
weights. ``pre``/``post`` are this step's outputs of the source and target populations (spikes, or
activations of analog units); ``layout`` (see `sapicore.functional.models.layout`) makes the same rule
work on dense and sparse weights; ``modulator`` is a neuromodulatory signal (reward) used by
`RewardSTDP`. Within a step, traces decay first, weight changes use the decayed traces and
this step's spikes, and this step's spikes are added to the traces last; for a single pre/post pair
``dt_pair = t_post - t_pre`` apart this gives exactly ``A_plus exp(-dt_pair / tau_plus)`` (dt_pair > 0)
or ``-A_minus exp(dt_pair / tau_minus)`` (dt_pair < 0). Every parameter may be a tensor: the updates
are differentiable with respect to it.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import torch

from ..pytree import check_non_negative, check_not_nan, check_positive, is_concrete, parameter, pytree, replace
from .layout import Layout

__all__ = [
    "PlasticityRule",
    "STDP",
    "TripletSTDP",
    "Hebbian",
    "Oja",
    "RewardSTDP",
    "TraceState",
    "TripletState",
    "RewardState",
]


def _decay(dt: float, tau: Any) -> Any:
    return torch.exp(-dt / tau) if isinstance(tau, torch.Tensor) else math.exp(-dt / tau)


def _bumped(trace: torch.Tensor, spikes: torch.Tensor, nearest: bool) -> torch.Tensor:
    """Add this step's spikes to a trace (all-to-all) or reset it to 1 on a spike (nearest)."""
    return trace * (1.0 - spikes) + spikes if nearest else trace + spikes


def _check_bounds(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    check_not_nan(instance, attribute, value)
    low = instance.w_min
    if isinstance(low, float) and low == math.inf or isinstance(value, float) and value == -math.inf:
        raise ValueError(
            f"{type(instance).__name__}: w_min ({low}) must be below +inf and w_max ({value}) above -inf: a bound "
            "there would clip every weight to infinity"
        )
    if isinstance(low, float) and isinstance(value, float) and not low <= value:
        raise ValueError(f"{type(instance).__name__}.w_max ({value}) must not be below w_min ({low})")


def _check_flag(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{type(instance).__name__}.{attribute.name} must be True or False, got {value!r}")


def _is_one(value: Any) -> bool:
    return isinstance(value, float) and value == 1.0


def _check_exponent(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """A weight-dependence exponent: >= 0, and other than 1 only with soft bounds, between finite ones."""
    check_non_negative(instance, attribute, value)
    if _is_one(value) or not is_concrete(value):
        return
    name = f"{type(instance).__name__}.{attribute.name}"
    if not instance.soft_bound:
        raise ValueError(
            f"{name} shapes soft-bound STDP (Gütig's weight dependence); set soft_bound=True or leave it 1"
        )
    span = torch.as_tensor(instance.w_max - instance.w_min)
    if not bool((torch.isfinite(span) & (span > 0)).all()):  # sync-ok: validation, outside the steps
        low, high = instance.w_min, instance.w_max
        raise ValueError(f"{name} other than 1 needs finite bounds w_min < w_max, got {low} and {high}")


def _check_stdp(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, STDP):
        raise TypeError(f"{type(instance).__name__}.stdp must be an STDP rule (its pair traces), got {value!r}")


def _check_modulator(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, str) or not value or "." in value:
        raise TypeError(
            f"{type(instance).__name__}.modulator must be the name of the network input carrying the reward "
            f"(text without '.'), got {value!r}"
        )


class PlasticityRule:
    """Base class of plasticity rules: the interface a projection calls (time in ms).

    * ``init(n_pre, n_post, weights)``: the rule's state (traces), or None;
    * ``update(state, pre, post, weights, dt, layout, modulator)`` -> ``(state, weights)``;
    * ``modulator``: the name of the network input the rule reads each step (``"reward"``), or None.
    """

    modulator: Any = None

    def init(self, n_pre: int, n_post: int, weights: torch.Tensor) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define init(n_pre, n_post, weights)")

    def update(
        self,
        state: Any,
        pre: torch.Tensor,
        post: torch.Tensor,
        weights: torch.Tensor,
        dt: float,
        layout: Layout,
        modulator: Any = None,
    ) -> tuple[Any, torch.Tensor]:
        raise NotImplementedError(
            f"{type(self).__name__} must define update(state, pre, post, weights, dt, layout, modulator)"
        )


@pytree
class TraceState:
    """x_pre (n_pre,) and x_post (n_post,): decaying spike traces (dimensionless)."""

    x_pre: torch.Tensor
    x_post: torch.Tensor


@pytree
class STDP(PlasticityRule):
    r"""Pair-based STDP with exponential traces.

    .. math::

        \Delta w = A_+ e^{-\Delta t/\tau_+} \;(\Delta t > 0), \qquad
        \Delta w = -A_- e^{\Delta t/\tau_-} \;(\Delta t < 0), \qquad \Delta t = t_{post} - t_{pre}

    ``soft_bound=False`` (additive): changes are added and the weight clipped to [w_min, w_max].
    ``soft_bound=True`` (multiplicative): potentiation scales with ``w_max - w``, depression with
    ``w - w_min``; with exponents ``mu_plus``, ``mu_minus`` other than 1, Gütig et al.'s (2003)
    power law (NEST's ``stdp_synapse``, PyNN's ``GutigWeightDependence``), with ``S = w_max - w_min``:

    .. math::

        \Delta w_+ = A_+ e^{-\Delta t/\tau_+}\, S \left(\frac{w_{max} - w}{S}\right)^{\mu_+}, \qquad
        \Delta w_- = -A_- e^{\Delta t/\tau_-}\, S \left(\frac{w - w_{min}}{S}\right)^{\mu_-}

    (``mu = 1``: multiplicative; ``mu = 0``: additive changes of ``A S``).
    ``nearest=False`` pairs every spike with every earlier spike (all-to-all);
    ``nearest=True`` only with the nearest one (traces reset to 1 instead of adding 1).
    Time constants in ms; amplitudes in units of the weights.
    """

    a_plus: Any = parameter(0.01)
    a_minus: Any = parameter(0.0105)
    tau_plus: Any = parameter(20.0, check=check_positive)
    tau_minus: Any = parameter(20.0, check=check_positive)
    w_min: Any = parameter(0.0, check=check_not_nan)
    w_max: Any = parameter(1.0, check=_check_bounds)
    soft_bound: bool = attrs.field(default=False, validator=_check_flag)
    nearest: bool = attrs.field(default=False, validator=_check_flag)
    mu_plus: Any = parameter(1.0, check=_check_exponent)
    mu_minus: Any = parameter(1.0, check=_check_exponent)

    def init(self, n_pre: int, n_post: int, weights: torch.Tensor) -> TraceState:
        return TraceState(weights.new_zeros(n_pre), weights.new_zeros(n_post))

    def changes(
        self, state: TraceState, pre: torch.Tensor, post: torch.Tensor, weights: torch.Tensor, dt: float, layout: Layout
    ) -> tuple[TraceState, torch.Tensor]:
        """Decayed traces and the weight change of this step (before bounds)."""
        x_pre = state.x_pre * _decay(dt, self.tau_plus)
        x_post = state.x_post * _decay(dt, self.tau_minus)
        potentiation = self.a_plus * layout.pre(x_pre) * layout.post(post)
        depression = self.a_minus * layout.pre(pre) * layout.post(x_post)
        if self.soft_bound:
            room, excess = self.w_max - weights, weights - self.w_min
            if not (_is_one(self.mu_plus) and _is_one(self.mu_minus)):  # Gütig's power law
                span = self.w_max - self.w_min
                room = span * (room / span).clamp(min=0.0) ** self.mu_plus
                excess = span * (excess / span).clamp(min=0.0) ** self.mu_minus
            change = potentiation * room - depression * excess
        else:
            change = potentiation - depression
        traces = replace(state, x_pre=_bumped(x_pre, pre, self.nearest), x_post=_bumped(x_post, post, self.nearest))
        return traces, change

    def update(
        self,
        state: TraceState,
        pre: torch.Tensor,
        post: torch.Tensor,
        weights: torch.Tensor,
        dt: float,
        layout: Layout,
        modulator: Any = None,
    ) -> tuple[TraceState, torch.Tensor]:
        state, change = self.changes(state, pre, post, weights, dt, layout)
        return state, layout.clip(weights + change, self.w_min, self.w_max)


@pytree
class TripletState:
    """r1, r2 (n_pre,) and o1, o2 (n_post,): the fast and slow traces of the triplet rule."""

    r1: torch.Tensor
    r2: torch.Tensor
    o1: torch.Tensor
    o2: torch.Tensor


@pytree
class TripletSTDP(PlasticityRule):
    r"""Triplet STDP (Pfister & Gerstner 2006), all-to-all interactions.

    On a presynaptic spike: :math:`w \leftarrow w - o_1 (A_2^- + A_3^- r_2)`; on a postsynaptic
    spike: :math:`w \leftarrow w + r_1 (A_2^+ + A_3^+ o_2)`, with :math:`r_2, o_2` taken just before
    the spike's own increment. Defaults: the paper's visual-cortex fit (all-to-all).
    """

    a2_plus: Any = parameter(5e-10)
    a3_plus: Any = parameter(6.2e-3)
    a2_minus: Any = parameter(7e-3)
    a3_minus: Any = parameter(2.3e-4)
    tau_plus: Any = parameter(16.8, check=check_positive)
    tau_minus: Any = parameter(33.7, check=check_positive)
    tau_x: Any = parameter(101.0, check=check_positive)
    tau_y: Any = parameter(125.0, check=check_positive)
    w_min: Any = parameter(0.0, check=check_not_nan)
    w_max: Any = parameter(1.0, check=_check_bounds)

    def init(self, n_pre: int, n_post: int, weights: torch.Tensor) -> TripletState:
        pre, post = weights.new_zeros(n_pre), weights.new_zeros(n_post)
        return TripletState(pre, pre.clone(), post, post.clone())

    def update(
        self,
        state: TripletState,
        pre: torch.Tensor,
        post: torch.Tensor,
        weights: torch.Tensor,
        dt: float,
        layout: Layout,
        modulator: Any = None,
    ) -> tuple[TripletState, torch.Tensor]:
        r1 = state.r1 * _decay(dt, self.tau_plus)
        r2 = state.r2 * _decay(dt, self.tau_x)
        o1 = state.o1 * _decay(dt, self.tau_minus)
        o2 = state.o2 * _decay(dt, self.tau_y)
        depression = layout.pre(pre) * layout.post(o1) * (self.a2_minus + self.a3_minus * layout.pre(r2))
        potentiation = layout.post(post) * layout.pre(r1) * (self.a2_plus + self.a3_plus * layout.post(o2))
        weights = layout.clip(weights + potentiation - depression, self.w_min, self.w_max)
        return replace(state, r1=r1 + pre, r2=r2 + pre, o1=o1 + post, o2=o2 + post), weights


@pytree
class Hebbian(PlasticityRule):
    """Plain Hebbian rule, ``dw/dt = eta * pre * post`` (eta per ms), clipped to [w_min, w_max]."""

    eta: Any = parameter(1e-3)
    w_min: Any = parameter(0.0, check=check_not_nan)
    w_max: Any = parameter(1.0, check=_check_bounds)

    def init(self, n_pre: int, n_post: int, weights: torch.Tensor) -> None:
        return None

    def update(
        self,
        state: None,
        pre: torch.Tensor,
        post: torch.Tensor,
        weights: torch.Tensor,
        dt: float,
        layout: Layout,
        modulator: Any = None,
    ) -> tuple[None, torch.Tensor]:
        change = self.eta * dt * layout.pre(pre) * layout.post(post)
        return None, layout.clip(weights + change, self.w_min, self.w_max)


@pytree
class Oja(PlasticityRule):
    """Oja's rule, ``dw_ij/dt = eta * y_j * (x_i - y_j * w_ij)`` (x: pre, y: post; eta per ms)."""

    eta: Any = parameter(1e-3)
    w_min: Any = parameter(-math.inf, check=check_not_nan)
    w_max: Any = parameter(math.inf, check=_check_bounds)

    def init(self, n_pre: int, n_post: int, weights: torch.Tensor) -> None:
        return None

    def update(
        self,
        state: None,
        pre: torch.Tensor,
        post: torch.Tensor,
        weights: torch.Tensor,
        dt: float,
        layout: Layout,
        modulator: Any = None,
    ) -> tuple[None, torch.Tensor]:
        y = layout.post(post)
        change = self.eta * dt * y * (layout.pre(pre) - y * weights)
        return None, layout.clip(weights + change, self.w_min, self.w_max)


@pytree
class RewardState:
    """traces: the pair-STDP traces; eligibility: one decaying eligibility per synapse."""

    traces: TraceState
    eligibility: torch.Tensor


@pytree
class RewardSTDP(PlasticityRule):
    r"""Reward-modulated STDP with an eligibility trace (Izhikevich 2007).

    The pair-STDP change of each step feeds an eligibility trace,
    :math:`de/dt = -e/\tau_e + \Delta w_{STDP}`, and weights follow
    :math:`dw/dt = \eta \, r(t) \, e`, with the reward ``r`` given to the network as the input named
    ``modulator`` (a number or a 0-d tensor per step; 0 when absent).
    """

    stdp: STDP = attrs.field(factory=lambda: STDP(w_min=-math.inf, w_max=math.inf), validator=_check_stdp)
    tau_e: Any = parameter(1000.0, check=check_positive)
    eta: Any = parameter(1.0, check=check_non_negative)
    w_min: Any = parameter(0.0, check=check_not_nan)
    w_max: Any = parameter(1.0, check=_check_bounds)
    modulator: str = attrs.field(default="reward", validator=_check_modulator)

    def init(self, n_pre: int, n_post: int, weights: torch.Tensor) -> RewardState:
        return RewardState(self.stdp.init(n_pre, n_post, weights), torch.zeros_like(weights))

    def update(
        self,
        state: RewardState,
        pre: torch.Tensor,
        post: torch.Tensor,
        weights: torch.Tensor,
        dt: float,
        layout: Layout,
        modulator: Any = None,
    ) -> tuple[RewardState, torch.Tensor]:
        traces, change = self.stdp.changes(state.traces, pre, post, weights, dt, layout)
        eligibility = layout.keep(state.eligibility * _decay(dt, self.tau_e) + change)
        reward = 0.0 if modulator is None else modulator
        weights = layout.clip(weights + self.eta * dt * reward * eligibility, self.w_min, self.w_max)
        return replace(state, traces=traces, eligibility=eligibility), weights
