"""Every table and measured figure of README.md and benchmarks/RESULTS.md, from the raw JSON.

The documents mark each generated block with `<!-- generated: NAME -->` ... `<!-- end -->`;
this script recomputes every block from the JSON the benchmarks committed in
benchmarks/results/ (and mutation/results.json) and writes it in place, each table
followed by the commit, date and machine it was measured on. Nothing between the markers
is typed by hand; a test fails when the documents and the JSON disagree.

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

sys.path.insert(0, str(HERE))
import provenance  # noqa: E402


# --- formatting --------------------------------------------------------------------------------


def pct(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f}%"


def secs(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f} s"


def num(value: float) -> str:
    return f"{value:,.0f}"


def spread(values: list[float], digits: int = 1) -> str:
    """The median and the range: '3.9 s (3.8–4.2)'."""
    return (f"{statistics.median(values):.{digits}f} s ({min(values):.{digits}f}–"
            f"{max(values):.{digits}f})")  # fmt: skip


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
    """The committed JSON, read once each."""

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


def readme_intro(results: Results) -> str:
    startup = results["startup.json"]
    walls = startup["median_wall_s"]
    return (
        f"Run whole on a {startup['provenance']['machine']['cores']}-core machine, with its "
        f"TensorBoard summaries and the test set evaluated after every step, the tutorial takes "
        f"{secs(walls[TUTORIAL], 0)}; `python -m jaxsoftmax.train --eval-every 1`, the same job "
        f"evaluated as often, takes {secs(walls[EVERY_STEP])}, and the default run (the test "
        f"set every 10 steps) {secs(walls['jaxsoftmax cold'])}, each a fresh process with "
        f"compilation included ({provenance.describe(startup['provenance'])}; "
        f"[Results](#results))."
    )


def startup_rows(startup: dict) -> list[list[str]]:
    walls, peaks = startup["wall_s"], startup["median_peak_rss_mb"]
    labels = {
        "jaxsoftmax cold": "default run, fresh process, compilation cache empty",
        "jaxsoftmax warm": "default run, compilation cache warm",
        "floor + evaluations cold": "the same numbers hand-written as plainly as JAX allows, "
        "nothing written (train metrics every step, the test set every 10), cold",
        "floor + evaluations warm": "the same, warm",
        "floor cold": "the hand-written floor with one test evaluation at the end, cold",
        "floor warm": "the same, warm",
        EVERY_STEP: "`--eval-every 1` (the test set every step, like the tutorial), cold",
        TUTORIAL: "the TensorFlow 1.4 tutorial as a whole program "
        "(`benchmarks/tf1_tutorial.py`: summaries and the test set every step)",
    }
    return [[label, spread(walls[name]), f"{peaks[name]:,.0f} MB"]
            for name, label in labels.items() if name in walls]  # fmt: skip


def readme_startup(results: Results) -> str:
    startup = results["startup.json"]
    body = table(["", "wall time, median (range)", "peak memory"], startup_rows(startup))
    sizes = startup.get("logdir_bytes", {})
    note = ""
    if TUTORIAL in sizes and EVERY_STEP in sizes:
        note = (f"\n\nTheir log directories: the tutorial's {sizes[TUTORIAL] / 1e6:.1f} MB, "
                f"`--eval-every 1`'s {sizes[EVERY_STEP] / 1e6:.1f} MB.")  # fmt: skip
    runs = f"{startup['repeats']} fresh processes each, the tutorial {startup['tutorial_repeats']}"
    return (f"{body}{note}\n\n{source(startup, 'python benchmarks/startup.py')}; {runs}, "
            "taking turns.")  # fmt: skip


# --- accuracy over seeds ---------------------------------------------------------------------


def readme_accuracy(results: Results) -> str:
    found = results["accuracy.json"]
    seeds = found["seeds"]
    rows = []
    for k, rate in enumerate(found["learning_rates"]):
        ours = [run[k] for run in found["jaxsoftmax"]]
        theirs = [run[k] for run in found["original"]]
        rows.append([
            f"{rate:g}", pct(ours[0]),
            f"{pct(statistics.mean(ours))} ± {100 * statistics.stdev(ours):.2f}",
            f"{pct(statistics.mean(theirs))} ± {100 * statistics.stdev(theirs):.2f}",
            pct(found["stated"][str(rate)], 1),
        ])  # fmt: skip
    label = f"seeds {seeds[0]}–{seeds[-1]}"
    header = ["learning rate", "jaxsoftmax, seed 0", f"jaxsoftmax, {label}",
              f"the original, {label}", "the tutorial's stated accuracy"]  # fmt: skip
    return (f"{table(header, rows)}\n\n"
            f"{source(found, 'python benchmarks/accuracy.py')}; mean ± standard deviation.")  # fmt: skip


# --- throughput ---------------------------------------------------------------------------------


def _by(document: dict) -> dict[tuple[str, int], dict]:
    return {(r["variant"], r["models"]): r for r in document["results"]}


ENGINE, BOUND = "engine (vmap + scan)", "products only (bound)"
TF1 = "TF1 original (feed_dict)"
TORCH = ("PyTorch eager, one at a time", "PyTorch torch.compile, one at a time",
         "PyTorch eager, stacked (one GEMM)", "PyTorch torch.compile, stacked (one GEMM)")  # fmt: skip


def best_torch(by: dict, models: int) -> tuple[str, float] | None:
    found = [(by[(name, models)]["model_steps_per_s"], name) for name in TORCH
             if (name, models) in by]  # fmt: skip
    if not found:
        return None
    rate, name = max(found)
    return name.replace("PyTorch ", ""), rate


def readme_throughput(results: Results) -> str:
    cpu, gpu = results["throughput.json"], results["h100/throughput.json"]
    by, by_gpu = _by(cpu), _by(gpu)
    rows = []
    for models in (3, 30, 300, 1000):
        torch = best_torch(by, models)
        rows.append([
            str(models), num(by[(ENGINE, models)]["model_steps_per_s"]),
            num(by[(BOUND, models)]["model_steps_per_s"]),
            num(by[(TF1, models)]["model_steps_per_s"]) if (TF1, models) in by else "",
            f"{num(torch[1])} ({torch[0]})" if torch else "",
            num(by_gpu[(ENGINE, models)]["model_steps_per_s"]) if (ENGINE, models) in by_gpu
            else "",
        ])  # fmt: skip
    header = ["K", "jaxsoftmax engine, CPU", "its two products alone (bound), CPU",
              "original TF1 program, CPU", "fastest PyTorch, CPU", "jaxsoftmax engine, H100"]  # fmt: skip
    losses = [row[0] for row in rows
              if row[4] and float(row[4].split()[0].replace(",", "")) >
              float(row[1].replace(",", ""))]  # fmt: skip
    words = ("PyTorch is faster than the engine at K = " + ", ".join(losses) + "."
             if losses else
             "No PyTorch variant beats the engine at any K measured here.")  # fmt: skip
    return (f"{table(header, rows)}\n\nModel-steps/s (one SGD step of one model on a batch of "
            f"100). {words}\n\n"
            f"{source(cpu, 'python benchmarks/throughput.py')} (matmul peak "
            f"{cpu['matmul_peak_flops'] / 1e9:.0f} GFLOP/s in that run). H100: "
            f"{source(gpu, 'bash benchmarks/gpu_check.sh')}.")  # fmt: skip


def results_throughput(results: Results) -> str:
    cpu = results["throughput.json"]
    flops, peak = cpu["flops_per_model_step"], cpu["matmul_peak_flops"]
    models = sorted({r["models"] for r in cpu["results"]})
    variants = list(dict.fromkeys(r["variant"] for r in cpu["results"]))
    by = _by(cpu)
    rows = []
    for variant in variants:
        cells = []
        for k in models:
            r = by.get((variant, k))
            cells.append("" if r is None else
                         f"{num(r['model_steps_per_s'])} ({r['model_steps_per_s'] * flops / peak:.0%})")  # fmt: skip
        rows.append([variant, *cells])
    return (f"{table(['variant', *[f'K={k}' for k in models]], rows)}\n\n"
            f"Model-steps/s (% of the matmul peak, {peak / 1e9:.0f} GFLOP/s measured in the same "
            f"run); the layout probe chose {', '.join(sorted(set(cpu['layouts'].values())))}.\n\n"
            f"{source(cpu, 'python benchmarks/throughput.py')}")  # fmt: skip


def results_compile(results: Results) -> str:
    cpu = results["throughput.json"]
    rows = []
    for variant in dict.fromkeys(r["variant"] for r in cpu["results"]):
        found = [r for r in cpu["results"] if r["variant"] == variant]
        rows.append([variant, " · ".join(f"K={r['models']}: {r['compile_s']:.2f}" for r in found)])
    return (
        f"{table(['variant', 'compile or set-up seconds (torch.compile and TF1 graphs: the first step)'], rows, 'll')}\n\n"  # noqa: E501
        f"{source(cpu, 'python benchmarks/throughput.py')}"
    )


def results_h100(results: Results) -> str:
    rows = []
    for name in ("h100/throughput.json", "h100-feature-major/throughput.json"):
        gpu = results[name]
        for r in gpu["results"]:
            if r["variant"] in (ENGINE, "sequential"):
                rows.append([name.split("/")[0], r["variant"], str(r["models"]),
                             num(r["model_steps_per_s"])])  # fmt: skip
    gpu = results["h100/throughput.json"]
    return (f"{table(['file', 'variant', 'K', 'model-steps/s'], rows, 'llrr')}\n\n"
            f"{source(gpu, 'bash benchmarks/gpu_check.sh')}; "
            f"{gpu['provenance'].get('note', '')}")  # fmt: skip


def results_targets(results: Results) -> str:
    cpu, startup = _by(results["throughput.json"]), results["startup.json"]
    document = results["throughput.json"]
    flops, peak = document["flops_per_model_step"], document["matmul_peak_flops"]
    engine300 = cpu[(ENGINE, 300)]
    bound300 = cpu[(BOUND, 300)]
    k3 = cpu[(ENGINE, 3)]["model_steps_per_s"] / cpu[(TF1, 3)]["model_steps_per_s"]
    walls = startup["median_wall_s"]
    rows = [
        ["K=300 engine ≥ 65% of the matmul peak",
         f"{engine300['model_steps_per_s'] * flops / peak:.1%} (its bound, the products alone: "
         f"{bound300['model_steps_per_s'] * flops / peak:.1%})",
         _yes(engine300["model_steps_per_s"] * flops / peak >= 0.65)],
        ["K=3 engine ≥ 9x the original TF1 program, same run", f"{k3:.1f}x", _yes(k3 >= 9)],
        ["start-up, default run, cold ≤ 3.0 s", f"{secs(walls['jaxsoftmax cold'], 2)} (the "
         f"hand-written floor with the same evaluations: {secs(walls['floor + evaluations cold'], 2)})",
         _yes(walls["jaxsoftmax cold"] <= 3.0)],
        ["start-up, compilation cache warm ≤ 2.0 s", f"{secs(walls['jaxsoftmax warm'], 2)} (the "
         f"floor: {secs(walls['floor + evaluations warm'], 2)})",
         _yes(walls["jaxsoftmax warm"] <= 2.0)],
    ]  # fmt: skip
    return (f"{table(['target (issue 18)', 'measured', 'met?'], rows, 'lll')}\n\n"
            f"{source(document, 'python benchmarks/throughput.py')}; "
            f"{source(startup, 'python benchmarks/startup.py')}")  # fmt: skip


def _yes(condition: bool) -> str:
    return "yes" if condition else "no"


# --- time to accuracy ----------------------------------------------------------------------


def readme_time_to_accuracy(results: Results) -> str:
    found = results["time_to_accuracy.json"]
    ours, theirs = found["jaxsoftmax"], found["scikit_learn"]
    targets = [str(t) for t in found["targets"]]
    recipe = ours["recipe"]
    rows = [
        [f"jaxsoftmax, fresh process, compilation included (median of "
         f"{len(ours['cold_processes'])})",
         *[secs(ours["median_cold_time_to_target_s"][t], 2) for t in targets],
         pct(ours["cold_processes"][0]["final_test_accuracy"])],
        ["jaxsoftmax, compiled program cached",
         *[secs(ours["warm"]["time_to_target_s"][t], 2) for t in targets],
         pct(ours["warm"]["final_test_accuracy"])],
        [f"scikit-learn lbfgs, C = {theirs['validated_c']['C']:g} (chosen on validation)",
         *[secs(theirs["validated_c"]["time_to_target_s"][t]) for t in targets],
         pct(theirs["validated_c"]["best_test_accuracy"])],
        ["scikit-learn lbfgs, C = 1 (its default)",
         *[secs(theirs["default_c"]["time_to_target_s"][t]) for t in targets],
         pct(theirs["default_c"]["best_test_accuracy"])],
    ]  # fmt: skip
    header = ["", *[f"time to {pct(float(t))}" for t in targets], "test accuracy at the end"]
    words = _race_words(found)
    return (f"{table(header, rows)}\n\nOur recipe, chosen on the validation split: batch "
            f"{recipe['batch_size']}, learning rate {recipe['learning_rate']:g} (tutorial loss), "
            f"momentum {recipe['momentum']:g}, cosine over {found['epochs']} epochs. {words}\n\n"
            f"{source(found, 'python benchmarks/time_to_accuracy.py')}")  # fmt: skip


def _race_words(found: dict) -> str:
    """Who reaches each target first, in words, ours cold against scikit-learn's best."""
    ours = found["jaxsoftmax"]["median_cold_time_to_target_s"]
    sklearn = found["scikit_learn"]
    parts = []
    for target in (str(t) for t in found["targets"]):
        mine = ours[target]
        theirs = [t for t in (sklearn["validated_c"]["time_to_target_s"][target],
                              sklearn["default_c"]["time_to_target_s"][target]) if t is not None]  # fmt: skip
        best = min(theirs) if theirs else None
        label = pct(float(target))
        if mine is None and best is None:
            parts.append(f"neither reaches {label}")
        elif mine is None:
            parts.append(f"only scikit-learn reaches {label}")
        elif best is None:
            parts.append(f"only jaxsoftmax reaches {label}")
        elif mine <= best:
            parts.append(f"jaxsoftmax reaches {label} {best / mine:.1f}x sooner, cold")
        else:
            parts.append(f"scikit-learn reaches {label} {mine / best:.1f}x sooner than we do cold")
    return "; ".join(parts).capitalize() + "."


