"""Every table and measured figure of README.md and benchmarks/RESULTS.md, from the raw JSON.

The documents mark each generated block with `<!-- generated: NAME -->` ... `<!-- end -->`;
this script recomputes every block from the JSON the benchmarks committed in
benchmarks/results/ (and mutation/results.json) and writes it in place, each table
followed by the command, commit, date and machine it comes from. Nothing between the
markers is typed by hand; tests/test_tables.py fails when the documents and the JSON
disagree. Sentences that compare (who is faster, who finds more) are computed too, so
that where we lose, the words say so.

    python benchmarks/tables.py           # rewrite the blocks
    python benchmarks/tables.py --check   # exit 1 if any block is out of date
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import statistics
import sys
from collections.abc import Callable

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
DOCUMENTS = (REPO / "README.md", HERE / "RESULTS.md")
BLOCK = re.compile(r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end -->)", re.S)
DASH, TIMES = "\u2013", "\u00d7"  # a range's dash; "times"
# Two best validation accuracies closer than this (20 of 10,000 images) are even: a
# search's best moves by about that much with its seed.
EVEN = 0.002

sys.path.insert(0, str(HERE))
import provenance  # noqa: E402

# --- formatting --------------------------------------------------------------------------------


def pct(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f}%"


def secs(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f} s"


def num(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def spread(values: list[float], digits: int = 1) -> str:
    """The median and the range: '3.9 s (3.8-4.2)', with a dash."""
    median, low, high = statistics.median(values), min(values), max(values)
    return f"{median:.{digits}f} s ({low:.{digits}f}{DASH}{high:.{digits}f})"


def dataset_name(name: str) -> str:
    return {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}.get(name, name)


def source(document: dict, command: str) -> str:
    """The line under a table: what produced it, and where and when."""
    return f"<sub>`{command}` · {provenance.describe(document['provenance'])}</sub>"


def table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    marks = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


class Results:
    """The committed JSON, each file read once."""

    def __init__(self, folder: pathlib.Path = RESULTS):
        self.folder = folder
        self._cache: dict[str, dict] = {}

    def __getitem__(self, name: str) -> dict:
        if name not in self._cache:
            path = (REPO / name) if name.startswith("mutation/") else self.folder / name
            self._cache[name] = json.loads(path.read_text())
        return self._cache[name]


# --- start-up and the tutorial ------------------------------------------------------------------

TUTORIAL = "TF1 tutorial (test set every step)"
EVERY_STEP = "jaxsoftmax --eval-every 1 cold"
STARTUP_LABELS = {
    "jaxsoftmax cold": "default run, fresh process, compilation cache empty",
    "jaxsoftmax warm": "default run, compilation cache warm",
    "floor + evaluations cold": "the same numbers hand-written as plainly as JAX allows, nothing "
    "written (train metrics every step, the test set every 10 steps), cold",
    "floor + evaluations warm": "the same, warm",
    "floor cold": "the hand-written floor with one test evaluation at the end, cold",
    "floor warm": "the same, warm",
    EVERY_STEP: "`--eval-every 1` (the test set every step, as the tutorial), cold",
    TUTORIAL: "the TensorFlow 1.4 tutorial as a whole program (`benchmarks/tf1_tutorial.py`: "
    "its summaries and the test set every step)",
}


def readme_intro(results: Results) -> str:
    startup = results["startup.json"]
    walls = startup["median_wall_s"]
    return (
        f"Run whole, with its TensorBoard summaries and the test set evaluated after every step, "
        f"the tutorial takes {secs(walls[TUTORIAL], 0)} here; `python -m jaxsoftmax.train "
        f"--eval-every 1`, the same job evaluated as often, takes {secs(walls[EVERY_STEP])}, "
        f"{walls[TUTORIAL] / walls[EVERY_STEP]:.0f}{TIMES} sooner, and the default run (the test "
        f"set every 10 steps) {secs(walls['jaxsoftmax cold'])}: each a fresh process, "
        f"compilation included ({provenance.describe(startup['provenance'])}; see "
        "[Results](#results))."
    )


def readme_startup(results: Results) -> str:
    startup = results["startup.json"]
    walls, peaks = startup["wall_s"], startup["median_peak_rss_mb"]
    rows = [
        [label, spread(walls[name]), f"{peaks[name]:,.0f} MB"]
        for name, label in STARTUP_LABELS.items()
        if name in walls
    ]
    body = table(["", "wall time, median (range)", "peak memory"], rows)
    sizes = startup.get("logdir_bytes", {})
    note = ""
    if TUTORIAL in sizes and EVERY_STEP in sizes:
        note = (
            f"\n\nTheir log directories: the tutorial's {sizes[TUTORIAL] / 1e6:.1f} MB, "
            f"`--eval-every 1`'s {sizes[EVERY_STEP] / 1e6:.1f} MB."
        )
    runs = f"{startup['repeats']} processes each (the tutorial {startup['tutorial_repeats']})"
    return f"{body}{note}\n\n{source(startup, 'python benchmarks/startup.py')}; {runs}, in turns."


# --- accuracy over seeds ---------------------------------------------------------------------


def readme_accuracy(results: Results) -> str:
    found = results["accuracy.json"]
    seeds = found["seeds"]
    rows = []
    for k, rate in enumerate(found["learning_rates"]):
        ours = [run[k] for run in found["jaxsoftmax"]]
        theirs = [run[k] for run in found["original"]]
        rows.append(
            [
                f"{rate:g}",
                pct(ours[0]),
                f"{pct(statistics.mean(ours))} ± {100 * statistics.stdev(ours):.2f}",
                f"{pct(statistics.mean(theirs))} ± {100 * statistics.stdev(theirs):.2f}",
                pct(found["stated"][str(rate)], 1),
            ]
        )
    label = f"seeds {seeds[0]}{DASH}{seeds[-1]}"
    header = [
        "learning rate",
        "jaxsoftmax, seed 0",
        f"jaxsoftmax, {label}",
        f"the original, {label}",
        "the tutorial's stated accuracy",
    ]
    command = source(found, "python benchmarks/accuracy.py")
    return f"{table(header, rows)}\n\n{command}; mean ± standard deviation over seeds."


# --- throughput ---------------------------------------------------------------------------------

ENGINE, BOUND = "engine (vmap + scan)", "products only (bound)"
TF1 = "TF1 original (feed_dict)"
TORCH = (
    "PyTorch eager, one at a time",
    "PyTorch torch.compile, one at a time",
    "PyTorch eager, stacked (one GEMM)",
    "PyTorch torch.compile, stacked (one GEMM)",
)


def _by(document: dict) -> dict[tuple[str, int], dict]:
    return {(r["variant"], r["models"]): r for r in document["results"]}


def _rate(by: dict, variant: str, models: int) -> float | None:
    found = by.get((variant, models))
    return None if found is None else found["model_steps_per_s"]


def best_torch(by: dict, models: int) -> tuple[str, float] | None:
    found = [(rate, name) for name in TORCH if (rate := _rate(by, name, models)) is not None]
    if not found:
        return None
    rate, name = max(found)
    return name.removeprefix("PyTorch "), rate


def throughput_words(document: dict) -> str:
    """Where a PyTorch variant is faster than the engine, and by how much, at any K."""
    by = _by(document)
    models = sorted({k for _, k in by})
    lost, extra = [], []
    for k in models:
        torch = best_torch(by, k)
        engine = by.get((ENGINE, k))
        if torch and engine and torch[1] > engine["model_steps_per_s"]:
            ratio = torch[1] / engine["model_steps_per_s"]
            lost.append(f"K={k} ({torch[0]}, {ratio:.2f}{TIMES} the engine)")
            steps = engine["steps"] * engine["models"] * document["flops_per_model_step"]
            extra.append(engine.get("extra_flops", 0) / steps)
    if lost:
        work = ""
        if any(extra):
            work = (
                f" The engine's time there also holds one evaluation of every model on the "
                f"10,000 test images ({min(extra):.0%}{DASH}{max(extra):.0%} more work than its "
                "steps), the peers' none."
            )
        return "PyTorch is faster than the engine at " + "; ".join(lost) + "." + work
    ks = ", ".join(str(k) for k in models)
    return f"No PyTorch variant is faster than the engine at any K measured (K = {ks})."


def readme_throughput(results: Results) -> str:
    cpu, gpu = results["throughput.json"], results["h100/throughput.json"]
    by, by_gpu = _by(cpu), _by(gpu)
    rows = []
    for models in (3, 30, 300, 1000):
        torch = best_torch(by, models)
        tf1, gpu_rate = _rate(by, TF1, models), _rate(by_gpu, ENGINE, models)
        rows.append(
            [
                str(models),
                num(_rate(by, ENGINE, models)),
                num(_rate(by, BOUND, models)),
                num(tf1) if tf1 else "",
                f"{num(torch[1])} ({torch[0]})" if torch else "",
                num(gpu_rate) if gpu_rate else "",
            ]
        )
    header = [
        "K",
        "jaxsoftmax engine, CPU",
        "its two products alone (bound), CPU",
        "the original TF1 program, CPU",
        "fastest PyTorch, CPU",
        "jaxsoftmax engine, H100",
    ]
    ratio = _rate(by, ENGINE, 3) / _rate(by, TF1, 3)
    return (
        f"{table(header, rows)}\n\nModel-steps/s (one SGD step of one model on a batch of 100). "
        f"At K=3 the engine runs {ratio:.1f}{TIMES} the original program. {throughput_words(cpu)}"
        f"\n\n{source(cpu, 'python benchmarks/throughput.py')} (matmul peak "
        f"{cpu['matmul_peak_flops'] / 1e9:.0f} GFLOP/s in that run). H100: "
        f"{source(gpu, 'bash benchmarks/gpu_check.sh')}."
    )


def results_throughput(results: Results) -> str:
    cpu = results["throughput.json"]
    flops, peak = cpu["flops_per_model_step"], cpu["matmul_peak_flops"]
    models = sorted({r["models"] for r in cpu["results"]})
    by = _by(cpu)
    rows = []
    for variant in dict.fromkeys(r["variant"] for r in cpu["results"]):
        cells = []
        for k in models:
            rate = _rate(by, variant, k)
            cells.append("" if rate is None else f"{num(rate)} ({rate * flops / peak:.0%})")
        rows.append([variant, *cells])
    layouts = ", ".join(sorted(set(cpu["layouts"].values())))
    return (
        f"{table(['variant', *[f'K={k}' for k in models]], rows)}\n\n"
        f"Model-steps/s (% of the matmul peak, {peak / 1e9:.0f} GFLOP/s measured in the same "
        f"run); the layout probe chose {layouts}. {throughput_words(cpu)}\n\n"
        f"{source(cpu, 'python benchmarks/throughput.py')}"
    )


def results_compile(results: Results) -> str:
    cpu = results["throughput.json"]
    rows = []
    for variant in dict.fromkeys(r["variant"] for r in cpu["results"]):
        found = [r for r in cpu["results"] if r["variant"] == variant]
        rows.append([variant, " · ".join(f"K={r['models']}: {r['compile_s']:.2f}" for r in found)])
    header = ["variant", "seconds to compile or set up, by K"]
    return f"{table(header, rows, 'll')}\n\n{source(cpu, 'python benchmarks/throughput.py')}"


def results_h100(results: Results) -> str:
    parts = []
    for name in ("h100/throughput.json", "h100-feature-major/throughput.json"):
        gpu = results[name]
        rows = [
            [r["variant"], str(r["models"]), num(r["model_steps_per_s"])]
            for r in gpu["results"]
            if r["variant"] in (ENGINE, "sequential")
        ]
        note = gpu["provenance"].get("note", "")
        parts.append(
            f"`results/{name}`:\n\n{table(['variant', 'K', 'model-steps/s'], rows, 'lrr')}\n\n"
            f"{source(gpu, 'bash benchmarks/gpu_check.sh')}; {note}."
        )
    return "\n\n".join(parts)


def results_targets(results: Results) -> str:
    document, startup = results["throughput.json"], results["startup.json"]
    by = _by(document)
    flops, peak = document["flops_per_model_step"], document["matmul_peak_flops"]
    engine300 = _rate(by, ENGINE, 300) * flops / peak
    bound300 = _rate(by, BOUND, 300) * flops / peak
    k3 = _rate(by, ENGINE, 3) / _rate(by, TF1, 3)
    walls = startup["median_wall_s"]
    cold, warm = walls["jaxsoftmax cold"], walls["jaxsoftmax warm"]
    floor_cold, floor_warm = walls["floor + evaluations cold"], walls["floor + evaluations warm"]
    rows = [
        [
            "K=300 engine ≥ 65% of the matmul peak",
            f"{engine300:.1%} (its bound, the products alone: {bound300:.1%})",
            yes(engine300 >= 0.65),
        ],
        ["K=3 engine ≥ 9x the original TF1 program, same run", f"{k3:.1f}x", yes(k3 >= 9)],
        [
            "start-up, default run, cold ≤ 3.0 s",
            f"{secs(cold, 2)} (the floor with the same evaluations: {secs(floor_cold, 2)})",
            yes(cold <= 3.0),
        ],
        [
            "start-up, compilation cache warm ≤ 2.0 s",
            f"{secs(warm, 2)} (the floor: {secs(floor_warm, 2)})",
            yes(warm <= 2.0),
        ],
    ]
    return (
        f"{table(['target (issue 18)', 'measured', 'met?'], rows, 'lll')}\n\n"
        f"{source(document, 'python benchmarks/throughput.py')}; "
        f"{source(startup, 'python benchmarks/startup.py')}"
    )


def yes(condition: bool) -> str:
    return "yes" if condition else "no"


# --- time to accuracy ----------------------------------------------------------------------


def race_table(found: dict, epochs: int) -> str:
    """One dataset's race: ours (cold, warm) and scikit-learn (validated C, default C)."""
    ours, theirs = found["jaxsoftmax"], found["scikit_learn"]
    targets = [str(t) for t in found["targets"]]
    recipe = ours["recipe"]
    cold = ours["median_cold_time_to_target_s"]
    rows = [
        [
            f"jaxsoftmax, fresh process, compilation included (median of "
            f"{len(ours['cold_processes'])})",
            *[secs(cold[t], 2) for t in targets],
            pct(ours["cold_processes"][0]["final_test_accuracy"]),
        ],
        [
            "jaxsoftmax, compiled program cached",
            *[secs(ours["warm"]["time_to_target_s"][t], 2) for t in targets],
            pct(ours["warm"]["final_test_accuracy"]),
        ],
    ]
    for key, label in (("validated_c", "chosen on validation"), ("default_c", "its default")):
        run = theirs[key]
        rows.append(
            [
                f"scikit-learn lbfgs, C = {run['C']:g} ({label})",
                *[secs(run["time_to_target_s"][t]) for t in targets],
                f"{pct(run['converged']['test_accuracy'])} (converged: "
                f"{run['converged']['iterations']} iterations, {secs(run['converged']['fit_s'])})",
            ]
        )
    header = [f"**{dataset_name(found['dataset'])}**"]
    header += [f"time to {pct(float(t))}" for t in targets] + ["test accuracy at the end"]
    return (
        f"{table(header, rows)}\n\nOur recipe, chosen on the validation split: batch "
        f"{recipe['batch_size']}, learning rate {recipe['learning_rate']:g} (tutorial loss), "
        f"momentum {recipe['momentum']:g}, cosine over {epochs} epochs. {race_words(found)}"
    )


