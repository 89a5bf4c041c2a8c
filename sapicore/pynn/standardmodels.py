"""PyNN's standard models on Sapicore's functional core: one table of translations.

PyNN's parameter names and units (ms, mV, nA, nF, µS, Hz) are kept as the native names, so
``get`` and ``set`` see exactly what the user gave; each cell type says how its parameters make a
core neuron model, which synapse model each receptor type gets, and how PyNN's initial values and
recordable variables map onto the core's state.

=====================================  ============================================================
PyNN                                   Sapicore
=====================================  ============================================================
``IF_curr_exp``, ``IF_cond_exp``       ``LIF(tau_mem=tau_m, r_mem=tau_m/cm, t_ref=tau_refrac)``;
                                       ``Exponential(tau_syn_E|I[, e_rev_E|I])`` per receptor
``IF_curr_alpha``, ``IF_cond_alpha``   the same ``LIF``; ``Alpha(tau_syn_E|I[, e_rev_E|I])``
``IF_curr_delta``                      ``LIF``; ``Delta`` synapses whose weight (mV) is the jump of
                                       ``v`` at the end of the arrival step
``EIF_cond_exp_isfa_ista``,            ``AdEx(c_mem=cm, g_leak=cm/tau_m, a=a/1000, v_peak=v_spike,
``EIF_cond_alpha_isfa_ista``           t_ref=tau_refrac)``; conductance ``Exponential`` or ``Alpha``
``HH_cond_exp``                        ``TraubMiles`` (gbar_Na, gbar_K, g_leak in µS, cm in nF)
``Izhikevich``                         ``Izhikevich`` (input ``1000 i`` for ``i`` in nA, as
                                       ``pyNN.brian2``); ``Delta`` synapses, weights in mV
``PointNeuron(LIF | AdExp, **PSRs)``   the component's ``LIF`` or ``AdEx``; per receptor type,
                                       ``CurrExp``/``CondExp``: ``Exponential(tau_syn[, e_syn])``,
                                       ``CondAlpha``: ``Alpha``, ``CondBeta``: ``DualExponential``
                                       (peak = weight; ``Alpha`` when ``tau_rise == tau_decay``)
``SpikeSourceArray``                   ``SpikeInput`` fed with the spike times
``SpikeSourcePoisson``                 ``SpikeInput`` fed with Poisson trains drawn per run
=====================================  ============================================================

``i_offset`` becomes the population's constant drive (nA).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pyNN import errors
from pyNN.parameters import ParameterSpace
from pyNN.standardmodels import StandardModelType, build_translations, cells, electrodes, receptors, synapses

import sapicore.functional as sf

__all__ = [
    "IF_curr_exp",
    "IF_cond_exp",
    "IF_curr_alpha",
    "IF_cond_alpha",
    "IF_curr_delta",
    "EIF_cond_exp_isfa_ista",
    "EIF_cond_alpha_isfa_ista",
    "HH_cond_exp",
    "Izhikevich",
    "PointNeuron",
    "LIF",
    "AdExp",
    "CurrExpPostSynapticResponse",
    "CondExpPostSynapticResponse",
    "CondAlphaPostSynapticResponse",
    "CondBetaPostSynapticResponse",
    "AlphaPSR",
    "ExpPSR",
    "SpikeSourceArray",
    "SpikeSourcePoisson",
    "StaticSynapse",
    "TsodyksMarkramSynapse",
    "STDPMechanism",
    "SpikePairRule",
    "AdditiveWeightDependence",
    "MultiplicativeWeightDependence",
    "GutigWeightDependence",
    "DCSource",
    "StepCurrentSource",
    "ACSource",
    "NoisyCurrentSource",
]


def _same_names(parameters: dict) -> dict:
    return build_translations(*[(name, name) for name in parameters])


class _SameNames:
    """PyNN's names and units are the native ones: a subclass of a PyNN standard model gets the
    identity translation of its parameters, and PyNN's docstring unless it has its own."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        defaults = getattr(cls, "default_parameters", None)
        if defaults is not None and "translations" not in cls.__dict__:
            cls.translations = _same_names(defaults)
        if cls.__doc__ is None:
            cls.__doc__ = next((b.__doc__ for b in cls.__mro__ if b.__module__.startswith("pyNN.") and b.__doc__), None)


