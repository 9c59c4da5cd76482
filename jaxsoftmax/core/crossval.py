"""Cross-validation in one program: every fold x setting of a search trained at once.

A fold is a row of indices into one copy of the training examples on the device (not a
copy of its examples); its models see the minibatches that training on the fold alone
would give them: epoch `e` visits the fold's examples in `batches.epoch_permutation`'s
order of that many examples, from the same seed. (`jax.random.bits` of a shorter shape
is a prefix of a longer one's, so one padded sort serves every fold: the padding sorts
last.) A fold whose steps are done, or whose epochs are shorter, keeps its state while
the others train.
"""

import functools

import jax
import jax.numpy as jnp

from jaxsoftmax.core import engine
from jaxsoftmax.core.batches import epoch_keys, shuffle_key, stable_order
from jaxsoftmax.core.optimizer import GradientDescent

PADDING_KEY = 0xFFFFFFFF  # sorts after every fold's own keys (ties go by position)


def fold_order(seed_key: jax.Array, epoch: jax.Array, size: jax.Array, width: int) -> jax.Array:
    """The order in which epoch `epoch` visits a fold of `size` examples (positions in
    its row of `width`): `batches.epoch_permutation(seed_key, epoch, size)`, padded."""
    keys = epoch_keys(seed_key, epoch, width)
    keys = jnp.where(jnp.arange(width) < size, keys, jnp.uint32(PADDING_KEY))
    return stable_order(keys)


@functools.partial(
    jax.jit, static_argnames=("epochs", "epoch_steps", "batch_size", "descent", "layout")
)
def train_folds(
    state: engine.TrainState,
    inputs: jax.Array,
    labels: jax.Array,
    weights: jax.Array,
    folds: jax.Array,
    sizes: jax.Array,
    steps: jax.Array,
    seed: jax.Array,
    loss_scale: jax.Array,
    *,
    epochs: int,
    epoch_steps: int,
    batch_size: int,
    descent: GradientDescent,
    layout: str,
) -> engine.TrainState:
    """Trains F folds x M settings, each fold on its own examples, for its own steps.

    Args:
      state: leading axes (F, M), in `layout`.
      inputs: float32 (N, features), every training example once.
      labels: int32 (N,).
      weights: float32 (F, N), each example's weight in each fold's loss; (F, 0): none.
      folds: int32 (F, width): each fold's training examples (indices into `inputs`),
        the first `sizes[f]` of its row.
      sizes: int32 (F,), examples in each fold.
      steps: int32 (F,), steps each fold trains.
      seed: int32 scalar: orders the minibatches (as `batches.shuffle_key`).
      loss_scale: float32 scalar, multiplier of the mean cross-entropy.
      epochs, epoch_steps: the most epochs and the most steps an epoch of any fold (static).
      batch_size, descent, layout: examples a step; the descent's parts; the layout.

    Returns:
      The final state, axes (F, M).
    """
    key = shuffle_key(seed)
    width = folds.shape[1]
    per_epoch = sizes // batch_size
    weighted = weights.shape[1] > 0
    step = functools.partial(
        engine.per_seed, functools.partial(engine.sweep_step, descent=descent, layout=layout)
    )

    def one_epoch(state, epoch):
        orders = jax.vmap(fold_order, in_axes=(None, None, 0, None))(key, epoch, sizes, width)

        def one_step(state, position):
            columns = jax.lax.dynamic_slice_in_dim(orders, position * batch_size, batch_size, 1)
            indices = jnp.take_along_axis(folds, columns, axis=1)  # (F, batch)
            batch_weights = jnp.take_along_axis(weights, indices, axis=1) if weighted else None
            new, _ = step(state, inputs[indices], labels[indices], loss_scale, batch_weights)
            active = (position < per_epoch) & (epoch * per_epoch + position < steps)
            return _where_active(active, new, state), None

        return jax.lax.scan(one_step, state, jnp.arange(epoch_steps))[0], None

    return jax.lax.scan(one_epoch, state, jnp.arange(epochs))[0]


def _where_active(active: jax.Array, new, old):
    """`new` in the folds (leading axis) where `active`, else `old`."""

    def pick(new_leaf, old_leaf):
        return jnp.where(
            active.reshape(active.shape + (1,) * (new_leaf.ndim - 1)), new_leaf, old_leaf
        )

    return jax.tree_util.tree_map(pick, new, old)