def results_time_to_accuracy(results: Results) -> str:
    found = results["time_to_accuracy.json"]
    ours, theirs = found["jaxsoftmax"], found["scikit_learn"]
    candidates = sorted(ours["candidates"], key=lambda c: -c["validation_accuracy"])
    rows = [[str(c["batch_size"]), f"{c['learning_rate']:g}", f"{c['momentum']:g}",
             pct(c["validation_accuracy"])] for c in candidates]  # fmt: skip
    recipes = table(["batch", "learning rate", "momentum", "validation accuracy"], rows)
    cs = table(["C", "validation accuracy"],
               [[f"{c['C']:g}", pct(c["validation_accuracy"])]
                for c in theirs["chosen"]["candidates"]])  # fmt: skip
    fits = []
    for key in ("validated_c", "default_c"):
        run = theirs[key]
        fits.append(
            [
                f"C = {run['C']:g}",
                " · ".join(
                    f"{f['max_iter']}: {f['fit_s']:.1f} s, {pct(f['test_accuracy'])}"
                    for f in run["fits"]
                ),
            ]
        )
    cold = [p["time_to_target_s"][str(found["targets"][-1])] for p in ours["cold_processes"]]
    epochs = " · ".join(pct(a) for a in ours["warm"]["accuracy_by_epoch"])
    return (f"Our recipes on the validation split ({found['epochs']} epochs, cosine), best "
            f"first:\n\n{recipes}\n\nscikit-learn's C on the same split (warm-started path, run "
            f"to convergence):\n\n{cs}\n\nscikit-learn's fits on all 60,000 images, each from "
            f"scratch (max_iter: fit time, test accuracy):\n\n"
            f"{table(['', 'fits'], fits, 'll')}\n\n"
            f"Our recipe's test accuracy after each epoch: {epochs}; its cold processes' times to "
            f"{pct(found['targets'][-1])}: {', '.join(secs(t, 2) for t in cold)}.\n\n"
            f"{source(found, 'python benchmarks/time_to_accuracy.py')}")  # fmt: skip


