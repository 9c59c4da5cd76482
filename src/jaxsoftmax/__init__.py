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

try:  # the first thing that runs (see below)
    import sys

    _module = sys.orig_argv[-len(sys.argv)] if sys.argv[:1] == ["-m"] else ""
    if (_module.split("m", 1)[-1] if _module[:1] == "-" else _module).split(".")[0] == (
        "jaxsoftmax"
    ):
        # `python -m jaxsoftmax[.COMMAND]` is starting (sys.argv[0] is "-m" while Python
        # looks for the module; `-mjaxsoftmax.train` is one argument): until the command
        # takes them, SIGINT and SIGTERM end it at once in one line, from the first line
        # of ours that runs.
        from jaxsoftmax import starting

        starting.exit_on_signal()
except KeyboardInterrupt:  # Ctrl-C before the handlers above took it
    import sys

    if sys.argv[:1] != ["-m"] or "jaxsoftmax" not in " ".join(sys.orig_argv):
        raise
    sys.stderr.write("interrupted by SIGINT while starting\n")
    raise SystemExit(130) from None

import importlib
from typing import TYPE_CHECKING

__version__ = "0.2.0"

# Public name -> (module, name there).
_EXPORTS = {
    "AutoResult": ("search.auto", "AutoResult"),
    "Halving": ("search.spaces", "Halving"),
    "HalvingSearch": ("search.halving", "HalvingSearch"),
    "Run": ("sweep.protocol", "Run"),
    "SoftmaxClassifier": ("estimators.classifier", "SoftmaxClassifier"),
    "SoftmaxSearchCV": ("estimators.search", "SoftmaxSearchCV"),
    "SearchCheckpoint": ("sweep.checkpoint", "SearchCheckpoint"),
    "restore_run": ("search.runs", "restore_run"),
    "start_run": ("search.runs", "start_run"),
    "auto": ("search.auto", "auto"),
    "parse_space": ("search.spaces", "parse_space"),
    "search_config": ("search.spaces", "search_config"),
    "CheckpointError": ("errors", "CheckpointError"),
    "ChunkReport": ("sweep.progress", "ChunkReport"),
    "ConfigError": ("errors", "ConfigError"),
    "DataError": ("errors", "DataError"),
    "Dataset": ("data.dataset", "Dataset"),
    "JaxsoftmaxError": ("errors", "JaxsoftmaxError"),
    "SweepCheckpoint": ("sweep.checkpoint", "SweepCheckpoint"),
    "SweepConfig": ("sweep.config", "SweepConfig"),
    "SweepPlan": ("sweep.plan", "SweepPlan"),
    "SweepResult": ("sweep.results", "SweepResult"),
    "SweepRun": ("sweep.loop", "SweepRun"),
    "TrainState": ("core.engine", "TrainState"),
    "accuracy": ("core.model", "accuracy"),
    "cross_entropy": ("core.model", "cross_entropy"),
    "enable_compilation_cache": ("sweep.runtime", "enable_compilation_cache"),
    "gradient_descent": ("core.optimizer", "gradient_descent"),
    "init_params": ("core.model", "init_params"),
    "init_state": ("core.engine", "init_state"),
    "initialize_distributed": ("sweep.parallel", "initialize_distributed"),
    "load_checkpoint": ("sweep.checkpoint", "load"),
    "load_dataset": ("data.load", "load_dataset"),
    "load_run": ("trained.run", "load_run"),
    "Model": ("trained.run", "Model"),
    "TrainedRun": ("trained.run", "TrainedRun"),
    "logits": ("core.model", "logits"),
    "make_dataset": ("data.dataset", "make_dataset"),
    "make_plan": ("sweep.plan", "make_plan"),
    "objective": ("core.model", "objective"),
    "parse_grid": ("sweep.grid", "parse_grid"),
    "read_idx": ("data.idx", "read_idx"),
    "save_checkpoint": ("sweep.checkpoint", "save"),
    "train_step": ("core.engine", "train_step"),
    "train_sweep": ("sweep.train", "train_sweep"),
    "train_logged": ("outputs.logged", "train_logged"),
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
    "Run",
    "SearchCheckpoint",
    "SoftmaxClassifier",
    "SoftmaxSearchCV",
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
    "restore_run",
    "save_checkpoint",
    "search_config",
    "start_run",
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
    from jaxsoftmax.core.engine import TrainState, init_state, train_step
    from jaxsoftmax.core.model import accuracy, cross_entropy, init_params, logits, objective
    from jaxsoftmax.core.optimizer import gradient_descent
    from jaxsoftmax.data.dataset import Dataset, make_dataset
    from jaxsoftmax.data.idx import read_idx
    from jaxsoftmax.data.load import load_dataset
    from jaxsoftmax.errors import CheckpointError, ConfigError, DataError, JaxsoftmaxError
    from jaxsoftmax.estimators.classifier import SoftmaxClassifier
    from jaxsoftmax.estimators.search import SoftmaxSearchCV
    from jaxsoftmax.search.runs import restore_run, start_run
    from jaxsoftmax.sweep.checkpoint import SearchCheckpoint, SweepCheckpoint
    from jaxsoftmax.sweep.checkpoint import load as load_checkpoint
    from jaxsoftmax.sweep.checkpoint import save as save_checkpoint
    from jaxsoftmax.sweep.config import SweepConfig
    from jaxsoftmax.sweep.grid import parse_grid
    from jaxsoftmax.sweep.loop import SweepRun
    from jaxsoftmax.sweep.parallel import initialize_distributed
    from jaxsoftmax.sweep.plan import SweepPlan, make_plan
    from jaxsoftmax.sweep.progress import ChunkReport
    from jaxsoftmax.sweep.protocol import Run
    from jaxsoftmax.sweep.results import SweepResult
    from jaxsoftmax.sweep.runtime import enable_compilation_cache
    from jaxsoftmax.sweep.train import train_sweep
    from jaxsoftmax.trained.run import Model, TrainedRun, load_run
