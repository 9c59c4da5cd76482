"""A successive-halving search in progress, driven like a `SweepRun`.

    search = HalvingSearch.start(dataset, config, Halving(eta=3, min_steps=20))
    for report in search:    # one ChunkReport per chunk of each rung, trials by index
        ...
    result = search.result()

Each rung is a `SweepRun` over the trials still in, warm-started from their states at
the end of the rung before (see `warm`); `progress` records every trial. A checkpoint
holds the rung in progress (its states, and those it began from) and, beside it, the
search's own record, so a search stopped anywhere goes on bitwise.
"""

import dataclasses
from collections.abc import Iterator

import numpy as np

from jaxsoftmax.data.dataset import Dataset
from jaxsoftmax.errors import CheckpointError, ConfigError
from jaxsoftmax.search.spaces import Halving
from jaxsoftmax.sweep.checkpoint import SearchCheckpoint
from jaxsoftmax.sweep.config import SweepConfig
from jaxsoftmax.sweep.loop import SweepRun
from jaxsoftmax.sweep.plan import make_plan
from jaxsoftmax.sweep.progress import ChunkReport, Progress
from jaxsoftmax.sweep.protocol import Run
from jaxsoftmax.sweep.results import SweepResult
from jaxsoftmax.sweep.warm import WarmStart, restart_schedule


