"""Best validation accuracy against wall time: our searches, Optuna, scikit-learn.

One run, on MNIST and Fashion-MNIST, everyone on the same data and split (10,000
training images held out by seed 0: `Dataset.split_validation`), the same search space
(`autosearch.DEFAULT_SPACE`), trials of 1,800 steps of batch 100 on the tutorial's loss
with a cosine schedule to 0:

- ours, random: N trials in one program, every one to the end;
- ours, halving: N trials, eta 3, rungs at 200, 600 and 1,800 steps (each rung's
  cosine decaying to 0 at its end: see `search`);
- ours, `--auto` (its own plan, 60 s budget), from the command line;
- Optuna: TPE sampler with a successive-halving pruner, each trial one model, trained by
  a plain JAX + optax trainer compiled once (hyperparameters are arguments) that reports
  validation accuracy every 200 steps, for --optuna-seconds;
- scikit-learn's `LogisticRegression` (lbfgs) over C, the baseline a user tries first.

Ours run in fresh processes, so compilation counts; every search is timed from its
start to its result (imports and data loading left out, for everyone). A point is the
best validation accuracy of the trials that finished: Optuna's best value after each
trial, ours when the search ends. Also measured: a 10,000-trial halving search (time,
peak memory of the process).

    python benchmarks/search.py [--datasets mnist,fashion_mnist] [--optuna-seconds 120]
    python benchmarks/search.py --quick   # seconds; what the tests run
"""

import argparse
import json
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

STEPS, BATCH, REPORT_EVERY = 1800, 100, 200
MIN_STEPS = 200  # halving's rungs: 200, 600 and 1,800 steps (evaluated every 200)
BIG_MIN_STEPS = 22  # the 10,000 trials': rungs at 22, 66, 198, 594 and 1,800 steps
HALVING_TRIALS, RANDOM_TRIALS, BIG_TRIALS = (81, 243, 729, 2187), (9, 27, 81, 243), 10_000
SKLEARN_C = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
QUICK = {"steps": 90, "min_steps": 10, "report_every": 30, "validation": 500,
         "halving": (27,), "random": (9,), "big": 81, "optuna_seconds": 3.0,
         "sklearn_c": (0.1, 1.0), "train": 2000}  # fmt: skip


def load(name: str, data_dir: str | None, quick: bool):
    import dataclasses

    import jaxsoftmax as js

    dataset = js.load_dataset(
        name, data_dir=None if data_dir is None else pathlib.Path(data_dir) / name
    )
    if quick:
        dataset = dataclasses.replace(
            dataset, train_images=dataset.train_images[: QUICK["train"]],
            train_labels=dataset.train_labels[: QUICK["train"]],
        )  # fmt: skip
    return dataset


def split(dataset, validation: int):
    """(train x, train y, validation x, validation y), pixels in [0, 1], as ours splits."""
    rest, held_out = dataset.split_validation(validation, 0)
    flat = lambda images: images.reshape(len(images), -1).astype(np.float32) / 255.0  # noqa: E731
    return (flat(rest.train_images), rest.train_labels, flat(dataset.train_images[held_out]),
            dataset.train_labels[held_out])  # fmt: skip


# --- ours, each in a fresh process ----------------------------------------------------------


def worker(spec: dict) -> dict:
    """One search of ours, timed from its start to its result."""
    from jaxsoftmax import search
    from jaxsoftmax.autosearch import DEFAULT_SPACE
    from jaxsoftmax.halving import HalvingSearch
    from jaxsoftmax.loop import SweepRun
    from jaxsoftmax.plan import make_plan

    dataset = load(spec["dataset"], spec["data_dir"], spec["quick"])
    config = search.search_config(
        search.parse_space(DEFAULT_SPACE), spec["trials"], seed=0, steps=spec["steps"],
        batch_size=BATCH, eval_every=spec["every"], schedule="cosine",
        validation=spec["validation"], evaluate_test=False,
    )  # fmt: skip
    start = time.perf_counter()
    if spec["strategy"] == "halving":
        run = HalvingSearch.start(
            dataset, config, search.Halving(eta=3, min_steps=spec["min_steps"])
        )
    else:
        run = SweepRun.start(dataset, config, make_plan(config, dataset), keep_params=False)
    for _ in run:
        pass
    result = run.result()
    seconds = time.perf_counter() - start
    finals = result.validation_accuracy[-1][result.steps_done == config.steps]
    return {
        "method": f"ours, {spec['strategy']}", "trials": spec["trials"], "seconds": seconds,
        "best": float(np.nanmax(finals)), "compile_s": result.compile_s,
        "peak_rss_gb": peak_rss_gb(),
    }  # fmt: skip


