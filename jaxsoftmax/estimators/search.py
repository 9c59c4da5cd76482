"""`SoftmaxSearchCV`: scikit-learn's `GridSearchCV` / `RandomizedSearchCV` for
`SoftmaxClassifier`, with every (setting x fold) trained in one compiled program.

    search = js.SoftmaxSearchCV(js.SoftmaxClassifier(),
                                {"learning_rate": [0.1, 0.3, 1.0], "alpha": [0, 1e-4]},
                                cv=5).fit(X, y)
    search.best_params_, search.cv_results_["mean_test_score"], search.predict(X_new)

`GridSearchCV` fits each (setting, fold) pair as a job of its own; here the folds are
rows of indices into one copy of the data on the device (`core.crossval`), and every
setting of every fold trains in the same vmapped steps. Each fold's model is the one
`SoftmaxClassifier.fit` makes on that fold's examples alone (the same minibatches).
"""

import time

import numpy as np
from sklearn.base import clone
from sklearn.metrics import check_scoring
from sklearn.model_selection import ParameterGrid, ParameterSampler, check_cv
from sklearn.model_selection._search import BaseSearchCV
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, indexable, validate_data

from jaxsoftmax.estimators.classifier import SoftmaxClassifier

# The checks of scikit-learn's `parametrize_with_checks` this search is expected to fail.
EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data": (
        "repeating examples changes which examples each fold holds, so the folds' models "
        "differ (and each trains in float32, see SoftmaxClassifier's)"
    ),
}

# What a setting may change: the hyperparameters each model of one program holds as
# arrays (`optimizer.gradient_descent`). The rest shape the program and stay fixed.
SEARCHABLE = ("learning_rate", "alpha", "momentum")


class SoftmaxSearchCV(BaseSearchCV):
    """Cross-validated search over `SoftmaxClassifier`'s learning_rate, alpha and
    momentum, every (setting x fold) trained at once.

    Parameters:
      estimator: the `SoftmaxClassifier` whose other parameters every model shares
        (None: `SoftmaxClassifier()`); early stopping is not searched.
      param_grid: {parameter: values} or a list of them, as `GridSearchCV` takes.
      param_distributions: {parameter: a list or a scipy.stats distribution}, sampled
        `n_iter` times as `RandomizedSearchCV` samples (give this or param_grid).
      n_iter: settings drawn from `param_distributions`.
      scoring: as scikit-learn's searches: None (accuracy), a name such as
        `neg_log_loss`, or a scorer.
      refit: refit the best setting on all the data (`best_estimator_`, and `predict`
        etc. through it), as `GridSearchCV`.
      cv: folds: an int (stratified k-fold), a splitter, or an iterable of splits.
      random_state: seeds the draws from `param_distributions`.
      error_score: the score of a model whose training diverged (default NaN).

    Attributes are `GridSearchCV`'s: cv_results_ (its keys), best_index_, best_score_,
    best_params_, best_estimator_, refit_time_, scorer_, n_splits_, classes_.
    """

    return_train_score = False  # read by scikit-learn's formatting of cv_results_
    n_jobs = None  # one program, no jobs
    verbose = 0
    pre_dispatch = None

    def __init__(
        self,
        estimator=None,
        param_grid=None,
        *,
        param_distributions=None,
        n_iter: int = 10,
        scoring=None,
        refit: bool = True,
        cv=None,
        random_state=None,
        error_score=np.nan,
    ):
        self.estimator, self.param_grid = estimator, param_grid
        self.param_distributions, self.n_iter = param_distributions, n_iter
        self.scoring, self.refit, self.cv = scoring, refit, cv
        self.random_state, self.error_score = random_state, error_score

    def _candidates(self) -> list[dict]:
        if (self.param_grid is None) == (self.param_distributions is None):
            raise ValueError("give param_grid or param_distributions (one of them)")
        if self.param_grid is not None:
            candidates = list(ParameterGrid(self.param_grid))
        else:
            candidates = list(ParameterSampler(self.param_distributions, self.n_iter,
                                               random_state=self.random_state))  # fmt: skip
        for name in {name for candidate in candidates for name in candidate}:
            if name not in SEARCHABLE:
                raise ValueError(
                    f"SoftmaxSearchCV searches {', '.join(SEARCHABLE)} in one program, not "
                    f"{name!r}; set it on the estimator, or search it with GridSearchCV"
                )
        return candidates

    def _base(self) -> SoftmaxClassifier:
        base = SoftmaxClassifier() if self.estimator is None else self.estimator
        if not isinstance(base, SoftmaxClassifier):
            raise ValueError(
                f"SoftmaxSearchCV searches a SoftmaxClassifier, not {type(base).__name__}; "
                "use GridSearchCV for other estimators"
            )
        if base.early_stopping:
            raise ValueError("SoftmaxSearchCV trains without early_stopping; set it False")
        return base

    def fit(self, X, y, *, groups=None, sample_weight=None):
        """Trains every setting on every fold in one program, scores each fold's held-out
        examples, and (with refit) fits the best setting on all of (X, y)."""
        base = self._base()
        candidates = self._candidates()
        X, y = indexable(X, y)
        checked = clone(base)
        Xa, ya = validate_data(checked, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(ya)
        classes, labels = np.unique(ya, return_inverse=True)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, Xa, dtype=np.float64,
                                                 ensure_non_negative=True)  # fmt: skip
        cv = check_cv(self.cv, ya, classifier=True)
        splits = list(cv.split(Xa, ya, groups))
        self.n_splits_ = len(splits)
        scorer = check_scoring(base, self.scoring)

        start = time.perf_counter()
        weights = _train_folds(base, candidates, Xa, labels, classes, splits, sample_weight)
        fit_time = (time.perf_counter() - start) / (len(candidates) * len(splits))

        out = []
        for c, candidate in enumerate(candidates):
            for f, (_, test) in enumerate(splits):
                model = clone(base).set_params(**candidate)
                model.classes_, model.n_features_in_ = classes, Xa.shape[1]
                if hasattr(checked, "feature_names_in_"):
                    model.feature_names_in_ = checked.feature_names_in_
                w, b = weights[0][f, c], weights[1][f, c]
                begin = time.perf_counter()
                if np.isfinite(w).all() and np.isfinite(b).all():
                    score = scorer(model._set_weights(w, b), _rows(X, test), ya[test])
                else:
                    score = self.error_score
                    if isinstance(score, str) and score == "raise":
                        raise ValueError(f"training {candidate} diverged on fold {f}")
                out.append({"test_scores": score, "n_test_samples": len(test),
                            "fit_time": fit_time, "score_time": time.perf_counter() - begin,
                            "fit_error": None})  # fmt: skip
        results = self._format_results(candidates, len(splits), out)
        self.multimetric_ = False
        self.best_index_ = self._select_best_index(self.refit, "score", results)
        self.best_score_ = results["mean_test_score"][self.best_index_]
        self.best_params_ = results["params"][self.best_index_]
        if self.refit:
            self.best_estimator_ = clone(base).set_params(**self.best_params_)
            begin = time.perf_counter()
            self.best_estimator_.fit(X, y, sample_weight=sample_weight)
            self.refit_time_ = time.perf_counter() - begin
            if hasattr(self.best_estimator_, "feature_names_in_"):
                self.feature_names_in_ = self.best_estimator_.feature_names_in_
        self.scorer_, self.cv_results_ = scorer, results
        return self


