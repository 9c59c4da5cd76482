"""`js.SoftmaxSearchCV` against what it replaces: each fold's model against fitting that
fold alone, its cv_results_ against scikit-learn's own GridSearchCV over the same
grid, its draws against scikit-learn's ParameterSampler, and scikit-learn's checks."""

import numpy as np
import pytest
from scipy.stats import loguniform, uniform
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, KFold, ParameterSampler, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import jaxsoftmax as js
from jaxsoftmax.estimators import search
from jaxsoftmax.estimators.folds import Folds


def fold_params(base, candidates, x, labels, splits, weights=None):
    """Every (fold, candidate) model's weights and biases, as SoftmaxSearchCV trains them."""
    folds = Folds(base, x, labels, np.unique(labels), [train for train, _ in splits], weights)
    return folds.params(folds.train(folds.start(candidates)), len(candidates))


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return x / 16, y


@parametrize_with_checks(
    [js.SoftmaxSearchCV(js.SoftmaxClassifier(max_iter=5), {"learning_rate": [0.3, 1.0]}, cv=2)],
    expected_failed_checks=lambda estimator: search.EXPECTED_FAILED_CHECKS,
)
def test_scikit_learns_own_estimator_checks_pass(estimator, check):
    """As scikit-learn checks its own searches; those expected to fail are named with the
    reason in `search.EXPECTED_FAILED_CHECKS`."""
    check(estimator)


@pytest.mark.parametrize("weighted", [False, True])
def test_each_folds_model_is_that_fold_fitted_alone(digits, weighted):
    """Folds of different sizes (so different steps an epoch and in all), a grid over
    every searched parameter, and with sample and class weights: every (fold, setting)
    model against `SoftmaxClassifier.fit` on the fold's examples alone."""
    x, y = digits
    order = np.random.default_rng(0).permutation(len(x))
    splits = [(order[:900], order[900:]), (order[300:], order[:300])]
    grid = {"learning_rate": [0.1, 0.5], "momentum": [0.0, 0.5], "alpha": [0.0, 1e-3]}
    base = js.SoftmaxClassifier(max_iter=3, batch_size=64, random_state=3)
    weights = None
    if weighted:
        base.set_params(class_weight="balanced")
        weights = np.linspace(0.2, 3.0, len(x))
    found = js.SoftmaxSearchCV(base, grid, cv=splits).fit(x, y, sample_weight=weights)
    candidates = found.cv_results_["params"]
    w, b = fold_params(base, candidates, x, y, splits, weights)
    for f, (train, test) in enumerate(splits):
        part = None if weights is None else weights[train]
        for c, params in enumerate(candidates):
            alone = base.set_params(**params).fit(x[train], y[train], sample_weight=part)
            np.testing.assert_allclose(w[f, c].T, alone.coef_, atol=1e-5)
            np.testing.assert_allclose(b[f, c], alone.intercept_, atol=1e-5)
            score = found.cv_results_[f"split{f}_test_score"][c]
            assert score == pytest.approx(alone.score(x[test], y[test]), abs=1.5 / len(test))


@pytest.mark.parametrize("scoring", [None, "neg_log_loss"])
def test_cv_results_are_those_of_scikit_learns_grid_search(digits, scoring):
    x, y = digits
    grid = {"learning_rate": [0.05, 0.3, 1.0], "alpha": [0.0, 0.01]}
    base = js.SoftmaxClassifier(max_iter=2)
    ours = js.SoftmaxSearchCV(base, grid, cv=3, scoring=scoring).fit(x, y)
    theirs = GridSearchCV(base, grid, cv=3, scoring=scoring).fit(x, y)
    assert ours.cv_results_["params"] == theirs.cv_results_["params"]
    for key in ["mean_test_score", "std_test_score"] + [f"split{k}_test_score" for k in range(3)]:
        np.testing.assert_allclose(ours.cv_results_[key], theirs.cv_results_[key], atol=2e-3)
    np.testing.assert_array_equal(ours.cv_results_["rank_test_score"],
                                  theirs.cv_results_["rank_test_score"])  # fmt: skip
    assert ours.best_params_ == theirs.best_params_ and ours.best_index_ == theirs.best_index_
    assert ours.n_splits_ == 3 and ours.cv_results_["mean_fit_time"].shape == (6,)
    refit = js.SoftmaxClassifier(max_iter=2).set_params(**ours.best_params_).fit(x, y)
    np.testing.assert_array_equal(ours.best_estimator_.coef_, refit.coef_)
    np.testing.assert_array_equal(ours.predict(x), refit.predict(x))
    assert ours.score(x, y) == pytest.approx(theirs.score(x, y), abs=2e-3)


def test_random_search_draws_what_parameter_sampler_draws(digits):
    x, y = digits
    space = {"learning_rate": loguniform(1e-2, 1.0), "momentum": uniform(0, 0.9)}
    found = js.SoftmaxSearchCV(js.SoftmaxClassifier(max_iter=1), param_distributions=space,
                               n_iter=7, cv=KFold(3), random_state=5).fit(x, y)  # fmt: skip
    assert found.cv_results_["params"] == list(ParameterSampler(space, 7, random_state=5))
    assert found.best_score_ == max(found.cv_results_["mean_test_score"]) > 0.8