def readme_time_to_accuracy(results: Results) -> str:
    document = results["time_to_accuracy.json"]
    tables_ = [race_table(found, document["epochs"]) for found in document["datasets"]]
    return (
        "\n\n".join(tables_) + "\n\nOur run's end is its epochs; scikit-learn's, its "
        "converged fit.\n\n" + source(document, "python benchmarks/time_to_accuracy.py")
    )


def race_words(found: dict) -> str:
    """Who reaches each target first, in words: ours cold against scikit-learn with its C
    chosen on validation (its default C is in the table; choosing between the two by which
    reaches a test accuracy sooner would choose on test)."""
    ours = found["jaxsoftmax"]["median_cold_time_to_target_s"]
    theirs = found["scikit_learn"]["validated_c"]["time_to_target_s"]
    parts = []
    for target in (str(t) for t in found["targets"]):
        mine, best, label = ours[target], theirs[target], pct(float(target))
        if mine is None and best is None:
            parts.append(f"neither reaches {label}")
        elif mine is None:
            parts.append(f"only scikit-learn reaches {label}")
        elif best is None:
            parts.append(f"only jaxsoftmax reaches {label}")
        elif mine <= best:
            parts.append(f"jaxsoftmax reaches {label} {best / mine:.1f}{TIMES} sooner")
        else:
            parts.append(f"scikit-learn reaches {label} {mine / best:.1f}{TIMES} sooner")
    return "Cold, against scikit-learn with its validated C: " + "; ".join(parts) + "."


