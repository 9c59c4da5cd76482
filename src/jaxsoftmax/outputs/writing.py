"""What the command line makes of a run as it trains: summaries, a progress bar,
checkpoints, and at the end results.json and the printed table.

stdout carries the results (the table, the times, where the files are); stderr
carries progress, notes, warnings and errors. Only process 0 writes files.
"""

import concurrent.futures
import contextlib
import functools
import pathlib
import sys
from collections.abc import Sequence

import numpy as np

from jaxsoftmax.data.dataset import Dataset
from jaxsoftmax.search import spaces as search
from jaxsoftmax.sweep import checkpoint as checkpoints
from jaxsoftmax.sweep import results
from jaxsoftmax.sweep.progress import ChunkReport
from jaxsoftmax.sweep.protocol import Run

DIVERGED_SHOWN = 5


class RunOutputs(contextlib.AbstractContextManager):
    """A run's outputs while it trains; every file is closed however the block is left.

    Args:
      logdir: where files go; None in processes other than process 0.
      run: the sweep being trained.
      dataset: its data (for the input images and the graph).
      names: each model's TensorBoard run name.
      summaries: whether to write TensorBoard events.
      quiet: no progress bar.
      checkpoint_extra: what each checkpoint keeps beside the run, to resume its log
        (the command line's settings, or `logged`'s record).
      resumes: how many times the run has been resumed.
    """

    def __init__(
        self,
        logdir: pathlib.Path | None,
        *,
        run: Run,
        dataset: Dataset,
        names: Sequence[str],
        summaries: bool,
        quiet: bool,
        checkpoint_extra: dict,
        resumes: int,
    ):
        import tqdm

        self._logdir, self._names, self._run = logdir, list(names), run
        self._extra = checkpoint_extra
        # A search writes its best trials' curves when it is done, not every trial's as
        # it goes: thousands of trials' events would cost more than their training.
        self._search = run.search_record()
        self._live = self._search is None
        self._stack = contextlib.ExitStack()
        self._writer, self._first_events, self._write_first = None, None, None
        with contextlib.ExitStack() as opened:
            opened.push(self)  # closes what is open if the rest fails
            if summaries and logdir is not None:
                self._writer = self._stack.enter_context(
                    _summaries(logdir, run, dataset, self._names, resumes)
                )
            if self._writer is not None and not resumes:
                # Not needed before training: written by a thread once the first chunk has
                # compiled (tracing the graph alongside would slow the compilation down).
                pool = concurrent.futures.ThreadPoolExecutor(1)
                self._stack.callback(pool.shutdown)  # before the writer closes
                self._write_first = functools.partial(
                    pool.submit, _first_events, self._writer, run, dataset
                )
            self._bar = self._stack.enter_context(
                tqdm.tqdm(
                    total=run.total_steps,
                    initial=run.steps_trained,
                    unit="step",
                    desc=_description(run),
                    disable=quiet,
                    file=sys.stderr,
                )
            )
            opened.pop_all()

    def record(self, report: ChunkReport) -> None:
        """Writes a chunk's summaries and moves the progress bar."""
        if self._write_first is not None:
            self._first_events, self._write_first = self._write_first(), None
        elif self._first_events is not None and self._first_events.done():
            self._wait_for_first_events()  # a failure stops the run now, not at its end
        if self._writer is not None and self._live:
            self._writer.write_chunk(
                models=report.models,
                steps=report.steps,
                train=report.train._asdict(),
                eval_steps=report.eval_steps,
                evaluations={
                    split: metrics._asdict()
                    for split, metrics in (("test", report.test), ("validation", report.validation))
                    if metrics is not None
                },
                histograms=report.histograms,
                weights=report.params["w"],
                diverged_at=report.diverged_at,
            )
        self._bar.update(self._run.steps_trained - self._bar.n)
        for split in ("validation", "test"):  # the one to choose on, if there is one
            metrics = getattr(report, split)
            if metrics is not None and np.isfinite(metrics.accuracy[-1]).any():
                best = f"{np.nanmax(metrics.accuracy[-1]):.2%}"
                self._bar.set_postfix({f"{split}_accuracy": best})
                break

    def save(self, checkpoint) -> None:
        """Saves a checkpoint, a sweep's or a search's (process 0 only; every process
        must make it)."""
        if self._logdir is not None:
            checkpoints.save(self._logdir / checkpoints.CHECKPOINT_FILE, checkpoint, self._extra)

    def finish(self, result, dataset: Dataset) -> tuple:
        """What a finished run adds to its result and results.json (process 0 only):
        a search's chosen trial with its test metrics, its best trials' curves in
        TensorBoard, and where each model errs (see `analysis`).

        Returns:
          The result, and keyword arguments for `write_results`.
        """
        self._wait_for_first_events()
        if self._logdir is None or result.interrupted:
            return result, {}
        plan, chosen = self._run.plan, None  # None: a search past its last rung
        extras = {"layout": plan.layout} if plan is not None else {}
        if not self._live:
            result, chosen, per_run = search.conclude(
                result, dataset, rung_accuracy=self._run.rung_accuracy
            )
            extras["search"] = _search_record(self._search, self._names, chosen)
            if self._writer is not None:
                _write_search(self._writer, result, chosen)
        extras["analyses"] = self._analyse(result, dataset, [] if chosen is None else [chosen])
        if not self._live:
            for index, found in per_run.items():
                extras["analyses"][index] = extras["analyses"].get(index, {}) | found
        return result, extras

    def _analyse(self, result, dataset: Dataset, models: list[int] | None) -> dict[int, dict]:
        from jaxsoftmax.outputs import analysis

        if self._live:
            models = analysis.chosen_models(result)
        analyses = analysis.analyse(result, dataset, models)
        if self._writer is not None:
            for index, found in analyses.items():
                self._writer.write_analysis(index, found, dataset.test_images, dataset.test_labels)
        return {index: found.to_json() for index, found in analyses.items()}

    def note(self, message: str) -> None:
        """A line on stderr that leaves the progress bar whole."""
        self._bar.write(message, file=sys.stderr)

    def _wait_for_first_events(self) -> None:
        """Waits for the input images, layout and graph (writing them now if no chunk was
        recorded); raises what writing them raised."""
        if self._write_first is not None:
            self._first_events, self._write_first = self._write_first(), None
        if self._first_events is not None:
            future, self._first_events = self._first_events, None
            future.result()

    def __exit__(self, exc_type, *exc_info):
        with self._stack:
            if exc_type is None:
                self._wait_for_first_events()


