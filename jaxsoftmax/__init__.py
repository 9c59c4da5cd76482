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
"""

__version__ = "0.2.0"

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

__all__ = [
    "CheckpointError",
    "ChunkReport",
    "ConfigError",
    "DataError",
    "Dataset",
    "JaxsoftmaxError",
    "SweepCheckpoint",
    "SweepConfig",
    "SweepPlan",
    "SweepResult",
    "SweepRun",
    "TrainState",
    "accuracy",
    "cross_entropy",
    "enable_compilation_cache",
    "gradient_descent",
    "init_params",
    "init_state",
    "initialize_distributed",
    "load_checkpoint",
    "load_dataset",
    "logits",
    "make_dataset",
    "make_plan",
    "objective",
    "parse_grid",
    "read_idx",
    "save_checkpoint",
    "train_step",
    "train_sweep",
]
