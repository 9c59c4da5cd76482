"""`js.SoftmaxClassifier` as scikit-learn's users take it: against float64 NumPy gradient
descent, inside a Pipeline and cross-validation, with any labels, pickled into a process
without JAX, and refusing what it cannot fit."""

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import jaxsoftmax as js
from jaxsoftmax.estimators import classifier


def _data(n=240, d=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = (x @ rng.normal(size=(d, classes))).argmax(axis=1)
    return x, y


def numpy_descent(x, y, classes, *, rate, steps, alpha=0.0, momentum=0.0, weights=None):
    """Full-batch gradient descent on the mean cross-entropy in float64, from zeros,
    with L2 on the weights and heavy-ball momentum as optax's sgd applies them; with
    `weights`, on the weighted mean (sum of weight x cross-entropy / sum of weights)."""
    weights = np.ones(len(x)) if weights is None else np.asarray(weights, np.float64)
    share = (weights / weights.mean())[:, None]
    onehot = np.eye(classes)[y]
    w, b = np.zeros((x.shape[1], classes)), np.zeros(classes)
    trace_w, trace_b = np.zeros_like(w), np.zeros_like(b)
    for _ in range(steps):
        logits = x @ w + b
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        grad_w = x.T @ (share * (p - onehot)) / len(x) + alpha * w
        grad_b = (share * (p - onehot)).mean(axis=0)
        trace_w, trace_b = grad_w + momentum * trace_w, grad_b + momentum * trace_b
        w, b = w - rate * trace_w, b - rate * trace_b
    return w, b


@parametrize_with_checks(
    [js.SoftmaxClassifier(max_iter=5)],
    expected_failed_checks=lambda estimator: classifier.EXPECTED_FAILED_CHECKS,
)
def test_scikit_learns_own_estimator_checks_pass(estimator, check):
    """Every check scikit-learn runs on its own classifiers; those expected to fail are
    named with the reason in `classifier.EXPECTED_FAILED_CHECKS`."""
    check(estimator)


@pytest.mark.parametrize(("alpha", "momentum"), [(0.0, 0.0), (0.05, 0.0), (0.0, 0.6)])
def test_a_full_batch_fit_is_float64_gradient_descent(alpha, momentum):
    x, y = _data()
    model = js.SoftmaxClassifier(learning_rate=0.3, max_iter=25, batch_size=len(x), alpha=alpha,
                                 momentum=momentum, schedule="constant").fit(x, y)  # fmt: skip
    w, b = numpy_descent(x, y, 3, rate=0.3, steps=25, alpha=alpha, momentum=momentum)
    np.testing.assert_allclose(model.coef_, w.T, atol=2e-5)
    np.testing.assert_allclose(model.intercept_, b, atol=2e-5)
    logits = x @ w + b
    np.testing.assert_array_equal(model.predict(x), logits.argmax(axis=1))
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict_proba(x), expected, atol=2e-5)
    np.testing.assert_allclose(model.predict_log_proba(x), np.log(expected), atol=1e-4)
    assert (
        model.n_features_in_ == 6 and model.n_iter_ == 25 and model.classes_.tolist() == [0, 1, 2]
    )


def test_sample_weights_count_as_repeated_examples():
    """Whole-number weights on a full batch: float64 descent on the examples repeated
    that many times (0: left out); weights all equal: the unweighted fit, bitwise."""
    x, y = _data()
    counts = np.random.default_rng(1).integers(0, 4, len(x))
    settings = {"learning_rate": 0.3, "max_iter": 25, "schedule": "constant", "alpha": 0.01,
                "momentum": 0.0}  # fmt: skip
    model = js.SoftmaxClassifier(batch_size=len(x), **settings).fit(x, y, sample_weight=counts)
    w, b = numpy_descent(np.repeat(x, counts, axis=0), np.repeat(y, counts), 3, rate=0.3,
                         steps=25, alpha=0.01)  # fmt: skip
    np.testing.assert_allclose(model.coef_, w.T, atol=1e-5)
    np.testing.assert_allclose(model.intercept_, b, atol=1e-5)
    plain = js.SoftmaxClassifier(batch_size=32, **settings).fit(x, y)
    same = js.SoftmaxClassifier(batch_size=32, **settings).fit(x, y, sample_weight=[3.0] * len(x))
    np.testing.assert_array_equal(same.coef_, plain.coef_)