def results_best(results: Results) -> str:
    found = results["time_to_accuracy.json"]
    rows = []
    for run in found["best"].values():
        chosen = ", ".join(f"{k} {v:g}" for k, v in run["chosen_on_validation"].items()
                           if k != "seed")  # fmt: skip
        rows.append(
            [
                run["training_images"],
                " × ".join(
                    "{" + ", ".join(f"{v:g}" for v in values) + "}"
                    for values in run["grid"].values()
                ),
                chosen,
                pct(run["validation_accuracy"]),
                pct(run["test_accuracy"]),
                f"{pct(run['test_accuracy_seed_mean'])} ± {100 * run['test_accuracy_seed_std']:.2f}",
            ]
        )
    header = ["training images", "grid (" + ", ".join(next(iter(found["best"].values()))["grid"])
              + ")", "chosen on validation", "validation accuracy", "test accuracy, seed 0",
              "test accuracy over seeds"]  # fmt: skip
    epochs = next(iter(found["best"].values()))["epochs"]
    return (
        f"{table(header, rows, 'llllrr')}\n\nEach grid trained in one program for {epochs} "
        "epochs (cosine) on the first 50,000 training images and scored on the last 10,000; "
        "the setting chosen there trained on all 60,000 with 5 seeds. No figure here was "
        f"picked by test accuracy.\n\n{source(found, 'python benchmarks/time_to_accuracy.py')}"
    )


