"""Start-up: the default run from fresh processes, against the floor of a hand-written one.

Each repeat starts a new Python process for each of:

- `python -m jaxsoftmax.train` (the tutorial's job: 3 learning rates, 1000 steps, the test
  set every 10 steps, TensorBoard summaries, a checkpoint, results.json), with the
  compilation cache empty (`--no-compilation-cache`: cold) and filled (warm);
- the floor: the same training written as plainly as JAX allows (`FLOOR`: MNIST read with
  gzip, `optax.sgd` in a vmapped `lax.scan`, train loss and accuracy at every step, nothing
  written), cold and warm, so that what JAX itself costs on this machine (importing it,
  compiling) is measured in the same run: once with one test evaluation at the end
  ("floor"), once with the tutorial's evaluation of the whole test set every 10 steps
  ("floor + evaluations": the numbers the run's test curves are drawn from).

And, like for like with the tutorial itself, which evaluated the test set after every
step: `python -m jaxsoftmax.train --eval-every 1` (cold) against `tf1_tutorial.py`, the
TensorFlow 1.4 program as a whole (TensorBoard summaries every step, the test set every
step), --tutorial-repeats times (about a minute each).

Variants take turns within each repeat; wall times are medians, from the process's start
to its end. The run's own timing (results.json) splits jaxsoftmax's time into imports,
data, compile and train.

    python benchmarks/startup.py                 # 5 repeats (the tutorial 3): about 5 min
    python benchmarks/startup.py --repeats 1 --tutorial-repeats 0    # a smoke test
"""

import argparse
import json
import os
import pathlib
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import provenance
from processes import wall

RESULTS = pathlib.Path(__file__).parent / "results"
TUTORIAL = "TF1 tutorial (test set every step)"
EVAL_EVERY = 10  # the default run's (SweepConfig.eval_every)
FLOOR = r"""
import gzip, pathlib, sys
import numpy as np, jax, jax.numpy as jnp, optax
if sys.argv[2] == "warm":
    jax.config.update("jax_compilation_cache_dir", sys.argv[3])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
folder, every = pathlib.Path(sys.argv[1]), int(sys.argv[4])
assert 1000 % every == 0, "1000 steps in windows of `every`"
def idx(name, offset):
    return np.frombuffer(gzip.open(folder / name).read(), np.uint8, offset=offset)
x = idx("train-images-idx3-ubyte.gz", 16).reshape(-1, 784)
y = idx("train-labels-idx1-ubyte.gz", 8)
xt = idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 784)
yt = idx("t10k-labels-idx1-ubyte.gz", 8)
def loss(p, inputs, labels):
    logits = inputs @ p["w"] + p["b"]
    picked = jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1)
    return -100.0 * picked.mean(), jnp.mean(jnp.argmax(logits, 1) == labels)
@jax.jit
def train(rates, x, y, xt, yt):
    order = jax.random.permutation(jax.random.key(0), 60000).reshape(600, 100)
    batches = jnp.concatenate([order, order[:400]]).reshape(-1, every, 100)
    test = xt.astype(jnp.float32) / 255
    def one(rate):
        sgd = optax.sgd(rate)
        p = {"w": jnp.zeros((784, 10)), "b": jnp.zeros(10)}
        def step(carry, batch):
            p, s = carry
            inputs, labels = x[batch].astype(jnp.float32) / 255, y[batch].astype(jnp.int32)
            value, g = jax.value_and_grad(loss, has_aux=True)(p, inputs, labels)
            u, s = sgd.update(g, s, p)
            return (optax.apply_updates(p, u), s), value
        def window(carry, steps):
            carry, values = jax.lax.scan(step, carry, steps)
            return carry, (values, loss(carry[0], test, yt))
        return jax.lax.scan(window, (p, sgd.init(p)), batches)[1]
    return jax.vmap(one)(rates)
metrics = jax.device_get(train(jnp.array([0.002, 0.005, 0.008]), x, y, xt, yt))
print(metrics[1][1][:, -1])  # each model's last test accuracy
"""


