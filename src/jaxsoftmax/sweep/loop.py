"""The host loop: a sweep in progress that its caller drives, chunk by chunk.

    run = SweepRun.start(dataset, config)
    for report in run:       # one ChunkReport per chunk; the next chunk is already running
        ...                  # log it, save run.checkpoint(), or break to stop early
    result = run.result()

`SweepRun` owns the device side (the mesh, the data and each slice's state on the
devices, the compiled chunk programs); `progress.Progress` keeps the host's record.
`sweep.train_sweep` is the same loop with callbacks, in one call.
"""

import dataclasses
import time
from collections.abc import Iterator

import jax
import numpy as np

from jaxsoftmax.core import engine
from jaxsoftmax.core.optimizer import GradientDescent
from jaxsoftmax.data.dataset import Dataset
from jaxsoftmax.errors import CheckpointError, ConfigError
from jaxsoftmax.sweep import parallel, warm
from jaxsoftmax.sweep.checkpoint import SweepCheckpoint
from jaxsoftmax.sweep.config import SweepConfig
from jaxsoftmax.sweep.plan import SweepPlan, compiler_options, make_plan
from jaxsoftmax.sweep.progress import ChunkReport, Progress, chunk_report
from jaxsoftmax.sweep.protocol import Run
from jaxsoftmax.sweep.results import SweepResult
from jaxsoftmax.sweep.warm import WarmStart