def results_time_to_accuracy(results: Results) -> str:
    document = results["time_to_accuracy.json"]
    parts = []
    for found in document["datasets"]:
        ours, theirs = found["jaxsoftmax"], found["scikit_learn"]
        candidates = sorted(ours["candidates"], key=lambda c: -c["validation_accuracy"])[:10]
        recipes = table(
            ["batch", "learning rate", "momentum", "validation accuracy"],
            [
                [str(c["batch_size"]), f"{c['learning_rate']:g}", f"{c['momentum']:g}",
                 pct(c["validation_accuracy"])]
                for c in candidates
            ],
        )  # fmt: skip
        cs = table(
            ["C", "validation accuracy"],
            [
                [f"{c['C']:g}", pct(c["validation_accuracy"])]
                for c in theirs["chosen"]["candidates"]
            ],
        )
        fits = []
        for key in ("validated_c", "default_c"):
            run = theirs[key]
            steps = " · ".join(
                f"{f['max_iter']}: {f['fit_s']:.1f} s, {pct(f['test_accuracy'])}"
                for f in run["fits"]
            )
            fits.append([f"C = {run['C']:g}", steps])
        last = str(found["targets"][-1])
        cold = ", ".join(secs(p["time_to_target_s"][last], 2) for p in ours["cold_processes"])
        epochs = " · ".join(pct(a) for a in ours["warm"]["accuracy_by_epoch"])
        parts.append(
            f"**{dataset_name(found['dataset'])}.** Our {len(ours['candidates'])} recipes on the "
            f"validation split ({document['epochs']} epochs, cosine), the best ten:\n\n{recipes}"
            f"\n\nscikit-learn's C on the same split (a warm-started path, each fit run to "
            f"convergence):\n\n{cs}\n\nscikit-learn's fits on all the training images, each "
            f"from scratch (max_iter: fit time, test accuracy):\n\n"
            f"{table(['', 'fits'], fits, 'll')}\n\nOur recipe's test accuracy after each epoch: "
            f"{epochs}; its cold processes' times to {pct(float(last))}: {cold}."
        )
    return "\n\n".join(parts) + "\n\n" + source(document, "python benchmarks/time_to_accuracy.py")