def peak_rss_gb() -> float:
    """This process's peak resident memory. Linux's ru_maxrss would also count the parent's
    memory at the fork that started it (it survives exec); VmHWM is this program's own."""
    try:
        status = pathlib.Path("/proc/self/status").read_text().splitlines()
        (line,) = [line for line in status if line.startswith("VmHWM:")]
        return int(line.split()[1]) / 2**20  # kB
    except (OSError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def ours(spec: dict) -> dict:
    """One search of ours in a fresh process (its own start-up and memory); in this
    process for --quick, a smoke test, where only that it runs counts."""
    if spec["quick"]:
        return worker(spec)
    command = [sys.executable, __file__, "--worker", json.dumps(spec)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def auto(name: str, data_dir: str | None, quick: bool, scratch: pathlib.Path) -> dict:
    """`--auto` from the command line, on the same data (written as IDX files if cut)."""
    logdir = scratch / f"auto-{name}"
    command = [sys.executable, "-m", "jaxsoftmax.train", "--auto", "--no-summaries", "--quiet",
               "--logdir", str(logdir), "--overwrite", "--no-compilation-cache"]  # fmt: skip
    if quick:
        small = _small_idx(name, data_dir, scratch)
        command += ["--time-budget", "1", "--dataset", name, "--data-dir", str(small)]
    else:
        command += ["--dataset", name]
        command += ["--data-dir", str(pathlib.Path(data_dir) / name)] if data_dir else []
    begun = time.perf_counter()
    subprocess.run(command, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - begun
    found = json.loads((logdir / "results.json").read_text())
    return {
        "method": "ours, --auto", "trials": found["auto"]["trials"],
        "seconds": found["auto"]["search_s"], "best": found["auto"]["validation_accuracy"],
        "process_s": wall, "test_accuracy": found["runs"][0]["test_accuracy"],
    }  # fmt: skip


def _small_idx(name: str, data_dir: str | None, scratch: pathlib.Path) -> pathlib.Path:
    import gzip

    from jaxsoftmax import catalog

    dataset = load(name, data_dir, quick=True)
    folder = scratch / f"idx-{name}"
    folder.mkdir(exist_ok=True)
    for file, array in ((catalog.TRAIN_IMAGES, dataset.train_images),
                        (catalog.TRAIN_LABELS, dataset.train_labels),
                        (catalog.TEST_IMAGES, dataset.test_images),
                        (catalog.TEST_LABELS, dataset.test_labels)):  # fmt: skip
        array = np.ascontiguousarray(array.astype(np.uint8))
        header = bytes([0, 0, 8, array.ndim]) + b"".join(
            int(n).to_bytes(4, "big") for n in array.shape
        )
        (folder / f"{file}.gz").write_bytes(gzip.compress(header + array.tobytes()))
    return folder


# --- Optuna, with a plain JAX + optax trainer -----------------------------------------------


def plain_trainer(train_x, train_y, steps: int, report_every: int):
    """`train(params, state, hp, start, indices)` for `report_every` steps and
    `accuracy(params, x, y)`, each compiled once: what a user of JAX and optax writes."""
    import jax
    import jax.numpy as jnp
    import optax

    def descent(learning_rate, weight_decay, momentum):
        return optax.chain(
            optax.add_decayed_weights(weight_decay, mask={"w": True, "b": False}),
            optax.sgd(learning_rate, momentum=momentum),
        )

    optimizer = optax.inject_hyperparams(descent)(learning_rate=0.0, weight_decay=0.0,
                                                  momentum=0.0)  # fmt: skip
    train_x, train_y = jnp.asarray(train_x), jnp.asarray(train_y)

    def loss(params, x, y):
        logits = x @ params["w"] + params["b"]
        return 100 * optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit
    def train(params, state, learning_rate, start, indices):
        def step(carry, xs):
            params, state = carry
            t, batch = xs
            rate = learning_rate * 0.5 * (1 + jnp.cos(jnp.pi * t / steps))
            state.hyperparams["learning_rate"] = rate
            grads = jax.grad(loss)(params, train_x[batch], train_y[batch])
            updates, state = optimizer.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), None

        ts = start + jnp.arange(indices.shape[0])
        return jax.lax.scan(step, (params, state), (ts, indices))[0]

    @jax.jit
    def accuracy(params, x, y):
        return ((x @ params["w"] + params["b"]).argmax(axis=1) == y).mean()

    return optimizer, train, accuracy


def optuna_search(data, steps: int, report_every: int, seconds: float) -> dict:
    import jax.numpy as jnp
    import optuna

    from jaxsoftmax import search
    from jaxsoftmax.autosearch import DEFAULT_SPACE

    train_x, train_y, val_x, val_y = data
    val_x, val_y = jnp.asarray(val_x), jnp.asarray(val_y)
    space = search.parse_space(DEFAULT_SPACE)
    optimizer, train, accuracy = plain_trainer(train_x, train_y, steps, report_every)
    per_epoch = len(train_x) // BATCH

    def objective(trial):
        hp = {axis: trial.suggest_float(axis, space[axis].low, space[axis].high,
                                        log=space[axis].log) for axis in space}  # fmt: skip
        params = {"w": jnp.zeros((train_x.shape[1], 10)), "b": jnp.zeros((1, 10))}
        state = optimizer.init(params)
        state.hyperparams["weight_decay"] = jnp.asarray(hp["weight_decay"])
        state.hyperparams["momentum"] = jnp.asarray(hp["momentum"])
        rng = np.random.default_rng(trial.number)
        order = np.concatenate([rng.permutation(len(train_x))[: per_epoch * BATCH]
                                for _ in range(-(-steps // per_epoch))])  # fmt: skip
        batches = order[: steps * BATCH].reshape(steps, BATCH)
        for start in range(0, steps, report_every):
            params, state = train(params, state, hp["learning_rate"], start,
                                  batches[start : start + report_every])  # fmt: skip
            value = float(accuracy(params, val_x, val_y))
            trial.report(value, start + report_every)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0),
                                pruner=optuna.pruners.SuccessiveHalvingPruner())  # fmt: skip
    curve, begun = [], time.perf_counter()

    def record(study, trial):
        if trial.state == optuna.trial.TrialState.COMPLETE:
            curve.append((time.perf_counter() - begun, study.best_value))

    study.optimize(objective, timeout=seconds, callbacks=[record])
    return {
        "method": "Optuna (TPE + successive halving)",
        "trials": len(study.trials),
        "seconds": time.perf_counter() - begun,
        "best": study.best_value,
        "curve": curve,
    }


def sklearn_search(data, values) -> dict:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    train_x, train_y, val_x, val_y = data
    curve, best, begun = [], 0.0, time.perf_counter()
    for c in values:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = LogisticRegression(C=c, max_iter=200).fit(train_x, train_y)
        best = max(best, float(model.score(val_x, val_y)))
        curve.append((time.perf_counter() - begun, best))
    return {"method": "scikit-learn LogisticRegression over C", "trials": len(values),
            "seconds": curve[-1][0], "best": best, "curve": curve}  # fmt: skip


# --- the run --------------------------------------------------------------------------------


def compare(name: str, args, scratch: pathlib.Path) -> dict:
    q = QUICK if args.quick else {}
    steps, min_steps = q.get("steps", STEPS), q.get("min_steps", MIN_STEPS)
    validation = q.get("validation", 10_000)
    spec = {"dataset": name, "data_dir": args.data_dir, "quick": args.quick, "steps": steps,
            "min_steps": min_steps, "validation": validation}  # fmt: skip
    rows = []
    for strategy, sizes, every in (
        ("random", q.get("random", RANDOM_TRIALS), steps),
        ("halving", q.get("halving", HALVING_TRIALS), min_steps),
    ):
        for trials in sizes:
            rows.append(ours(spec | {"strategy": strategy, "trials": trials, "every": every}))
            print(f"  {name}: {_line(rows[-1])}", flush=True)
    rows.append(auto(name, args.data_dir, args.quick, scratch))
    print(f"  {name}: {_line(rows[-1])}", flush=True)
    data = split(load(name, args.data_dir, args.quick), validation)
    seconds = q.get("optuna_seconds", args.optuna_seconds)
    optuna_row = optuna_search(data, steps, q.get("report_every", REPORT_EVERY), seconds)
    print(f"  {name}: {_line(optuna_row)}", flush=True)
    sklearn_row = sklearn_search(data, q.get("sklearn_c", SKLEARN_C))
    print(f"  {name}: {_line(sklearn_row)}", flush=True)
    rows += [optuna_row, sklearn_row]
    return {"dataset": name, "rows": rows, "headline": headline(rows, optuna_row)}


def headline(rows: list[dict], optuna_row: dict) -> dict:
    """When Optuna first reached its best, and the first of ours to reach as much."""
    target = optuna_row["best"]
    optuna_time = next(t for t, best in optuna_row["curve"] if best >= target)
    ours_rows = [row for row in rows if row["method"].startswith("ours") and row["best"] >= target]
    first = min(ours_rows, key=lambda row: row["seconds"], default=None)
    return {
        "optuna_best": target, "optuna_time_s": optuna_time,
        "ours": None if first is None else f"{first['method']} ({first['trials']} trials)",
        "ours_time_s": None if first is None else first["seconds"],
        "speedup": None if first is None else optuna_time / first["seconds"],
    }  # fmt: skip


def _line(row: dict) -> str:
    return (f"{row['method']}, {row['trials']} trials: best validation {row['best']:.2%} "
            f"in {row['seconds']:.1f} s")  # fmt: skip


def big(args) -> dict:
    """A 10,000-trial halving search to 1,800 steps on MNIST (fewer with --quick)."""
    q = QUICK if args.quick else {}
    min_steps = q.get("min_steps", BIG_MIN_STEPS)
    spec = {"dataset": "mnist", "data_dir": args.data_dir, "quick": args.quick,
            "steps": q.get("steps", STEPS), "every": min_steps, "min_steps": min_steps,
            "validation": q.get("validation", 10_000), "strategy": "halving",
            "trials": q.get("big", BIG_TRIALS)}  # fmt: skip
    row = ours(spec)
    print(f"  big: {_line(row)}, peak memory {row['peak_rss_gb']:.2f} GB", flush=True)
    return row


def markdown(document: dict) -> str:
    lines = []
    for found in document["datasets"]:
        h = found["headline"]
        lines += [f"**{found['dataset']}**: Optuna's best in {document['optuna_seconds']:.0f} s, "
                  f"{h['optuna_best']:.2%}, first reached at {h['optuna_time_s']:.1f} s; "
                  + (f"ours reached it with {h['ours']} in {h['ours_time_s']:.1f} s "
                     f"({h['speedup']:.1f}x sooner)." if h["ours"] else "ours never reached it."),
                  "", "| method | trials | wall time (s) | best validation accuracy |",
                  "|---|---:|---:|---:|"]  # fmt: skip
        for row in found["rows"]:
            lines.append(f"| {row['method']} | {row['trials']} | {row['seconds']:.1f} | "
                         f"{row['best']:.2%} |")  # fmt: skip
        lines.append("")
    row = document["big"]
    lines.append(
        f"A {row['trials']:,}-trial halving search on MNIST: {row['seconds']:.1f} s, "
        f"peak memory {row['peak_rss_gb']:.2f} GB, best validation {row['best']:.2%}."
    )
    return "\n".join(lines) + "\n"


def plot(document: dict, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(
        1, len(document["datasets"]), figsize=(6.5 * len(document["datasets"]), 4.2), squeeze=False
    )
    markers = {"ours, random": "s", "ours, halving": "o", "ours, --auto": "*"}
    for axis, found in zip(axes[0], document["datasets"], strict=True):
        for row in found["rows"]:
            if "curve" in row:
                times, best = zip(*row["curve"], strict=True)
                axis.step(times, best, where="post", label=row["method"])
            else:
                same = [r for r in found["rows"] if r["method"] == row["method"]]
                label = row["method"] if row is same[0] else None
                axis.plot(
                    row["seconds"],
                    row["best"],
                    markers[row["method"]],
                    ms=9 if "auto" in row["method"] else 6,
                    label=label,
                    color={"s": "C3", "o": "C2", "*": "C4"}[markers[row["method"]]],
                )
        axis.axhline(found["headline"]["optuna_best"], color="grey", lw=0.6, ls=":")
        axis.set_xscale("log")
        axis.set_xlabel("wall time of the search (s)")
        axis.set_ylabel("best validation accuracy")
        axis.set_title(found["dataset"])
        low = max(r["best"] for r in found["rows"]) - 0.03
        axis.set_ylim(low, None)
        axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="mnist,fashion_mnist")
    parser.add_argument(
        "--data-dir",
        help="a folder holding <dataset>/ folders of IDX files "
        "(default: where jaxsoftmax finds them, $JAXSOFTMAX_DATA_DIR first)",
    )
    parser.add_argument("--optuna-seconds", type=float, default=120.0)
    parser.add_argument("--quick", action="store_true", help="tiny data and budgets: seconds")
    parser.add_argument(
        "--out", type=pathlib.Path, default=pathlib.Path(__file__).parent / "results"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return {}
    with tempfile.TemporaryDirectory() as scratch:
        datasets = [compare(name, args, pathlib.Path(scratch)) for name in args.datasets.split(",")]
    document = {"optuna_seconds": QUICK["optuna_seconds"] if args.quick else args.optuna_seconds,
                "quick": args.quick, "datasets": datasets, "big": big(args)}  # fmt: skip
    stem = "search-quick" if args.quick else "search"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(document, indent=1) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(document))
    plot(document, args.out / f"{stem}.png")
    print(markdown(document))
    return document


if __name__ == "__main__":
    main()
