"""What a sweep reports after each chunk, and the host's record of everything so far."""

import dataclasses

import jax
import numpy as np

from jaxsoftmax.core import engine
from jaxsoftmax.core.engine import Metrics
from jaxsoftmax.core.histograms import Histogram
from jaxsoftmax.sweep import divergence
from jaxsoftmax.sweep.config import SweepConfig
from jaxsoftmax.sweep.results import SweepResult


@dataclasses.dataclass(frozen=True)
class ChunkReport:
    """Progress after a chunk, as NumPy arrays, for the K models it trained.

    Attributes:
      models: (K,) the models' indices in the sweep (`config.points`); a large grid
        trains in slices, so a chunk may cover only some of them.
      steps: (S,) the step numbers this chunk trained, 1-based.
      train: training metrics, each (S, K).
      eval_steps: (E,) steps after which the chunk evaluated.
      test: test metrics, each (E, K); None where the test set is not evaluated.
      validation: validation metrics, each (E, K); None without a validation split.
      params: the parameters after the chunk's last step, `w` (K, features, classes)
        and `b` (K, classes).
      histograms: `weights` and `biases` histograms at each evaluation, leading
        axes (E, K); None unless the run was asked for them.
      diverged_at: (K,) the step each model diverged at, up to this chunk's end (see
        `divergence`), 0 if it has not.
      finished: whether these models have now taken every step.
    """

    models: np.ndarray
    steps: np.ndarray
    train: Metrics
    eval_steps: np.ndarray
    test: Metrics | None
    validation: Metrics | None
    params: dict[str, np.ndarray]
    histograms: dict[str, Histogram] | None
    diverged_at: np.ndarray
    finished: bool


@dataclasses.dataclass(kw_only=True, eq=False)
class Progress:
    """Everything a sweep has done so far, kept on the host; K models, `config.points` order.

    Attributes:
      train_loss, train_accuracy: (steps, K), each step's minibatch metrics; NaN
        where not reached.
      test_loss, test_accuracy: (E, K) at `config.eval_steps`; NaN where not reached
        (or not evaluated).
      validation_loss, validation_accuracy: the same on the validation split.
      steps_done: (K,) the steps each model has taken.
      diverged_at: (K,) the step each model diverged at, 0 if it has not.
      high_steps: (K,) steps up to now with a loss above the divergence threshold.
      params: final `w` (K, features, classes) and `b` (K, classes) of the models
        that finished (NaN for the others), or None if they are not kept.
      states: the leaves of the final `TrainState` of the models that finished,
        models-first (K, ...) (see `warm`), where they are kept; else None.
      compile_s, train_s: seconds spent compiling, and training and evaluating.
    """

    train_loss: np.ndarray
    train_accuracy: np.ndarray
    test_loss: np.ndarray
    test_accuracy: np.ndarray
    validation_loss: np.ndarray
    validation_accuracy: np.ndarray
    steps_done: np.ndarray
    diverged_at: np.ndarray
    high_steps: np.ndarray
    params: dict[str, np.ndarray] | None
    states: list[np.ndarray] | None = None
    compile_s: float = 0.0
    train_s: float = 0.0

    @classmethod
    def start(
        cls, config: SweepConfig, num_features: int, num_classes: int, *, keep_params: bool
    ) -> "Progress":
        """Nothing done yet."""
        num_models = config.num_models
        params = None
        if keep_params:
            params = {
                "w": np.full((num_models, num_features, num_classes), np.nan, np.float32),
                "b": np.full((num_models, num_classes), np.nan, np.float32),
            }
        return cls(
            **{name: np.full(shape, np.nan, np.float32) for name, shape in shapes(config)},
            steps_done=np.zeros(num_models, np.int64),
            diverged_at=np.zeros(num_models, np.int64),
            high_steps=np.zeros(num_models, np.int64),
            params=params,
        )

    def record(self, report: ChunkReport, config: SweepConfig) -> np.ndarray:
        """Records a chunk (`report.diverged_at` not yet filled in).

        Returns:
          (K,) the step each of the report's models diverged at so far, 0 if it has not.
        """
        rows, models = report.steps - 1, report.models
        self.train_loss[np.ix_(rows, models)] = report.train.loss
        self.train_accuracy[np.ix_(rows, models)] = report.train.accuracy
        evals = np.searchsorted(config.eval_steps, report.eval_steps)
        for split in ("test", "validation"):
            metrics = getattr(report, split)
            if metrics is not None:
                getattr(self, f"{split}_loss")[np.ix_(evals, models)] = metrics.loss
                getattr(self, f"{split}_accuracy")[np.ix_(evals, models)] = metrics.accuracy
        evaluated = [m.loss for m in (report.test, report.validation) if m is not None]
        self.steps_done[models] = report.steps[-1]
        finite = np.isfinite(report.params["w"]).all(axis=(1, 2)) & np.isfinite(
            report.params["b"]
        ).all(axis=1)
        self.diverged_at[models], self.high_steps[models] = divergence.update(
            self.diverged_at[models],
            self.high_steps[models],
            self.train_loss[0, models],
            steps=report.steps,
            train_loss=report.train.loss,
            eval_steps=report.eval_steps,
            eval_loss=np.maximum.reduce(evaluated) if evaluated else np.zeros((0, len(models))),
            params_finite=finite,
            window=divergence.window(config.eval_every, config.steps),
        )
        if self.params is not None and report.finished:
            for name in self.params:
                self.params[name][models] = report.params[name]
        return self.diverged_at[models]

    def keep_states(self, models: np.ndarray, leaves: list[np.ndarray]) -> None:
        """Keeps the final state leaves (len(models), ...) of `models`."""
        if self.states is None:
            num_models = len(self.steps_done)
            self.states = [np.zeros((num_models, *leaf.shape[1:]), leaf.dtype) for leaf in leaves]
        for kept, leaf in zip(self.states, leaves, strict=True):
            kept[models] = leaf

    def result(
        self, config: SweepConfig, *, interrupted: bool, times=None, share: bool = False
    ) -> SweepResult:
        """A `SweepResult` of a copy of this record (of the record itself if `share`, for
        a record that changes no more); `times`: its (compile_s, train_s) if not these."""
        progress = dataclasses.replace(self) if share else self.copy()
        compile_s, train_s = (progress.compile_s, progress.train_s) if times is None else times
        return SweepResult(
            config=config,
            params=progress.params,
            train_loss=progress.train_loss,
            train_accuracy=progress.train_accuracy,
            eval_steps=config.eval_steps,
            test_loss=progress.test_loss,
            test_accuracy=progress.test_accuracy,
            validation_loss=progress.validation_loss,
            validation_accuracy=progress.validation_accuracy,
            compile_s=compile_s,
            train_s=train_s,
            steps_done=progress.steps_done,
            diverged_at=progress.diverged_at,
            interrupted=interrupted,
        )

    def copy(self) -> "Progress":
        """A copy that later records leave as it is."""
        return dataclasses.replace(
            self,
            **{field.name: getattr(self, field.name).copy() for field in _array_fields()},
            params=None if self.params is None else {k: v.copy() for k, v in self.params.items()},
            states=None if self.states is None else [leaf.copy() for leaf in self.states],
        )

    def inconsistencies(self, config: SweepConfig) -> list[str]:
        """The parts that do not fit `config` (empty if all do)."""
        num_models = config.num_models
        wrong = [name for name, shape in shapes(config) if getattr(self, name).shape != shape]
        for name in ("steps_done", "diverged_at", "high_steps"):
            values = getattr(self, name)
            if values.shape != (num_models,) or values.dtype.kind not in "iu":
                wrong.append(name)
        if self.params is not None:
            w, b = self.params["w"], self.params["b"]
            if w.ndim != 3 or len(w) != num_models or b.shape != (num_models, w.shape[-1]):
                wrong.append("params")
        return wrong


