"""Choosing a sweep's weight layout by measuring both on the device it will train on.

`choose` times the real training step (`engine.sweep_step`, scanned) of a program's
shape in each layout (`layouts.LAYOUTS`) and keeps the faster; the backend's default
stays unless the other is more than 5% faster (a probe is a few short timings, and a
machine's load moves them). Its answer is cached in
`layouts.json` beside the compilation cache, keyed by what decides it: the device
kind and count (for CPUs also the processor, its cores and XLA_FLAGS), the JAX and
jaxsoftmax versions, the models one device trains (rounded down to a power of two; the
probe trains that many), the model's shape, the batch size and the parts of the
gradient descent. So a probe runs once per machine and shape, and a second run
reads the cache. Programs of fewer than MIN_MODELS models a device are not probed:
their steps are too short for the layout to matter against the program's overhead, and
`default_layout` (class-major on CPUs, feature-major elsewhere) is used.

On the 2-core CPUs of this project, class-major is the faster at every K measured
(the engine 1.12x at K=3 and K=300, 1.08x at K=1000; the probe 1.5x at 8 models, 1.2x at
32, 1.06x at 256, even at 1024); on an H100, feature-major was (K=1000: 5.26 M against
2.26 M model-steps/s): see benchmarks/RESULTS.md.
"""

import functools
import json
import math
import os
import platform
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxsoftmax import files
from jaxsoftmax.core import engine
from jaxsoftmax.core.layouts import LAYOUTS
from jaxsoftmax.core.optimizer import GradientDescent

CACHE_FILE = "layouts.json"
MIN_MODELS = 8  # models a device: fewer are not probed
PROBE_MODEL_STEPS = 4000  # model-steps of one compiled call: about 0.1 s on the 2-core CPU
MIN_TIMING_S = 0.02  # a timing repeats the call until it lasts this long (fast devices)
REPEATS = 5  # timings per layout; the fastest counts
MARGIN = 0.05  # how much faster than the backend's default layout the other must be


def cache_key(
    devices: Sequence, models: int, num_features: int, num_classes: int, batch_size: int,
    descent: GradientDescent,
) -> str:  # fmt: skip
    """What decides a probe's answer, as a string."""
    from jaxsoftmax import __version__

    device = devices[0]
    where = f"{device.platform}:{device.device_kind} x{len(devices)}"
    if device.platform == "cpu":  # "cpu" says nothing of the processor
        flags = os.environ.get("XLA_FLAGS", "")
        where += f" ({cpu_model()}, {os.cpu_count()} cores{flags and ', ' + flags})"
    return (
        f"{where} jax {jax.__version__} jaxsoftmax {__version__} models {models} "
        f"shape {num_features}x{num_classes} batch {batch_size} "
        f"decay {int(descent.weight_decay)} momentum {int(descent.momentum)}"
    )


