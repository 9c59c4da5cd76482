"""Searching hyperparameters: random search spaces, and successive halving.

A search space is written like a grid, each axis a list of values, a uniform range
`a:b`, or a log-uniform range `log:a:b`:

    learning_rate=log:1e-4:1 weight_decay=log:1e-7:1e-2 momentum=0:0.95

Trials are drawn from a scrambled Sobol sequence seeded by the search's seed, so the same
seed draws the same trials. `seed` may only be a list: every trial trains with each seed.

Successive halving (`Halving`, `HalvingSearch`): every trial trains `min_steps` steps;
at each rung the best 1/eta by validation accuracy go on to eta times as many steps, up
to `steps`. With a cosine schedule, each rung's decays to 0 at the rung's end, and the
next rung starts it again from the state reached (momentum kept): every ranking is of
stable iterates. (A cosine spanning the whole search would rank trials mid-way, where
the iterates of large steps still swing: the trials best at the end ranked 14th to 58th
of 81 at a third of the way on MNIST.) The survivors' states are gathered into a smaller
program between rungs (a warm start, see `warm`), so the work falls with the population;
one program compiles per rung. A search is driven like a `SweepRun`: iterate it;
`checkpoint()`, `result()`.
"""

import dataclasses
import math
import re

import numpy as np

from jaxsoftmax.core import host
from jaxsoftmax.errors import ConfigError
from jaxsoftmax.sweep import grid
from jaxsoftmax.sweep.config import DEFAULT_CHUNK_STEPS, SweepConfig, check_count, check_value
from jaxsoftmax.sweep.results import float32_or_none

STRATEGIES = ("halving", "random")
_RANGE = re.compile(r"^(log:)?([^:,]+):([^:,]+)$")
_SEARCHED = ("learning_rate", "weight_decay", "momentum")


@dataclasses.dataclass(frozen=True)
class Axis:
    """One axis of a search space: `values` to choose from, or a range [low, high], on a
    log scale if `log`."""

    values: tuple = ()
    low: float = 0.0
    high: float = 0.0
    log: bool = False

    def pick(self, u: np.ndarray) -> np.ndarray:
        """The axis's values at points `u` in [0, 1)."""
        if self.values:
            return np.asarray(self.values)[np.minimum((u * len(self.values)).astype(int),
                                                      len(self.values) - 1)]  # fmt: skip
        if self.log:
            return np.exp(np.log(self.low) + u * (np.log(self.high) - np.log(self.low)))
        return self.low + u * (self.high - self.low)


def parse_space(text: str) -> dict[str, Axis]:
    """Parses `--search` text into {axis: Axis}, checking every value and range.

    Raises:
      ConfigError: a one-line description of what is wrong.
    """
    space: dict[str, Axis] = {}
    if not text.strip():
        raise ConfigError("the search space is empty; give e.g. 'learning_rate=log:1e-4:1'")
    for part in text.split():
        axis, sep, spec = part.partition("=")
        if not sep or not spec:
            raise ConfigError(f"search part {part!r} is not AXIS=VALUES, AXIS=A:B or AXIS=log:A:B")
        if axis in space:
            raise ConfigError(f"search axis {axis} is given twice")
        if axis not in (*_SEARCHED, "seed"):
            raise ConfigError(
                f"unknown search axis {axis}; the axes are {', '.join(_SEARCHED)} and seed"
            )
        found = _RANGE.match(spec)
        if found is None:
            labels = grid.parse_values(axis, spec)
            space[axis] = Axis(values=tuple(grid.grid_values({axis: labels})[axis]))
            continue
        if axis == "seed":
            raise ConfigError("seed takes a list of seeds, not a range")
        log, low, high = found.group(1) is not None, *found.group(2, 3)
        low, high = (grid.grid_values({axis: (value,)})[axis][0] for value in (low, high))
        if log and low <= 0:
            raise ConfigError(f"{axis}: a log range needs a start > 0, got {low:g}")
        check_value(axis, low)
        check_value(axis, high)
        if not low < high:
            raise ConfigError(f"{axis}: the range {low:g}:{high:g} is empty; write it low:high")
        space[axis] = Axis(low=low, high=high, log=log)
    if "learning_rate" not in space:
        raise ConfigError("a search space needs a learning_rate axis")
    return space


def draw_trials(space: dict[str, Axis], count: int, seed: int) -> tuple[tuple[float, ...], ...]:
    """`count` trials (learning_rate, weight_decay, momentum) from a scrambled Sobol
    sequence seeded by `seed`; an axis the space leaves out stays 0.

    Raises:
      ConfigError: the space holds fewer distinct settings than `count`.
    """
    from scipy.stats import qmc  # SciPy comes with JAX

    check_count("trials", count)
    searched = [axis for axis in _SEARCHED if axis in space]
    generator = np.random.default_rng([seed % 2**32, 3])  # seeds may be negative
    sampler = qmc.Sobol(d=len(searched), scramble=True, seed=generator)
    points = sampler.random_base2(max(0, math.ceil(math.log2(count))))[:count]
    columns = {axis: space[axis].pick(points[:, i]) for i, axis in enumerate(searched)}
    trials = tuple(
        tuple(float(columns[axis][k]) if axis in columns else 0.0 for axis in _SEARCHED)
        for k in range(count)
    )
    if len(set(trials)) < count:
        lists = [len(space[axis].values) for axis in searched]
        size = math.prod(lists) if all(lists) else None
        held = f"holds only {size} settings" if size and size < count else "repeats a setting"
        raise ConfigError(
            f"drawing {count} trials from this search space {held}; ask for fewer `trials`, "
            "widen a range, or use a `grid` for lists alone"
        )
    for trial in trials:
        for axis, value in zip(_SEARCHED, trial, strict=True):
            check_value(axis, value)
    return trials