def drive(
    run,
    out: RunOutputs,
    dataset: Dataset,
    *,
    checkpoint_every: int,
    stop_requested=lambda: False,
    stop_note: str | None = None,
) -> tuple:
    """The run loop every caller shares: each chunk recorded, a checkpoint when due or
    when `stop_requested()` says so (then the loop ends, saying `stop_note` if given), a
    final one, and the run's end.

    Returns:
      The result, and keyword arguments for `write_results` (see `RunOutputs.finish`).
    """
    for report in run:
        out.record(report)
        stop = stop_requested()
        if stop or run.checkpoint_due(checkpoint_every):
            out.save(run.checkpoint())
        if stop:
            if stop_note is not None:
                out.note(stop_note)
            break
    if not run.checkpointed:
        out.save(run.checkpoint())
    return out.finish(run.result(), dataset)


def _summaries(logdir, run: Run, dataset: Dataset, names, resumes: int):
    from jaxsoftmax.outputs import summaries

    config = run.config
    settings = {
        "batch_size": config.batch_size,
        "steps": config.steps,
        "loss_scale": config.loss_scale,
        "init_scale": config.init_scale,
        "schedule": config.schedule,
    }
    progress = run.progress
    writer = summaries.SweepSummaries(
        logdir,
        names,
        [point | settings for point in config.points],
        config.steps,
        dataset.image_shape if len(dataset.image_shape) == 2 else None,
        dataset.class_names,
        resumed_steps=progress.steps_done.copy() if resumes else None,  # as it was then
        resume_count=resumes,
        diverged_before=np.flatnonzero(progress.diverged_at),
    )
    return writer


def _first_events(writer, run: Run, dataset: Dataset) -> None:
    """A new run's first events in the log directory itself: the first batch's images,
    the CUSTOM SCALARS layout, and the graph of the training step."""
    from jaxsoftmax.core import batches
    from jaxsoftmax.outputs import graph

    config = run.config
    train = config.split(dataset)[0]  # the images the first step draws from
    first = batches.first_batch(config.seed_values[0], len(train.train_images), config.batch_size)
    if dataset.drawable:
        writer.write_inputs(train.train_images[first])
    tested = config.evaluate_test and len(dataset.test_labels) > 0
    splits = ("validation",) * bool(config.validation) + ("test",) * tested
    writer.write_layout(splits)
    writer.write_graph(
        graph.train_step_graph(
            dataset.num_features, dataset.num_classes, config.batch_size, config.descent
        )
    )


