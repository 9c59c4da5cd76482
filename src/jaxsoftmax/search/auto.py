"""`--auto` and `js.auto`: the best linear classifier for a dataset, chosen honestly.

1. A successive-halving search (see `halving`) over DEFAULT_SPACE, with a cosine
   schedule that decays to 0 so that every trial ends on a stable iterate, sized so that
   it takes about 60% of the time budget on a 2-core CPU: trials train for EPOCHS epochs at
   most, on the training set without its validation split.
2. The trial with the best final validation accuracy is chosen; nothing else is looked at.
3. Its setting is retrained on all the training data (train + validation) for as many
   epochs as the search validated, with a cosine schedule over them, and its test
   accuracy is measured once: reported, never used to choose.
"""

import dataclasses
import math
import time
from collections.abc import Callable

import numpy as np

from jaxsoftmax.data.dataset import Dataset
from jaxsoftmax.errors import ConfigError
from jaxsoftmax.search import spaces as search
from jaxsoftmax.search.halving import HalvingSearch
from jaxsoftmax.sweep import grid
from jaxsoftmax.sweep.config import SweepConfig
from jaxsoftmax.sweep.results import SweepResult, float32_value

DEFAULT_SPACE = "learning_rate=log:3e-4:1e-1 weight_decay=log:1e-5:1e-1 momentum=0:0.95"
EPOCHS = 10
BATCH_SIZE = 100
ETA = 3
RUNGS = 3  # after the first: trials train EPOCHS / ETA**RUNGS epochs, then x ETA each rung
VALIDATION = 10_000  # at most; a sixth of the training images for smaller datasets
MIN_IMAGES = 12  # training images --auto needs: 2 held out, batches of the other 10
# Model-steps a second the search can count on for MNIST-sized models (784 x 10) on the
# 2-core CPU, an evaluation of the validation split counted as the steps it costs.
MODEL_STEPS_PER_S = 30_000
SEARCH_SHARE = 0.6  # of the budget; the rest: imports, data, the retraining
FIXED_S = 5.0  # of the search's share: its compilations (one a rung) and per-chunk work
MIN_TRIALS, MAX_TRIALS = 27, 3**6  # 3**6: 243, 81 and 27 go on to the later rungs
FINALISTS = 10  # kept in results.json


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class AutoResult:
    """What `auto` found.

    Attributes:
      setting: the chosen {learning_rate, weight_decay, momentum}.
      name: its run name in the search.
      validation_accuracy: its final validation accuracy in the search.
      test_accuracy: the test accuracy of the model retrained with it on all the
        training data; `final` is that training's result (its `params`: the model).
      search: every trial's record; names: their run names.
      seconds: wall time of the search and of the retraining.
    """

    setting: dict
    name: str
    validation_accuracy: float
    test_accuracy: float
    final: SweepResult
    search: SweepResult
    names: list[str]
    seconds: dict[str, float]


