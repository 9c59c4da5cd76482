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

import functools
import time

import numpy as np
from sklearn.base import clone
from sklearn.metrics import check_scoring
from sklearn.model_selection import ParameterGrid, ParameterSampler, check_cv
from sklearn.model_selection._search import BaseSearchCV
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, indexable, validate_data

from jaxsoftmax.core import host
from jaxsoftmax.estimators.classifier import SoftmaxClassifier
from jaxsoftmax.estimators.folds import SEARCHABLE

# The checks of scikit-learn's `parametrize_with_checks` this search is expected to fail.
EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data": (
        "repeating examples changes which examples each fold holds, so the folds' models "
        "differ (and each trains in float32, see SoftmaxClassifier's)"
    ),
}


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
      halving: successive halving, as `HalvingRandomSearchCV` with training steps for
        its resource: every setting trains `min_resources` steps, the best 1/`factor` by
        mean held-out score go on to `factor` times as many, and so on up to a fit's
        steps; each rung goes on from where the last ended, its cosine over the rung
        alone (the library's `Halving`, as `--search` uses it). cv_results_ then has a
        row per setting and rung (`iter`, `n_resources`), and the best is the last
        rung's; n_resources_, n_candidates_, n_iterations_ as scikit-learn's.
      factor, min_resources: halving's factor, and its first rung's steps (None: about
        a fit's steps / factor**3).

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
        halving: bool = False,
        factor: int = 3,
        min_resources: int | None = None,
    ):
        self.estimator, self.param_grid = estimator, param_grid
        self.param_distributions, self.n_iter = param_distributions, n_iter
        self.scoring, self.refit, self.cv = scoring, refit, cv
        self.random_state, self.error_score = random_state, error_score
        self.halving, self.factor, self.min_resources = halving, factor, min_resources

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
        """Trains every setting on every fold in one program (with halving: the survivors
        of each rung in one), scores each fold's held-out examples, and (with refit)
        fits the best setting on all of (X, y)."""
        from jaxsoftmax.estimators.folds import Folds

        base, candidates = self._base(), self._candidates()
        X, y = indexable(X, y)
        checked = clone(base)
        Xa, ya = validate_data(checked, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(ya)
        classes, labels = np.unique(ya, return_inverse=True)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, Xa, dtype=np.float64,
                                                 ensure_non_negative=True)  # fmt: skip
        splits = list(check_cv(self.cv, ya, classifier=True).split(Xa, ya, groups))
        self.n_splits_, self.scorer_ = len(splits), check_scoring(base, self.scoring)
        folds = Folds(base, Xa, labels, classes, [train for train, _ in splits], sample_weight)
        score = functools.partial(self._scores, base, checked, X, ya, classes, splits)
        if self.halving:
            rows, out, more = self._halving(folds, candidates, score)
        else:
            began = time.perf_counter()
            state = folds.train(folds.start(candidates))
            fit_time = (time.perf_counter() - began) / (len(candidates) * len(splits))
            rows, out, more = candidates, score(candidates, folds.params(state, len(candidates)),
                                                fit_time), None  # fmt: skip
        self.cv_results_ = self._format_results(rows, len(splits), out, more)
        self.multimetric_ = False
        self.best_index_ = self._best(self.cv_results_)
        self.best_score_ = self.cv_results_["mean_test_score"][self.best_index_]
        self.best_params_ = self.cv_results_["params"][self.best_index_]
        if self.refit:
            self.best_estimator_ = clone(base).set_params(**self.best_params_)
            began = time.perf_counter()
            self.best_estimator_.fit(X, y, sample_weight=sample_weight)
            self.refit_time_ = time.perf_counter() - began
            if hasattr(self.best_estimator_, "feature_names_in_"):
                self.feature_names_in_ = self.best_estimator_.feature_names_in_
        return self

    def _best(self, results: dict) -> int:
        """The best row by mean score (ties: the first), among the last rung's with halving."""
        if not self.halving:
            return self._select_best_index(self.refit, "score", results)
        last = np.flatnonzero(results["iter"] == results["iter"].max())
        return int(last[np.argmax(results["mean_test_score"][last])])

    def _halving(self, folds, candidates: list[dict], score) -> tuple[list, list, dict]:
        """Successive halving (`search.spaces.Halving`): rungs of training steps, each
        trained from where the last ended (its cosine over the rung alone), keeping the
        best 1/factor of the settings by mean held-out score. The rows of cv_results_:
        each setting at each rung it trained in (`iter`, `n_resources`: its steps)."""
        from jaxsoftmax.search.spaces import Halving, default_min_steps
        from jaxsoftmax.sweep.warm import restart_schedule

        total = int(folds.steps.min())
        rule = Halving(eta=self.factor, min_steps=self.min_resources
                       or default_min_steps(total, 1, self.factor))  # fmt: skip
        if rule.min_steps >= total:
            raise ValueError(
                f"min_resources {rule.min_steps} is not below the {total} steps of a fit; "
                "give fewer, or more max_iter"
            )
        ends, kept, state, kept_now = rule.rungs(total), np.arange(len(candidates)), None, None
        rows, out, more = [], [], {"iter": [], "n_resources": []}
        self.n_resources_, self.n_candidates_ = ends, []
        for rung, end in enumerate(ends):
            start = ends[rung - 1] if rung else 0
            alive = [candidates[k] for k in kept]
            began = time.perf_counter()
            if state is None:
                state = folds.start(alive, decay_steps=end)
            else:
                state = _restarted(folds, state, kept_now, end - start, restart_schedule)
            state = folds.train(state, start, end)
            fit_time = (time.perf_counter() - began) / (len(alive) * self.n_splits_)
            found = score(alive, folds.params(state, len(alive)), fit_time)
            rows += alive
            out += found
            more["iter"] += [rung] * len(alive)
            more["n_resources"] += [end] * len(alive)
            self.n_candidates_.append(len(alive))
            means = np.nanmean(np.reshape([o["test_scores"] for o in found], (len(alive), -1)), 1)
            order = np.argsort(-np.nan_to_num(means, nan=-np.inf), kind="stable")
            kept_now = np.sort(order[: rule.survivors(len(alive))])
            kept = kept[kept_now]
        self.n_iterations_ = len(ends)
        return rows, out, more

    def _scores(self, base, checked, X, y, classes, splits, candidates, params, fit_time):
        """scikit-learn's per-(setting, fold) records of `params` ((F, M, ...) weights
        and biases) scored on each fold's held-out examples: accuracy (the default) for
        every setting of a fold at once, any other scorer model by model."""
        scores = np.full((len(candidates), len(splits)), np.nan)
        times = np.zeros_like(scores)
        models = [clone(base).set_params(**candidate) for candidate in candidates]
        for model in models:
            model.classes_, model.n_features_in_ = classes, checked.n_features_in_
            if hasattr(checked, "feature_names_in_"):
                model.feature_names_in_ = checked.feature_names_in_
        for f, (_, test) in enumerate(splits):
            began, held_out = time.perf_counter(), _rows(X, test)
            finite = np.isfinite(params[0][f]).all(axis=(1, 2)) & np.isfinite(params[1][f]).all(1)
            healthy = np.flatnonzero(finite).tolist()
            fitted = [models[c]._set_weights(params[0][f, c], params[1][f, c]) for c in healthy]
            if self.scoring in (None, "accuracy"):
                scores[healthy, f] = _accuracies(fitted, np.asarray(held_out), y[test])
            else:
                scores[healthy, f] = [self.scorer_(model, held_out, y[test]) for model in fitted]
            times[:, f] = (time.perf_counter() - began) / len(candidates)
            if len(healthy) < len(candidates):
                if isinstance(self.error_score, str) and self.error_score == "raise":
                    raise ValueError(f"training diverged on fold {f}")
                scores[~finite, f] = self.error_score
        return [{"test_scores": scores[c, f], "n_test_samples": len(test), "fit_time": fit_time,
                 "score_time": times[c, f], "fit_error": None}
                for c in range(len(candidates)) for f, (_, test) in enumerate(splits)]  # fmt: skip


def _accuracies(models: list, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each fitted model's `score` (accuracy) on (X, y), their scores in one product."""
    if not models:
        return np.zeros(0)
    coef = np.concatenate([model.coef_ for model in models])  # (sum of scores, features)
    scores = X @ coef.T + np.concatenate([model.intercept_ for model in models])
    per_model = scores.reshape(len(X), len(models), -1)
    if per_model.shape[2] == 1:  # two classes: one score each, as decision_function gives
        per_model = np.concatenate([np.zeros_like(per_model), per_model], axis=2)
    hits = models[0].classes_[host.predicted(per_model)] == y[:, None]
    return hits.mean(axis=0)


def _restarted(folds, state, kept: np.ndarray, steps: int, restart_schedule):
    """The state of the `kept` settings (padded again), its cosine starting over `steps`."""
    import jax

    pad = -len(kept) % len(folds.devices)
    kept = np.concatenate([kept, kept[-1:].repeat(pad)])
    leaves, treedef = jax.tree_util.tree_flatten(state)
    host = [np.asarray(leaf)[:, kept] for leaf in leaves]
    if folds.base.schedule == "cosine":
        host = restart_schedule(host, folds.descent, steps)
    return folds.spread(jax.tree_util.tree_unflatten(treedef, [jax.numpy.asarray(a) for a in host]))


def _rows(X, rows: np.ndarray):
    """`rows` of X, a NumPy array or a pandas frame (its names kept for the scorer)."""
    return X.iloc[rows] if hasattr(X, "iloc") else np.asarray(X)[rows]