def _array_fields():
    return [
        field
        for field in dataclasses.fields(Progress)
        if field.name not in ("params", "states", "compile_s", "train_s")
    ]


def shapes(config: SweepConfig) -> list[tuple[str, tuple[int, int]]]:
    """The metrics a sweep records and their shapes: (steps or evaluations, models)."""
    steps, evals, models = config.steps, len(config.eval_steps), config.num_models
    return [
        ("train_loss", (steps, models)),
        ("train_accuracy", (steps, models)),
        ("test_loss", (evals, models)),
        ("test_accuracy", (evals, models)),
        ("validation_loss", (evals, models)),
        ("validation_accuracy", (evals, models)),
    ]


def chunk_report(
    models, valid, steps, window_steps, params, train, evaluations, histograms, finished
) -> ChunkReport:
    """A chunk's outputs (leading axes S x M, padded) as a report on its valid models."""
    seeds, settings = valid

    def flat(leaf, lead):
        # (..., S, M, rest) padded -> (..., valid S * valid M, rest)
        leaf = leaf[(slice(None),) * lead + (slice(0, seeds), slice(0, settings))]
        return leaf.reshape(*leaf.shape[:lead], seeds * settings, *leaf.shape[lead + 2 :])

    return ChunkReport(
        models=models,
        steps=steps,
        train=engine.Metrics(*(flat(m, 2).reshape(len(steps), -1) for m in train)),
        eval_steps=steps[window_steps - 1 :: window_steps],
        test=_evaluated(evaluations, "test", flat, len(steps[window_steps - 1 :: window_steps])),
        validation=_evaluated(
            evaluations, "validation", flat, len(steps[window_steps - 1 :: window_steps])
        ),
        params=jax.tree_util.tree_map(lambda leaf: flat(leaf, 0), params),
        histograms=(
            None
            if histograms is None
            else jax.tree_util.tree_map(lambda leaf: flat(leaf, 1), histograms)
        ),
        diverged_at=np.zeros(len(models), np.int64),
        finished=finished,
    )


def _evaluated(evaluations: dict, split: str, flat, num_evals: int) -> engine.Metrics | None:
    if split not in evaluations:
        return None
    return engine.Metrics(*(flat(m, 1) for m in evaluations[split]))
