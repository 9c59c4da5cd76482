"""jaxsoftmax: linear softmax classifiers on MNIST-format data, many hyperparameters at once.

import jaxsoftmax as js

mnist = js.load_dataset("mnist")
result = js.train_sweep(mnist, js.SweepConfig(learning_rates=(0.002, 0.005, 0.008)))
result.runs()  # final train loss, test loss and test accuracy per learning rate
"""

__version__ = "0.1.0"

from jaxsoftmax.data import Dataset, load_dataset, make_dataset
from jaxsoftmax.errors import ConfigError, DataError, JaxsoftmaxError
from jaxsoftmax.grid import parse_grid
from jaxsoftmax.idx import read_idx
from jaxsoftmax.model import accuracy, cross_entropy, init_params, logits, objective
from jaxsoftmax.parallel import initialize_distributed
from jaxsoftmax.runtime import enable_compilation_cache
from jaxsoftmax.sweep import ChunkReport, SweepConfig, SweepResult, train_sweep

__all__ = [
    "ChunkReport",
    "ConfigError",
    "DataError",
    "Dataset",
    "JaxsoftmaxError",
    "SweepConfig",
    "SweepResult",
    "accuracy",
    "cross_entropy",
    "enable_compilation_cache",
    "init_params",
    "initialize_distributed",
    "load_dataset",
    "logits",
    "make_dataset",
    "objective",
    "parse_grid",
    "read_idx",
    "train_sweep",
]
