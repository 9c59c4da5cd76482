"""Training-step throughput of a sweep of K models on real MNIST, batch 100.

Variants, all in one process so that their ratios hold on a noisy machine:

- sequential: a Python loop over learning rates, each a Python loop over steps
  calling the jitted one-model step;
- per-step: a Python loop over steps calling the jitted, vmapped sweep step;
- engine: `jaxsoftmax.train_sweep`, the vmapped step fused with `lax.scan`
  (it also evaluates the full test set once, at the end: counted in its time);
- peers, when installed (`pip install -e '.[bench]'`): the original TensorFlow 1
  program; PyTorch one model at a time, eager and under `torch.compile` (up to K=30);
  PyTorch with all models stacked in one weight matrix (one GEMM a step), eager and
  under `torch.compile` (every K): see `peers.py`;
- the machine's limit: a 2048 x 2048 float32 matrix product, measured in every
  repeat, against which each variant's FLOP/s is given (2 * batch * features *
  classes for the forward product and as much for the weight gradient, per
  model-step); and, per K, the bound for these shapes: a step's two products
  alone, scanned (`products only`).

Data is on the device first, compilation is timed apart, every variant is warmed
up, timed with `block_until_ready`, and the median of the repeats is reported.
Writes JSON, a markdown table and a log-log PNG of throughput against K.

    python benchmarks/throughput.py               # K = 1, 3, ..., 1000; a few minutes
    python benchmarks/throughput.py --quick       # a smoke test, under a minute
"""

import argparse
import dataclasses
import functools
import json
import pathlib
import platform
import statistics
import sys
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import jaxsoftmax as js
from jaxsoftmax.sweep import layout_probe

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import provenance

RESULTS = pathlib.Path(__file__).parent / "results"
BATCH_SIZE = 100
MATMUL_SIZE = 2048
ALL_MODELS = (1, 3, 10, 30, 100, 300, 1000)
QUICK_MODELS = (1, 3, 30)
# Steps per engine measurement: at least the tutorial's 1000 where a repeat stays
# under about 10 s. Each call of the engine ends with one evaluation of every model
# on the 10,000 test images, as much work as 50 training steps of each model and
# not counted as model-steps: 5% extra at 1000 steps, 17% at 300.
ENGINE_STEPS = {1: 2000, 3: 2000, 10: 2000, 30: 1000, 100: 1000, 300: 1000, 1000: 300, 10000: 100}
LOOP_MODEL_STEPS = 3000
QUICK_SCALE = 0.1
VARIANTS = ("engine", "per-step", "sequential", "products", "peers")
COPY_BYTES = 2**28  # the array copied to measure memory bandwidth: 256 MiB


@dataclasses.dataclass
class Measurement:
    variant: str
    models: int
    steps: int
    compile_s: float
    seconds: list[float]
    # Matrix-product FLOPs per repeat beyond the model-steps' (the engine's evaluation).
    extra_flops: int = 0

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def model_steps_per_s(self) -> float:
        return self.models * self.steps / self.median_s


class Data(NamedTuple):
    """The training split on the device: uint8 images (N, features), labels (N,)."""

    train_images: jax.Array
    train_labels: jax.Array


