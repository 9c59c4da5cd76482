"""The plan of a sweep: slices, chunks, devices and weight layout, decided once.

A grid of S seeds x M settings trains in slices of at most about `max_models` models,
one compiled program for all of them, one slice after another; each slice trains
every step in chunks (one host dispatch each), and its models are sharded over the
devices. `make_plan` decides all of it in one place, agreed across processes; the
plan travels with the sweep's checkpoint, so a resumed sweep goes on exactly as it
began, and nothing downstream recomputes it.
"""

import dataclasses
import itertools
import os
import time
from collections.abc import Callable, Mapping, Sequence

import jax
import numpy as np

from jaxsoftmax.core.layouts import CLASS_MAJOR, FEATURE_MAJOR, LAYOUTS
from jaxsoftmax.data.dataset import Dataset
from jaxsoftmax.errors import ConfigError
from jaxsoftmax.sweep import parallel
from jaxsoftmax.sweep.config import SweepConfig, check_count

AUTO = "auto"  # the layout measured for the plan (see `make_plan`)

# Models per device in one program when the caller does not say: on a CPU, throughput
# stops growing near K = 100 to 300, and each model costs about 1.3 MB there.
CPU_MODELS_PER_DEVICE = 1024
# The share of a device's free memory a program may plan to use.
MEMORY_FRACTION = 0.5


@dataclasses.dataclass(frozen=True, kw_only=True)
class SweepPlan:
    """How a grid of `num_seeds` x `num_settings` models trains.

    Every slice is a block of `slice_seeds` x `slice_settings` models, the same shape
    for all (one compilation); slices at the edge of the grid are padded with copies
    of their last seed or setting, trained and then dropped. With several devices,
    the slice's `shard_axis` (0: seeds, 1: settings) is split over them.

    Attributes:
      num_seeds, num_settings: the grid's shape.
      max_models: the limit on models per slice the plan was cut with.
      num_devices: how many devices the models are sharded over.
      seeds_per_slice, settings_per_slice: how many of the grid's seeds and settings
        a slice takes (the last slice of a row or column may take fewer).
      slice_seeds, slice_settings: a slice's shape, padding included.
      shard_axis: the slice axis split over devices; None on one device.
      layout: how the sweep holds its weights (`engine.LAYOUTS`).
      chunks: (num_windows, window_steps) of each chunk of a slice's steps, in order.
      probe_s: seconds a layout probe took to choose `layout` as this plan was made (0
        where none ran); not part of the plan, nor of a checkpoint's copy.
    """

    num_seeds: int
    num_settings: int
    max_models: int
    num_devices: int
    seeds_per_slice: int
    settings_per_slice: int
    slice_seeds: int
    slice_settings: int
    shard_axis: int | None
    layout: str
    chunks: tuple[tuple[int, int], ...]
    probe_s: float = dataclasses.field(default=0.0, compare=False)

    @property
    def seed_blocks(self) -> list[range]:
        """Which seeds each row of slices trains."""
        return _blocks(self.num_seeds, self.seeds_per_slice)

    @property
    def setting_blocks(self) -> list[range]:
        """Which settings each column of slices trains."""
        return _blocks(self.num_settings, self.settings_per_slice)

    @property
    def slices(self) -> list[tuple[range, range]]:
        """(seeds, settings) of every slice, in the order they train."""
        return list(itertools.product(self.seed_blocks, self.setting_blocks))

    @property
    def num_slices(self) -> int:
        return len(self.seed_blocks) * len(self.setting_blocks)

    @property
    def models_per_slice(self) -> int:
        """Models one program trains, padding included."""
        return self.slice_seeds * self.slice_settings

    @property
    def steps(self) -> int:
        """Steps each slice trains."""
        return sum(windows * steps for windows, steps in self.chunks)

    @property
    def chunk_ends(self) -> list[int]:
        """The step each chunk ends at."""
        return np.cumsum([windows * steps for windows, steps in self.chunks]).tolist()

    def slice_models(self, index: int) -> np.ndarray:
        """The sweep indices (`config.points` order) of slice `index`'s models, seed-major."""
        seeds, settings = self.slices[index]
        return (np.asarray(seeds)[:, None] * self.num_settings + np.asarray(settings)).ravel()

    def to_dict(self) -> dict:
        """A JSON-friendly copy."""
        values = dataclasses.asdict(self) | {"chunks": [list(chunk) for chunk in self.chunks]}
        del values["probe_s"]
        return values

    @classmethod
    def from_dict(cls, values: Mapping) -> "SweepPlan":
        """The plan `to_dict` wrote, checked as `make_plan` would have made it.

        Raises:
          ConfigError: a field is missing, unknown or of the wrong kind, or the plan
            is not one `plan_slices` makes for its own numbers.
        """
        names = {field.name for field in dataclasses.fields(cls)} - {"probe_s"}
        try:
            if set(values) != names:
                raise ConfigError(f"fields {sorted(values)} are not {sorted(names)}")
            chunks = tuple(
                (check_count("chunk windows", windows), check_count("window steps", steps))
                for windows, steps in values["chunks"]
            )
            for name in ("num_seeds", "num_settings", "max_models", "num_devices"):
                check_count(name, values[name])
            plan = cls(**(dict(values) | {"chunks": chunks}))
            plan.check()
        except ConfigError as error:
            raise ConfigError(f"plan: {error}") from None
        return plan

    def check(self) -> None:
        """Raises ConfigError unless the slices follow from the plan's numbers, as
        `plan_slices` cuts them (so a checkpoint of it can be read back)."""
        made = plan_slices(
            self.num_seeds, self.num_settings, self.max_models, self.num_devices,
            layout=self.layout, chunks=self.chunks,
        )  # fmt: skip
        if made != self:
            raise ConfigError("its slices do not follow from its numbers; make it with make_plan")

    def fits(self, config: SweepConfig) -> bool:
        """Whether this plan is one for `config`'s grid and steps."""
        return (self.num_seeds, self.num_settings) == (
            len(config.seed_values),
            len(config.settings),
        ) and self.chunks == plan_chunks(config)


