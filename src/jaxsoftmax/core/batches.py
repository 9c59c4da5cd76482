"""Minibatch order: which training examples each step of each seed sees.

A step's batch is a function of the seed and the step number alone (no state is
carried), so chunking a run, resuming it, or training its models in slices never
changes which examples a model sees.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np


def shuffle_key(seed: int | jax.Array) -> jax.Array:
    """The key that orders the minibatches of a seed."""
    return jax.random.fold_in(jax.random.key(seed), 0)


def init_key(seed: int | jax.Array) -> jax.Array:
    """The key of a seed's random initial weights."""
    return jax.random.fold_in(jax.random.key(seed), 1)


# A radix pass sorts at least this many bits of the keys; fewer (more than 2**24 keys)
# would take too many passes, and a key-value sort is used instead.
MIN_DIGIT_BITS = 8


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
    if digit_bits < MIN_DIGIT_BITS:  # more than 2**24 keys: too many passes
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
    return stable_order(epoch_keys(shuffle_key, epoch, num_examples))


def epoch_keys(shuffle_key: jax.Array, epoch: jax.Array, num_examples: int) -> jax.Array:
    """The random uint32 keys whose stable order is `epoch_permutation`."""
    return jax.random.bits(jax.random.fold_in(shuffle_key, epoch), (num_examples,), jnp.uint32)


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


def first_batch(seed: int, num_train: int, batch_size: int) -> np.ndarray:
    """Indices of the training examples in the first step's batch of `seed`."""
    # `epoch_permutation`'s stable sort, done by NumPy: only the keys need a program.
    keys = np.asarray(_first_epoch_keys(np.int32(seed), num_train))
    return np.argsort(keys, kind="stable")[:batch_size]


@functools.partial(jax.jit, static_argnums=1)
def _first_epoch_keys(seed: jax.Array, num_train: int) -> jax.Array:
    # One compiled program, not a dozen operations each compiled on first use.
    return epoch_keys(shuffle_key(seed), 0, num_train)
