"""README.md and benchmarks/RESULTS.md show what the committed JSON holds: every table and
measured figure between generated markers is what benchmarks/tables.py computes from
benchmarks/results/, each names where it comes from, and its words follow the numbers."""

import json
import re

import pytest

from benchmarks import tables

from .conftest import REPO


@pytest.fixture(scope="module")
def results():
    return tables.Results()


def test_the_documents_hold_exactly_what_the_committed_json_gives(results):
    for path in tables.DOCUMENTS:
        text = path.read_text()
        assert tables.render(text, results) == text, (
            f"{path.name} differs from its JSON: run python benchmarks/tables.py"
        )


def test_every_block_is_used_and_every_marker_names_a_block():
    used = set()
    for path in tables.DOCUMENTS:
        text = path.read_text()
        names = tables.BLOCK.findall(text)
        used |= {match[1] for match in names}
        # Markers that the pattern did not pair (a missing end) would leave text unchecked.
        assert text.count("<!-- generated: ") == len(names) == text.count("<!-- end -->")
    assert used == set(tables.BLOCKS)


def test_every_result_names_its_commit_date_and_machine(results):
    for path in sorted((REPO / "benchmarks" / "results").rglob("*.json")):
        record = json.loads(path.read_text())["provenance"]
        assert re.fullmatch(r"[0-9a-f]{7,}", record["commit"]), path
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", record["date"]), path
        assert record["machine"]["processor"] and record["machine"]["cores"], path
    for name, render in tables.BLOCKS.items():
        text = render(results)
        assert re.search(r"commit [0-9a-f]{7}.*\d{4}-\d{2}-\d{2}", text), name


def headline(optuna, ours_random, optuna_time, ours_times):
    """A dataset's search headline with the given bests and times to Optuna's best."""
    return {
        "dataset": "mnist",
        "headline": {
            "target": optuna,
            "best_within_budget": {
                "Optuna, TPE, no pruner": optuna,
                "ours, random": ours_random,
                "ours, halving": ours_random - 0.01,
            },
            "time_to_target_s": {
                "Optuna, TPE, no pruner": optuna_time,
                "ours, random": ours_times,
                "ours, halving": None,
            },
            "full_trials_per_s": {"ours, random (27 trials)": 7.0, "Optuna, TPE, no pruner": 2.9},
            "steps_per_trial": 1800,
        },
    }


@pytest.mark.parametrize(
    "optuna, ours, optuna_time, ours_time, said",
    [
        (0.9236, 0.9229, 19.9, 2.3, ["within 0.2 points of each other", "Optuna ahead",
                                     f"8.7{tables.TIMES} sooner"]),
        (0.9260, 0.9220, 19.9, None, ["Optuna without a pruner finds a better setting",
                                      "no search of ours reliably reaches"]),
        (0.9200, 0.9250, 3.0, 5.0, ["our best (92.50%, ours, random search) is above",
                                    "before our searches did (5.0 s)"]),
    ],
)  # fmt: skip
def test_the_search_words_say_who_finds_more_and_who_is_sooner(
    optuna, ours, optuna_time, ours_time, said
):
    document = {"optuna_seconds": 60, "datasets": [headline(optuna, ours, optuna_time, ours_time)]}
    words = tables.search_words(document)
    for phrase in said:
        assert phrase in words, words
    assert "7.0 in our random search, 2.9 in Optuna's" in words


def test_the_throughput_words_name_every_k_where_pytorch_is_faster():
    def row(variant, models, rate):
        # Each engine timing also evaluated its models once: 5% more work than its steps.
        steps = 1000
        return {"variant": variant, "models": models, "model_steps_per_s": rate, "steps": steps,
                "extra_flops": 0.05 * models * steps * 3_136_000}  # fmt: skip

    document = {
        "flops_per_model_step": 3_136_000,
        "results": [
            row(tables.ENGINE, 1, 5000),
            row(tables.TORCH[1], 1, 6000),
            row(tables.ENGINE, 30, 20000),
            row(tables.TORCH[3], 30, 9000),
        ],
    }
    words = tables.throughput_words(document)
    expected = f"K=1 (torch.compile, one at a time, 1.20{tables.TIMES} the engine)."
    assert words.startswith(f"PyTorch is faster than the engine at {expected}")
    assert f"(5%{tables.DASH}5% more work than its steps)" in words
    document["results"][1]["model_steps_per_s"] = 4000
    assert "No PyTorch variant is faster" in tables.throughput_words(document)
