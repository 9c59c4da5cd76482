"""The Python API logs what the command line logs: a stopped run resumed, a search, and
`--auto`'s recipe through `js.train_logged`, against the same runs left alone."""

import json

import numpy as np
import pytest

import jaxsoftmax as js
from jaxsoftmax.errors import CheckpointError, ConfigError
from jaxsoftmax.search import auto as auto_search
from jaxsoftmax.search.halving import HalvingSearch
from jaxsoftmax.search.spaces import Halving, choose_trial, parse_space, search_config
from jaxsoftmax.sweep import grid
from jaxsoftmax.sweep.config import SweepConfig


def _results(logdir) -> dict:
    document = json.loads((logdir / "results.json").read_text())
    del document["timing"]
    return document


def _stopper(after: int):
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return len(calls) >= after

    return should_stop


def test_a_python_run_stopped_then_resumed_equals_one_never_stopped(small, tmp_path):
    config = SweepConfig(learning_rates=(0.002, 0.005), steps=60, eval_every=10, chunk_steps=10)
    whole = js.train_logged(small, config, tmp_path / "whole", checkpoint_every=10)
    stopped = js.train_logged(small, config, tmp_path / "parts", checkpoint_every=10,
                              should_stop=_stopper(2))  # fmt: skip
    assert stopped.interrupted and _results(tmp_path / "parts")["interrupted"] is True
    with pytest.raises(ConfigError, match="take no `config`"):
        js.train_logged(small, config, tmp_path / "parts", resume=True)
    resumed = js.train_logged(small, None, tmp_path / "parts", resume=True)
    assert not resumed.interrupted
    for name in ("w", "b"):
        np.testing.assert_array_equal(resumed.params[name], whole.params[name])
    np.testing.assert_array_equal(resumed.test_accuracy, whole.test_accuracy)
    assert _results(tmp_path / "parts") == _results(tmp_path / "whole")
    meta = js.load_checkpoint(tmp_path / "parts" / "checkpoint.npz")[1]
    assert meta["logged"]["resumes"] == 1 and meta["logged"]["names"] == ["lr=0.002", "lr=0.005"]
    with pytest.raises(ConfigError, match="has finished"):
        js.train_logged(small, None, tmp_path / "parts", resume=True)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        js.train_logged(small, None, tmp_path / "nothing", resume=True)


def test_a_python_search_logs_its_choice_and_resumes_bitwise(small, tmp_path):
    space = parse_space("learning_rate=log:1e-3:1e-1 momentum=0:0.9")
    config = search_config(space, 9, validation=200, steps=90, eval_every=10, seed=1,
                           schedule="cosine", evaluate_test=False)  # fmt: skip
    halving = Halving(eta=3, min_steps=10)
    alone = HalvingSearch.start(small, config, halving)
    for _ in alone:
        pass
    expected = grid.run_names(config)[choose_trial(alone.result())]
    js.train_logged(small, config, tmp_path / "whole", halving=halving)
    document = _results(tmp_path / "whole")
    assert document["search"]["strategy"] == "halving"
    assert document["search"]["chosen"] == expected
    assert js.load_run(tmp_path / "whole").best().name == expected
    stopped = js.train_logged(small, config, tmp_path / "parts", halving=halving,
                              checkpoint_every=10, should_stop=_stopper(3))  # fmt: skip
    assert stopped.interrupted
    js.train_logged(small, None, tmp_path / "parts", resume=True)
    assert _results(tmp_path / "parts") == document


def test_autos_recipe_logged_from_python_is_js_auto(small, tmp_path):
    found = js.auto(small, time_budget=5, seed=2)
    result = js.train_logged(small, None, tmp_path / "auto", auto=5, seed=2)
    document = _results(tmp_path / "auto")
    assert document["auto"]["chosen"] == found.name
    assert document["auto"]["setting"] == found.setting
    assert [run["name"] for run in document["runs"]] == [found.name]
    assert result.test_accuracy[-1, 0] == pytest.approx(found.test_accuracy, abs=1e-6)
    choice = auto_search.search_and_choose(small, time_budget=5, seed=2)
    assert choice.retrain == result.config and choice.name == found.name
    assert js.load_run(tmp_path / "auto").best().name == found.name
