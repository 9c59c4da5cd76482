"""The training engine: one SGD step for one model, vmapped over a sweep, scanned over steps.

Everything in this module is a pure function of arrays. The host calls
`run_chunk` once per chunk of steps; inside it `lax.scan` runs windows of
`window_steps` steps, each followed by an evaluation on the full test set.
"""

import functools
from collections.abc import Callable
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


def cosine_decay(count: jax.Array, decay_steps: jax.Array) -> jax.Array:
    """Step-size multiplier: 1 at step 0, falling along a cosine to 0 at `decay_steps`.

    `decay_steps` 0 means no decay (a constant 1).
    """
    progress = jnp.clip(count / jnp.maximum(decay_steps, 1), 0.0, 1.0)
    return jnp.where(decay_steps > 0, 0.5 * (1.0 + jnp.cos(jnp.pi * progress)), 1.0)


def _weights_only(params: model.Params) -> model.Params:
    return {name: name == "w" for name in params}


def _gradient_descent(
    learning_rate, decay_steps, weight_decay=None, momentum=None
) -> optax.GradientTransformation:
    parts = []
    if weight_decay is not None:
        parts.append(optax.add_decayed_weights(weight_decay, mask=_weights_only))
    parts.append(optax.sgd(learning_rate, momentum=momentum))
    parts.append(optax.scale_by_schedule(lambda count: cosine_decay(count, decay_steps)))
    return optax.chain(*parts)


def optimizer(
    learning_rate: float | jax.Array = 0.0,
    decay_steps: int | jax.Array = 0,
    weight_decay: float | jax.Array | None = None,
    momentum: float | jax.Array | None = None,
) -> optax.GradientTransformation:
    """Gradient descent with its hyperparameters held as arrays in the optimiser state.

    Args:
      learning_rate: the step size (before any decay).
      decay_steps: over how many steps the step size decays to 0 along a cosine;
        0 keeps it constant (the tutorial's plain gradient descent).
      weight_decay: if not None, `weight_decay * w` is added to the gradient of the
        weights (not the biases) before the step: L2 regularisation of strength
        `weight_decay / 2` on the objective. None leaves it out of the program.
      momentum: if not None, heavy-ball momentum (`optax.sgd`'s `momentum`); 0
        behaves as plain gradient descent but keeps a trace. None leaves it out.

    `update` reads every hyperparameter from the state, so one transformation serves
    every model of a sweep and a new value never recompiles; the arguments only
    matter for `init` (and, for the last two, None or not for the program's shape).
    """
    return optax.inject_hyperparams(_gradient_descent)(
        learning_rate=learning_rate,
        decay_steps=decay_steps,
        weight_decay=weight_decay,
        momentum=momentum,
    )


def _optimizer_of(opt_state) -> optax.GradientTransformation:
    """The transformation whose `init` made `opt_state` (which optional parts it holds)."""
    hyperparams = opt_state.hyperparams
    return optimizer(
        weight_decay=0.0 if "weight_decay" in hyperparams else None,
        momentum=0.0 if "momentum" in hyperparams else None,
    )


def init_state(
    params: model.Params,
    learning_rate: float | jax.Array,
    decay_steps: int | jax.Array = 0,
    weight_decay: float | jax.Array | None = None,
    momentum: float | jax.Array | None = None,
) -> TrainState:
    """The training state of one model; `jax.vmap` it over hyperparameters for a sweep."""
    transformation = optimizer(learning_rate, decay_steps, weight_decay, momentum)
    return TrainState(params, transformation.init(params))


def train_step(
    state: TrainState,
    inputs: jax.Array,
    labels: jax.Array,
    loss_scale: float | jax.Array,
    objective: Callable[..., tuple[jax.Array, jax.Array]] = model.objective,
) -> tuple[TrainState, Metrics]:
    """One gradient descent step of one model.

    Args:
      state: the model's training state.
      inputs: float32 (batch, num_features), pixels in [0, 1].
      labels: int32 (batch,).
      loss_scale: multiplier of the mean cross-entropy.
      objective: `model.objective`, or `model.class_major_objective` for a state
        whose weights (and anything shaped like them) are held class-major.

    Returns:
      The new state, and the loss and accuracy on this batch before the step.
    """
    with jax.named_scope("train"):
        grad_fn = jax.value_and_grad(objective, has_aux=True)
        (loss, batch_accuracy), grads = grad_fn(state.params, inputs, labels, loss_scale)
        updates, opt_state = _optimizer_of(state.opt_state).update(
            grads, state.opt_state, state.params
        )
        params = optax.apply_updates(state.params, updates)
    return TrainState(params, opt_state), Metrics(loss, batch_accuracy)


