"""Evaluation against float64 NumPy: the loss and accuracy of every model of a grid on a
whole split, in blocks of examples that do and do not divide the split, in both layouts,
and through a real sweep at the library's own block size.

The oracle (`numpy_metrics`) is written here from the definitions: the mean over examples
of minus the log of the softmax probability of the label, times the loss scale; accuracy
the fraction of examples whose largest logit (the first of equal ones) is at the label.
"""

import dataclasses

import jax
import numpy as np
import pytest

from jaxsoftmax.core import evaluation
from jaxsoftmax.core.layouts import CLASS_MAJOR, LAYOUTS
from jaxsoftmax.sweep.config import SweepConfig
from jaxsoftmax.sweep.train import train_sweep

NUM_EXAMPLES = 997  # prime: no block size but 1 and itself divides it


def numpy_metrics(weights, biases, images, labels, loss_scale):
    """Float64 loss and accuracy of each model.

    Args:
      weights: (..., features, classes); biases: (..., classes).
      images: uint8 (N, ...); labels: (N,).

    Returns:
      (loss, accuracy), each of shape weights.shape[:-2].
    """
    inputs = images.reshape(len(images), -1).astype(np.float64) / 255.0
    logits = inputs @ np.float64(weights)  # (..., N, classes): one BLAS product per model
    logits += np.float64(biases)[..., None, :]
    top = logits.max(axis=-1, keepdims=True)
    log_normaliser = top[..., 0] + np.log(np.exp(logits - top).sum(axis=-1))
    picked = np.take_along_axis(logits, np.broadcast_to(labels[:, None], (*logits.shape[:-1], 1)),
                                axis=-1)[..., 0]  # fmt: skip
    loss = loss_scale * (log_normaliser - picked).mean(axis=-1)
    accuracy = (logits.argmax(axis=-1) == labels).mean(axis=-1)
    return loss, accuracy


@pytest.fixture(scope="module")
def split(mnist):
    return mnist.test_images[:NUM_EXAMPLES], mnist.test_labels[:NUM_EXAMPLES].astype(np.int32)


def grid_params(mnist, seeds=2, models=3):
    """Weights (S, M, features, classes) and biases of nearest-class-mean classifiers
    (about 80% accurate, so that dropping any block's hits shows), each model's
    perturbed differently; one model left at zero: its logits all tie, so its
    prediction is class 0 (the first largest logit)."""
    images = mnist.train_images[:5000].reshape(5000, -1) / 255.0
    labels = mnist.train_labels[:5000]
    means = np.stack([images[labels == c].mean(axis=0) for c in range(mnist.num_classes)])
    rng = np.random.default_rng(0)
    shape = (seeds, models, *means.T.shape)
    weights = (4 * means.T + rng.normal(0, 0.3, shape)).astype(np.float32)
    biases = -2 * (means**2).sum(axis=1) + rng.normal(0, 0.5, (*shape[:2], len(means)))
    weights[0, 0], biases[0, 0] = 0.0, 0.0
    return weights, biases.astype(np.float32)


# Blocks of 1 example, 7 (leaving 3 over), 60 (leaving 37), all 997 in one, and more
# than there are: LOGITS_PER_BLOCK // (S * M * classes) examples a block, 60 logits each.
@pytest.mark.parametrize("logits_per_block", [1, 7 * 60, 60 * 60, 997 * 60, 10**9])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_grid_evaluate_is_the_float64_loss_and_accuracy_in_any_blocks(
    mnist, split, monkeypatch, layout, logits_per_block
):
    images, labels = split
    weights, biases = grid_params(mnist)
    monkeypatch.setattr(evaluation, "LOGITS_PER_BLOCK", logits_per_block)
    # Written out, not through `to_layout` (which grid_evaluate uses to read them back).
    held = weights.swapaxes(-1, -2) if layout == CLASS_MAJOR else weights
    params = {"w": held, "b": biases}
    inputs = images.reshape(len(images), -1).astype(np.float32) / 255.0
    # A new function, so a new trace: the block size is read when the evaluation is
    # traced, and JAX's trace cache, keyed by function, would answer with an old one.
    got = jax.jit(lambda *args: evaluation.grid_evaluate(*args, 100.0, layout))(
        params, inputs, labels
    )
    loss, accuracy = numpy_metrics(weights, biases, images, labels, 100.0)
    assert got.loss.shape == got.accuracy.shape == (2, 3)
    np.testing.assert_allclose(got.loss, loss, rtol=2e-6)
    np.testing.assert_allclose(got.accuracy, accuracy, rtol=0, atol=1e-7)
    assert accuracy[0, 0] == np.mean(labels == 0)  # the tie rule: the first class
    assert (accuracy.ravel()[1:] > 0.6).all()  # every block holds hits to lose
    assert len(np.unique(loss)) == loss.size  # the models differ: none swapped