def plan(dataset: Dataset, time_budget: float = 60.0, seed: int = 0):
    """The search `auto` runs on `dataset` within about `time_budget` seconds.

    Returns:
      (config, halving): every trial's settings, and the rungs' rule.
    """
    if len(dataset.train_images) < MIN_IMAGES:
        raise ConfigError(
            f"`auto` needs at least {MIN_IMAGES} training images to hold some out for "
            f"validation; {dataset.name} has {len(dataset.train_images)}"
        )
    validation = min(VALIDATION, len(dataset.train_images) // 6)
    batch_size = min(BATCH_SIZE, len(dataset.train_images) - validation)
    steps_per_epoch = max(1, (len(dataset.train_images) - validation) // batch_size)
    min_steps = max(1, round(EPOCHS * steps_per_epoch / ETA**RUNGS))
    steps = min_steps * ETA**RUNGS
    halving = search.Halving(eta=ETA, min_steps=min_steps)
    # Smaller models than MNIST's are no faster a step: the per-step work is then overhead.
    size = max(1.0, dataset.num_features * dataset.num_classes / (784 * 10))
    evaluation = validation / BATCH_SIZE / 2  # steps one evaluation costs, about
    per_trial = _work(halving, steps, min_steps, evaluation)
    seconds = max(0.0, SEARCH_SHARE * time_budget - FIXED_S)
    affordable = seconds * MODEL_STEPS_PER_S / size / per_trial
    trials = int(min(MAX_TRIALS, max(MIN_TRIALS, affordable)))
    config = search.search_config(
        search.parse_space(DEFAULT_SPACE), trials, seed=seed, steps=steps,
        batch_size=batch_size, eval_every=min_steps, schedule="cosine",
        validation=validation, evaluate_test=False,
    )  # fmt: skip
    return config, halving


def _work(halving: search.Halving, steps: int, eval_every: int, evaluation: float) -> float:
    """Model-steps per trial of the search, on average (evaluations included)."""
    work, begin, share = 0.0, 0, 1.0
    for end in halving.rungs(steps):
        work += share * ((end - begin) + (end - begin) / eval_every * evaluation)
        begin, share = end, share / halving.eta
    return work


def retrain_config(config: SweepConfig, setting: dict, dataset: Dataset) -> SweepConfig:
    """The chosen setting on all the training data, for as many epochs as the search."""
    epochs = config.steps / ((len(dataset.train_images) - config.validation) // config.batch_size)
    steps = max(1, round(epochs * (len(dataset.train_images) // config.batch_size)))
    return SweepConfig(
        learning_rates=(setting["learning_rate"],), weight_decays=(setting["weight_decay"],),
        momenta=(setting["momentum"],), steps=steps, batch_size=config.batch_size,
        eval_every=max(1, math.ceil(steps / 20)), schedule="cosine", loss_scale=config.loss_scale,
        seed=config.seed,
    )  # fmt: skip


def choose(
    dataset: Dataset,
    *,
    time_budget: float = 60.0,
    seed: int = 0,
    on_chunk: Callable | None = None,
    **plan_options,
) -> tuple[SweepConfig, SweepResult, int]:
    """Step 1 and 2: the search, and the trial it chooses (see the module's docstring).

    Args:
      on_chunk: called with the search's progress after each chunk: (steps a surviving
        trial has taken, steps it will take, the best validation accuracy so far).
      plan_options: for `make_plan` (e.g. `max_models_per_slice`, `layout`).

    Returns:
      The search's config, its result, the chosen trial's index.

    Raises:
      ConfigError: every trial diverged (no setting to choose).
    """
    config, halving = plan(dataset, time_budget, seed)
    run = HalvingSearch.start(dataset, config, halving, **plan_options)
    for report in run:
        if on_chunk is not None:
            best = np.nanmax(report.validation.accuracy[-1], initial=np.nan)
            on_chunk(run.steps_trained, run.total_steps, float(best))
    result = run.result()
    chosen = search.choose_trial(result)  # on validation; the test set is not read here
    if chosen is None:
        raise ConfigError("every setting `auto` tried diverged; is the data scaled to [0, 1]?")
    return config, result, chosen


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class AutoChoice:
    """What `auto`'s search chose, before the retraining (steps 1 and 2).

    Attributes:
      retrain: the config retraining the chosen setting on all the training data.
      chosen: the chosen trial's index; name: its run name; names: every trial's.
      search: every trial's record.
      record: what results.json keeps of the search (its `auto` section).
    """

    retrain: SweepConfig
    chosen: int
    name: str
    names: list[str]
    search: SweepResult
    record: dict


def search_and_choose(dataset: Dataset, *, time_budget: float = 60.0, seed: int = 0,
                      on_chunk: Callable | None = None, **plan_options) -> AutoChoice:  # fmt: skip
    """Steps 1 and 2 of the recipe (see the module's docstring), and the config of step
    3; `js.auto`, `js.train_logged(auto=...)` and `--auto` all run it."""
    began = time.perf_counter()
    config, result, chosen = choose(
        dataset, time_budget=time_budget, seed=seed, on_chunk=on_chunk, **plan_options
    )
    retrain = retrain_config(config, config.settings[chosen], dataset)
    found = record(config, result, chosen, time.perf_counter() - began)
    found["retrain"] = {"steps": retrain.steps, "training_images": len(dataset.train_images)}
    names = grid.run_names(config)
    return AutoChoice(retrain=retrain, chosen=chosen, name=names[chosen], names=names,
                      search=result, record=found)  # fmt: skip


def auto(
    dataset: Dataset,
    *,
    time_budget: float = 60.0,
    seed: int = 0,
    on_chunk: Callable | None = None,
) -> AutoResult:
    """The best linear classifier for `dataset` in about `time_budget` seconds (see the
    module's docstring); `on_chunk` as for `choose`. `js.train_logged(dataset, None,
    logdir, auto=time_budget)` runs the same recipe and writes it to a log directory."""
    from jaxsoftmax.sweep.train import train_sweep

    began = time.perf_counter()
    choice = search_and_choose(dataset, time_budget=time_budget, seed=seed, on_chunk=on_chunk)
    searched = time.perf_counter()
    final = train_sweep(dataset, choice.retrain)
    return AutoResult(
        setting=choice.record["setting"],
        name=choice.name,
        validation_accuracy=float(choice.search.validation_accuracy[-1, choice.chosen]),
        test_accuracy=float(final.test_accuracy[-1, 0]),
        final=final,
        search=choice.search,
        names=choice.names,
        seconds={"search_s": searched - began, "retrain_s": time.perf_counter() - searched},
    )


def record(config: SweepConfig, result: SweepResult, chosen: int, seconds: float) -> dict:
    """What results.json keeps of --auto's search: the trial chosen, and the best
    FINALISTS by validation accuracy."""
    names = grid.run_names(config)
    finals = result.validation_accuracy[-1]
    best = result.ranked("validation_accuracy")[:FINALISTS]
    return {
        "chosen": names[chosen],
        "setting": config.settings[chosen],
        "validation_accuracy": float32_value(finals[chosen]),
        "trials": config.num_models,
        "validation": config.validation,
        "search_steps": config.steps,
        "rungs": search.Halving(eta=ETA, min_steps=config.eval_every).rungs(config.steps),
        "search_s": round(seconds, 2),
        "finalists": [
            {"name": names[k], "validation_accuracy": float32_value(finals[k])} for k in best
        ],
    }
