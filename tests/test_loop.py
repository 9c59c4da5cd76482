"""The host loop a caller drives: reports per chunk, stopping, checkpoints, and resuming."""

import dataclasses

import jax
import numpy as np
import pytest

import jaxsoftmax as js
from jaxsoftmax.core import engine
from jaxsoftmax.data import load as data
from jaxsoftmax.errors import CheckpointError
from jaxsoftmax.sweep import checkpoint
from jaxsoftmax.sweep.plan import SHORT_STEPS, SMALL_PROGRAM_OPTIONS, compiler_options


def train_to_the_end(run: js.SweepRun) -> js.SweepResult:
    for _ in run:
        pass
    return run.result()


def test_the_loop_reports_every_step_once_and_equals_train_sweep(small):
    config = js.SweepConfig(learning_rates=(0.002, 0.008), steps=45, eval_every=10, chunk_steps=20)
    run = js.SweepRun.start(small, config)
    reports = list(run)
    steps = np.concatenate([report.steps for report in reports])
    np.testing.assert_array_equal(steps, np.arange(1, 46))
    evaluated = np.concatenate([report.eval_steps for report in reports])
    np.testing.assert_array_equal(evaluated, [10, 20, 30, 40, 45])
    assert [report.finished for report in reports] == [False, False, True]
    assert run.finished and run.steps_trained == run.total_steps == 45
    result, whole = run.result(), js.train_sweep(small, config)
    assert not result.interrupted
    for name in ("w", "b"):
        np.testing.assert_array_equal(result.params[name], whole.params[name])
        np.testing.assert_array_equal(reports[-1].params[name], whole.params[name])
    np.testing.assert_array_equal(result.test_accuracy, whole.test_accuracy)


def test_breaking_out_stops_there_and_a_saved_checkpoint_goes_on_bitwise(small, tmp_path):
    config = js.SweepConfig(
        learning_rates=(0.002, 0.008), seeds=(0, 1), steps=60, eval_every=10, chunk_steps=20,
        init_scale=0.01, momenta=(0.0, 0.9),
    )  # fmt: skip
    whole = js.train_sweep(small, config, max_models_per_program=4)
    plan = js.make_plan(config, small, max_models_per_slice=4)
    assert plan.num_slices == 2
    run = js.SweepRun.start(small, config, plan)
    for report in run:
        if report.steps[-1] == 20 and report.models[0] == 4:  # the second slice, first chunk
            break
    stopped = run.result()
    assert stopped.interrupted and stopped.steps_done.tolist() == [60] * 4 + [20] * 4
    assert run.steps_trained == 80 and run.total_steps == 120
    path = tmp_path / "checkpoint.npz"
    js.save_checkpoint(path, run.checkpoint())
    saved, _ = js.load_checkpoint(path)
    assert (saved.slice_index, saved.step) == (1, 20)
    resumed = train_to_the_end(js.SweepRun.restore(small, saved))
    assert not resumed.interrupted
    for name in ("w", "b"):
        np.testing.assert_array_equal(resumed.params[name], whole.params[name])
    np.testing.assert_array_equal(resumed.train_loss, whole.train_loss)
    np.testing.assert_array_equal(resumed.test_loss, whole.test_loss)


@pytest.fixture(scope="module")
def square(small):
    """As many classes as pixels (4 of each): weights (4, 4), so a transposed copy of
    them has the right shape and would load without complaint."""
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, 800).astype(np.uint8)
    images = (rng.random((800, 2, 2)) * 80).astype(np.uint8)
    images.reshape(800, 4)[np.arange(800), labels] = 255  # class c lights pixel c
    return data.make_dataset(
        name="square", train_images=images[:600], train_labels=labels[:600],
        test_images=images[600:], test_labels=labels[600:], origin="test",
    )  # fmt: skip


