"""jaxsoftmax: linear softmax classifiers on MNIST-format data, many hyperparameters at once.

import jaxsoftmax as js

mnist = js.load_dataset("mnist")
result = js.train_sweep(mnist, js.SweepConfig(learning_rates=(0.002, 0.005, 0.008)))
result.runs()  # final train loss, test loss and test accuracy per learning rate

Or drive the loop yourself, one report per chunk of steps:

run = js.SweepRun.start(mnist, js.SweepConfig())
for report in run:
    print(report.steps[-1], report.test.accuracy[-1])
result = run.result()

Names are imported when first used: `import jaxsoftmax` alone does not import JAX, so
what needs no JAX (loading a trained run, predicting with it) starts in a blink.
"""

import importlib
from typing import TYPE_CHECKING

__version__ = "0.2.0"

# Public name -> (module, name there).
_EXPORTS = {
    "AutoResult": ("autosearch", "AutoResult"),
    "Halving": ("search", "Halving"),
    "HalvingSearch": ("halving", "HalvingSearch"),
    "auto": ("autosearch", "auto"),
    "parse_space": ("search", "parse_space"),
    "search_config": ("search", "search_config"),
    "CheckpointError": ("errors", "CheckpointError"),
    "ChunkReport": ("progress", "ChunkReport"),
    "ConfigError": ("errors", "ConfigError"),
    "DataError": ("errors", "DataError"),
    "Dataset": ("data", "Dataset"),
    "JaxsoftmaxError": ("errors", "JaxsoftmaxError"),
    "SweepCheckpoint": ("checkpoint", "SweepCheckpoint"),
    "SweepConfig": ("config", "SweepConfig"),
    "SweepPlan": ("plan", "SweepPlan"),
    "SweepResult": ("results", "SweepResult"),
    "SweepRun": ("loop", "SweepRun"),
    "TrainState": ("engine", "TrainState"),
    "accuracy": ("model", "accuracy"),
    "cross_entropy": ("model", "cross_entropy"),
    "enable_compilation_cache": ("runtime", "enable_compilation_cache"),
    "gradient_descent": ("optimizer", "gradient_descent"),
    "init_params": ("model", "init_params"),
    "init_state": ("engine", "init_state"),
    "initialize_distributed": ("parallel", "initialize_distributed"),
    "load_checkpoint": ("checkpoint", "load"),
    "load_dataset": ("data", "load_dataset"),
    "load_run": ("trained", "load_run"),
    "Model": ("trained", "Model"),
    "TrainedRun": ("trained", "TrainedRun"),
    "logits": ("model", "logits"),
    "make_dataset": ("data", "make_dataset"),
    "make_plan": ("plan", "make_plan"),
    "objective": ("model", "objective"),
    "parse_grid": ("grid", "parse_grid"),
    "read_idx": ("idx", "read_idx"),
    "save_checkpoint": ("checkpoint", "save"),
    "train_step": ("engine", "train_step"),
    "train_sweep": ("sweep", "train_sweep"),
    "train_logged": ("logged", "train_logged"),
}
# The same names as _EXPORTS (a test checks), written out for tools that read them.
__all__ = [
    "AutoResult",
    "CheckpointError",
    "ChunkReport",
    "ConfigError",
    "DataError",
    "Dataset",
    "Halving",
    "HalvingSearch",
    "JaxsoftmaxError",
    "Model",
    "SweepCheckpoint",
    "SweepConfig",
    "SweepPlan",
    "SweepResult",
    "SweepRun",
    "TrainState",
    "TrainedRun",
    "accuracy",
    "auto",
    "cross_entropy",
    "enable_compilation_cache",
    "gradient_descent",
    "init_params",
    "init_state",
    "initialize_distributed",
    "load_checkpoint",
    "load_dataset",
    "load_run",
    "logits",
    "make_dataset",
    "make_plan",
    "objective",
    "parse_grid",
    "parse_space",
    "read_idx",
    "save_checkpoint",
    "search_config",
    "train_logged",
    "train_step",
    "train_sweep",
]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'jaxsoftmax' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(f"jaxsoftmax.{module}"), attribute)
    globals()[name] = value  # imported once
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what type checkers and editors see
    from jaxsoftmax.checkpoint import SweepCheckpoint
    from jaxsoftmax.checkpoint import load as load_checkpoint
    from jaxsoftmax.checkpoint import save as save_checkpoint
    from jaxsoftmax.config import SweepConfig
    from jaxsoftmax.data import Dataset, load_dataset, make_dataset
    from jaxsoftmax.engine import TrainState, init_state, train_step
    from jaxsoftmax.errors import CheckpointError, ConfigError, DataError, JaxsoftmaxError
    from jaxsoftmax.grid import parse_grid
    from jaxsoftmax.idx import read_idx
    from jaxsoftmax.loop import SweepRun
    from jaxsoftmax.model import accuracy, cross_entropy, init_params, logits, objective
    from jaxsoftmax.optimizer import gradient_descent
    from jaxsoftmax.parallel import initialize_distributed
    from jaxsoftmax.plan import SweepPlan, make_plan
    from jaxsoftmax.progress import ChunkReport
    from jaxsoftmax.results import SweepResult
    from jaxsoftmax.runtime import enable_compilation_cache
    from jaxsoftmax.sweep import train_sweep
    from jaxsoftmax.trained import Model, TrainedRun, load_run
