"""`train_logged`: what `python -m jaxsoftmax.train` writes, from Python, with one call.

    dataset = js.make_dataset(train_images=x, train_labels=y, test_images=xt, test_labels=yt)
    result = js.train_logged(dataset, js.SweepConfig(learning_rates=(0.002, 0.005)), "runs/mine")
    js.load_run("runs/mine").best("test_accuracy").predict(xt)

The log directory then holds the same TensorBoard events (scalars, histograms, weight
templates, input images, the graph, HPARAMS, CUSTOM SCALARS), checkpoint.npz and
results.json as a command-line run, so `tensorboard`, `python -m jaxsoftmax.report`,
`predict`, `export` and `load_run` read it alike. It drives the same loop as the command
line (`outputs.drive`), so both write what one writes.
"""

from __future__ import annotations

import pathlib
import time
from typing import TYPE_CHECKING

from jaxsoftmax.errors import ConfigError
from jaxsoftmax.outputs import logdirs
from jaxsoftmax.sweep import grid
from jaxsoftmax.sweep.config import SweepConfig

if TYPE_CHECKING:  # the command line imports this module before JAX (see cli._prepare)
    from jaxsoftmax.data.dataset import Dataset
    from jaxsoftmax.sweep.results import SweepResult

DEFAULT_CHECKPOINT_EVERY = 1000  # steps, as the command line's --checkpoint-every
KEEP_PARAMS_BYTES = 2**29  # the final checkpoint keeps every model's parameters up to this


def train_logged(
    dataset: Dataset,
    config: SweepConfig | None,
    logdir: str | pathlib.Path,
    *,
    summaries: bool = True,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    overwrite: bool = False,
    progress: bool = False,
) -> SweepResult:
    """Trains a sweep (a grid of settings) and writes it to a log directory.

    Args:
      dataset: the data (`load_dataset`, or `make_dataset` for arrays in memory).
      config: the sweep; None: the tutorial's three learning rates.
      logdir: a new or empty folder (created), as Flax's `train_and_evaluate` takes one.
      summaries: write TensorBoard events (results.json and the checkpoint always).
      checkpoint_every: save the sweep's state after about every this many steps.
      overwrite: replace a finished run in `logdir`.
      progress: show a progress bar on stderr.

    Returns:
      The result, as `train_sweep` returns it.

    Raises:
      ConfigError: `logdir` holds another run (and not `overwrite`), or is not writable.
    """
    from jaxsoftmax.outputs import writing as outputs
    from jaxsoftmax.outputs.summaries import HISTOGRAM_BUCKETS
    from jaxsoftmax.sweep.loop import SweepRun
    from jaxsoftmax.sweep.plan import make_plan

    began = time.perf_counter()
    config = SweepConfig() if config is None else config
    if checkpoint_every < 1:
        raise ConfigError(f"checkpoint_every must be at least 1, got {checkpoint_every}")
    folder = logdirs.prepare_logdir(pathlib.Path(logdir), overwrite=overwrite)
    run = SweepRun.start(
        dataset, config, make_plan(config, dataset),
        histogram_buckets=HISTOGRAM_BUCKETS if summaries else 0,
        keep_params=keeps_params(config, dataset),
    )  # fmt: skip
    names = grid.run_names(config)
    with outputs.RunOutputs(
        folder, run=run, dataset=dataset, names=names, summaries=summaries,
        quiet=not progress, checkpoint_extra=None, resumes=0,
    ) as out:  # fmt: skip
        result, extras = outputs.drive(run, out, dataset, checkpoint_every=checkpoint_every)
        timing = run.session_times() | {"total_s": time.perf_counter() - began}
        outputs.write_results(folder, result, dataset=dataset, timing=timing, names=names,
                              **extras)  # fmt: skip
    return result


def keeps_params(config: SweepConfig, dataset: Dataset) -> bool:
    """Whether the final checkpoint keeps every model's parameters (KEEP_PARAMS_BYTES)."""
    parameter_bytes = (dataset.num_features + 1) * dataset.num_classes * 4
    return config.num_models * parameter_bytes <= KEEP_PARAMS_BYTES