@pytest.mark.parametrize("class_weight", ["balanced", {0: 1.0, 1: 5.0, 2: 0.5}])
def test_class_weights_reweigh_each_class(class_weight):
    """`balanced` (n / (classes x count)) and a dict against float64 descent on the
    reweighted mean; a class weight times a sample weight is their product."""
    x, y = _data()
    counts = np.bincount(y)
    per_class = (len(y) / (3 * counts) if class_weight == "balanced"
                 else np.array([class_weight[k] for k in range(3)]))  # fmt: skip
    sample = np.linspace(0.5, 2.0, len(x))
    settings = {"learning_rate": 0.3, "max_iter": 25, "schedule": "constant", "momentum": 0.0,
                "batch_size": len(x), "class_weight": class_weight}  # fmt: skip
    model = js.SoftmaxClassifier(**settings).fit(x, y, sample_weight=sample)
    w, b = numpy_descent(x, y, 3, rate=0.3, steps=25, weights=per_class[y] * sample)
    np.testing.assert_allclose(model.coef_, w.T, atol=1e-5)
    np.testing.assert_allclose(model.intercept_, b, atol=1e-5)


def test_weights_that_cannot_weigh_are_refused():
    x, y = _data()
    for weights, message in (([1.0] * 3, "sample_weight.shape"), (-np.ones(len(x)), "Negative"),
                             (np.zeros(len(x)), "non-zero")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            js.SoftmaxClassifier(max_iter=1).fit(x, y, sample_weight=weights)
    with pytest.raises(ValueError, match="not in class_weight"):
        js.SoftmaxClassifier(max_iter=1, class_weight={7: 2.0}).fit(x, y)
    with pytest.raises(ValueError, match="balanced"):
        js.SoftmaxClassifier(class_weight="balanced").partial_fit(x, y, classes=[0, 1, 2])


def test_two_classes_of_any_labels_score_as_logistic_regression_does():
    x, y = _data(classes=2)
    labels = np.array(["no", "yes"])[y]
    model = js.SoftmaxClassifier(learning_rate=0.3, max_iter=25, batch_size=len(x), momentum=0,
                                 schedule="constant").fit(x, labels)  # fmt: skip
    w, b = numpy_descent(x, y, 2, rate=0.3, steps=25)
    assert model.classes_.tolist() == ["no", "yes"]
    assert model.coef_.shape == (1, 6) and model.intercept_.shape == (1,)
    score = model.decision_function(x)
    np.testing.assert_allclose(score, x @ (w[:, 1] - w[:, 0]) + b[1] - b[0], atol=2e-5)
    np.testing.assert_allclose(model.predict_proba(x)[:, 1], 1 / (1 + np.exp(-score)), atol=1e-7)
    np.testing.assert_array_equal(model.predict(x), np.where(score > 0, "yes", "no"))


def test_a_pipeline_cross_validates_and_clones():
    x, y = load_digits(return_X_y=True)
    pipeline = make_pipeline(StandardScaler(), js.SoftmaxClassifier(random_state=1))
    assert cross_val_score(pipeline, x, y, cv=3).mean() > 0.9
    copy = clone(pipeline)
    assert copy.get_params()["softmaxclassifier__random_state"] == 1


def test_scikit_learns_grid_search_scores_each_setting_as_cross_validation_does():
    x, y = load_digits(return_X_y=True)
    pipeline = make_pipeline(StandardScaler(), js.SoftmaxClassifier(max_iter=2))
    grid = {"softmaxclassifier__learning_rate": [0.05, 1.0]}
    search = GridSearchCV(pipeline, grid, cv=3).fit(x, y)
    for params, mean in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"],
                            strict=True):  # fmt: skip
        alone = cross_val_score(pipeline.set_params(**params), x, y, cv=3).mean()
        assert mean == pytest.approx(alone, abs=1e-12)
    assert search.best_params_ == {"softmaxclassifier__learning_rate": 1.0}
    assert search.score(x, y) > 0.9


def test_mnist_pixels_in_0_1_reach_the_tutorials_accuracy(mnist):
    """The defaults (chosen by 5-fold cross-validation on the training images) against
    the issue's target, 92.5%, above the tutorial's best, 92.05% (README)."""
    flat = lambda images: images.reshape(len(images), -1).astype(np.float32) / 255  # noqa: E731
    model = js.SoftmaxClassifier().fit(flat(mnist.train_images), mnist.train_labels)
    assert model.n_iter_ == 5
    assert model.score(flat(mnist.test_images), mnist.test_labels) >= 0.925


