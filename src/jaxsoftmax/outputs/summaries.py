"""TensorBoard summaries, written with tensorboardX at the edge of the program.

Layout of a log directory, so TensorBoard overlays the sweep like the tutorial's figures:

- `<logdir>`: image `input` (training digits of the first batch), the graph of the step,
  and the CUSTOM SCALARS layout: one chart per metric and split, one line per model.
- `<logdir>/<run>`, one per model: histograms `weights` and `biases` at every
  evaluation, and the model's hparams session (every hyperparameter, and its final
  `hparams/test_accuracy`, `hparams/test_loss` and `hparams/diverged`, 1 or 0), and, if
  it diverged, the text `diverged` saying at which step.
- `<logdir>/<run>/train`: scalars `train/loss` and `train/accuracy` at every step, and the
  image `weights` (the class templates, labelled) after each chunk. (Not beside the
  histograms: TensorBoard serves a run's tag through one plugin only, so an image tagged
  `weights` next to a histogram tagged `weights` would never be shown.)
- `<logdir>/<run>/test`: scalars `test/loss` and `test/accuracy` at every evaluation.
  The split is in the tag as well as the run, so that SCALARS draws each metric of each
  split in its own chart, and CUSTOM SCALARS can pick them out.

`<run>` names the model's learning rate and every hyperparameter the grid varies, values
as the user wrote them: `lr=0.005` in a plain sweep, `lr=0.005,seed=2,wd=0.0001` in a grid.

Non-finite values are never written: a diverged model (see `divergence`) gets no more
histograms or weight images, and a NaN or infinite loss leaves a gap in its curve.
A resumed sweep appends new event files whose first event is a session start at the
step the model goes on from, so TensorBoard drops what was logged after the checkpoint.
"""

import contextlib
import math
import os
import pathlib
import time
from collections.abc import Mapping, Sequence

import numpy as np

from jaxsoftmax.core.histograms import Histogram
from jaxsoftmax.outputs._tensorboardx import EventsWriter, Summary, event_pb2, summary
from jaxsoftmax.outputs.pictures import confusion_picture, misclassified_picture, weight_templates

HISTOGRAM_BUCKETS = 30


def histogram_buckets(config, summaries: bool) -> int:
    """The buckets of the histograms a run computes on the device for its summaries: none
    without summaries, and none in a search (its best trials' curves are written at its
    end, not every trial's as it goes)."""
    return HISTOGRAM_BUCKETS if summaries and not config.is_search else 0


INPUT_IMAGES = 5  # as many as the tutorial showed
# CUSTOM SCALARS: one chart per metric and split, every model's line in it.
SCALAR_CHARTS = {
    "validation accuracy": "validation/accuracy",
    "validation loss": "validation/loss",
    "test accuracy": "test/accuracy",
    "test loss": "test/loss",
    "training loss (minibatch)": "train/loss",
    "training accuracy (minibatch)": "train/accuracy",
}


def custom_scalars_layout(splits: Sequence[str] = ("test",)) -> Summary:
    """The CUSTOM SCALARS tab's layout: a multiline chart per tag of SCALAR_CHARTS whose
    split is logged, the training minibatch and each of `splits` (`test`, `validation`), so
    no chart stays empty."""
    logged = {"train", *splits}
    charts = {
        title: ["Multiline", [f"^{tag}$"]]
        for title, tag in SCALAR_CHARTS.items()
        if tag.split("/")[0] in logged
    }
    return summary.custom_scalars({"per model": charts})


def _scalars(values: dict[str, float]) -> Summary:
    """One Summary holding several scalars, so a step costs one event, not one per tag."""
    return Summary(value=[Summary.Value(tag=tag, simple_value=v) for tag, v in values.items()])


class EventFile:
    """One run's event file, written synchronously with tensorboardX's EventsWriter.

    tensorboardX's SummaryWriter hands every event to a writer thread through a
    multiprocessing queue of ten (pickling each one, blocking when full), which costs
    more than a training step when every step of every model logs scalars. Writes here
    happen on the host while the device runs the next chunk.
    """

    def __init__(self, folder: pathlib.Path, suffix: str = "", purge_step: int | None = None):
        folder.mkdir(parents=True, exist_ok=True)
        self._writer = EventsWriter(str(folder / "events"), filename_suffix=suffix)
        if purge_step is not None:
            # TensorBoard discards the events it has read at or after this step.
            start = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
            self._writer.write_event(
                event_pb2.Event(wall_time=time.time(), step=purge_step, session_log=start)
            )

    def add(self, summary_proto: Summary, step: int) -> None:
        """Appends a Summary at `step`."""
        self._writer.write_event(
            event_pb2.Event(wall_time=time.time(), step=step, summary=summary_proto)
        )

    def add_graph(self, graph_def) -> None:
        """Appends a GraphDef, shown in TensorBoard's GRAPHS tab."""
        self._writer.write_event(
            event_pb2.Event(wall_time=time.time(), graph_def=graph_def.SerializeToString())
        )

    def close(self) -> None:
        """Flushes and closes the file."""
        self._writer.close()