def mnist_best(document: dict) -> dict:
    return next(found["best"] for found in document["datasets"] if "best" in found)


def results_best(results: Results) -> str:
    document = results["time_to_accuracy.json"]
    runs = list(mnist_best(document).values())
    rows = []
    for run in runs:
        grid = f" {TIMES} ".join(
            "{" + ", ".join(f"{v:g}" for v in values) + "}" for values in run["grid"].values()
        )
        chosen = ", ".join(
            f"{k} {v:g}" for k, v in run["chosen_on_validation"].items() if k != "seed"
        )
        spread_ = (
            f"{pct(run['test_accuracy_seed_mean'])} ± {100 * run['test_accuracy_seed_std']:.2f}"
        )
        rows.append(
            [run["training_images"], grid, chosen, pct(run["validation_accuracy"]),
             pct(run["test_accuracy"]), spread_]
        )  # fmt: skip
    header = [
        "training images",
        "grid (" + ", ".join(runs[0]["grid"]) + ")",
        "chosen on validation",
        "validation accuracy",
        "test accuracy, seed 0",
        f"test accuracy, {len(runs[0]['test_accuracy_by_seed'])} seeds",
    ]
    return (
        f"{table(header, rows, 'llllrr')}\n\nMNIST. Each grid trained in one program for "
        f"{runs[0]['epochs']} epochs (cosine) on the first 50,000 training images and scored on "
        "the last 10,000; the setting chosen there trained on all 60,000 with several seeds (the "
        "minibatch order). No figure here was picked by test accuracy.\n\n"
        f"{source(document, 'python benchmarks/time_to_accuracy.py')}"
    )


