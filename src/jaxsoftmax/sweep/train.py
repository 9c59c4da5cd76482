"""`train_sweep`: a whole sweep in one call, the `loop.SweepRun` loop with callbacks."""

from collections.abc import Callable

from jaxsoftmax.data.dataset import Dataset
from jaxsoftmax.errors import CheckpointError
from jaxsoftmax.sweep.checkpoint import SweepCheckpoint
from jaxsoftmax.sweep.config import SweepConfig
from jaxsoftmax.sweep.loop import SweepRun
from jaxsoftmax.sweep.plan import make_plan
from jaxsoftmax.sweep.progress import ChunkReport
from jaxsoftmax.sweep.results import SweepResult


def train_sweep(
    dataset: Dataset,
    config: SweepConfig = SweepConfig(),
    *,
    on_chunk: Callable[[ChunkReport], None] | None = None,
    histogram_buckets: int = 0,
    max_models_per_program: int | None = None,
    devices=None,
    keep_params: bool = True,
    checkpoint_every: int | None = None,
    on_checkpoint: Callable[[SweepCheckpoint], None] | None = None,
    resume: SweepCheckpoint | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SweepResult:
    """Trains one model per grid point, all at once, and evaluates them on the test set:
    the `SweepRun` loop in one call, with callbacks for what a caller would do in it.

    Args:
      dataset: the data; images stay uint8 on the device.
      config: what to train (see SweepConfig).
      on_chunk: called with each ChunkReport (the next chunk is already running).
      histogram_buckets: if positive, reports carry the models' parameter histograms.
      max_models_per_program: train at most about this many models at once, the grid
        cut into slices (same results); default: what fits (see `make_plan`).
      devices: the devices to shard the models over (default: every process's).
      keep_params: return the trained parameters (for huge grids, say False).
      checkpoint_every: hand `on_checkpoint` a checkpoint after every this many steps
        (counting every slice's), besides one at the end and one when stopped.
      on_checkpoint: receives each SweepCheckpoint (to save it, say).
      resume: go on from this checkpoint of `config`: the result is the same, bitwise
        on a CPU, as that of a sweep never stopped.
      should_stop: asked after each chunk (so a stop asked for while the first chunk
        compiles comes after it); True stops training there, after a checkpoint, and the
        result is `interrupted`.

    Returns the trained parameters and every metric, models in `config.points` order.
    Raises ConfigError for a batch larger than the training set or a bad limit, and
    CheckpointError when `resume` does not belong to this config, data or devices.
    """
    options = {"histogram_buckets": histogram_buckets, "devices": devices}
    if resume is not None:
        if resume.config != config:
            raise CheckpointError("the checkpoint belongs to a sweep with other settings")
        run = SweepRun.restore(dataset, resume, keep_params=keep_params, **options)
    else:
        plan = make_plan(
            config, dataset, max_models_per_slice=max_models_per_program, devices=devices
        )
        run = SweepRun.start(dataset, config, plan, keep_params=keep_params, **options)
    for report in run:
        if on_chunk is not None:
            on_chunk(report)
        stop = should_stop is not None and should_stop()
        if on_checkpoint is not None and (stop or run.checkpoint_due(checkpoint_every)):
            on_checkpoint(run.checkpoint())
        if stop:
            break
    if on_checkpoint is not None and not run.checkpointed:
        on_checkpoint(run.checkpoint())
    return run.result()
