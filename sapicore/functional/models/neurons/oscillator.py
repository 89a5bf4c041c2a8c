"""Oscillator units: waveforms computed from time, for rhythmic clocks and forced oscillations."""

from __future__ import annotations

import math
from typing import Any

import attrs
import torch

from ...pytree import check_finite, check_non_negative, is_concrete, parameter, pytree, replace
from .base import NeuronModel, check_dt, check_input

__all__ = ["Oscillator", "OscillatorState"]

#: the fields whose last axis counts sine components (not neurons)
COMPONENT_FIELDS = ("amplitudes", "frequencies", "phases", "amp_freq")


@pytree
class OscillatorState:
    """Elapsed time of an oscillator population, held as whole milliseconds ``ms`` and the fraction
    of a millisecond ``ms_fraction`` in [0, 1). In float32 a single clock summing dt = 0.1 ms is a
    third of a millisecond off after 2 s; this one drifts by about 1e-8 ms per step (0.5 µs after
    5 s). Use float64 for runs of hours."""

    ms: torch.Tensor
    ms_fraction: torch.Tensor


def _components(value: Any) -> Any:
    """A component parameter with a last (component) axis; a Python number stays one (one component)."""
    return value.reshape(1) if isinstance(value, torch.Tensor) and value.dim() == 0 else value


def _check_component_counts(instance: Oscillator, attribute: attrs.Attribute, value: Any) -> None:
    check_non_negative(instance, attribute, value)
    counts = {
        name: getattr(instance, name).shape[-1]
        for name in COMPONENT_FIELDS
        if isinstance(getattr(instance, name), torch.Tensor) and getattr(instance, name).dim() > 0
    }
    if len(set(counts.values()) - {1}) > 1:
        raise ValueError(
            "Oscillator's component parameters must have the same number of components (their last axis) "
            f"or one: got {', '.join(f'{name} {count}' for name, count in counts.items())}"
        )


@pytree
class Oscillator(NeuronModel):
    r"""A sum of sine components computed from time (ms), plus the input; the original Sapicore's
    ``OscillatorNeuron``.

    .. math::

        \mathrm{activation}(t) = \mathrm{baseline\_shift}
            + \sum_k a_k(t) \sin(2\pi f_k t / 1000 + \pi \varphi_k) + I(t), \qquad
        a_k(t) = \begin{cases} A_k & m_k = 0 \\
            A_k \, \tfrac{1}{2}\left(1 - \cos(2\pi m_k t / 1000)\right) & m_k > 0 \end{cases}

    with amplitudes :math:`A_k` (units of the output), ``frequencies`` :math:`f_k` (Hz), ``phases``
    :math:`\varphi_k` (multiples of pi: 0.5 starts a sine as a cosine) and ``amp_freq`` :math:`m_k`
    (Hz): a component with :math:`m_k > 0` has its amplitude modulated between 0 and :math:`A_k`,
    peaking at the phase pi of the :math:`m_k` rhythm (phase-amplitude coupling, e.g. gamma nested
    in theta). ``t`` is the time at the end of each step (``dt``, ``2 dt``, ...).

    The last axis of ``amplitudes``, ``frequencies``, ``phases`` and ``amp_freq`` counts
    components (all the same length, or 1); leading axes, if any, broadcast over the neurons, so
    ``frequencies=torch.tensor([[4.0], [8.0]])`` gives two neurons of one component each, at 4 and
    8 Hz. ``baseline_shift`` is per neuron. The output is ``activation``, sampled (not summed) when
    recording every k steps; use it through a projection as a current (e.g. an inhibitory clock).
    No Python loop and no host synchronisation: the step works under vmap, grad and compilation,
    and the output is differentiable with respect to every parameter.
    """

    amplitudes: Any = parameter(5.0, check=check_finite)
    frequencies: Any = parameter(40.0, check=check_non_negative)
    phases: Any = parameter(0.0, check=check_finite)
    amp_freq: Any = parameter(0.0, check=_check_component_counts)
    baseline_shift: Any = parameter(0.0)

    state_class = OscillatorState
    output_name = "activation"
    output_is_event = False
    component_fields = COMPONENT_FIELDS

    def initial_values(self, shape: tuple[int, ...], zeros: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"ms": zeros.clone(), "ms_fraction": zeros.clone()}

    def check_step(self, dt: float) -> None:
        """Refuse a frequency at or above the Nyquist frequency ``500 / dt`` Hz, whose samples would
        show a lower frequency (aliasing)."""
        nyquist = 500.0 / dt
        for name in ("frequencies", "amp_freq"):
            value = getattr(self, name)
            if isinstance(value, torch.Tensor) and (not is_concrete(value) or value.numel() == 0):
                continue
            top = float(torch.as_tensor(value).max())  # sync-ok: once, before a run
            if top >= nyquist:
                raise ValueError(
                    f"Oscillator.{name} reaches {top:g} Hz, at or above the Nyquist frequency {nyquist:g} Hz of "
                    f"dt = {dt:g} ms: its samples would alias to a lower frequency; use dt < {500.0 / top:g} ms"
                )

    def wave(self, state: OscillatorState) -> torch.Tensor:
        """The waveform (without input) at the time held by ``state``."""
        ms, fraction = state.ms.unsqueeze(-1), state.ms_fraction.unsqueeze(-1)

        def cycles(hz: Any) -> torch.Tensor:  # cycles elapsed, whole ones dropped
            per_ms = _components(hz) / 1000.0
            whole = ms * per_ms
            return whole - torch.floor(whole) + fraction * per_ms

        carrier = torch.sin(2.0 * math.pi * cycles(self.frequencies) + math.pi * _components(self.phases))
        envelope = _components(self.amplitudes)
        if isinstance(self.amp_freq, torch.Tensor) or self.amp_freq > 0:  # a Python 0.0: no modulation
            modulation = 0.5 - 0.5 * torch.cos(2.0 * math.pi * cycles(self.amp_freq))
            envelope = envelope * torch.where(_components(self.amp_freq) > 0, modulation, 1.0)
        return self.baseline_shift + (envelope * carrier).sum(-1)

    def step(self, state: OscillatorState, input: Any, dt: float) -> tuple[OscillatorState, torch.Tensor]:
        """Advance the clock by ``dt`` ms; return the new state and the waveform plus ``input``."""
        dt = check_dt(dt)
        x = check_input(input, state.ms)
        fraction = state.ms_fraction + dt
        carry = torch.floor(fraction)
        state = replace(state, ms=state.ms + carry, ms_fraction=fraction - carry)
        return state, self.wave(state) + x
