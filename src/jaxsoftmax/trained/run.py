"""Using what a run trained: its models by name, and their predictions, in NumPy alone.

    run = js.load_run("runs/softmax/20261201-212727")
    model = run["lr=0.005"]                # or run.best() where there is a validation split
    model.predict(images)                  # (N,) classes of uint8 images (N, 28, 28)
    model.predict_proba(images)            # (N, 10) probabilities

A linear softmax classifier is two lines of NumPy: nothing here imports JAX, compiles,
or needs TensorBoard. The parameters come from the run's checkpoint.npz, which keeps
every model's final parameters (up to 512 MiB of them); the rest from results.json.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Iterator

import numpy as np

from jaxsoftmax.core import features, host
from jaxsoftmax.errors import DataError
from jaxsoftmax.files import CHECKPOINT_FILE, RESULTS_FILE
from jaxsoftmax.sweep import checkpoint
from jaxsoftmax.sweep.results import LARGER_IS_BETTER, rank_models

METRICS = LARGER_IS_BETTER  # what a model can be chosen by
_BATCH = 8192  # images per product, so memory stays small whatever the count


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Model:
    """One trained linear softmax classifier.

    Attributes:
      name: its run name, e.g. `lr=0.005`.
      w: float32 (features, classes) weights; b: float32 (classes,) biases.
      image_shape: the shape of one example it takes: (height, width) images,
        (height, width, channels), or (features,) vectors.
      class_names: what each class is called.
      background: `dark` or `light`, the background of the images it was trained on.
      framing: how those images frame what they show (`data.framing.framing_of`), or
        None where the run did not record it (MNIST's recipe is used).
      inputs: `pixels` (uint8 0-255, scaled into [0, 1]) or `features` (floats taken as
        they are): what it was trained on (see `features`).
    """

    name: str
    w: np.ndarray
    b: np.ndarray
    image_shape: tuple[int, ...]
    class_names: tuple[str, ...]
    background: str = "dark"
    framing: dict | None = None
    inputs: str = features.PIXELS

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities of `images`.

        Args:
          images: for a model trained on pixels, uint8 (0-255) or float (in [0, 1]);
            for one trained on float features, floats on the training data's scale.
            Of shape (N, *image_shape), image_shape for one example, or flattened
            (N, features).

        Returns:
          float32 (N, classes), rows summing to 1.
        """
        return host.softmax(self.logits(images))

    def logits(self, images: np.ndarray) -> np.ndarray:
        """The logits `x·W + b` of `images` (as `predict_proba` takes them): float32
        (N, classes)."""
        inputs = self._inputs(images)
        logits = np.empty((len(inputs), len(self.b)), np.float32)
        for start in range(0, len(inputs), _BATCH):
            logits[start : start + _BATCH] = inputs[start : start + _BATCH] @ self.w + self.b
        return logits

    def predict(self, images: np.ndarray) -> np.ndarray:
        """The class of each image: the largest logit (ties: the lowest class), as the
        compiled evaluation picks it; int (N,)."""
        return host.predicted(self.logits(images))

    def _inputs(self, images) -> np.ndarray:
        images = np.asarray(images)
        shape, size = tuple(self.image_shape), int(np.prod(self.image_shape))
        if images.shape == shape or images.shape == (size,):
            images = images[None]
        if images.shape[1:] == shape:
            images = images.reshape(len(images), size)
        if images.ndim != 2 or images.shape[1] != size:
            raise DataError(
                f"examples of shape {images.shape} do not fit model {self.name}, which takes "
                f"{'x'.join(map(str, shape))} examples: (N, {', '.join(map(str, shape))}) "
                f"or (N, {size})"
            )
        floating = np.issubdtype(images.dtype, np.floating)
        if floating and not np.isfinite(images).all():
            raise DataError("the examples hold NaN or infinite values; give finite numbers")
        if self.inputs == features.FEATURES:
            if not floating:
                raise DataError(
                    f"model {self.name} was trained on float features, not {images.dtype} "
                    "pixels: give floats scaled as its training data was"
                )
            return features.to_inputs(images)
        if images.dtype == np.uint8:
            return features.to_inputs(images)
        if floating:
            if not (images.min() >= 0 and images.max() <= 1):
                raise DataError("float images must hold pixels in [0, 1]; uint8 ones 0 to 255")
            return images.astype(np.float32)
        raise DataError(f"images must be uint8 or float, not {images.dtype}")


@dataclasses.dataclass(frozen=True, eq=False)
class TrainedRun:
    """A finished run's models, by run name; see `load_run`.

    Attributes:
      logdir: where it was read from.
      results: its results.json.
    """

    logdir: pathlib.Path
    results: dict
    _params: dict[str, np.ndarray] | None = dataclasses.field(repr=False, default=None)

    @property
    def names(self) -> list[str]:
        """Every model's run name, in sweep order."""
        return [run["name"] for run in self.results["runs"]]

    @property
    def runs(self) -> list[dict]:
        """Each model's entry of results.json: settings and final metrics."""
        return self.results["runs"]

    def __iter__(self) -> Iterator[Model]:
        return (self[name] for name in self.names)

    def __repr__(self) -> str:
        names = self.names
        shown = ", ".join(names[:5]) + (f", ... ({len(names)} in all)" if len(names) > 5 else "")
        return f"TrainedRun({str(self.logdir)!r}, models: {shown})"

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, name: str) -> Model:
        """The model of run `name`.

        Raises:
          DataError: there is no such run (the message lists some that are), or its
            parameters were not kept or not finished.
        """
        names = self.names
        if name not in names:
            shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
            raise DataError(f"no run {name!r} in {self.logdir}; its runs are {shown}")
        if self._params is None:
            raise DataError(
                f"{self.logdir} kept no final parameters ({len(names)} models, more than "
                "512 MiB of them); train fewer models per run to use them"
            )
        index = names.index(name)
        w, b = self._params["w"][index], self._params["b"][index]
        run = self.runs[index]
        if not (np.isfinite(w).all() and np.isfinite(b).all()):
            if run.get("diverged"):
                raise DataError(f"run {name} diverged at step {run.get('diverged_at_step')}")
            raise DataError(
                f"run {name} did not finish (stopped after {run['steps']} steps); "
                f"python -m jaxsoftmax.train --resume {self.logdir} finishes it"
            )
        data = self.results["data"]
        return Model(
            name=name,
            w=np.asarray(w, np.float32),
            b=np.asarray(b, np.float32),
            image_shape=tuple(data["image_shape"]),
            class_names=tuple(data["class_names"]),
            background=data.get("background") or "dark",
            framing=data.get("framing"),
            inputs=data.get("inputs", features.PIXELS),
        )

    def best(self, metric: str = "validation_accuracy") -> Model:
        """The model with the best final `metric` among those that did not diverge.

        The default chooses on the validation split, as a choice must; `test_accuracy`
        is allowed, but a model chosen on the test set scores optimistically there.

        Raises:
          DataError: the run has no such metric (no validation split, say).
        """
        if metric not in METRICS:
            raise DataError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        chosen = chosen_on_validation(self.results)
        if metric == "validation_accuracy" and chosen is not None:
            return self[chosen]  # the search's own choice: the best of the trials that finished
        steps = max(run["steps"] for run in self.runs)
        finals = [run.get(metric) for run in self.runs]
        ranked = rank_models(
            [value if isinstance(value, (int, float)) else np.nan for value in finals],
            finished=[run["steps"] == steps for run in self.runs],
            diverged=[bool(run.get("diverged")) for run in self.runs],
            larger=METRICS[metric],
        )  # fmt: skip
        if not ranked.size:
            why = "no validation split to choose on (train with `validation`=N)"
            raise DataError(
                f"{self.logdir}: no model has a final {metric}"
                + (f": the run has {why}" if metric.startswith("validation") else "")
                + "; or take a model by its run name"
            )
        return self[self.runs[ranked[0]]["name"]]


