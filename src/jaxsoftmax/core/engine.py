"""The compiled engine: one SGD step for one model, vmapped over a sweep, scanned over steps.

Everything in this module is a pure function of arrays. The host loop (`loop.SweepRun`)
calls `run_chunk` once per chunk of steps; inside it `lax.scan` runs windows of
`window_steps` steps, each followed by an evaluation on the full test set.

What shapes a compiled program besides array shapes is passed in explicitly and
statically: the weight `layout` of the sweep and the parts of its gradient descent
(`GradientDescent`). Nothing here reads the backend, flags or the environment.
"""

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import optax

from jaxsoftmax.core import model
from jaxsoftmax.core.batches import batch_indices, init_key, shuffle_key
from jaxsoftmax.core.evaluation import Metrics, grid_evaluate
from jaxsoftmax.core.histograms import Histogram, parameter_histograms
from jaxsoftmax.core.layouts import CLASS_MAJOR, FEATURE_MAJOR, LAYOUTS, to_layout  # noqa: F401
from jaxsoftmax.core.optimizer import GradientDescent, gradient_descent


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
    """A dataset on the device, images still uint8 and flattened. A split with no
    examples is not evaluated (a search evaluates the validation split alone).

    Attributes:
      train_images: uint8 (num_train, num_features).
      train_labels: int32 (num_train,).
      test_images: uint8 (num_test, num_features).
      test_labels: int32 (num_test,).
      validation_images: uint8 (num_validation, num_features), held out of training.
      validation_labels: int32 (num_validation,).
      train_weights: float32 (num_train,), each training example's weight in the loss;
        empty: unweighted (the batch mean of the cross-entropy, a program without weights).
    """

    train_images: jax.Array
    train_labels: jax.Array
    test_images: jax.Array
    test_labels: jax.Array
    validation_images: jax.Array
    validation_labels: jax.Array
    train_weights: jax.Array

    def evaluated(self) -> dict[str, tuple[jax.Array, jax.Array]]:
        """{split: (images, labels)} of the splits with examples: `test`, `validation`."""
        splits = {
            "test": (self.test_images, self.test_labels),
            "validation": (self.validation_images, self.validation_labels),
        }
        return {name: split for name, split in splits.items() if split[0].shape[0]}


def init_state(
    params: model.Params,
    learning_rate: float | jax.Array,
    decay_steps: int | jax.Array = 0,
    weight_decay: float | jax.Array | None = None,
    momentum: float | jax.Array | None = None,
) -> TrainState:
    """The training state of one model; `jax.vmap` it over hyperparameters for a sweep."""
    transformation = gradient_descent(learning_rate, decay_steps, weight_decay, momentum)
    return TrainState(params, transformation.init(params))


def train_step(
    state: TrainState,
    inputs: jax.Array,
    labels: jax.Array,
    loss_scale: float | jax.Array,
    optimizer: optax.GradientTransformation,
    objective: Callable[..., tuple[jax.Array, jax.Array]] = model.objective,
    weights: jax.Array | None = None,
) -> tuple[TrainState, Metrics]:
    """One step of one model with `optimizer`, which made `state.opt_state`.

    Args:
      state: the model's training state.
      inputs: float32 (batch, num_features), pixels in [0, 1].
      labels: int32 (batch,).
      loss_scale: multiplier of the mean cross-entropy.
      optimizer: any optax transformation; for a sweep, `GradientDescent.transformation()`,
        whose hyperparameters are read from the state.
      objective: `model.objective`, or `model.class_major_objective` for a state
        whose weights (and anything shaped like them) are held class-major.
      weights: float32 (batch,), each example's weight in the loss, or None (each 1).

    Returns:
      The new state, and the loss and accuracy on this batch before the step.
    """
    with jax.named_scope("train"):
        grad_fn = jax.value_and_grad(objective, has_aux=True)
        (loss, batch_accuracy), grads = grad_fn(state.params, inputs, labels, loss_scale, weights)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
    return TrainState(params, opt_state), Metrics(loss, batch_accuracy)