def test_halving_trains_each_rung_on_from_the_last_and_keeps_the_best_third(digits):
    """With a constant schedule a rung's models are fits of that many epochs alone; each
    rung keeps the best third by mean held-out score; the best is the last rung's."""
    x, y = digits
    grid = {"learning_rate": [0.05, 0.5, 3.0], "momentum": [0.0, 0.5, 0.9]}
    base = js.SoftmaxClassifier(max_iter=9, schedule="constant")  # 11 steps an epoch here
    found = js.SoftmaxSearchCV(base, grid, cv=KFold(3), halving=True, min_resources=11).fit(x, y)
    results = found.cv_results_
    assert found.n_resources_ == [11, 33, 99] and found.n_candidates_ == [9, 3, 1]
    assert results["iter"].tolist() == [0] * 9 + [1] * 3 + [2]
    assert results["n_resources"].tolist() == [11] * 9 + [33] * 3 + [99]
    splits = list(KFold(3).split(x))
    for row, params in enumerate(results["params"]):
        epochs = results["n_resources"][row] // 11
        for f, (train, test) in enumerate(splits):
            alone = js.SoftmaxClassifier(max_iter=epochs, schedule="constant", **params)
            alone.fit(x[train], y[train])
            score = results[f"split{f}_test_score"][row]
            assert score == pytest.approx(alone.score(x[test], y[test]), abs=1.5 / len(test))
    for rung, survivors in ((0, slice(9, 12)), (1, slice(12, 13))):
        rows = np.flatnonzero(results["iter"] == rung)
        means = results["mean_test_score"][rows]
        best = rows[np.sort(np.argsort(-means, kind="stable")[: len(rows) // 3 or 1])]
        assert [results["params"][k] for k in best] == results["params"][survivors]
    assert found.best_index_ == 12 and found.best_params_ == results["params"][12]


def test_a_search_nests_in_a_pipeline_and_in_cross_validation(digits):
    """A nested cross-validation: the search, in a Pipeline, refitted on each outer fold."""
    x, y = load_digits(return_X_y=True)
    inner = js.SoftmaxSearchCV(js.SoftmaxClassifier(max_iter=2), {"learning_rate": [0.1, 1.0]},
                               cv=2)  # fmt: skip
    pipeline = make_pipeline(StandardScaler(), inner)
    assert cross_val_score(pipeline, x, y, cv=2).mean() > 0.85
    copy = clone(pipeline).set_params(softmaxsearchcv__halving=True)
    assert copy.get_params()["softmaxsearchcv__param_grid"] == {"learning_rate": [0.1, 1.0]}
    assert not inner.halving and copy.get_params()["softmaxsearchcv__halving"]


def test_what_one_program_cannot_search_is_refused(digits):
    x, y = digits
    cases = [
        (js.SoftmaxSearchCV(param_grid={"batch_size": [10, 20]}), "not 'batch_size'"),
        (js.SoftmaxSearchCV(), "param_grid or param_distributions"),
        (js.SoftmaxSearchCV(GridSearchCV(js.SoftmaxClassifier(), {}), {"alpha": [0]}),
         "not GridSearchCV"),
        (js.SoftmaxSearchCV(js.SoftmaxClassifier(early_stopping=True), {"alpha": [0]}),
         "early_stopping"),
        (js.SoftmaxSearchCV(param_grid={"learning_rate": [0.1, -1.0]}), "learning rate -1"),
    ]  # fmt: skip
    for found, message in cases:
        with pytest.raises(ValueError, match=message):
            found.fit(x, y)


SHARDED = """
import json
import jax, numpy as np
from sklearn.datasets import load_digits
import jaxsoftmax as js
from jaxsoftmax.core import crossval
from jaxsoftmax.estimators.folds import Folds
assert jax.device_count() == 4, jax.devices()
held = {}
program = crossval.train_folds
def spy(state, *args, **kwargs):
    held["devices"] = len(state.params["w"].sharding.device_set)
    return program(state, *args, **kwargs)
crossval.train_folds = spy
x, y = load_digits(return_X_y=True)
x = x / 16
splits = [(np.arange(0, 1200), np.arange(1200, 1797)), (np.arange(600, 1797), np.arange(600))]
base = js.SoftmaxClassifier(max_iter=2)
grid = [{"learning_rate": rate} for rate in (0.3, 1.0, 2.0)]
folds = Folds(base, x, y, np.arange(10), [train for train, _ in splits])
w, b = folds.params(folds.train(folds.start(grid)), len(grid))
worst = 0.0
for f, (train, _) in enumerate(splits):
    for c, params in enumerate(grid):
        alone = js.SoftmaxClassifier(max_iter=2, **params).fit(x[train], y[train])
        worst = max(worst, float(np.abs(w[f, c].T - alone.coef_).max()))
print(json.dumps({"devices": held["devices"], "shape": list(w.shape), "worst": worst}))
"""


def test_settings_shard_over_four_cpu_devices_and_train_as_each_fold_alone():
    """3 settings padded to 4, one a device; each (fold, setting) model is the fold's own."""
    import json
    import os
    import subprocess
    import sys

    env = os.environ | {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    done = subprocess.run([sys.executable, "-c", SHARDED], env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["devices"] == 4 and report["shape"] == [2, 3, 64, 10]
    assert report["worst"] < 1e-5