def test_a_small_dataset_gets_enough_steps_by_default():
    x, y = _data(n=150)  # one batch of 100 an epoch: 500 epochs make the 500 steps
    assert js.SoftmaxClassifier().fit(x, y).n_iter_ == 500
    assert js.SoftmaxClassifier(max_iter=3).fit(x, y).n_iter_ == 3


def test_a_pickled_model_predicts_in_a_process_without_jax(tmp_path):
    x, y = _data()
    model = js.SoftmaxClassifier(max_iter=3).fit(x, np.array(["a", "b", "c"])[y])
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(model))
    np.save(tmp_path / "x.npy", x)
    program = (
        "import pickle, sys, numpy as np\n"
        f"model = pickle.loads(open({str(tmp_path / 'model.pkl')!r}, 'rb').read())\n"
        f"print(' '.join(model.predict(np.load({str(tmp_path / 'x.npy')!r}))))\n"
        "assert 'jax' not in sys.modules, 'jax was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == model.predict(x).tolist()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x": np.full((4, 2), np.nan)}, "NaN"),
        ({"y": np.zeros(4, int)}, "at least 2 classes"),
        ({"y": np.linspace(0, 1, 4)}, "Unknown label type"),
        ({"params": {"max_iter": 0}}, "max_iter"),
        ({"params": {"learning_rate": -1.0}}, "learning rate"),
        ({"params": {"momentum": 1.0}}, "momentum"),
        ({"params": {"schedule": "linear"}}, "schedule"),
        ({"params": {"random_state": "seven"}}, "random_state"),
        ({"params": {"early_stopping": True, "validation_fraction": 1.5}}, "validation_fraction"),
        ({"params": {"early_stopping": True, "n_iter_no_change": 0}}, "n_iter_no_change"),
        ({"params": {"early_stopping": True, "tol": -1.0}}, "tol"),
    ],
)
def test_what_it_cannot_fit_is_refused_with_a_value_error(change, message):
    x, y = np.arange(8.0).reshape(4, 2), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match=message):
        js.SoftmaxClassifier(**change.get("params", {})).fit(change.get("x", x), change.get("y", y))


def test_predicting_before_fitting_or_with_other_columns_is_refused():
    x, y = _data()
    with pytest.raises(NotFittedError):
        js.SoftmaxClassifier().predict(x)
    model = js.SoftmaxClassifier(max_iter=1).fit(x, y)
    with pytest.raises(ValueError, match="features"):
        model.predict(x[:, :4])


def test_early_stopping_stops_by_its_rule_and_trains_on_the_rest_alone():
    """It stops at the first epoch after which the held-out accuracy has not risen by more
    than tol for n_iter_no_change epochs, and its model is then that of a plain fit, for
    as many epochs, on the examples it did not hold out (the same batches, as the split
    keeps their order)."""
    from jaxsoftmax.sweep.config import SweepConfig

    x, y = load_digits(return_X_y=True)
    x = StandardScaler().fit_transform(x)
    settings = {"learning_rate": 0.5, "schedule": "constant", "random_state": 4}
    stopped = js.SoftmaxClassifier(early_stopping=True, max_iter=100, n_iter_no_change=3,
                                   **settings).fit(x, y)  # fmt: skip
    scores, stale, best, stop = stopped.validation_scores_, 0, -np.inf, None
    for epoch, score in enumerate(scores, start=1):
        stale, best = (0, score) if score > best + 1e-4 else (stale + 1, best)
        if stale == 3:
            stop = epoch
            break
    assert stop == stopped.n_iter_ == len(scores) < 100
    dataset = js.make_dataset(train_images=x.astype(np.float32), train_labels=y)
    kept = np.setdiff1d(np.arange(len(x)), SweepConfig(validation=180, seed=4).split(dataset)[1])
    plain = js.SoftmaxClassifier(max_iter=stopped.n_iter_, **settings).fit(x[kept], y[kept])
    np.testing.assert_allclose(stopped.coef_, plain.coef_, atol=1e-6)
    held_out = np.setdiff1d(np.arange(len(x)), kept)
    assert stopped.score(x[held_out], y[held_out]) == pytest.approx(scores[-1], abs=1e-6)


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_warm_start_goes_on_exactly_where_the_last_fit_ended(momentum):
    """fit(3 epochs) then a warm fit(2) is fit(5), bitwise: the weights, the momentum and
    the minibatch order go on; the second fit reports its own epochs."""
    x, y = _data(n=450)
    settings = {"schedule": "constant", "momentum": momentum, "random_state": 2}
    warm = js.SoftmaxClassifier(max_iter=3, warm_start=True, **settings).fit(x, y)
    warm.set_params(max_iter=2).fit(x, y)
    whole = js.SoftmaxClassifier(max_iter=5, **settings).fit(x, y)
    np.testing.assert_array_equal(warm.coef_, whole.coef_)
    np.testing.assert_array_equal(warm.intercept_, whole.intercept_)
    assert warm.n_iter_ == 2
    cold = js.SoftmaxClassifier(max_iter=2, **settings).fit(x, y)
    assert not np.array_equal(cold.coef_, whole.coef_)
    restarted = pickle.loads(pickle.dumps(warm)).fit(x, y)  # the state travels with it
    assert restarted.n_iter_ == 2 and not np.array_equal(restarted.coef_, whole.coef_)


