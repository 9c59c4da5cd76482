"""Warm starts: a sweep that begins from given training states at a given step.

A successive-halving search trains every trial for a few steps, then goes on with the
best of them: their states at the end of one rung are the start of the next. States
travel between programs models-first: each leaf of the `TrainState` with a leading
axis of K models (`sweep.config.points` order), weights as one model holds them, so
they are independent of how a slice is cut, padded and laid out on the devices.
"""

import dataclasses

import jax
import numpy as np

from jaxsoftmax.core.layouts import to_layout
from jaxsoftmax.sweep.plan import SweepPlan
from jaxsoftmax.sweep.progress import Progress


@dataclasses.dataclass(frozen=True, eq=False)
class WarmStart:
    """Where a sweep begins.

    Attributes:
      step: the steps already taken (a chunk end of the sweep's plan).
      state: the leaves of every model's `TrainState` after them, models-first (K, ...).
      progress: the metrics of those steps (rows after `step` are NaN), and the rest of
        the record to go on from.
    """

    step: int
    state: list[np.ndarray]
    progress: Progress


def padded_models(plan: SweepPlan, index: int) -> np.ndarray:
    """The model of each place of slice `index`, padding included: (S, M) sweep indices
    (a padded place repeats its row's or column's last model, as the slice trains it)."""
    seeds, settings = plan.slices[index]
    rows = np.resize(np.asarray(seeds), plan.slice_seeds)
    rows[len(seeds) :] = seeds[-1]
    columns = np.resize(np.asarray(settings), plan.slice_settings)
    columns[len(settings) :] = settings[-1]
    return rows[:, None] * plan.num_settings + columns[None, :]


def slice_leaves(leaves: list[np.ndarray], template, plan: SweepPlan, index: int) -> list:
    """Models-first leaves (K, ...) as slice `index`'s state leaves (S, M, ...), in the
    plan's layout, in the order of `template`'s leaves."""
    places = padded_models(plan, index)
    treedef = jax.tree_util.tree_structure(template)
    gathered = jax.tree_util.tree_unflatten(treedef, [leaf[places] for leaf in leaves])
    return jax.tree_util.tree_leaves(to_layout(gathered, plan.layout))


def models_first(state_host, plan: SweepPlan, index: int) -> list[np.ndarray]:
    """Slice `index`'s state (host arrays, leading (S, M), the plan's layout) as
    models-first leaves of its valid models (K_slice, ...), in `plan.slice_models` order."""
    seeds, settings = plan.slices[index]
    models = to_layout(state_host, plan.layout)
    return [
        np.asarray(leaf)[: len(seeds), : len(settings)].reshape(-1, *leaf.shape[2:])
        for leaf in jax.tree_util.tree_leaves(models)
    ]


def restart_schedule(leaves: list[np.ndarray], descent, steps: int) -> list[np.ndarray]:
    """Models-first state leaves whose cosine schedule starts again: its step count 0,
    decaying to 0 over `steps` steps (parameters and momentum kept as they are)."""
    decay, count = hyperparameter_leaf(descent, "decay_steps"), schedule_count_leaf(descent)
    restarted = list(leaves)
    restarted[decay] = np.full_like(leaves[decay], steps)
    restarted[count] = np.zeros_like(leaves[count])
    return restarted


def _numbered(descent):
    """A training state of `descent`'s form whose leaves are their own indices."""
    from jaxsoftmax.core import engine

    template = engine.init_state(
        {"w": np.zeros((1, 1), np.float32), "b": np.zeros(1, np.float32)}, 0.0, 0,
        0.0 if descent.weight_decay else None, 0.0 if descent.momentum else None,
    )  # fmt: skip
    treedef = jax.tree_util.tree_structure(template)
    return jax.tree_util.tree_unflatten(treedef, list(range(treedef.num_leaves)))


def hyperparameter_leaf(descent, name: str) -> int:
    """The index, among a training state's leaves, of hyperparameter `name`
    (`learning_rate`, `decay_steps`, ...)."""
    import optax

    (index,) = [i for _, i in optax.tree_utils.tree_get_all_with_path(_numbered(descent), name)]
    return index


def schedule_count_leaf(descent) -> int:
    """The index of the step count the cosine schedule reads."""
    import optax

    (index,) = [
        i for path, i in optax.tree_utils.tree_get_all_with_path(_numbered(descent), "count")
        if path[-1].tuple_name == "ScaleByScheduleState"
    ]  # fmt: skip
    return index


def descent_of(leaves: list) -> "object | None":
    """The `GradientDescent` whose training state has as many leaves as `leaves` (each
    of its optional parts adds its own number of them), or None."""
    from jaxsoftmax.core.optimizer import GradientDescent

    for weight_decay in (False, True):
        for momentum in (False, True):
            descent = GradientDescent(weight_decay, momentum)
            if len(jax.tree_util.tree_leaves(_numbered(descent))) == len(leaves):
                return descent
    return None


def check_learning_rates(leaves: list | None) -> None:
    """Raises CheckpointError where a saved training state (None: none saved) holds a
    learning rate that is not a positive finite number: it would train uphill, or not."""
    from jaxsoftmax.errors import CheckpointError

    descent = None if leaves is None else descent_of(leaves)
    if descent is None:
        return
    rates = np.asarray(leaves[hyperparameter_leaf(descent, "learning_rate")])
    if not (np.isfinite(rates).all() and (rates > 0).all()):
        raise CheckpointError(
            "the checkpoint is damaged: its optimiser state holds learning rates that are "
            "not positive finite numbers"
        )