class _CellType(_SameNames):
    """What the engine asks of a cell type (mixed into PyNN's standard cell classes).

    ``core(p)`` builds the neuron model from ``p`` (name -> tensor, one value per neuron);
    ``synapse(receptor, p)`` the synapse model of a receptor type; ``weight_scale(receptor, p, dt)``
    the factor (per target neuron) from PyNN weights to the core's, or None; ``state(p, initial)``
    the core state fields from PyNN's initial values; ``variables`` maps PyNN's recordable names to
    the core's record names, and ``synaptic`` the recordable synaptic variables to their receptor
    type (each is the sum, over the projections onto that receptor type, of their synapses' ``s``).
    """

    source = False
    delay_shift = 0  # steps the core's delays are shorter than PyNN's (see _DeltaSynapses)
    variables = {"v": "v"}
    state_names = {"v": "v"}
    synaptic = {"gsyn_exc": "excitatory", "gsyn_inh": "inhibitory"}

    def drive(self, p: dict) -> torch.Tensor | None:
        return p.get("i_offset")

    exponential = True  # the receptors' synapses: exponential, or alpha functions

    def synapse(self, receptor: str, p: dict) -> Any:
        """The synapse of a receptor type: a conductance (µS) with ``e_rev_E|I`` for conductance-based
        cells, else a current (nA), decaying with ``tau_syn_E|I``."""
        suffix = "E" if receptor == "excitatory" else "I"
        e_rev = p[f"e_rev_{suffix}"] if self.conductance_based else None
        kind = sf.Exponential if self.exponential else sf.Alpha
        return kind(tau=p[f"tau_syn_{suffix}"], e_rev=e_rev)

    def check_parameters(self, values: dict) -> None:
        """Refuse values the model cannot take (raise ``InvalidParameterValueError``)."""
        for name, value in values.items():
            array = np.asarray(value)
            if array.dtype != object and not np.isfinite(array.astype(float)).all():
                raise errors.InvalidParameterValueError(f"{name} must be finite, got {value!r}")

    def weight_scale(self, receptor: str, p: dict, dt: float) -> torch.Tensor | None:
        return None

    def state(self, model: Any, p: dict, initial: dict, size: int, like: torch.Tensor) -> Any:
        unsupported = [name for name in initial if name not in self.state_names and np.any(initial[name] != 0)]
        if unsupported:
            raise NotImplementedError(
                f"sapicore.pynn starts synaptic variables at 0 (they live in the projections); "
                f"initial values of {unsupported} other than 0 are not supported"
            )
        state = model.init_state(size, device=like.device, dtype=like.dtype)
        changes = {
            core: torch.as_tensor(initial[name], dtype=like.dtype, device=like.device)
            for name, core in self.state_names.items()
            if name in initial
        }
        return sf.replace(state, **changes)


class _LeakyIntegrateAndFire(_CellType):
    def core(self, p: dict) -> Any:
        return sf.LIF(
            tau_mem=p["tau_m"],
            v_rest=p["v_rest"],
            v_reset=p["v_reset"],
            v_thresh=p["v_thresh"],
            r_mem=p["tau_m"] / p["cm"],
            t_ref=p["tau_refrac"],
        )


class IF_curr_exp(_LeakyIntegrateAndFire, cells.IF_curr_exp):
    pass


class IF_cond_exp(_LeakyIntegrateAndFire, cells.IF_cond_exp):
    pass


class IF_curr_alpha(_LeakyIntegrateAndFire, cells.IF_curr_alpha):
    exponential = False


class IF_cond_alpha(_LeakyIntegrateAndFire, cells.IF_cond_alpha):
    exponential = False