def cpu_model() -> str:
    """The processor's name (Linux's /proc/cpuinfo; else what `platform` says)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown processor"


def probe_models(models_per_device: int) -> int:
    """The models a probe trains for programs of `models_per_device`: the power of two at
    or below it, so that nearby sizes share a probe and it fits where the plan does."""
    return 2 ** math.floor(math.log2(max(1, models_per_device)))


def measure(
    models: int, num_features: int, num_classes: int, batch_size: int,
    descent: GradientDescent, device,
) -> dict[str, float]:  # fmt: skip
    """Seconds per step of `models` models in each layout on `device`: the fastest of
    REPEATS timings of a scan of the real step on random data, compiled apart, the
    layouts' timings taking turns so that a change in the machine's load hits both."""
    steps = max(4, min(1000, PROBE_MODEL_STEPS // models))
    rng = np.random.default_rng(0)
    inputs = jax.device_put(rng.random((batch_size, num_features), np.float32), device)
    labels = jax.device_put(rng.integers(0, num_classes, batch_size, np.int32), device)
    rates = jax.device_put(np.full(models, 1e-3, np.float32), device)
    runs = {}
    for layout in LAYOUTS:
        state = engine.init_grid(
            jnp.zeros(1, jnp.int32), rates, rates, rates, num_features=num_features,
            num_classes=num_classes, init_scale=0.0, cosine_steps=0, descent=descent,
            layout=layout,
        )  # fmt: skip
        state = jax.tree_util.tree_map(lambda leaf: leaf[0], state)  # one seed

        def scan(state, inputs, labels, layout=layout):
            def body(state, _):
                return engine.sweep_step(
                    state, inputs, labels, 100.0, descent=descent, layout=layout
                )[0], None  # fmt: skip

            return jax.lax.scan(body, state, length=steps)[0]

        program = jax.jit(scan).lower(state, inputs, labels).compile()
        start = time.perf_counter()
        jax.block_until_ready(program(state, inputs, labels))  # warm
        calls = max(1, math.ceil(MIN_TIMING_S / (time.perf_counter() - start)))
        runs[layout] = (functools.partial(program, state, inputs, labels), calls)
    timings = {layout: [] for layout in LAYOUTS}
    for _ in range(REPEATS):
        for layout, (run, calls) in runs.items():
            start = time.perf_counter()
            jax.block_until_ready([run() for _ in range(calls)])
            timings[layout].append((time.perf_counter() - start) / calls / steps)
    return {layout: min(values) for layout, values in timings.items()}


def choose(
    devices: Sequence, models_per_device: int, num_features: int, num_classes: int,
    batch_size: int, descent: GradientDescent, cache_dir: os.PathLike | None,
    report: Callable[[str], None] | None = None, *, default: str, measured: list | None = None,
) -> str | None:  # fmt: skip
    """The faster layout for these shapes on `devices`, from `cache_dir` or measured
    (and then kept there, and `report`ed); None where programs are too small to probe
    (see the module). The backend's `default` stays unless the other layout is faster
    by more than MARGIN: a probe is a few short timings, and its answer is kept.
    A probe that measures appends its timings to `measured`."""
    if models_per_device < MIN_MODELS:
        return None
    models = probe_models(models_per_device)
    key = cache_key(devices, models, num_features, num_classes, batch_size, descent)
    path = None if cache_dir is None else os.path.join(cache_dir, CACHE_FILE)
    cached = _read(path)
    if isinstance(cached.get(key), dict) and cached[key].get("layout") in LAYOUTS:
        return cached[key]["layout"]
    local = [device for device in devices if device.process_index == jax.process_index()]
    began = time.perf_counter()
    seconds = measure(models, num_features, num_classes, batch_size, descent, local[0])
    other = next(layout for layout in LAYOUTS if layout != default)
    layout = other if seconds[default] > (1 + MARGIN) * seconds[other] else default
    if measured is not None:
        measured.append(seconds)
    if report is not None:
        timings = ", ".join(f"{name} {value * 1e3:.3g} ms" for name, value in seconds.items())
        report(f"layout: {layout}, measured for {models} models a device ({timings} a step; "
               f"the probe took {time.perf_counter() - began:.1f} s, once)")  # fmt: skip
    if path is not None:
        cached = _read(path)  # another process may have added to it meanwhile
        cached[key] = {"layout": layout, "seconds_per_step": seconds,
                       "date": time.strftime("%Y-%m-%d")}  # fmt: skip
        try:
            os.makedirs(cache_dir, exist_ok=True)
            with files.atomic_writer(path, mode="w") as handle:
                json.dump(cached, handle, indent=1, sort_keys=True)
        except OSError:  # an unwritable cache: the probe runs again next time
            pass
    return layout


def _read(path: str | None) -> dict:
    """The cache's entries; none where it is missing or unreadable (it is only a cache)."""
    if path is None:
        return {}
    try:
        with open(path) as handle:
            cached = json.load(handle)
    except (OSError, ValueError):
        return {}
    return cached if isinstance(cached, dict) else {}
