"""A run read back from its log directory: results.json, and the TensorBoard events of the
models worth drawing, grouped into settings over seeds.

results.json names every model (its TensorBoard run), its hyperparameters, whether it
diverged and its final metrics; the events hold its curves and weight templates, read
with TensorBoard's own EventAccumulator (nothing subsampled). A large grid's events are
read only for the settings drawn.
"""

import dataclasses
import io
import json
import math
import pathlib
from collections.abc import Sequence

import numpy as np

from jaxsoftmax.errors import DataError
from jaxsoftmax.files import CHECKPOINT_FILE, RESULTS_FILE

AXES = ("learning_rate", "seed", "weight_decay", "momentum")
# Every size-limited kind of event is read in full (0) or not kept beyond the latest (1).
_SIZE_GUIDANCE = {
    "scalars": 0,
    "images": 0,
    "histograms": 1,
    "compressedHistograms": 1,
    "audio": 1,
    "tensors": 1,
}
_EVENTS_GLOB = "events.out.tfevents.*"
SHOWN = 10  # settings a figure draws at most
EVALUATED = ("validation", "test")  # the splits evaluated during training, each a panel


@dataclasses.dataclass(frozen=True)
class Curve:
    """One scalar over training: `steps` (points,) int, increasing; `values` (points,)."""

    steps: np.ndarray
    values: np.ndarray


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunLog:
    """One model of a run, as results.json and its events describe it.

    Attributes:
      name: its TensorBoard run, e.g. `lr=0.005,seed=2,wd=0.0001`.
      point: its hyperparameters, {learning_rate, seed, weight_decay, momentum}.
      diverged_at: the step it diverged at (see `divergence`), or None.
      split: the split its settings are ranked and compared on (see `ranking_split`).
      final_accuracy: its last accuracy on `split`, None if it has none (diverged, say).
      curves: `train/loss`, `train/accuracy` and the loss and accuracy of the splits
        evaluated (`validation/...`, `test/...`), as logged; empty when the events were
        not read (or not written).
      weights_image: (height, width, 3) uint8, its labelled weight templates at
        `weights_step`, the last step they were logged at; None if none were.
      confusion: int (classes, classes), its test confusion matrix, where the run
        analysed it (rows: true class, columns: predicted); else None.
    """

    name: str
    point: dict
    diverged_at: int | None = None
    split: str = "test"
    final_accuracy: float | None = None
    curves: dict[str, Curve] = dataclasses.field(default_factory=dict)
    weights_image: np.ndarray | None = None
    weights_step: int | None = None
    confusion: np.ndarray | None = None

    @property
    def setting(self) -> str:
        """The name without the seed: the runs of one setting over seeds share it."""
        return ",".join(part for part in self.name.split(",") if not part.startswith("seed="))


def read_results(logdir: str | pathlib.Path) -> dict:
    """The run's results.json, checked enough to be drawn from.

    Raises:
      DataError: there is none (saying what to do), or it is not the trainer's.
    """
    logdir = pathlib.Path(logdir)
    path = logdir / RESULTS_FILE
    if not path.is_file():
        if (logdir / CHECKPOINT_FILE).is_file():
            raise DataError(
                f"{logdir} holds a run that stopped before writing {RESULTS_FILE}; "
                f"python -m jaxsoftmax.train --resume {logdir} goes on and writes it"
            )
        raise DataError(
            f"{logdir} holds no jaxsoftmax run (no {RESULTS_FILE}); train one with "
            f"python -m jaxsoftmax.train --logdir {logdir}"
        )
    try:
        document = json.loads(path.read_text())
        runs = document["runs"]
        if not runs or not all(
            isinstance(run["name"], str) and all(axis in run for axis in AXES) for run in runs
        ):
            raise ValueError("no runs")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"{path} is not a jaxsoftmax results file ({error})") from None
    return document


def ranking_split(document: dict) -> str:
    """The split a run's settings are ranked and compared on: `validation` where the run
    held one out (a search evaluates the test set for its chosen trial alone), else `test`."""
    has_validation = any(run.get("validation_accuracy") is not None for run in document["runs"])
    return "validation" if has_validation else "test"


def run_logs(document: dict) -> list[RunLog]:
    """Every model of results.json, without its events."""
    split = ranking_split(document)
    return [
        RunLog(
            name=run["name"],
            point={axis: run[axis] for axis in AXES},
            diverged_at=run.get("diverged_at_step") if run.get("diverged") else None,
            split=split,
            final_accuracy=run.get(f"{split}_accuracy"),
            confusion=np.asarray(run["confusion_matrix"]) if "confusion_matrix" in run else None,
        )
        for run in document["runs"]
    ]


