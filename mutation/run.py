"""Mutation testing of the numerical core with cosmic-ray, on the fast subset of the suite.

Each target is a module of the core (or the functions of one that hold a rule) and the
test files that check it. For each, in a copy of the working tree (the checkout itself is
never mutated), cosmic-ray makes every mutant of the target's lines with its core
operators, less those in EXCLUDED_OPERATORS, and runs the target's tests against each
(`pytest -x`: the first failure kills a mutant). Survivors are matched against
`equivalent.toml`, mutants argued there to compute the same results; the score is the
killed share of the rest.

    python mutation/run.py                      # every target, 2 at a time: a few hours
    python mutation/run.py --targets evaluation,model --jobs 1
    python mutation/run.py --report             # the table again, from the last sessions

Needs `pip install -e '.[dev]'` (cosmic-ray) and the MNIST IDX files (JAXSOFTMAX_DATA_DIR,
as for the tests). Writes mutation/results.json (the score, every survivor's diff) and
prints a table; the sessions (cosmic-ray's databases) stay in --sessions, so a stopped
run goes on where it stopped.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys

import toml  # cosmic-ray's own dependency

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent

# Of cosmic-ray's operator replacements, those a mistake could make: each arithmetic
# operator becomes its inverse (+ and -, * and /, // to /, % to //, ** to *), each bit
# operation another (as in batches.stable_order), each comparison its boundary twin (<
# and <=, > and >=) or its negation (== and !=, < and >=, > and <=); a minus is dropped.
# The rest (x + y into x | y, x < y into x is y, -x into ~x, ...) fail on the first array
# they meet and would only lengthen the run.
KEPT_REPLACEMENTS = {
    "ReplaceBinaryOperator": (
        "Add_Sub", "Sub_Add", "Mul_Div", "Div_Mul", "FloorDiv_Div", "Mod_FloorDiv", "Pow_Mul",
        "BitAnd_BitOr", "BitOr_BitAnd", "BitXor_BitOr", "LShift_RShift", "RShift_LShift",
    ),
    "ReplaceComparisonOperator": (
        "Lt_LtE", "LtE_Lt", "Gt_GtE", "GtE_Gt", "Eq_NotEq", "NotEq_Eq",
        "Lt_GtE", "GtE_Lt", "Gt_LtE", "LtE_Gt",
    ),
    "ReplaceUnaryOperator": ("USub_UAdd", "Delete_Not", "Delete_USub"),
}  # fmt: skip
EXCLUDED_OPERATORS = tuple(
    rf"core/{operator}_(?!(?:{'|'.join(kept)})$)" for operator, kept in KEPT_REPLACEMENTS.items()
)


@dataclasses.dataclass(frozen=True)
class Target:
    """A module (all of it, or the named top-level functions and classes or methods as
    `Class.method`) and the tests that must catch its mutants."""

    name: str
    module: str
    tests: tuple[str, ...]
    only: tuple[str, ...] = ()


ENGINE_ORACLES = (
    "tests/test_engine.py::test_sweep_equals_training_each_learning_rate_alone",
    "tests/test_engine.py::test_cosine_sweep_equals_per_model_loop_with_decayed_steps",
    "tests/test_engine.py::test_both_weight_layouts_train_the_same_models",
    "tests/test_engine.py::test_jitted_step_equals_unjitted",
    "tests/test_engine.py::test_the_step_applies_the_optimizer_it_is_given",
    "tests/test_engine.py::test_first_loss_is_the_tutorials_and_loss_falls",
    "tests/test_engine.py::test_loss_scale_is_a_learning_rate_multiplier",
)
COSINE = "tests/test_engine.py::test_cosine_schedule_decays_each_learning_rate_to_zero"
LAYOUTS = "tests/test_engine.py::test_both_weight_layouts_train_the_same_models"
GRID_ORACLE = "tests/test_grid.py::test_every_grid_point_equals_a_float64_numpy_oracle"
SEARCH_ORACLE = "tests/test_search.py::test_survivors_train_as_if_each_trained_alone"

# The fast subset of the suite each target runs: its module's own tests and the oracles
# its numbers reach (the first failure kills a mutant, so the quickest and most telling
# come first).
TARGETS = (
    Target("model", "src/jaxsoftmax/core/model.py",
           ("tests/test_model.py", "tests/test_evaluation.py", *ENGINE_ORACLES)),
    Target("optimizer", "src/jaxsoftmax/core/optimizer.py",
           (*ENGINE_ORACLES, COSINE, GRID_ORACLE, SEARCH_ORACLE)),
    Target("batches", "src/jaxsoftmax/core/batches.py",
           ("tests/test_engine.py::test_stable_order_equals_numpys_stable_argsort",
            "tests/test_engine.py::test_the_key_value_sort_for_over_2_to_the_24_keys_is_as_stable",
            "tests/test_engine.py::test_two_keys_are_ordered_by_their_highest_bit_too",
            "tests/test_engine.py::test_any_window_of_steps_takes_its_batches_from_its_epochs_permutations",
            "tests/test_engine.py::test_initial_weights_and_minibatch_order_come_from_separate_streams",
            *ENGINE_ORACLES, "tests/test_engine.py::test_chunking_does_not_change_results",
            "tests/test_search.py::test_validation_examples_never_appear_in_a_training_batch",
            "tests/test_grid.py::test_points_that_share_a_seed_share_batches_and_seeds_differ",
            "tests/test_summaries.py::test_the_input_images_are_the_first_batch_the_models_train_on",
            GRID_ORACLE)),
    Target("engine", "src/jaxsoftmax/core/engine.py",
           ("tests/test_evaluation.py", "tests/test_engine.py", GRID_ORACLE,
            "tests/test_grid.py::test_slicing_the_grid_gives_the_same_results",
            "tests/test_grid.py::test_a_grid_point_equals_its_own_single_model_run",
            "tests/test_summaries.py")),
    Target("evaluation", "src/jaxsoftmax/core/evaluation.py", ("tests/test_evaluation.py",)),
    Target("layouts", "src/jaxsoftmax/core/layouts.py",
           ("tests/test_evaluation.py", LAYOUTS)),
    Target("sweep", "src/jaxsoftmax/sweep/train.py",
           ("tests/test_engine.py", "tests/test_loop.py")),
    Target("halving rule", "src/jaxsoftmax/search/spaces.py", ("tests/test_search.py",),
           only=("Halving", "choose_trial")),
    Target("halving ranking", "src/jaxsoftmax/search/halving.py", ("tests/test_search.py",),
           only=("HalvingSearch._end_rung", "HalvingSearch.finalists")),
    Target("predicted class and best model", "src/jaxsoftmax/trained/run.py",
           ("tests/test_trained.py",),
           only=("Model.predict_proba", "Model.logits", "Model.predict", "TrainedRun.best")),
    Target("the best-model rule", "src/jaxsoftmax/sweep/results.py",
           ("tests/test_search.py", "tests/test_trained.py", "tests/test_logged.py"),
           only=("rank_models", "SweepResult.finals", "SweepResult.ranked", "SweepResult.best")),
    Target("host softmax", "src/jaxsoftmax/core/host.py",
           ("tests/test_trained.py", "tests/test_search.py", "tests/test_arrays.py")),
)  # fmt: skip


def line_ranges(path: pathlib.Path, names: tuple[str, ...]) -> list[str]:
    """'first-last' line ranges of the named top-level definitions (`Class.method` for a
    method); the whole file where no names are given."""
    source = path.read_text()
    if not names:
        return [f"1-{len(source.splitlines())}"]
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            found[node.name] = node
            if isinstance(node, ast.ClassDef):
                for member in node.body:
                    if isinstance(member, ast.FunctionDef):
                        found[f"{node.name}.{member.name}"] = member
    missing = [name for name in names if name not in found]
    if missing:
        raise SystemExit(f"mutation: {path} has no {', '.join(missing)}; update TARGETS")
    return [f"{found[name].lineno}-{found[name].end_lineno}" for name in names]


def slug(target: Target) -> str:
    return target.name.replace(" ", "-")


def copy_tree(destination: pathlib.Path) -> None:
    """The working tree's files that git knows or would add (tracked and untracked,
    ignored ones left out), copied to `destination`."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def config_text(target: Target, tree: pathlib.Path, timeout: float) -> str:
    tests = " ".join(test for test in target.tests if (tree / test.split("::")[0]).exists())
    ranges = line_ranges(tree / target.module, target.only)
    excluded = ", ".join(json.dumps(pattern) for pattern in EXCLUDED_OPERATORS)
    return f"""[cosmic-ray]
module-path = "{target.module}"
timeout = {timeout}
excluded-modules = []
test-command = "{sys.executable} -m pytest -x -q -p no:cacheprovider {tests}"

[cosmic-ray.distributor]
name = "local"

[cosmic-ray.filters.operators-filter]
exclude-operators = [{excluded}]

[cosmic-ray.filters.line-filter.lines]
"{target.module}" = {json.dumps(ranges)}
"""