def test_warm_start_refuses_other_data_or_settings():
    x, y = _data(n=450)
    model = js.SoftmaxClassifier(max_iter=1, warm_start=True).fit(x, y)
    with pytest.raises(ValueError, match="same classes and columns"):
        model.fit(x[:, :4], y)
    model = js.SoftmaxClassifier(max_iter=1, warm_start=True).fit(x, y)
    with pytest.raises(ValueError, match="same learning_rate"):
        model.set_params(learning_rate=0.1).fit(x, y)


def test_partial_fit_over_epochs_is_fit_and_refuses_what_does_not_go_on():
    """Three partial_fit calls over the data are fit(3 epochs), bitwise (constant schedule);
    the classes come once, and must hold every label."""
    x, y = _data(n=450)
    pieces = js.SoftmaxClassifier(schedule="constant", random_state=5)
    for _ in range(3):
        pieces.partial_fit(x, y, classes=[0, 1, 2])
    whole = js.SoftmaxClassifier(schedule="constant", random_state=5, max_iter=3).fit(x, y)
    np.testing.assert_array_equal(pieces.coef_, whole.coef_)
    assert pieces.n_iter_ == 1
    with pytest.raises(ValueError, match="needs classes"):
        js.SoftmaxClassifier().partial_fit(x, y)
    with pytest.raises(ValueError, match="outside classes"):
        js.SoftmaxClassifier().partial_fit(x, y, classes=[0, 1])
    with pytest.raises(ValueError, match="not those of the first call"):
        pieces.partial_fit(x, y, classes=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="settings of the first call"):
        pieces.set_params(learning_rate=0.1).partial_fit(x, y)


def test_a_fit_with_a_logdir_writes_what_tensorboard_reads_and_fits_the_same(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    x, y = _data()
    plain = js.SoftmaxClassifier(max_iter=4).fit(x, y)
    logged = js.SoftmaxClassifier(max_iter=4, logdir=str(tmp_path / "fit")).fit(x, y)
    np.testing.assert_array_equal(logged.coef_, plain.coef_)
    assert logged.n_iter_ == plain.n_iter_ == 4
    (run,) = json.loads((tmp_path / "fit" / "results.json").read_text())["runs"]

    def events(*folder):
        found = EventAccumulator(str(tmp_path.joinpath("fit", *folder)),
                                 size_guidance={"scalars": 0, "histograms": 0})  # fmt: skip
        return found.Reload()

    steps = [event.step for event in events(run["name"], "train").Scalars("train/loss")]
    assert steps == list(range(1, 4 * (len(x) // 100) + 1))
    assert sorted(events(run["name"]).Tags()["histograms"]) == ["biases", "weights"]
    assert events().Tags()["graph"]
    with pytest.raises(ValueError, match="logdir logs a fit from zero"):
        js.SoftmaxClassifier(logdir=str(tmp_path / "other")).partial_fit(x, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="logdir logs a fit from zero"):
        js.SoftmaxClassifier(early_stopping=True, logdir=str(tmp_path / "other")).fit(x, y)
    with pytest.raises(ValueError, match="holds"):  # a second fit into the same folder
        js.SoftmaxClassifier(max_iter=4, logdir=str(tmp_path / "fit")).fit(x, y)
