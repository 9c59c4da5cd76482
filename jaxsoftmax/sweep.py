"""Training a sweep of learning rates in one compiled program, and what comes back."""

import dataclasses
import math
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxsoftmax import model, training
from jaxsoftmax.data import Dataset
from jaxsoftmax.errors import ConfigError

DEFAULT_LEARNING_RATES = (0.002, 0.005, 0.008)
# Steps per host dispatch, about: large enough to hide dispatch, small enough for progress.
DEFAULT_CHUNK_STEPS = 200
SCHEDULES = ("constant", "cosine")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SweepConfig:
    """How to train a sweep; the defaults reproduce the TensorFlow tutorial.

    Attributes:
      learning_rates: one model is trained per value, all in one program.
      steps: gradient descent steps per model.
      batch_size: training examples per step (shared by every model).
      eval_every: evaluate on the full test set every this many steps, and at the end.
      loss_scale: the objective is `loss_scale * mean cross-entropy` (100: the tutorial's).
      seed: seeds the minibatch order and any random initialisation.
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
    init_scale: float = 0.0
    schedule: str = "constant"
    chunk_steps: int = DEFAULT_CHUNK_STEPS

    def __post_init__(self):
        object.__setattr__(self, "learning_rates", tuple(float(x) for x in self.learning_rates))
        if not self.learning_rates:
            raise ConfigError("learning_rates is empty; give at least one learning rate")
        for rate in self.learning_rates:
            if not (math.isfinite(rate) and rate > 0):
                raise ConfigError(f"learning rate {rate} is not a positive finite number")
        for name in ("steps", "batch_size", "eval_every", "chunk_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
        if not (math.isfinite(self.loss_scale) and self.loss_scale > 0):
            raise ConfigError(f"loss_scale {self.loss_scale} is not a positive finite number")
        if not (math.isfinite(self.init_scale) and self.init_scale >= 0):
            raise ConfigError(f"init_scale {self.init_scale} must be finite and >= 0")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule {self.schedule!r} is not one of {', '.join(SCHEDULES)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"seed must be a whole number, got {self.seed!r}")

    @property
    def eval_steps(self) -> np.ndarray:
        """The steps after which the test set is evaluated: every `eval_every`, and the last."""
        steps = np.arange(self.eval_every, self.steps + 1, self.eval_every)
        if steps.size == 0 or steps[-1] != self.steps:
            steps = np.append(steps, self.steps)
        return steps

    def to_dict(self) -> dict:
        """A JSON-friendly copy."""
        return dataclasses.asdict(self) | {"learning_rates": list(self.learning_rates)}


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class SweepResult:
    """What a sweep produced, as NumPy arrays; K is the number of learning rates.

    Attributes:
      config: the run's settings.
      params: trained parameters, `w` of shape (K, features, classes), `b` (K, classes).
      train_loss: (steps, K), the objective on each step's batch, before that step.
      train_accuracy: (steps, K).
      eval_steps: (E,), the step after which each evaluation ran.
      test_loss: (E, K), the objective on the full test set.
      test_accuracy: (E, K).
      compile_s: seconds spent compiling.
      train_s: seconds spent training and evaluating, compilation excluded.
    """

    config: SweepConfig
    params: dict[str, np.ndarray]
    train_loss: np.ndarray
    train_accuracy: np.ndarray
    eval_steps: np.ndarray
    test_loss: np.ndarray
    test_accuracy: np.ndarray
    compile_s: float
    train_s: float

    def runs(self) -> list[dict]:
        """One summary per learning rate: its final train loss, test loss and test accuracy."""
        return [
            {
                "learning_rate": rate,
                "test_accuracy": float(self.test_accuracy[-1, k]),
                "test_loss": float(self.test_loss[-1, k]),
                "train_loss": float(self.train_loss[-1, k]),
                "steps": self.config.steps,
            }
            for k, rate in enumerate(self.config.learning_rates)
        ]


@dataclasses.dataclass(frozen=True)
class ChunkReport:
    """Progress after a chunk, as NumPy arrays (K models).

    Attributes:
      steps: (S,) the step numbers this chunk trained, 1-based.
      train: training metrics, each (S, K).
      eval_steps: (E,) steps after which the chunk evaluated.
      test: test metrics, each (E, K).
      params: the parameters after the chunk's last step, leading axis K.
      histograms: `weights` and `biases` histograms at each evaluation, leading
        axes (E, K); None unless `train_sweep` was asked for them.
    """

    steps: np.ndarray
    train: training.Metrics
    eval_steps: np.ndarray
    test: training.Metrics
    params: dict[str, np.ndarray]
    histograms: dict[str, training.Histogram] | None


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


def to_device(dataset: Dataset) -> training.DeviceData:
    """Puts a dataset on the default device, images uint8 and flattened."""
    return training.DeviceData(
        train_images=jnp.asarray(dataset.train_images.reshape(len(dataset.train_images), -1)),
        train_labels=jnp.asarray(dataset.train_labels),
        test_images=jnp.asarray(dataset.test_images.reshape(len(dataset.test_images), -1)),
        test_labels=jnp.asarray(dataset.test_labels),
    )


def shuffle_key(seed: int) -> jax.Array:
    """The key that orders a run's minibatches."""
    return jax.random.fold_in(jax.random.key(seed), 0)