def test_a_loss_scale_multiplies_the_mean_cross_entropy(mnist, split):
    images, labels = split
    weights, biases = grid_params(mnist, seeds=1, models=2)
    inputs = images.reshape(len(images), -1).astype(np.float32) / 255.0
    got = evaluation.grid_evaluate({"w": weights, "b": biases}, inputs, labels, 1.0,
                                   "feature_major")  # fmt: skip
    loss, _ = numpy_metrics(weights, biases, images, labels, 1.0)
    np.testing.assert_allclose(got.loss, loss, rtol=2e-6)


def test_a_sweep_of_100_models_reports_the_float64_metrics_of_its_final_models(mnist):
    """At the library's own block size: 100 models x 10 classes take 6,000 examples a
    block, so the 10,000 test images and 7,001 validation images each leave a block over
    (the path every search of 61 or more trials on a 10,000-image split runs)."""
    assert evaluation.LOGITS_PER_BLOCK // 1000 == 6000
    config = SweepConfig(
        learning_rates=tuple(np.geomspace(1e-4, 0.1, 100).round(7)), steps=8, eval_every=4,
        validation=7001, seed=2,
    )  # fmt: skip
    result = train_sweep(mnist, config)
    _, held_out = mnist.split_validation(config.validation, config.seed)
    labels = mnist.test_labels.astype(np.int64)
    loss, accuracy = numpy_metrics(result.params["w"], result.params["b"], mnist.test_images,
                                   labels, config.loss_scale)  # fmt: skip
    np.testing.assert_allclose(result.test_loss[-1], loss, rtol=1e-5)
    np.testing.assert_allclose(result.test_accuracy[-1], accuracy, rtol=0, atol=1e-6)
    loss, accuracy = numpy_metrics(
        result.params["w"], result.params["b"], mnist.train_images[held_out],
        mnist.train_labels[held_out].astype(np.int64), config.loss_scale,
    )  # fmt: skip
    np.testing.assert_allclose(result.validation_loss[-1], loss, rtol=1e-5)
    np.testing.assert_allclose(result.validation_accuracy[-1], accuracy, rtol=0, atol=1e-6)
    assert np.ptp(accuracy) > 0.1  # the rates train apart: a mix-up of models would show


def train_in_layout(dataset, config, layout):
    from jaxsoftmax.sweep.loop import SweepRun
    from jaxsoftmax.sweep.plan import make_plan

    run = SweepRun.start(dataset, config, make_plan(config, dataset, layout=layout))
    for _ in run:
        pass
    return run.result()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_evaluation_of_a_small_sweep_is_the_float64_one(small, layout):
    """Test and validation metrics after every window, in both layouts, against NumPy on
    the parameters at that step (a run of that many steps: chunking never changes them)."""
    config = SweepConfig(learning_rates=(0.003, 0.02), momenta=(0.0, 0.9), steps=12,
                         eval_every=4, validation=150, seed=1)  # fmt: skip
    result = train_in_layout(small, config, layout)
    np.testing.assert_array_equal(result.eval_steps, [4, 8, 12])
    _, held_out = small.split_validation(config.validation, config.seed)
    for at, step in enumerate(result.eval_steps):
        upto = train_in_layout(small, dataclasses.replace(config, steps=int(step)), layout)
        for split_name, images, labels in (
            ("test", small.test_images, small.test_labels),
            ("validation", small.train_images[held_out], small.train_labels[held_out]),
        ):
            loss, accuracy = numpy_metrics(upto.params["w"], upto.params["b"], images,
                                           labels.astype(np.int64), config.loss_scale)  # fmt: skip
            np.testing.assert_allclose(getattr(result, f"{split_name}_loss")[at], loss, rtol=1e-5)
            np.testing.assert_allclose(getattr(result, f"{split_name}_accuracy")[at], accuracy,
                                       atol=1e-6)  # fmt: skip