class _DeltaSynapses:
    """Synapses that move ``v`` by the weight (mV): the core's ``Delta`` synapse, whose current acts
    over the arrival step, so the jump shows at that step's end. NEST and Brian2 add the weight to
    ``v`` at the arrival time itself, one step earlier: the core's delays are one step shorter
    (a delay of one step or less arrives in the next step)."""

    delay_shift = 1

    def synapse(self, receptor: str, p: dict) -> Any:
        return sf.Delta()


class IF_curr_delta(_DeltaSynapses, _LeakyIntegrateAndFire, cells.IF_curr_delta):
    pass

    def weight_scale(self, receptor: str, p: dict, dt: float) -> torch.Tensor:
        """A current i held over one step moves v by ``r (1 - exp(-dt / tau_m)) i`` (exponential
        Euler, exact): the current whose jump is one mV."""
        tau_m = torch.as_tensor(p["tau_m"], dtype=torch.float64)
        return 1.0 / ((tau_m / p["cm"]) * -torch.expm1(-dt / tau_m))


class _AdaptiveExponential(_CellType):
    """The core's ``AdEx`` (``g_leak = cm / tau_m``, ``a`` from nS to µS, spikes at ``v_spike``)."""

    variables = {"v": "v", "w": "w"}
    state_names = {"v": "v", "w": "w"}

    def core(self, p: dict) -> Any:
        return sf.AdEx(
            c_mem=p["cm"],
            g_leak=p["cm"] / p["tau_m"],
            e_leak=p["v_rest"],
            v_thresh=p["v_thresh"],
            delta_t=p["delta_T"],
            tau_w=p["tau_w"],
            a=p["a"] / 1000.0,
            b=p["b"],
            v_reset=p["v_reset"],
            v_peak=p["v_spike"],
            t_ref=p["tau_refrac"],
        )


class EIF_cond_exp_isfa_ista(_AdaptiveExponential, cells.EIF_cond_exp_isfa_ista):
    pass


class EIF_cond_alpha_isfa_ista(_AdaptiveExponential, cells.EIF_cond_alpha_isfa_ista):
    exponential = False


class HH_cond_exp(_CellType, cells.HH_cond_exp):
    """PyNN's Traub-Miles cell: the core's ``TraubMiles``; a spike is an upward crossing of -40 mV."""

    state_names = {"v": "v", "m": "m", "h": "h", "n": "n"}

    def core(self, p: dict) -> Any:
        return sf.TraubMiles(
            c_mem=p["cm"],
            g_na=p["gbar_Na"],
            g_k=p["gbar_K"],
            g_leak=p["g_leak"],
            e_na=p["e_rev_Na"],
            e_k=p["e_rev_K"],
            e_leak=p["e_rev_leak"],
            v_offset=p["v_offset"],
        )


class Izhikevich(_DeltaSynapses, _CellType, cells.Izhikevich):
    variables = {"v": "v", "u": "u"}
    state_names = {"v": "v", "u": "u"}

    def core(self, p: dict) -> Any:
        return sf.Izhikevich(a=p["a"], b=p["b"], c=p["c"], d=p["d"])

    def drive(self, p: dict) -> torch.Tensor:
        return 1000.0 * p["i_offset"]  # nA -> the model's input units (mV/ms per pF)

    def weight_scale(self, receptor: str, p: dict, dt: float) -> torch.Tensor:
        """Euler steps ``v += dt * input``: an input of w/dt for one step is a jump of w mV."""
        return torch.tensor(1.0 / dt)


class _Component:
    """The neuron model of a ``PointNeuron``, whose receptor types are given beside it."""


class LIF(_Component, _LeakyIntegrateAndFire, cells.LIF):
    pass


class AdExp(_Component, _AdaptiveExponential, cells.AdExp):
    pass