def with_events(logdir: str | pathlib.Path, run: RunLog) -> RunLog:
    """`run` with its curves and last weight templates read from its events."""
    folder = pathlib.Path(logdir) / run.name
    curves, image, image_step = {}, None, None
    for split in ("train", *EVALUATED):
        if not _has_events(folder / split):
            continue
        events = _accumulate(folder / split)
        for metric in ("loss", "accuracy"):
            tag = f"{split}/{metric}"
            if tag in events.Tags()["scalars"]:
                curves[tag] = _curve(events.Scalars(tag))
        if split == "train" and "weights" in events.Tags()["images"]:
            last = max(events.Images("weights"), key=lambda event: event.step)
            image, image_step = _decode(last.encoded_image_string), last.step
    return dataclasses.replace(run, curves=curves, weights_image=image, weights_step=image_step)


def has_events(logdir: str | pathlib.Path, run: RunLog) -> bool:
    """Whether the model logged any TensorBoard events (not with --no-summaries)."""
    return _has_events(pathlib.Path(logdir) / run.name / "train")


def _has_events(folder: pathlib.Path) -> bool:
    return folder.is_dir() and any(folder.glob(_EVENTS_GLOB))


def _accumulate(folder: pathlib.Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance=_SIZE_GUIDANCE)
    events.Reload()
    return events


def _curve(scalars) -> Curve:
    scalars = sorted(scalars, key=lambda event: event.step)
    return Curve(
        steps=np.array([event.step for event in scalars], dtype=np.int64),
        values=np.array([event.value for event in scalars], dtype=np.float64),
    )


def _decode(png: bytes) -> np.ndarray:
    from PIL import Image  # Pillow comes with TensorBoard

    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"))


@dataclasses.dataclass(frozen=True)
class Setting:
    """The models of one setting of learning rate, weight decay and momentum, over seeds.

    Attributes:
      label: the run name without its seed, e.g. `lr=0.005,wd=0.0001`.
      runs: the models that did not diverge.
      diverged: those that did.
    """

    label: str
    runs: tuple[RunLog, ...]
    diverged: tuple[RunLog, ...]

    @property
    def point(self) -> dict:
        first = (self.runs + self.diverged)[0].point
        return {axis: value for axis, value in first.items() if axis != "seed"}

    @property
    def split(self) -> str:
        """The split `finals` are measured on (see `ranking_split`)."""
        return (self.runs + self.diverged)[0].split

    @property
    def finals(self) -> np.ndarray:
        """Final accuracy on `split` of each model that did not diverge and has one."""
        return np.array([r.final_accuracy for r in self.runs if r.final_accuracy is not None])

    @property
    def family(self) -> str:
        """The label without the learning rate: the line it belongs to against learning rate."""
        return ",".join(part for part in self.label.split(",") if not part.startswith("lr="))

    @property
    def rate_label(self) -> str:
        return self.label.split(",")[0].removeprefix("lr=")


def group_settings(runs: Sequence[RunLog]) -> list[Setting]:
    """The runs by setting, in sweep order."""
    groups: dict[str, list[RunLog]] = {}
    for run in runs:
        groups.setdefault(run.setting, []).append(run)
    settings = [
        Setting(
            label,
            tuple(run for run in members if run.diverged_at is None),
            tuple(run for run in members if run.diverged_at is not None),
        )
        for label, members in groups.items()
    ]
    return settings


def ranked(settings: Sequence[Setting]) -> list[Setting]:
    """Best final accuracy on their split (mean over seeds) first; settings with a diverged model,
    or with no final accuracy, after all the others. Ties keep their order."""

    def score(setting: Setting) -> float:
        if setting.diverged or not setting.finals.size:
            return math.inf
        return -float(setting.finals.mean())

    return sorted(settings, key=score)


def drawable(settings: Sequence[Setting]) -> list[Setting]:
    """The best SHOWN settings with a model that did not diverge, in their given order."""
    healthy = [setting for setting in ranked(settings) if setting.runs and not setting.diverged]
    best = {setting.label for setting in healthy[:SHOWN]}
    return [setting for setting in settings if setting.label in best]


def note_on(settings: Sequence[Setting], drawn: Sequence[Setting]) -> str:
    """What the curves leave out: settings beyond the best SHOWN, and diverged ones."""
    parts = []
    healthy = [s for s in settings if s.runs and not s.diverged]
    if len(healthy) > len(drawn):
        split = healthy[0].split
        parts.append(f"the best {len(drawn)} of {len(healthy)} settings by final {split} accuracy")
    diverged = [s for s in settings if s.diverged]
    if diverged:
        named = ", ".join(s.label for s in diverged[:3]) + (" ..." if len(diverged) > 3 else "")
        parts.append(f"{len(diverged)} diverged, not drawn: {named}")
    return "; ".join(parts)
