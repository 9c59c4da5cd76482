"""`SoftmaxClassifier`: multinomial logistic regression trained by jaxsoftmax's compiled
minibatch SGD, as a scikit-learn estimator.

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), js.SoftmaxClassifier()).fit(X, y)

Features are taken as they are (scaling them is the user's choice, as in scikit-learn);
labels may be any values (`classes_`). A fitted classifier holds NumPy arrays only
(`coef_`, `intercept_`, `classes_`): it pickles small, and predicts in a process that
never imports JAX.
"""

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from jaxsoftmax.core import host

EPOCHS = 5  # max_iter=None: this many epochs,
MIN_STEPS = 500  # or as many as make this many steps on a small dataset


class SoftmaxClassifier(ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression (softmax) trained by minibatch SGD with JAX.

    Parameters:
      learning_rate: the SGD step size on the mean cross-entropy (the tutorial's 0.005 on
        its loss of 100 x the mean cross-entropy is 0.5 here).
      max_iter: epochs over the training data; None: EPOCHS, or on a small dataset as
        many as make MIN_STEPS steps.
      batch_size: examples per step (all of them where there are fewer).
      alpha: L2 penalty: `alpha * W` is added to the weights' gradient (not the biases').
      momentum: SGD's heavy-ball momentum, in [0, 1).
      schedule: `cosine`: the step size falls along a cosine to 0 over the epochs, so
        that training ends on a stable iterate; or `constant`.
      random_state: seeds the minibatch order (an int; None: 0). The weights start at 0.

    Attributes:
      classes_: the labels, sorted. coef_: (n_classes, n_features), or (1, n_features)
      for two classes, as scikit-learn's LogisticRegression; intercept_: (n_classes,) or
      (1,). n_features_in_, feature_names_in_ (for named columns), n_iter_ (epochs run).
    """

    def __init__(
        self,
        learning_rate: float = 1.0,
        max_iter: int | None = None,
        batch_size: int = 100,
        alpha: float = 0.0,
        momentum: float = 0.0,
        schedule: str = "cosine",
        random_state: int | None = None,
    ):
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.alpha = alpha
        self.momentum = momentum
        self.schedule = schedule
        self.random_state = random_state

    def fit(self, X, y):
        """Trains on (X, y) from zero weights: `max_iter` epochs of minibatch SGD."""
        from jaxsoftmax.data.dataset import make_dataset
        from jaxsoftmax.sweep.train import train_sweep

        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        self.classes_, labels = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"SoftmaxClassifier needs at least 2 classes to tell apart; y holds 1 class "
                f"({self.classes_[0]!r})"
            )
        dataset = make_dataset(train_images=X.astype(np.float32), train_labels=labels,
                               num_classes=len(self.classes_), origin="fit")  # fmt: skip
        config = self._config(len(X))
        result = train_sweep(dataset, config, keep_params=True)
        w, b = result.params["w"][0], result.params["b"][0]
        if result.diverged_at[0] or not (np.isfinite(w).all() and np.isfinite(b).all()):
            raise ValueError(
                f"training diverged at step {result.diverged_at[0]}; use a smaller "
                "learning_rate, or scale the features (StandardScaler)"
            )
        if len(self.classes_) == 2:  # one score, as LogisticRegression: class 1 against 0
            w, b = w[:, 1:] - w[:, :1], b[1:] - b[:1]
        self.coef_, self.intercept_ = w.T.astype(np.float64), b.astype(np.float64)
        self.n_iter_ = config.steps // max(1, len(X) // config.batch_size)  # epochs run
        return self

    def _config(self, examples: int):
        """The one-model sweep `fit` trains (parameters checked where SweepConfig checks)."""
        from jaxsoftmax.errors import ConfigError
        from jaxsoftmax.sweep.config import SweepConfig, check_count

        batch = min(check_count("batch_size", self.batch_size), examples)
        per_epoch = max(1, examples // batch)
        if self.max_iter is None:
            epochs = max(EPOCHS, -(-MIN_STEPS // per_epoch))
        else:
            epochs = check_count("max_iter", self.max_iter)
        steps = epochs * per_epoch
        if self.random_state is not None and not isinstance(self.random_state, int | np.integer):
            raise ConfigError(f"random_state must be an int or None, got {self.random_state!r}")
        return SweepConfig(
            learning_rates=(self.learning_rate,), weight_decays=(self.alpha,),
            momenta=(self.momentum,), steps=steps, batch_size=batch, eval_every=steps,
            loss_scale=1.0, schedule=self.schedule, seed=int(self.random_state or 0),
            evaluate_test=False,
        )  # fmt: skip

    def decision_function(self, X) -> np.ndarray:
        """The scores `X @ coef_.T + intercept_`: (n_samples, n_classes), or (n_samples,)
        for two classes (positive: `classes_[1]`)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        scores = X @ self.coef_.T + self.intercept_
        return scores.ravel() if scores.shape[1] == 1 else scores

    def _logits(self, X) -> np.ndarray:
        scores = self.decision_function(X)
        if scores.ndim == 1:  # two classes: softmax of (0, score) is the logistic of score
            scores = np.stack([np.zeros_like(scores), scores], axis=1)
        return scores

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, (n_samples, n_classes), columns in `classes_` order."""
        return host.softmax(self._logits(X))

    def predict_log_proba(self, X) -> np.ndarray:
        """The log of `predict_proba`, computed stably."""
        logits = self._logits(X)
        shifted = logits - logits.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    def predict(self, X) -> np.ndarray:
        """The class of the largest score (ties: the first class)."""
        chosen = host.predicted(self._logits(X))
        return self.classes_[chosen]
