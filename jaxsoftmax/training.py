"""The training engine: one SGD step for one model, vmapped over a sweep, scanned over steps.

Everything in this module is a pure function of arrays. The host calls
`run_chunk` once per chunk of steps; inside it `lax.scan` runs windows of
`window_steps` steps, each followed by an evaluation on the full test set.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxsoftmax import model


class TrainState(NamedTuple):
    """Everything that changes during training, for one model or (vmapped) a sweep of them.

    Attributes:
      params: model parameters; with a leading sweep axis of size K in a sweep.
      opt_state: optax state; carries the learning rate as an array, so a sweep
        holds one learning rate per model and a new value never recompiles.
    """

    params: model.Params
    opt_state: optax.OptState


class DeviceData(NamedTuple):
    """A dataset on the device, images still uint8 and flattened.

    Attributes:
      train_images: uint8 (num_train, num_features).
      train_labels: int32 (num_train,).
      test_images: uint8 (num_test, num_features).
      test_labels: int32 (num_test,).
    """

    train_images: jax.Array
    train_labels: jax.Array
    test_images: jax.Array
    test_labels: jax.Array


class Metrics(NamedTuple):
    """Loss (the scaled objective) and accuracy; leading axes depend on where they come from."""

    loss: jax.Array
    accuracy: jax.Array


class Histogram(NamedTuple):
    """A histogram in TensorBoard's form; leading axes depend on where it comes from.

    Attributes:
      min, max, num, sum, sum_squares: summary statistics of the values.
      bucket_limits: (..., B) right edge of each bucket.
      bucket_counts: (..., B) values in each bucket.
    """

    min: jax.Array
    max: jax.Array
    num: jax.Array
    sum: jax.Array
    sum_squares: jax.Array
    bucket_limits: jax.Array
    bucket_counts: jax.Array


def histogram(values: jax.Array, num_buckets: int) -> Histogram:
    """Histograms an array on the device: `num_buckets` equal buckets from its min to its max."""
    values = values.ravel()
    low, high = values.min(), values.max()
    # All values equal (e.g. zero-initialised weights): one narrow bucket range around them.
    upper = jnp.maximum(high, low + 1e-6 * (1.0 + jnp.abs(low)))
    edges = jnp.linspace(low, upper, num_buckets + 1)
    counts, _ = jnp.histogram(values, bins=edges)
    return Histogram(
        min=low,
        max=high,
        num=jnp.float32(values.size),
        sum=values.sum(),
        sum_squares=jnp.square(values).sum(),
        bucket_limits=edges[1:],
        bucket_counts=counts.astype(jnp.float32),
    )


def parameter_histograms(params: model.Params, num_buckets: int) -> dict[str, Histogram]:
    """Histograms of one model's `weights` and `biases`."""
    return {
        "weights": histogram(params["w"], num_buckets),
        "biases": histogram(params["b"], num_buckets),
    }


def optimizer(learning_rate: float | jax.Array = 0.0) -> optax.GradientTransformation:
    """Plain gradient descent with the learning rate held in the optimiser state.

    `update` reads the learning rate from the state, so one transformation serves
    every model of a sweep; the argument only matters for `init`.
    """
    return optax.inject_hyperparams(optax.sgd)(learning_rate=learning_rate)


def init_state(params: model.Params, learning_rate: float | jax.Array) -> TrainState:
    """The training state of one model; `jax.vmap` it over learning rates for a sweep."""
    return TrainState(params, optimizer(learning_rate).init(params))


def train_step(
    state: TrainState, inputs: jax.Array, labels: jax.Array, loss_scale: float | jax.Array
) -> tuple[TrainState, Metrics]:
    """One gradient descent step of one model.

    Args:
      state: the model's training state.
      inputs: float32 (batch, num_features), pixels in [0, 1].
      labels: int32 (batch,).
      loss_scale: multiplier of the mean cross-entropy.

    Returns:
      The new state, and the loss and accuracy on this batch before the step.
    """
    with jax.named_scope("train"):
        grad_fn = jax.value_and_grad(model.objective, has_aux=True)
        (loss, batch_accuracy), grads = grad_fn(state.params, inputs, labels, loss_scale)
        updates, opt_state = optimizer().update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
    return TrainState(params, opt_state), Metrics(loss, batch_accuracy)


