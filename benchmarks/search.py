"""Best validation accuracy against wall time: our searches, Optuna, scikit-learn.

One run, on MNIST and Fashion-MNIST, everyone on the same data and split (10,000
training images held out by seed 0: `Dataset.split_validation`), the same search space
(`autosearch.DEFAULT_SPACE`), trials of 1,800 steps of batch 100 on the tutorial's loss
with a cosine schedule to 0 (but `--auto`, which plans its own):

- ours, random: N trials in one program, every one to the end;
- ours, halving: N trials, eta 3, rungs at 200, 600 and 1,800 steps (each rung's
  cosine decaying to 0 at its end: see `search`);
- ours, `--auto` (its own plan for a 60 s budget: trials of up to 10 epochs), from the
  command line, seeds 0-4 (the test accuracy of each retrained choice is recorded);
- Optuna's TPE sampler (seed 0) for --optuna-seconds, each trial one model trained by a
  plain JAX + optax trainer compiled once, the data and hyperparameters its arguments
  (nothing is baked into the program), the same schedule and steps as ours: once
  without a pruner, and once with each of PRUNERS, fed the validation accuracy every 200
  steps; the pruner whose study reached the best validation accuracy is reported as
  "with a pruner" (its settings chosen on validation, as everything here is);
- scikit-learn's `LogisticRegression` (lbfgs, float32 inputs) over a grid of C from
  strong to weak regularisation, each fit warm-started from the one before and run to
  convergence: what its best user runs.

Timing is the same for every method: from the data in NumPy arrays and the libraries
imported (JAX's backend started) to each result, compilation included. Ours run in fresh
processes (their imports and data loading left out of the time like everyone's); the
others in this process. A curve point is the best validation accuracy among the trials
finished by then: Optuna's best value after each completed trial, scikit-learn's after
each C, ours when a search ends (one point per search size). Also measured: a
10,000-trial halving search (time, peak memory of the process).

    python benchmarks/search.py [--datasets mnist,fashion_mnist] [--optuna-seconds 60]
    python benchmarks/search.py --quick   # seconds; what the tests run
"""

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import provenance

STEPS, BATCH, REPORT_EVERY = 1800, 100, 200
MIN_STEPS = 200  # halving's rungs: 200, 600 and 1,800 steps (evaluated every 200)
BIG_MIN_STEPS = 22  # the 10,000 trials': rungs at 22, 66, 198, 594 and 1,800 steps
HALVING_TRIALS, RANDOM_TRIALS, BIG_TRIALS = (81, 243, 729, 2187), (9, 27, 81, 243), 10_000
SKLEARN_C = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0)
SKLEARN_MAX_ITER = 1000  # per C, warm-started: lbfgs stops at its tolerance long before
AUTO_SEEDS = (0, 1, 2, 3, 4)
# Optuna's trials at a time on this 2-core machine (threads); the no-pruner study also
# runs with 1, and the better of the two is reported.
OPTUNA_JOBS = 2
# Optuna's pruners tried, each fed the validation accuracy every REPORT_EVERY steps (the
# resource is the step): its default (MedianPruner), successive halving as it comes and
# with rungs like ours, and Hyperband over our rungs' range.
PRUNERS = {
    "median, Optuna's default": ("MedianPruner", {}),
    "successive halving as it comes": ("SuccessiveHalvingPruner", {}),
    "successive halving from 600 steps, factor 3": (
        "SuccessiveHalvingPruner", {"min_resource": 600, "reduction_factor": 3}),
    "Hyperband over 200 to 1,800 steps, factor 3": (
        "HyperbandPruner", {"min_resource": 200, "max_resource": 1800, "reduction_factor": 3}),
}  # fmt: skip
QUICK = {"steps": 90, "min_steps": 10, "report_every": 30, "validation": 500,
         "halving": (27,), "random": (9,), "big": 40, "optuna_seconds": 1.0,
         "sklearn_c": (0.001, 0.01), "train": 2000, "auto_seeds": (0,),
         "pruners": ("successive halving from 600 steps, factor 3",)}  # fmt: skip


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
    """One search of ours, timed from its start (the data loaded, JAX started) to its
    result."""
    import jax

    from jaxsoftmax.search import spaces as search
    from jaxsoftmax.search.auto import DEFAULT_SPACE
    from jaxsoftmax.search.halving import HalvingSearch
    from jaxsoftmax.sweep.loop import SweepRun
    from jaxsoftmax.sweep.plan import make_plan

    dataset = load(spec["dataset"], spec["data_dir"], spec["quick"])
    config = search.search_config(
        search.parse_space(DEFAULT_SPACE), spec["trials"], seed=0, steps=spec["steps"],
        batch_size=BATCH, eval_every=spec["every"], schedule="cosine",
        validation=spec["validation"], evaluate_test=False,
    )  # fmt: skip
    jax.devices()  # the backend starts before the timer, as it has for the peers
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
        "steps_per_trial": spec["steps"], "best": float(np.nanmax(finals)),
        "compile_s": result.compile_s, "peak_rss_gb": peak_rss_gb(),
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


