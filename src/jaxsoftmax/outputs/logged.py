"""`train_logged`: what `python -m jaxsoftmax.train` writes, from Python, with one call.

    dataset = js.make_dataset(train_images=x, train_labels=y, test_images=xt, test_labels=yt)
    result = js.train_logged(dataset, js.SweepConfig(learning_rates=(0.002, 0.005)), "runs/mine")
    js.load_run("runs/mine").best("test_accuracy").predict(xt)

The log directory then holds the same TensorBoard events (scalars, histograms, weight
templates, input images, the graph, HPARAMS, CUSTOM SCALARS), checkpoint.npz and
results.json as a command-line run, so `tensorboard`, `python -m jaxsoftmax.report`,
`predict`, `export` and `load_run` read it alike. A grid, a search (`halving`), `--auto`'s
recipe (`auto`) and going on after a stop (`resume`) are all here, and the command line
drives its runs through the same `log_run`, so both write what one writes.
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from jaxsoftmax import files
from jaxsoftmax.errors import CheckpointError, ConfigError
from jaxsoftmax.outputs import logdirs
from jaxsoftmax.sweep import grid
from jaxsoftmax.sweep.config import SweepConfig

if TYPE_CHECKING:  # the command line imports this module before JAX (see cli._prepare)
    from jaxsoftmax.data.dataset import Dataset
    from jaxsoftmax.search.spaces import Halving
    from jaxsoftmax.sweep.protocol import Run
    from jaxsoftmax.sweep.results import SweepResult

DEFAULT_CHECKPOINT_EVERY = 1000  # steps, as the command line's --checkpoint-every


def _check_arguments(checkpoint_every, resume, auto, config, halving) -> None:
    if checkpoint_every < 1:
        raise ConfigError(f"`checkpoint_every` must be at least 1, got {checkpoint_every}")
    if (resume or auto is not None) and (config is not None or halving is not None):
        raise ConfigError("`resume` and `auto` take no `config` or `halving`: leave them None")


def train_logged(
    dataset: Dataset,
    config: SweepConfig | None,
    logdir: str | pathlib.Path,
    *,
    halving: Halving | None = None,
    auto: float | None = None,
    seed: int = 0,
    resume: bool = False,
    summaries: bool = True,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    overwrite: bool = False,
    progress: bool = False,
    should_stop: Callable[[], bool] | None = None,
) -> SweepResult:
    """Trains a sweep, a search or `auto`'s recipe, and writes it to a log directory.

    Args:
      dataset: the data (`load_dataset`, or `make_dataset` for arrays in memory).
      config: the sweep: a grid, or a search's trials (`search_config`); None: the
        tutorial's three learning rates. None with `resume` and `auto`.
      logdir: a new or empty folder (created), as Flax's `train_and_evaluate` takes one;
        with `resume`, the folder of the stopped run.
      halving: successive halving over `config`'s trials (`Halving`); else every model
        trains every step.
      auto: a time budget in seconds: `js.auto`'s recipe (a search sized to it, seeded
        by `seed`, then the chosen setting retrained on all the training data), logged.
      resume: go on with the stopped run in `logdir` from its last checkpoint (a run of
        this function or of the command line), to the same result as one never stopped.
      summaries: write TensorBoard events (results.json and the checkpoint always).
      checkpoint_every: save the run's state after about every this many steps.
      overwrite, progress: replace a finished run in `logdir`; a progress bar on stderr.
      should_stop: asked after each chunk; True stops there, after a checkpoint (the
        result is `interrupted`; `resume` goes on).

    Returns the result, as `train_sweep` returns it (a search's: every trial's). Raises
    ConfigError where `logdir` holds another run (and not `overwrite`) or is not
    writable, or the arguments do not go together; CheckpointError where, to `resume`,
    `logdir` holds no checkpoint of this data.
    """
    began = time.perf_counter()
    _check_arguments(checkpoint_every, resume, auto, config, halving)
    logdir = files.given_path(logdir, lambda why: ConfigError(f"`logdir` {why}"))
    if resume:
        run, record = _resumed(dataset, logdir)
        logdirs.claim(logdir)
    else:
        logdirs.check_free(logdir, overwrite=overwrite)  # before any training
        run, record = _started(dataset, config, halving, auto, seed, summaries)
        logdirs.prepare_logdir(logdir, overwrite=overwrite)
    record["checkpoint_every"] = checkpoint_every
    kept = record.pop("extra", None) or {"logged": record}  # a command-line run's: its own
    try:
        return log_run(run, dataset, logdir, names=record["names"], began=began,
                       summaries=record["summaries"], checkpoint_every=checkpoint_every,
                       progress=progress, checkpoint_extra=kept, resumes=record["resumes"],
                       auto=record["auto"], stop_requested=should_stop or (lambda: False),
                       )[0]  # fmt: skip
    finally:
        logdirs.release(logdir)


def _started(dataset, config, halving, auto, seed: int, summaries: bool) -> tuple[Run, dict]:
    """A new run (`auto`'s search and choice first, if asked for), and its log's record."""
    from jaxsoftmax.outputs.summaries import histogram_buckets
    from jaxsoftmax.search.runs import start_run

    found = None
    if auto is not None:
        from jaxsoftmax.search.auto import search_and_choose

        choice = search_and_choose(dataset, time_budget=auto, seed=seed)
        config, found = choice.retrain, choice.record
    config = SweepConfig() if config is None else config
    buckets = histogram_buckets(config, summaries)
    run = start_run(dataset, config, halving, histogram_buckets=buckets)
    names = grid.run_names(config) if found is None else [found["chosen"]]
    return run, {"names": list(names), "summaries": summaries, "auto": found, "resumes": 0}


def log_run(
    run: Run,
    dataset: Dataset,
    logdir: pathlib.Path | None,
    *,
    names: Sequence[str],
    began: float,
    timing: dict[str, float] | None = None,
    summaries: bool = True,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    progress: bool = False,
    checkpoint_extra: dict | None = None,
    resumes: int = 0,
    auto: dict | None = None,
    stop_requested: Callable[[], bool] = lambda: False,
    stop_note: str | None = None,
) -> tuple[SweepResult, dict, dict[str, float]]:
    """Drives `run` (a sweep or a search) to its end, or to a stop `stop_requested` asks
    for, writing TensorBoard events, checkpoints and at the end results.json to `logdir`
    (None: nothing, in processes other than process 0); the one loop of `train_logged`
    and the command line.

    Args:
      names: each model's run name; began: `time.perf_counter()` when the run began.
      timing: seconds spent before the run (imports, data), for results.json.
      checkpoint_extra: kept in each checkpoint, to resume the log.
      resumes: how many times the run has been resumed.
      auto: what `auto`'s search found, for results.json.
      stop_note: a line on stderr when a stop is asked for (the command line's).

    Returns:
      The result, results.json's sections beside the runs (`search`, `auto`), and the
      timing.
    """
    from jaxsoftmax.outputs import writing as outputs

    with outputs.RunOutputs(
        logdir, run=run, dataset=dataset, names=names, summaries=summaries,
        quiet=not progress, checkpoint_extra=checkpoint_extra or {}, resumes=resumes,
    ) as out:  # fmt: skip
        result, extras = outputs.drive(
            run,
            out,
            dataset,
            checkpoint_every=checkpoint_every,
            stop_requested=stop_requested,
            stop_note=stop_note,
        )
        if auto is not None:
            extras["auto"] = auto
        timing = dict(timing or {}) | ({"search_s": auto["search_s"]} if auto else {})
        timing |= run.session_times() | {"total_s": time.perf_counter() - began}
        if logdir is not None:
            outputs.write_results(logdir, result, dataset=dataset, timing=timing, names=names,
                                  **extras)  # fmt: skip
    return result, extras, timing


def _resumed(dataset: Dataset, logdir: pathlib.Path) -> tuple[Run, dict]:
    """The run stopped in `logdir`, restored, and its log's record (names, summaries,
    auto, resumes counted up; `extra`: the checkpoint's record to keep, updated)."""
    from jaxsoftmax.files import CHECKPOINT_FILE
    from jaxsoftmax.outputs.summaries import histogram_buckets
    from jaxsoftmax.search.runs import restore_run
    from jaxsoftmax.sweep import checkpoint as checkpoints

    path = logdir / CHECKPOINT_FILE
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint in {logdir}; `resume` takes the `logdir` of a stopped run"
        )
    logdirs.check_writable(logdir)
    checkpoint, extra = checkpoints.load(path)
    if checkpoint.finished and logdirs.holds_finished_run(logdir):
        raise ConfigError(f"the run in {logdir} has finished; there is nothing to resume")
    try:
        if isinstance(extra.get("settings"), dict):  # the command line's
            settings = dict(extra["settings"])
            settings["resumes"] += 1
            record = {"names": [str(name) for name in settings["run_names"]],
                      "summaries": bool(settings["summaries"]), "auto": settings.get("auto"),
                      "resumes": settings["resumes"], "extra": {"settings": settings}}  # fmt: skip
        else:
            record = dict(extra["logged"])
            record["resumes"] += 1
            record["names"] = [str(name) for name in record["names"]]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise CheckpointError(f"checkpoint {path} holds no record of its log") from None
    if len(record["names"]) != checkpoint.config.num_models:
        raise CheckpointError(f"checkpoint {path} is damaged (its run names)")
    buckets = histogram_buckets(checkpoint.config, record["summaries"])
    return restore_run(dataset, checkpoint, histogram_buckets=buckets), record
