"""Spiking-network classifiers and regressors with scikit-learn's estimator interface.

``SpikingClassifier`` and ``SpikingRegressor`` have ``fit``, ``predict``, ``score``, ``transform``,
``get_params`` and ``set_params`` and are cloneable, so scikit-learn's ``cross_val_score``,
``GridSearchCV`` and ``Pipeline`` use them as they use their own; both pass scikit-learn's
``check_estimator``. They need scikit-learn (``pip install 'sapicore[sklearn]'``).

How a sample is turned into a prediction:

1. Its features are scaled to [0, 1] by the range each had in the training data (values outside
   that range are clipped); with ``receptive_fields`` K > 1 each feature is spread over K inputs with
   Gaussian receptive fields (centres evenly spaced over [0, 1], width their spacing: population
   coding, so that a few features still drive many trains). The inputs are encoded into spike trains
   over ``duration`` ms ([`sapicore.functional.models.encoders`][sapicore.functional.models.encoders]: ``"poisson"`` rates up to ``max_rate``
   Hz, or ``"latency"``, one spike per input, earlier for larger values). A sample's Poisson trains
   come from a generator seeded by ``random_state`` and the sample's own values, so its prediction
   never depends on the other samples of a batch, their order or their number.
2. The trains drive a population ``input`` that projects, through random weights (normal, mean
   0, sd ``weight_scale`` nA) and exponential current synapses (``tau_syn`` ms), onto ``n_hidden``
   LIF neurons (``tau_mem`` ms, threshold 15 mV above rest, 2 ms refractory); the hidden neurons'
   spike counts are the sample's features.
3. A readout maps counts to the answer. The classifier's: ``"linear"`` (logistic regression on
   standardised counts, ``readout_c`` its inverse regularisation) or ``"prototype"`` (the class
   whose mean count vector is the most similar, by cosine, as in olfactory-bulb models). The
   regressor's: ridge regression on standardised counts (``readout_alpha`` its penalty), one or
   several targets.

Samples are independent runs from the resting state (an infinite rinse), so they run together as
``torch.func.vmap`` lanes, ``batch_size`` at a time. With ``plasticity="stdp"``, ``fit`` first
presents the training samples one after another to the network with STDP on the input weights
(normalised per hidden neuron to their initial sum of absolute values), ``rinse`` ms of silence
between samples, so learning carries from one sample to the next; the learnt weights then serve
every later response.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from typing import Any

import numpy as np
import torch

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "sapicore.estimators needs scikit-learn: pip install 'sapicore[sklearn]' (or scikit-learn)"
    ) from err

import sapicore.functional as sf
from sapicore.functional import connectivity

__all__ = ["SpikingClassifier", "SpikingRegressor"]

ENCODERS = ("poisson", "latency")
READOUTS = ("linear", "prototype")
PLASTICITY = (None, "stdp")


def _seed(random_state: Any) -> int:
    """The torch seed of a scikit-learn ``random_state``: an int is the seed itself; None (numpy's
    global generator) or a ``numpy.random.RandomState`` draws one."""
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state must be an int >= 0, None or a numpy RandomState, got {random_state!r}")
        return int(random_state)
    from sklearn.utils import check_random_state

    try:
        return int(check_random_state(random_state).randint(2**31 - 1))
    except ValueError:
        raise ValueError(
            f"random_state must be an int >= 0, None or a numpy RandomState, got {random_state!r}"
        ) from None


def _sample_seed(seed: int, sample: np.ndarray) -> int:
    """A seed of a sample's own random draws: from the estimator's seed and the sample's values."""
    digest = hashlib.blake2b(np.ascontiguousarray(sample).tobytes(), digest_size=8, key=seed.to_bytes(8, "little"))
    return int.from_bytes(digest.digest(), "little") & (2**63 - 1)