def readme_best(results: Results) -> str:
    found = results["time_to_accuracy.json"]["best"]
    return (
        f"Best linear test accuracy with the setting chosen on a validation split: "
        f"{pct(found['shifted']['test_accuracy'])} with the training images also shifted by "
        f"one pixel four ways ({pct(found['plain']['test_accuracy'])} without; "
        "[RESULTS](benchmarks/RESULTS.md#time-to-accuracy))."
    )


# --- search -------------------------------------------------------------------------------


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
    for strategy, trials in (("random", 27), ("random", 243), ("halving", 729),
                             ("halving", 2187)):  # fmt: skip
        rows.append([f"ours, {strategy} search, {trials:,} trials",
                     *[_cell(_row(d, f"ours, {strategy}", trials)) for d in datasets]])  # fmt: skip
    auto = [_row(d, "ours, --auto") for d in datasets]
    rows.append([f"ours, `--auto` (its own plan: {auto[0]['trials']} trials of up to "
                 f"{auto[0]['steps_per_trial']:,} steps)", *[_cell(a) for a in auto]])  # fmt: skip
    plain = [_row(d, "Optuna, TPE, no pruner") for d in datasets]
    rows.append([f"Optuna, TPE, no pruner, {document['optuna_seconds']:.0f} s",
                 *[_cell(p, f" ({p['trials']} trials)") for p in plain]])  # fmt: skip
    pruned = [d["rows"][-2] for d in datasets]
    rows.append([f"Optuna, TPE + the best of {len(datasets[0]['optuna_studies']) - 1} pruners "
                 f"on validation, {document['optuna_seconds']:.0f} s",
                 *[_cell(p, f" ({p['pruner']}; {p['completed']} of {p['trials']} trials "
                            "completed)") for p in pruned]])  # fmt: skip
    sklearn = [_row(d, "scikit-learn LogisticRegression over C") for d in datasets]
    rows.append([f"scikit-learn, {sklearn[0]['trials']} values of C, warm-started",
                 *[_cell(s) for s in sklearn]])  # fmt: skip
    header = ["best validation accuracy, in the search's wall time",
              *[d["dataset"].replace("_", "-").replace("fashion-mnist", "Fashion-MNIST")
                .replace("mnist", "MNIST") for d in datasets]]  # fmt: skip
    return (
        f"{table(header, rows)}\n\n{search_words(document)}\n\n"
        f"{source(document, 'python benchmarks/search.py')}; every time from the data in "
        "NumPy and the libraries imported to the result, compilation included."
    )