@pytest.mark.parametrize("layout", engine.LAYOUTS)
def test_a_checkpoint_resumes_in_the_layout_it_was_written_in(square, tmp_path, layout):
    """The layout is part of the plan saved with the checkpoint: a run written on one
    backend's layout goes on in it, never reading its weights the other way round."""
    config = js.SweepConfig(learning_rates=(0.05, 0.2), steps=40, eval_every=10, chunk_steps=10)
    plan = js.make_plan(config, square, layout=layout)
    whole = train_to_the_end(js.SweepRun.start(square, config, plan))
    run = js.SweepRun.start(square, config, plan)
    for report in run:
        if report.steps[-1] == 20:
            break
    path = tmp_path / "checkpoint.npz"
    js.save_checkpoint(path, run.checkpoint())
    saved, _ = js.load_checkpoint(path)
    assert saved.plan.layout == layout
    resumed = train_to_the_end(js.SweepRun.restore(square, saved))
    for name in ("w", "b"):
        np.testing.assert_array_equal(resumed.params[name], whole.params[name])
    assert resumed.test_accuracy[-1].min() > 0.9
    # The same saved numbers read in the other layout are other weights: the recorded
    # layout is what makes the resume right.
    other = engine.FEATURE_MAJOR if layout == engine.CLASS_MAJOR else engine.CLASS_MAJOR
    misread = dataclasses.replace(saved, plan=dataclasses.replace(saved.plan, layout=other))
    wrong = train_to_the_end(js.SweepRun.restore(square, misread))
    assert np.abs(wrong.params["w"] - whole.params["w"]).max() > 1e-3


def test_a_checkpoint_past_its_last_slice_is_refused_not_resumed_into_nothing(small):
    config = js.SweepConfig(learning_rates=(0.002,), steps=20, eval_every=10, chunk_steps=10)
    states = []
    js.train_sweep(small, config, checkpoint_every=10, on_checkpoint=states.append)
    first = states[0]
    assert (first.slice_index, first.step) == (0, 10)
    for wrong in (
        dataclasses.replace(first, slice_index=3, step=0, state=None),
        dataclasses.replace(first, step=7),
    ):
        with pytest.raises(CheckpointError, match="damaged"):
            js.SweepRun.restore(small, wrong)


def test_a_checkpoint_of_other_data_is_refused(small):
    config = js.SweepConfig(learning_rates=(0.002,), steps=20, eval_every=10, chunk_steps=10)
    states = []
    js.train_sweep(small, config, checkpoint_every=10, on_checkpoint=states.append)
    images = small.train_images.copy()
    images[(0,) * images.ndim] ^= 1  # one pixel of one image
    other = dataclasses.replace(small, train_images=images)
    assert other.fingerprint() != small.fingerprint() == dataclasses.replace(small).fingerprint()
    with pytest.raises(CheckpointError, match="other data"):
        js.SweepRun.restore(other, states[0])
    js.SweepRun.restore(dataclasses.replace(small), states[0])  # equal data, a new object


def test_a_plan_for_another_sweep_is_refused(small):
    config = js.SweepConfig(learning_rates=(0.002,), steps=20)
    plan = js.make_plan(js.SweepConfig(learning_rates=(0.1, 0.2), steps=20), small)
    with pytest.raises(js.ConfigError, match="another sweep"):
        js.SweepRun.start(small, config, plan)


def test_the_checkpoint_file_records_the_plan_and_its_layout(small, tmp_path):
    config = js.SweepConfig(learning_rates=(0.002,), steps=20, eval_every=10)
    path = tmp_path / "c.npz"
    js.train_sweep(small, config, on_checkpoint=lambda state: checkpoint.save(path, state))
    import json

    with np.load(path) as archive:
        meta = json.loads(archive["meta"].tobytes())
    assert meta["version"] == checkpoint.VERSION == 2
    assert meta["plan"]["layout"] in engine.LAYOUTS
    assert meta["plan"]["chunks"] == [[2, 10]]


def test_iterating_again_after_a_break_goes_on_where_it_stopped(small):
    config = js.SweepConfig(learning_rates=(0.002, 0.008), steps=40, eval_every=10, chunk_steps=10)
    run = js.SweepRun.start(small, config)
    for report in run:
        if report.steps[-1] == 20:
            break
    again = [report.steps[0] for report in run]
    assert again == [21, 31] and run.finished  # not from step 1 again
    whole = js.train_sweep(small, config)
    np.testing.assert_array_equal(run.result().params["w"], whole.params["w"])


