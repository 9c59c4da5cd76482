"""The model's maths against float64 NumPy oracles."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsoftmax.core import model
from jaxsoftmax.sweep.config import TUTORIAL_LOSS_SCALE


def numpy_loss_and_grads(w, b, inputs, labels, loss_scale):
    """Float64 oracle: loss_scale * mean cross-entropy, and its gradients by hand."""
    w, b, inputs = (np.asarray(a, np.float64) for a in (w, b, inputs))
    logits = inputs @ w + b
    logits = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    onehot = np.eye(w.shape[1])[labels]
    loss = -loss_scale * np.mean(np.sum(onehot * np.log(probs), axis=1))
    dlogits = loss_scale * (probs - onehot) / len(labels)
    return loss, inputs.T @ dlogits, dlogits.sum(axis=0)


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    inputs = rng.random((32, 20), dtype=np.float32)
    labels = rng.integers(0, 5, size=32).astype(np.int32)
    params = {
        "w": rng.normal(0, 0.5, (20, 5)).astype(np.float32),
        "b": rng.normal(0, 0.5, 5).astype(np.float32),
    }
    return params, inputs, labels


def test_gradient_matches_float64_numpy(batch):
    params, inputs, labels = batch
    (loss, _), grads = jax.value_and_grad(model.objective, has_aux=True)(
        params, inputs, labels, 100.0
    )
    want_loss, want_dw, want_db = numpy_loss_and_grads(
        params["w"], params["b"], inputs, labels, 100.0
    )
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    np.testing.assert_allclose(grads["w"], want_dw, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads["b"], want_db, rtol=1e-4, atol=1e-5)


def test_class_major_objective_matches_float64_numpy(batch):
    params, inputs, labels = batch
    class_major = {"w": params["w"].T.copy(), "b": params["b"]}
    (loss, accuracy), grads = jax.value_and_grad(model.class_major_objective, has_aux=True)(
        class_major, inputs, labels, 100.0
    )
    want_loss, want_dw, want_db = numpy_loss_and_grads(
        params["w"], params["b"], inputs, labels, 100.0
    )
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    np.testing.assert_allclose(grads["w"], want_dw.T, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads["b"], want_db, rtol=1e-4, atol=1e-5)
    hits = np.argmax(inputs @ params["w"] + params["b"], axis=1) == labels
    assert accuracy == pytest.approx(hits.mean())


def test_zero_parameters_give_the_tutorials_starting_loss():
    # Uniform predictions over 10 classes: 100 * ln(10) = 230.26, the tutorial's first loss.
    params = model.init_params(784, 10)
    inputs = jnp.ones((4, 784))
    loss, _ = model.objective(params, inputs, jnp.arange(4), TUTORIAL_LOSS_SCALE)
    np.testing.assert_allclose(loss, 100 * np.log(10), rtol=1e-6)


def test_cross_entropy_is_stable_for_extreme_logits():
    logits = jnp.array([[1e4, -1e4, 0.0]])
    assert np.isfinite(model.cross_entropy(logits, jnp.array([1])))
    np.testing.assert_allclose(model.cross_entropy(logits, jnp.array([1])), 2e4, rtol=1e-6)


def test_accuracy_counts_argmax_hits():
    logits = jnp.array([[0.0, 1.0], [2.0, 1.0], [0.0, 3.0], [5.0, 1.0]])
    assert model.accuracy(logits, jnp.array([1, 0, 0, 1])) == 0.5


def test_init_params_zero_and_random():
    zeros = model.init_params(6, 3)
    assert zeros["w"].shape == (6, 3) and zeros["b"].shape == (3,)
    assert not np.any(zeros["w"]) and not np.any(zeros["b"])
    random = model.init_params(6, 3, key=jax.random.key(0), scale=0.01)
    assert 0 < np.abs(random["w"]).max() < 0.1
    np.testing.assert_array_equal(
        random["w"], model.init_params(6, 3, key=jax.random.key(0), scale=0.01)["w"]
    )
    with pytest.raises(ValueError, match="needs a key"):
        model.init_params(6, 3, scale=0.01)


def test_scale_images_maps_uint8_to_unit_interval():
    images = jnp.array([[[0, 255], [51, 102]]], jnp.uint8)
    np.testing.assert_allclose(model.scale_images(images), [[0.0, 1.0, 0.2, 0.4]], rtol=1e-6)