def write_results(
    logdir: pathlib.Path,
    result: results.SweepResult,
    *,
    dataset: Dataset,
    timing: dict[str, float],
    names: Sequence[str],
    analyses: dict[int, dict] | None = None,
    search: dict | None = None,
    auto: dict | None = None,
    layout: str | None = None,
) -> None:
    """results.json, written atomically; `analyses` and `search` as `RunOutputs.finish`
    gives them, `auto`: what an --auto run's search found, `layout`: the weight layout
    its (last) plan trained in."""
    document = results.results_document(
        result, dataset=dataset.name, timing=timing, names=names, data=dataset.summary(),
        analyses=analyses,
    )  # fmt: skip
    for name, record in (("search", search), ("auto", auto), ("layout", layout)):
        if record is not None:
            document[name] = record
    results.write_json_atomically(logdir / results.RESULTS_FILE, document)


def print_outcome(
    logdir: pathlib.Path,
    run: Run,
    result: results.SweepResult,
    *,
    timing: dict[str, float],
    names: Sequence[str],
    quiet: bool,
) -> None:
    """How the run ended: interrupted (on stderr, with how to go on), or its table."""
    if result.interrupted:
        print(
            f"interrupted after {run.steps_trained} of {run.total_steps} steps, saved in "
            f"{logdir / checkpoints.CHECKPOINT_FILE}; go on with: "
            f"python -m jaxsoftmax.train --resume {logdir}",
            file=sys.stderr,
        )
        return
    diverged = np.flatnonzero(result.diverged_at)
    if diverged.size:
        shown = ", ".join(
            f"{names[k]} at step {result.diverged_at[k]}" for k in diverged[:DIVERGED_SHOWN]
        )
        more = (
            f" and {diverged.size - DIVERGED_SHOWN} more" if diverged.size > DIVERGED_SHOWN else ""
        )
        print(
            f"warning: {diverged.size} of {len(names)} models diverged: {shown}{more} "
            f"(marked in {results.RESULTS_FILE}; try smaller learning rates)",
            file=sys.stderr,
        )
    if not quiet:
        print(results.format_table(result, names))
        print(f"time: {results.format_timing(timing)}")
        print(f"results: {logdir / results.RESULTS_FILE}")
        print(f"view in TensorBoard: tensorboard --logdir {logdir}")


def _search_record(record: dict, names: Sequence[str], chosen: int | None) -> dict:
    """results.json's `search`: strategy, trials, the chosen trial's name, the rule."""
    record = dict(record)
    strategy, trials = record.pop("strategy"), record.pop("trials")
    chosen_name = None if chosen is None else names[chosen]
    return {"strategy": strategy, "trials": trials, "chosen": chosen_name} | record


def _description(run) -> str:
    record = run.search_record()
    if record is not None:
        what = "halving" if record["strategy"] == "halving" else "searching"
        return f"{what} {record['trials']} trials"
    slices = run.plan.num_slices
    count = run.config.num_models
    return f"training {count} model{'s' if count > 1 else ''}" + (
        f" in {slices} slices" if slices > 1 else ""
    )


def _write_search(writer, result, chosen: int | None) -> None:
    """TensorBoard for a search: the full curves of its best trials (the chosen one and
    the best SHOWN by final validation accuracy), and an HPARAMS session for every trial."""
    from jaxsoftmax.outputs.runlogs import SHOWN

    ranked = result.ranked("validation_accuracy")
    drawn = set(ranked[:SHOWN].tolist()) | ({chosen} if chosen is not None else set())
    for k in range(result.config.num_models):
        done = int(result.steps_done[k])
        evals = np.flatnonzero(result.eval_steps <= done)
        if k not in drawn or done < result.config.steps:
            last = result.validation_accuracy[evals[-1], k] if evals.size else np.nan
            metrics = {"validation_accuracy": last, "steps_trained": done,
                       "diverged": bool(result.diverged_at[k])}  # fmt: skip
            writer.write_session(k, {f"hparams/{name}": float(v) for name, v in metrics.items()})
            continue
        validation = {"loss": result.validation_loss[evals, k : k + 1],
                      "accuracy": result.validation_accuracy[evals, k : k + 1]}  # fmt: skip
        weights = result.params["w"][k : k + 1]
        writer.write_chunk(
            models=np.array([k]), steps=np.arange(1, done + 1),
            train={"loss": result.train_loss[:done, k : k + 1],
                   "accuracy": result.train_accuracy[:done, k : k + 1]},
            eval_steps=result.eval_steps[evals], evaluations={"validation": validation},
            histograms=None, weights=weights, diverged_at=result.diverged_at[k : k + 1],
        )  # fmt: skip
