"""The linear softmax classifier: pure functions of a parameter pytree and arrays.

`y = softmax(x @ w + b)`, with x the flattened example: pixels scaled to [0, 1], float
features as they are (`features.to_inputs`).

The default objective reproduces the TensorFlow tutorial this library modernises,
`-reduce_mean(y_ * log(y)) * 1000`: a mean over batch *and* the 10 classes, times
1000, which is 100 times the mean cross-entropy. Hence `loss_scale=100` (the default of
`SweepConfig.loss_scale`): with it the tutorial's learning rates mean what they meant
there. Gradient descent on `loss_scale * mean_cross_entropy` with learning rate `lr`
takes exactly the steps of plain mean cross-entropy with learning rate
`loss_scale * lr`: lr 0.005 on the tutorial's loss is lr 0.5 on plain mean cross-entropy.
"""

from typing import TypedDict

import jax
import jax.numpy as jnp
import optax

from jaxsoftmax.core import features


class Params(TypedDict):
    """Model parameters: `w` of shape (num_features, num_classes), `b` of shape (num_classes,)."""

    w: jax.Array
    b: jax.Array


def init_params(
    num_features: int, num_classes: int, *, key: jax.Array | None = None, scale: float = 0.0
) -> Params:
    """Initial parameters: zeros as in the tutorial, or small normal weights from `key`.

    Args:
      num_features: input size (pixels per image).
      num_classes: output size.
      key: a `jax.random.key`; needed only when `scale` is non-zero.
      scale: standard deviation of the initial weights; 0 gives zeros.

    Returns:
      `{"w": (num_features, num_classes), "b": (num_classes,)}`, float32.
    """
    w = jnp.zeros((num_features, num_classes), jnp.float32)
    if scale:
        if key is None:
            raise ValueError("init_params: a random initialisation (scale != 0) needs a key")
        w = scale * jax.random.normal(key, (num_features, num_classes), jnp.float32)
    return {"w": w, "b": jnp.zeros((num_classes,), jnp.float32)}


def scale_images(images: jax.Array) -> jax.Array:
    """Examples of any shape (batch, ...) to float32 rows (batch, features): uint8 pixels
    into [0, 1], float features as they are (`features.to_inputs`, the one rule)."""
    return features.to_inputs(images)


def logits(params: Params, inputs: jax.Array) -> jax.Array:
    """Unnormalised log-probabilities.

    Args:
      params: model parameters.
      inputs: float32 (batch, num_features), pixels in [0, 1].

    Returns:
      float32 (batch, num_classes).
    """
    with jax.named_scope("softmax_linear_model"):
        return inputs @ params["w"] + params["b"][None, :]


def cross_entropy(
    logits: jax.Array, labels: jax.Array, weights: jax.Array | None = None, axis: int = -1
) -> jax.Array:
    """Mean cross-entropy of integer labels under softmax(logits), computed stably.

    Args:
      logits: (batch, num_classes), or (num_classes, batch) with `axis=0`.
      labels: integer (batch,).
      weights: (batch,), each example's weight: the mean of weight x cross-entropy;
        None: each 1.

    Returns:
      A scalar.
    """
    with jax.named_scope("cross_entropy_loss"):
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels, axis=axis)
        return (losses if weights is None else weights * losses).mean()


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Fraction of rows whose largest logit is at the label. Returns a scalar."""
    with jax.named_scope("accuracy"):
        return (jnp.argmax(logits, axis=-1) == labels).mean()


def objective(
    params: Params,
    inputs: jax.Array,
    labels: jax.Array,
    loss_scale: float,
    weights: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """The training objective `loss_scale * mean cross-entropy`, and the batch accuracy.

    Args:
      params: model parameters.
      inputs: float32 (batch, num_features).
      labels: integer (batch,).
      loss_scale: multiplier of the mean cross-entropy (100 reproduces the tutorial).
      weights: (batch,), each example's weight in the mean (see `cross_entropy`), or None.

    Returns:
      (loss, accuracy), both scalars; differentiate the first with `has_aux=True`.
    """
    batch_logits = logits(params, inputs)
    loss = cross_entropy(batch_logits, labels, weights)
    return loss_scale * loss, accuracy(batch_logits, labels)


def class_major_objective(
    params: Params,
    inputs: jax.Array,
    labels: jax.Array,
    loss_scale: float,
    weights: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """`objective` for weights held class-major: `w` of shape (num_classes, num_features).

    The same function of the same numbers, computed with the logits class-major,
    (num_classes, batch): the forward product then reads the weights in the order
    they are stored and the weight gradient comes out in it, so on a CPU no copy of
    the weights is made each step (see `engine.to_layout`).
    """
    with jax.named_scope("softmax_linear_model"):
        class_logits = params["w"] @ inputs.T + params["b"][:, None]
    loss = cross_entropy(class_logits, labels, weights, axis=0)
    with jax.named_scope("accuracy"):
        hits = jnp.argmax(class_logits, axis=0) == labels
    return loss_scale * loss, hits.mean()
