"""Training a sweep of learning rates in one compiled program, and what comes back."""

import dataclasses
import functools
import itertools
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxsoftmax import divergence, grid, model, parallel, training
from jaxsoftmax.data import Dataset
from jaxsoftmax.errors import CheckpointError, ConfigError

DEFAULT_LEARNING_RATES = (0.002, 0.005, 0.008)
# Steps per host dispatch, about: large enough to hide dispatch, small enough for progress.
DEFAULT_CHUNK_STEPS = 200
SCHEDULES = ("constant", "cosine")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SweepConfig:
    """How to train a sweep; the defaults reproduce the TensorFlow tutorial.

    The sweep trains one model per point of the grid learning_rates x seeds x
    weight_decays x momenta, all in one compiled program (or, for very large grids,
    in slices of it run one after another).

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
    """

    learning_rates: tuple[float, ...] = DEFAULT_LEARNING_RATES
    steps: int = 1000
    batch_size: int = 100
    eval_every: int = 10
    loss_scale: float = model.TUTORIAL_LOSS_SCALE
    seed: int = 0
    seeds: tuple[int, ...] = ()
    weight_decays: tuple[float, ...] = (0.0,)
    momenta: tuple[float, ...] = (0.0,)
    init_scale: float = 0.0
    schedule: str = "constant"
    chunk_steps: int = DEFAULT_CHUNK_STEPS

    def __post_init__(self):
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"seed must be a whole number, got {self.seed!r}")
        if self.seeds and self.seed != 0:
            raise ConfigError("give seed or seeds, not both")
        grid.check_value("seed", self.seed)
        for axis, (field, _) in grid.AXES.items():
            values = tuple(getattr(self, field))
            if not (axis == "seed" and not values):
                object.__setattr__(self, field, grid.check_axis(axis, values))
        for name in ("steps", "batch_size", "eval_every", "chunk_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
        for name in ("loss_scale", "init_scale"):  # plain floats, so the config is JSON
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise ConfigError(f"{name} must be a number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if not (math.isfinite(self.loss_scale) and self.loss_scale > 0):
            raise ConfigError(f"loss_scale {self.loss_scale} is not a positive finite number")
        if not (math.isfinite(self.init_scale) and self.init_scale >= 0):
            raise ConfigError(f"init_scale {self.init_scale} must be finite and >= 0")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule {self.schedule!r} is not one of {', '.join(SCHEDULES)}")

    @classmethod
    def from_grid(cls, axes: Mapping[str, Sequence], **settings) -> "SweepConfig":
        """A config whose grid is `axes` ({axis: values}), e.g. from `grid.parse_grid`.

        Axes are `learning_rate`, `seed`, `weight_decay` and `momentum`; an axis left
        out takes its default. Values may be numbers or text (`parse_grid`'s output).
        Other settings are passed through.
        """
        for axis in axes:
            if axis not in grid.AXES:
                raise ConfigError(
                    f"unknown grid axis {axis!r}; the axes are {', '.join(grid.AXES)}"
                )
        fields = {
            grid.AXES[axis][0]: tuple(
                grid.grid_values({axis: [value]})[axis][0] if isinstance(value, str) else value
                for value in values
            )
            for axis, values in axes.items()
        }
        return cls(**fields, **settings)

    @property
    def grid(self) -> dict[str, tuple]:
        """{axis: values} for every axis, `seed` included."""
        return {
            axis: self.seed_values if axis == "seed" else getattr(self, field)
            for axis, (field, _) in grid.AXES.items()
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
        """The points of the grid for one seed, {learning_rate, weight_decay, momentum}."""
        return [
            {"learning_rate": rate, "weight_decay": decay, "momentum": momentum}
            for rate, decay, momentum in itertools.product(
                self.learning_rates, self.weight_decays, self.momenta
            )
        ]

    @property
    def points(self) -> list[dict]:
        """Every model's hyperparameters, in the sweep's order: seed-major, then `settings`."""
        return [{"seed": seed} | setting for seed in self.seed_values for setting in self.settings]

    def run_names(self, labels: Mapping[str, Sequence[str]] | None = None) -> list[str]:
        """One TensorBoard run name per model (see `grid.run_name`).

        Args:
          labels: {axis: its values as the user wrote them}, for any axes; others are
            written with `grid.format_value`.
        """
        labels = labels or {}
        values = self.grid
        names = []
        for point in self.points:
            written = {axis: labels[axis][values[axis].index(point[axis])] for axis in labels}
            names.append(grid.run_name(point, written, self.varying))
        if len(set(names)) != len(names):
            raise ConfigError("two grid points would get the same run name")
        return names

    @property
    def num_models(self) -> int:
        return len(self.seed_values) * len(self.settings)

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
        return copy | {field: list(copy[field]) for field, _ in grid.AXES.values()}

    @classmethod
    def from_dict(cls, values: Mapping) -> "SweepConfig":
        """The config `to_dict` wrote (unknown keys are an error)."""
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown settings {', '.join(unknown)}")
        axes = {field for field, _ in grid.AXES.values()}
        return cls(**{k: tuple(v) if k in axes else v for k, v in values.items()})


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class SweepResult:
    """What a sweep produced, as NumPy arrays; K models, in the order of `config.points`.

    Attributes:
      config: the run's settings.
      params: trained parameters, `w` of shape (K, features, classes), `b` (K, classes);
        None if `train_sweep` was told not to keep them.
      train_loss: (steps, K), the objective on each step's batch, before that step.
      train_accuracy: (steps, K).
      eval_steps: (E,), the step after which each evaluation ran.
      test_loss: (E, K), the objective on the full test set.
      test_accuracy: (E, K).
      compile_s: seconds spent compiling.
      train_s: seconds spent training and evaluating, compilation excluded.
      steps_done: (K,) the steps each model took: all of them unless `interrupted`.
        Metrics of steps not taken are NaN.
      diverged_at: (K,) the step each model diverged at (see `divergence`), 0 if it
        did not.
      interrupted: training stopped early, when asked to.
    """

    config: SweepConfig
    params: dict[str, np.ndarray] | None
    train_loss: np.ndarray
    train_accuracy: np.ndarray
    eval_steps: np.ndarray
    test_loss: np.ndarray
    test_accuracy: np.ndarray
    compile_s: float
    train_s: float
    steps_done: np.ndarray | None = None
    diverged_at: np.ndarray | None = None
    interrupted: bool = False

    def __post_init__(self):
        num_models = self.config.num_models
        if self.steps_done is None:
            object.__setattr__(self, "steps_done", np.full(num_models, self.config.steps))
        if self.diverged_at is None:
            object.__setattr__(self, "diverged_at", np.zeros(num_models, np.int64))

    def runs(self) -> list[dict]:
        """One summary per model: its hyperparameters (under their grid names), its
        final train loss, test loss and test accuracy (None where not finite or not
        reached), the steps it took and whether it diverged (and at which step)."""
        runs = []
        for k, point in enumerate(self.config.points):
            done = int(self.steps_done[k])
            evaluated = np.flatnonzero(self.eval_steps <= done)
            last = evaluated[-1] if evaluated.size else None
            run = point | {
                "test_accuracy": _number(self.test_accuracy, last, k),
                "test_loss": _number(self.test_loss, last, k),
                "train_loss": _number(self.train_loss, done - 1 if done else None, k),
                "steps": done,
                "diverged": bool(self.diverged_at[k]),
            }
            if self.diverged_at[k]:
                run["diverged_at_step"] = int(self.diverged_at[k])
            runs.append(run)
        return runs

    def seed_summary(self) -> list[dict]:
        """Final test accuracy over seeds, for each setting of the other axes.

        Returns one dict per setting: `learning_rate`, `weight_decay`, `momentum`,
        `seeds` (how many), `test_accuracy_mean` and `test_accuracy_std` (the
        sample standard deviation, ddof=1; 0 for a single seed).
        """
        num_seeds = len(self.config.seed_values)
        final = self.test_accuracy[-1].reshape(num_seeds, -1)
        spread = final.std(axis=0, ddof=1) if num_seeds > 1 else np.zeros(final.shape[1])
        return [
            setting
            | {
                "seeds": num_seeds,
                "test_accuracy_mean": float(final[:, index].mean()),
                "test_accuracy_std": float(spread[index]),
            }
            for index, setting in enumerate(self.config.settings)
        ]


def _number(values: np.ndarray, row: int | None, column: int) -> float | None:
    """values[row, column] as a float, or None if there is no such row or it is not finite."""
    if row is None:
        return None
    value = float(values[row, column])
    return value if math.isfinite(value) else None


@dataclasses.dataclass(frozen=True)
class ChunkReport:
    """Progress after a chunk, as NumPy arrays, for the K models it trained.

    Attributes:
      models: (K,) the models' indices in the sweep (`config.points`); a large grid
        trains in slices, so a chunk may cover only some of them.
      steps: (S,) the step numbers this chunk trained, 1-based.
      train: training metrics, each (S, K).
      eval_steps: (E,) steps after which the chunk evaluated.
      test: test metrics, each (E, K).
      params: the parameters after the chunk's last step, leading axis K.
      histograms: `weights` and `biases` histograms at each evaluation, leading
        axes (E, K); None unless `train_sweep` was asked for them.
      diverged_at: (K,) the step each model diverged at, up to this chunk's end (see
        `divergence`), 0 if it has not.
    """

    models: np.ndarray
    steps: np.ndarray
    train: training.Metrics
    eval_steps: np.ndarray
    test: training.Metrics
    params: dict[str, np.ndarray]
    histograms: dict[str, training.Histogram] | None
    diverged_at: np.ndarray | None = None


def plan_chunks(config: SweepConfig) -> list[tuple[int, int]]:
    """Splits training into chunks of (num_windows, window_steps) that cover every step.

    Full windows of `eval_every` steps are grouped into chunks of about
    `chunk_steps` steps; the windows left over form one shorter chunk, and a shorter
    last window covers the remaining steps. At most three shapes compile.
    """
    full_windows, remainder = divmod(config.steps, config.eval_every)
    per_chunk = min(full_windows, max(1, config.chunk_steps // config.eval_every))
    chunks = []
    if full_windows:
        whole, rest = divmod(full_windows, per_chunk)
        chunks += [(per_chunk, config.eval_every)] * whole
        if rest:
            chunks.append((rest, config.eval_every))
    if remainder:
        chunks.append((1, remainder))
    return chunks


def check_fits(config: SweepConfig, dataset: Dataset) -> None:
    """Raises ConfigError if `config` cannot train on `dataset` (a batch larger than the data)."""
    if config.batch_size > len(dataset.train_images):
        raise ConfigError(
            f"batch size {config.batch_size} is larger than the training set "
            f"({len(dataset.train_images)} examples); use a smaller --batch-size"
        )


# Models per device in one program when the caller does not say: on a CPU, throughput
# stops growing near K = 100 to 300, and each model costs about 1.3 MB there.
CPU_MODELS_PER_DEVICE = 1024
# The share of a device's free memory a program may plan to use.
MEMORY_FRACTION = 0.5


@dataclasses.dataclass(frozen=True)
class GridPlan:
    """How a grid of S seeds x M settings is cut into programs and spread over devices.

    Every program trains a tile of `tile_seeds` x `tile_settings` models, the same
    shape for all (one compilation); tiles at the edge of the grid are padded with
    copies of their last seed or setting, trained and then dropped. With several
    devices, the tile's `shard_axis` (0: seeds, 1: settings) is split over them.

    Attributes:
      seed_blocks: which seeds each row of tiles trains.
      setting_blocks: which settings each column of tiles trains.
      tile_seeds, tile_settings: a tile's shape, padding included.
      shard_axis: the tile axis split over devices; None on one device.
    """

    seed_blocks: tuple[range, ...]
    setting_blocks: tuple[range, ...]
    tile_seeds: int
    tile_settings: int
    shard_axis: int | None

    @property
    def tiles(self) -> list[tuple[range, range]]:
        return list(itertools.product(self.seed_blocks, self.setting_blocks))

    @property
    def models_per_program(self) -> int:
        return self.tile_seeds * self.tile_settings


def plan_grid(num_seeds: int, num_settings: int, max_models: int, num_devices: int) -> GridPlan:
    """Cuts a grid into tiles of at most about `max_models` models (see GridPlan)."""
    if max_models < 1:
        raise ConfigError(f"max models per program must be at least 1, got {max_models}")
    limit = max(max_models, num_devices)
    if num_settings <= limit:
        settings, seeds = num_settings, min(num_seeds, limit // num_settings)
    else:
        settings, seeds = limit, 1
    seed_blocks = tuple(
        range(start, min(start + seeds, num_seeds)) for start in range(0, num_seeds, seeds)
    )
    setting_blocks = tuple(
        range(start, min(start + settings, num_settings))
        for start in range(0, num_settings, settings)
    )
    shard_axis = None
    if num_devices > 1:
        padded_seeds = -(-seeds // num_devices) * num_devices
        padded_settings = -(-settings // num_devices) * num_devices
        if padded_seeds * settings < seeds * padded_settings:
            shard_axis, seeds = 0, padded_seeds
        else:
            shard_axis, settings = 1, padded_settings
    return GridPlan(seed_blocks, setting_blocks, seeds, settings, shard_axis)


def bytes_per_model(config: SweepConfig, dataset: Dataset) -> int:
    """Device memory one model of a program needs, about: its parameters and optimiser
    state (several copies in flight), a step's logits, and the test evaluation's
    logits and probabilities."""
    parameters = (dataset.num_features + 1) * dataset.num_classes * 4
    copies = 5 + any(config.momenta)
    step = 4 * config.batch_size * dataset.num_classes * 4 + config.chunk_steps * 8
    evaluation = 3 * len(dataset.test_images) * dataset.num_classes * 4
    return copies * parameters + step + evaluation


def default_max_models(config: SweepConfig, dataset: Dataset, devices) -> int:
    """Models per program that fit in about half the free memory of each device."""
    per_device = []
    for device in devices:
        stats = device.memory_stats() if device.platform != "cpu" else None
        if stats and "bytes_limit" in stats:
            free = stats["bytes_limit"] - stats.get("bytes_in_use", 0)
            per_device.append(int(MEMORY_FRACTION * free) // bytes_per_model(config, dataset))
        else:
            local = max(1, sum(d.platform == "cpu" for d in jax.local_devices()))
            try:
                free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // local
            except (ValueError, OSError, AttributeError):  # no such query on this system
                per_device.append(CPU_MODELS_PER_DEVICE)
                continue
            fits = int(MEMORY_FRACTION * free) // bytes_per_model(config, dataset)
            per_device.append(min(CPU_MODELS_PER_DEVICE, fits))
    return max(1, min(per_device)) * len(per_device)


def plan_sweep(
    config: SweepConfig,
    dataset: Dataset,
    *,
    max_models_per_program: int | None = None,
    devices=None,
) -> GridPlan:
    """The GridPlan `train_sweep` follows for these arguments."""
    devices = jax.devices() if devices is None else list(devices)
    limit = max_models_per_program or default_max_models(config, dataset, devices)
    return plan_grid(len(config.seed_values), len(config.settings), limit, len(devices))


def to_device(dataset: Dataset, mesh=None) -> training.DeviceData:
    """Puts a dataset on the device (every device of `mesh`), images uint8 and flattened."""
    arrays = (
        dataset.train_images.reshape(len(dataset.train_images), -1),
        dataset.train_labels,
        dataset.test_images.reshape(len(dataset.test_images), -1),
        dataset.test_labels,
    )
    if mesh is None:
        return training.DeviceData(*map(jnp.asarray, arrays))
    return training.DeviceData(
        *(parallel.put(a, parallel.sharding(mesh, None, a.ndim)) for a in arrays)
    )


def shuffle_key(seed: int) -> jax.Array:
    """The key that orders the minibatches of a seed."""
    return training.shuffle_key(seed)


def first_batch(config: SweepConfig, num_train: int) -> np.ndarray:
    """Indices of the training examples in the first step's batch (of the first seed)."""
    order = _first_epoch(shuffle_key(config.seed_values[0]), num_train)
    return np.asarray(order[: config.batch_size])


@functools.partial(jax.jit, static_argnums=1)
def _first_epoch(key: jax.Array, num_train: int) -> jax.Array:
    # One compiled program, not a dozen operations each compiled on first use.
    return training.epoch_permutation(key, 0, num_train)


@functools.partial(
    jax.jit,
    static_argnames=(
        "num_features", "num_classes", "init_scale", "decay_steps", "weight_decay",
        "momentum", "target",
    ),
)  # fmt: skip
def _init_grid(
    seeds, learning_rates, weight_decays, momenta, *,
    num_features, num_classes, init_scale, decay_steps, weight_decay, momentum, target,
):  # fmt: skip
    def one_seed(seed):
        params = model.init_params(
            num_features, num_classes, key=training.init_key(seed), scale=init_scale
        )

        def one_setting(rate, decay, trace):
            state = training.init_state(
                params, rate, decay_steps, decay if weight_decay else None,
                trace if momentum else None,
            )  # fmt: skip
            return training.sweep_layout(state)

        return jax.vmap(one_setting)(learning_rates, weight_decays, momenta)

    state = jax.vmap(one_seed)(seeds)
    return jax.lax.with_sharding_constraint(state, target) if target is not None else state


def init_grid(
    config: SweepConfig, num_features: int, num_classes: int, seeds, settings, target=None
) -> training.TrainState:
    """The initial state of a tile: `seeds` x `settings` (lists), leading axes (S, M),
    in `training.sweep_layout`; sharded as `target` (a sharding) if given."""
    hyper = {
        axis: np.asarray([s[axis] for s in settings], np.float32)
        for axis in ("learning_rate", "weight_decay", "momentum")
    }
    seeds = np.asarray(seeds, np.int32)
    args = (seeds, hyper["learning_rate"], hyper["weight_decay"], hyper["momentum"])
    if target is not None:
        args = tuple(parallel.put(a, parallel.sharding(target.mesh, None, 1)) for a in args)
    return _init_grid(
        *args,
        num_features=num_features,
        num_classes=num_classes,
        init_scale=config.init_scale,
        decay_steps=config.steps if config.schedule == "cosine" else 0,
        weight_decay=any(config.weight_decays),
        momentum=any(config.momenta),
        target=target,
    )


def init_sweep(config: SweepConfig, num_features: int, num_classes: int) -> training.TrainState:
    """The initial state of a one-seed sweep with a flat leading axis of K models."""
    seed = config.seed_values[0]
    state = init_grid(config, num_features, num_classes, [seed], config.settings)
    return jax.tree_util.tree_map(lambda leaf: leaf[0], state)


def models_first(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Host copy of a sweep's parameters in one model's layout: `w` (K, features, classes)."""
    return jax.tree_util.tree_map(np.asarray, training.sweep_layout(params))


def _pad(values: Sequence, size: int) -> list:
    values = list(values)
    return values + values[-1:] * (size - len(values))


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class SweepCheckpoint:
    """Everything a sweep needs to go on where it stopped, as host arrays.

    Randomness needs no saved key: each seed's initialisation and minibatch order
    are derived from the seed (in `config`) and the step.

    Attributes:
      config: the sweep's settings.
      max_models: the limit the grid's plan was made with (`plan_grid`'s
        `max_models`), so that a resumed sweep is cut into the same slices.
      num_devices: how many devices the models were sharded over.
      tile: the index in `GridPlan.tiles` of the tile in progress (the number of
        tiles once all are done).
      step: steps that tile has taken; 0: it has not started.
      state: that tile's `TrainState` leaves (`jax.tree_util.tree_leaves` order,
        leading axes S, M), or None when `step` is 0.
      outputs: `train_loss`, `train_accuracy` (steps, K), `test_loss` and
        `test_accuracy` (E, K) so far, NaN where not reached.
      params: final `w` (K, features, classes) and `b` (K, classes) of the models
        done so far, or None if they are not kept.
      diverged_at: (K,) the step each model diverged at, 0 if it has not.
      high_steps: (K,) steps up to now with a loss above the divergence threshold.
      compile_s, train_s: seconds spent so far.
      data_fingerprint: `Dataset.fingerprint()` of the data it trained on.
    """

    config: SweepConfig
    data_fingerprint: str
    max_models: int
    num_devices: int
    tile: int
    step: int
    state: list[np.ndarray] | None
    outputs: dict[str, np.ndarray]
    params: dict[str, np.ndarray] | None
    diverged_at: np.ndarray
    high_steps: np.ndarray
    compile_s: float
    train_s: float

    def inconsistencies(self) -> list[str]:
        """The parts that do not fit the settings or each other (empty if all do)."""
        num_models = self.config.num_models
        wrong = [
            name for name, shape in _output_shapes(self.config)
            if self.outputs[name].shape != shape
        ]  # fmt: skip
        for name in ("diverged_at", "high_steps"):
            values = getattr(self, name)
            if values.shape != (num_models,) or values.dtype.kind not in "iu":
                wrong.append(name)
        if self.params is not None:
            w, b = self.params["w"], self.params["b"]
            if w.ndim != 3 or len(w) != num_models or b.shape != (num_models, w.shape[-1]):
                wrong.append("params")
        if self.step and self.state is None:
            wrong.append("state")
        if self.max_models < 1 or self.num_devices < 1 or self.tile < 0:
            wrong.append("plan")
        if not 0 <= self.step < self.config.steps:
            wrong.append("step")
        return wrong

    def steps_done(self) -> np.ndarray:
        """(K,) the steps each model has taken."""
        plan = plan_grid(
            len(self.config.seed_values),
            len(self.config.settings),
            self.max_models,
            self.num_devices,
        )
        done = np.zeros(self.config.num_models, np.int64)
        for index, tile in enumerate(plan.tiles):
            if index <= self.tile:
                steps = self.config.steps if index < self.tile else self.step
                done[_tile_models(*tile, len(self.config.settings))] = steps
        return done


def _output_shapes(config: SweepConfig) -> list[tuple[str, tuple[int, int]]]:
    """The metrics a sweep records and their shapes: (steps or evaluations, models)."""
    steps, evals, models = config.steps, len(config.eval_steps), config.num_models
    return [
        ("train_loss", (steps, models)),
        ("train_accuracy", (steps, models)),
        ("test_loss", (evals, models)),
        ("test_accuracy", (evals, models)),
    ]


def _tile_models(seed_block: range, setting_block: range, num_settings: int) -> np.ndarray:
    """The sweep indices of a tile's models, seed-major."""
    return (np.asarray(seed_block)[:, None] * num_settings + np.asarray(setting_block)).ravel()


def _check_resumable(
    checkpoint: SweepCheckpoint, config: SweepConfig, dataset: Dataset, num_devices: int
) -> None:
    if checkpoint.config != config:
        raise CheckpointError("the checkpoint belongs to a sweep with other settings")
    if checkpoint.data_fingerprint != dataset.fingerprint():
        raise CheckpointError(
            "the checkpoint was trained on other data; resume with the same dataset and files"
        )
    if checkpoint.num_devices != num_devices:
        raise CheckpointError(
            f"the checkpoint was written on {checkpoint.num_devices} devices and this run has "
            f"{num_devices}; resume it on as many"
        )
    wrong = checkpoint.inconsistencies()
    if checkpoint.params is not None:
        features = (dataset.num_features, dataset.num_classes)
        wrong += [] if checkpoint.params["w"].shape[1:] == features else ["params"]
    if wrong:
        raise CheckpointError(
            f"the checkpoint does not fit this sweep or data ({', '.join(wrong)})"
        )


def _restore(template, leaves: list[np.ndarray], sharded: bool):
    """`template`'s pytree with `leaves` (host arrays) put where the template's are."""
    template_leaves, treedef = jax.tree_util.tree_flatten(template)
    if len(leaves) != len(template_leaves) or any(
        saved.shape != leaf.shape or saved.dtype != leaf.dtype
        for saved, leaf in zip(leaves, template_leaves, strict=False)
    ):
        raise CheckpointError(
            "the checkpoint's training state does not fit this run (another version of "
            "jaxsoftmax, or other data)"
        )
    return jax.tree_util.tree_unflatten(
        treedef,
        [
            parallel.put(saved, leaf.sharding) if sharded else jnp.asarray(saved)
            for saved, leaf in zip(leaves, template_leaves, strict=True)
        ],
    )


def train_sweep(
    dataset: Dataset,
    config: SweepConfig = SweepConfig(),
    *,
    on_chunk: Callable[[ChunkReport], None] | None = None,
    histogram_buckets: int = 0,
    max_models_per_program: int | None = None,
    devices=None,
    keep_params: bool = True,
    checkpoint_every: int | None = None,
    on_checkpoint: Callable[[SweepCheckpoint], None] | None = None,
    resume: SweepCheckpoint | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SweepResult:
    """Trains one model per grid point, all at once, and evaluates them on the test set.

    Args:
      dataset: the data; images stay uint8 on the device.
      config: what to train (see SweepConfig).
      on_chunk: called on the host with a ChunkReport after each chunk of steps (for
        progress bars and summaries); the next chunk is already running meanwhile.
      histogram_buckets: if positive, the chunk reports carry histograms of every
        model's parameters at each evaluation, computed on the device.
      max_models_per_program: train at most about this many models at once, the
        grid cut into slices trained one after another (results are the same); by
        default as many as fit in half of each device's free memory (on a CPU, at
        most 1024 per device).
      devices: the devices to shard the models over (default: all of them, every
        process's in a multi-process run).
      keep_params: return the trained parameters (for huge grids, say False).
      checkpoint_every: hand `on_checkpoint` a checkpoint at the end of the first
        chunk after every this many steps (counting every slice's steps), besides
        the one at the end and the one when stopped.
      on_checkpoint: receives each SweepCheckpoint (to save it, say). Its `outputs`
        and `params` are the sweep's own arrays, which training goes on filling:
        save or copy them before returning.
      resume: go on from this checkpoint; `config` must be the checkpoint's. The
        result is the same, bitwise on a CPU, as that of a sweep never stopped.
      should_stop: asked after each chunk; when it says True, training stops there,
        a checkpoint goes to `on_checkpoint`, and the result is `interrupted`.

    Returns:
      The trained parameters and every metric, as NumPy arrays, models in the order
      of `config.points`.

    Raises:
      ConfigError: the batch is larger than the training set, or a bad limit.
      CheckpointError: `resume` does not belong to this config, data or devices.
    """
    check_fits(config, dataset)
    mesh = parallel.make_mesh(devices)
    devices = list(mesh.devices.flat)
    if resume is not None:
        _check_resumable(resume, config, dataset, mesh.size)
        limit = resume.max_models
    else:
        limit = max_models_per_program or default_max_models(config, dataset, devices)
        # Free memory differs between hosts; every process must cut the grid alike.
        limit = parallel.smallest_over_processes(limit)
    plan = plan_sweep(config, dataset, max_models_per_program=limit, devices=devices)
    spread = mesh.size > 1 or jax.process_count() > 1
    target = parallel.sharding(mesh, plan.shard_axis) if spread else None
    data = to_device(dataset, mesh if spread else None)

    def scalar(value, dtype):
        value = np.asarray(value, dtype)
        if not spread:
            return jnp.asarray(value)
        return parallel.put(value, parallel.sharding(mesh, None, 0))

    loss_scale = scalar(config.loss_scale, np.float32)
    chunks = plan_chunks(config)
    chunk_ends = np.cumsum([windows * steps for windows, steps in chunks]).tolist()
    seeds, settings = config.seed_values, config.settings
    num_models = config.num_models
    if resume is not None:
        outputs = {name: values.copy() for name, values in resume.outputs.items()}
        diverged_at, high_steps = resume.diverged_at.copy(), resume.high_steps.copy()
        steps_done = resume.steps_done()
        compile_s, train_s = resume.compile_s, resume.train_s
    else:
        outputs = {
            name: np.full(shape, np.nan, np.float32) for name, shape in _output_shapes(config)
        }
        diverged_at = np.zeros(num_models, np.int64)
        high_steps = np.zeros(num_models, np.int64)
        steps_done = np.zeros(num_models, np.int64)
        compile_s, train_s = 0.0, 0.0
    params = None
    if keep_params:
        params = {
            "w": np.full(
                (num_models, dataset.num_features, dataset.num_classes), np.nan, np.float32
            ),
            "b": np.full((num_models, dataset.num_classes), np.nan, np.float32),
        }
        if resume is not None and resume.params is not None:
            params = {name: values.copy() for name, values in resume.params.items()}
    window = divergence.window(config.eval_every, config.steps)

    def record(report: ChunkReport) -> ChunkReport:
        nonlocal diverged_at, high_steps
        rows, models = report.steps - 1, report.models
        outputs["train_loss"][np.ix_(rows, models)] = report.train.loss
        outputs["train_accuracy"][np.ix_(rows, models)] = report.train.accuracy
        evals = np.searchsorted(config.eval_steps, report.eval_steps)
        outputs["test_loss"][np.ix_(evals, models)] = report.test.loss
        outputs["test_accuracy"][np.ix_(evals, models)] = report.test.accuracy
        steps_done[models] = report.steps[-1]
        finite = np.isfinite(report.params["w"]).all(axis=(1, 2)) & np.isfinite(
            report.params["b"]
        ).all(axis=1)
        diverged_at[models], high_steps[models] = divergence.update(
            diverged_at[models],
            high_steps[models],
            outputs["train_loss"][0, models],
            steps=report.steps,
            train_loss=report.train.loss,
            eval_steps=report.eval_steps,
            test_loss=report.test.loss,
            params_finite=finite,
            window=window,
        )
        report = dataclasses.replace(report, diverged_at=diverged_at[models])
        if params is not None and report.steps[-1] == config.steps:
            for name in params:
                params[name][models] = report.params[name]
        if on_chunk is not None:
            on_chunk(report)
        return report

    fingerprint = dataset.fingerprint() if on_checkpoint is not None else ""

    def save(tile: int, step: int, state) -> None:
        if on_checkpoint is None:
            return
        leaves = None
        if state is not None:
            leaves = [
                np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(parallel.to_host(state))
            ]
        on_checkpoint(
            SweepCheckpoint(
                config=config,
                data_fingerprint=fingerprint,
                max_models=limit,
                num_devices=mesh.size,
                tile=tile,
                step=step,
                state=leaves,
                outputs=outputs,
                params=params,
                diverged_at=diverged_at.copy(),
                high_steps=high_steps.copy(),
                compile_s=compile_s,
                train_s=train_s + (time.perf_counter() - running_since if running_since else 0),
            )
        )

    def result(interrupted: bool) -> SweepResult:
        return SweepResult(
            config=config,
            params=params,
            eval_steps=config.eval_steps,
            compile_s=compile_s,
            train_s=train_s,
            steps_done=steps_done.copy(),
            diverged_at=diverged_at.copy(),
            interrupted=interrupted,
            **outputs,
        )

    tiles = plan.tiles
    every = checkpoint_every
    done = resume.tile * config.steps + resume.step if resume is not None else 0
    next_checkpoint = (done // every + 1) * every if every else None
    saved_at = None

    def finish(tile_index: int, end: int, state_after, report_args) -> bool:
        """Records a chunk and checkpoints after it if due; True if training should stop."""
        nonlocal next_checkpoint, saved_at
        record(_report(*report_args))
        done = tile_index * config.steps + end
        position = (
            (tile_index + 1, 0, None) if end == config.steps else (tile_index, end, state_after)
        )
        stop = should_stop is not None and should_stop()
        if stop or (next_checkpoint is not None and done >= next_checkpoint):
            save(*position)
            saved_at = position[:2]
            if every:
                next_checkpoint = (done // every + 1) * every
        return stop

    compiled, running_since = {}, None
    for tile_index in range(resume.tile if resume is not None else 0, len(tiles)):
        seed_block, setting_block = tiles[tile_index]
        tile_seeds = _pad([seeds[i] for i in seed_block], plan.tile_seeds)
        tile_settings = _pad([settings[j] for j in setting_block], plan.tile_settings)
        models = _tile_models(seed_block, setting_block, len(settings))
        valid = (len(seed_block), len(setting_block))
        state = init_grid(
            config, dataset.num_features, dataset.num_classes, tile_seeds, tile_settings, target
        )
        step = 0
        if resume is not None and tile_index == resume.tile and resume.step:
            if resume.step not in chunk_ends:
                raise CheckpointError(
                    f"the checkpoint's step {resume.step} does not end a chunk of this run"
                )
            state, step = _restore(state, resume.state, spread), resume.step
        if should_stop is not None and should_stop():
            save(tile_index, step, state if step else None)
            return result(interrupted=True)
        seed_array = np.asarray(tile_seeds, np.int32)
        seed_array = (
            parallel.put(
                seed_array, parallel.sharding(mesh, 0 if plan.shard_axis == 0 else None, 1)
            )
            if target is not None
            else jnp.asarray(seed_array)
        )

        compile_start = time.perf_counter()
        for num_windows, window_steps in dict.fromkeys(chunks):
            if (num_windows, window_steps) not in compiled:
                compiled[num_windows, window_steps] = training.run_chunk.lower(
                    state, scalar(0, np.int32), data, seed_array, loss_scale,
                    num_windows=num_windows, window_steps=window_steps,
                    batch_size=config.batch_size, histogram_buckets=histogram_buckets,
                ).compile()  # fmt: skip
        compile_s += time.perf_counter() - compile_start

        train_start = running_since = time.perf_counter()
        pending = None
        for num_windows, window_steps in chunks[chunk_ends.index(step) + 1 if step else 0 :]:
            state, *chunk_outputs = compiled[num_windows, window_steps](
                state, scalar(step, np.int32), data, seed_array, loss_scale
            )
            chunk_steps = np.arange(step + 1, step + num_windows * window_steps + 1)
            step += num_windows * window_steps
            # Record the previous chunk while this one runs.
            if pending is not None and finish(tile_index, *pending):
                train_s += time.perf_counter() - train_start
                return result(interrupted=True)
            report_args = (models, valid, chunk_steps, window_steps, state.params, *chunk_outputs)
            pending = (step, state, report_args)
        stop = finish(tile_index, *pending)
        train_s += time.perf_counter() - train_start
        running_since = None
        if stop and tile_index + 1 < len(tiles):
            return result(interrupted=True)

    if saved_at != (len(tiles), 0):
        save(len(tiles), 0, None)
    return result(interrupted=False)


def _report(models, valid, steps, window_steps, params, train, test, histograms) -> ChunkReport:
    params, train, test, histograms = parallel.to_host((params, train, test, histograms))
    seeds, settings = valid

    def flat(leaf, lead):
        # (..., S, M, rest) padded -> (..., valid S * valid M, rest)
        leaf = leaf[(slice(None),) * lead + (slice(0, seeds), slice(0, settings))]
        return leaf.reshape(*leaf.shape[:lead], seeds * settings, *leaf.shape[lead + 2 :])

    return ChunkReport(
        models=models,
        steps=steps,
        train=training.Metrics(*(flat(m, 2).reshape(len(steps), -1) for m in train)),
        eval_steps=steps[window_steps - 1 :: window_steps],
        test=training.Metrics(*(flat(m, 1) for m in test)),
        params=models_first(jax.tree_util.tree_map(lambda leaf: flat(leaf, 0), params)),
        histograms=(
            None
            if histograms is None
            else jax.tree_util.tree_map(lambda leaf: flat(leaf, 1), histograms)
        ),
    )