def no_cache() -> dict:
    """The environment without JAX's persistent compilation cache: every search compiles."""
    return {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}


def ours(spec: dict) -> dict:
    """One search of ours in a fresh process (its own start-up and memory); in this
    process for --quick, a smoke test, where only that it runs counts."""
    if spec["quick"]:
        return worker(spec)
    command = [sys.executable, __file__, "--worker", json.dumps(spec)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=no_cache())
    return json.loads(done.stdout.strip().splitlines()[-1])


def auto(name: str, data_dir: str | None, quick: bool, scratch: pathlib.Path, seed: int) -> dict:
    """`--auto` from the command line, on the same data (written as IDX files if cut); its
    time is the search's own (`search_s` in results.json: after imports and data loading)."""
    logdir = scratch / f"auto-{name}-{seed}"
    command = [sys.executable, "-m", "jaxsoftmax.train", "--auto", "--no-summaries", "--quiet",
               "--logdir", str(logdir), "--overwrite", "--no-compilation-cache",
               "--seed", str(seed)]  # fmt: skip
    if quick:
        small = _small_idx(name, data_dir, scratch)
        command += ["--time-budget", "1", "--dataset", name, "--data-dir", str(small)]
    else:
        command += ["--dataset", name]
        command += ["--data-dir", str(pathlib.Path(data_dir) / name)] if data_dir else []
    begun = time.perf_counter()
    subprocess.run(command, capture_output=True, text=True, check=True, env=no_cache())
    wall = time.perf_counter() - begun
    found = json.loads((logdir / "results.json").read_text())
    return {
        "method": "ours, --auto", "seed": seed, "trials": found["auto"]["trials"],
        "seconds": found["auto"]["search_s"], "best": found["auto"]["validation_accuracy"],
        "steps_per_trial": found["auto"]["search_steps"], "rungs": found["auto"]["rungs"],
        "process_s": wall, "test_accuracy": found["runs"][0]["test_accuracy"],
        "chosen": found["auto"]["chosen"],
    }  # fmt: skip


def _small_idx(name: str, data_dir: str | None, scratch: pathlib.Path) -> pathlib.Path:
    import gzip

    from jaxsoftmax.data import catalog

    folder = scratch / f"idx-{name}"
    if folder.exists():
        return folder
    dataset = load(name, data_dir, quick=True)
    folder.mkdir()
    for file, array in ((catalog.TRAIN_IMAGES, dataset.train_images),
                        (catalog.TRAIN_LABELS, dataset.train_labels),
                        (catalog.TEST_IMAGES, dataset.test_images),
                        (catalog.TEST_LABELS, dataset.test_labels)):  # fmt: skip
        array = np.ascontiguousarray(array.astype(np.uint8))
        header = bytes([0, 0, 8, array.ndim]) + b"".join(
            int(n).to_bytes(4, "big") for n in array.shape
        )
        (folder / f"{file}.gz").write_bytes(gzip.compress(header + array.tobytes(), 1))
    return folder


# --- Optuna, with a plain JAX + optax trainer -----------------------------------------------


def plain_trainer(steps: int):
    """`train(params, state, learning_rate, start, indices, train_x, train_y)` for
    len(indices) steps and `accuracy(params, x, y)`, each compiled once: what a user of JAX
    and optax writes. Everything that changes is an argument: the data are not constants
    of the program (closing over them would bake 157 MB into it and slow its compilation
    5-fold), and a new trial's hyperparameters never recompile."""
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

    def loss(params, x, y):
        logits = x @ params["w"] + params["b"]
        return 100 * optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit
    def train(params, state, learning_rate, start, indices, train_x, train_y):
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


def make_pruner(name: str | None):
    import optuna

    if name is None:
        return optuna.pruners.NopPruner()
    kind, options = PRUNERS[name]
    return getattr(optuna.pruners, kind)(**options)