def run_target(target: Target, sessions: pathlib.Path, timeout: float) -> pathlib.Path:
    """Runs (or goes on with) one target's session; returns its database."""
    tree = sessions / slug(target)
    database = sessions / f"{slug(target)}.sqlite"
    pristine = sessions / f"{slug(target)}.original.py"
    tool = pathlib.Path(sys.executable).parent
    # A persistent compilation cache shared by every mutant's tests: the programs a mutant
    # leaves alone are read back instead of compiled (test_engine.py: 50 s -> 17 s).
    environment = os.environ | {
        "PYTHONPATH": str(tree / "src"),
        # The copy's own default (../shared beside it) is not where the data is.
        "JAXSOFTMAX_DATA_DIR": os.environ.get(
            "JAXSOFTMAX_DATA_DIR", str(REPO.parent / "shared" / "datasets")
        ),
        "JAX_COMPILATION_CACHE_DIR": str(sessions / "compilation-cache"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }
    config = sessions / f"{slug(target)}.toml"
    if not database.exists():
        shutil.rmtree(tree, ignore_errors=True)
        tree.mkdir(parents=True)
        copy_tree(tree)
        shutil.copy2(tree / target.module, pristine)
        config.write_text(config_text(target, tree, timeout))
        for command in (
            [tool / "cosmic-ray", "init", config, database],
            [tool / "cr-filter-operators", database, config],
            [tool / "cr-filter-lines", "--config", config, database],
        ):
            subprocess.run(command, cwd=tree, check=True, env=environment)
    # A run stopped while a mutant was applied leaves it in the file: start from the original.
    shutil.copy2(pristine, tree / target.module)
    config.write_text(config_text(target, tree, timeout))  # the tests TARGETS names now
    if pending(database):
        # The unmutated code must pass first: else every mutant would count as killed (a
        # test name that no longer exists, data not found, a test broken on its own).
        command = toml.loads(config.read_text())["cosmic-ray"]["test-command"].split()
        baseline = subprocess.run(command, cwd=tree, env=environment, capture_output=True,
                                  text=True)  # fmt: skip
        if baseline.returncode:
            raise SystemExit(f"mutation: {target.name}'s tests fail on the unmutated code:\n"
                             f"{baseline.stdout[-3000:]}")  # fmt: skip
    subprocess.run([tool / "cosmic-ray", "exec", config, database], cwd=tree, check=True,
                   env=environment)  # fmt: skip
    return database


def pending(database: pathlib.Path) -> int:
    """Mutants of a session without a result yet."""
    import sqlite3

    with sqlite3.connect(database) as connection:
        items = connection.execute("SELECT COUNT(*) FROM work_items").fetchone()[0]
        done = connection.execute("SELECT COUNT(*) FROM work_results").fetchone()[0]
    return items - done


def retest_survivors(target: Target, sessions: pathlib.Path, timeouts: bool = False) -> int:
    """Makes a session's survivors (but those argued equivalent), and with `timeouts` its
    timed-out mutants, pending again, its copy refreshed from the working tree (new
    tests, other modules) but for the module under test, which must be unchanged (else
    the mutants no longer fit it: start it again with --fresh)."""
    import sqlite3

    database = sessions / f"{slug(target)}.sqlite"
    tree = sessions / slug(target)
    pristine = sessions / f"{slug(target)}.original.py"
    if pristine.read_bytes() != (REPO / target.module).read_bytes():
        raise SystemExit(f"mutation: {target.module} changed since its session began; "
                         f"run --targets '{target.name}' --fresh")  # fmt: skip
    copy_tree(tree)
    equivalents = load_equivalents()
    again = [
        mutant["job_id"]
        for mutant in outcomes(database)
        if (timeouts and mutant["outcome"] == "timeout")
        or (mutant["outcome"] == "survived" and equivalent(target, mutant, equivalents) is None)
    ]
    with sqlite3.connect(database) as connection:
        # Survivors not argued equivalent, and if asked mutants that timed out (a run
        # stopped and resumed has its wall-clock timeout expire while it waits).
        connection.executemany("DELETE FROM work_results WHERE job_id = ?",
                               [(job,) for job in again])  # fmt: skip
    return len(again)


def equivalent(target: Target, mutant: dict, equivalents: list[dict]) -> int | None:
    """The index of the entry of equivalent.toml that argues `mutant` equivalent, if any."""
    before, after = changed_lines(mutant["diff"])
    return next((k for k, entry in enumerate(equivalents)
                 if entry["module"] == target.module and entry["before"] == before
                 and entry["after"] == after), None)  # fmt: skip


def outcomes(database: pathlib.Path) -> list[dict]:
    """Every mutant of a session that was not filtered out: operator, line, diff, outcome."""
    tool = pathlib.Path(sys.executable).parent
    dumped = subprocess.run([tool / "cosmic-ray", "dump", database], capture_output=True,
                            text=True, check=True).stdout  # fmt: skip
    mutants = []
    for line in dumped.splitlines():
        item, result = json.loads(line)
        if result is None or result.get("worker_outcome") == "skipped":
            continue
        (mutation,) = item["mutations"]
        mutants.append({
            "job_id": item["job_id"],
            "operator": mutation["operator_name"],
            "line": mutation["start_pos"][0],
            "diff": result.get("diff") or "",
            "outcome": "timeout" if result.get("output") == "timeout"
            else result.get("test_outcome") or result.get("worker_outcome"),
        })  # fmt: skip
    return mutants


def changed_lines(diff: str) -> tuple[str, str]:
    """The removed and added lines of a one-line mutant's diff, stripped, blank ones left out."""

    def lines(sign: str) -> str:
        found = [line[1:].strip() for line in diff.splitlines()
                 if line.startswith(sign) and not line.startswith(sign * 3)]  # fmt: skip
        return "\n".join(line for line in found if line)

    return lines("-"), lines("+")


def load_equivalents() -> list[dict]:
    return toml.loads((HERE / "equivalent.toml").read_text()).get("mutant", [])


def summarise(targets: tuple[Target, ...], sessions: pathlib.Path) -> dict:
    equivalents = load_equivalents()
    rows, survivors, used, missing, stale = [], [], set(), [], []
    for target in targets:
        database = sessions / f"{slug(target)}.sqlite"
        if not database.exists():
            missing.append(target.name)
            continue
        pristine = sessions / f"{slug(target)}.original.py"
        if pristine.read_bytes() != (REPO / target.module).read_bytes():
            stale.append(target.name)  # its mutants are of an older version of the module
        mutants = outcomes(database)
        counts = {"mutants": len(mutants), "killed": 0, "equivalent": 0, "survived": 0,
                  "pending": 0, "timed_out": 0, "incompetent": 0}  # fmt: skip
        for mutant in mutants:
            # A timeout or a mutant that broke the test run itself is not a test catching
            # it: both are left out of the score (and listed).
            if mutant["outcome"] in ("timeout", "incompetent"):
                counts["timed_out" if mutant["outcome"] == "timeout" else "incompetent"] += 1
                continue
            if mutant["outcome"] == "killed":
                counts["killed"] += 1
                continue
            if mutant["outcome"] != "survived":
                counts["pending"] += 1
                continue
            match = equivalent(target, mutant, equivalents)
            if match is not None:
                counts["equivalent"] += 1
                used.add(match)
                continue
            counts["survived"] += 1
            survivors.append({"target": target.name, "module": target.module} | mutant)
        considered = counts["killed"] + counts["survived"]
        counts["score"] = counts["killed"] / considered if considered else None
        rows.append({"target": target.name, "module": target.module,
                     "tests": list(target.tests), "only": list(target.only)} | counts)  # fmt: skip
    keys = ("mutants", "killed", "equivalent", "survived", "pending", "timed_out", "incompetent")
    totals = {key: sum(row[key] for row in rows) for key in keys}
    considered = totals["killed"] + totals["survived"]
    totals["score"] = totals["killed"] / considered if considered else None
    sys.path.insert(0, str(REPO / "benchmarks"))
    import provenance

    return {
        "provenance": provenance.provenance(),
        "excluded_operators": list(EXCLUDED_OPERATORS),
        "targets": rows,
        "totals": totals,
        "survivors": survivors,
        "targets_not_run": missing,
        "targets_whose_module_changed_since": stale,
        "equivalent_entries_unmatched": [e for k, e in enumerate(equivalents) if k not in used],
    }


def table(summary: dict) -> str:
    lines = ["| target | module | mutants | killed | equivalent | survived | score |",
             "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for row in [*summary["targets"], {"target": "all", "module": ""} | summary["totals"]]:
        score = "" if row["score"] is None else f"{row['score']:.1%}"
        lines.append(f"| {row['target']} | {row['module']} | {row['mutants']} | {row['killed']} "
                     f"| {row['equivalent']} | {row['survived']} | {score} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", help="comma-separated target names (default: all)")
    parser.add_argument("--jobs", type=int, default=2, help="targets at once (default 2)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds a mutant's tests may take (default 600)")  # fmt: skip
    parser.add_argument("--sessions", type=pathlib.Path, default=HERE / "sessions")
    parser.add_argument("--fresh", action="store_true", help="start the sessions again")
    parser.add_argument("--report", action="store_true", help="only summarise the sessions")
    parser.add_argument(
        "--retest-survivors", action="store_true",
        help="run the survivors again against the working tree's tests",
    )  # fmt: skip
    parser.add_argument(
        "--retest-timeouts", action="store_true",
        help="with --retest-survivors, also the mutants that timed out",
    )  # fmt: skip
    args = parser.parse_args(argv)
    by_name = {target.name: target for target in TARGETS}
    names = args.targets.split(",") if args.targets else list(by_name)
    unknown = [name for name in names if name not in by_name]
    if unknown:
        parser.error(f"unknown targets {unknown}; of {', '.join(by_name)}")
    targets = tuple(by_name[name] for name in names)
    args.sessions.mkdir(parents=True, exist_ok=True)
    if not args.report:
        if args.fresh:
            for target in targets:
                (args.sessions / f"{slug(target)}.sqlite").unlink(missing_ok=True)
        if args.retest_survivors:
            for target in targets:
                if (args.sessions / f"{slug(target)}.sqlite").exists():
                    again = retest_survivors(target, args.sessions, args.retest_timeouts)
                    print(f"{target.name}: {again} to retest")
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            done = pool.map(lambda t: run_target(t, args.sessions, args.timeout), targets)
            list(done)
    summary = summarise(targets, args.sessions)
    if not args.targets:
        (HERE / "results.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(table(summary))
    for survivor in summary["survivors"]:
        print(f"\nsurvived: {survivor['target']} line {survivor['line']} "
              f"({survivor['operator']})\n{survivor['diff']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