def batch_indices(num_examples: int, steps: int, seed: int = 0) -> np.ndarray:
    """(steps, BATCH_SIZE) training examples: a new permutation every epoch."""
    per_epoch = num_examples // BATCH_SIZE
    rng = np.random.default_rng(seed)
    num_epochs = -(-steps // per_epoch)
    epochs = [rng.permutation(num_examples)[: per_epoch * BATCH_SIZE] for _ in range(num_epochs)]
    return np.concatenate(epochs).reshape(-1, BATCH_SIZE)[:steps]


def flops_per_model_step(num_features: int, num_classes: int) -> int:
    """Forward product and weight gradient of one model on one batch."""
    return 2 * (2 * BATCH_SIZE * num_features * num_classes)


def timed(fn) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def matmul_peak(repeats: int, size: int = MATMUL_SIZE) -> list[float]:
    """FLOP/s of a square float32 matrix product, one value per repeat."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    product = jax.jit(jnp.matmul)
    jax.block_until_ready(product(a, a))
    flops = 2 * size**3
    return [flops / min(timed(lambda: product(a, a)) for _ in range(3)) for _ in range(repeats)]


def copy_bandwidth(repeats: int, size: int = COPY_BYTES) -> list[float]:
    """Bytes/s of copying a float32 array of `size` bytes on the device (each byte read
    once and written once), one value per repeat: the memory roofline's slope."""
    a = jnp.zeros(size // 4, jnp.float32)
    copy = jax.jit(lambda x: x + 1.0)  # a copy XLA cannot elide
    jax.block_until_ready(copy(a))
    return [2 * size / min(timed(lambda: copy(a)) for _ in range(3)) for _ in range(repeats)]


def bytes_per_step(models: int, num_features: int, num_classes: int) -> int:
    """Memory one training step of K models must move at least: the weights read twice
    (forward product, weight gradient) and written once, float32, and the batch read
    (uint8)."""
    return 3 * 4 * models * num_features * num_classes + BATCH_SIZE * num_features


def learning_rates(models: int) -> tuple[float, ...]:
    return tuple(np.geomspace(0.001, 0.01, models).round(6).tolist())


def engine(dataset: js.Dataset, models: int, steps: int, repeats: int) -> Measurement:
    config = js.SweepConfig(
        learning_rates=learning_rates(models), steps=steps, eval_every=steps, chunk_steps=steps
    )
    compile_s = js.train_sweep(dataset, config).compile_s  # also the warm-up
    seconds = [js.train_sweep(dataset, config).train_s for _ in range(repeats)]
    evaluation_flops = 2 * len(dataset.test_images) * dataset.num_features * dataset.num_classes
    return Measurement(
        "engine (vmap + scan)", models, steps, compile_s, seconds, models * evaluation_flops
    )


def _loop_step(step_fn):
    """A jitted step that picks its batch on the device from precomputed indices."""

    @jax.jit
    def step(state, data, indices, step_number):
        batch = indices[step_number]
        inputs = data.train_images[batch].astype(jnp.float32) / 255.0
        return step_fn(state, inputs, data.train_labels[batch], jnp.float32(100.0))

    return step


# The tutorial's plain gradient descent; the learning rate lives in each model's state.
ONE_MODEL_STEP = functools.partial(js.train_step, optimizer=js.gradient_descent())


def per_step(data, indices, dataset, models: int, steps: int, repeats: int) -> Measurement:
    """What a user writes with the public step: `jax.vmap` over the models, a Python loop
    over steps."""
    step = _loop_step(jax.vmap(ONE_MODEL_STEP, in_axes=(0, None, None, None)))
    params = js.init_params(dataset.num_features, dataset.num_classes)
    rates = jnp.asarray(learning_rates(models), jnp.float32)
    initial = jax.vmap(lambda rate: js.init_state(params, rate))(rates)

    def run():
        state = initial
        for step_number in range(steps):
            state, _ = step(state, data, indices, step_number)
        return state

    compile_s = timed(lambda: step(initial, data, indices, 0))
    run()
    return Measurement(
        "per-step (vmap)", models, steps, compile_s, [timed(run) for _ in range(repeats)]
    )


def sequential(data, indices, dataset, models: int, steps: int, repeats: int) -> Measurement:
    step = _loop_step(ONE_MODEL_STEP)
    params = js.init_params(dataset.num_features, dataset.num_classes)
    initial = [js.init_state(params, rate) for rate in learning_rates(models)]

    def run():
        finals = []
        for state in initial:
            for step_number in range(steps):
                state, _ = step(state, data, indices, step_number)
            finals.append(state)
        return finals

    compile_s = timed(lambda: step(initial[0], data, indices, 0))
    run()
    return Measurement("sequential", models, steps, compile_s, [timed(run) for _ in range(repeats)])


def products_only(data, indices, dataset, models: int, steps: int, repeats: int) -> Measurement:
    """The bound on any engine: a step's two matrix products alone, fused with `lax.scan`.

    Each step multiplies the batch by K models' weights (forward) and the batch by
    a (batch, K * classes) matrix (weight gradient), and adds the result into the
    weights: no softmax, loss or bookkeeping. The weights are laid out as the
    engine's plan holds them on this backend (`SweepPlan.layout`): (K * classes,
    features) class-major, (features, K * classes) feature-major. The 2048-square peak
    overstates what products of these thin shapes can reach on a CPU; this measures it.
    """
    width = models * dataset.num_classes
    config = js.SweepConfig(learning_rates=learning_rates(models))
    plan = js.make_plan(
        config,
        dataset,
    )
    class_major = plan.layout == "class_major"

    @jax.jit
    def run_products(weights, data, indices):
        def one_step(weights, batch):
            inputs = data.train_images[batch].astype(jnp.float32) / 255.0
            if class_major:  # (K * classes, features)
                outputs = weights @ inputs.T
                return weights - 1e-6 * (outputs @ inputs), None
            outputs = inputs @ weights
            return weights - 1e-6 * (inputs.T @ outputs), None

        return jax.lax.scan(one_step, weights, indices[:steps])[0]

    shape = (width, dataset.num_features) if class_major else (dataset.num_features, width)
    weights = jnp.zeros(shape, jnp.float32)
    compile_s = timed(lambda: run_products(weights, data, indices))
    seconds = [timed(lambda: run_products(weights, data, indices)) for _ in range(repeats)]
    return Measurement("products only (bound)", models, steps, compile_s, seconds)


# Peers and their labels; those that train one model at a time run only up to this K.
PEER_LABELS = {
    "tf1_original": "TF1 original (feed_dict)",
    "torch_sequential": "PyTorch eager, one at a time",
    "torch_compiled": "PyTorch torch.compile, one at a time",
    "torch_stacked": "PyTorch eager, stacked (one GEMM)",
    "torch_stacked_compiled": "PyTorch torch.compile, stacked (one GEMM)",
}
ONE_AT_A_TIME_MAX_K = 30


def peer_measurements(
    dataset, models: int, steps: int, repeats: int, names=tuple(PEER_LABELS)
) -> list[Measurement]:
    """The TensorFlow 1 original and the PyTorch peers among `names`, where installed
    (see peers.py)."""
    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    import peers

    images = dataset.train_images.reshape(len(dataset.train_images), -1)
    rates = learning_rates(models)
    results = []
    for peer, label in PEER_LABELS.items():
        if peer not in names:
            continue
        stacked = peer.startswith("torch_stacked")
        if not peers.available(peer) or (not stacked and models > ONE_AT_A_TIME_MAX_K):
            continue
        timing = peers.time_peer(
            peer, images, dataset.train_labels, rates, steps, BATCH_SIZE, repeats=repeats
        )
        results.append(Measurement(label, models, steps, timing.setup_s, list(timing.run_s)))
    return results


def markdown_table(measurements: list[Measurement], peak: float, flops: int) -> str:
    lines = [
        "| variant | K | steps | compile s | median s | model-steps/s | examples/s "
        "| % of matmul peak |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in measurements:
        rate = m.model_steps_per_s
        lines.append(
            f"| {m.variant} | {m.models} | {m.steps} | {m.compile_s:.2f} | {m.median_s:.3f} | "
            f"{rate:,.0f} | {rate * BATCH_SIZE:,.0f} | {rate * flops / peak:.1%} |"
        )
    return "\n".join(lines)


def plot(measurements: list[Measurement], peak: float, flops: int, path: pathlib.Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5), dpi=100)
    axes = figure.add_subplot()
    for variant in dict.fromkeys(m.variant for m in measurements):
        points = sorted(
            (m.models, m.model_steps_per_s) for m in measurements if m.variant == variant
        )
        axes.plot(*zip(*points, strict=True), marker="o", label=variant)
    axes.axhline(peak / flops, color="grey", linestyle="--", label="matrix-multiply peak")
    axes.set(
        xscale="log", yscale="log", xlabel="models trained at once (K)", ylabel="model-steps/s"
    )
    axes.set_title(
        f"training throughput, batch {BATCH_SIZE}, {platform.node()} ({jax.devices()[0].platform})"
    )
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, metadata={"Software": None})


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a smoke test: K = 1, 3, 30, few steps"
    )
    parser.add_argument("--models", help="comma-separated K values (default: 1,3,...,1000)")
    parser.add_argument(
        "--repeats", type=int, help="timed repeats per variant (default 5; quick 2)"
    )
    parser.add_argument("--data-dir", help="folder of the MNIST IDX files (default: lookup)")
    parser.add_argument("--no-peers", action="store_true", help="skip TensorFlow 1 and PyTorch")
    parser.add_argument(
        "--peers", default=",".join(PEER_LABELS),
        help=f"comma-separated, of {', '.join(PEER_LABELS)} (default: all)",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=pathlib.Path, default=pathlib.Path(__file__).parent / "results"
    )
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma-separated, of {', '.join(VARIANTS)} (default: all)",
    )
    parser.add_argument(
        "--matmul-size", type=int, default=MATMUL_SIZE, help="side of the peak's square product"
    )
    parser.add_argument(
        "--copy-bytes", type=int, default=COPY_BYTES, help="size of the bandwidth's copied array"
    )
    parser.add_argument(
        "--engine-steps", type=int, help="steps of each engine timing at every K (default: by K)"
    )
    args = parser.parse_args(argv)
    models_list = (
        tuple(int(k) for k in args.models.split(","))
        if args.models
        else (QUICK_MODELS if args.quick else ALL_MODELS)
    )
    repeats = args.repeats or (2 if args.quick else 5)
    variants = set(args.variants.split(","))
    if not variants <= set(VARIANTS):
        parser.error(f"unknown variants {sorted(variants - set(VARIANTS))}; of {VARIANTS}")
    if not set(args.peers.split(",")) <= set(PEER_LABELS):
        parser.error(f"unknown peers in {args.peers}; of {', '.join(PEER_LABELS)}")
    scale = QUICK_SCALE if args.quick else 1.0

    dataset = js.load_dataset("mnist", data_dir=args.data_dir)
    data = Data(
        jnp.asarray(dataset.train_images.reshape(len(dataset.train_images), -1)),
        jnp.asarray(dataset.train_labels),
    )
    flops = flops_per_model_step(dataset.num_features, dataset.num_classes)
    peaks = matmul_peak(repeats, args.matmul_size)
    bandwidths = copy_bandwidth(repeats, args.copy_bytes)
    measurements, layouts = [], {}
    for models in models_list:
        engine_steps = args.engine_steps or max(20, int(ENGINE_STEPS.get(models, 200) * scale))
        loop_steps = max(10, int(max(20, LOOP_MODEL_STEPS // models) * scale))
        indices = jnp.asarray(
            batch_indices(len(dataset.train_images), max(engine_steps, loop_steps))
        )
        config = js.SweepConfig(learning_rates=learning_rates(models))
        layouts[models] = js.make_plan(config, dataset).layout  # the probe's, as the engine's
        if "engine" in variants:
            measurements.append(engine(dataset, models, engine_steps, repeats))
        if "per-step" in variants:
            measurements.append(per_step(data, indices, dataset, models, loop_steps, repeats))
        if "sequential" in variants:
            measurements.append(sequential(data, indices, dataset, models, loop_steps, repeats))
        if "products" in variants:
            measurements.append(
                products_only(data, indices, dataset, models, engine_steps, repeats)
            )
        if "peers" in variants and not args.no_peers:
            measurements += peer_measurements(
                dataset, models, loop_steps, repeats, args.peers.split(",")
            )
        peaks += matmul_peak(1, args.matmul_size)
        bandwidths += copy_bandwidth(1, args.copy_bytes)
        print(f"K={models}: done", file=sys.stderr)
    peak = statistics.median(peaks)
    bandwidth = statistics.median(bandwidths)
    shape = (dataset.num_features, dataset.num_classes)

    document = {
        "provenance": provenance.provenance(
            device=None if jax.devices()[0].platform == "cpu" else str(jax.devices()[0].device_kind)
        ),
        "machine": {
            "platform": platform.platform(),
            "processor": layout_probe.cpu_model(),
            "cores": __import__("os").cpu_count(),
            "device": str(jax.devices()[0]),
        },
        "versions": {
            "jax": jax.__version__,
            "jaxsoftmax": js.__version__,
            "python": platform.python_version(),
        },
        "date": time.strftime("%Y-%m-%d"),
        "batch_size": BATCH_SIZE,
        "flops_per_model_step": flops,
        "matmul_peak_flops": peak,
        "matmul_peak_samples": peaks,
        "copy_bandwidth_bytes_per_s": bandwidth,
        "copy_bandwidth_samples": bandwidths,
        "layouts": {str(models): layout for models, layout in layouts.items()},
        "results": [
            dataclasses.asdict(m)
            | {"median_s": m.median_s, "model_steps_per_s": m.model_steps_per_s,
               "examples_per_s": m.model_steps_per_s * BATCH_SIZE,
               "fraction_of_peak": m.model_steps_per_s * flops / peak,
               "fraction_of_memory_roofline": (
                   m.model_steps_per_s / m.models * bytes_per_step(m.models, *shape) / bandwidth),
               "fraction_of_peak_all_products": (
                   (m.models * m.steps * flops + m.extra_flops) / m.median_s / peak)}
            for m in measurements
        ],
    }  # fmt: skip
    table = markdown_table(measurements, peak, flops)
    print(f"matrix-multiply peak: {peak / 1e9:.1f} GFLOP/s (median of {len(peaks)}); "
          f"copy bandwidth {bandwidth / 1e9:.1f} GB/s; layouts {document['layouts']}")  # fmt: skip
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "throughput-quick" if args.quick else "throughput"
    (args.out / f"{stem}.json").write_text(json.dumps(document, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(table + "\n")
    try:
        plot(measurements, peak, flops, args.out / f"{stem}.png")
    except ImportError:
        print("matplotlib not installed: no plot (pip install 'jaxsoftmax[plot]')", file=sys.stderr)
    return document


if __name__ == "__main__":
    main()