def search_words(document: dict) -> str:
    """Where we win and where we lose, in words, from the headline numbers."""
    sentences = []
    budget = document["optuna_seconds"]
    for found in document["datasets"]:
        h = found["headline"]
        name = found["dataset"].replace("fashion_mnist", "Fashion-MNIST").replace("mnist", "MNIST")
        ours = {m: v for m, v in h["best_within_budget"].items() if m.startswith("ours")}
        ours = {m: v for m, v in ours.items() if v is not None}
        best_ours_method = max(ours, key=ours.get)
        best_ours = ours[best_ours_method]
        optuna = h["best_within_budget"]["Optuna, TPE, no pruner"]
        if abs(optuna - best_ours) < 0.0005:
            verdict = (f"Optuna without a pruner matches us within {budget:.0f} s "
                       f"({pct(optuna)} against our {pct(best_ours)})")  # fmt: skip
        elif optuna > best_ours:
            verdict = (f"Optuna without a pruner finds a better setting within {budget:.0f} s "
                       f"than any search of ours does ({pct(optuna)} against {pct(best_ours)}, "
                       f"{best_ours_method})")  # fmt: skip
        else:
            verdict = (f"our best within {budget:.0f} s ({best_ours_method}, {pct(best_ours)}) "
                       f"is above Optuna's without a pruner ({pct(optuna)})")  # fmt: skip
        times = h["time_to_target_s"]
        ours_first = min((t for m, t in times.items() if m.startswith("ours") and t is not None),
                         default=None)  # fmt: skip
        theirs_first = times["Optuna, TPE, no pruner"]
        if ours_first is not None and theirs_first is not None:
            race = (f"; its best, {pct(h['target'])}, took it {secs(theirs_first)} and us "
                    f"{secs(ours_first)} ({theirs_first / ours_first:.1f}x sooner)"
                    if ours_first < theirs_first else
                    f"; it reached its best, {pct(h['target'])}, in {secs(theirs_first)}, "
                    f"before we did ({secs(ours_first)})")  # fmt: skip
        else:
            race = f"; none of our searches reached its best, {pct(h['target'])}"
        rates = h["trials_per_s"]
        ours_rate = max(v for k, v in rates.items() if k.startswith("ours"))
        theirs_rate = next(v for k, v in rates.items() if k.startswith("Optuna, TPE, no pruner"))
        sentences.append(f"**{name}:** {verdict}{race}. Trials a second: up to "
                         f"{ours_rate:,.0f} for ours, {theirs_rate:.1f} for Optuna.")  # fmt: skip
    return " ".join(sentences)