def folder_bytes(folder: pathlib.Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes per variant")
    parser.add_argument("--data-dir", type=pathlib.Path, help="folder of the MNIST IDX files")
    parser.add_argument("--variants", help="comma-separated names of the variants (default: all)")
    parser.add_argument("--tutorial-repeats", type=int, default=3,
                        help="runs of the TF1 tutorial program (default 3; 0: none)")  # fmt: skip
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS,
                        help="write startup.json here (default benchmarks/results)")  # fmt: skip
    args = parser.parse_args(argv)
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "src"))
    from jaxsoftmax.data import load as data

    found = [d for d in data.candidate_dirs("mnist") if data.find_idx_files(d) is not None]
    folder = args.data_dir or (found[0] if found else None)
    if folder is None:
        parser.error("MNIST's IDX files not found; pass --data-dir DIR")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = pathlib.Path(scratch)
        # No persistent compilation cache but the ones named here: cold means cold.
        env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
        env["XDG_CACHE_HOME"] = str(scratch / "cache")
        logdir = scratch / "run"
        train = [sys.executable, "-m", "jaxsoftmax.train", "--quiet", "--overwrite",
                 "--data-dir", str(folder), "--logdir", str(logdir)]  # fmt: skip
        floor = [sys.executable, "-c", FLOOR, str(folder)]
        floor_cache = str(scratch / "floor-cache")
        variants = {
            "jaxsoftmax cold": [*train, "--no-compilation-cache"],
            "jaxsoftmax warm": train,
            "floor cold": [*floor, "cold", "", "1000"],
            "floor warm": [*floor, "warm", floor_cache, "1000"],
            "floor + evaluations cold": [*floor, "cold", "", str(EVAL_EVERY)],
            "floor + evaluations warm": [*floor, "warm", floor_cache, str(EVAL_EVERY)],
            "jaxsoftmax --eval-every 1 cold": [*train, "--no-compilation-cache",
                                               "--eval-every", "1"],
        }  # fmt: skip
        if args.variants:
            chosen = args.variants.split(",")
            unknown = sorted(set(chosen) - set(variants))
            if unknown:
                parser.error(f"unknown variants {unknown}; of {', '.join(variants)}")
            variants = {name: command for name, command in variants.items() if name in chosen}
        tutorial = [sys.executable, str(pathlib.Path(__file__).parent / "tf1_tutorial.py"),
                    str(folder), str(scratch / "tutorial")]  # fmt: skip
        for name in ("jaxsoftmax warm", "floor warm", "floor + evaluations warm"):  # fill caches
            if name in variants:
                wall(variants[name], env)
        if args.tutorial_repeats:
            variants[TUTORIAL] = tutorial
        seconds = {name: [] for name in variants}
        peaks = {name: [] for name in variants}
        logdir_bytes = {}
        timing = {name: [] for name in ("jaxsoftmax cold", "jaxsoftmax warm") if name in variants}
        for repeat in range(max(args.repeats, args.tutorial_repeats)):
            for name, command in variants.items():
                if repeat >= (args.tutorial_repeats if name == TUTORIAL else args.repeats):
                    continue
                if name == TUTORIAL:  # its event files, alone
                    shutil.rmtree(scratch / "tutorial", ignore_errors=True)
                seconds[name].append(wall(command, env, peaks[name]))
                if name == TUTORIAL:
                    logdir_bytes[name] = folder_bytes(scratch / "tutorial")
                elif name == "jaxsoftmax --eval-every 1 cold":
                    logdir_bytes[name] = folder_bytes(logdir)
                if name in timing:
                    document = json.loads((logdir / "results.json").read_text())
                    timing[name].append(document["timing"])
    result = {
        "provenance": provenance.provenance(),
        "repeats": args.repeats,
        "tutorial_repeats": args.tutorial_repeats,
        "median_wall_s": {name: statistics.median(values) for name, values in seconds.items()},
        "wall_s": seconds,
        "median_peak_rss_mb": {name: statistics.median(values) for name, values in peaks.items()},
        "peak_rss_mb": peaks,
        "logdir_bytes": logdir_bytes,
        "jaxsoftmax_timing_medians": {
            name: {key: statistics.median(t[key] for t in runs) for key in runs[0]}
            for name, runs in timing.items()
        },
    }
    print("| variant | median wall s | range |")
    print("|---|---:|---:|")
    for name, values in seconds.items():
        print(f"| {name} | {statistics.median(values):.2f} | {min(values):.2f}-{max(values):.2f} |")
    for name, medians in result["jaxsoftmax_timing_medians"].items():
        print(f"{name}: " + ", ".join(f"{key} {value:.2f}" for key, value in medians.items()))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "startup.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