def chosen_on_validation(results: dict) -> str | None:
    """The run name a search chose on validation, from results.json: a `--search` trial,
    or the setting `--auto` chose and retrained; None for a run that chose nothing."""
    for section in ("search", "auto"):
        chosen = (results.get(section) or {}).get("chosen")
        if chosen is not None:
            return chosen
    return None


def _runs_inside(folder: pathlib.Path) -> list[str]:
    """The folders in `folder` that hold a run (a results.json), by name (runs/softmax's
    are dated, so the newest is last)."""
    try:
        return sorted(sub.name for sub in folder.iterdir() if (sub / RESULTS_FILE).is_file())
    except OSError:
        return []


def printable(text: str) -> str:
    """`text` with each character a terminal would act on (ANSI escapes, new lines) written
    as its escape, so that a name from a file cannot move the cursor or fake a line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _check_described(
    path: pathlib.Path, names: list, shape: tuple, classes: list, framing=None
) -> None:
    """Raises DataError unless results.json names each run once and describes its data
    as a shape of whole numbers, class names of text and (where it says) a framing of a
    box that fits the images and a centre, `mass` or `box`."""
    if not all(isinstance(name, str) for name in names + classes):
        raise DataError(f"{path}: run and class names must be text")
    if len(set(names)) != len(names):
        twice = sorted({name for name in names if names.count(name) > 1})
        raise DataError(f"{path} names run(s) {', '.join(map(printable, twice))} twice; "
                        "each name must pick one model")  # fmt: skip
    if not shape or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0
                            for n in shape):  # fmt: skip
        raise DataError(f"{path}: image_shape must be a list of whole numbers > 0, got {shape!r}")
    if framing is not None and not (
        isinstance(framing, dict) and framing.get("centre") in ("mass", "box")
        and type(framing.get("box")) is int and 1 <= framing["box"] <= max(shape)
    ):  # fmt: skip
        raise DataError(f"{path}: data.framing must be {{'box': 1 to {max(shape)}, 'centre': "
                        f"'mass' or 'box'}}, got {printable(repr(framing))}")  # fmt: skip


def load_run(logdir: str | pathlib.Path) -> TrainedRun:
    """The trained models of the run in `logdir` (what `python -m jaxsoftmax.train` wrote).

    Raises:
      DataError: `logdir` holds no run, or not a whole one.
      CheckpointError: its checkpoint is damaged.
    """
    logdir = pathlib.Path(logdir)
    results_path = logdir / RESULTS_FILE
    if not results_path.is_file():
        inside = _runs_inside(logdir)
        if inside:  # a folder of runs, as runs/softmax is
            shown = ", ".join(inside[-5:]) + (f" ({len(inside)} in all)" if len(inside) > 5 else "")
            raise DataError(f"{logdir} holds runs, not a run: give one of them, e.g. {shown}")
        raise DataError(
            f"{logdir} holds no finished jaxsoftmax run (no {RESULTS_FILE}); train one with "
            f"python -m jaxsoftmax.train --logdir {logdir}"
        )
    try:
        results = json.loads(results_path.read_text())
        names = [run["name"] for run in results["runs"]]
        if "data" not in results:
            raise DataError(
                f"{results_path} comes from an older jaxsoftmax, which did not describe the "
                "data a model takes; train the run again"
            )
        data = results["data"]
        shape, classes = tuple(data["image_shape"]), list(data["class_names"])
        _check_described(results_path, names, shape, classes, data.get("framing"))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"{results_path} is not a jaxsoftmax results file ({error})") from None
    # What reaches a terminal is printable: a control character shows as its escape.
    data["class_names"] = [printable(name) for name in classes]
    for run in results["runs"]:
        run["name"] = printable(run["name"])
    _, params = checkpoint.read_final_params(logdir / CHECKPOINT_FILE)
    if params is not None:
        w, b = params["w"], params["b"]
        if w.shape != (len(names), int(np.prod(shape)), len(classes)) or b.shape != (
            len(names),
            len(classes),
        ):
            raise DataError(f"{logdir}: its checkpoint and results.json describe other models")
    return TrainedRun(logdir, results, params)


def choose(run: TrainedRun, name: str | None = None, *, best: bool = False) -> Model:
    """The model a command names: `name`, the best on validation, or a run's only model.

    Raises:
      DataError: the choice is missing where the run holds several models, or fails.
    """
    if name is not None:
        return run[name]
    if best or len(run) == 1:
        return run.best() if best else run[run.names[0]]
    shown = ", ".join(run.names[:4]) + (", ..." if len(run) > 4 else "")
    raise DataError(
        f"{run.logdir} holds {len(run)} models ({shown}); choose one with `run`=NAME, or "
        "`best` for the best on the validation split"
    )