class SweepSummaries(contextlib.AbstractContextManager):
    """Writes a sweep's summaries for TensorBoard; use as a context manager.

    A run's files are opened when its first chunk arrives and closed when its last
    step has been written (its hparams session written then), so a grid trained in
    slices keeps only one slice's files open. Every file still open is flushed and
    closed on leaving the context, however it is left.

    Args:
      logdir: the run's log directory.
      run_names: one TensorBoard run name per model (see `grid.run_names`).
      hparams: each model's settings for the HPARAMS tab, in the same order.
      steps: the steps every model trains; a model's files close after its last.
      image_shape: (height, width) of the input images, for the weight templates; None
        where the examples are not grey images (vectors, colour): no templates then.
      class_names: what each class is called, to label the templates.
      resumed_steps: when resuming, the steps each model had taken at the checkpoint
        (K,): its files start by discarding what was logged after that.
      resume_count: how many times the sweep has been resumed (names the new files).
      diverged_before: when resuming, the models (indices) whose divergence is
        already noted.
    """

    def __init__(
        self,
        logdir: str | os.PathLike,
        run_names: Sequence[str],
        hparams: Sequence[Mapping[str, float | int | str]],
        steps: int,
        image_shape: tuple[int, int] | None,
        class_names: Sequence[str] | None = None,
        *,
        resumed_steps: np.ndarray | None = None,
        resume_count: int = 0,
        diverged_before: Sequence[int] = (),
    ):
        self._logdir = pathlib.Path(logdir)
        self._resumed_steps = None if resumed_steps is None else np.array(resumed_steps)
        self._suffix = f".resume{resume_count}" if resume_count else ""
        self._noted_divergence = {run_names[k] for k in diverged_before}
        self._names = list(run_names)
        self._hparams = list(hparams)
        self._steps = steps
        self._image_shape = None if image_shape is None else tuple(image_shape)
        self._class_names = class_names
        self._files: dict[tuple[str, str], EventFile] = {}
        try:
            self._root = self._file("")
        except BaseException:
            self.close()
            raise

    def _file(self, run: str, split: str = "", model_index: int | None = None) -> EventFile:
        key = (run, split)
        if key not in self._files:
            purge_step = None
            if self._resumed_steps is not None and model_index is not None:
                purge_step = int(self._resumed_steps[model_index]) + 1
            self._files[key] = EventFile(self._logdir / run / split, self._suffix, purge_step)
        return self._files[key]

    def write_inputs(self, images: np.ndarray) -> None:
        """The first training images, uint8 (N, height, width), side by side as image `input`."""
        strip = np.concatenate(list(images[:INPUT_IMAGES]), axis=1)
        self._root.add(summary.image("input", strip[..., None], dataformats="HWC"), 0)

    def write_layout(self, splits: Sequence[str] = ("test",)) -> None:
        """The CUSTOM SCALARS layout of the evaluated `splits` (`custom_scalars_layout`)."""
        self._root.add(custom_scalars_layout(splits), 0)

    def write_graph(self, graph_def) -> None:
        """A GraphDef of the training step, for the GRAPHS tab."""
        self._root.add_graph(graph_def)

    def write_chunk(
        self,
        *,
        models: np.ndarray,
        steps: np.ndarray,
        train: Mapping[str, np.ndarray],
        eval_steps: np.ndarray,
        evaluations: Mapping[str, Mapping[str, np.ndarray]],
        histograms: Mapping[str, Histogram] | None,
        weights: np.ndarray,
        diverged_at: np.ndarray,
    ) -> None:
        """One chunk of K models: scalars for every step and evaluation, histograms, weight
        templates; for models that finished, their hparams session, and their files are
        closed.

        Args:
          models: (K,) the models' indices (into `run_names`).
          steps: (S,) the steps trained; train: {tag: (S, K)}, e.g. `loss`, `accuracy`.
          eval_steps: (E,) the steps evaluated; evaluations: {split: {tag: (E, K)}} for
            the splits evaluated, `test` and `validation`.
          histograms: {tag: Histogram with leading axes (E, K)}, or None.
          weights: (K, features, classes), after the last step.
          diverged_at: (K,) the step each model diverged at, 0 if it has not.
        """
        finished = int(steps[-1]) == self._steps
        for k, model_index in enumerate(models.tolist()):
            run = self._names[model_index]
            splits = [("train", steps, train)]
            splits += [(name, eval_steps, values) for name, values in evaluations.items()]
            for split, at, metrics in splits:
                events = self._file(run, split, model_index)
                columns = {f"{split}/{tag}": v[:, k].tolist() for tag, v in metrics.items()}
                for row, step in enumerate(at.tolist()):
                    finite = {tag: c[row] for tag, c in columns.items() if math.isfinite(c[row])}
                    if finite:
                        events.add(_scalars(finite), step)
            if diverged_at[k] and run not in self._noted_divergence:
                self._noted_divergence.add(run)
                text = f"diverged at step {int(diverged_at[k])} (see jaxsoftmax.sweep.divergence)"
                self._file(run, "", model_index).add(
                    summary.text("diverged", text), int(diverged_at[k])
                )
            if not diverged_at[k]:
                self._write_histograms(histograms, eval_steps, k, run, model_index)
                self._write_templates(weights[k], int(steps[-1]), run, model_index)
            if finished:
                metrics = {
                    f"hparams/{split}_{tag}": float(values[tag][-1, k])
                    for split, values in evaluations.items()
                    for tag in ("accuracy", "loss")
                }
                metrics["hparams/diverged"] = float(bool(diverged_at[k]))
                metrics["hparams/steps_trained"] = float(self._steps)
                self._write_hparams(run, model_index, metrics)
                self._close_run(run)

    def write_session(self, model_index: int, metrics: dict[str, float]) -> None:
        """An HPARAMS session alone for a model (a search's trial stopped early)."""
        run = self._names[model_index]
        self._write_hparams(run, model_index, metrics)
        self._close_run(run)

    def write_analysis(
        self, model_index: int, analysis, test_images: np.ndarray, test_labels: np.ndarray
    ) -> None:
        """A finished model's errors (an `analysis.Analysis`) at its last step: images
        `confusion_matrix` and `misclassified` (its most confident errors on the test
        images, each with its true class and the model's answer; only where the test
        examples are uint8 grey images)."""
        run = self._names[model_index]
        names = self._class_names or [str(k) for k in range(len(analysis.confusion))]
        # A file of its own: the run's first file is closed, and a new one opened in the
        # same second would get its name (tensorboardX names files by the second).
        events = EventFile(self._logdir / run, f"{self._suffix}.analysis")
        try:
            matrix = confusion_picture(analysis.confusion, names)
            events.add(summary.image("confusion_matrix", matrix, dataformats="HWC"), self._steps)
            examples = analysis.examples
            if test_images.dtype != np.uint8 or test_images.ndim != 3:
                return
            picture = misclassified_picture(
                test_images[examples], test_labels[examples], analysis.predicted,
                analysis.confidence, names,
            )  # fmt: skip
            events.add(summary.image("misclassified", picture, dataformats="HWC"), self._steps)
        finally:
            events.close()

    def _write_histograms(self, histograms, eval_steps, k: int, run: str, model_index: int):
        """A healthy model's histograms; anything not finite is left out all the same."""
        for tag, histogram in (histograms or {}).items():
            for row, step in enumerate(eval_steps.tolist()):
                names = ("min", "max", "sum", "sum_squares")
                bounds = [getattr(histogram, name)[row, k] for name in names]
                limits = histogram.bucket_limits[row, k]
                if not (np.isfinite(bounds).all() and np.isfinite(limits).all()):
                    continue
                proto = summary.histogram_raw(
                    tag,
                    min=float(histogram.min[row, k]),
                    max=float(histogram.max[row, k]),
                    num=int(histogram.num[row, k]),
                    sum=float(histogram.sum[row, k]),
                    sum_squares=float(histogram.sum_squares[row, k]),
                    bucket_limits=limits.tolist(),
                    bucket_counts=histogram.bucket_counts[row, k].tolist(),
                )
                self._file(run, "", model_index).add(proto, step)

    def _write_templates(self, weights: np.ndarray, step: int, run: str, model_index: int):
        if self._image_shape is not None and np.isfinite(weights).all():
            templates = weight_templates(weights, self._image_shape, self._class_names)
            self._file(run, "train", model_index).add(
                summary.image("weights", templates, dataformats="HWC"), step
            )

    def _write_hparams(self, run: str, model_index: int, metrics: dict[str, float]) -> None:
        events = self._file(run, "", model_index)
        for proto in summary.hparams(dict(self._hparams[model_index]), metrics):
            events.add(proto, 0)
        finite = {tag: value for tag, value in metrics.items() if np.isfinite(value)}
        events.add(_scalars(finite), self._steps)

    def _close_run(self, run: str) -> None:
        with contextlib.ExitStack() as stack:
            for split in ("", "train", "test", "validation"):
                events = self._files.pop((run, split), None)
                if events is not None:
                    stack.callback(events.close)

    def close(self) -> None:
        """Flushes and closes every file, even if closing one of them fails."""
        with contextlib.ExitStack() as stack:
            for events in self._files.values():
                stack.callback(events.close)
            self._files = {}

    def __exit__(self, *exc_info):
        self.close()