def search_config(space: dict[str, Axis], trials: int, **settings) -> SweepConfig:
    """The config of a search over `space`: `trials` drawn by the settings' seed."""
    if not settings.get("validation"):
        raise ConfigError("a search chooses on a validation split: give `validation`=N")
    seeds = space["seed"].values if "seed" in space else ()
    seed = settings.pop("seed", 0)
    drawn = draw_trials(space, trials, seed)
    if seeds:
        return SweepConfig(trials=drawn, seeds=tuple(seeds), **settings)
    return SweepConfig(trials=drawn, seed=seed, **settings)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Halving:
    """Successive halving: rungs at `min_steps` x eta**r steps, up to the config's steps,
    each keeping the best 1/eta of its trials by validation accuracy."""

    eta: int = 3
    min_steps: int

    def __post_init__(self):
        check_count("eta", self.eta, 2)
        check_count("min steps", self.min_steps)

    def rungs(self, steps: int) -> list[int]:
        """The step every rung ends at: min_steps x eta**r while eta times that is
        within `steps`, the last at `steps` (so no rung trains fewer than 1/eta of it)."""
        ends, end = [], self.min_steps
        while end * self.eta <= steps:
            ends.append(end)
            end *= self.eta
        return [*ends, steps]

    def survivors(self, count: int) -> int:
        """How many of `count` trials go on to the next rung."""
        return max(1, math.ceil(count / self.eta))

    def check(self, config: SweepConfig) -> None:
        """Raises ConfigError unless `config` can be searched so."""
        if not config.validation:
            raise ConfigError("a search chooses on a validation split: give `validation`=N")
        if len(config.seed_values) != 1:
            raise ConfigError("successive halving trains one seed; use `strategy`=random for more")
        if self.min_steps % config.eval_every:
            raise ConfigError(
                f"`min_steps` {self.min_steps} must be a multiple of `eval_every` "
                f"{config.eval_every}: every rung ends with an evaluation"
            )
        if self.min_steps >= config.steps:
            raise ConfigError(
                f"halving's first rung ({self.min_steps} steps, `min_steps`) is not below "
                f"`steps` {config.steps}: give more `steps` or a smaller `min_steps`"
            )

    def rung_config(self, config: SweepConfig, trials: np.ndarray, rung: int) -> SweepConfig:
        """The config of `rung`: the `trials` (indices of config.trials) trained to its end,
        in chunks that end where rungs do (see `rung_training` for how it trains)."""
        ends = self.rungs(config.steps)
        start = ends[rung - 1] if rung else 0
        chunk = self.min_steps
        while (
            chunk * self.eta <= max(DEFAULT_CHUNK_STEPS, self.min_steps)
            and start % (chunk * self.eta) == 0
            and (chunk * self.eta) % config.eval_every == 0
        ):
            chunk *= self.eta
        return dataclasses.replace(
            config, trials=tuple(config.trials[k] for k in trials), steps=ends[rung],
            chunk_steps=chunk,
        )  # fmt: skip

    def rung_training(self, config: SweepConfig, rung: int) -> dict:
        """How `rung` of a search of `config` trains, for `SweepRun.start`/`restore`: a
        cosine schedule spanning the rung alone (`schedule_steps`), and every part of
        the gradient descent any trial uses (`descent`), so that each rung's state has
        the form of the first's, whichever trials go on."""
        ends = self.rungs(config.steps)
        return {"schedule_steps": ends[rung] - (ends[rung - 1] if rung else 0),
                "descent": config.descent}  # fmt: skip


def default_min_steps(steps: int, eval_every: int, eta: int) -> int:
    """About steps / eta**3 (four rungs), a multiple of `eval_every`."""
    return max(eval_every, steps // eta**3 // eval_every * eval_every)


def choose_trial(result) -> int | None:
    """The healthy trial with the best final validation accuracy (see
    `results.rank_models`), None if none is or no parameters were kept: validation alone."""
    return result.best("validation_accuracy") if result.params is not None else None


def conclude(result, dataset, *, rung_accuracy: np.ndarray | None = None):
    """The chosen trial of a finished search, and its test metrics.

    The trial chosen has the best final validation accuracy among those that took
    every step and did not diverge; the test set is evaluated for it alone (in NumPy,
    from its final parameters) and reported beside, never used to choose.

    Returns:
      The result with the chosen trial's test metrics at its last evaluation, the
      chosen trial's index (None if none qualifies), and what results.json keeps of
      the search, by run index ({"rung_validation_accuracy": [...]}) where there were
      rungs.
    """
    from jaxsoftmax.trained.run import Model

    chosen = choose_trial(result)
    per_run = {}
    if rung_accuracy is not None:
        per_run = {
            k: {"rung_validation_accuracy": [float32_or_none(v) for v in rung_accuracy[:, k]]}
            for k in range(result.config.num_models)
        }  # fmt: skip
    if chosen is None or not len(dataset.test_labels):  # nothing chosen, or nothing to test
        return result, chosen, per_run
    model = Model(name="chosen", w=result.params["w"][chosen], b=result.params["b"][chosen],
                  image_shape=dataset.image_shape, class_names=dataset.class_names,
                  inputs=dataset.inputs)  # fmt: skip
    logits = model.logits(dataset.test_images)
    loss = host.cross_entropy(logits, dataset.test_labels) * result.config.loss_scale
    accuracy = (host.predicted(logits) == dataset.test_labels).mean()
    test_loss, test_accuracy = result.test_loss.copy(), result.test_accuracy.copy()
    test_loss[-1, chosen], test_accuracy[-1, chosen] = loss, accuracy
    return (
        dataclasses.replace(result, test_loss=test_loss, test_accuracy=test_accuracy),
        chosen,
        per_run,
    )