def _rows(X, rows: np.ndarray):
    """`rows` of X, a NumPy array or a pandas frame (its names kept for the scorer)."""
    return X.iloc[rows] if hasattr(X, "iloc") else np.asarray(X)[rows]


def _fold_weights(base, trains, X, labels, classes, sample_weight) -> np.ndarray:
    """(F, N): each fold's weight of each example, as `base` weighs the fold's examples
    when it fits them alone; (F, 0) where nothing is weighted."""
    if sample_weight is None and base.class_weight is None:
        return np.zeros((len(trains), 0), np.float32)
    weights = np.zeros((len(trains), len(X)), np.float32)
    for f, train in enumerate(trains):
        fitted = clone(base)
        fitted.classes_ = classes
        part = None if sample_weight is None else sample_weight[train]
        weights[f, train] = fitted._weights(X[train], labels[train], part)
    return weights


def _train_folds(base, candidates, X, labels, classes, splits, sample_weight) -> tuple:
    """The weights (F, M, features, classes) and biases (F, M, classes) of every fold x
    setting, each as `base` with that setting fits the fold alone."""
    import jax
    import jax.numpy as jnp

    from jaxsoftmax.core import crossval, engine, model
    from jaxsoftmax.core.layouts import FEATURE_MAJOR, to_layout
    from jaxsoftmax.core.optimizer import GradientDescent
    from jaxsoftmax.sweep.config import SweepConfig

    trains = [train for train, _ in splits]
    shapes = [base._epochs(len(train)) for train in trains]
    batch = min(shape[0] for shape in shapes)
    steps = np.asarray([epochs * per_epoch for _, per_epoch, epochs in shapes], np.int32)
    folds = np.zeros((len(trains), max(map(len, trains))), np.int32)
    for f, train in enumerate(trains):
        folds[f, : len(train)] = train
    fold_weights = _fold_weights(base, trains, X, labels, classes, sample_weight)

    def setting(name):
        return jnp.asarray([float(c.get(name, getattr(base, name))) for c in candidates],
                           jnp.float32)  # fmt: skip

    rates, alphas, momenta = setting("learning_rate"), setting("alpha"), setting("momentum")

    def distinct(name):  # the values a setting takes, as the sweep's checks take them
        return tuple(dict.fromkeys(float(c.get(name, getattr(base, name))) for c in candidates))

    SweepConfig(
        learning_rates=distinct("learning_rate"),
        weight_decays=distinct("alpha"),
        momenta=distinct("momentum"),
        steps=1,
        batch_size=1,
    )  # checks them
    descent = GradientDescent(weight_decay=bool((alphas > 0).any()),
                              momentum=bool((momenta > 0).any()))  # fmt: skip
    decay = steps if base.schedule == "cosine" else np.zeros_like(steps)
    params = model.init_params(X.shape[1], len(classes))

    def one_model(rate, alpha, trace, decay_steps):
        state = engine.init_state(params, rate, decay_steps,
                                  alpha if descent.weight_decay else None,
                                  trace if descent.momentum else None)  # fmt: skip
        return to_layout(state, FEATURE_MAJOR)

    per_fold = jax.vmap(one_model, in_axes=(0, 0, 0, None))
    state = jax.vmap(per_fold, in_axes=(None, None, None, 0))(rates, alphas, momenta,
                                                              jnp.asarray(decay))  # fmt: skip
    state = crossval.train_folds(
        state, jnp.asarray(X, jnp.float32), jnp.asarray(labels, jnp.int32),
        jnp.asarray(fold_weights), jnp.asarray(folds),
        jnp.asarray([len(train) for train in trains], jnp.int32), jnp.asarray(steps),
        jnp.int32(base._seed()), jnp.float32(1.0),
        epochs=max(shape[2] for shape in shapes), epoch_steps=max(s[1] for s in shapes),
        batch_size=batch, descent=descent, layout=FEATURE_MAJOR,
    )  # fmt: skip
    return np.asarray(state.params["w"]), np.asarray(state.params["b"])
