import math

import numpy as np
import pytest
import torch

import sapicore.functional as sf

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler  # noqa: E402

from sapicore.estimators import SpikingClassifier, SpikingRegressor  # noqa: E402

SMALL = dict(n_hidden=120, duration=60.0, batch_size=64)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:240], y[:240]


def test_poisson_rate_fires_at_the_asked_rate_and_latency_once_at_the_asked_time():
    values = torch.tensor([0.0, 0.25, 1.0])
    trains = sf.encoders.poisson_rate(values, 20_000, 0.5, max_rate=100.0, generator=torch.Generator().manual_seed(0))
    assert trains.shape == (20_000, 3) and set(trains.unique().tolist()) <= {0.0, 1.0}
    expected = values * 100.0 * 10.0  # Hz x 10 s
    sd = torch.sqrt(expected * (1 - values * 0.05))  # binomial: p = rate x dt
    assert bool((abs(trains.sum(0) - expected) <= 5 * sd + 1e-9).all())
    assert trains[:, 0].sum() == 0
    train = sf.encoders.latency(torch.tensor([[1.0, 0.5, 0.0, 0.1]]), 11, 1.0)
    assert train.shape == (11, 1, 4)
    fired = [torch.nonzero(train[:, 0, i]).flatten().tolist() for i in range(4)]
    assert fired == [[0], [5], [], [9]]  # at (1 - value) x 10 ms; 0 never fires


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: sf.encoders.poisson_rate(torch.tensor([1.5]), 10, 1.0), "must lie in \\[0, 1\\] .*MinMaxScaler"),
        (lambda: sf.encoders.poisson_rate(torch.tensor([float("nan")]), 10, 1.0), "must lie in \\[0, 1\\]"),
        (lambda: sf.encoders.poisson_rate(torch.tensor([0.5]), 10, 1.0, max_rate=2000.0), "at most one fits"),
        (lambda: sf.encoders.latency(torch.tensor([0.5]), 0, 1.0), "steps must be a positive int"),
        (lambda: sf.encoders.latency(torch.tensor([0.5]), 10, 1.0, t_max=20.0), "t_max must be in"),
        (lambda: sf.encoders.latency([0.5], 10, 1.0), "must be a floating tensor"),
    ],
)
def test_encoders_refuse_bad_input_saying_what_to_do(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


def test_scikit_learn_clones_it_cross_validates_it_and_grid_searches_it(digits):
    X, y = digits
    classifier = SpikingClassifier(**SMALL)
    copy = clone(classifier)
    assert copy.get_params() == classifier.get_params() and copy is not classifier
    assert classifier.set_params(weight_scale=2.0).weight_scale == 2.0
    scores = cross_val_score(SpikingClassifier(**SMALL), X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.6  # ten classes: chance is 0.1
    search = GridSearchCV(SpikingClassifier(**SMALL), {"weight_scale": [0.5, 1.0]}, cv=2).fit(X, y)
    assert search.best_params_["weight_scale"] in (0.5, 1.0) and search.score(X, y) > 0.6
    pipeline = make_pipeline(MinMaxScaler(), SpikingClassifier(**SMALL, readout="prototype")).fit(X, y)
    assert pipeline.predict(X[:5]).shape == (5,) and set(pipeline.predict(X)) <= set(y)


def test_samples_in_vmap_lanes_equal_samples_run_one_at_a_time(digits):
    X, y = digits
    classifier = SpikingClassifier(**{**SMALL, "encoder": "latency", "weight_scale": 4.0}).fit(X[:100], y[:100])
    together = classifier.transform(X[:40])
    alone = np.concatenate([classifier.set_params(batch_size=1).transform(X[i : i + 1]) for i in range(5)])
    assert together.shape == (40, 120) and together.sum() > 0
    assert np.array_equal(together[:5], alone)


def test_stdp_learns_during_fit_from_samples_presented_in_order(digits):
    X, y = digits
    settings = {**SMALL, "duration": 30.0, "rinse": 10.0, "plasticity": "stdp", "n_hidden": 40}
    plain = SpikingClassifier(**{**settings, "plasticity": None}).fit(X[:20], y[:20])
    learnt = SpikingClassifier(**settings).fit(X[:20], y[:20])
    reordered = SpikingClassifier(**settings).fit(X[:20][::-1], y[:20][::-1])
    assert not torch.equal(learnt.weights_, plain.weights_)  # STDP moved the weights
    assert not torch.equal(learnt.weights_, reordered.weights_)  # and the order of samples matters
    for fitted in (plain, learnt):  # each hidden neuron keeps its total input strength
        strength = fitted.weights_.abs().sum(0)  # weights_: (features, hidden)
        assert torch.allclose(strength, plain.weights_.abs().sum(0), rtol=1e-4)


def test_bad_parameters_and_data_are_refused_clearly(digits):
    X, y = digits
    with pytest.raises(ValueError, match="encoder must be one of"):
        SpikingClassifier(encoder="rate").fit(X, y)
    with pytest.raises(ValueError, match="n_hidden must be a positive int"):
        SpikingClassifier(n_hidden=0).fit(X, y)
    with pytest.raises(ValueError, match="duration .* must hold at least one step"):
        SpikingClassifier(duration=0.5, dt=1.0).fit(X, y)
    with pytest.raises(ValueError, match="at least two classes"):
        SpikingClassifier(**SMALL).fit(X[:10], np.zeros(10))
    with pytest.raises(ValueError, match="NaN"):
        SpikingClassifier(**SMALL).fit(np.where(np.eye(240, 64) > 0, math.nan, X), y)
    with pytest.raises(NotFittedError):
        SpikingClassifier(**SMALL).predict(X)
    fitted = SpikingClassifier(**SMALL).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        fitted.predict(X[:, :10])


from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402


@parametrize_with_checks(
    [SpikingClassifier(n_hidden=100, duration=50.0), SpikingRegressor(n_hidden=400, duration=100.0)]
)
def test_scikit_learns_own_estimator_checks_pass(estimator, check):
    check(estimator)


def test_a_samples_prediction_depends_on_that_sample_alone(digits):
    X, y = digits
    classifier = SpikingClassifier(**SMALL).fit(X[:160], y[:160])
    test = X[160:200]
    alone = np.stack([classifier.transform(test[i : i + 1])[0] for i in range(len(test))])
    order = np.random.default_rng(1).permutation(len(test))
    assert np.array_equal(classifier.transform(test[order]), alone[order])  # shuffled
    assert np.array_equal(
        np.concatenate([classifier.transform(test[:7]), classifier.transform(test[7:])]), alone
    )  # split
    padded = classifier.transform(np.concatenate([X[:30], test, X[30:50]]))[30 : 30 + len(test)]
    assert np.array_equal(padded, alone)  # among other samples
    small_batches = clone(classifier).set_params(batch_size=3).fit(X[:160], y[:160])
    assert np.array_equal(small_batches.transform(test), alone)  # whatever the batch size


def test_a_few_features_are_learnt_through_receptive_fields():
    from sklearn.datasets import make_blobs
    from sklearn.preprocessing import StandardScaler

    X, y = make_blobs(n_samples=300, random_state=0)  # scikit-learn's own check data: 2 features, 3 classes
    X = StandardScaler().fit_transform(X)
    classifier = SpikingClassifier(n_hidden=100, duration=50.0).fit(X, y)
    assert classifier.fields_ == 16 and classifier.weights_.shape == (32, 100)
    assert classifier.score(X, y) >= 0.90
    plain = SpikingClassifier(n_hidden=100, duration=50.0, receptive_fields=1).fit(X, y)
    assert plain.score(X, y) < classifier.score(X, y)


def test_the_regressor_learns_a_smooth_function_and_a_samples_prediction_is_its_own():
    """y = sin(2 pi x1) + x2^2 on [0, 1]^2: two features spread over receptive fields; the ridge readout
    of the counts fits it (R^2 on held-out samples), several targets at once give each target's own
    fit, and a prediction does not depend on the batch around it."""
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(300, 2))
    y = np.sin(2 * np.pi * X[:, 0]) + X[:, 1] ** 2
    regressor = SpikingRegressor(n_hidden=200, duration=60.0).fit(X[:200], y[:200])
    assert regressor.fields_ == 16 and regressor.score(X[200:], y[200:]) > 0.8
    plain = SpikingRegressor(n_hidden=200, duration=60.0, receptive_fields=1).fit(X[:200], y[:200])
    assert plain.score(X[200:], y[200:]) < regressor.score(X[200:], y[200:])
    both = SpikingRegressor(n_hidden=200, duration=60.0).fit(X[:200], np.stack([y, -2 * y], axis=1)[:200])
    predicted = both.predict(X[200:])
    assert predicted.shape == (100, 2) and np.allclose(predicted[:, 1], -2 * predicted[:, 0], atol=1e-6)
    alone = np.stack([regressor.transform(X[200 + i : 201 + i])[0] for i in range(10)])
    assert np.array_equal(regressor.transform(X[200:][::-1])[-10:][::-1], alone)  # the counts: exactly
    single = np.array([regressor.predict(X[200 + i : 201 + i])[0] for i in range(10)])
    assert np.allclose(regressor.predict(X[200:][::-1])[-10:][::-1], single, rtol=1e-12, atol=1e-12)


def test_the_regressor_refuses_bad_parameters_and_targets():
    X = np.random.default_rng(1).uniform(size=(20, 3))
    with pytest.raises(ValueError, match="readout_alpha must be a positive finite number"):
        SpikingRegressor(readout_alpha=0.0).fit(X, X[:, 0])
    with pytest.raises(ValueError, match="NaN|infinity"):
        SpikingRegressor(n_hidden=10, duration=5.0).fit(X, np.where(np.arange(20) == 3, np.nan, X[:, 0]))
    with pytest.raises(NotFittedError):
        SpikingRegressor().predict(X)