def sweep_step(
    state: TrainState,
    inputs: jax.Array,
    labels: jax.Array,
    loss_scale: float | jax.Array,
    weights: jax.Array | None = None,
    *,
    descent: GradientDescent,
    layout: str,
) -> tuple[TrainState, Metrics]:
    """`train_step` vmapped over a sweep (state in `layout`) on the same batch (and its
    examples' `weights`, or None).

    Where the weights are class-major, so are the logits (`model.class_major_objective`):
    on a CPU that is about 1.2x the model-steps/s at K=3 and K=30 of computing them
    from weights turned back to (features, classes) every step, and the same at K=300.

    Returns the new state and metrics of shape (K,).
    """
    objective = model.class_major_objective if layout == CLASS_MAJOR else model.objective
    step = functools.partial(train_step, optimizer=descent.transformation(), objective=objective)
    return jax.vmap(lambda one: step(one, inputs, labels, loss_scale, weights=weights))(state)


def _squeeze(tree):
    """Drops a leading axis of size 1 from every leaf."""
    return jax.tree_util.tree_map(lambda leaf: leaf[0], tree)


def _unsqueeze(tree):
    """Adds a leading axis of size 1 to every leaf."""
    return jax.tree_util.tree_map(lambda leaf: leaf[None], tree)


def per_seed(
    step, state: TrainState, inputs, labels, loss_scale, weights=None
) -> tuple[TrainState, Metrics]:
    """A `sweep_step` (`step`, its options bound) for a grid: S seeds of M models each,
    one batch per seed.

    Args:
      state: leading axes (S, M), in the step's layout.
      inputs: float32 (S, batch, features), the batch of each seed.
      labels: int32 (S, batch).
      weights: float32 (S, batch), the examples' weights, or None.

    Returns the new state and metrics of shape (S, M).

    With one seed, `run_chunk` calls `sweep_step` on the state without its seeds
    axis instead, so the M models share one matrix product and the loop never
    reshapes the state.
    """
    return jax.vmap(step, in_axes=(0, 0, 0, None, 0))(state, inputs, labels, loss_scale, weights)


@functools.partial(
    jax.jit,
    static_argnames=(
        "num_windows", "window_steps", "batch_size", "histogram_buckets", "descent", "layout",
    ),
)  # fmt: skip
def run_chunk(
    state: TrainState,
    start_step: jax.Array,
    data: DeviceData,
    seeds: jax.Array,
    loss_scale: jax.Array,
    *,
    num_windows: int,
    window_steps: int,
    batch_size: int,
    descent: GradientDescent,
    layout: str,
    histogram_buckets: int = 0,
) -> tuple[TrainState, Metrics, dict[str, Metrics], dict[str, Histogram] | None]:
    """Trains a grid for `num_windows * window_steps` steps, evaluating after each window.

    Args:
      state: the grid's state, S seeds x M models (leading axes), in `layout`.
      start_step, data: int32 scalar, the steps already taken; the dataset on the device.
      seeds: int32 (S,), the seed of each row of models: it orders their minibatches.
      loss_scale: float32 scalar, multiplier of the mean cross-entropy.
      num_windows, window_steps, batch_size: windows, steps per window, examples per step.
      descent, layout: the gradient descent's parts that made `state`; its weights' layout.
      histogram_buckets: if positive, also every model's parameter histograms per window.
      (All keyword arguments are static.)

    Returns:
      The new state; training metrics (num_windows, window_steps, S, M); {split: metrics
      (num_windows, S, M) after each window} for each split evaluated (see
      `DeviceData.evaluated`); histograms (num_windows, S, M, ...) or None.
    """
    evaluated = {k: (model.scale_images(x), y) for k, (x, y) in data.evaluated().items()}
    batches = _chunk_batches(seeds, start_step, num_windows, window_steps, batch_size,
                             data.train_images.shape[0])  # fmt: skip
    # With one seed the loop carries the state without the seeds axis: reshaping it in every
    # step made XLA copy all the weights once a step (K=300 on a CPU: 2.86 -> 2.5 s, 300 steps).
    one_seed = seeds.shape[0] == 1
    step = functools.partial(sweep_step, descent=descent, layout=layout)
    step = step if one_seed else functools.partial(per_seed, step)

    def one_step(state, indices):
        batch = _batch(data, indices[0] if one_seed else indices)
        return step(state, *batch[:2], loss_scale, batch[2])

    def one_window(state, window_batches):
        state, train_metrics = jax.lax.scan(one_step, state, window_batches)
        params = _unsqueeze(state.params) if one_seed else state.params
        evaluations = {
            name: grid_evaluate(params, inputs, labels, loss_scale, layout)
            for name, (inputs, labels) in evaluated.items()
        }
        histograms = _histograms(params, histogram_buckets)
        if one_seed:
            train_metrics = jax.tree_util.tree_map(lambda leaf: leaf[:, None], train_metrics)
        return state, (train_metrics, evaluations, histograms)

    state, outputs = jax.lax.scan(one_window, _squeeze(state) if one_seed else state, batches)
    return (_unsqueeze(state) if one_seed else state), *outputs


