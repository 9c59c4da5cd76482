"""Figures of a real short run: read from its events, written as PNGs, mistakes in one line."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")
from PIL import Image  # pillow comes with matplotlib
from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader
from tensorboardX import SummaryWriter
from tensorboardX.proto.summary_pb2 import Summary

from jaxsoftmax import cli, report, summaries

LABELS = ["0.002", "0.005"]
STEPS, EVAL_EVERY = 20, 5
NOTF = "tensorboard.compat.notf"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, mnist_dir):
    """A real 20-step run of two learning rates on MNIST, as the command line writes it."""
    logdir = tmp_path_factory.mktemp("report") / "run"
    argv = f"--steps {STEPS} --eval-every {EVAL_EVERY} --quiet --no-compilation-cache".split()
    argv += ["--learning-rates", ",".join(LABELS), "--logdir", str(logdir)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JAXSOFTMAX_DATA_DIR", str(mnist_dir.parent))
        patch.setenv("XDG_CACHE_HOME", str(logdir.parent / "cache"))
        assert cli.main(argv) == 0
    return logdir


@pytest.fixture(scope="module")
def results(run_dir):
    return json.loads((run_dir / "results.json").read_text())


@pytest.fixture(scope="module")
def scalars_only(run_dir, tmp_path_factory):
    """The run with only its train/test scalars and results.json, as before weights were logged."""
    copy = tmp_path_factory.mktemp("scalars_only") / "run"
    for label in LABELS:
        for split in ("train", "test"):
            events = summaries.EventFile(copy / f"lr={label}" / split)
            for path in sorted((run_dir / f"lr={label}" / split).glob("events.*")):
                for event in LegacyEventFileLoader(str(path)).Load():
                    if event.HasField("summary") and not any(
                        value.HasField("image") for value in event.summary.value
                    ):
                        # TensorBoard's proto to tensorboardX's twin, through bytes.
                        proto = Summary.FromString(event.summary.SerializeToString())
                        events.add(proto, event.step)
            events.close()
    shutil.copy(run_dir / "results.json", copy / "results.json")
    return copy


@pytest.fixture(autouse=True)
def _forget_the_tensorflow_switch():
    """main() tells TensorBoard not to import TensorFlow; keep that out of other test modules."""
    had_it = NOTF in sys.modules
    yield
    if not had_it:
        sys.modules.pop(NOTF, None)


def run_main(argv, capsys):
    """Runs the report command in this process; returns (exit status, stdout, stderr)."""
    try:
        status = report.main([str(arg) for arg in argv])
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def test_load_runs_reads_every_step_and_evaluation(run_dir, results):
    runs = report.load_runs(run_dir)
    assert [run.label for run in runs] == LABELS
    assert [run.learning_rate for run in runs] == [0.002, 0.005]
    for run, expected in zip(runs, results["runs"], strict=True):
        for curve in (run.train_loss, run.train_accuracy):
            assert curve.steps.tolist() == list(range(1, STEPS + 1))
        for curve in (run.test_loss, run.test_accuracy):
            assert curve.steps.tolist() == [5, 10, 15, 20]
        assert run.test_accuracy.values[-1] == pytest.approx(expected["test_accuracy"], abs=1e-6)
        assert run.test_loss.values[-1] == pytest.approx(expected["test_loss"], rel=1e-5)
        assert run.train_loss.values[-1] == pytest.approx(expected["train_loss"], rel=1e-5)
        # Zero weights predict uniformly: the first step's loss is 100 ln 10 for every rate.
        assert run.train_loss.values[0] == pytest.approx(100 * np.log(10), rel=1e-5)


def test_write_figures_writes_readable_deterministic_pngs(scalars_only, tmp_path):
    paths = report.write_figures(scalars_only, tmp_path / "first")
    names = ["loss.png", "accuracy.png", "accuracy_vs_learning_rate.png"]
    assert paths == [tmp_path / "first" / name for name in names]
    sizes = {"loss.png": (1000, 400), "accuracy.png": (1000, 400)}
    sizes["accuracy_vs_learning_rate.png"] = (600, 400)
    for path in paths:
        with Image.open(path) as image:
            image.verify()
            assert image.format == "PNG" and image.size == sizes[path.name]
            assert "Software" not in image.info  # no matplotlib version to churn diffs
    again = report.write_figures(scalars_only, tmp_path / "second")
    assert [path.read_bytes() for path in again] == [path.read_bytes() for path in paths]


def test_the_curves_drawn_are_the_events(run_dir):
    runs = report.load_runs(run_dir)
    figure = report.loss_figure(runs)
    train_axes, test_axes = figure.axes
    assert train_axes.get_yscale() == "log"
    for run in runs:
        # 20 steps are too few to smooth: the training curve is drawn as logged.
        drawn = {line.get_label(): line for line in train_axes.lines}
        assert set(drawn) == set(LABELS)
        np.testing.assert_array_equal(drawn[run.label].get_xdata(), run.train_loss.steps)
        np.testing.assert_array_equal(drawn[run.label].get_ydata(), run.train_loss.values)
        tested = {line.get_label(): line for line in test_axes.lines}[run.label]
        np.testing.assert_array_equal(tested.get_xdata(), [5, 10, 15, 20])
        np.testing.assert_array_equal(tested.get_ydata(), run.test_loss.values)
    assert [text.get_text() for text in test_axes.get_legend().get_texts()] == LABELS

    bottom, top = report.accuracy_figure(runs).axes[0].get_ylim()
    assert top == 1.0 and bottom <= 0.8
    assert bottom <= min(run.test_accuracy.values[-1] for run in runs) - 0.05

    axes = report.accuracy_vs_learning_rate_figure(runs).axes[0]
    assert axes.get_xscale() == "log"
    points = np.concatenate([collection.get_offsets() for collection in axes.collections])
    finals = [[run.learning_rate, run.test_accuracy.values[-1]] for run in runs]
    np.testing.assert_allclose(points, finals)


def test_long_training_curves_are_smoothed_over_their_faint_raw_values():
    steps = np.arange(1, 1001)
    noisy = report.Curve(steps, np.random.default_rng(2).uniform(0.8, 1.0, size=steps.size))
    test = report.Curve(steps[9::10], np.linspace(0.85, 0.92, 100))
    run = report.RunLog(
        label="0.005",
        learning_rate=0.005,
        train_loss=noisy,
        train_accuracy=noisy,
        test_loss=test,
        test_accuracy=test,
    )
    train_axes = report.accuracy_figure([run]).axes[0]
    drawn = {line.get_label(): line for line in train_axes.lines}
    assert set(drawn) == {"0.005", "_0.005 raw"}
    np.testing.assert_array_equal(drawn["_0.005 raw"].get_ydata(), noisy.values)
    np.testing.assert_allclose(drawn["0.005"].get_ydata(), report.smooth(noisy.values, 0.9))
    assert drawn["_0.005 raw"].get_alpha() < 1 and "moving average" in train_axes.get_title()


def test_smooth_is_tensorboards_debiased_moving_average():
    values = np.random.default_rng(0).normal(size=50)
    weight = 0.9
    expected = [
        np.average(values[: i + 1], weights=weight ** np.arange(i, -1, -1))
        for i in range(len(values))
    ]
    np.testing.assert_allclose(report.smooth(values, weight), expected, rtol=1e-12)
    np.testing.assert_allclose(report.smooth(np.full(10, 3.5), weight), np.full(10, 3.5))
    np.testing.assert_array_equal(report.smooth(values, 0.0), values)


def test_smoothing_spans_one_percent_of_the_steps():
    assert report.smoothing_weight(1000) == pytest.approx(0.9)  # a window of 10 steps
    assert report.smoothing_weight(STEPS) == 0.0  # a short run is drawn as it is


def test_without_weight_images_the_figure_is_skipped_with_a_note(scalars_only, capsys):
    status, stdout, stderr = run_main([scalars_only], capsys)
    assert status == 0, stderr
    out = scalars_only / "figures"  # the default --out
    names = ["loss.png", "accuracy.png", "accuracy_vs_learning_rate.png"]
    assert stdout.splitlines() == [str(out / name) for name in names]
    assert all((out / name).is_file() for name in names)
    assert stderr == "note: no 'weights' image in lr=0.002, lr=0.005; weights.png skipped\n"
    assert not (out / "weights.png").exists()


def test_weight_templates_are_the_last_logged_step(scalars_only, tmp_path):
    logdir = tmp_path / "run"
    shutil.copytree(scalars_only, logdir)
    rng = np.random.default_rng(1)
    last = {}
    for label in LABELS:
        with SummaryWriter(str(logdir / f"lr={label}" / "train")) as writer:
            for step in (10, 20):
                templates = rng.integers(0, 256, size=(30, 300, 3), dtype=np.uint8)
                writer.add_image("weights", templates, step, dataformats="HWC")
            last[label] = templates
    runs = report.load_runs(logdir)
    for run in runs:
        assert run.weights_step == 20
        np.testing.assert_array_equal(run.weights_image, last[run.label])  # PNG is lossless

    figure = report.weights_figure(runs)
    assert [axes.images[0].get_array().shape for axes in figure.axes] == [(30, 300, 3)] * 2
    paths = report.write_figures(logdir, tmp_path / "figures")
    assert tmp_path / "figures" / "weights.png" in paths
    with Image.open(tmp_path / "figures" / "weights.png") as image:
        assert image.format == "PNG" and image.size[0] == 1000


def test_an_unwritable_out_dir_is_one_line_and_exit_1(scalars_only, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    status, stdout, stderr = run_main([scalars_only, "--out", blocker], capsys)
    assert status == 1 and stdout == ""
    assert (
        stderr.startswith(f"error: cannot write figures to {blocker}") and stderr.count("\n") == 1
    )


@pytest.mark.parametrize("layout", ["missing", "empty", "lr folder without events"])
def test_a_folder_without_a_run_is_one_line_and_exit_1(tmp_path, capsys, layout):
    logdir = tmp_path / "log"
    if layout != "missing":
        logdir.mkdir()
    if layout == "lr folder without events":
        (logdir / "lr=0.1" / "train").mkdir(parents=True)
    status, stdout, stderr = run_main([logdir], capsys)
    assert status == 1 and stdout == ""
    assert stderr == (
        f"error: {logdir} holds no jaxsoftmax run (no lr=*/train events); "
        f"train one with python -m jaxsoftmax.train --logdir {logdir}\n"
    )
    assert not (logdir / "figures").exists()


def test_usage_mistakes_are_one_line_and_exit_2(capsys):
    status, _, stderr = run_main([], capsys)
    assert status == 2 and stderr.count("\n") == 1 and "logdir" in stderr


def test_without_matplotlib_it_says_what_to_install(scalars_only, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    status, _, stderr = run_main([scalars_only], capsys)
    assert status == 1
    assert stderr.count("\n") == 1 and "pip install 'jaxsoftmax[plot]'" in stderr


def test_runs_as_a_module_without_tensorflow_noise(run_dir, tmp_path):
    out = tmp_path / "figures"
    done = subprocess.run(
        [sys.executable, "-m", "jaxsoftmax.report", str(run_dir), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    written = done.stdout.splitlines()
    assert written[:2] == [str(out / "loss.png"), str(out / "accuracy.png")]
    assert written[-1] == str(out / "accuracy_vs_learning_rate.png")
    assert all(os.path.isfile(path) for path in written)
    # Only a note about weight images may be said; TensorFlow's start-up logs are not.
    assert all(line.startswith("note: ") for line in done.stderr.splitlines()), done.stderr