def class_major_layout() -> bool:
    """Whether sweeps hold their weights class-major on this process's default backend.

    On CPU it saves copying the weights of every model every step (K=300: 47% to
    53% of the matrix-multiply peak); on an H100 the plain vmapped layout is faster
    than class-major (K=1000: 5.26 M against 2.26 M model-steps/s, one process).
    See benchmarks/RESULTS.md.
    """
    return jax.default_backend() == "cpu"


def sweep_layout(tree):
    """Converts weight matrices between one model's layout and a sweep's (both ways).

    One model's weights are (features, classes); a sweep of K holds them as
    (K, features, classes), or, where `class_major_layout()`, together with
    optimiser state shaped like them, class-major: (K, classes, features). Then
    XLA's CPU backend computes the weight gradient of all K models as one
    (K * classes, features) matrix that the update consumes in place. Leaves other
    than `w` pass through.
    """
    if not class_major_layout():
        return tree

    def convert(path, leaf):
        is_weights = path and getattr(path[-1], "key", None) == "w"
        # A method, not jnp.swapaxes: host (NumPy) copies stay on the host.
        return leaf.swapaxes(-1, -2) if is_weights else leaf

    return jax.tree_util.tree_map_with_path(convert, tree)


def sweep_step(
    state: TrainState, inputs: jax.Array, labels: jax.Array, loss_scale: float | jax.Array
) -> tuple[TrainState, Metrics]:
    """`train_step` vmapped over a sweep (state in `sweep_layout`) on the same batch.

    Where the weights are class-major, so are the logits (`model.class_major_objective`):
    on a CPU that is about 1.2x the model-steps/s at K=3 and K=30 of computing them
    from weights turned back to (features, classes) every step, and the same at K=300.

    Returns the new state and metrics of shape (K,).
    """
    objective = model.class_major_objective if class_major_layout() else model.objective
    step = functools.partial(train_step, objective=objective)
    return jax.vmap(step, in_axes=(0, None, None, None))(state, inputs, labels, loss_scale)


def _squeeze(tree):
    """Drops a leading axis of size 1 from every leaf."""
    return jax.tree_util.tree_map(lambda leaf: leaf[0], tree)


def _unsqueeze(tree):
    """Adds a leading axis of size 1 to every leaf."""
    return jax.tree_util.tree_map(lambda leaf: leaf[None], tree)


def grid_step(
    state: TrainState, inputs: jax.Array, labels: jax.Array, loss_scale: float | jax.Array
) -> tuple[TrainState, Metrics]:
    """`sweep_step` for a grid: S seeds of M models each, one batch per seed.

    Args:
      state: leading axes (S, M), in `sweep_layout`.
      inputs: float32 (S, batch, features), the batch of each seed.
      labels: int32 (S, batch).

    Returns the new state and metrics of shape (S, M).

    With one seed, `run_chunk` calls `sweep_step` on the state without its seeds
    axis instead, so the M models share one matrix product and the loop never
    reshapes the state.
    """
    return jax.vmap(sweep_step, in_axes=(0, 0, 0, None))(state, inputs, labels, loss_scale)


def evaluate(
    params: model.Params, inputs: jax.Array, labels: jax.Array, loss_scale: float | jax.Array
) -> Metrics:
    """Loss and accuracy of one model on a whole split (inputs float32 (N, features))."""
    return Metrics(*model.objective(params, inputs, labels, loss_scale))


# Logits computed at once by `grid_evaluate`: enough for one wide product, few enough
# (24 MB) that the softmax and argmax over them reuse the cache.
LOGITS_PER_BLOCK = 6_000_000


