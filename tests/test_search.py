"""Searching: spaces, Sobol trials, the validation split, successive halving, resume.

Oracles: NumPy rankings of the recorded validation accuracies, each survivor trained
alone in a plain sweep, the batch indices themselves, and an uninterrupted search.
"""

import dataclasses

import numpy as np
import pytest

from jaxsoftmax.core import batches
from jaxsoftmax.errors import ConfigError
from jaxsoftmax.search import spaces as search
from jaxsoftmax.search.halving import HalvingSearch
from jaxsoftmax.search.runs import restore_run
from jaxsoftmax.sweep import checkpoint
from jaxsoftmax.sweep.config import SweepConfig
from jaxsoftmax.sweep.train import train_sweep

SPACE = "learning_rate=log:1e-4:30 weight_decay=log:1e-4:1 momentum=0:0.9"
HALVING = search.Halving(eta=3, min_steps=4)  # rungs at 4, 12, 36 steps: 27 -> 9 -> 3


def search_of(trials=27, steps=36, space=SPACE, **settings):
    settings = {"validation": 200, "eval_every": 4, "schedule": "cosine",
                "evaluate_test": False} | settings  # fmt: skip
    return search.search_config(search.parse_space(space), trials, steps=steps, **settings)


def run_search(dataset, trials):
    config = search_of(trials)
    run = HalvingSearch.start(dataset, config, HALVING)
    run.known_diverged = {}  # rung end -> the trials known to have diverged by then
    for report in run:
        end = int(report.steps[-1])
        known = run.known_diverged.setdefault(end, np.zeros(config.num_models, bool))
        known[report.models] |= report.diverged_at > 0
    return config, run


@pytest.fixture(scope="module")
def searched(small):
    """A finished halving search of 27 trials, some of which diverge (lr up to 30)."""
    return run_search(small, 27)


@pytest.fixture(scope="module")
def searched_unevenly(small):
    """20 trials: no rung's count divides by eta (20 -> 7 -> 3, rounding up)."""
    return run_search(small, 20)


# --- spaces and trials -------------------------------------------------------------------


def test_a_space_reads_lists_ranges_and_log_ranges():
    space = search.parse_space("learning_rate=log:1e-4:1 momentum=0:0.9 weight_decay=0,1e-3")
    assert space["learning_rate"] == search.Axis(low=1e-4, high=1.0, log=True)
    assert space["momentum"] == search.Axis(low=0.0, high=0.9)
    assert space["weight_decay"].values == (0.0, 1e-3)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "the search space is empty"),
        ("learning_rate", "is not AXIS=VALUES"),
        ("learning_rate=", "is not AXIS=VALUES"),
        ("momentum=0:0.9", "needs a learning_rate axis"),
        ("learning_rate=log:0:1", "a log range needs a start > 0"),
        ("learning_rate=1:0.1", "the range 1:0.1 is empty"),
        ("learning_rate=0.1:0.1", "is empty"),
        ("learning_rate=0.1 learning_rate=0.2", "given twice"),
        ("learning_rate=0.1 seed=0:3", "seed takes a list"),
        ("learning_rate=0.1 momentum=0:1.5", "momentum"),
        ("learning_rate=abc:1", "learning.rate"),
        ("learning_rate=-1:1", "learning rate -1 is not a positive"),
        ("learning_rate=0.1 depth=1:2", "unknown search axis depth"),
        ("learning_rate=0.1 depth=1,2", "depth"),
        ("learning_rate=inf:1", "learning.rate"),
    ],
)
def test_bad_spaces_are_one_clear_line(text, message):
    with pytest.raises(ConfigError, match=message) as caught:
        search.parse_space(text)
    assert "\n" not in str(caught.value)