def readme_best(results: Results) -> str:
    document = results["time_to_accuracy.json"]
    found = mnist_best(document)
    return (
        f"Best linear test accuracy on MNIST with the setting chosen on a validation split: "
        f"{pct(found['shifted']['test_accuracy'])} with the training images also shifted by one "
        f"pixel four ways, {pct(found['plain']['test_accuracy'])} without "
        "([RESULTS](benchmarks/RESULTS.md#the-best-linear-test-accuracy-chosen-on-validation); "
        f"{provenance.describe(document['provenance'])})."
    )


# --- search -------------------------------------------------------------------------------

PLAIN = "Optuna, TPE, no pruner"


def _row(found: dict, method: str, trials: int | None = None) -> dict | None:
    for row in found["rows"]:
        if row["method"] == method and (trials is None or row["trials"] == trials):
            return row
    return None


def _cell(row: dict | None, extra: str = "") -> str:
    if row is None:
        return ""
    return f"{pct(row['best'])} in {secs(row['seconds'])}{extra}"


def readme_search(results: Results) -> str:
    document = results["search.json"]
    datasets = document["datasets"]
    rows = []
    for strategy, trials in (("random", 27), ("random", 243), ("halving", 729), ("halving", 2187)):
        rows.append(
            [f"ours, {strategy} search, {trials:,} trials"]
            + [_cell(_row(d, f"ours, {strategy}", trials)) for d in datasets]
        )
    auto = [_row(d, "ours, --auto") for d in datasets]
    rows.append(
        [f"ours, `--auto` (its own plan: {auto[0]['trials']} trials of up to "
         f"{auto[0]['steps_per_trial']:,} steps, halving)"] + [_cell(a) for a in auto]
    )  # fmt: skip
    seconds = f"{document['optuna_seconds']:.0f} s"
    plain = [_row(d, PLAIN) for d in datasets]
    rows.append(
        [f"Optuna, TPE, no pruner, {seconds}"]
        + [_cell(p, f" ({p['trials']} trials, {p['jobs']} at a time)") for p in plain]
    )
    pruned = [d["rows"][-2] for d in datasets]
    count = len(datasets[0]["optuna_studies"]) - 2
    rows.append(
        [f"Optuna, TPE + the best of {count} pruners on validation, {seconds}"]
        + [_cell(p, f" ({p['pruner']}; {p['completed']} of {p['trials']} trials completed)")
           for p in pruned]
    )  # fmt: skip
    sklearn = [_row(d, "scikit-learn LogisticRegression over C") for d in datasets]
    rows.append(
        [f"scikit-learn, {sklearn[0]['trials']} values of C, warm-started"]
        + [_cell(s) for s in sklearn]
    )
    header = ["best validation accuracy, in the search's wall time"]
    header += [dataset_name(d["dataset"]) for d in datasets]
    return (
        f"{table(header, rows)}\n\n{search_words(document)}\n\n"
        f"{source(document, 'python benchmarks/search.py')}; every time from the data in NumPy "
        "and the libraries imported to the result, compilation included."
    )