# The sweep: every model takes its step on the same batch.
sweep_step = jax.vmap(train_step, in_axes=(0, None, None, None))


def evaluate(
    params: model.Params, inputs: jax.Array, labels: jax.Array, loss_scale: float | jax.Array
) -> Metrics:
    """Loss and accuracy of one model on a whole split (inputs float32 (N, features))."""
    return Metrics(*model.objective(params, inputs, labels, loss_scale))


sweep_evaluate = jax.vmap(evaluate, in_axes=(0, None, None, None))


def epoch_permutation(shuffle_key: jax.Array, epoch: jax.Array, num_examples: int) -> jax.Array:
    """The order in which an epoch visits the training set: a function of (key, epoch) only."""
    return jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), num_examples)


@functools.partial(
    jax.jit, static_argnames=("num_windows", "window_steps", "batch_size", "histogram_buckets")
)
def run_chunk(
    state: TrainState,
    start_step: jax.Array,
    data: DeviceData,
    shuffle_key: jax.Array,
    loss_scale: jax.Array,
    *,
    num_windows: int,
    window_steps: int,
    batch_size: int,
    histogram_buckets: int = 0,
) -> tuple[TrainState, Metrics, Metrics, dict[str, Histogram] | None]:
    """Trains a sweep for `num_windows * window_steps` steps, evaluating after each window.

    Minibatches are drawn without replacement: epoch `e` visits the training set in
    the order `epoch_permutation(shuffle_key, e)`, `batch_size` examples a step,
    dropping the remainder. A step's batch depends only on the key and the step
    number, so chunking never changes results.

    Args:
      state: the sweep's state, leaves with a leading axis of size K.
      start_step: int32 scalar, the number of steps already taken.
      data: the dataset on the device.
      shuffle_key: the key that orders the minibatches.
      loss_scale: float32 scalar, multiplier of the mean cross-entropy.
      num_windows: evaluation windows in this chunk (static).
      window_steps: training steps per window (static).
      batch_size: examples per step (static).
      histogram_buckets: if positive, also histogram every model's weights and
        biases after each window, on the device (static).

    Returns:
      The new state; training metrics of shape (num_windows, window_steps, K);
      test metrics of shape (num_windows, K), measured after each window's last
      step; and parameter histograms with leading axes (num_windows, K), or None.
    """
    num_train = data.train_images.shape[0]
    steps_per_epoch = num_train // batch_size
    test_inputs = model.scale_images(data.test_images)

    def one_step(carry, step):
        state, order = carry
        epoch, position = jnp.divmod(step, steps_per_epoch)
        order = jax.lax.cond(
            position == 0,
            lambda: epoch_permutation(shuffle_key, epoch, num_train),
            lambda: order,
        )
        indices = jax.lax.dynamic_slice_in_dim(order, position * batch_size, batch_size)
        inputs = model.scale_images(data.train_images[indices])
        state, metrics = sweep_step(state, inputs, data.train_labels[indices], loss_scale)
        return (state, order), metrics

    def one_window(carry, window_start):
        steps = window_start + jnp.arange(window_steps)
        carry, train_metrics = jax.lax.scan(one_step, carry, steps)
        params = carry[0].params
        test_metrics = sweep_evaluate(params, test_inputs, data.test_labels, loss_scale)
        histograms = None
        if histogram_buckets:
            per_model = functools.partial(parameter_histograms, num_buckets=histogram_buckets)
            histograms = jax.vmap(per_model)(params)
        return carry, (train_metrics, test_metrics, histograms)

    order = epoch_permutation(shuffle_key, start_step // steps_per_epoch, num_train)
    window_starts = start_step + window_steps * jnp.arange(num_windows)
    (state, _), (train_metrics, test_metrics, histograms) = jax.lax.scan(
        one_window, (state, order), window_starts
    )
    return state, train_metrics, test_metrics, histograms
