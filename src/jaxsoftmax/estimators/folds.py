"""The folds of a `SoftmaxSearchCV` on the device: one copy of the examples, each fold a
row of indices into it, and the state of every (fold x setting) model, trained by
`core.crossval.train_folds` (sharded over the settings where there are several devices).
"""

import numpy as np
from sklearn.base import clone

# What a setting may change: the hyperparameters each model of one program holds as
# arrays (`optimizer.gradient_descent`). The rest shape the program and stay fixed.
SEARCHABLE = ("learning_rate", "alpha", "momentum")


class Folds:
    """Every fold of a search, ready to train settings on.

    Args:
      base: the `SoftmaxClassifier` whose parameters each model takes (but the searched).
      X, labels, classes: the examples, their class indices, the classes.
      trains: each fold's training examples (indices into X).
      sample_weight: (N,) or None; weighed per fold as `base.fit` weighs the fold alone.
    """

    def __init__(self, base, X, labels, classes, trains, sample_weight=None):
        import jax
        import jax.numpy as jnp

        from jaxsoftmax.sweep.plan import default_layout

        self.base, self.classes, self.features = base, classes, X.shape[1]
        shapes = [base._epochs(len(train)) for train in trains]
        self.batch = min(shape[0] for shape in shapes)
        self.per_epoch = np.asarray([shape[1] for shape in shapes])
        self.steps = self.per_epoch * np.asarray([shape[2] for shape in shapes])
        rows = np.zeros((len(trains), max(map(len, trains))), np.int32)
        for f, train in enumerate(trains):
            rows[f, : len(train)] = train
        weights = _fold_weights(base, trains, X, labels, classes, sample_weight)
        self.devices = jax.local_devices()
        self.layout = default_layout(self.devices)  # as a sweep here holds its weights
        self.data = (jnp.asarray(X, jnp.float32), jnp.asarray(labels, jnp.int32),
                     jnp.asarray(weights), jnp.asarray(rows),
                     jnp.asarray([len(train) for train in trains], jnp.int32))  # fmt: skip

    def start(self, candidates: list[dict], decay_steps: int | None = None):
        """The initial state of every fold x candidate (padded to a multiple of the
        devices); the cosine over each fold's steps, or over `decay_steps`."""
        import jax
        import jax.numpy as jnp

        from jaxsoftmax.core import engine, model
        from jaxsoftmax.core.layouts import to_layout

        padded = candidates + candidates[-1:] * (-len(candidates) % len(self.devices))
        rates, alphas, momenta = (self._values(padded, name) for name in SEARCHABLE)
        self.descent = self._descent(candidates)
        decay = self.steps if decay_steps is None else np.full_like(self.steps, decay_steps)
        decay = decay if self.base.schedule == "cosine" else np.zeros_like(decay)
        params = model.init_params(self.features, len(self.classes))

        def one_model(rate, alpha, trace, decay_steps):
            state = engine.init_state(
                params, rate, decay_steps, alpha if self.descent.weight_decay else None,
                trace if self.descent.momentum else None,
            )  # fmt: skip
            return to_layout(state, self.layout)

        per_fold = jax.vmap(one_model, in_axes=(0, 0, 0, None))
        state = jax.vmap(per_fold, in_axes=(None, None, None, 0))(rates, alphas, momenta,
                                                                  jnp.asarray(decay))  # fmt: skip
        return self.spread(state)

    def spread(self, state):
        """`state` with its settings split over the devices (as a sweep's models)."""
        import jax

        from jaxsoftmax.sweep import parallel

        if len(self.devices) == 1:
            return state
        mesh = parallel.make_mesh(self.devices)
        return jax.tree_util.tree_map(
            lambda leaf: jax.device_put(leaf, parallel.sharding(mesh, 1, leaf.ndim)), state
        )

    def train(self, state, start: int = 0, end: int | None = None):
        """`state` trained from step `start` to `end` (None: each fold's own steps)."""
        import jax.numpy as jnp

        from jaxsoftmax.core import crossval

        ends = self.steps if end is None else np.full_like(self.steps, end)
        first = min(start // self.per_epoch)
        epochs = int(max(-(-ends // self.per_epoch))) - int(first)
        whole = (start % self.per_epoch == 0).all() and (ends % self.per_epoch == 0).all()
        masked = len(set(self.per_epoch)) > 1 or len(set(ends)) > 1 or not whole
        return crossval.train_folds(
            state, *self.data, jnp.asarray(ends, jnp.int32), jnp.int32(self.base._seed()),
            jnp.float32(1.0), jnp.int32(start), epochs=epochs,
            epoch_steps=int(self.per_epoch.max()), batch_size=self.batch,
            descent=self.descent, layout=self.layout, masked=masked,
        )  # fmt: skip

    def params(self, state, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The weights (F, count, features, classes) and biases (F, count, classes)."""
        from jaxsoftmax.core.layouts import to_layout
        from jaxsoftmax.sweep import parallel

        params = to_layout(parallel.to_host(state.params), self.layout)
        return params["w"][:, :count], params["b"][:, :count]

    def _values(self, candidates: list[dict], name: str):
        import jax.numpy as jnp

        return jnp.asarray([float(c.get(name, getattr(self.base, name))) for c in candidates],
                           jnp.float32)  # fmt: skip

    def _descent(self, candidates: list[dict]):
        """The gradient descent's parts, after the sweep's checks of every value."""
        from jaxsoftmax.sweep.config import SweepConfig

        def distinct(name):
            return tuple(dict.fromkeys(float(c.get(name, getattr(self.base, name)))
                                       for c in candidates))  # fmt: skip

        config = SweepConfig(learning_rates=distinct("learning_rate"),
                             weight_decays=distinct("alpha"), momenta=distinct("momentum"),
                             steps=1, batch_size=1)  # fmt: skip
        return config.descent


def _fold_weights(base, trains, X, labels, classes, sample_weight) -> np.ndarray:
    """(F, N): each fold's weight of each example, as `base` weighs the fold's examples
    when it fits them alone; (F, 0) where nothing is weighted."""
    if sample_weight is None and base.class_weight is None:
        return np.zeros((len(trains), 0), np.float32)
    weights = np.zeros((len(trains), len(X)), np.float32)
    for f, train in enumerate(trains):
        fitted = clone(base)
        fitted.classes_ = classes
        part = None if sample_weight is None else sample_weight[train]
        weights[f, train] = fitted._weights(X[train], labels[train], part)
    return weights