class HalvingSearch(Run):
    """Successive halving over `config.trials` (see `search.Halving`).

    Attributes:
      config: the whole search: every trial, the steps the last rung reaches.
      halving: the rungs' rule.
      progress: every trial's record (metrics up to where it stopped).
      rung: the rung in progress (`len(rungs)` once done); survivors: its trials.
      rung_accuracy: (rungs, trials) validation accuracy at each rung's end (NaN where
        a trial did not reach it).
    """

    def __init__(self, dataset, config, halving, progress, *, rung, survivors, rung_accuracy,
                 run, plan_options, histogram_buckets):  # fmt: skip
        """Use `start` or `restore`."""
        self.config, self.halving, self.progress = config, halving, progress
        self.rung, self.survivors, self.rung_accuracy = rung, survivors, rung_accuracy
        self.rungs = halving.rungs(config.steps)
        self._dataset, self._run = dataset, run
        self._plan_options, self._histogram_buckets = plan_options, histogram_buckets
        self._warm: WarmStart | None = None
        self._last_run = run  # the last rung's, once the search is done
        self._checkpointed_at = self.steps_trained
        self._times_before = self._times()

    @classmethod
    def start(cls, dataset: Dataset, config: SweepConfig, halving: Halving, *,
              histogram_buckets: int = 0, **plan_options) -> "HalvingSearch":  # fmt: skip
        """A new search of `config.trials`; `plan_options` go to `make_plan` per rung."""
        halving.check(config)  # one seed, a validation split, rungs that fit
        config.check_fits(len(dataset.train_images))
        if not config.is_search:
            raise ConfigError("successive halving needs trials (a `search`)")
        progress = Progress.start(
            config, dataset.num_features, dataset.num_classes, keep_params=False
        )
        accuracy = np.full((len(halving.rungs(config.steps)), config.num_models), np.nan)
        return cls(
            dataset, config, halving, progress, rung=0, survivors=np.arange(config.num_models),
            rung_accuracy=accuracy, run=None, plan_options=plan_options,
            histogram_buckets=histogram_buckets,
        )  # fmt: skip

    @property
    def finished(self) -> bool:
        return self.rung == len(self.rungs)

    @property
    def descent(self):
        return self._rung_run().descent if not self.finished else None

    @property
    def plan(self):
        return self._rung_run().plan if not self.finished else None

    @property
    def steps_trained(self) -> int:
        """Steps a trial still in has taken (within a rung, counting its slices' share)."""
        if self.finished:
            return self.config.steps
        begin = self.rungs[self.rung - 1] if self.rung else 0
        if self._run is None:
            return begin
        return begin + self._run.steps_trained // self._run.plan.num_slices

    @property
    def total_steps(self) -> int:
        return self.config.steps

    def __iter__(self) -> Iterator[ChunkReport]:
        while not self.finished:
            run = self._rung_run()
            for report in run:
                report = dataclasses.replace(report, models=self.survivors[report.models])
                self.progress.record(report, self.config)
                yield report
            self._end_rung(run)

    def _rung_run(self) -> SweepRun:
        if self._run is None:
            config = self.halving.rung_config(self.config, self.survivors, self.rung)
            training = self.halving.rung_training(self.config, self.rung)
            plan = make_plan(config, self._dataset, descent=training["descent"],
                             **self._plan_options)  # fmt: skip
            self.probe_s += plan.probe_s
            last = self.rung == len(self.rungs) - 1
            self._run = SweepRun.start(
                self._dataset, config, plan, histogram_buckets=self._histogram_buckets,
                keep_params=last, warm=self._warm, keep_states=not last, **training,
            )  # fmt: skip
        return self._run

    def _end_rung(self, run: SweepRun) -> None:
        """Ranks the rung's trials by validation accuracy and keeps the best 1/eta."""
        self._checkpointed_at = -1  # the search has moved on from any checkpoint before
        accuracy = run.progress.validation_accuracy[-1]
        self.rung_accuracy[self.rung, self.survivors] = accuracy
        self.progress.compile_s += run.progress.compile_s
        self.progress.train_s += run.progress.train_s
        if self.rung == len(self.rungs) - 1:
            self._final_params(run)
            self.rung, self._run, self._last_run = self.rung + 1, None, run
            return
        ranked = run.progress.result(run.config, interrupted=False, share=True).ranked()
        rest = np.setdiff1d(np.arange(len(accuracy)), ranked)  # diverged: last, in order
        order = np.concatenate([ranked, rest])  # by validation accuracy alone
        keep = np.sort(order[: self.halving.survivors(len(accuracy))])
        self.survivors = self.survivors[keep]
        self.rung, self._run = self.rung + 1, None
        next_config = self.halving.rung_config(self.config, self.survivors, self.rung)
        history = Progress.start(next_config, self._dataset.num_features,
                                 self._dataset.num_classes, keep_params=False)  # fmt: skip
        _carry(run.progress, keep, history)
        states = [leaf[keep] for leaf in run.progress.states]
        if self.config.schedule == "cosine":  # each rung decays to a stable iterate: see search
            steps = self.halving.rung_training(self.config, self.rung)["schedule_steps"]
            states = restart_schedule(states, run.descent, steps)
        self._warm = WarmStart(run.config.steps, states, history)
        run.progress.states = None  # every trial's state: gone, now that the best are kept

    def _final_params(self, run: SweepRun) -> None:
        shape = (self.config.num_models, *run.progress.params["w"].shape[1:])
        self.progress.params = {
            "w": np.full(shape, np.nan, np.float32),
            "b": np.full((shape[0], shape[2]), np.nan, np.float32),
        }
        for name, values in run.progress.params.items():
            self.progress.params[name][self.survivors] = values

    def result(self) -> SweepResult:
        """Every trial's record: the steps it took, its metrics, final parameters of the
        trials that reached the last rung; `interrupted` unless the search finished.
        A finished search's record changes no more, so it is shared, not copied."""
        return self.progress.result(
            self.config, interrupted=not self.finished, times=self._times(), share=self.finished
        )

    def search_record(self) -> dict:
        return {"strategy": "halving", "trials": self.config.num_models,
                "eta": self.halving.eta, "min_steps": self.halving.min_steps,
                "rungs": self.rungs}  # fmt: skip

    def finalists(self) -> np.ndarray:
        """The trials that reached the last rung (all of them once it has begun)."""
        return self.survivors if self.rung >= len(self.rungs) - 1 else np.zeros(0, int)

    def _times(self) -> tuple[float, float]:
        """Seconds spent compiling and training in the whole search so far."""
        compile_s, train_s = self.progress.compile_s, self.progress.train_s
        if self._run is not None:
            compile_s, train_s = (
                compile_s + self._run.progress.compile_s,
                train_s + self._run.progress.train_s,
            )
        return compile_s, train_s

    def checkpoint(self) -> SearchCheckpoint:
        """A snapshot of the search as of the last report handled, for `restore`."""
        run = self._last_run if self.finished else self._rung_run()
        sweep = run.checkpoint()
        self._checkpointed_at = self.steps_trained
        search = {
            "strategy": "halving",
            "config": self.config.to_dict(),
            "eta": self.halving.eta,
            "min_steps": self.halving.min_steps,
            "rung": self.rung,
            "survivors": self.survivors.tolist(),
            "compile_s": self.progress.compile_s,
            "train_s": self.progress.train_s,
        }
        progress = self.progress
        arrays = {name: getattr(progress, name) for name in _RECORDED} | {
            "rung_accuracy": self.rung_accuracy
        }
        if progress.params is not None:
            arrays |= {f"params_{name}": values for name, values in progress.params.items()}
        return SearchCheckpoint(sweep=sweep, search=search, arrays=arrays)

    @property
    def checkpointed(self) -> bool:
        return (self._checkpointed_at == self.steps_trained and self._run is None) or (
            self._run is not None
            and self._run.checkpointed
            and self._checkpointed_at == self.steps_trained
        )

    @classmethod
    def restore(cls, dataset: Dataset, checkpoint: SearchCheckpoint, *,
                histogram_buckets: int = 0, **plan_options) -> "HalvingSearch":  # fmt: skip
        """The search a checkpoint saved, going on where it stopped.

        Raises:
          CheckpointError: its parts do not fit together.
        """
        sweep, search, arrays = checkpoint.sweep, checkpoint.search, checkpoint.arrays
        try:
            config = SweepConfig.from_dict(search["config"])
            halving = Halving(eta=search["eta"], min_steps=search["min_steps"])
            rung, survivors = int(search["rung"]), np.asarray(search["survivors"], np.int64)
            params = None
            if "params_w" in arrays:
                params = {"w": arrays["params_w"], "b": arrays["params_b"]}
            progress = Progress(**{name: arrays[name] for name in _RECORDED}, params=params,
                                compile_s=float(search["compile_s"]),
                                train_s=float(search["train_s"]))  # fmt: skip
            accuracy = arrays["rung_accuracy"]
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"the search's record is damaged ({error})") from None
        rungs = halving.rungs(config.steps)
        wrong = progress.inconsistencies(config)
        if accuracy.shape != (len(rungs), config.num_models) or not 0 <= rung <= len(rungs):
            wrong.append("rungs")
        if len(survivors) and not (survivors.min() >= 0 and survivors.max() < config.num_models):
            wrong.append("survivors")
        last = min(rung, len(rungs) - 1)
        if sweep.config != halving.rung_config(config, survivors, last):
            wrong.append("rung")
        if wrong:
            raise CheckpointError(f"the search's record is damaged: {', '.join(wrong)}")
        last = rung >= len(rungs) - 1
        training = halving.rung_training(config, min(rung, len(rungs) - 1))
        run = SweepRun.restore(dataset, sweep, histogram_buckets=histogram_buckets,
                               keep_params=last, keep_states=not last,
                               devices=plan_options.get("devices"), **training)  # fmt: skip
        return cls(
            dataset, config, halving, progress, rung=rung, survivors=survivors,
            rung_accuracy=accuracy, run=run, plan_options=plan_options,
            histogram_buckets=histogram_buckets,
        )  # fmt: skip


_RECORDED = (
    "train_loss", "train_accuracy", "test_loss", "test_accuracy", "validation_loss",
    "validation_accuracy", "steps_done", "diverged_at", "high_steps",
)  # fmt: skip


def _carry(done: Progress, keep: np.ndarray, history: Progress) -> None:
    """Copies the rung's record of the trials `keep` into the next rung's `history`."""
    steps, evals = done.train_loss.shape[0], done.test_loss.shape[0]
    for name in ("train_loss", "train_accuracy"):
        getattr(history, name)[:steps] = getattr(done, name)[:, keep]
    for name in ("test_loss", "test_accuracy", "validation_loss", "validation_accuracy"):
        getattr(history, name)[:evals] = getattr(done, name)[:, keep]
    for name in ("steps_done", "diverged_at", "high_steps"):
        getattr(history, name)[:] = getattr(done, name)[keep]