def optuna_search(data, steps: int, report_every: int, seconds: float,
                  pruner: str | None, jobs: int = 1) -> dict:  # fmt: skip
    """One Optuna study of `seconds`: TPE, and `pruner` (a key of PRUNERS, or None), with
    `jobs` trials at a time (threads: JAX releases the interpreter while it computes)."""
    import jax
    import jax.numpy as jnp
    import optuna

    from jaxsoftmax.search import spaces as search
    from jaxsoftmax.search.auto import DEFAULT_SPACE

    space = search.parse_space(DEFAULT_SPACE)
    optimizer, train, accuracy = plain_trainer(steps)
    jax.devices()
    begun = time.perf_counter()
    train_x, train_y, val_x, val_y = (jnp.asarray(array) for array in data)
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
        # Without a pruner nothing reads the accuracy midway: one call trains every step.
        every = steps if pruner is None else report_every
        for start in range(0, steps, every):
            batch = batches[start : start + every]
            params, state = train(params, state, hp["learning_rate"], start, batch, train_x,
                                  train_y)  # fmt: skip
            value = float(accuracy(params, val_x, val_y))
            if start + every < steps:  # a finished trial is never pruned
                trial.report(value, start + every)
                if trial.should_prune():
                    raise optuna.TrialPruned()
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0),
                                pruner=make_pruner(pruner))  # fmt: skip
    curve = []

    def record(study, trial):
        if trial.state == optuna.trial.TrialState.COMPLETE:
            curve.append((time.perf_counter() - begun, trial.value))

    study.optimize(objective, timeout=seconds, callbacks=[record], n_jobs=jobs)
    states = [trial.state for trial in study.trials]
    curve.sort()  # trials finish out of order with several jobs
    curve = [(t, max(value for _, value in curve[: k + 1])) for k, (t, _) in enumerate(curve)]
    return {
        "method": "Optuna, TPE" + (f" + pruner: {pruner}" if pruner else ", no pruner"),
        "pruner": pruner,
        "jobs": jobs,
        "trials": len(study.trials),
        "completed": states.count(optuna.trial.TrialState.COMPLETE),
        "pruned": states.count(optuna.trial.TrialState.PRUNED),
        "seconds": time.perf_counter() - begun,
        "best": study.best_value,
        "best_params": study.best_params,
        "curve": curve,
    }