def search_words(document: dict) -> str:
    """Where we win and where we lose, per dataset, in words, from the headline numbers."""
    sentences = []
    budget = f"{document['optuna_seconds']:.0f} s"
    for found in document["datasets"]:
        h = found["headline"]
        within = h["best_within_budget"]
        ours = {
            method: value
            for method, value in within.items()
            if method in ("ours, random", "ours, halving") and value is not None
        }
        theirs = {
            method: value
            for method, value in within.items()
            if method.startswith("Optuna") and value is not None
        }
        words = []
        if ours and theirs:
            ours_method, ours_best = max(ours.items(), key=lambda item: item[1])
            their_method, their_best = max(theirs.items(), key=lambda item: item[1])
            who = "Optuna without a pruner" if their_method == PLAIN else "Optuna with a pruner"
            if abs(ours_best - their_best) < EVEN:
                ahead = "Optuna" if their_best > ours_best else "our search"
                words.append(
                    f"within {budget}, {who} and our best search are within "
                    f"{100 * EVEN:.1f} points of each other, about what a search's seed moves "
                    f"its best ({ahead} ahead: {pct(their_best)} against {pct(ours_best)}, "
                    f"{ours_method} search)"
                )
            elif their_best > ours_best:
                words.append(
                    f"within {budget}, {who} finds a better setting than any search of ours "
                    f"({pct(their_best)} against {pct(ours_best)}, {ours_method} search)"
                )
            else:
                words.append(
                    f"within {budget}, our best ({pct(ours_best)}, {ours_method} search) is above "
                    f"the best of Optuna's ({pct(their_best)}, {who.lower()})"
                )
        times = h["time_to_target_s"]
        mine = [t for m, t in times.items() if m in ("ours, random", "ours, halving") and t]
        theirs_time = times[PLAIN]
        target = pct(h["target"])
        if mine and theirs_time:
            first = min(mine)
            if first < theirs_time:
                words.append(
                    f"Optuna without a pruner took {secs(theirs_time)} to reach its best, "
                    f"{target}; our searches reach it from {secs(first)} "
                    f"({theirs_time / first:.1f}{TIMES} sooner)"
                )
            else:
                words.append(
                    f"Optuna without a pruner reached its best, {target}, in {secs(theirs_time)}, "
                    f"before our searches did ({secs(first)})"
                )
        else:
            words.append(f"no search of ours reliably reaches Optuna's best, {target}")
        rates = h["full_trials_per_s"]
        ours_rate = max(v for k, v in rates.items() if k.startswith("ours"))
        words.append(
            f"trials of {h['steps_per_trial']:,} steps trained to the end a second: "
            f"{ours_rate:,.1f} in our random search, {rates[PLAIN]:.1f} in Optuna's"
        )
        text = "; ".join(words)
        sentences.append(f"**{dataset_name(found['dataset'])}:** {text[0].upper()}{text[1:]}.")
    return " ".join(sentences)


def readme_auto_seeds(results: Results) -> str:
    document = results["search.json"]
    rows = []
    for found in document["datasets"]:
        autos = found["auto_seeds"]
        walls = [a["process_s"] for a in autos]
        rows.append(
            [dataset_name(found["dataset"])]
            + [pct(a["test_accuracy"]) for a in autos]
            + [f"{min(walls):.0f}{DASH}{max(walls):.0f} s"]
        )
    seeds = [a["seed"] for a in document["datasets"][0]["auto_seeds"]]
    header = ["", *[f"seed {s}" for s in seeds], "wall time of the process (cache empty)"]
    return (
        f"{table(header, rows)}\n\nThe test accuracy of the retrained model, never used to "
        f"choose.\n\n{source(document, 'python benchmarks/search.py')}"
    )


def results_search(results: Results) -> str:
    document = results["search.json"]
    parts = []
    for found in document["datasets"]:
        rows = []
        for row in [*found["rows"][:-3], *found["optuna_studies"], found["rows"][-1]]:
            extra = ""
            if "pruned" in row:
                extra = f"{row['jobs']} at a time; {row['pruned']:,} pruned"
            rows.append(
                [row["method"], f"{row['trials']:,}",
                 f"{row.get('steps_per_trial', document['steps']):,}", secs(row["seconds"]),
                 pct(row["best"]), extra]
            )  # fmt: skip
        header = ["method", "trials", "steps a trial", "wall time", "best validation accuracy", ""]
        parts.append(f"**{dataset_name(found['dataset'])}**\n\n{table(header, rows, 'lrrrrl')}")
    return (
        "\n\n".join(parts)
        + f"\n\n{search_words(document)}\n\n{source(document, 'python benchmarks/search.py')}"
    )