def _batch(data: DeviceData, indices: jax.Array) -> tuple:
    """The inputs, labels and weights (None for unweighted data: then the program is the
    one without weights) of the training examples at `indices`, of any shape."""
    inputs = model.scale_images(data.train_images[indices.reshape(-1)])
    weights = data.train_weights[indices] if data.train_weights.shape[0] else None
    return inputs.reshape(*indices.shape, -1), data.train_labels[indices], weights


def _histograms(params: model.Params, num_buckets: int) -> dict[str, Histogram] | None:
    """Every model's parameter histograms (leading axes S, M), or None for 0 buckets."""
    if not num_buckets:
        return None
    per_model = functools.partial(parameter_histograms, num_buckets=num_buckets)
    return jax.vmap(jax.vmap(per_model))(params)


def _chunk_batches(seeds, start_step, num_windows, window_steps, batch_size, num_train):
    """The examples of every step of a chunk, for each seed (from `batch_indices`, computed
    once per chunk, so the scanned step does no bookkeeping of its own).

    Returns:
      int32 (num_windows, window_steps, S, batch_size).
    """
    num_steps = num_windows * window_steps

    def seed_batches(seed):
        return batch_indices(shuffle_key(seed), start_step, num_steps, num_train, batch_size)

    return (
        jax.vmap(seed_batches)(seeds)
        .reshape(seeds.shape[0], num_windows, window_steps, batch_size)
        .transpose(1, 2, 0, 3)
    )


@functools.partial(
    jax.jit,
    static_argnames=(
        "num_features", "num_classes", "init_scale", "cosine_steps", "descent", "layout",
        "target",
    ),
)  # fmt: skip
def init_grid(
    seeds: jax.Array,
    learning_rates: jax.Array,
    weight_decays: jax.Array,
    momenta: jax.Array,
    *,
    num_features: int,
    num_classes: int,
    init_scale: float,
    cosine_steps: int,
    descent: GradientDescent,
    layout: str,
    target: jax.sharding.Sharding | None = None,
) -> TrainState:
    """The initial state of S seeds x M settings, leading axes (S, M), in `layout`.

    Args:
      seeds: int32 (S,): each seed's initial weights (with `init_scale`) come from it.
      learning_rates, weight_decays, momenta: float32 (M,), each setting's values.
      num_features, num_classes: the model's shape.
      init_scale: standard deviation of random initial weights; 0 gives zeros.
      cosine_steps: steps over which the step size decays along a cosine; 0: constant.
      descent: which optional parts the gradient descent holds.
      layout: how the state holds its weights.
      target: the sharding of the state, or None.
    """

    def one_seed(seed):
        params = model.init_params(num_features, num_classes, key=init_key(seed), scale=init_scale)

        def one_setting(rate, decay, trace):
            state = init_state(
                params, rate, cosine_steps, decay if descent.weight_decay else None,
                trace if descent.momentum else None,
            )  # fmt: skip
            return to_layout(state, layout)

        return jax.vmap(one_setting)(learning_rates, weight_decays, momenta)

    state = jax.vmap(one_seed)(seeds)
    return jax.lax.with_sharding_constraint(state, target) if target is not None else state