class SweepRun(Run):
    """A sweep in progress: iterating it trains, one `ChunkReport` per chunk.

    Make one with `start` or `restore`. While the caller handles a report, the
    device already runs the next chunk. Breaking out of the loop stops training
    after the last report handled; `checkpoint()` then saves exactly that point,
    and `restore` goes on from it with the same result, bitwise on a CPU.
    In a multi-process run every process must iterate alike and call
    `checkpoint()` at the same points (it gathers the state from all of them).
    """

    def __init__(
        self,
        dataset: Dataset,
        config: SweepConfig,
        plan: SweepPlan,
        progress: Progress,
        *,
        position: tuple[int, int] | None = None,
        saved_state: list[np.ndarray] | None = None,
        initial: tuple[int, list[np.ndarray] | None] = (0, None),
        keep_states: bool = False,
        histogram_buckets: int = 0,
        devices=None,
        schedule_steps: int | None = None,
        descent: GradientDescent | None = None,
    ):
        """Use `start` or `restore`."""
        config.check_fits(len(dataset.train_images))
        self.config, self.plan, self.progress = config, plan, progress
        self.probe_s = plan.probe_s
        self._dataset = dataset
        self._mesh = parallel.make_mesh(devices)
        if self._mesh.size != plan.num_devices:
            raise ConfigError(
                f"the plan is for {plan.num_devices} devices and this run has {self._mesh.size}"
            )
        self._spread = self._mesh.size > 1 or jax.process_count() > 1
        self._data = parallel.device_data(dataset, config, self._mesh if self._spread else None)
        self._loss_scale = self._replicated(np.float32(config.loss_scale))
        self.descent = descent or config.descent
        self._cosine_steps = (schedule_steps or config.steps) if config.schedule == "cosine" else 0
        self._histogram_buckets = histogram_buckets
        self._initial_step, self._initial_state = initial
        if self._initial_step and self._initial_step not in plan.chunk_ends:
            raise ConfigError(
                f"a warm start at step {self._initial_step} ends no chunk of the plan"
            )
        self._keep_states = keep_states
        self._position = position or (0, self._initial_step)
        self._saved_state = saved_state
        self._state = None  # the device state at `_position`, once training has run
        self._programs = {}
        self._checkpointed_at = self._total_steps(self._position)
        self._times_before = self._times()

    @classmethod
    def start(
        cls,
        dataset: Dataset,
        config: SweepConfig = SweepConfig(),
        plan: SweepPlan | None = None,
        *,
        histogram_buckets: int = 0,
        keep_params: bool = True,
        warm: WarmStart | None = None,
        keep_states: bool = False,
        devices=None,
        **training,
    ) -> "SweepRun":
        """A new sweep of `config` on `dataset`, following `plan` (default: `make_plan`'s).

        Args:
          histogram_buckets: if positive, each report carries histograms of every
            model's parameters at each evaluation, computed on the device.
          keep_params: keep every model's final parameters for `result()`.
          warm: begin from these states and this step instead of the start.
          keep_states: keep every model's final training state (`progress.states`),
            for a warm start of another sweep.
          devices: the devices to shard the models over (default: every device of
            every process); as many as `plan.num_devices`.
          training: how a search's rung trains (`schedule_steps`, the steps a cosine
            schedule spans if not `config.steps`; `descent`, if not `config.descent`):
            see `search.Halving.rung_training`.
        """
        if plan is None:
            plan = make_plan(
                config,
                dataset,
                devices=devices,
            )
        if not plan.fits(config):
            raise ConfigError("the plan was made for another sweep; make it from this config")
        plan.check()
        progress = Progress.start(
            config, dataset.num_features, dataset.num_classes, keep_params=keep_params
        )
        if warm is not None:
            progress = warm.progress.copy()
            if keep_params and progress.params is None:
                progress.params = Progress.start(
                    config, dataset.num_features, dataset.num_classes, keep_params=True
                ).params
        return cls(
            dataset, config, plan, progress, histogram_buckets=histogram_buckets,
            initial=(warm.step, warm.state) if warm else (0, None), keep_states=keep_states,
            devices=devices, **training,
        )  # fmt: skip

    @classmethod
    def restore(
        cls,
        dataset: Dataset,
        checkpoint: SweepCheckpoint,
        *,
        histogram_buckets: int = 0,
        keep_params: bool | None = None,
        keep_states: bool | None = None,
        devices=None,
        **training,
    ) -> "SweepRun":
        """The sweep `checkpoint` saved, going on where it stopped, on the same data
        (`training` as for `start`).

        `keep_params` None keeps final parameters if the checkpoint does; True keeps them
        from now on (NaN for models finished before), False drops them. `keep_states`
        None keeps final states if the checkpoint holds some. Raises CheckpointError
        where its parts do not fit together, or it holds other data or devices.
        """
        wrong = checkpoint.inconsistencies()
        if wrong:
            raise CheckpointError(f"the checkpoint is damaged: {', '.join(wrong)} do not fit")
        num_devices = len(jax.devices() if devices is None else devices)
        if checkpoint.plan.num_devices != num_devices:
            raise CheckpointError(
                f"the checkpoint was written on {checkpoint.plan.num_devices} devices and this "
                f"run has {num_devices}; resume it on as many"
            )
        if checkpoint.data_fingerprint != dataset.fingerprint():
            raise CheckpointError(
                "the checkpoint was trained on other data; resume with the same dataset and files"
            )
        warm.check_learning_rates(checkpoint.state)
        params = checkpoint.progress.params
        if params is not None and params["w"].shape[1:] != (
            dataset.num_features,
            dataset.num_classes,
        ):
            raise CheckpointError("the checkpoint's parameters do not fit this data")
        progress = checkpoint.progress.copy()
        if keep_params is False:
            progress.params = None
        elif keep_params and params is None:
            fresh = Progress.start(
                checkpoint.config, dataset.num_features, dataset.num_classes, keep_params=True
            )
            progress.params = fresh.params
        return cls(
            dataset,
            checkpoint.config,
            checkpoint.plan,
            progress,
            position=(checkpoint.slice_index, checkpoint.step),
            saved_state=checkpoint.state,
            initial=(checkpoint.initial_step, checkpoint.initial_state),
            keep_states=progress.states is not None if keep_states is None else keep_states,
            histogram_buckets=histogram_buckets,
            devices=devices,
            **training,
        )

    @property
    def finished(self) -> bool:
        """Whether every model has taken every step."""
        return self._position[0] == self.plan.num_slices

    @property
    def steps_trained(self) -> int:
        """Steps trained so far, counting every slice's (the progress bar's unit)."""
        return self._total_steps(self._position)

    @property
    def total_steps(self) -> int:
        """Steps of the whole sweep, counting every slice's (after a warm start's)."""
        return self.plan.num_slices * (self.config.steps - self._initial_step)

    def __iter__(self) -> Iterator[ChunkReport]:
        for index in range(self._position[0], self.plan.num_slices):
            yield from self._train_slice(index)

    def _train_slice(self, index: int) -> Iterator[ChunkReport]:
        seeds, settings = self.plan.slices[index]
        models, valid = self.plan.slice_models(index), (len(seeds), len(settings))
        seed_values = _pad([self.config.seed_values[i] for i in seeds], self.plan.slice_seeds)
        points = _pad([self.config.settings[j] for j in settings], self.plan.slice_settings)
        state, step = self._slice_state(index, seed_values, points)
        seed_array = self._sharded(np.asarray(seed_values, np.int32), self.plan.shard_axis == 0)
        self._compile(state, seed_array)
        self._clock = time.perf_counter()
        pending = None
        for chunk in self.plan.chunks[self.plan.chunk_ends.index(step) + 1 if step else 0 :]:
            state, *outputs = self._programs[chunk](
                state, self._replicated(np.int32(step)), self._data, seed_array, self._loss_scale
            )
            steps = np.arange(step + 1, step + chunk[0] * chunk[1] + 1)
            step = int(steps[-1])
            if pending is not None:  # record the previous chunk while this one runs
                yield self._record(index, *pending)
            pending = (models, valid, steps, chunk[1], state, outputs)
        yield self._record(index, *pending)
        self.progress.train_s += time.perf_counter() - self._clock  # the caller's last turn

    def _slice_state(
        self, index: int, seed_values: list[int], points: list[dict]
    ) -> tuple[engine.TrainState, int]:
        """Slice `index`'s state (of `seed_values` x `points`, padded) where it starts, or
        where the checkpoint left it; and its step."""
        hyper = [np.asarray([p[axis] for p in points], np.float32) for axis in _HYPER]
        target = None
        if self._spread:
            target = parallel.sharding(self._mesh, self.plan.shard_axis)
        state = engine.init_grid(
            *(self._replicated(value) for value in (np.asarray(seed_values, np.int32), *hyper)),
            num_features=self._dataset.num_features,
            num_classes=self._dataset.num_classes,
            init_scale=self.config.init_scale,
            cosine_steps=self._cosine_steps,
            descent=self.descent,
            layout=self.plan.layout,
            target=target,
        )
        if index == self._position[0] and self._state is not None:  # iterated again
            return self._state, self._position[1]
        if index == self._position[0] and self._saved_state is not None:
            state = self._restored(state, self._saved_state)
            self._saved_state = None
            return state, self._position[1]
        if self._initial_state is not None:  # a warm start: these models' states
            leaves = warm.slice_leaves(self._initial_state, state, self.plan, index)
            return self._restored(state, leaves), self._initial_step
        return state, 0

    def _restored(self, template, leaves: list[np.ndarray]):
        """`template`'s pytree with `leaves` (host arrays) put where the template's are."""
        template_leaves, treedef = jax.tree_util.tree_flatten(template)
        if len(leaves) != len(template_leaves) or any(
            saved.shape != leaf.shape or saved.dtype != leaf.dtype
            for saved, leaf in zip(leaves, template_leaves, strict=False)
        ):
            raise CheckpointError(
                "the checkpoint's training state does not fit this run (another version of "
                "jaxsoftmax, or other data)"
            )
        return jax.tree_util.tree_unflatten(
            treedef,
            [
                parallel.put(saved, leaf.sharding) if self._spread else jax.device_put(saved)
                for saved, leaf in zip(leaves, template_leaves, strict=True)
            ],
        )

    def _compile(self, state, seed_array) -> None:
        """Compiles each chunk shape of the plan once (every slice shares the programs)."""
        start = time.perf_counter()
        options = compiler_options(self.plan, self._mesh.devices.flat[0].platform)
        for num_windows, window_steps in dict.fromkeys(self.plan.chunks):
            if (num_windows, window_steps) not in self._programs:
                lowered = engine.run_chunk.lower(
                    state, self._replicated(np.int32(0)), self._data, seed_array,
                    self._loss_scale, num_windows=num_windows, window_steps=window_steps,
                    batch_size=self.config.batch_size, descent=self.descent,
                    layout=self.plan.layout, histogram_buckets=self._histogram_buckets,
                )  # fmt: skip
                try:
                    program = lowered.compile(compiler_options=options)
                except Exception:  # an XLA without the options: a real error raises again
                    if not options:
                        raise
                    options, program = {}, lowered.compile()
                self._programs[num_windows, window_steps] = program
        self.progress.compile_s += time.perf_counter() - start

    def _record(self, index, models, valid, steps, window_steps, state, outputs) -> ChunkReport:
        params, train, evaluations, histograms = parallel.to_host((state.params, *outputs))
        finished = int(steps[-1]) == self.config.steps
        report = chunk_report(
            models, valid, steps, window_steps, engine.to_layout(params, self.plan.layout),
            train, evaluations, histograms, finished,
        )  # fmt: skip
        diverged_at = self.progress.record(report, self.config)
        now = time.perf_counter()
        self.progress.train_s += now - self._clock
        self._clock = now
        if finished:
            if self._keep_states:
                state_host = parallel.to_host(state)
                self.progress.keep_states(models, warm.models_first(state_host, self.plan, index))
            self._position, self._state = (index + 1, self._initial_step), None
        else:
            self._position, self._state = (index, int(steps[-1])), state
        return dataclasses.replace(report, diverged_at=diverged_at.copy())

    def checkpoint(self) -> SweepCheckpoint:
        """A snapshot of the sweep as of the last report handled, for `restore`."""
        state = self._state
        if state is None and self._saved_state is not None:  # restored, not yet trained
            leaves = self._saved_state
        else:
            leaves = None if state is None else [
                np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(parallel.to_host(state))
            ]  # fmt: skip
        self._checkpointed_at = self.steps_trained
        return SweepCheckpoint(
            config=self.config,
            plan=self.plan,
            data_fingerprint=self._dataset.fingerprint(),
            slice_index=self._position[0],
            step=self._position[1],
            state=leaves,
            progress=self.progress.copy(),
            initial_step=self._initial_step,
            initial_state=self._initial_state,
        )

    @property
    def checkpointed(self) -> bool:
        """Whether `checkpoint()` has been taken since the last report."""
        return self._checkpointed_at == self.steps_trained

    def search_record(self) -> dict | None:
        """A random search's record (its trials are the sweep's models); None for a grid."""
        if not self.config.is_search:
            return None
        return {"strategy": "random", "trials": self.config.num_models}

    def _times(self) -> tuple[float, float]:
        return self.progress.compile_s, self.progress.train_s

    def result(self) -> SweepResult:
        """What the sweep has produced so far; `interrupted` unless it has finished."""
        return self.progress.result(self.config, interrupted=not self.finished)

    def _total_steps(self, position: tuple[int, int]) -> int:
        per_slice = self.config.steps - self._initial_step
        return position[0] * per_slice + position[1] - self._initial_step

    def _replicated(self, value: np.ndarray) -> jax.Array:
        if not self._spread:
            return jax.device_put(value)  # a copy, not a compiled program as jnp.asarray
        return parallel.put(value, parallel.sharding(self._mesh, None, np.ndim(value)))

    def _sharded(self, value: np.ndarray, split: bool) -> jax.Array:
        if not self._spread:
            return jax.device_put(value)
        return parallel.put(value, parallel.sharding(self._mesh, 0 if split else None, 1))


_HYPER = ("learning_rate", "weight_decay", "momentum")


def _pad(values: list, size: int) -> list:
    return values + values[-1:] * (size - len(values))