def grid_evaluate(
    params: model.Params, inputs: jax.Array, labels: jax.Array, loss_scale: float | jax.Array
) -> Metrics:
    """`evaluate` for every model of a grid (params in `sweep_layout`, leading axes (S, M)).

    Every model's logits come from one wide product, (examples, features) x
    (features, S * M * classes), instead of a thin one per model; with many models
    the examples go through in blocks of at most LOGITS_PER_BLOCK logits (K=300
    on a CPU, 10,000 MNIST test images: about 0.31 s instead of 0.44 s).

    Returns:
      Metrics of shape (S, M).
    """
    weights = sweep_layout(params)["w"]  # (S, M, features, classes)
    biases = params["b"][:, :, None, :]  # (S, M, 1, classes)

    def block_sums(block_inputs, block_labels):
        logits = jnp.einsum("nf,smfc->smnc", block_inputs, weights) + biases
        targets = block_labels[None, None, :]
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
        hits = jnp.argmax(logits, axis=-1) == targets
        return losses.sum(axis=-1), hits.sum(axis=-1)

    num_examples, num_features = inputs.shape
    block = max(1, min(num_examples, LOGITS_PER_BLOCK // weights[..., 0, :].size))
    whole = num_examples // block * block
    losses, hits = jax.lax.map(
        lambda pair: block_sums(*pair),
        (inputs[:whole].reshape(-1, block, num_features), labels[:whole].reshape(-1, block)),
    )
    loss_sum, hit_sum = losses.sum(axis=0), hits.sum(axis=0)
    if whole < num_examples:
        losses, hits = block_sums(inputs[whole:], labels[whole:])
        loss_sum, hit_sum = loss_sum + losses, hit_sum + hits
    return Metrics(loss_scale * loss_sum / num_examples, hit_sum / num_examples)


def shuffle_key(seed: int | jax.Array) -> jax.Array:
    """The key that orders the minibatches of a seed."""
    return jax.random.fold_in(jax.random.key(seed), 0)


def init_key(seed: int | jax.Array) -> jax.Array:
    """The key of a seed's random initial weights."""
    return jax.random.fold_in(jax.random.key(seed), 1)


def stable_order(keys: jax.Array) -> jax.Array:
    """The indices that sort uint32 `keys` stably (equal keys keep their order).

    The same as `jax.lax.sort_key_val(keys, arange)[1]`, computed as a radix sort
    of sorts of single uint32 arrays: each pass packs a digit of the keys above the
    position of each element in the order so far. XLA's CPU backend sorts a single
    array of a primitive type several times faster than key-value pairs: for 60,000
    keys, two passes take about 4.5 ms instead of 12.
    """
    n = keys.shape[0]
    index_bits = max(1, (n - 1).bit_length())
    digit_bits = 32 - index_bits
    if digit_bits < 8:  # more than 2**24 keys: too many passes
        return jax.lax.sort_key_val(keys, jnp.arange(n, dtype=jnp.int32))[1]
    positions = jnp.arange(n, dtype=jnp.uint32)
    order = positions
    for shift in range(0, 32, digit_bits):  # least significant digit first
        digit = (keys[order] >> shift) & jnp.uint32((1 << min(digit_bits, 32 - shift)) - 1)
        packed = jax.lax.sort((digit << index_bits) | positions)
        order = order[packed & jnp.uint32((1 << index_bits) - 1)]
    return order.astype(jnp.int32)


def epoch_permutation(shuffle_key: jax.Array, epoch: jax.Array, num_examples: int) -> jax.Array:
    """The order in which an epoch visits the training set: a function of (key, epoch) only.

    A stable sort of random 32-bit keys (`stable_order`): ties are rare and broken
    by position, the same way on every run.
    """
    bits = jax.random.bits(jax.random.fold_in(shuffle_key, epoch), (num_examples,), jnp.uint32)
    return stable_order(bits)


def batch_indices(
    shuffle_key: jax.Array,
    start_step: jax.Array,
    num_steps: int,
    num_examples: int,
    batch_size: int,
) -> jax.Array:
    """The training examples of steps `start_step` to `start_step + num_steps - 1`.

    Epoch `e` visits the training set in the order `epoch_permutation(shuffle_key, e)`,
    `batch_size` examples a step, dropping the remainder; so a step's batch depends
    only on the key and the step number, and chunking never changes results.

    Returns:
      int32 (num_steps, batch_size).
    """
    steps_per_epoch = num_examples // batch_size
    steps = start_step + jnp.arange(num_steps)
    first_epoch = start_step // steps_per_epoch
    last_epoch = (start_step + num_steps - 1) // steps_per_epoch

    def order(epoch):
        # A static number of epochs may be touched, but each permutation costs a sort:
        # compute only those these steps use.
        return jax.lax.cond(
            epoch <= last_epoch,
            lambda: epoch_permutation(shuffle_key, epoch, num_examples),
            lambda: jnp.zeros(num_examples, jnp.int32),
        )

    orders = jax.lax.map(order, first_epoch + jnp.arange(num_steps // steps_per_epoch + 2))
    epoch, position = jnp.divmod(steps, steps_per_epoch)
    columns = position[:, None] * batch_size + jnp.arange(batch_size)[None, :]
    return orders[(epoch - first_epoch)[:, None], columns]


@functools.partial(
    jax.jit, static_argnames=("num_windows", "window_steps", "batch_size", "histogram_buckets")
)
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
    histogram_buckets: int = 0,
) -> tuple[TrainState, Metrics, Metrics, dict[str, Histogram] | None]:
    """Trains a grid for `num_windows * window_steps` steps, evaluating after each window.

    Minibatches come from `batch_indices`, computed once per chunk for each seed, so
    the scanned step does no bookkeeping of its own.

    Args:
      state: the grid's state, S seeds x M models (leading axes), in `sweep_layout`.
      start_step: int32 scalar, the number of steps already taken.
      data: the dataset on the device.
      seeds: int32 (S,), the seed of each row of models: it orders their minibatches.
      loss_scale: float32 scalar, multiplier of the mean cross-entropy.
      num_windows: evaluation windows in this chunk (static).
      window_steps: training steps per window (static).
      batch_size: examples per step (static).
      histogram_buckets: if positive, also histogram every model's weights and
        biases after each window, on the device (static).

    Returns:
      The new state; training metrics of shape (num_windows, window_steps, S, M);
      test metrics of shape (num_windows, S, M), measured after each window's last
      step; and parameter histograms with leading axes (num_windows, S, M), or None.
    """
    test_inputs = model.scale_images(data.test_images)
    num_steps = num_windows * window_steps
    num_train = data.train_images.shape[0]

    def seed_batches(seed):
        return batch_indices(shuffle_key(seed), start_step, num_steps, num_train, batch_size)

    # (S, steps, batch) -> (windows, window_steps, S, batch)
    batches = (
        jax.vmap(seed_batches)(seeds)
        .reshape(seeds.shape[0], num_windows, window_steps, batch_size)
        .transpose(1, 2, 0, 3)
    )

    # With one seed the loop carries the state without the seeds axis: reshaping it
    # inside every step made XLA copy all the weights once a step (K=300 on a CPU:
    # 2.86 -> 2.5 s for 300 steps).
    one_seed = seeds.shape[0] == 1

    def one_step(state, indices):
        inputs = model.scale_images(data.train_images[indices.reshape(-1)])
        inputs = inputs.reshape(*indices.shape, -1)
        labels = data.train_labels[indices]
        if one_seed:
            return sweep_step(state, inputs[0], labels[0], loss_scale)
        return grid_step(state, inputs, labels, loss_scale)

    def one_window(state, window_batches):
        state, train_metrics = jax.lax.scan(one_step, state, window_batches)
        params = _unsqueeze(state.params) if one_seed else state.params
        test_metrics = grid_evaluate(params, test_inputs, data.test_labels, loss_scale)
        histograms = None
        if histogram_buckets:
            per_model = functools.partial(parameter_histograms, num_buckets=histogram_buckets)
            histograms = jax.vmap(jax.vmap(per_model))(params)
        if one_seed:
            train_metrics = jax.tree_util.tree_map(lambda leaf: leaf[:, None], train_metrics)
        return state, (train_metrics, test_metrics, histograms)

    if one_seed:
        state = _squeeze(state)
    state, (train_metrics, test_metrics, histograms) = jax.lax.scan(one_window, state, batches)
    if one_seed:
        state = _unsqueeze(state)
    return state, train_metrics, test_metrics, histograms