class _Receptor(_SameNames):
    """A post-synaptic response of ``PointNeuron``: ``synapse(p)`` is the core's synapse model for
    its parameters ``p`` (PyNN's names: ``tau_syn`` in ms, ``e_syn`` in mV); ``recordable`` its
    variable, a conductance (µS) or a current (nA)."""

    recordable = ["gsyn"]


class CurrExpPostSynapticResponse(_Receptor, receptors.CurrExpPostSynapticResponse):
    recordable = ["isyn"]

    def synapse(self, p: dict) -> sf.Exponential:
        return sf.Exponential(tau=p["tau_syn"])


class CondExpPostSynapticResponse(_Receptor, receptors.CondExpPostSynapticResponse):
    pass

    def synapse(self, p: dict) -> sf.Exponential:
        return sf.Exponential(tau=p["tau_syn"], e_rev=p["e_syn"])


class CondAlphaPostSynapticResponse(_Receptor, receptors.CondAlphaPostSynapticResponse):
    pass

    def synapse(self, p: dict) -> sf.Alpha:
        return sf.Alpha(tau=p["tau_syn"], e_rev=p["e_syn"])


class CondBetaPostSynapticResponse(_Receptor, receptors.CondBetaPostSynapticResponse):
    """A conductance ``w f (exp(-t/tau_decay) - exp(-t/tau_rise))`` whose peak is the weight w (µS), as
    in NEST; with ``tau_rise == tau_decay`` its limit, the alpha function peaking at t = tau."""

    def synapse(self, p: dict) -> sf.SynapseModel:
        rise, decay = p["tau_rise"], p["tau_decay"]
        if isinstance(rise, float) and isinstance(decay, float) and rise == decay:
            return sf.Alpha(tau=decay, e_rev=p["e_syn"])
        return sf.DualExponential(tau_rise=rise, tau_decay=decay, e_rev=p["e_syn"])


AlphaPSR = CondAlphaPostSynapticResponse
ExpPSR = CondExpPostSynapticResponse


def _flat(parameters: Any) -> dict:
    """PointNeuron's parameters with the receptors' under ``"<receptor>.<name>"`` (``locations``,
    which point neurons do not have, left out)."""
    out = {}
    for name, value in parameters.items():
        if isinstance(value, (ParameterSpace, dict)):
            out.update({f"{name}.{key}": item for key, item in value.items() if key != "locations"})
        else:
            out[name] = value
    return out