def test_trials_are_seeded_sobol_points_in_their_ranges():
    space = search.parse_space("learning_rate=log:1e-4:1 momentum=0:0.9")
    trials = np.array(search.draw_trials(space, 64, seed=7))
    np.testing.assert_array_equal(trials, search.draw_trials(space, 64, seed=7))
    assert not np.array_equal(trials, search.draw_trials(space, 64, seed=8))
    rate, decay, momentum = trials.T
    assert (decay == 0).all()  # left out of the space
    # The first 2**m points of a scrambled Sobol sequence are a net: each 1/64 of each
    # axis (log scale for a log range) holds exactly one of 64 points.
    for values in (np.log(rate / 1e-4) / np.log(1e4), momentum / 0.9):
        assert sorted(np.floor(values * 64).astype(int)) == list(range(64))


def test_a_space_too_small_for_its_trials_says_so():
    with pytest.raises(ConfigError, match="holds only 2 settings"):
        search.draw_trials(search.parse_space("learning_rate=0.1,0.2"), 5, seed=0)
    with pytest.raises(ConfigError, match="repeats a setting"):  # 3 values, but drawn at random
        search.draw_trials(search.parse_space("learning_rate=0.1,0.2,0.3"), 3, seed=0)


def test_negative_seeds_draw_trials_too():
    space = search.parse_space("learning_rate=log:1e-4:1")
    drawn = search.draw_trials(space, 8, seed=-1)
    assert len(set(drawn)) == 8 and drawn != search.draw_trials(space, 8, seed=1)


# --- the validation split ----------------------------------------------------------------


def test_validation_examples_never_appear_in_a_training_batch(small):
    config = SweepConfig(learning_rates=(0.005,), steps=30, validation=300, seed=5)
    rest, held_out = small.split_validation(config.validation, config.seed)
    kept = np.setdiff1d(np.arange(len(small.train_images)), held_out)
    indices = batches.batch_indices(
        batches.shuffle_key(config.seed), 0, config.steps, len(rest.train_images),
        config.batch_size,
    )  # fmt: skip
    seen = kept[np.asarray(indices)]
    assert len(held_out) == 300 and not np.isin(seen, held_out).any()
    assert set(seen.ravel()) == set(kept)  # 30 steps: over four epochs of the 700 kept

    # Black box: garbage in the held-out examples changes the validation metrics only.
    images = small.train_images.copy()
    images[held_out] = 1.0
    labels = small.train_labels.copy()
    labels[held_out] = (labels[held_out] + 1) % 10
    poisoned = dataclasses.replace(small, train_images=images, train_labels=labels)
    clean, dirty = train_sweep(small, config), train_sweep(poisoned, config)
    for name in ("w", "b"):
        np.testing.assert_array_equal(clean.params[name], dirty.params[name])
    np.testing.assert_array_equal(clean.test_accuracy, dirty.test_accuracy)
    assert not np.array_equal(clean.validation_accuracy, dirty.validation_accuracy)


# --- successive halving ------------------------------------------------------------------


@pytest.mark.parametrize("fixture, counts", [("searched", [27, 9, 3]),
                                             ("searched_unevenly", [20, 7, 3])])  # fmt: skip
def test_halving_keeps_exactly_the_best_third_at_each_rung(request, fixture, counts):
    config, run = request.getfixturevalue(fixture)
    result, accuracy = run.result(), run.rung_accuracy
    rungs = HALVING.rungs(config.steps)
    assert rungs == [4, 12, 36]
    alive = np.isfinite(accuracy)
    # The oracle's counts, written out: the best ceil(n / 3) of n go on.
    assert alive[0].all() and alive.sum(axis=1).tolist() == counts
    assert (result.diverged_at > 0).any()
    for rung, end in enumerate(rungs[:-1]):
        ranked = np.flatnonzero(alive[rung])
        score = accuracy[rung, ranked]
        diverged = run.known_diverged[end][ranked]
        healthy = np.isfinite(score) & ~diverged  # a diverged trial never goes on
        order = np.lexsort((ranked, -np.where(healthy, score, -np.inf)))
        expected = np.sort(ranked[order[: counts[rung + 1]]])
        np.testing.assert_array_equal(np.flatnonzero(alive[rung + 1]), expected)
        stopped = ranked[~np.isin(ranked, expected)]
        assert (result.steps_done[stopped] == end).all()
        # The recorded rung accuracy is the trial's validation accuracy at the rung's end.
        at = np.flatnonzero(result.eval_steps == end)[0]
        np.testing.assert_array_equal(result.validation_accuracy[at, ranked], score)
    assert (result.steps_done[alive[-1]] == config.steps).all()


