"""Histograms of parameters computed on the device, in TensorBoard's form."""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxsoftmax.core import model


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
    # jnp.histogram's counts, with its searchsorted comparing each value with every edge
    # (a few dozen) instead of a binary search in a while loop: the same counts, compiled
    # in 0.19 s instead of 0.46 s on the 2-core CPU (K=3, alone).
    index = jnp.searchsorted(edges, values, side="right", method="compare_all")
    index = jnp.where(values == edges[-1], num_buckets, index)  # the last bucket is closed
    counts = jnp.zeros(num_buckets + 1, jnp.float32).at[index].add(1.0)[1:]
    return Histogram(
        min=low,
        max=high,
        num=jnp.float32(values.size),
        sum=values.sum(),
        sum_squares=jnp.square(values).sum(),
        bucket_limits=edges[1:],
        bucket_counts=counts,
    )


def parameter_histograms(params: model.Params, num_buckets: int) -> dict[str, Histogram]:
    """Histograms of one model's `weights` and `biases`."""
    return {
        "weights": histogram(params["w"], num_buckets),
        "biases": histogram(params["b"], num_buckets),
    }