def _blocks(total: int, size: int) -> list[range]:
    """`range(total)` cut into blocks of `size` (the last may be shorter)."""
    return [range(start, min(start + size, total)) for start in range(0, total, size)]


def plan_chunks(config: SweepConfig) -> tuple[tuple[int, int], ...]:
    """Splits training into chunks of (num_windows, window_steps) that cover every step.

    Full windows of `eval_every` steps are grouped into chunks of about
    `chunk_steps` steps; the windows left over form one shorter chunk, and a shorter
    last window covers the remaining steps. At most three shapes compile.
    """
    full_windows, remainder = divmod(config.steps, config.eval_every)
    per_chunk = min(full_windows, max(1, config.chunk_steps // config.eval_every))
    chunks = []
    if full_windows:
        whole, rest = divmod(full_windows, per_chunk)
        chunks += [(per_chunk, config.eval_every)] * whole
        if rest:
            chunks.append((rest, config.eval_every))
    if remainder:
        chunks.append((1, remainder))
    return tuple(chunks)


def plan_slices(
    num_seeds: int,
    num_settings: int,
    max_models: int,
    num_devices: int,
    *,
    layout: str,
    chunks: tuple[tuple[int, int], ...],
) -> SweepPlan:
    """Cuts a grid into slices of at most about `max_models` models (see SweepPlan).

    A slice takes whole rows of settings while they fit (with as many seeds as fit),
    else a single seed and `max_models` settings. Then the axis that needs less
    padding is padded to a multiple of `num_devices` and sharded.
    """
    check_count("max models per slice", max_models)
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r}; the layouts are {', '.join(LAYOUTS)}")
    limit = max(max_models, num_devices)
    if num_settings <= limit:
        settings, seeds = num_settings, min(num_seeds, limit // num_settings)
    else:
        settings, seeds = limit, 1
    shape, shard_axis = [seeds, settings], None
    if num_devices > 1:
        padded = [-(-size // num_devices) * num_devices for size in shape]
        shard_axis = 0 if padded[0] * settings < seeds * padded[1] else 1
        shape[shard_axis] = padded[shard_axis]
    return SweepPlan(
        num_seeds=num_seeds,
        num_settings=num_settings,
        max_models=max_models,
        num_devices=num_devices,
        seeds_per_slice=seeds,
        settings_per_slice=settings,
        slice_seeds=shape[0],
        slice_settings=shape[1],
        shard_axis=shard_axis,
        layout=layout,
        chunks=tuple(chunks),
    )


def default_layout(devices: Sequence) -> str:
    """The weight layout for these devices: class-major on CPUs, feature-major elsewhere
    (see `engine.to_layout` for the measurements)."""
    return CLASS_MAJOR if all(device.platform == "cpu" for device in devices) else FEATURE_MAJOR


def bytes_per_model(
    config: SweepConfig, num_features: int, num_classes: int, num_test: int, descent=None
) -> int:
    """Device memory one model of a program needs, about: its parameters and optimiser
    state (several copies in flight; `descent`: its parts, if not `config.descent`), a
    step's logits, and the test evaluation's logits and probabilities."""
    parameters = (num_features + 1) * num_classes * 4
    copies = 5 + (config.descent if descent is None else descent).momentum
    step = 4 * config.batch_size * num_classes * 4 + config.chunk_steps * 8
    evaluation = 3 * num_test * num_classes * 4
    return copies * parameters + step + evaluation


def default_max_models(model_bytes: int, devices: Sequence) -> int:
    """Models per slice that fit in about half the free memory of each device, each
    taking `model_bytes`; on a CPU at most CPU_MODELS_PER_DEVICE per device."""
    per_device = []
    for device in devices:
        stats = device.memory_stats() if device.platform != "cpu" else None
        if stats and "bytes_limit" in stats:
            free = stats["bytes_limit"] - stats.get("bytes_in_use", 0)
            per_device.append(int(MEMORY_FRACTION * free) // model_bytes)
        else:
            local = max(1, sum(d.platform == "cpu" for d in jax.local_devices()))
            try:
                free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // local
            except (ValueError, OSError, AttributeError):  # no such query on this system
                per_device.append(CPU_MODELS_PER_DEVICE)
                continue
            fits = int(MEMORY_FRACTION * free) // model_bytes
            per_device.append(min(CPU_MODELS_PER_DEVICE, fits))
    return max(1, min(per_device)) * len(per_device)


def make_plan(
    config: SweepConfig,
    dataset: Dataset,
    *,
    max_models_per_slice: int | None = None,
    models_cap: int | None = None,
    devices: Sequence | None = None,
    layout: str | None = None,
    report: Callable[[str], None] | None = None,
    descent=None,
) -> SweepPlan:
    """The plan for training `config`; every process of a run must call it at the same point.

    Args:
      config: the sweep.
      dataset: its data (its shape sizes the memory a model needs).
      max_models_per_slice: train at most about this many models at once; by
        default as many as fit in half of each device's free memory (on a CPU, at
        most 1024 per device).
      models_cap: a further limit on models per slice (e.g. from open files).
      devices: the devices to shard over (default: every device of every process).
      layout: the weight layout, or "auto" (the default): the faster for this plan's
        shapes on `devices`, measured once and cached beside the compilation cache
        (see `layout_probe`); `default_layout(devices)` for programs too small to probe.
      report: called with a line saying what a layout probe measured, when one runs.
      descent: the gradient descent's parts it trains with, if not `config.descent`
        (a search's rung: see `search.Halving.rung_training`).

    Returns:
      The plan, the same in every process: free memory differs between hosts, so
      the smallest limit over all processes is taken.
    """
    devices = jax.devices() if devices is None else list(devices)
    descent = descent or config.descent
    model_bytes = bytes_per_model(
        config, dataset.num_features, dataset.num_classes, len(dataset.test_images), descent
    )
    limit = max_models_per_slice or default_max_models(model_bytes, devices)
    if models_cap is not None:
        limit = min(limit, models_cap)
    limit = parallel.smallest_over_processes(limit)
    if layout is not None and layout != AUTO and layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r}; give auto, {', '.join(LAYOUTS)}")
    plan = plan_slices(
        len(config.seed_values),
        len(config.settings),
        limit,
        len(devices),
        layout=default_layout(devices) if layout in (None, AUTO) else layout,
        chunks=plan_chunks(config),
    )
    if layout in (None, AUTO):
        began = time.perf_counter()
        chosen, probed = measured_layout(plan, config, dataset, devices, report, descent)
        probe_s = time.perf_counter() - began if probed else 0.0
        plan = dataclasses.replace(plan, layout=chosen, probe_s=probe_s)
    return plan


# XLA's CPU fusion emitters (its default) run the steps of wide programs 10-15% faster
# (K=30: 30,166 against 26,701 model-steps/s; K=100: 39,916 against 33,812), but take
# about 0.3 s longer to compile the chunk program (1.0 against 0.7 s). With a few models
# a device the steps run about as fast either way (median speed against the default's
# over alternating pairs: K=3 0.95, K=7 0.99), so short runs of small programs, the
# tutorial's among them, compile with the older emitters: up to SHORT_STEPS steps in all
# (every slice's), the 0.3 s saved is more than the steps lose. An XLA_FLAGS that sets
# the emitters itself is left to decide.
SMALL_PROGRAM_OPTIONS = {"xla_cpu_use_fusion_emitters": False}
SHORT_STEPS = 10_000


def compiler_options(plan: SweepPlan, platform: str) -> dict:
    """XLA options for compiling `plan`'s chunk programs on `platform`; they depend on the
    plan (and XLA_FLAGS) alone, so every process and every resumption compiles the same."""
    from jaxsoftmax.sweep.layout_probe import MIN_MODELS

    flags = os.environ.get("XLA_FLAGS", "")
    if platform != "cpu" or any(name in flags for name in SMALL_PROGRAM_OPTIONS):
        return {}
    small = plan.models_per_slice // plan.num_devices < MIN_MODELS
    short = plan.num_slices * plan.steps <= SHORT_STEPS
    return dict(SMALL_PROGRAM_OPTIONS) if small and short else {}


def measured_layout(
    plan: SweepPlan, config: SweepConfig, dataset: Dataset, devices, report=None, descent=None
) -> tuple[str, bool]:
    """The faster layout for `plan`'s programs on `devices` (see `layout_probe`), the
    same in every process; the plan's own where its programs are too small to probe.
    And whether a probe measured it (not a cached answer)."""
    from jaxsoftmax.data.load import user_cache_dir
    from jaxsoftmax.sweep import layout_probe

    per_device = plan.models_per_slice // plan.num_devices
    descent = descent or config.descent
    measured = []
    try:
        chosen = layout_probe.choose(
            devices, per_device, dataset.num_features, dataset.num_classes, config.batch_size,
            descent, user_cache_dir(), report, default=plan.layout, measured=measured,
        ) or plan.layout  # fmt: skip
    except Exception as error:  # any: every process must reach the agreement below
        chosen = plan.layout
        if report is not None:
            report(f"note: the layout probe failed ({error}); using {chosen}")
    return LAYOUTS[parallel.smallest_over_processes(LAYOUTS.index(chosen))], bool(measured)
