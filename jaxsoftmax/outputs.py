"""What the command line makes of a run as it trains: summaries, a progress bar,
checkpoints, and at the end results.json and the printed table.

stdout carries the results (the table, the times, where the files are); stderr
carries progress, notes, warnings and errors. Only process 0 writes files.
"""

import contextlib
import pathlib
import sys
from collections.abc import Sequence

import numpy as np

from jaxsoftmax import checkpoint as checkpoints
from jaxsoftmax import results
from jaxsoftmax.data import Dataset
from jaxsoftmax.loop import SweepRun
from jaxsoftmax.progress import ChunkReport

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
      checkpoint_extra: the command line's settings, kept in each checkpoint.
      resumes: how many times the run has been resumed.
    """

    def __init__(
        self,
        logdir: pathlib.Path | None,
        *,
        run: SweepRun,
        dataset: Dataset,
        names: Sequence[str],
        summaries: bool,
        quiet: bool,
        checkpoint_extra: dict,
        resumes: int,
    ):
        import tqdm

        self._logdir, self._names = logdir, list(names)
        self._extra = {"settings": checkpoint_extra}
        self._stack = contextlib.ExitStack()
        self._writer = None
        with contextlib.ExitStack() as opened:
            opened.push(self)  # closes what is open if the rest fails
            if summaries and logdir is not None:
                self._writer = self._stack.enter_context(
                    _summaries(logdir, run, dataset, self._names, resumes)
                )
            self._bar = self._stack.enter_context(
                tqdm.tqdm(
                    total=run.total_steps,
                    initial=run.steps_trained,
                    unit="step",
                    desc=f"training {run.config.num_models} models"
                    + (f" in {run.plan.num_slices} slices" if run.plan.num_slices > 1 else ""),
                    disable=quiet,
                    file=sys.stderr,
                )
            )
            opened.pop_all()

    def record(self, report: ChunkReport) -> None:
        """Writes a chunk's summaries and moves the progress bar."""
        if self._writer is not None:
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
        self._bar.update(len(report.steps))
        for split in ("validation", "test"):  # the one to choose on, if there is one
            metrics = getattr(report, split)
            if metrics is not None and np.isfinite(metrics.accuracy[-1]).any():
                best = f"{np.nanmax(metrics.accuracy[-1]):.2%}"
                self._bar.set_postfix({f"{split}_accuracy": best})
                break

    def save(self, checkpoint) -> None:
        """Saves a checkpoint, a sweep's or a search's (process 0 only; every process
        must make it)."""
        if self._logdir is None:
            return
        extra, arrays = self._extra, None
        if hasattr(checkpoint, "search"):  # a search's: its own state beside the rung's
            extra = extra | {"search": checkpoint.search}
            checkpoint, arrays = checkpoint.sweep, checkpoint.arrays
        checkpoints.save(self._logdir / checkpoints.CHECKPOINT_FILE, checkpoint, extra, arrays)

    def analyse(self, result, dataset: Dataset) -> dict[int, dict]:
        """Where each finished model errs (see `analysis`), drawn in TensorBoard; returns
        what results.json keeps of it, by model index. Process 0 only."""
        if self._logdir is None or result.interrupted:
            return {}
        from jaxsoftmax import analysis

        analyses = analysis.analyse(result, dataset, analysis.chosen_models(result))
        if self._writer is not None:
            for index, found in analyses.items():
                self._writer.write_analysis(index, found, dataset.test_images, dataset.test_labels)
        return {index: found.to_json() for index, found in analyses.items()}

    def note(self, message: str) -> None:
        """A line on stderr that leaves the progress bar whole."""
        self._bar.write(message, file=sys.stderr)

    def __exit__(self, *exc_info):
        self._stack.close()


def _summaries(logdir, run: SweepRun, dataset: Dataset, names, resumes: int):
    from jaxsoftmax import batches, graph, summaries

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
        dataset.image_shape,
        dataset.class_names,
        resumed_steps=progress.steps_done.copy() if resumes else None,  # as it was then
        resume_count=resumes,
        diverged_before=np.flatnonzero(progress.diverged_at),
    )
    if not resumes:
        with contextlib.ExitStack() as opened:
            opened.push(writer)
            first = batches.first_batch(
                config.seed_values[0], len(dataset.train_images), config.batch_size
            )
            writer.write_inputs(dataset.train_images[first])
            writer.write_layout()
            writer.write_graph(
                graph.train_step_graph(
                    dataset.num_features, dataset.num_classes, config.batch_size, run.descent
                )
            )
            opened.pop_all()
    return writer


def write_results(
    logdir: pathlib.Path,
    result: results.SweepResult,
    *,
    dataset: Dataset,
    timing: dict[str, float],
    names: Sequence[str],
    analyses: dict[int, dict] | None = None,
) -> None:
    """results.json, written atomically; `analyses` as `RunOutputs.analyse` gives them."""
    document = results.results_document(
        result, dataset=dataset.name, timing=timing, names=names, data=dataset.summary(),
        analyses=analyses,
    )  # fmt: skip
    results.write_json_atomically(logdir / results.RESULTS_FILE, document)


def print_outcome(
    logdir: pathlib.Path,
    run: SweepRun,
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