class PointNeuron(_CellType, cells.PointNeuron):
    """PyNN's composed cell: a neuron model (``LIF`` or ``AdExp``) and named receptor types, each
    with its own synapse model (``CurrExpPostSynapticResponse``, ``CondExpPostSynapticResponse``,
    ``CondAlphaPostSynapticResponse``, ``CondBetaPostSynapticResponse``), all current-based or all
    conductance-based (PyNN checks weights' signs per cell). A receptor's parameters are
    ``"<receptor>.<name>"`` (``get("GABAA.e_syn")``) and its variable ``"<receptor>.gsyn"`` (µS) or
    ``"<receptor>.isyn"`` (nA)."""

    def __init__(self, neuron: Any, **post_synaptic_receptors: Any) -> None:
        if not isinstance(neuron, _Component):
            raise NotImplementedError(
                f"sapicore.pynn's PointNeuron takes its LIF(...) or AdExp(...) as the neuron, got {neuron!r}"
            )
        for name, receptor in post_synaptic_receptors.items():
            if not isinstance(receptor, _Receptor):
                raise NotImplementedError(
                    f"receptor type {name!r}: sapicore.pynn's PointNeuron takes its CurrExpPostSynapticResponse, "
                    f"CondExpPostSynapticResponse, CondAlphaPostSynapticResponse or CondBetaPostSynapticResponse, "
                    f"got {receptor!r}"
                )
        kinds = {receptor.conductance_based for receptor in post_synaptic_receptors.values()}
        if len(kinds) > 1:
            raise ValueError(
                f"PointNeuron's receptors {sorted(post_synaptic_receptors)} mix current- and conductance-based "
                "responses; PyNN checks the weights' signs per cell, so give them all one kind"
            )
        super().__init__(neuron, **post_synaptic_receptors)
        self.variables, self.state_names = neuron.variables, neuron.state_names
        self.synaptic = {
            f"{name}.{variable}": name
            for name, receptor in post_synaptic_receptors.items()
            for variable in receptor.recordable
        }
        self.translations = _same_names(_flat(self.parameter_space))

    # answered from the flat translations (PyNN's versions fail for a cell without receptors)
    simple_parameters = StandardModelType.simple_parameters
    scaled_parameters = StandardModelType.scaled_parameters
    computed_parameters = StandardModelType.computed_parameters
    computed_parameters_include = StandardModelType.computed_parameters_include

    def core(self, p: dict) -> Any:
        return self.neuron.core(p)

    def synapse(self, receptor: str, p: dict) -> Any:
        prefix = f"{receptor}."
        own = {name[len(prefix) :]: value for name, value in p.items() if name.startswith(prefix)}
        return self.post_synaptic_receptors[receptor].synapse(own)

    def get_schema(self) -> dict:
        return {name: float for name in self.translations}

    @property
    def native_parameters(self) -> ParameterSpace:
        return ParameterSpace(_flat(self.parameter_space), shape=self.parameter_space.shape)

    def get_native_names(self, *names: str) -> list[str]:
        for name in names:
            if name not in self.translations:
                raise errors.NonExistentParameterError(name, type(self).__name__, list(self.translations))
        return list(names or self.translations)

    def translate(self, parameters: ParameterSpace, copy: bool = True) -> ParameterSpace:
        flat = _flat(parameters)
        self.get_native_names(*flat)
        return ParameterSpace(flat, shape=parameters.shape)

    def reverse_translate(self, native_parameters: ParameterSpace) -> ParameterSpace:
        nested: dict = {}
        for name, value in native_parameters.items():
            receptor, dot, parameter = name.partition(".")
            if dot:
                nested.setdefault(receptor, {})[parameter] = value
            else:
                nested[name] = value
        return ParameterSpace(nested, shape=native_parameters.shape)


class _Source(_CellType):
    source = True
    variables: dict = {}
    state_names: dict = {}

    def core(self, p: dict) -> Any:
        return sf.SpikeInput()

    def drive(self, p: dict) -> None:
        return None


class SpikeSourceArray(_Source, cells.SpikeSourceArray):
    pass

    def check_parameters(self, values: dict) -> None:
        for sequence in np.atleast_1d(np.asarray(values.get("spike_times", []), dtype=object)):
            times = np.asarray(getattr(sequence, "value", sequence), dtype=float).reshape(-1)
            if not np.isfinite(times).all() or (times < 0).any() or (np.diff(times) < 0).any():
                raise errors.InvalidParameterValueError(
                    f"spike_times must be finite, non-negative and in increasing order (ms), got {times}"
                )

    def spikes(self, p: dict, first: int, steps: int, dt: float, generator: torch.Generator) -> torch.Tensor:
        """This run's spikes, ``(steps, size)``: a spike at t ms is emitted in the step that ends at t
        (so it is recorded at t, and reaches a target at t + delay, as in NEST)."""
        times = p["spike_times"]
        out = torch.zeros(steps, len(times))
        for neuron, sequence in enumerate(times):
            values = np.asarray(sequence.value if hasattr(sequence, "value") else sequence, dtype=float)
            step = np.rint(values / dt).astype(np.int64) - 1 - first
            step = step[(step >= 0) & (step < steps)]
            out[torch.as_tensor(step), neuron] = 1.0
        return out