def train_alone(dataset, config, trial, rungs):
    """One trial trained by a float64 NumPy loop on the search's minibatches: at each rung
    its cosine schedule starts again over the rung's steps, momentum carried over."""
    rate, decay, momentum = trial
    rest, _ = dataset.split_validation(config.validation, config.seed)
    x = rest.train_images.reshape(len(rest.train_images), -1) / 255.0
    indices = np.asarray(batches.batch_indices(
        batches.shuffle_key(config.seed), 0, config.steps, len(x), config.batch_size
    ))  # fmt: skip
    w, b = np.zeros((x.shape[1], 10)), np.zeros(10)
    trace_w, trace_b = np.zeros_like(w), np.zeros_like(b)
    for begin, end in zip([0, *rungs[:-1]], rungs, strict=True):
        for t in range(begin, end):
            inputs, labels = x[indices[t]], rest.train_labels[indices[t]]
            logits = inputs @ w + b
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(labels)), labels] -= 1
            grad_w = config.loss_scale * inputs.T @ p / len(labels) + decay * w
            grad_b = config.loss_scale * p.mean(axis=0)
            trace_w, trace_b = grad_w + momentum * trace_w, grad_b + momentum * trace_b
            step = rate * 0.5 * (1 + np.cos(np.pi * (t - begin) / (end - begin)))
            w, b = w - step * trace_w, b - step * trace_b
    return w, b


def test_survivors_train_as_if_each_trained_alone(small, searched):
    config, run = searched
    result = run.result()
    finalists = run.finalists()
    assert len(finalists) == 3
    for k in finalists:
        w, b = train_alone(small, config, config.trials[k], HALVING.rungs(config.steps))
        assert np.abs(result.params["w"][k] - w).max() < 1e-5, k
        assert np.abs(result.params["b"][k] - b).max() < 1e-5, k
    others = np.setdiff1d(np.arange(config.num_models), finalists)
    assert np.isnan(result.params["w"][others]).all()


@pytest.mark.parametrize("stop_after", [2, 3, 7])  # within the first rung, at its end, later
def test_a_search_stopped_anywhere_resumes_bitwise(small, searched, tmp_path, stop_after):
    config, reference = searched
    run = HalvingSearch.start(small, config, HALVING)
    for done, _ in enumerate(run, start=1):
        if done == stop_after:
            break
    saved = run.checkpoint()
    path = tmp_path / "checkpoint.npz"
    checkpoint.save(path, saved)
    loaded, extra = checkpoint.load(path)
    assert isinstance(loaded, checkpoint.SearchCheckpoint) and extra == {}
    resumed = restore_run(small, loaded)
    assert isinstance(resumed, HalvingSearch)
    assert resumed.steps_trained == run.steps_trained
    for _ in resumed:
        pass
    expected, got = reference.result(), resumed.result()
    for name in ("w", "b"):
        np.testing.assert_array_equal(got.params[name], expected.params[name])
    for name in ("train_loss", "validation_accuracy", "steps_done", "diverged_at"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name))
    np.testing.assert_array_equal(resumed.rung_accuracy, reference.rung_accuracy)


def test_the_chosen_trial_is_the_best_finalist_on_validation_and_its_test_is_numpy(small, searched):
    config, run = searched
    result, chosen, per_run = search.conclude(run.result(), small, rung_accuracy=run.rung_accuracy)
    finals = result.validation_accuracy[-1]
    assert chosen in run.finalists()
    assert finals[chosen] == np.nanmax(finals[run.finalists()])
    w, b = (np.float64(result.params[name][chosen]) for name in ("w", "b"))
    logits = small.test_images.reshape(len(small.test_images), -1) / 255.0 @ w + b
    expected = (logits.argmax(axis=1) == small.test_labels).mean()
    assert result.test_accuracy[-1, chosen] == pytest.approx(expected, abs=1e-6)
    others = np.setdiff1d(np.arange(config.num_models), [chosen])
    assert np.isnan(result.test_accuracy[:, others]).all()
    assert len(per_run[chosen]["rung_validation_accuracy"]) == 3


