"""Searching from the command line: results.json, TensorBoard, resume, --auto, mistakes.

Oracles: the trained run reloaded and evaluated in NumPy, TensorBoard's own reader, and
an uninterrupted search.
"""

import json
import random
import re
import signal
import time

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import jaxsoftmax as js
from jaxsoftmax.cli import train as cli
from jaxsoftmax.data.load import load_idx_folder
from jaxsoftmax.sweep import checkpoint
from tests.test_cli import run_main
from tests.test_reliability import (
    QUICK,
    interrupt_after_a_checkpoint,
    small_dir,
    start_training,
    write_rows_dataset,
)

__all__ = ["small_dir"]  # a fixture: 2,000 training and 1,000 test images as IDX files

SEARCH = ["--search", "learning_rate=log:1e-3:1e-1 momentum=0:0.9", "--trials", "27"]
SEARCH += ["--steps", "36", "--eval-every", "4", "--min-steps", "4", "--validation", "500"]


def events(folder):
    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def numpy_accuracy(model, dataset):
    images = dataset.test_images.reshape(len(dataset.test_images), -1) / 255.0
    logits = images @ np.float64(model.w) + np.float64(model.b)
    return (logits.argmax(axis=1) == dataset.test_labels).mean()


@pytest.fixture(scope="module")
def searched(small_dir, tmp_path_factory):
    """A halving search of 27 trials on 2,000 images: (logdir, results.json, stdout)."""
    logdir = tmp_path_factory.mktemp("search") / "run"
    argv = [
        *SEARCH,
        "--data-dir",
        str(small_dir),
        "--no-compilation-cache",
        "--logdir",
        str(logdir),
    ]
    with pytest.MonkeyPatch.context() as patch:
        import io
        import sys

        out = io.StringIO()
        patch.setattr(sys, "stdout", out)
        assert cli.main(argv) == 0
    return logdir, json.loads((logdir / "results.json").read_text()), out.getvalue()


