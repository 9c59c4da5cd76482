"""The run to drive, decided once: a sweep of a grid or of random trials (`SweepRun`),
or a successive-halving search (`HalvingSearch`); started, or restored from a checkpoint.

    run = start_run(dataset, config, halving=None)      # a sweep
    run = restore_run(dataset, checkpoint.load(path)[0])  # whatever the file holds
"""

from jaxsoftmax.data.dataset import Dataset
from jaxsoftmax.search.halving import HalvingSearch
from jaxsoftmax.search.spaces import Halving
from jaxsoftmax.sweep import memory
from jaxsoftmax.sweep.checkpoint import SearchCheckpoint, SweepCheckpoint, keeps_params
from jaxsoftmax.sweep.config import SweepConfig
from jaxsoftmax.sweep.loop import SweepRun
from jaxsoftmax.sweep.plan import make_plan
from jaxsoftmax.sweep.protocol import Run


def start_run(
    dataset: Dataset,
    config: SweepConfig,
    halving: Halving | None = None,
    *,
    histogram_buckets: int = 0,
    keep_params: bool | None = None,
    **plan_options,
) -> Run:
    """A new run of `config`: successive halving over its trials if `halving` is given,
    else one sweep of every model; `plan_options` go to `make_plan`. `keep_params`: keep
    every model's final parameters (default: up to `checkpoint.KEEP_PARAMS_BYTES`)."""
    if halving is not None:
        memory.check_fits(config, dataset.num_features, dataset.num_classes, keep_params=False)
        return HalvingSearch.start(
            dataset, config, halving, histogram_buckets=histogram_buckets, **plan_options
        )
    plan = make_plan(config, dataset, **plan_options)
    if keep_params is None:
        keep_params = keeps_params(config, dataset)
    memory.check_fits(config, dataset.num_features, dataset.num_classes,
                      keep_params=keep_params, models_at_once=plan.max_models)  # fmt: skip
    return SweepRun.start(
        dataset, config, plan, histogram_buckets=histogram_buckets, keep_params=keep_params,
        devices=plan_options.get("devices"),
    )  # fmt: skip


def restore_run(
    dataset: Dataset,
    checkpoint: SweepCheckpoint | SearchCheckpoint,
    *,
    histogram_buckets: int = 0,
    **plan_options,
) -> Run:
    """The run `checkpoint` saved (a search's or a sweep's), going on where it stopped;
    `plan_options` plan a search's later rungs.

    Raises:
      CheckpointError: the checkpoint does not fit this data or these devices.
    """
    plan = getattr(checkpoint, "plan", None)  # a sweep's: the models it trains at once
    memory.check_fits(checkpoint.config, dataset.num_features, dataset.num_classes,
                      keep_params=False, models_at_once=plan and plan.max_models)  # fmt: skip
    if isinstance(checkpoint, SearchCheckpoint):
        return HalvingSearch.restore(
            dataset, checkpoint, histogram_buckets=histogram_buckets, **plan_options
        )
    return SweepRun.restore(
        dataset, checkpoint, histogram_buckets=histogram_buckets,
        devices=plan_options.get("devices"),
    )  # fmt: skip