def readme_auto_seeds(results: Results) -> str:
    document = results["search.json"]
    rows = []
    for found in document["datasets"]:
        autos = found["auto_seeds"]
        walls = [a["process_s"] for a in autos]
        rows.append([found["dataset"], *[pct(a["test_accuracy"]) for a in autos],
                     f"{min(walls):.0f}–{max(walls):.0f} s"])  # fmt: skip
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
            pruned = f"{row['pruned']} pruned" if "pruned" in row else ""
            rows.append([row["method"], f"{row['trials']:,}",
                         f"{row.get('steps_per_trial', document['steps']):,}",
                         secs(row["seconds"]), pct(row["best"]), pruned])  # fmt: skip
        parts.append(f"**{found['dataset']}**\n\n" + table(
            ["method", "trials", "steps a trial", "wall time", "best validation accuracy", ""],
            rows, "lrrrrl"))  # fmt: skip
    return (
        "\n\n".join(parts) + f"\n\n{search_words(document)}\n\n"
        f"{source(document, 'python benchmarks/search.py')}"
    )


def results_big_search(results: Results) -> str:
    document = results["search.json"]
    row = document["big"]
    return (
        f"A {row['trials']:,}-trial halving search to {row['steps_per_trial']:,} steps on "
        f"MNIST: {secs(row['seconds'])}, compilation {secs(row['compile_s'])}, peak memory "
        f"{row['peak_rss_gb']:.2f} GB (the process's own high-water mark), best validation "
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
        rows.append([f"{row['name']} = {row['models']:,} models", f"{row['steps']:,}", wall,
                     num(row["model_steps_per_s"]), f"{row['peak_rss_mb'] / 1024:.2f} GB"])  # fmt: skip
    header = ["grid, one program", "steps", "wall time of the process",
              "model-steps/s while training", "peak memory"]  # fmt: skip
    return (
        f"{table(header, rows)}\n\n`--no-summaries`, compilation cache empty. "
        f"{source(document, 'python benchmarks/grids.py')}"
    )


def readme_summaries(results: Results) -> str:
    document = results["summaries_overhead.json"]
    on, off = document["median_s"]["summaries on"], document["median_s"]["summaries off"]
    return (
        f"Writing every summary costs little: the default run takes {secs(on, 2)} with all "
        f"of them and {secs(off, 2)} with `--no-summaries` ({document['ratio']:.2f}×; medians "
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
        f"({low:.2f}–{high:.2f} s over {document['repeats']}; "
        f"{provenance.describe(document['provenance'])}, `benchmarks/predict_latency.py`)."
    )


def readme_mutation(results: Results) -> str:
    document = results["mutation/results.json"]
    rows = []
    for row in [*document["targets"], {"target": "**all**", "module": ""} | document["totals"]]:
        score = "" if row["score"] is None else f"{row['score']:.1%}"
        rows.append([row["target"], f"`{row['module']}`" if row["module"] else "",
                     str(row["mutants"]), str(row["killed"]), str(row["equivalent"]),
                     str(row["survived"]), score])  # fmt: skip
    header = ["rule", "module", "mutants", "killed", "equivalent", "survived",
              "killed of the non-equivalent"]  # fmt: skip
    record = document
    dirty = " (with uncommitted changes)" if record.get("dirty") else ""
    return (
        f"{table(header, rows, 'llrrrrr')}\n\n<sub>`python mutation/run.py` · commit "
        f"{record['commit']}{dirty}, {record['date']}, {record['machine']}</sub>"
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
    parser.add_argument("--results", type=pathlib.Path, default=RESULTS,
                        help="the folder of JSON (default benchmarks/results)")  # fmt: skip
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
        names = ", ".join(str(p.relative_to(REPO)) for p in stale)
        print(f"tables: {names} out of date; run python benchmarks/tables.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
