"""`js.SoftmaxSearchCV` against what it replaces: each fold's model against fitting that
fold alone, its cv_results_ against scikit-learn's own GridSearchCV over the same
grid, its draws against scikit-learn's ParameterSampler, and scikit-learn's checks."""

import numpy as np
import pytest
from scipy.stats import loguniform, uniform
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, KFold, ParameterSampler
from sklearn.utils.estimator_checks import parametrize_with_checks

import jaxsoftmax as js
from jaxsoftmax.estimators import search
from jaxsoftmax.estimators.search import _train_folds


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
    w, b = _train_folds(base, candidates, x, y, np.arange(10), splits, weights)
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