def test_halving_rules(small):
    assert search.Halving(eta=3, min_steps=10).rungs(900) == [10, 30, 90, 270, 900]
    assert search.Halving(eta=3, min_steps=30).rungs(900) == [30, 90, 270, 900]
    assert search.Halving(eta=2, min_steps=5).survivors(9) == 5
    with pytest.raises(ConfigError, match="validation split"):
        HALVING.check(search_of(validation=0))
    with pytest.raises(ConfigError, match="multiple of `eval_every`"):
        search.Halving(eta=3, min_steps=6).check(search_of())
    with pytest.raises(ConfigError, match="is not below `steps`"):
        search.Halving(eta=3, min_steps=36).check(search_of())
    with pytest.raises(ConfigError, match="eta"):
        search.Halving(eta=1, min_steps=4)


def test_the_chosen_trial_finished_healthy_and_is_the_best_of_those_on_validation():
    """The rule alone, on a hand-made result (each trial ruled out one way): the best final
    validation accuracy among trials that took every step, did not diverge and have
    finite accuracy and weights; None when none qualifies. The same rule ranks for
    display (`rank_models`), best first, ties to the lower index."""
    from jaxsoftmax.sweep.results import SweepResult, rank_models

    finals = np.array([0.99, 0.98, 0.97, np.nan, 0.90, 0.95, 0.96])
    earlier = np.full(7, 0.999)  # a better accuracy before the end counts for nothing
    w = np.zeros((7, 2, 3), np.float32)
    w[2, 0, 0] = np.inf  # trial 2's weights are not finite
    config = SweepConfig(learning_rates=tuple(0.1 * (k + 1) for k in range(7)), steps=10,
                         eval_every=5, validation=10)  # fmt: skip
    nothing = np.zeros((2, 7), np.float32)
    result = SweepResult(
        config=config, params={"w": w, "b": np.zeros((7, 3), np.float32)},
        train_loss=np.zeros((10, 7)), train_accuracy=np.zeros((10, 7)),
        eval_steps=np.array([5, 10]), test_loss=nothing, test_accuracy=nothing,
        compile_s=0.0, train_s=0.0, validation_loss=nothing,
        validation_accuracy=np.stack([earlier, finals]),
        steps_done=np.array([4, 10, 10, 10, 10, 10, 10]),  # trial 0 stopped early
        diverged_at=np.array([0, 7, 0, 0, 0, 0, 0]),  # trial 1 diverged
    )  # fmt: skip
    assert search.choose_trial(result) == 6  # 6 (0.96) over 5 (0.95) and 4 (0.90)
    assert result.ranked().tolist() == [6, 5, 4]
    result.diverged_at[6] = 3
    assert search.choose_trial(result) == 5
    no_weights = dataclasses.replace(result, params=None)  # nothing shown finite
    assert search.choose_trial(no_weights) is None
    ties = rank_models([0.5, 0.7, 0.7, 0.2], finished=[True] * 4, diverged=[False] * 4)
    assert ties.tolist() == [1, 2, 0, 3]
    losses = rank_models([0.5, 0.7, 0.1], finished=[True] * 3, diverged=[0, 0, 1], larger=False)
    assert losses.tolist() == [0, 1]


def test_halvings_default_eta_is_3_and_it_never_keeps_more_trials_than_it_has():
    assert search.Halving(min_steps=10).rungs(270) == [10, 30, 90, 270]
    halving = search.Halving(eta=3, min_steps=4)
    assert [halving.survivors(n) for n in (1, 2, 3, 4, 7, 27)] == [1, 1, 1, 2, 3, 9]