def sklearn_search(data, values, max_iter: int = SKLEARN_MAX_ITER) -> dict:
    """`LogisticRegression` (lbfgs) over C from small to large, each fit warm-started from
    the last one's coefficients and run to lbfgs's tolerance."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    train_x, train_y, val_x, val_y = data
    curve, fits, best = [], [], 0.0
    model = LogisticRegression(max_iter=max_iter, warm_start=True)
    begun = time.perf_counter()
    for c in sorted(values):
        model.set_params(C=c)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(train_x, train_y)
        accuracy = float(model.score(val_x, val_y))
        best = max(best, accuracy)
        curve.append((time.perf_counter() - begun, best))
        fits.append({"C": c, "iterations": int(model.n_iter_[0]), "validation_accuracy": accuracy,
                     "converged": int(model.n_iter_[0]) < max_iter})  # fmt: skip
    return {"method": "scikit-learn LogisticRegression over C", "trials": len(values),
            "seconds": curve[-1][0], "best": best, "curve": curve, "fits": fits}  # fmt: skip


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
    autos = [auto(name, args.data_dir, args.quick, scratch, seed)
             for seed in q.get("auto_seeds", AUTO_SEEDS)]  # fmt: skip
    rows.append(autos[0])
    print(f"  {name}: {_line(rows[-1])}", flush=True)
    data = split(load(name, args.data_dir, args.quick), validation)
    seconds = q.get("optuna_seconds", args.optuna_seconds)
    report_every = q.get("report_every", REPORT_EVERY)
    studies = []
    pruners = q.get("pruners", tuple(PRUNERS))
    for pruner, jobs in ((None, 1), (None, OPTUNA_JOBS), *((p, OPTUNA_JOBS) for p in pruners)):
        studies.append(optuna_search(data, steps, report_every, seconds, pruner, jobs))
        print(f"  {name}: {_line(studies[-1])}, {jobs} jobs, {studies[-1]['pruned']} pruned",
              flush=True)  # fmt: skip
    # The pruner and the jobs are settings like any other: the study that found the best
    # validation accuracy is the one a user would keep, of those without a pruner and of
    # those with one.
    plain = max(studies[:2], key=lambda study: study["best"])
    chosen = max(studies[2:], key=lambda study: study["best"])
    rows += [plain, chosen]
    sklearn_row = sklearn_search(data, q.get("sklearn_c", SKLEARN_C))
    print(f"  {name}: {_line(sklearn_row)}", flush=True)
    rows.append(sklearn_row)
    return {"dataset": name, "rows": rows, "optuna_studies": studies, "auto_seeds": autos,
            "headline": headline(rows, seconds, steps)}  # fmt: skip


def curves(rows: list[dict]) -> dict[str, list[tuple[float, float]]]:
    """Each method's (seconds, best so far) points, in time order. A study or a path of C is
    one run: its own curve. Ours are separate searches of growing size, one point each (its
    wall time, its best): not a running best, since each is a run of its own."""
    found: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        points = row["curve"] if "curve" in row else [(row["seconds"], row["best"])]
        found.setdefault(row["method"], []).extend(points)
    return {method: sorted(points) for method, points in found.items()}


def one_run(method: str) -> bool:
    return not method.startswith("ours")


def best_within(method: str, points: list[tuple[float, float]], seconds: float) -> float | None:
    """What a user given `seconds` gets: a run's best by then, or the best of the largest
    search of ours that ends within them (a user sizes one search to the budget)."""
    within = [(t, value) for t, value in points if t <= seconds]
    if not within:
        return None
    return max(value for _, value in within) if one_run(method) else within[-1][1]


def first_reaching(method: str, points: list[tuple[float, float]], target: float) -> float | None:
    """When a run first reaches `target`; for ours, the time of the smallest search from
    which every larger one reaches it too (so that one lucky small search does not count)."""
    if one_run(method):
        return next((t for t, value in points if value >= target), None)
    for k, (t, _) in enumerate(points):
        if all(value >= target for _, value in points[k:]):
            return t
    return None


def headline(rows: list[dict], budget: float, steps: int) -> dict:
    """What the README says in words, computed: each method's best within the budget, the
    target (Optuna without a pruner's best), when each method first reached it, and the
    full trials a second of the methods that train every trial to the end."""
    by_method = curves(rows)
    optuna_plain = next(row for row in rows if row["method"] == "Optuna, TPE, no pruner")
    target = optuna_plain["best"]
    full_trials = {f"ours, random ({row['trials']} trials)": row["trials"] / row["seconds"]
                   for row in rows if row["method"] == "ours, random"}  # fmt: skip
    full_trials["Optuna, TPE, no pruner"] = optuna_plain["completed"] / optuna_plain["seconds"]
    return {
        "budget_s": budget,
        "target": target,
        "best_within_budget": {m: best_within(m, p, budget) for m, p in by_method.items()},
        "best_at_all": {m: max(value for _, value in p) for m, p in by_method.items()},
        "time_to_target_s": {m: first_reaching(m, p, target) for m, p in by_method.items()},
        "full_trials_per_s": full_trials,
        "steps_per_trial": steps,
    }


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
    """The raw rows as a table per dataset (benchmarks/tables.py draws README's)."""
    lines = []
    for found in document["datasets"]:
        lines += [f"**{found['dataset']}**", "",
                  "| method | trials | steps a trial | wall time (s) | best validation accuracy |",
                  "|---|---:|---:|---:|---:|"]  # fmt: skip
        for row in [*found["rows"], *found["optuna_studies"]]:
            steps = row.get("steps_per_trial", document["steps"])
            lines.append(f"| {row['method']} | {row['trials']} | {steps} | {row['seconds']:.1f} "
                         f"| {row['best']:.2%} |")  # fmt: skip
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
        for method, points in curves(found["rows"]).items():
            times, best = zip(*points, strict=True)
            if method in markers:
                axis.plot(times, best, marker=markers[method], ms=9 if "auto" in method else 6,
                          label=method, lw=1)  # fmt: skip
            else:
                axis.step(times, best, where="post", label=method)
        axis.axhline(found["headline"]["target"], color="grey", lw=0.6, ls=":")
        axis.set_xscale("log")
        axis.set_xlabel("wall time of the search (s), compilation included")
        axis.set_ylabel("best validation accuracy")
        axis.set_title(found["dataset"])
        low = max(r["best"] for r in found["rows"]) - 0.03
        axis.set_ylim(low, None)
        axis.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110, metadata={"Software": None})


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="mnist,fashion_mnist")
    parser.add_argument(
        "--data-dir",
        help="a folder holding <dataset>/ folders of IDX files "
        "(default: where jaxsoftmax finds them, $JAXSOFTMAX_DATA_DIR first)",
    )
    parser.add_argument("--optuna-seconds", type=float, default=60.0,
                        help="each Optuna study's budget (default 60)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="tiny data and budgets: seconds")
    parser.add_argument(
        "--out", type=pathlib.Path, default=pathlib.Path(__file__).parent / "results"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return {}
    record = provenance.provenance()
    with tempfile.TemporaryDirectory() as scratch:
        datasets = [compare(name, args, pathlib.Path(scratch)) for name in args.datasets.split(",")]
    q = QUICK if args.quick else {}
    document = {"provenance": record, "quick": args.quick,
                "optuna_seconds": q.get("optuna_seconds", args.optuna_seconds),
                "steps": q.get("steps", STEPS), "batch_size": BATCH,
                "report_every": q.get("report_every", REPORT_EVERY),
                "timing": "from the data in NumPy arrays and the libraries imported to the "
                          "result, compilation included, for every method",
                "datasets": datasets, "big": big(args)}  # fmt: skip
    stem = "search-quick" if args.quick else "search"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(document, indent=1) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(document))
    plot(document, args.out / f"{stem}.png")
    print(markdown(document))
    return document


if __name__ == "__main__":
    main()