class SpikeSourcePoisson(_Source, cells.SpikeSourcePoisson):
    pass

    def spikes(self, p: dict, first: int, steps: int, dt: float, generator: torch.Generator) -> torch.Tensor:
        """This run's spikes: in each step of [start, start + duration) a neuron spikes with
        probability ``rate dt / 1000``."""
        start = (torch.arange(first, first + steps, dtype=torch.float64) * dt)[:, None]
        rate = torch.as_tensor(p["rate"], dtype=torch.float64)
        on = (start >= p["start"] - 1e-9 * dt) & (start < p["start"] + p["duration"] - 1e-9 * dt)
        probability = torch.where(on, rate * (dt / 1000.0), 0.0)
        draws = torch.rand(probability.shape, generator=generator, dtype=torch.float64)
        return (draws < probability).to(torch.get_default_dtype())


def check_cell_type(celltype: Any) -> None:
    """Refuse PyNN cell types that this backend does not simulate, naming those it does."""
    if isinstance(celltype, _Component):
        name = type(celltype).__name__
        raise NotImplementedError(
            f"{name} is the neuron of a composed cell: use PointNeuron({name}(...), "
            "AMPA=CondExpPostSynapticResponse(...), ...)"
        )
    if not isinstance(celltype, _CellType):
        raise NotImplementedError(
            f"sapicore.pynn has no model for {type(celltype).__name__}; its cell types are "
            f"{', '.join(cell_types())} (use sapicore.pynn's classes, not another backend's)"
        )


def cell_types() -> list[str]:
    """The names of the cell types this backend simulates."""
    return [
        name
        for name, kind in ((name, globals()[name]) for name in __all__)
        if isinstance(kind, type) and issubclass(kind, _CellType) and not issubclass(kind, _Component)
    ]


# synapse types ------------------------------------------------------------------------------------


class _SynapseType(_SameNames):
    def _get_minimum_delay(self) -> float:
        from .simulator import state

        return state.dt if state._min_delay == "auto" else state._min_delay


class StaticSynapse(_SynapseType, synapses.StaticSynapse):
    pass


class TsodyksMarkramSynapse(_SynapseType, synapses.TsodyksMarkramSynapse):
    """Tsodyks-Markram depression and facilitation, as NEST's ``tsodyks2_synapse`` (the core's
    ``TsodyksMarkram``): U, tau_rec and tau_facil may differ between source neurons but must be the
    same for all synapses of one source."""


class SpikePairRule(_SynapseType, synapses.SpikePairRule):
    pass


class AdditiveWeightDependence(_SameNames, synapses.AdditiveWeightDependence):
    """Changes of ``A w_max`` (NEST's and pyNN.brian2's scaling), clipped to [w_min, w_max]."""


class MultiplicativeWeightDependence(_SameNames, synapses.MultiplicativeWeightDependence):
    """Potentiation ``A_plus (w_max - w)``, depression ``A_minus (w - w_min)``."""


class GutigWeightDependence(_SameNames, synapses.GutigWeightDependence):
    """Gütig et al. (2003): ``A_plus S ((w_max - w)/S)^mu_plus``, ``A_minus S ((w - w_min)/S)^mu_minus``
    with ``S = w_max - w_min``."""