# (5, 8, 8): a chunk of 8 x 5**2 = 200 steps is exactly DEFAULT_CHUNK_STEPS.
@pytest.mark.parametrize(
    "eta, min_steps, eval_every",
    [(3, 4, 4), (3, 10, 5), (2, 30, 10), (3, 25, 25), (4, 6, 3), (5, 8, 8)],
)
def test_each_rung_is_cut_into_the_largest_chunks_that_end_on_its_evaluations(
    eta, min_steps, eval_every
):
    """Oracle: of the chunk sizes min_steps * eta**j (j = 0, 1, ...), the largest such that
    every size up to it fits in DEFAULT_CHUNK_STEPS (or is min_steps), divides the
    rung's start and is a multiple of eval_every."""
    from jaxsoftmax.sweep.config import DEFAULT_CHUNK_STEPS

    halving = search.Halving(eta=eta, min_steps=min_steps)
    config = search_of(steps=min_steps * eta**4, eval_every=eval_every)
    for rung, end in enumerate(halving.rungs(config.steps)):
        start = halving.rungs(config.steps)[rung - 1] if rung else 0
        chunk = min_steps
        for j in range(1, 10):
            size = min_steps * eta**j
            if size > max(DEFAULT_CHUNK_STEPS, min_steps) or start % size or size % eval_every:
                break
            chunk = size
        rung_config = halving.rung_config(config, np.arange(3), rung)
        assert rung_config.chunk_steps == chunk, (rung, start)
        schedule_steps = halving.rung_training(config, rung)["schedule_steps"]
        assert (rung_config.steps, schedule_steps) == (end, end - start)


def test_finalists_are_none_until_the_last_rung_and_a_rung_end_makes_a_checkpoint_due(small):
    config = search_of(trials=9)
    run = HalvingSearch.start(small, config, HALVING)
    last = len(HALVING.rungs(config.steps)) - 1
    seen_rungs = set()
    for _ in run:
        seen_rungs.add(run.rung)
        found = run.finalists()
        if run.rung < last:
            assert found.dtype.kind == "i" and found.size == 0, run.rung
        else:
            np.testing.assert_array_equal(found, run.survivors)
        # Nothing saved yet: within the first rung no checkpoint of a long interval is
        # due; once a rung has ended, one is, however long the interval (the rung's end
        # is a state no checkpoint holds).
        assert run.checkpoint_due(10**6) == (run.rung > 0), run.rung
    assert seen_rungs == {0, 1, 2}
    np.testing.assert_array_equal(run.finalists(), run.survivors)
    assert len(run.finalists()) == 1


def test_a_diverged_trial_never_goes_on_even_with_a_finite_accuracy(small, searched, monkeypatch):
    """The divergence rule is replaced (mocked: a trial that diverges while its validation
    accuracy stays finite cannot be made to order) so that it marks the trial ranked first
    at the first rung as diverged at step 1; that trial must not reach the second rung."""
    from jaxsoftmax.sweep import divergence

    config, reference = searched
    first = reference.rung_accuracy[0]
    best = int(np.nanargmax(first))
    real_update = divergence.update

    def update(diverged_at, *args, **kwargs):
        found, rest = real_update(diverged_at, *args, **kwargs)
        if len(found) == config.num_models:  # the first rung's run: trials in order
            found = found.copy()
            found[best] = found[best] or 1
        return found, rest

    monkeypatch.setattr(divergence, "update", update)
    run = HalvingSearch.start(small, config, HALVING)
    for _ in run:
        if run.rung == 1:
            break
    assert np.isfinite(run.rung_accuracy[0, best])
    assert best not in run.survivors
    # The others keep their places: the best of the rest by accuracy go on.
    alive = np.isfinite(first) & (np.arange(len(first)) != best)
    alive &= ~reference.known_diverged[HALVING.rungs(config.steps)[0]]
    ranked = np.flatnonzero(alive)[np.argsort(-first[alive], kind="stable")]
    np.testing.assert_array_equal(run.survivors, np.sort(ranked[: len(run.survivors)]))
