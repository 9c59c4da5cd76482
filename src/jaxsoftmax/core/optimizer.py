"""Gradient descent as an optax transformation whose hyperparameters are arrays in its state.

A sweep holds one learning rate (and weight decay and momentum) per model as arrays in
the optimiser state (`optax.inject_hyperparams`), so a new value never recompiles; the
parts the descent holds at all are described statically by `GradientDescent`.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxsoftmax.core import model


def cosine_decay(count: jax.Array, decay_steps: jax.Array) -> jax.Array:
    """Step-size multiplier: 1 at step 0, falling along a cosine to 0 at `decay_steps`.

    `decay_steps` 0 means no decay (a constant 1).
    """
    progress = jnp.clip(count / jnp.maximum(decay_steps, 1), 0.0, 1.0)
    return jnp.where(decay_steps > 0, 0.5 * (1.0 + jnp.cos(jnp.pi * progress)), 1.0)


def _weights_only(params: model.Params) -> model.Params:
    return {name: name == "w" for name in params}


def _descent_chain(
    learning_rate, decay_steps, weight_decay=None, momentum=None
) -> optax.GradientTransformation:
    parts = []
    if weight_decay is not None:
        parts.append(optax.add_decayed_weights(weight_decay, mask=_weights_only))
    parts.append(optax.sgd(learning_rate, momentum=momentum))
    parts.append(optax.scale_by_schedule(lambda count: cosine_decay(count, decay_steps)))
    return optax.chain(*parts)


def gradient_descent(
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
    return optax.inject_hyperparams(_descent_chain)(
        learning_rate=learning_rate,
        decay_steps=decay_steps,
        weight_decay=weight_decay,
        momentum=momentum,
    )


class GradientDescent(NamedTuple):
    """Which optional parts a sweep's gradient descent holds: a static description of
    its `gradient_descent`, hashable, so a compiled program can depend on it.

    Attributes:
      weight_decay: whether the optimiser adds `weight_decay * w` to the gradient.
      momentum: whether it keeps a heavy-ball momentum trace.
    """

    weight_decay: bool = False
    momentum: bool = False

    def transformation(self) -> optax.GradientTransformation:
        """The `gradient_descent` with these parts; its hyperparameters come from the state."""
        return gradient_descent(
            weight_decay=0.0 if self.weight_decay else None,
            momentum=0.0 if self.momentum else None,
        )
