"""What a sweep trains: the frozen `SweepConfig`, and every rule its values must keep.

This module is the one owner of those rules. The command line's flags, the `--grid`
parser and checkpoints all check values by calling `check_setting` and `check_axis`,
never by restating a rule.
"""

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np

from jaxsoftmax.data.dataset import check_validation
from jaxsoftmax.errors import ConfigError

# The tutorial's loss is 100 x the mean cross-entropy (see `model`'s docstring).
TUTORIAL_LOSS_SCALE = 100.0
DEFAULT_LEARNING_RATES = (0.002, 0.005, 0.008)
# Steps per host dispatch, about: large enough to hide dispatch, small enough for progress.
DEFAULT_CHUNK_STEPS = 200
SCHEDULES = ("constant", "cosine")
# Grid axis -> (SweepConfig field, short name used in run names).
AXES = {
    "learning_rate": ("learning_rates", "lr"),
    "seed": ("seeds", "seed"),
    "weight_decay": ("weight_decays", "wd"),
    "momentum": ("momenta", "momentum"),
}
SEED_RANGE = (-(2**31), 2**31)  # seeds are int32 on the device


def check_count(name: str, value, minimum: int = 1) -> int:
    """`value` if it is a whole number >= `minimum`; else a ConfigError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def _as_float(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ConfigError(f"{name} {value!r} is not a number")
    return float(value)


def check_positive(name: str, value) -> float:
    """`value` as a float if it is a positive finite number; else a ConfigError naming `name`."""
    value = _as_float(name, value)
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} {value:g} is not a positive finite number")
    return value


FLOAT32 = np.finfo(np.float32)


def check_value(axis: str, value) -> float | int:
    """One value of a grid axis, checked; raises ConfigError naming the rule it breaks."""
    if axis == "seed":
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ConfigError(f"seed {value!r} is not a whole number")
        if not SEED_RANGE[0] <= value < SEED_RANGE[1]:
            raise ConfigError(f"seed {value} is outside [-2**31, 2**31)")
        return int(value)
    label = axis.replace("_", " ")
    value = _as_float(label, value)
    if axis == "learning_rate" and not (math.isfinite(value) and value > 0):
        raise ConfigError(f"learning rate {value:g} is not a positive finite number")
    if axis == "weight_decay" and not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"weight decay {value:g} is not a finite number >= 0")
    if axis == "momentum" and not (math.isfinite(value) and 0 <= value < 1):
        raise ConfigError(f"momentum {value:g} is not in [0, 1)")
    # Models train in float32: a value it turns into 0, a subnormal or infinity, or a
    # momentum it rounds to 1, would not be the value given.
    with np.errstate(over="ignore"):
        single = float(np.float32(value))
    if axis == "momentum" and single >= 1:
        raise ConfigError(
            f"momentum {value!r} is 1 in float32, the precision models train in; give at "
            f"most {float(np.nextafter(np.float32(1), np.float32(0))):.8g}"
        )
    if value and not FLOAT32.tiny <= single <= FLOAT32.max:
        raise ConfigError(
            f"{label} {value:g} is {single:g} in float32, the precision models train in; "
            f"give a value from {FLOAT32.tiny:.3g} to {FLOAT32.max:.3g}"
        )
    return value


def parse_value(axis: str, text: str) -> float | int:
    """One value of a grid axis written as text: a whole number for `seed`, else a number."""
    try:
        return int(text) if axis == "seed" else float(text)
    except ValueError:
        kind = "a whole number" if axis == "seed" else "a number"
        raise ConfigError(f"{axis} {text!r} is not {kind}") from None


def check_axis(axis: str, values: Sequence) -> tuple:
    """The values of one grid axis, checked: at least one, each valid, none twice."""
    if axis not in AXES:
        raise ConfigError(f"unknown grid axis {axis!r}; the axes are {', '.join(AXES)}")
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ConfigError(f"{axis} must be a sequence of values, got {values!r}")
    if not values:
        raise ConfigError(f"{axis} is empty; give at least one value")
    checked = tuple(check_value(axis, value) for value in values)
    if len(set(checked)) != len(checked):
        raise ConfigError(f"{axis} lists a value twice: {', '.join(map(str, values))}")
    return checked


def check_setting(name: str, value):
    """A scalar SweepConfig setting, checked (and made a plain Python value)."""
    if name in ("steps", "batch_size", "eval_every", "chunk_steps"):
        return check_count(name, value)
    if name == "validation":
        return check_count(name, value, 0)
    if name == "evaluate_test":
        if not isinstance(value, bool):
            raise ConfigError(f"evaluate_test must be True or False, got {value!r}")
        return value
    if name == "seed":
        return check_value("seed", value)
    if name == "loss_scale":
        return check_positive(name, value)
    if name == "init_scale":
        value = _as_float(name, value)
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"init_scale {value:g} must be finite and >= 0")
        return value
    if name == "schedule":
        if value not in SCHEDULES:
            raise ConfigError(f"schedule {value!r} is not one of {', '.join(SCHEDULES)}")
        return value
    raise ConfigError(f"unknown setting {name!r}")


def _check_trials(trials) -> tuple[tuple[float, float, float], ...]:
    """Explicit settings, each (learning_rate, weight_decay, momentum), checked; no two alike."""
    if isinstance(trials, (str, bytes)) or not isinstance(trials, Sequence):
        raise ConfigError(f"trials must be a sequence of settings, got {trials!r}")
    checked = []
    for trial in trials:
        if isinstance(trial, (str, bytes)) or not isinstance(trial, Sequence) or len(trial) != 3:
            raise ConfigError(f"a trial is (learning_rate, weight_decay, momentum), not {trial!r}")
        axes = ("learning_rate", "weight_decay", "momentum")
        checked.append(
            tuple(check_value(axis, value) for axis, value in zip(axes, trial, strict=True))
        )
    if len(set(checked)) != len(checked):
        raise ConfigError("two trials have the same settings")
    return tuple(checked)


_RUNG_SETTINGS = ("schedule_steps", "descent_parts")  # in checkpoints before 2026-12-06


@dataclasses.dataclass(frozen=True, kw_only=True)
class SweepConfig:
    """How to train a sweep; the defaults reproduce the TensorFlow tutorial.

    The sweep trains one model per point of the grid learning_rates x seeds x
    weight_decays x momenta, all in one compiled program (or, for very large grids,
    in slices of it run one after another; see `plan.SweepPlan`).

    Attributes:
      learning_rates: the step sizes.
      steps: gradient descent steps per model.
      batch_size: training examples per step (shared by every model).
      eval_every: evaluate on the full test set every this many steps, and at the end.
      loss_scale: the objective is `loss_scale * mean cross-entropy` (100: the tutorial's).
      seed: seeds the minibatch order and any random initialisation (when `seeds`
        is empty).
      seeds: the seeds to train, each with its own initialisation and minibatch
        order; models that share a seed share their minibatches. Empty: `(seed,)`.
      weight_decays: L2 strengths: `weight_decay * w` is added to the gradient of
        the weights (not the biases). All 0 (the default) leaves it out of the program.
      momenta: heavy-ball momentum of SGD; all 0 (the default) leaves it out.
      init_scale: standard deviation of random initial weights; 0 gives zeros.
      schedule: `constant` (the tutorial's) or `cosine`: the step size falls along a
        cosine from each learning rate to 0 over the run.
      chunk_steps: about how many steps run per host dispatch (no effect on results).
      validation: training examples held out as a validation split, never trained on,
        evaluated with the test set; chosen by `seed`, the same split for every model.
        Choose settings on it, report the test set.
      evaluate_test: evaluate the test set at every evaluation; a search turns it off
        (it chooses on validation, and evaluates the test set for the chosen model).
      trials: explicit settings, (learning_rate, weight_decay, momentum) each, trained
        instead of the product of the three axes (a search's); the axes stay at their
        defaults then (giving both is an error). Seeds still multiply them.

    How a search's rung trains (a schedule spanning the rung alone, the descent's parts
    its first rung began with) is the search's, passed to the `SweepRun` it drives.
    """

    learning_rates: tuple[float, ...] = DEFAULT_LEARNING_RATES
    steps: int = 1000
    batch_size: int = 100
    eval_every: int = 10
    loss_scale: float = TUTORIAL_LOSS_SCALE
    seed: int = 0
    seeds: tuple[int, ...] = ()
    weight_decays: tuple[float, ...] = (0.0,)
    momenta: tuple[float, ...] = (0.0,)
    init_scale: float = 0.0
    schedule: str = "constant"
    chunk_steps: int = DEFAULT_CHUNK_STEPS
    validation: int = 0
    evaluate_test: bool = True
    trials: tuple[tuple[float, float, float], ...] = ()

    def __post_init__(self):
        axis_fields = {field for field, _ in AXES.values()}
        for field in dataclasses.fields(self):
            if field.name not in (*axis_fields, "trials"):
                value = check_setting(field.name, getattr(self, field.name))
                object.__setattr__(self, field.name, value)
        object.__setattr__(self, "trials", _check_trials(self.trials))
        defaults = (DEFAULT_LEARNING_RATES, (0.0,), (0.0,))
        axes = (self.learning_rates, self.weight_decays, self.momenta)
        if self.trials and tuple(map(tuple, axes)) != defaults:
            raise ConfigError("give trials or learning_rates, weight_decays and momenta, not both")
        if self.seeds and self.seed != 0:
            raise ConfigError("give seed or seeds, not both")
        for axis, (field, _) in AXES.items():
            values = tuple(getattr(self, field))
            if not (axis == "seed" and not values):
                object.__setattr__(self, field, check_axis(axis, values))

    def split(self, dataset):
        """The `Dataset` this sweep trains on, and the indices of the training examples
        it holds out as its validation split (see `Dataset.split_validation`; none
        without a split)."""
        if not self.validation:
            return dataset, np.zeros(0, np.int64)
        return dataset.split_validation(self.validation, self.seed)

    def check_fits(self, training_images: int) -> None:
        """Raises ConfigError when a dataset of `training_images` cannot train this sweep."""
        check_validation(self.validation, training_images)
        training_examples = training_images - self.validation
        if self.batch_size > training_examples:
            raise ConfigError(
                f"batch size {self.batch_size} is larger than the training set "
                f"({training_examples} examples); use a smaller `batch_size`"
            )

    @classmethod
    def from_grid(cls, axes: Mapping[str, Sequence], **settings) -> "SweepConfig":
        """A config whose grid is `axes` ({axis: values}), e.g. `parse_grid`'s.

        Axes are `learning_rate`, `seed`, `weight_decay` and `momentum`; an axis left
        out takes its default. Values may be numbers or text. Other settings are passed
        through.
        """
        for axis in axes:
            if axis not in AXES:
                raise ConfigError(f"unknown grid axis {axis!r}; the axes are {', '.join(AXES)}")
        fields = {
            AXES[axis][0]: tuple(
                parse_value(axis, value) if isinstance(value, str) else value for value in values
            )
            for axis, values in axes.items()
        }
        return cls(**fields, **settings)

    @property
    def grid(self) -> dict[str, tuple]:
        """{axis: its distinct values} for every axis, `seed` included."""
        if self.trials:
            names = ("learning_rate", "weight_decay", "momentum")
            columns = dict(zip(names, zip(*self.trials, strict=True), strict=True))
            return {
                axis: self.seed_values if axis == "seed" else tuple(dict.fromkeys(columns[axis]))
                for axis in AXES
            }
        return {
            axis: self.seed_values if axis == "seed" else getattr(self, field)
            for axis, (field, _) in AXES.items()
        }

    @property
    def seed_values(self) -> tuple[int, ...]:
        """The seeds trained: `seeds`, or `(seed,)`."""
        return self.seeds or (self.seed,)

    @property
    def varying(self) -> tuple[str, ...]:
        """The axes with more than one value."""
        return tuple(axis for axis, values in self.grid.items() if len(values) > 1)

    @property
    def settings(self) -> list[dict[str, float]]:
        """The points of the grid for one seed, {learning_rate, weight_decay, momentum}:
        the `trials`, or the product of the three axes."""
        triples = self.trials or itertools.product(
            self.learning_rates, self.weight_decays, self.momenta
        )
        return [
            {"learning_rate": rate, "weight_decay": decay, "momentum": momentum}
            for rate, decay, momentum in triples
        ]

    @property
    def is_search(self) -> bool:
        """Whether the models are explicit `trials` (a search's), not a grid's product."""
        return bool(self.trials)

    @property
    def uses_weight_decay(self) -> bool:
        """Whether any model has weight decay (else it stays out of the program)."""
        return any(setting["weight_decay"] for setting in self.settings)

    @property
    def uses_momentum(self) -> bool:
        """Whether any model has momentum (else it stays out of the program)."""
        return any(setting["momentum"] for setting in self.settings)

    @property
    def descent(self):
        """The `GradientDescent` whose parts this sweep uses (imported here: a config
        needs no JAX until it trains)."""
        from jaxsoftmax.core.optimizer import GradientDescent

        return GradientDescent(self.uses_weight_decay, self.uses_momentum)

    @property
    def cosine_steps(self) -> int:
        """The steps a cosine schedule spans (all of them); 0 for the constant schedule."""
        return self.steps if self.schedule == "cosine" else 0

    @property
    def points(self) -> list[dict]:
        """Every model's hyperparameters, in the sweep's order: seed-major, then `settings`."""
        return [{"seed": seed} | setting for seed in self.seed_values for setting in self.settings]

    @property
    def num_models(self) -> int:
        """Models in the sweep, counted without listing them (a grid may be huge)."""
        grid = len(self.learning_rates) * len(self.weight_decays) * len(self.momenta)
        return len(self.seed_values) * (len(self.trials) if self.trials else grid)

    @property
    def eval_steps(self) -> np.ndarray:
        """The steps after which the test set is evaluated: every `eval_every`, and the last."""
        steps = np.arange(self.eval_every, self.steps + 1, self.eval_every)
        if steps.size == 0 or steps[-1] != self.steps:
            steps = np.append(steps, self.steps)
        return steps

    def to_dict(self) -> dict:
        """A JSON-friendly copy."""
        copy = dataclasses.asdict(self)
        copy |= {field: list(copy[field]) for field, _ in AXES.values()}
        return copy | {"trials": [list(trial) for trial in self.trials]}

    @classmethod
    def from_dict(cls, values: Mapping) -> "SweepConfig":
        """The config `to_dict` wrote (unknown keys are an error; a search's rung settings,
        which earlier versions kept here, are left to the search that derives them)."""
        values = {k: v for k, v in values.items() if k not in _RUNG_SETTINGS}
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown settings {', '.join(unknown)}")
        axes = {field for field, _ in AXES.values()}
        if "trials" in values:
            values["trials"] = tuple(tuple(trial) for trial in values["trials"])
        return cls(**{k: tuple(v) if k in axes else v for k, v in values.items()})