def results_big_search(results: Results) -> str:
    document = results["search.json"]
    row = document["big"]
    return (
        f"A {row['trials']:,}-trial halving search to {row['steps_per_trial']:,} steps on MNIST: "
        f"{secs(row['seconds'])}, of which compiling {secs(row['compile_s'])}; peak memory "
        f"{row['peak_rss_gb']:.2f} GB (the process's own high-water mark); best validation "
        f"accuracy {pct(row['best'])}.\n\n{source(document, 'python benchmarks/search.py')}"
    )


# --- grids, summaries, predict, mutation -------------------------------------------------------


def readme_grids(results: Results) -> str:
    document = results["grids.json"]
    rows = []
    for row in document["grids"]:
        wall = secs(row["wall_s"])
        if "separately_s" in row:
            wall += f" ({row['models']} separate runs of one model: {secs(row['separately_s'])})"
        rows.append(
            [f"{row['name']} = {row['models']:,} models", f"{row['steps']:,}", wall,
             num(row["model_steps_per_s"]), f"{row['peak_rss_mb'] / 1024:.2f} GB"]
        )  # fmt: skip
    header = [
        "grid, one program",
        "steps",
        "wall time of the process",
        "model-steps/s while training",
        "peak memory",
    ]
    return (
        f"{table(header, rows)}\n\nDefaults but `--no-summaries`: the test set is evaluated every "
        "10 steps, which at 1,000 models costs more than the training steps. The grids run with "
        "their compilation cache empty, the separate runs with it on (the first compiles, the "
        "rest read it back).\n\n"
        f"{source(document, 'python benchmarks/grids.py')}"
    )


def readme_summaries(results: Results) -> str:
    document = results["summaries_overhead.json"]
    on, off = document["median_s"]["summaries on"], document["median_s"]["summaries off"]
    return (
        f"Writing every summary costs little: the default run takes {secs(on, 2)} with all of "
        f"them and {secs(off, 2)} with `--no-summaries` ({document['ratio']:.2f}{TIMES}; medians "
        f"of {document['repeats']} fresh processes each, compilation cache warm), and its log "
        f"directory holds {document['logdir_bytes'] / 1e6:.1f} MB "
        f"({provenance.describe(document['provenance'])}, "
        "`python benchmarks/summaries_overhead.py`)."
    )


def readme_predict(results: Results) -> str:
    document = results["predict_latency.json"]
    low, high = document["spread_s"]
    return (
        f"One image from a fresh process takes {secs(document['median_s'], 2)} "
        f"({low:.2f}{DASH}{high:.2f} s over {document['repeats']} processes; "
        f"{provenance.describe(document['provenance'])}, `benchmarks/predict_latency.py`)."
    )


def readme_mutation(results: Results) -> str:
    document = results["mutation/results.json"]
    rows = []
    for row in [*document["targets"], {"target": "**all**", "module": ""} | document["totals"]]:
        score = "" if row["score"] is None else f"{row['score']:.1%}"
        module = f"`{row['module']}`" if row["module"] else ""
        rows.append(
            [row["target"], module, str(row["mutants"]), str(row["killed"]),
             str(row.get("timed_out", 0)), str(row["equivalent"]), str(row["survived"]), score]
        )  # fmt: skip
    header = ["rule", "module", "mutants", "killed", "timed out", "equivalent", "survived",
              "score"]  # fmt: skip
    survivors = document["survivors"]
    if survivors:
        named = "; ".join(
            f"`{s_['module']}` line {s_['line']}, {s_['operator'].removeprefix('core/')}"
            for s_ in survivors[:5]
        )
        listed = f"Surviving: {named} (each with its diff in `mutation/results.json`)."
    else:
        listed = "No mutant survives but those argued equivalent."
    command = source(document, "python mutation/run.py")
    return (
        f"{table(header, rows, 'llrrrrrr')}\n\nThe score is the killed share of the mutants "
        "neither argued equivalent nor timed out (a mutant that loops forever is stopped after "
        f"ten minutes, and left out rather than counted as caught). {listed}\n\n{command}"
    )