class STDPMechanism(_SynapseType, synapses.STDPMechanism):
    """Pair-based STDP (``SpikePairRule``, all-to-all pairing) with an additive, multiplicative or
    Gütig weight dependence, on the core's ``STDP``. Both spikes are seen when they are emitted: the
    delay is neither axonal nor dendritic for the rule (``dendritic_delay_fraction`` is ignored)."""

    base_translations = build_translations(
        ("weight", "weight"), ("delay", "delay"), ("dendritic_delay_fraction", "dendritic_delay_fraction")
    )

    def __init__(
        self,
        timing_dependence: Any = None,
        weight_dependence: Any = None,
        voltage_dependence: Any = None,
        dendritic_delay_fraction: float = 1.0,
        weight: float = 0.0,
        delay: float | None = None,
    ) -> None:
        if voltage_dependence is not None:
            raise NotImplementedError("sapicore.pynn's STDPMechanism has no voltage dependence")
        if not isinstance(timing_dependence, SpikePairRule):
            raise NotImplementedError(
                f"sapicore.pynn's STDPMechanism takes timing_dependence=SpikePairRule(...), got {timing_dependence!r}"
            )
        if not isinstance(
            weight_dependence, (AdditiveWeightDependence, MultiplicativeWeightDependence, GutigWeightDependence)
        ):
            raise NotImplementedError(
                "sapicore.pynn's STDPMechanism takes an Additive, Multiplicative or Gutig weight dependence, "
                f"got {weight_dependence!r}"
            )
        super().__init__(timing_dependence, weight_dependence, None, dendritic_delay_fraction, weight, delay)
        self.translations = dict(self.base_translations)
        for component in (timing_dependence, weight_dependence):
            self.translations.update(component.translations)

    def rule(self, p: dict) -> Any:
        """The core's STDP from one value of each parameter (the same for every synapse)."""
        shared = dict(tau_plus=p["tau_plus"], tau_minus=p["tau_minus"], w_min=p["w_min"], w_max=p["w_max"])
        if isinstance(self.weight_dependence, AdditiveWeightDependence):
            return sf.STDP(a_plus=p["A_plus"] * p["w_max"], a_minus=p["A_minus"] * p["w_max"], **shared)
        if isinstance(self.weight_dependence, GutigWeightDependence):
            return sf.STDP(
                a_plus=p["A_plus"],
                a_minus=p["A_minus"],
                soft_bound=True,
                mu_plus=p["mu_plus"],
                mu_minus=p["mu_minus"],
                **shared,
            )
        return sf.STDP(a_plus=p["A_plus"], a_minus=p["A_minus"], soft_bound=True, **shared)


# current sources ----------------------------------------------------------------------------------


class _CurrentSource(_SameNames):
    """A PyNN current source: parameters kept as given, the cells it feeds, and its current (nA)
    over a run's steps, evaluated when the run starts (so a change between runs takes effect in the
    next run). The current of a step is its value at the step's start time."""

    def __init__(self, **parameters: Any) -> None:
        from .simulator import state

        object.__setattr__(self, "_values", dict(self.default_parameters))
        object.__setattr__(self, "targets", [])
        object.__setattr__(self, "recording", False)
        object.__setattr__(self, "recorded", [])
        super().__init__(**parameters)
        self.set_parameters(**parameters)
        state.current_sources.append(self)

    def set_native_parameters(self, parameters: Any) -> None:
        parameters.evaluate(simplify=True)
        for name, value in parameters.items():
            self._values[name] = value.value if hasattr(value, "value") else value

    def get_native_parameters(self) -> Any:
        from pyNN.parameters import ParameterSpace

        return ParameterSpace(dict(self._values))

    def inject_into(self, cells: Any) -> None:
        """Add this source's current to every cell of ``cells`` (a Population, PopulationView,
        Assembly, or a list of IDs)."""
        for cell in cells:
            if not cell.celltype.injectable:
                raise TypeError("Can't inject current into a spike source.")
            self.targets.append((cell.parent, int(cell.parent.id_to_index(cell))))

    def current(self, first: int, steps: int, dt: float) -> np.ndarray:
        """The current (nA) in each of ``steps`` steps from step ``first`` (kept when recording):
        the core's current source, with time counted in steps so that every switch is exact."""
        t = torch.arange(first, first + steps, dtype=torch.float64)
        values = torch.vmap(self.core(dt))(t).reshape(steps).numpy()
        if self.recording:
            self.recorded.append(values)
        return values

    def record(self) -> None:
        """Keep the current of every step from now on (``get_data`` returns it)."""
        self.recording = True

    def _get_data(self) -> tuple[np.ndarray, np.ndarray]:
        """(times, currents): the current (nA) of each recorded step at its start time (ms), and the
        current the next step would get, at the present time."""
        from .simulator import state

        now = torch.vmap(self.core(state.dt))(torch.tensor([float(state.steps)], dtype=torch.float64)).reshape(1)
        values = np.concatenate([*self.recorded, now.numpy()])
        return np.arange(values.size) * state.dt, values


