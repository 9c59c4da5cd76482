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
    jax.jit,
    static_argnames=("epochs", "epoch_steps", "batch_size", "descent", "layout", "masked"),
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
    start: jax.Array = 0,
    *,
    epochs: int,
    epoch_steps: int,
    batch_size: int,
    descent: GradientDescent,
    layout: str,
    masked: bool = True,
) -> engine.TrainState:
    """Trains F folds x M settings, each fold on its own examples, for its own steps.

    Args:
      state: leading axes (F, M), in `layout`.
      inputs, labels: float32 (N, features) and int32 (N,), every training example once.
      weights: float32 (F, N), each example's weight in each fold's loss; (F, 0): none.
      folds, sizes: int32 (F, width), each fold's training examples (indices into
        `inputs`), the first `sizes[f]` (int32 (F,)) of its row.
      steps: int32 (F,), the step each fold trains to.
      seed, loss_scale: orders the minibatches (`shuffle_key`); scales the loss.
      start: int32 scalar, the steps every fold has already taken (the state's).
      epochs, epoch_steps: epochs to go through from the first a fold is in at `start`,
        and the most steps an epoch of any fold.
      batch_size, descent, layout: examples a step; the descent's parts; the layout.
      masked: whether some steps of those epochs are not to be trained (folds of other
        steps an epoch or in all, a start or end within an epoch); False leaves the
        choice of which folds train out of the program. (Keywords are static.)

    Returns the final state, axes (F, M).
    """
    key, per_epoch, weighted = shuffle_key(seed), sizes // batch_size, weights.shape[1] > 0
    step = functools.partial(engine.sweep_step, descent=descent, layout=layout)
    step = functools.partial(engine.per_seed, step)

    def one_epoch(state, epoch):
        order = functools.partial(fold_order, key, epoch, width=folds.shape[1])
        orders = jax.vmap(order)(sizes)

        def one_step(state, position):
            columns = jax.lax.dynamic_slice_in_dim(orders, position * batch_size, batch_size, 1)
            indices = jnp.take_along_axis(folds, columns, axis=1)  # (F, batch)
            batch_weights = jnp.take_along_axis(weights, indices, axis=1) if weighted else None
            new, _ = step(state, inputs[indices], labels[indices], loss_scale, batch_weights)
            step_number = epoch * per_epoch + position
            active = (position < per_epoch) & (step_number >= start) & (step_number < steps)
            return (_where_active(active, new, state) if masked else new), None

        return jax.lax.scan(one_step, state, jnp.arange(epoch_steps))[0], None

    first = jnp.min(start // per_epoch)
    return jax.lax.scan(one_epoch, state, first + jnp.arange(epochs))[0]


def _where_active(active: jax.Array, new, old):
    """`new` in the folds (leading axis) where `active`, else `old`."""

    def pick(new_leaf, old_leaf):
        return jnp.where(
            active.reshape(active.shape + (1,) * (new_leaf.ndim - 1)), new_leaf, old_leaf
        )

    return jax.tree_util.tree_map(pick, new, old)
