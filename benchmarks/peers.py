"""Peer implementations of the tutorial's training, timed the way `throughput.py` times ours.

Each peer trains K linear softmax models (one per learning rate) with plain SGD on the
tutorial's loss (100 x mean cross-entropy) and reports "model-steps/s": one SGD step of one
model per unit. Each peer has a name in `PEERS`. `time_peer(name, ...)` times it, and
`peer_params(name, ...)` trains fresh models on given minibatches and returns their final
parameters, so that tests can hold every peer against a float64 NumPy oracle.

- `tf1_original`: the TensorFlow 1.4 `softmax.py` as written, through `tensorflow.compat.v1`:
  placeholders fed by `feed_dict` every step, `GradientDescentOptimizer`, one graph and one
  session per learning rate, run one after another.
- `torch_sequential`: PyTorch eager, one model at a time, `torch.optim.SGD`.
- `torch_compiled`: PyTorch, one model at a time, the whole step one `torch.compile` graph.
- `torch_stacked`: PyTorch eager, all K models in one (784, K * 10) weight matrix: one wide
  product a step for the logits and one for the gradient, as jaxsoftmax's layout does, the
  gradient written out (no autograd) and accumulated into the weights in place.
- `torch_stacked_compiled`: the same step as one `torch.compile` graph.

TensorFlow and PyTorch are optional (`pip install torch==2.13.0 tensorflow-cpu>=2.21`): this
module imports without them, `available(name)` says whether a peer can run, and a peer
whose library is missing raises `ImportError` naming what to install.

Timing (`PeerTiming`): `setup_s` is the analogue of compile time, reported apart: building
the graph or tensors, creating the session, initialising the variables and the first
(warm-up) step, summed over every graph/model built. Then the same `steps` minibatches are
trained `repeats` times, continuing from where the previous repeat left off; `run_s[r]` is the
wall time of repeat r summed over every graph/model, and `median_s` is their median.
Importing the library and putting the data in the peer's form (CPU tensors; for TF1 the
whole set as float32 in [0, 1], as input_data did at load time) are in neither. The first
`torch.optim.SGD` step of a process initialises PyTorch lazily (about 1 s), which lands in
the `torch_sequential` peer's `setup_s`. Threads are left at each library's default (all cores).

TF1 mode is not switched on globally: each graph is built under
`tf.compat.v1.Graph().as_default()` and run by `tf.compat.v1.Session(graph=...)`, which gives
placeholders and `feed_dict` while the rest of the process stays eager
(`tf.compat.v1.disable_eager_execution()` is process-global and would break other TF code).

On a shared machine, measure when it is otherwise idle: PyTorch's OpenMP threads slow down
by one to two orders of magnitude for a few seconds when another process competes for the
cores, and a median over few repeats does not hide that.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

# The tutorial's loss, -reduce_mean(y_ * log(y)) * 1000, averages over the 10 classes too:
# it is 100 x the mean cross-entropy (`jaxsoftmax.sweep.config.TUTORIAL_LOSS_SCALE`).
TUTORIAL_LOSS_SCALE = 100.0
# As written in softmax.py, applied to the mean over batch *and* classes.
_TF1_LOSS_MULTIPLIER = 1000.0
# Pixel values are scaled to [0, 1] as TensorFlow's input_data did.
_PIXEL_SCALE = 255.0

_INSTALL_HINT = "install the benchmark peers with: pip install torch==2.13.0 'tensorflow-cpu>=2.21'"


@dataclasses.dataclass(frozen=True, kw_only=True)
class PeerTiming:
    """How fast one peer trained K models.

    Attributes:
      peer: the peer's name, e.g. `torch_stacked`.
      num_models: K, the number of learning rates trained.
      steps: SGD steps per model in each timed run.
      batch_size: examples per minibatch.
      setup_s: seconds to build graphs/tensors, start sessions, initialise and take the
        first (warm-up) step, summed over every graph or model built; the analogue of
        compile time.
      run_s: seconds of each timed run of `steps` steps of all K models.
      median_s: median of `run_s`.
      model_steps_per_s: `num_models * steps / median_s`.
    """

    peer: str
    num_models: int
    steps: int
    batch_size: int
    setup_s: float
    run_s: tuple[float, ...]
    median_s: float
    model_steps_per_s: float

    @classmethod
    def from_runs(
        cls,
        *,
        peer: str,
        num_models: int,
        steps: int,
        batch_size: int,
        setup_s: float,
        run_s: Sequence[float],
    ) -> PeerTiming:
        """Fills in the median and the throughput from the timed runs."""
        median_s = statistics.median(run_s)
        return cls(
            peer=peer,
            num_models=num_models,
            steps=steps,
            batch_size=batch_size,
            setup_s=setup_s,
            run_s=tuple(run_s),
            median_s=median_s,
            model_steps_per_s=num_models * steps / median_s,
        )


def has_tensorflow() -> bool:
    """Whether TensorFlow is installed, so the `tf1_original` peer can run."""
    return importlib.util.find_spec("tensorflow") is not None


def has_torch() -> bool:
    """Whether PyTorch is installed, so the `torch_*` peers can run."""
    return importlib.util.find_spec("torch") is not None


def minibatch_indices(num_examples: int, steps: int, batch_size: int, seed: int = 0) -> np.ndarray:
    """Example indices of each step's minibatch, from one NumPy permutation per epoch.

    Consecutive slices of the concatenated permutations, so that a batch may take the end of
    one epoch and the start of the next, as TensorFlow's `input_data.next_batch` did.

    Returns:
      int64 array of shape (steps, batch_size).
    """
    if not 0 < batch_size <= num_examples:
        raise ValueError(f"batch_size {batch_size} must be in [1, {num_examples}]")
    rng = np.random.default_rng(seed)
    num_epochs = -(-steps * batch_size // num_examples)
    order = np.concatenate([rng.permutation(num_examples) for _ in range(num_epochs)])
    return order[: steps * batch_size].reshape(steps, batch_size)


# A peer is prepared in two parts: `convert` turns (steps, batch_size) indices into the
# per-step batches that peer consumes (outside any timing: the analogue of putting data on
# the device), and each factory builds one independently trained unit (a graph and session
# per learning rate, one eager model, or one stack of all models).


@dataclasses.dataclass(frozen=True)
class _Unit:
    # One SGD step per batch given.
    train: Callable[[Sequence[Any]], None]
    # Weights (models, features, classes) and biases (models, classes), this unit's models.
    params: Callable[[], tuple[np.ndarray, np.ndarray]]
    close: Callable[[], None] = lambda: None


@dataclasses.dataclass(frozen=True)
class _Peer:
    name: str
    num_examples: int
    num_models: int
    convert: Callable[[np.ndarray], Sequence[Any]]
    factories: Sequence[Callable[[], _Unit]]


def _measure(peer: _Peer, *, steps: int, batch_size: int, repeats: int, seed: int) -> PeerTiming:
    if steps < 1 or repeats < 1:
        raise ValueError(f"steps ({steps}) and repeats ({repeats}) must be at least 1")
    batches = peer.convert(minibatch_indices(peer.num_examples, steps + 1, batch_size, seed))
    warm_up, timed = batches[:1], batches[1:]
    setup_s = 0.0
    run_s = [0.0] * repeats
    for make_unit in peer.factories:
        start = time.perf_counter()
        unit = make_unit()
        unit.train(warm_up)
        setup_s += time.perf_counter() - start
        try:
            for repeat in range(repeats):
                start = time.perf_counter()
                unit.train(timed)
                run_s[repeat] += time.perf_counter() - start
        finally:
            unit.close()
    return PeerTiming.from_runs(
        peer=peer.name,
        num_models=peer.num_models,
        steps=steps,
        batch_size=batch_size,
        setup_s=setup_s,
        run_s=run_s,
    )


def _final_params(peer: _Peer, batch_indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    batches = peer.convert(np.asarray(batch_indices))
    weights, biases = [], []
    for make_unit in peer.factories:
        unit = make_unit()
        try:
            unit.train(batches)
            unit_weights, unit_biases = unit.params()
        finally:
            unit.close()
        weights.append(unit_weights)
        biases.append(unit_biases)
    return np.concatenate(weights), np.concatenate(biases)


def _check_inputs(train_images: np.ndarray, train_labels: np.ndarray) -> int:
    """Number of classes, after checking shapes and types; images must be flattened."""
    if train_images.ndim != 2 or train_images.dtype != np.uint8:
        raise ValueError(
            f"train_images must be uint8 (examples, features), got "
            f"{train_images.dtype} {train_images.shape}"
        )
    if train_labels.shape != train_images.shape[:1]:
        raise ValueError(
            f"train_labels {train_labels.shape} do not match images {train_images.shape}"
        )
    return int(train_labels.max()) + 1


# --- TensorFlow 1 ------------------------------------------------------------------------


def _import_tensorflow():
    try:
        import tensorflow as tf
    except ImportError as error:
        raise ImportError(f"tf1_original needs TensorFlow; {_INSTALL_HINT}") from error
    return tf


def _tf1_peer(
    train_images: np.ndarray, train_labels: np.ndarray, learning_rates: Sequence[float]
) -> _Peer:
    """softmax.py as written, one graph and session per learning rate.

    The graph is built inside its own `tf.compat.v1.Graph().as_default()` and run by a
    `tf.compat.v1.Session(graph=...)`, which gives TF1 graph semantics (placeholders,
    feed_dict) without `tf.compat.v1.disable_eager_execution()`: that switch is
    process-global and would break any other TensorFlow code in the process.
    """
    tf = _import_tensorflow()
    v1 = tf.compat.v1
    num_features = train_images.shape[1]
    num_classes = _check_inputs(train_images, train_labels)
    # TensorFlow's input_data converted the whole set to float32 in [0, 1] (and the labels
    # to one-hot) once, at load time, and fed slices of it.
    images = train_images.astype(np.float32) / np.float32(_PIXEL_SCALE)
    one_hot_labels = np.eye(num_classes, dtype=np.float32)[train_labels]

    def make_unit(learning_rate: float) -> _Unit:
        graph = tf.Graph()
        with graph.as_default():
            x = v1.placeholder(tf.float32, [None, num_features])
            weights = tf.Variable(tf.zeros([num_features, num_classes]))
            biases = tf.Variable(tf.zeros([num_classes]))
            y = tf.nn.softmax(tf.matmul(x, weights) + biases)
            y_ = v1.placeholder(tf.float32, [None, num_classes])
            cross_entropy = -tf.reduce_mean(y_ * tf.math.log(y)) * _TF1_LOSS_MULTIPLIER
            train_step = v1.train.GradientDescentOptimizer(learning_rate).minimize(cross_entropy)
            init = v1.global_variables_initializer()
        graph.finalize()
        session = v1.Session(graph=graph)
        session.run(init)

        def train(batches: Sequence[np.ndarray]) -> None:
            for batch in batches:
                session.run(train_step, feed_dict={x: images[batch], y_: one_hot_labels[batch]})

        def params() -> tuple[np.ndarray, np.ndarray]:
            weight_values, bias_values = session.run([weights, biases])
            return weight_values[None], bias_values[None]

        return _Unit(train=train, params=params, close=session.close)

    return _Peer(
        name="tf1_original",
        num_examples=len(train_images),
        num_models=len(learning_rates),
        convert=list,
        factories=[lambda rate=rate: make_unit(rate) for rate in learning_rates],
    )


# --- PyTorch -----------------------------------------------------------------------------


def _import_torch():
    try:
        import torch
    except ImportError as error:
        raise ImportError(f"the torch peers need PyTorch; {_INSTALL_HINT}") from error
    return torch


def _torch_data(train_images: np.ndarray, train_labels: np.ndarray):
    """(images, labels, convert): the data as CPU tensors and a converter for batch indices."""
    torch = _import_torch()
    _check_inputs(train_images, train_labels)
    images = torch.tensor(train_images)  # a copy: the loaded arrays may be read-only
    labels = torch.from_numpy(train_labels.astype(np.int64))  # cross_entropy wants int64

    def convert(batch_indices: np.ndarray) -> list:
        return list(torch.from_numpy(batch_indices.astype(np.int64)))

    return images, labels, convert


def _torch_sequential_peer(
    train_images: np.ndarray, train_labels: np.ndarray, learning_rates: Sequence[float]
) -> _Peer:
    """PyTorch eager, one model at a time with `torch.optim.SGD`.

    Each step gathers its batch by index and converts it to float32 in [0, 1] (timed).
    """
    torch = _import_torch()
    functional = torch.nn.functional
    images, labels, convert = _torch_data(train_images, train_labels)
    num_features = train_images.shape[1]
    num_classes = int(train_labels.max()) + 1

    def make_unit(learning_rate: float) -> _Unit:
        weights = torch.zeros(num_features, num_classes, requires_grad=True)
        biases = torch.zeros(num_classes, requires_grad=True)
        optimizer = torch.optim.SGD([weights, biases], lr=learning_rate)

        def train(batches: Sequence[Any]) -> None:
            for batch in batches:
                inputs = images[batch].to(torch.float32).div_(_PIXEL_SCALE)
                logits = inputs @ weights + biases
                loss = functional.cross_entropy(logits, labels[batch]) * TUTORIAL_LOSS_SCALE
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

        def params() -> tuple[np.ndarray, np.ndarray]:
            return weights.detach().numpy()[None].copy(), biases.detach().numpy()[None].copy()

        return _Unit(train=train, params=params)

    return _Peer(
        name="torch_sequential",
        num_examples=len(train_images),
        num_models=len(learning_rates),
        convert=convert,
        factories=[lambda rate=rate: make_unit(rate) for rate in learning_rates],
    )


def _torch_wide_step(images, labels, num_models: int, num_classes: int):
    """The SGD step of `num_models` models held in one (features, models * classes) weight
    matrix, the gradient written out (a linear softmax's is two products): logits from one
    wide GEMM, the softmax minus the one-hot labels scaled by each column's learning rate,
    and the update as one more GEMM accumulated into the weights in place (`addmm_`), so
    no autograd graph and no weight-sized temporary is built."""
    torch = _import_torch()

    def step(weights, biases, batch, rates):
        inputs = images[batch].to(torch.float32).div_(_PIXEL_SCALE)  # (batch, features)
        logits = torch.addmm(biases, inputs, weights).view(-1, num_models, num_classes)
        error = torch.softmax(logits, dim=-1)
        error[torch.arange(len(batch)), :, labels[batch]] -= 1.0  # d loss / d logits
        # Model k's columns scaled by its own rate: 100 x the mean cross-entropy's gradient.
        error = error.view(-1, num_models * num_classes) * (
            rates * (TUTORIAL_LOSS_SCALE / len(batch))
        )
        weights.addmm_(inputs.T, error, alpha=-1.0)
        biases.sub_(error.sum(dim=0))

    return step


def _compile(step):
    """`torch.compile` of a step for fixed shapes. Dynamo keys its cache by the function's
    code, shared by every peer built here: forgetting earlier peers' graphs keeps another
    K from counting as a recompile (which would turn on dynamic shapes, or past the cache
    limit fall back to eager)."""
    torch = _import_torch()
    torch._dynamo.reset()
    return torch.compile(step, fullgraph=True, dynamic=False)


def _torch_stacked_peer(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    learning_rates: Sequence[float],
    *,
    compiled: bool = False,
) -> _Peer:
    """PyTorch, all K models in one weight matrix (features, K * classes): one GEMM for the
    logits and one for the gradient a step, as jaxsoftmax's layout does (`_torch_wide_step`).
    With `compiled`, the step is one `torch.compile(fullgraph=True)` graph (TorchInductor).
    """
    torch = _import_torch()
    images, labels, convert = _torch_data(train_images, train_labels)
    num_features = train_images.shape[1]
    num_classes = int(train_labels.max()) + 1
    num_models = len(learning_rates)
    # Model k's learning rate for each of its columns of the wide matrix.
    rates = torch.tensor(learning_rates, dtype=torch.float32).repeat_interleave(num_classes)
    step = _torch_wide_step(images, labels, num_models, num_classes)
    if compiled:
        step = _compile(step)

    def make_unit() -> _Unit:
        weights = torch.zeros(num_features, num_models * num_classes)
        biases = torch.zeros(num_models * num_classes)

        def train(batches: Sequence[Any]) -> None:
            with torch.no_grad():
                for batch in batches:
                    step(weights, biases, batch, rates)

        def params() -> tuple[np.ndarray, np.ndarray]:
            stacked = weights.numpy().reshape(num_features, num_models, num_classes)
            return stacked.transpose(1, 0, 2).copy(), biases.numpy().reshape(num_models, -1).copy()

        return _Unit(train=train, params=params)

    return _Peer(
        name="torch_stacked_compiled" if compiled else "torch_stacked",
        num_examples=len(train_images),
        num_models=num_models,
        convert=convert,
        factories=[make_unit],
    )


def _torch_compiled_peer(
    train_images: np.ndarray, train_labels: np.ndarray, learning_rates: Sequence[float]
) -> _Peer:
    """PyTorch with `torch.compile`, one model at a time: `_torch_wide_step` for one model
    as one compiled graph, compiled once and reused by every model (its learning rate is an
    argument)."""
    torch = _import_torch()
    images, labels, convert = _torch_data(train_images, train_labels)
    num_features = train_images.shape[1]
    num_classes = int(train_labels.max()) + 1
    step = _compile(_torch_wide_step(images, labels, 1, num_classes))

    def make_unit(learning_rate: float) -> _Unit:
        weights = torch.zeros(num_features, num_classes)
        biases = torch.zeros(num_classes)
        rates = torch.full((num_classes,), learning_rate, dtype=torch.float32)

        def train(batches: Sequence[Any]) -> None:
            with torch.no_grad():
                for batch in batches:
                    step(weights, biases, batch, rates)

        def params() -> tuple[np.ndarray, np.ndarray]:
            return weights.numpy()[None].copy(), biases.numpy()[None].copy()

        return _Unit(train=train, params=params)

    return _Peer(
        name="torch_compiled",
        num_examples=len(train_images),
        num_models=len(learning_rates),
        convert=convert,
        factories=[lambda rate=rate: make_unit(rate) for rate in learning_rates],
    )


# name -> (builds the peer from the data and learning rates, whether its library is installed)
_PEERS: dict[str, tuple[Callable[..., _Peer], Callable[[], bool]]] = {
    "tf1_original": (_tf1_peer, has_tensorflow),
    "torch_sequential": (_torch_sequential_peer, has_torch),
    "torch_compiled": (_torch_compiled_peer, has_torch),
    "torch_stacked": (_torch_stacked_peer, has_torch),
    "torch_stacked_compiled": (functools.partial(_torch_stacked_peer, compiled=True), has_torch),
}
PEERS = tuple(_PEERS)


def _registered(name: str) -> tuple[Callable[..., _Peer], Callable[[], bool]]:
    if name not in _PEERS:
        raise ValueError(f"unknown peer {name!r}; choose one of {', '.join(PEERS)}")
    return _PEERS[name]


def available(name: str) -> bool:
    """Whether the library that peer `name` needs is installed.

    Raises:
      ValueError: `name` is not one of `PEERS`.
    """
    return _registered(name)[1]()


def _build(
    name: str,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    learning_rates: Sequence[float],
) -> _Peer:
    return _registered(name)[0](train_images, train_labels, learning_rates)


def time_peer(
    name: str,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    learning_rates: Sequence[float],
    steps: int,
    batch_size: int = 100,
    *,
    repeats: int = 5,
    seed: int = 0,
) -> PeerTiming:
    """Times one peer training one model per learning rate (see the module docstring).

    Args:
      name: one of `PEERS`.
      train_images: uint8 array of shape (examples, features), flattened images.
      train_labels: int array of shape (examples,).
      learning_rates: one model per value.
      steps: SGD steps per model in each timed run.
      batch_size: examples per minibatch.
      repeats: timed runs; the median is reported.
      seed: orders the minibatches (`minibatch_indices`).

    Raises:
      ImportError: the peer's library is not installed (the message says what to install).
      ValueError: an unknown peer, images or labels of the wrong shape or type, a batch
        larger than the data, or fewer than one step or repeat.
    """
    peer = _build(name, train_images, train_labels, learning_rates)
    return _measure(peer, steps=steps, batch_size=batch_size, repeats=repeats, seed=seed)


def peer_params(
    name: str,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    learning_rates: Sequence[float],
    batch_indices: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Final parameters of fresh models of peer `name` trained on the given minibatches.

    Arguments as for `time_peer`, but `batch_indices` in place of `steps`, `batch_size`,
    `repeats` and `seed`: an int array of shape (steps, batch_size), each step's examples.

    Raises:
      ImportError, ValueError: as `time_peer` does.

    Returns:
      weights of shape (models, features, classes) and biases of shape (models, classes).
    """
    return _final_params(_build(name, train_images, train_labels, learning_rates), batch_indices)