class _SpikingLayer(TransformerMixin, BaseEstimator):
    """The encoder and random spiking layer that the classifier and the regressor share: their
    ``transform`` (module docstring); subclasses add a readout."""

    def _set(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            if name != "self" and not name.startswith("__"):
                setattr(self, name, value)

    # -- checks ---------------------------------------------------------------------------------

    def _check_params(self) -> None:
        for name, allowed in (("encoder", ENCODERS), ("plasticity", PLASTICITY)):
            _check_choice(name, getattr(self, name), allowed)
        for name in ("n_hidden", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("duration", "dt", "max_rate", "weight_scale", "tau_mem", "tau_syn"):
            _check_positive(name, getattr(self, name))
        if not isinstance(self.fast, bool):
            raise ValueError(f"fast must be True or False, got {self.fast!r}")
        if not (isinstance(self.rinse, (int, float)) and math.isfinite(self.rinse) and self.rinse >= 0):
            raise ValueError(f"rinse must be a finite number of ms >= 0, got {self.rinse!r}")
        k = self.receptive_fields
        if k != "auto" and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1):
            raise ValueError(f"receptive_fields must be a positive int or 'auto', got {k!r}")
        if self.duration < self.dt:
            raise ValueError(f"duration ({self.duration} ms) must hold at least one step of dt ({self.dt} ms)")

    # -- the network --------------------------------------------------------------------------------

    def _network(self, n_features: int, weights: torch.Tensor, plastic: bool) -> sf.Network:
        populations = {
            "input": sf.Population(sf.SpikeInput(), n_features),
            "hidden": sf.Population(sf.LIF(tau_mem=float(self.tau_mem), t_ref=2.0), int(self.n_hidden)),
        }
        feed = sf.projection(
            "input",
            "hidden",
            connectivity.all_to_all(n_features, int(self.n_hidden)),
            weights.reshape(-1),  # all_to_all runs source-major: row i of (features, hidden)
            sf.Exponential(tau=float(self.tau_syn)),
            dt=float(self.dt),
            kind="dense",
            plasticity=sf.STDP(w_min=-10.0 * self.weight_scale, w_max=10.0 * self.weight_scale) if plastic else None,
        )
        return sf.Network(populations, {"feed": feed})

    def _trains(self, X: np.ndarray, seed: int) -> torch.Tensor:
        """(steps, samples, inputs) spike trains of samples ``X``; each sample's from its own generator."""
        steps = int(round(self.duration / self.dt))
        values = self._inputs(X)
        if self.encoder == "latency":
            return sf.encoders.latency(values, steps, float(self.dt))
        trains = [
            sf.encoders.poisson_rate(
                row,
                steps,
                float(self.dt),
                float(self.max_rate),
                generator=torch.Generator().manual_seed(_sample_seed(seed, sample)),
            )
            for row, sample in zip(values, X)
        ]
        return torch.stack(trains, dim=1) if trains else torch.zeros(steps, 0, values.shape[1])

    def _inputs(self, X: np.ndarray) -> torch.Tensor:
        """(samples, inputs) values in [0, 1]: the features scaled by their training range, each spread
        over ``fields_`` Gaussian receptive fields."""
        span = np.where(self.feature_max_ > self.feature_min_, self.feature_max_ - self.feature_min_, 1.0)
        scaled = torch.as_tensor(np.clip((X - self.feature_min_) / span, 0.0, 1.0), dtype=torch.float32)
        if self.fields_ == 1:
            return scaled
        centres = torch.linspace(0.0, 1.0, self.fields_)
        width = 1.0 / (self.fields_ - 1)
        return torch.exp(-0.5 * ((scaled[:, :, None] - centres) / width) ** 2).reshape(len(X), -1)

    def _responses(self, X: np.ndarray, seed: int) -> np.ndarray:
        """Hidden spike counts (samples, n_hidden), samples run as vmap lanes."""
        trains = self._trains(X, seed)
        net = self._network(trains.shape[2], self.weights_, plastic=False)
        state = net.init_state()
        steps = trains.shape[0]

        def counts(train: torch.Tensor) -> torch.Tensor:
            _, rec = sf.simulate(net, state, {"input": train}, dt=float(self.dt), record="hidden.spikes", every=steps)
            return rec["hidden.spikes"][0]

        batched = torch.func.vmap(counts, in_dims=1)
        with torch.no_grad():
            parts = [batched(trains[:, i : i + self.batch_size]) for i in range(0, trains.shape[1], self.batch_size)]
        return torch.cat(parts).numpy().astype(np.float64)

    def _learn(self, X: np.ndarray, seed: int) -> None:
        """Present the training samples one after another with STDP on (one run of all of them, each
        followed by ``rinse`` ms of silence); keep the learnt weights."""
        trains = self._trains(X, seed)  # (steps, samples, inputs)
        rinse = torch.zeros(int(round(self.rinse / self.dt)), *trains.shape[1:])
        sequence = torch.cat([trains, rinse]).transpose(0, 1).reshape(-1, trains.shape[2])  # sample after sample
        net = self._network(trains.shape[2], self.weights_, plastic=True)
        with torch.no_grad():
            state, _ = sf.simulate(
                net, net.init_state(), {"input": sequence}, dt=float(self.dt), record=(), keep=False, fast=self.fast
            )
        learnt = state.projections["feed"].weights  # (features, hidden), as weights_
        # keep each hidden neuron's total input strength: STDP moves weights, not the layer's gain
        before = self.weights_.abs().sum(0, keepdim=True)
        self.weights_ = learnt * before / learnt.abs().sum(0, keepdim=True).clamp(min=1e-12)

    # -- the estimator interface --------------------------------------------------------------------

    def _fit_layer(self, X: np.ndarray) -> np.ndarray:
        """Draw (and, with ``plasticity``, learn) the input weights; return the training samples' counts."""
        self.feature_min_, self.feature_max_ = X.min(axis=0), X.max(axis=0)
        k = self.receptive_fields
        self.fields_ = (1 if X.shape[1] >= 32 else math.ceil(32 / X.shape[1])) if k == "auto" else int(k)
        self.seed_ = _seed(self.random_state)
        generator = torch.Generator().manual_seed(self.seed_)
        inputs = X.shape[1] * self.fields_
        self.weights_ = torch.randn(inputs, int(self.n_hidden), generator=generator) * float(self.weight_scale)
        if self.plasticity == "stdp":
            self._learn(X, self.seed_)
        counts = self._responses(X, seed=self.seed_ + 1)
        if not counts.any():
            warnings.warn(
                f"the hidden layer never spiked for any of the {len(X)} training samples, so the readout learns "
                "nothing; raise weight_scale, max_rate or duration",
                RuntimeWarning,
                stacklevel=3,
            )
        return counts

    def transform(self, X: Any) -> np.ndarray:
        """The hidden layer's spike counts for samples ``X``: (n, n_hidden)."""
        check_is_fitted(self, "readout_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self._responses(X, seed=self.seed_ + 2)


class SpikingClassifier(ClassifierMixin, _SpikingLayer):
    """Classify feature vectors by the spike counts of a random spiking layer (module docstring).

    Args:
        n_hidden: hidden LIF neurons.
        encoder: "poisson" or "latency".
        receptive_fields: inputs per feature (Gaussian receptive fields), or "auto": 1 for 32 features
            or more, else enough for 32 inputs in all.
        duration: presentation time per sample (ms).
        rinse: silence between samples presented one after another (ms; used by ``plasticity``).
        dt: time step (ms).
        max_rate: the Poisson encoder's rate for a feature at its training maximum (Hz).
        weight_scale: standard deviation of the input weights (nA).
        tau_mem: the hidden neurons' membrane time constant (ms).
        tau_syn: the input synapses' time constant (ms).
        readout: "linear" or "prototype".
        readout_c: inverse regularisation of the linear readout (as ``LogisticRegression``'s ``C``).
        plasticity: None, or "stdp" to learn the input weights during ``fit``.
        fast: run that learning compiled (``simulate(fast=True)``): quicker from a few hundred samples,
            after a compile of 5-25 s once per process.
        batch_size: samples run together as vmap lanes.
        random_state: seed of the weights and of the Poisson trains: an int (the seed), None or a numpy
            RandomState (each draws a seed at fit, kept as ``seed_``), as scikit-learn takes it.
    """

    def __init__(
        self,
        n_hidden: int = 800,
        encoder: str = "poisson",
        receptive_fields: int | str = "auto",
        duration: float = 200.0,
        rinse: float = 20.0,
        dt: float = 1.0,
        max_rate: float = 200.0,
        weight_scale: float = 1.0,
        tau_mem: float = 10.0,
        tau_syn: float = 5.0,
        readout: str = "linear",
        readout_c: float = 1.0,
        plasticity: str | None = None,
        fast: bool = False,
        batch_size: int = 256,
        random_state: int = 0,
    ) -> None:
        self._set(locals())

    def fit(self, X: Any, y: Any) -> SpikingClassifier:
        """Fit the readout (and, with ``plasticity``, the input weights) to samples ``X`` (n, features)
        and labels ``y`` (n,)."""
        self._check_params()
        _check_choice("readout", self.readout, READOUTS)
        _check_positive("readout_c", self.readout_c)
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"fit needs at least two classes, got 1 class: {self.classes_.tolist()}")
        counts = self._fit_layer(X)
        if self.readout == "linear":
            from sklearn.linear_model import LogisticRegression

            self.readout_ = make_pipeline(StandardScaler(), LogisticRegression(C=float(self.readout_c), max_iter=2000))
            self.readout_.fit(counts, codes)
        else:
            unit = counts / np.maximum(np.linalg.norm(counts, axis=1, keepdims=True), 1e-12)
            self.readout_ = np.stack([unit[codes == k].mean(axis=0) for k in range(len(self.classes_))])
        return self

    def predict(self, X: Any) -> np.ndarray:
        """The class of each sample in ``X`` (n, features)."""
        counts = self.transform(X)
        if self.readout == "linear":
            codes = self.readout_.predict(counts)
        else:
            unit = counts / np.maximum(np.linalg.norm(counts, axis=1, keepdims=True), 1e-12)
            prototypes = self.readout_ / np.maximum(np.linalg.norm(self.readout_, axis=1, keepdims=True), 1e-12)
            codes = (unit @ prototypes.T).argmax(axis=1)
        return self.classes_[codes]


class SpikingRegressor(RegressorMixin, _SpikingLayer):
    """Predict one or several continuous targets from the spike counts of a random spiking layer
    (module docstring), read out by ridge regression.

    Args:
        n_hidden: hidden LIF neurons.
        encoder: "poisson" or "latency".
        receptive_fields: inputs per feature (Gaussian receptive fields), or "auto": 1 for 32 features
            or more, else enough for 32 inputs in all.
        duration: presentation time per sample (ms).
        rinse: silence between samples presented one after another (ms; used by ``plasticity``).
        dt: time step (ms).
        max_rate: the Poisson encoder's rate for a feature at its training maximum (Hz).
        weight_scale: standard deviation of the input weights (nA).
        tau_mem: the hidden neurons' membrane time constant (ms).
        tau_syn: the input synapses' time constant (ms).
        readout_alpha: the ridge penalty of the readout (as ``Ridge``'s ``alpha``), on standardised
            counts. Poisson counts differ from one presentation of a sample to the next, and a weak
            penalty fits the noise of the training presentation: on scikit-learn's regression check
            data (200 samples) the default's R^2 on a new presentation is 0.67, alpha=1's 0.50.
        plasticity: None, or "stdp" to learn the input weights during ``fit``.
        fast: run that learning compiled (``simulate(fast=True)``): quicker from a few hundred samples,
            after a compile of 5-25 s once per process.
        batch_size: samples run together as vmap lanes.
        random_state: seed of the weights and of the Poisson trains: an int (the seed), None or a numpy
            RandomState (each draws a seed at fit, kept as ``seed_``), as scikit-learn takes it.
    """

    def __init__(
        self,
        n_hidden: int = 800,
        encoder: str = "poisson",
        receptive_fields: int | str = "auto",
        duration: float = 200.0,
        rinse: float = 20.0,
        dt: float = 1.0,
        max_rate: float = 200.0,
        weight_scale: float = 1.0,
        tau_mem: float = 10.0,
        tau_syn: float = 5.0,
        readout_alpha: float = 100.0,
        plasticity: str | None = None,
        fast: bool = False,
        batch_size: int = 256,
        random_state: int = 0,
    ) -> None:
        self._set(locals())

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X: Any, y: Any) -> SpikingRegressor:
        """Fit the readout (and, with ``plasticity``, the input weights) to samples ``X`` (n, features)
        and targets ``y`` (n,) or (n, targets)."""
        self._check_params()
        _check_positive("readout_alpha", self.readout_alpha)
        X, y = validate_data(self, X, y, dtype=np.float64, multi_output=True, y_numeric=True)
        from sklearn.linear_model import Ridge

        self.readout_ = make_pipeline(StandardScaler(), Ridge(alpha=float(self.readout_alpha)))
        self.readout_.fit(self._fit_layer(X), y)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """The target(s) of each sample in ``X`` (n, features): (n,) or (n, targets), as ``y`` was.

        A sample's spike counts are its own whatever the batch; the readout's matrix product may round
        its last bits differently for different batch sizes (about 1e-15 relative)."""
        counts = self.transform(X)
        return self.readout_.predict(counts)


def _check_choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