def test_a_halving_search_records_every_trial_and_tests_the_chosen_one_alone(searched, small_dir):
    logdir, document, out = searched
    record = document["search"]
    assert record | {"chosen": None} == {
        "strategy": "halving",
        "trials": 27,
        "chosen": None,
        "eta": 3,
        "min_steps": 4,
        "rungs": [4, 12, 36],
    }
    runs = {run["name"]: run for run in document["runs"]}
    assert len(runs) == 27 and all(run["validation_accuracy"] is not None for run in runs.values())
    assert sorted(run["steps"] for run in runs.values()) == [4] * 18 + [12] * 6 + [36] * 3
    for run in runs.values():  # validation accuracy at each rung reached, None after
        rungs = run["rung_validation_accuracy"]
        reached = [4, 12, 36].index(run["steps"]) + 1
        assert all(v is not None for v in rungs[:reached]) and rungs[reached:] == [None] * (
            3 - reached
        )
        assert rungs[reached - 1] == pytest.approx(run["validation_accuracy"], abs=1e-6)
    finalists = [run for run in runs.values() if run["steps"] == 36]
    chosen = runs[record["chosen"]]
    assert chosen["validation_accuracy"] == max(run["validation_accuracy"] for run in finalists)
    assert [name for name, run in runs.items() if run["test_accuracy"] is not None] == [
        record["chosen"]
    ]
    trained = js.load_run(logdir)
    assert trained.best().name == record["chosen"]
    accuracy = numpy_accuracy(trained[record["chosen"]], load_idx_folder(small_dir))
    assert chosen["test_accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert "stopped after 4 of 36 steps" in out and f"{record['chosen']} " in out
    assert out.splitlines()[-1] == (
        f"chosen {record['chosen']}: validation accuracy {chosen['validation_accuracy']:.2%} "
        f"(best of 27 trials), test accuracy {chosen['test_accuracy']:.2%}"
    )


def test_tensorboard_shows_every_trial_in_hparams_and_the_finalists_curves(searched):
    logdir, document, _ = searched
    for run in document["runs"]:
        accumulator = events(logdir / run["name"])
        steps = accumulator.Scalars("hparams/steps_trained")[-1].value
        assert steps == run["steps"]
        assert "_hparams_/session_start_info" in accumulator.PluginTagToContent("hparams")
        validation = logdir / run["name"] / "validation"
        if run["steps"] == 36:
            curve = events(validation).Scalars("validation/accuracy")
            assert [e.step for e in curve] == list(range(4, 37, 4))
            assert curve[-1].value == pytest.approx(run["validation_accuracy"], abs=1e-7)
        else:
            assert not validation.exists()
    # A search evaluates only the validation split while it runs: no empty test charts.
    from tests.test_summaries import layout_charts

    assert set(layout_charts(logdir)) == {
        "validation accuracy", "validation loss",
        "training loss (minibatch)", "training accuracy (minibatch)",
    }  # fmt: skip


def test_the_report_of_a_search_ranks_and_draws_on_validation(searched, tmp_path):
    pytest.importorskip("matplotlib")
    from jaxsoftmax.outputs import runlogs
    from jaxsoftmax.plots import figures, report

    logdir, document, _ = searched
    notes = []
    paths = report.write_figures(logdir, tmp_path, report=notes.append)
    assert {path.name for path in paths} >= {"loss.png", "accuracy.png"}
    settings = runlogs.group_settings(runlogs.run_logs(runlogs.read_results(logdir)))
    drawn = [report._read_events(logdir, s) for s in runlogs.drawable(settings)]
    drawn = [s for s in drawn if s.runs[0].curves]
    finalists = {run["name"] for run in document["runs"] if run["steps"] == 36}
    assert {s.runs[0].name for s in drawn} == finalists  # the trials whose curves were logged
    figure = figures.accuracy_figure(drawn, runlogs.note_on(settings, drawn))
    _, validation_axes = figure.axes
    assert validation_axes.get_title() == "validation accuracy (whole validation split)"
    for line in validation_axes.lines:  # each the trial's logged validation curve
        run = next(run for run in document["runs"] if run["name"] == line.get_label())
        assert line.get_ydata()[-1] == pytest.approx(run["validation_accuracy"], abs=1e-7)
    assert len(validation_axes.lines) == len(finalists)
    assert "by final validation accuracy" in figure.get_suptitle()
    vs_rate = figures.accuracy_vs_learning_rate_figure(settings).axes[0]
    assert vs_rate.get_ylabel() == "final validation accuracy"


def test_a_search_stopped_by_a_signal_resumes_to_the_same_results(small_dir, cli_env, tmp_path):
    seed = random.randrange(10**6)
    argv = [*SEARCH[:-6], "--steps", "900", "--eval-every", "20", "--min-steps", "100"]
    argv += ["--validation", "500", "--checkpoint-every", "50", "--data-dir", str(small_dir)]
    reference = tmp_path / "reference"
    assert cli.main([*argv, *QUICK, "--logdir", str(reference)]) == 0
    logdir = tmp_path / "stopped"
    process = start_training([*argv, "--logdir", str(logdir)], cli_env | {"PYTHONUNBUFFERED": "1"})
    err = interrupt_after_a_checkpoint(
        process, logdir / checkpoint.CHECKPOINT_FILE, signal.SIGINT, random.Random(seed)
    )
    assert process.returncode == 130, f"seed {seed}: {err}"
    assert re.search(r"interrupted after \d+ of 900 steps", err), err
    assert cli.main(["--resume", str(logdir), *QUICK]) == 0
    got, expected = (json.loads((f / "results.json").read_text()) for f in (logdir, reference))
    assert got["runs"] == expected["runs"], f"seed {seed}"
    assert got["search"] == expected["search"]
    finished = np.load(logdir / checkpoint.CHECKPOINT_FILE)
    wanted = np.load(reference / checkpoint.CHECKPOINT_FILE)
    for name in ("extra_params_w", "extra_params_b", "extra_rung_accuracy"):
        np.testing.assert_array_equal(finished[name], wanted[name], err_msg=f"seed {seed}")


def test_a_random_search_trains_every_trial_to_the_end(small_dir, tmp_path, capsys):
    logdir = tmp_path / "random"
    argv = [*SEARCH[:4], "--trials", "6", "--strategy", "random", "--steps", "20"]
    argv += ["--eval-every", "10", "--validation", "400", "--data-dir", str(small_dir), *QUICK]
    assert run_main([*argv, "--logdir", str(logdir)], capsys)[0] == 0
    document = json.loads((logdir / "results.json").read_text())
    assert document["search"]["strategy"] == "random"
    assert [run["steps"] for run in document["runs"]] == [20] * 6
    best = max(run["validation_accuracy"] for run in document["runs"])
    chosen = next(run for run in document["runs"] if run["name"] == document["search"]["chosen"])
    assert chosen["validation_accuracy"] == best and chosen["test_accuracy"] is not None


def test_auto_chooses_on_validation_retrains_and_says_so(small_dir, tmp_path, capsys):
    logdir = tmp_path / "auto"
    argv = ["--auto", "--time-budget", "1", "--data-dir", str(small_dir), *QUICK]
    status, out, err = run_main([*argv, "--logdir", str(logdir)], capsys)
    assert status == 0, err
    document = json.loads((logdir / "results.json").read_text())
    found = document["auto"]
    assert found["validation"] == 2000 // 6 and found["retrain"]["training_images"] == 2000
    assert found["validation_accuracy"] == found["finalists"][0]["validation_accuracy"]
    assert found["chosen"] == found["finalists"][0]["name"]
    (run,) = document["runs"]
    assert run["name"] == found["chosen"] and run["steps"] == found["retrain"]["steps"]
    last = out.strip().splitlines()[-1]
    assert last == (
        f"chosen {found['chosen']}: validation accuracy {found['validation_accuracy']:.2%} "
        f"(search of {found['trials']} settings), test accuracy {run['test_accuracy']:.2%} "
        "(retrained on all 2000 training images)"
    )
    model = js.load_run(logdir)[found["chosen"]]
    accuracy = numpy_accuracy(model, load_idx_folder(small_dir))
    assert run["test_accuracy"] == pytest.approx(accuracy, abs=1e-6)
    # The model --auto chose on validation is the run's best, in Python and in predict.
    assert js.load_run(logdir).best().name == found["chosen"]
    from jaxsoftmax.cli import predict

    image = tmp_path / "digit.npy"
    np.save(image, load_idx_folder(small_dir).test_images[:3])
    capsys.readouterr()
    assert predict.main([str(logdir), str(image), "--best", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["run"] == found["chosen"]


def test_auto_works_for_other_image_sizes_and_class_counts(tmp_path, capsys):
    folder = write_rows_dataset(tmp_path / "rows")
    logdir = tmp_path / "auto"
    argv = ["--auto", "--time-budget", "1", "--data-dir", str(folder), *QUICK]
    status, out, err = run_main([*argv, "--logdir", str(logdir)], capsys)
    assert status == 0, err
    (run,) = json.loads((logdir / "results.json").read_text())["runs"]
    assert run["test_accuracy"] > 0.95 and "test accuracy" in out.splitlines()[-1]
    model = js.load_run(logdir)[run["name"]]
    assert model.image_shape == (6, 5) and model.w.shape == (30, 3)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--trials", "5"], "--trials is for --search"),
        (["--eta", "2"], "--eta is for --strategy halving"),
        (["--time-budget", "5"], "--time-budget is for --auto"),
        (["--auto", "--steps", "10"], "--auto chooses --steps itself"),
        (["--auto", "--validation", "100"], "--auto chooses --validation itself"),
        (["--auto", "--learning-rates", "0.1"], "--auto chooses --learning-rates itself"),
        (["--auto", "--time-budget", "0"], "--time-budget"),
        ([*SEARCH[:2], "--strategy", "random", "--min-steps", "4"], "--min-steps is for --strat"),
        ([*SEARCH[:2], "--grid", "momentum=0,0.9"], "not both"),
        ([*SEARCH[:2], "--learning-rates", "0.1"], "not both"),
        (
            [*SEARCH[:2], "--steps", "30", "--eval-every", "4", "--min-steps", "6"],
            "--min-steps 6 must be a multiple of --eval-every 4",
        ),
        ([*SEARCH[:2], "--min-steps", "1000"], "is not below --steps"),
        ([*SEARCH[:2], "--validation", "0"], "validation split"),
        ([*SEARCH[:2], "--strategy", "random", "--validation", "0"], "validation split"),
        (["--search", "learning_rate=log:1e-3:1 seed=0,1"], "one seed"),
        (["--search", "learning_rate=log:1e-3:1", "--trials", "0"], "--trials"),
        (["--search", "learning_rate=0.1,0.2", "--trials", "3"], "holds only 2 settings"),
        (["--search", "momentum=0:0.9"], "needs a learning_rate axis"),
    ],
)
def test_search_mistakes_are_one_line(argv, message, capsys, tmp_path):
    status, _, err = run_main([*argv, "--logdir", str(tmp_path / "run"), *QUICK], capsys)
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert "`" not in err, err  # the library's parameter names, in the command line's flags
    assert not (tmp_path / "run").exists()


def test_a_validation_split_larger_than_the_data_is_one_line(small_dir, capsys, tmp_path):
    argv = [*SEARCH, "--validation", "2000", "--data-dir", str(small_dir), *QUICK]
    status, _, err = run_main([*argv, "--logdir", str(tmp_path / "run")], capsys)
    assert status == 2 and "leaves no training examples" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_auto_refuses_a_logdir_holding_a_run_before_it_searches(small_dir, capsys, tmp_path):
    taken = tmp_path / "run"
    taken.mkdir()
    (taken / "results.json").write_text("{}")
    argv = ["--auto", "--data-dir", str(small_dir), "--logdir", str(taken), *QUICK]
    began = time.perf_counter()
    status, _, err = run_main(argv, capsys)
    assert status == 2 and "already holds a run" in err and len(err.strip().splitlines()) == 1
    assert "searching" not in err and time.perf_counter() - began < 10
    assert (taken / "results.json").read_text() == "{}"


def test_checkpoints_from_before_searches_still_resume():
    """The command line's settings as 05a549c saved them: no search fields."""
    from jaxsoftmax.cli.settings import Settings

    older = {"run_names": ["lr=0.1"], "dataset": "mnist", "source": "idx", "data_dir": None,
             "num_classes": None, "summaries": True, "checkpoint_every": 100,
             "resumes": 0}  # fmt: skip
    settings = Settings.from_checkpoint({"settings": older}, 1, "checkpoint.npz")
    assert settings.strategy is None and settings.halving() is None and settings.auto is None
    assert settings.resumes == 1 and settings.run_names == ("lr=0.1",)
    with pytest.raises(js.CheckpointError, match="not written by the command line"):
        Settings.from_checkpoint({"settings": older | {"extra": 1}}, 1, "checkpoint.npz")
