"""`Run`: what every run a caller drives is, a sweep (`SweepRun`) or a search
(`search.HalvingSearch`), so that no caller asks which one it holds.

    for report in run:                       # one ChunkReport per chunk
        if run.checkpoint_due(every):
            checkpoint.save(path, run.checkpoint())
    result = run.result()
    run.search_record()                      # None for a grid; a search's rule otherwise

`checkpoint.save` and `checkpoint.load` take and give either kind of checkpoint;
`search.restore_run` makes the run a loaded checkpoint holds.
"""

import abc
from collections.abc import Iterator

import numpy as np

from jaxsoftmax.core.optimizer import GradientDescent
from jaxsoftmax.sweep.config import SweepConfig
from jaxsoftmax.sweep.plan import SweepPlan
from jaxsoftmax.sweep.progress import ChunkReport, Progress
from jaxsoftmax.sweep.results import SweepResult


class Run(abc.ABC):
    """A run in progress: iterating it trains, one `ChunkReport` per chunk.

    Attributes:
      config: every model it trains (a grid, or a search's trials).
      progress: the host's record of every model so far.
      plan: the `SweepPlan` it trains on now (None once a search has finished).
      descent: its `GradientDescent` (None once a search has finished).
      finished: whether every model has taken every step it is to take.
      steps_trained, total_steps: steps so far and of the whole run, in one unit (the
        progress bar's).
      checkpointed: whether `checkpoint()` has been taken since the last report.
      probe_s: seconds this object spent probing weight layouts for its plans (see
        `layout_probe`; 0 where none ran, or the answer was cached).
      rung_accuracy: a halving search's (rungs, trials) validation accuracy at each
        rung's end; None for any other run.
    """

    config: SweepConfig
    progress: Progress
    plan: SweepPlan | None
    descent: GradientDescent | None
    finished: bool
    steps_trained: int
    total_steps: int
    checkpointed: bool
    probe_s: float = 0.0
    rung_accuracy: np.ndarray | None = None
    _checkpointed_at: int
    _times_before: tuple[float, float]

    @abc.abstractmethod
    def __iter__(self) -> Iterator[ChunkReport]: ...

    @abc.abstractmethod
    def checkpoint(self):
        """A snapshot as of the last report handled, for `checkpoint.save`."""

    @abc.abstractmethod
    def result(self) -> SweepResult:
        """What it has produced so far; `interrupted` unless it has finished."""

    @abc.abstractmethod
    def search_record(self) -> dict | None:
        """What results.json says of the search (`strategy`, `trials` and its rule);
        None for a sweep of a grid."""

    @abc.abstractmethod
    def _times(self) -> tuple[float, float]:
        """Seconds spent compiling and training so far, every session's."""

    def checkpoint_due(self, every: int | None) -> bool:
        """Whether a multiple of `every` steps has been passed since the last
        `checkpoint()` (or the start); always False for None."""
        return bool(every) and self.steps_trained // every > self._checkpointed_at // every

    def session_times(self) -> dict[str, float]:
        """Seconds this object spent probing layouts (where a probe ran), compiling and
        training (a restored run's progress also counts the sessions before)."""
        compile_s, train_s = self._times()
        return ({"probe_s": self.probe_s} if self.probe_s else {}) | {
            "compile_s": compile_s - self._times_before[0],
            "train_s": train_s - self._times_before[1],
        }
