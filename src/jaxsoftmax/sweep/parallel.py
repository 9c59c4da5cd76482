"""Devices and processes: the mesh a sweep is sharded over, and jax.distributed.

A sweep's models are independent, so they are split over devices with JAX's own
sharding (a one-axis `Mesh` named `models` and `NamedSharding`s over it): each
device trains its share, and XLA partitions the one compiled program. Across hosts
the same program runs in every process after `jax.distributed.initialize`; the
mesh then holds every process's devices.
"""

import os
from typing import TYPE_CHECKING

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxsoftmax.core import engine
from jaxsoftmax.errors import ConfigError

if TYPE_CHECKING:
    from jaxsoftmax.data.dataset import Dataset
    from jaxsoftmax.sweep.config import SweepConfig

MESH_AXIS = "models"
# The usual environment of a multi-process launch, read when no flags are given.
ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "JAX_PROCESS_ID"


def initialize_distributed(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """Joins a multi-process run with `jax.distributed.initialize`, if one is asked for.

    Each argument falls back to its environment variable (JAX_COORDINATOR_ADDRESS,
    JAX_NUM_PROCESSES, JAX_PROCESS_ID). With none of them set, nothing happens (one
    process). On CPU, JAX's collectives go through gloo (its default).

    Returns:
      Whether this process joined a multi-process run.

    Raises:
      ConfigError: only some of the three are given, or they are malformed.
    """
    coordinator = coordinator or os.environ.get(ENV_COORDINATOR)
    num_processes = num_processes if num_processes is not None else _env_int(ENV_NUM_PROCESSES)
    process_id = process_id if process_id is not None else _env_int(ENV_PROCESS_ID)
    given = [value is not None for value in (coordinator, num_processes, process_id)]
    if not any(given):
        return False
    if not all(given):
        raise ConfigError(
            "a multi-process run needs all of `coordinator`, `num_processes` and `process_id` "
            f"(or {ENV_COORDINATOR}, {ENV_NUM_PROCESSES}, {ENV_PROCESS_ID})"
        )
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise ConfigError(
            f"process id {process_id} is not in [0, {num_processes}); ids count from 0"
        )
    if num_processes == 1:
        return False
    jax.distributed.initialize(
        coordinator_address=coordinator, num_processes=num_processes, process_id=process_id
    )
    return True


def _env_int(name: str) -> int | None:
    text = os.environ.get(name)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a whole number") from None


def is_main_process() -> bool:
    """Whether this process writes summaries and results (process 0)."""
    return jax.process_index() == 0


def make_mesh(devices=None) -> Mesh:
    """A one-axis mesh over `devices` (default: every device of every process)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (MESH_AXIS,))


def sharding(mesh: Mesh, axis: int | None, ndim: int = 2) -> NamedSharding:
    """Shards array axis `axis` over the mesh (None: replicated)."""
    spec = [None] * ndim
    if axis is not None:
        spec[axis] = MESH_AXIS
    return NamedSharding(mesh, PartitionSpec(*spec))


def put(value: np.ndarray, target: NamedSharding) -> jax.Array:
    """A global array from a host value every process holds in full."""
    value = np.asarray(value)
    return jax.make_array_from_callback(value.shape, target, lambda index: value[index])


def to_host(tree):
    """NumPy copies of (possibly multi-process) arrays, gathered in full in every process."""

    def fetch(leaf):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
        return np.asarray(leaf)

    return jax.tree_util.tree_map(fetch, jax.device_get(tree) if _local(tree) else tree)


def _local(tree) -> bool:
    return all(
        not isinstance(leaf, jax.Array) or leaf.is_fully_addressable
        for leaf in jax.tree_util.tree_leaves(tree)
    )


def any_process(flag: bool) -> bool:
    """Whether `flag` is true in any process (every process must ask, at the same point)."""
    if jax.process_count() == 1:
        return flag
    flags = multihost_utils.process_allgather(np.asarray([flag], np.int32))
    return bool(np.asarray(flags).any())


def smallest_over_processes(value: int) -> int:
    """The least of `value` over all processes (every process must ask, at the same point)."""
    if jax.process_count() == 1:
        return value
    values = multihost_utils.process_allgather(np.asarray([value], np.int64))
    return int(np.asarray(values).min())


def device_data(dataset: "Dataset", config: "SweepConfig", mesh=None) -> "engine.DeviceData":
    """Puts the data a sweep trains and evaluates on on the device (every device of
    `mesh`), images uint8 and flattened: its validation split held out of the training
    examples, and no test set where `config` does not evaluate it."""
    train, validation = config.split(dataset)
    test = slice(None) if config.evaluate_test else slice(0)
    arrays = (
        train.train_images.reshape(len(train.train_images), -1),
        train.train_labels,
        dataset.test_images[test].reshape(-1, dataset.num_features),
        dataset.test_labels[test],
        dataset.train_images[validation].reshape(-1, dataset.num_features),
        dataset.train_labels[validation],
        np.zeros(0, np.float32) if train.train_weights is None else train.train_weights,
    )
    if mesh is None:
        # device_put copies; jnp.asarray would compile a program for each array's shape.
        return engine.DeviceData(*map(jax.device_put, arrays))
    return engine.DeviceData(*(put(a, sharding(mesh, None, a.ndim)) for a in arrays))