def readme_sklearn(results: Results) -> str:
    """The scikit-learn comparison (benchmarks/sklearn_compare.py): both tables, and the
    ratios the issue asks for, in words that say where we lose."""
    document = results["sklearn_compare.json"]
    fits = document["fits"]
    rows = [[row["data"], row["model"], secs(row["fit_s"], 2 if row["fit_s"] >= 0.1 else 3),
             pct(row["test_accuracy"])]
            for row in fits]  # fmt: skip
    first = table(["data", "classifier", "fit", "test accuracy"], rows)
    searches = {row["search"]: row for row in document["searches"]}
    rows = [
        [name, f"{row['settings']} {TIMES} {row['folds']}", secs(row["wall_s"]),
         pct(row["best_cv_accuracy"]), pct(row["refit_test_accuracy"])]
        for name, row in searches.items()
    ]  # fmt: skip
    header = ["search", "settings x folds", "wall time", "best CV accuracy", "its test accuracy"]
    second = table(header, rows)
    by = {(row["data"], row["model"]): row for row in fits}
    ours = by[("MNIST", "SoftmaxClassifier")]
    lbfgs = by[("MNIST", "LogisticRegression (lbfgs, converged)")]
    search, alone = searches["SoftmaxSearchCV"], searches["GridSearchCV(SoftmaxClassifier)"]
    peer = searches["GridSearchCV(LogisticRegression)"]
    gap = 100 * (search["best_cv_accuracy"] - peer["best_cv_accuracy"])
    versus = f"{gap:.2f} points above" if gap >= 0 else f"{-gap:.2f} points below"
    cancer = [row for row in fits if row["data"] != "MNIST"]
    fastest = min(cancer, key=lambda row: row["fit_s"])
    words = (
        f"On MNIST `SoftmaxClassifier()` fits in {secs(ours['fit_s'], 2)}, "
        f"{lbfgs['fit_s'] / ours['fit_s']:.1f}{TIMES} sooner than a converged "
        f"`LogisticRegression` ({secs(lbfgs['fit_s'], 1)}), compilation included, at "
        f"{pct(ours['test_accuracy'])} against {pct(lbfgs['test_accuracy'])}. "
        f"`SoftmaxSearchCV` trains its {search['settings']} {TIMES} {search['folds']} models in "
        f"{secs(search['wall_s'])}: {alone['wall_s'] / search['wall_s']:.1f}{TIMES} sooner than "
        f"`GridSearchCV` fitting the same grid one model at a time (`n_jobs=-1`), and "
        f"{peer['wall_s'] / search['wall_s']:.1f}{TIMES} sooner than `GridSearchCV` over "
        f"{peer['settings']} values of `LogisticRegression`'s C, its best CV accuracy {versus} "
        f"that one's. On the small tabular set the one-program approach does not pay: "
        f"{fastest['model']} fits in {secs(fastest['fit_s'], 3)}, ours in "
        f"{secs(by[(fastest['data'], 'SoftmaxClassifier')]['fit_s'], 2)} (most of it compiling)."
    )
    return (
        f"{first}\n\n{second}\n\n{words} ({provenance.describe(document['provenance'])}, "
        "`python benchmarks/sklearn_compare.py`.)"
    )


BLOCKS: dict[str, Callable[[Results], str]] = {
    "readme-intro": readme_intro,
    "readme-accuracy": readme_accuracy,
    "readme-startup": readme_startup,
    "readme-summaries": readme_summaries,
    "readme-predict": readme_predict,
    "readme-search": readme_search,
    "readme-auto-seeds": readme_auto_seeds,
    "readme-throughput": readme_throughput,
    "readme-time-to-accuracy": readme_time_to_accuracy,
    "readme-best": readme_best,
    "readme-grids": readme_grids,
    "readme-mutation": readme_mutation,
    "readme-sklearn": readme_sklearn,
    "results-sklearn": readme_sklearn,
    "results-targets": results_targets,
    "results-throughput": results_throughput,
    "results-compile": results_compile,
    "results-h100": results_h100,
    "results-time-to-accuracy": results_time_to_accuracy,
    "results-best": results_best,
    "results-search": results_search,
    "results-big-search": results_big_search,
    "results-startup": readme_startup,
    "results-accuracy": readme_accuracy,
    "results-grids": readme_grids,
}


def render(text: str, results: Results) -> str:
    """`text` with every generated block recomputed."""

    def fill(match: re.Match) -> str:
        name = match["name"]
        if name not in BLOCKS:
            raise SystemExit(f"tables: unknown block {name!r}; the blocks are {', '.join(BLOCKS)}")
        return f"{match.group(1)}{BLOCKS[name](results).rstrip()}\n{match.group(4)}"

    return BLOCK.sub(fill, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a block is out of date")
    parser.add_argument(
        "--results", type=pathlib.Path, default=RESULTS,
        help="the folder of JSON (default benchmarks/results)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    results = Results(args.results)
    stale = []
    for path in DOCUMENTS:
        text = path.read_text()
        new = render(text, results)
        if new != text:
            stale.append(path)
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        names = ", ".join(str(path.relative_to(REPO)) for path in stale)
        print(f"tables: {names} out of date; run python benchmarks/tables.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