def first_batch(config: SweepConfig, num_train: int) -> np.ndarray:
    """Indices of the training examples in the first step's batch."""
    order = training.epoch_permutation(shuffle_key(config.seed), 0, num_train)
    return np.asarray(order[: config.batch_size])


def init_sweep(config: SweepConfig, num_features: int, num_classes: int) -> training.TrainState:
    """The initial state of every model of the sweep, in `training.sweep_layout`."""
    init_key = jax.random.fold_in(jax.random.key(config.seed), 1)
    params = model.init_params(num_features, num_classes, key=init_key, scale=config.init_scale)
    learning_rates = jnp.asarray(config.learning_rates, jnp.float32)
    decay_steps = config.steps if config.schedule == "cosine" else 0

    def one_model(learning_rate):
        return training.sweep_layout(training.init_state(params, learning_rate, decay_steps))

    return jax.vmap(one_model)(learning_rates)


def models_first(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Host copy of a sweep's parameters in one model's layout: `w` (K, features, classes)."""
    return jax.tree_util.tree_map(np.asarray, training.sweep_layout(params))


def train_sweep(
    dataset: Dataset,
    config: SweepConfig = SweepConfig(),
    *,
    on_chunk: Callable[[ChunkReport], None] | None = None,
    histogram_buckets: int = 0,
) -> SweepResult:
    """Trains one model per learning rate, all at once, and evaluates them on the test set.

    Args:
      dataset: the data; images stay uint8 on the device.
      config: the run's settings.
      on_chunk: called on the host after each chunk with its metrics (for progress
        bars and summaries); the next chunk is already running meanwhile.
      histogram_buckets: if positive, the chunk reports carry histograms of every
        model's parameters at each evaluation, computed on the device.

    Returns:
      The trained parameters and every metric, as NumPy arrays.

    Raises:
      ConfigError: the batch is larger than the training set.
    """
    check_fits(config, dataset)
    data = to_device(dataset)
    state = init_sweep(config, dataset.num_features, dataset.num_classes)
    key = shuffle_key(config.seed)
    loss_scale = jnp.float32(config.loss_scale)
    chunks = plan_chunks(config)

    compile_start = time.perf_counter()
    compiled = {}
    for num_windows, window_steps in dict.fromkeys(chunks):
        compiled[num_windows, window_steps] = training.run_chunk.lower(
            state, jnp.int32(0), data, key, loss_scale,
            num_windows=num_windows, window_steps=window_steps, batch_size=config.batch_size,
            histogram_buckets=histogram_buckets,
        ).compile()  # fmt: skip
    compile_s = time.perf_counter() - compile_start

    train_start = time.perf_counter()
    reports, pending, step = [], None, 0
    for num_windows, window_steps in chunks:
        state, *outputs = compiled[num_windows, window_steps](
            state, jnp.int32(step), data, key, loss_scale
        )
        chunk_steps = np.arange(step + 1, step + num_windows * window_steps + 1)
        step += num_windows * window_steps
        # Fetch the previous chunk's metrics while this one runs.
        if pending is not None:
            reports.append(_report(*pending, on_chunk))
        pending = (chunk_steps, window_steps, state.params, *outputs)
    reports.append(_report(*pending, on_chunk))
    params = models_first(jax.device_get(state.params))
    train_s = time.perf_counter() - train_start

    return SweepResult(
        config=config,
        params=params,
        train_loss=np.concatenate([r.train.loss for r in reports]),
        train_accuracy=np.concatenate([r.train.accuracy for r in reports]),
        eval_steps=np.concatenate([r.eval_steps for r in reports]),
        test_loss=np.concatenate([r.test.loss for r in reports]),
        test_accuracy=np.concatenate([r.test.accuracy for r in reports]),
        compile_s=compile_s,
        train_s=train_s,
    )


def _report(steps, window_steps, params, train, test, histograms, on_chunk) -> ChunkReport:
    params, train, test, histograms = jax.device_get((params, train, test, histograms))
    num_models = train.loss.shape[-1]
    report = ChunkReport(
        steps=steps,
        train=training.Metrics(*(m.reshape(-1, num_models) for m in train)),
        eval_steps=steps[window_steps - 1 :: window_steps],
        test=training.Metrics(*test),
        params=models_first(params),
        histograms=histograms,
    )
    if on_chunk is not None:
        on_chunk(report)
    return report
