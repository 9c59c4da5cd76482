"""Evaluating every model of a grid on a whole split, in one wide product per block of
examples."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxsoftmax.core import model
from jaxsoftmax.core.layouts import to_layout


class Metrics(NamedTuple):
    """Loss (the scaled objective) and accuracy; leading axes depend on where they come from."""

    loss: jax.Array
    accuracy: jax.Array


# Logits computed at once by `grid_evaluate`: enough for one wide product, few enough
# (24 MB) that the softmax and argmax over them reuse the cache.
LOGITS_PER_BLOCK = 6_000_000


def grid_evaluate(
    params: model.Params,
    inputs: jax.Array,
    labels: jax.Array,
    loss_scale: float | jax.Array,
    layout: str,
) -> Metrics:
    """Loss and accuracy of every model of a grid on a whole split.

    Args:
      params: leading axes (S, M), in `layout`.
      inputs: float32 (N, features), pixels in [0, 1].
      labels: int32 (N,).
      loss_scale: multiplier of the mean cross-entropy.
      layout: how `params` hold their weights.

    Every model's logits come from one wide product, (examples, features) x
    (features, S * M * classes), instead of a thin one per model; with many models
    the examples go through in blocks of at most LOGITS_PER_BLOCK logits (K=300
    on a CPU, 10,000 MNIST test images: about 0.31 s instead of 0.44 s).

    Returns:
      Metrics of shape (S, M).
    """
    weights = to_layout(params, layout)["w"]  # (S, M, features, classes)
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
