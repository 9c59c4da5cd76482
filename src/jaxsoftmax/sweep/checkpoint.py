"""A sweep's checkpoint: everything it needs to go on, in one `.npz` file written atomically.

The file is a NumPy `.npz` archive (read it with `numpy.load`, no pickles):

- `meta`: UTF-8 JSON as uint8: `format` ("jaxsoftmax-checkpoint"), `version`, the
  sweep's `config`, its `plan` (slices, devices, chunks and weight `layout`, see
  `plan.SweepPlan`), the `data_fingerprint` (a SHA-256 of the data), the position
  (`slice`, `step`), `compile_s`, `train_s`, `state_leaves` (how many),
  `has_params`, and `extra` (anything the caller keeps with it, e.g. the command
  line's settings);
- `state_0`, `state_1`, ...: the training state of the slice in progress (its
  parameters and optimiser state, leading axes seeds x settings, weights in the
  plan's layout);
- `train_loss`, `train_accuracy`, `test_loss`, `test_accuracy`, `validation_loss`,
  `validation_accuracy`: the metrics so far;
- `steps_done`, `diverged_at`, `high_steps`: per model, steps taken and the
  divergence bookkeeping (see `divergence`);
- `params_w`, `params_b`: the final parameters of the models done (if kept);
- `final_state_0`, ...: the final training state of the models done, models-first (if
  kept, for a search's next rung), and `initial_0`, ...: every model's state where a
  warm-started sweep began (see `warm`; `initial_step` in meta says when).

It is written to a temporary file beside its destination, flushed to disk, then
renamed over it: a reader finds the previous checkpoint or the new one, whole.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import zipfile
from typing import TYPE_CHECKING

import numpy as np

from jaxsoftmax import files
from jaxsoftmax.errors import CheckpointError, ConfigError
from jaxsoftmax.files import CHECKPOINT_FILE  # noqa: F401 (where a run keeps it)
from jaxsoftmax.sweep.config import SweepConfig

if TYPE_CHECKING:  # imported where used: reading final parameters needs no JAX
    from jaxsoftmax.sweep.plan import SweepPlan
    from jaxsoftmax.sweep.progress import Progress

FORMAT = "jaxsoftmax-checkpoint"
# Version 2 records the plan, and with it the weight layout of the saved state.
VERSION = 2
METRICS = (
    "train_loss", "train_accuracy", "test_loss", "test_accuracy",
    "validation_loss", "validation_accuracy",
)  # fmt: skip
_PER_MODEL = ("steps_done", "diverged_at", "high_steps")
KEEP_PARAMS_BYTES = 2**29  # a run's final checkpoint keeps every model's parameters up to this


def keeps_params(config: SweepConfig, dataset) -> bool:
    """Whether a run's final checkpoint keeps every model's parameters (up to
    KEEP_PARAMS_BYTES of them: a huge grid keeps its metrics, not its weights)."""
    parameter_bytes = (dataset.num_features + 1) * dataset.num_classes * 4
    return config.num_models * parameter_bytes <= KEEP_PARAMS_BYTES


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class SweepCheckpoint:
    """Everything a sweep needs to go on where it stopped, as host arrays.

    Randomness needs no saved key: each seed's initialisation and minibatch order
    are derived from the seed (in `config`) and the step.

    Attributes:
      config: the sweep's settings.
      plan: how it trains (slices, devices, chunks, weight layout).
      data_fingerprint: `Dataset.fingerprint()` of the data it trained on.
      slice_index: the slice in progress (`plan.num_slices` once all are done).
      step: steps that slice has taken; `initial_step`: it has not started.
      state: that slice's `TrainState` leaves (`jax.tree_util.tree_leaves` order,
        leading axes S, M, weights in `plan.layout`), or None when it has not started.
      progress: the metrics and bookkeeping so far.
      initial_step, initial_state: where a warm-started sweep began (see `warm`): its
        step, and every model's state leaves then, models-first; 0 and None otherwise.
    """

    config: SweepConfig
    plan: SweepPlan
    data_fingerprint: str
    slice_index: int
    step: int
    state: list[np.ndarray] | None
    progress: Progress
    initial_step: int = 0
    initial_state: list[np.ndarray] | None = None

    def inconsistencies(self) -> list[str]:
        """The parts that do not fit the settings or each other (empty if all do)."""
        config, plan = self.config, self.plan
        wrong = self.progress.inconsistencies(config)
        if not plan.fits(config):
            wrong.append("plan")
        finished = self.slice_index == plan.num_slices
        if not 0 <= self.slice_index <= plan.num_slices:
            wrong.append("slice")
        begin = self.initial_step
        if not (self.step == begin or (not finished and self.step in plan.chunk_ends[:-1])):
            wrong.append("step")
        if not (begin == 0 or begin in plan.chunk_ends[:-1]) or (
            (self.initial_state is None) != (begin == 0)
        ):
            wrong.append("initial")
        if (self.state is None) != (self.step == begin):
            wrong.append("state")
        if not wrong and not np.array_equal(self.progress.steps_done, self.steps_done()):
            wrong.append("steps_done")
        return wrong

    @property
    def finished(self) -> bool:
        """Whether every slice has taken every step."""
        return self.slice_index == self.plan.num_slices

    def steps_done(self) -> np.ndarray:
        """(K,) the steps each model has taken, as the position in the plan says."""
        done = np.full(self.config.num_models, self.initial_step, np.int64)
        for index in range(min(self.slice_index + 1, self.plan.num_slices)):
            steps = self.config.steps if index < self.slice_index else self.step
            done[self.plan.slice_models(index)] = steps
        return done


@dataclasses.dataclass(frozen=True, eq=False)
class SearchCheckpoint:
    """A search's checkpoint: the `sweep` checkpoint of the rung in progress, and beside
    it the search's own record (`search`, JSON-friendly, with its `config`; and named
    `arrays`). See `search.HalvingSearch`."""

    sweep: SweepCheckpoint
    search: dict
    arrays: dict[str, np.ndarray]

    @property
    def config(self) -> SweepConfig:
        """The whole search's config (every trial, the last rung's steps)."""
        return SweepConfig.from_dict(self.search["config"])

    @property
    def finished(self) -> bool:
        return self.sweep.finished


def save(
    path: str | os.PathLike,
    checkpoint: SweepCheckpoint | SearchCheckpoint,
    extra: dict | None = None,
) -> None:
    """Writes a sweep's or a search's checkpoint to `path`, atomically, with what its
    caller keeps beside it (`extra`, JSON-friendly, given back by `load`)."""
    arrays = None
    if isinstance(checkpoint, SearchCheckpoint):
        extra = (extra or {}) | {"search": checkpoint.search}
        checkpoint, arrays = checkpoint.sweep, checkpoint.arrays
    progress = checkpoint.progress
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "config": checkpoint.config.to_dict(),
        "plan": checkpoint.plan.to_dict(),
        "data_fingerprint": checkpoint.data_fingerprint,
        "slice": checkpoint.slice_index,
        "step": checkpoint.step,
        "compile_s": progress.compile_s,
        "train_s": progress.train_s,
        "state_leaves": None if checkpoint.state is None else len(checkpoint.state),
        "has_params": progress.params is not None,
        "initial_step": checkpoint.initial_step,
        "initial_leaves": _count(checkpoint.initial_state),
        "final_state_leaves": _count(progress.states),
        "extra": extra or {},
        "extra_arrays": sorted(arrays or {}),
    }
    kept = {f"extra_{name}": values for name, values in (arrays or {}).items()}
    arrays = {"meta": np.frombuffer(json.dumps(meta).encode(), np.uint8)} | kept
    arrays |= {f"state_{i}": leaf for i, leaf in enumerate(checkpoint.state or [])}
    arrays |= {f"initial_{i}": leaf for i, leaf in enumerate(checkpoint.initial_state or [])}
    arrays |= {f"final_state_{i}": leaf for i, leaf in enumerate(progress.states or [])}
    arrays |= {name: getattr(progress, name) for name in (*METRICS, *_PER_MODEL)}
    if progress.params is not None:
        arrays |= {f"params_{name}": values for name, values in progress.params.items()}
    with files.atomic_writer(path) as handle:
        np.savez(handle, **arrays)


def load(path: str | os.PathLike) -> tuple[SweepCheckpoint | SearchCheckpoint, dict]:
    """Reads a checkpoint `save` wrote: a sweep's, or a search's (one with a search
    record); returns it and its caller's `extra`.

    Raises:
      CheckpointError: the file is missing, damaged, or not such a checkpoint.
    """
    with _opened(path) as (meta, archive):
        checkpoint = _from_archive(meta, archive)
        extra = dict(meta["extra"])
        search = extra.pop("search", None)
        arrays = {name: archive[f"extra_{name}"] for name in meta.get("extra_arrays", [])}
    wrong = checkpoint.inconsistencies()
    if wrong:
        raise CheckpointError(
            f"checkpoint {path} is damaged: {', '.join(wrong)} do not fit its settings"
        )
    if search is None:
        return checkpoint, extra
    searched = SearchCheckpoint(sweep=checkpoint, search=search, arrays=arrays)
    try:
        searched.config  # noqa: B018 (checked here, so that a damaged one is named now)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise CheckpointError(f"checkpoint {path} is damaged (its search: {error})") from None
    return searched, extra


def _check_format(path: pathlib.Path, meta) -> None:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a jaxsoftmax checkpoint")
    if meta.get("version") != VERSION:
        raise CheckpointError(
            f"{path} is a version {meta.get('version')} checkpoint; this jaxsoftmax reads "
            f"version {VERSION}: go on with the jaxsoftmax that wrote it, or train again"
        )


def _count(leaves: list | None) -> int | None:
    return None if leaves is None else len(leaves)


def _leaves(archive, prefix: str, count: int | None) -> list[np.ndarray] | None:
    return None if count is None else [archive[f"{prefix}_{i}"] for i in range(count)]


def _from_archive(meta: dict, archive) -> SweepCheckpoint:
    from jaxsoftmax.sweep.plan import SweepPlan
    from jaxsoftmax.sweep.progress import Progress

    state = None
    if meta["state_leaves"] is not None:
        state = [archive[f"state_{i}"] for i in range(meta["state_leaves"])]
    params = None
    if meta["has_params"]:
        params = {name: archive[f"params_{name}"] for name in ("w", "b")}
    progress = Progress(
        **{name: archive[name] for name in (*METRICS, *_PER_MODEL)},
        params=params,
        states=_leaves(archive, "final_state", meta["final_state_leaves"]),
        compile_s=float(meta["compile_s"]),
        train_s=float(meta["train_s"]),
    )
    return SweepCheckpoint(
        config=SweepConfig.from_dict(meta["config"]),
        plan=SweepPlan.from_dict(meta["plan"]),
        data_fingerprint=str(meta["data_fingerprint"]),
        slice_index=int(meta["slice"]),
        step=int(meta["step"]),
        state=state,
        progress=progress,
        initial_step=int(meta["initial_step"]),
        initial_state=_leaves(archive, "initial", meta["initial_leaves"]),
    )


def read_final_params(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray] | None]:
    """A checkpoint's meta and the final parameters it keeps, without rebuilding its
    training state (nor importing JAX): `w` (K, features, classes), `b` (K, classes), NaN
    for models that did not finish; None if it keeps none.

    Raises:
      CheckpointError: the file is missing, damaged, or not such a checkpoint.
    """
    with _opened(path) as (meta, archive):
        if "params_w" in meta.get("extra_arrays", []):  # a search's: every trial's
            return meta, {name: archive[f"extra_params_{name}"] for name in ("w", "b")}
        if not meta["has_params"]:
            return meta, None
        return meta, {name: archive[f"params_{name}"] for name in ("w", "b")}


class _Numbers:
    """A checkpoint archive whose every array is checked as it is read: real numbers
    (parameters and metrics float), never complex, text or structured values, which
    would train or predict as something else."""

    def __init__(self, archive):
        self._archive = archive

    def __getitem__(self, name: str) -> np.ndarray:
        array = self._archive[name]
        floats = name.startswith(("params_", "extra_params_")) or name in METRICS
        if array.dtype.kind not in ("f" if floats else "fiub") or array.dtype.fields:
            raise ValueError(f"its {name} is {array.dtype}, not real numbers")
        return array


@contextlib.contextmanager
def _opened(path: str | os.PathLike):
    """(meta, archive) of a checkpoint file, its format checked; whatever goes wrong
    reading it, inside the block too, is a CheckpointError naming the file."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        # Opened here, so that the file is closed however np.load fails.
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as archive:
            meta = json.loads(archive["meta"].tobytes().decode())
            _check_format(path, meta)
            yield meta, _Numbers(archive)
    except (
        AttributeError,  # a part of the wrong kind, e.g. a list where a mapping belongs
        OSError,
        EOFError,
        ValueError,  # includes ConfigError and JSON errors
        KeyError,
        TypeError,
        zipfile.BadZipFile,
        UnicodeDecodeError,
    ) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        if isinstance(error, ConfigError):
            reason = f"bad settings: {reason}"
        raise CheckpointError(f"checkpoint {path} is damaged ({reason})") from None