def test_restore_keeps_or_drops_final_parameters_as_asked(small):
    config = js.SweepConfig(learning_rates=(0.002, 0.008), steps=20, eval_every=10, chunk_steps=10)
    states = []
    js.train_sweep(small, config, checkpoint_every=10, on_checkpoint=states.append)
    with_params = states[0]
    assert with_params.progress.params is not None
    dropped = js.train_sweep(small, config, resume=with_params, keep_params=False)
    assert dropped.params is None
    without = dataclasses.replace(
        with_params, progress=dataclasses.replace(with_params.progress, params=None)
    )
    kept = js.train_sweep(small, config, resume=without, keep_params=True)
    np.testing.assert_array_equal(kept.params["w"], js.train_sweep(small, config).params["w"])


def test_a_hand_cut_plan_is_refused_before_training(small):
    config = js.SweepConfig(learning_rates=(0.001, 0.002, 0.004, 0.008), steps=20)
    plan = js.make_plan(config, small)
    odd = dataclasses.replace(plan, settings_per_slice=2, slice_settings=2)  # not make_plan's
    with pytest.raises(js.ConfigError, match="do not follow from its numbers"):
        js.SweepRun.start(small, config, odd)


def test_small_programs_compile_with_older_cpu_emitters_and_train_the_same(small, monkeypatch):
    config = js.SweepConfig(learning_rates=(0.002, 0.008), steps=30, eval_every=10)
    run = js.SweepRun.start(small, config)
    assert compiler_options(run.plan, "cpu") == SMALL_PROGRAM_OPTIONS
    assert compiler_options(run.plan, "gpu") == {}
    one = dataclasses.replace(run.plan, num_devices=1, slice_seeds=1)
    assert compiler_options(dataclasses.replace(one, slice_settings=8), "cpu") == {}
    spread = dataclasses.replace(one, num_devices=4, slice_settings=16)  # 4 a device
    assert compiler_options(spread, "cpu") == SMALL_PROGRAM_OPTIONS
    long = dataclasses.replace(one, chunks=((SHORT_STEPS // 10 + 1, 10),))
    assert compiler_options(long, "cpu") == {}
    slices = dataclasses.replace(one, chunks=((SHORT_STEPS // 40, 10),))  # a quarter each
    assert compiler_options(slices, "cpu") == SMALL_PROGRAM_OPTIONS
    four = dataclasses.replace(slices, num_settings=8, settings_per_slice=2, slice_settings=2)
    assert four.num_slices == 4 and compiler_options(four, "cpu") == SMALL_PROGRAM_OPTIONS
    five = dataclasses.replace(four, num_settings=10)
    assert five.num_slices == 5 and compiler_options(five, "cpu") == {}
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=true")
    assert compiler_options(run.plan, "cpu") == {}  # the user's choice stands
    monkeypatch.delenv("XLA_FLAGS")

    asked = []  # what reaches XLA
    compile_program = jax.stages.Lowered.compile

    def recorded(self, compiler_options=None, **kwargs):
        asked.append(compiler_options)
        return compile_program(self, compiler_options, **kwargs)

    monkeypatch.setattr(jax.stages.Lowered, "compile", recorded)
    older = train_to_the_end(run)
    assert asked == [SMALL_PROGRAM_OPTIONS]
    monkeypatch.setattr("jaxsoftmax.sweep.plan.SMALL_PROGRAM_OPTIONS", {})
    default = js.train_sweep(small, config)
    assert asked[1:] == [{}]
    for name in ("w", "b"):  # the same models, to float rounding
        np.testing.assert_allclose(older.params[name], default.params[name], rtol=0, atol=1e-6)
    np.testing.assert_allclose(older.test_loss, default.test_loss, rtol=1e-6)
    np.testing.assert_allclose(older.test_accuracy, default.test_accuracy, rtol=0, atol=1e-4)
    # An XLA without the option (a later version may drop it) compiles without it.
    unknown = {"xla_cpu_no_such_option": False}
    monkeypatch.setattr("jaxsoftmax.sweep.plan.SMALL_PROGRAM_OPTIONS", unknown)
    without = js.train_sweep(small, config)
    assert asked[2:] == [unknown, None]
    for name in ("w", "b"):
        np.testing.assert_array_equal(without.params[name], default.params[name])