def _steps(time: float, dt: float) -> float:
    """A time (ms) as a whole number of steps."""
    return float(round(time / dt))


class DCSource(_CurrentSource, electrodes.DCSource):
    pass

    def core(self, dt: float) -> sf.DCCurrent:
        v = self._values
        return sf.DCCurrent(amplitude=v["amplitude"], start=_steps(v["start"], dt), stop=_steps(v["stop"], dt))


class ACSource(_CurrentSource, electrodes.ACSource):
    """PyNN's ``ACSource``: the phase counts from ``start``, as in every PyNN backend (the core's
    ``ACCurrent`` counts from t = 0, as NEST does: its phase is shifted as pyNN.nest shifts it)."""

    def core(self, dt: float) -> sf.ACCurrent:
        v = self._values
        return sf.ACCurrent(
            amplitude=v["amplitude"],
            offset=v["offset"],
            frequency=v["frequency"] * dt,  # per step
            phase=v["phase"] - 360.0 * v["frequency"] * v["start"] / 1000.0,
            start=_steps(v["start"], dt),
            stop=_steps(v["stop"], dt),
        )


class StepCurrentSource(_CurrentSource, electrodes.StepCurrentSource):
    """Zero until the first of ``times`` (ms), then each of ``amplitudes`` (nA) from its time on; the
    last amplitude lasts to the end. Times are rounded to the step when set; of several times that
    round to one step, the last amplitude is kept."""

    def set_native_parameters(self, parameters: Any) -> None:
        super().set_native_parameters(parameters)
        from .simulator import state

        times = np.asarray(self._values["times"], dtype=float)
        amplitudes = np.asarray(self._values["amplitudes"], dtype=float)
        if times.shape != amplitudes.shape:
            raise ValueError(
                f"StepCurrentSource needs one amplitude per time, got {times.size} times and {amplitudes.size} amplitudes"
            )
        if (times < 0).any() or (np.diff(times) <= 0).any():
            raise ValueError(f"StepCurrentSource times must be non-negative and increasing (ms), got {times}")
        steps = np.rint(times / state.dt).astype(np.int64)
        last = np.append(steps[1:] != steps[:-1], True)
        self._values["times"], self._values["amplitudes"] = steps[last] * state.dt, amplitudes[last]

    def core(self, dt: float) -> Any:
        times = np.rint(np.asarray(self._values["times"], dtype=float) / dt)
        if times.size == 0:
            return torch.zeros_like
        return sf.StepCurrent(
            times=torch.as_tensor(times, dtype=torch.float64),
            amplitudes=torch.as_tensor(self._values["amplitudes"], dtype=torch.float64),
        )


class NoisyCurrentSource(_CurrentSource, electrodes.NoisyCurrentSource):
    """``mean + stdev * N(0, 1)`` (nA), a new draw every ``dt`` ms from ``start``: the core's
    ``NoisyCurrent``, whose draws are a fixed function of the source's seed and the interval, so runs
    split in any way give the same current."""

    def __init__(self, rng: Any = None, **parameters: Any) -> None:
        seed = int(np.random.default_rng(getattr(rng, "seed", None)).integers(2**31))
        object.__setattr__(self, "seed", seed)
        super().__init__(**parameters)

    def core(self, dt: float) -> sf.NoisyCurrent:
        v = self._values
        every = _steps(v["dt"], dt)
        if every < 1 or abs(every * dt - v["dt"]) > 1e-9 * max(dt, 1.0):
            raise ValueError(f"NoisyCurrentSource dt={v['dt']} ms must be a multiple of the time step {dt} ms")
        start, stop = _steps(v["start"], dt), _steps(v["stop"], dt)
        return sf.NoisyCurrent(mean=v["mean"], stdev=v["stdev"], interval=every, seed=self.seed, start=start, stop=stop)
