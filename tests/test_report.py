"""Figures of real short runs, plain and grids: read from results.json and the events, written
as PNGs, mistakes in one line."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")
from PIL import Image  # pillow comes with TensorBoard
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from jaxsoftmax.cli import report as report_cli
from jaxsoftmax.cli import train as cli
from jaxsoftmax.outputs import runlogs
from jaxsoftmax.plots import figures, report

LABELS = ["0.002", "0.005"]
STEPS, EVAL_EVERY = 20, 5
NOTF = "tensorboard.compat.notf"
# Learning rate 1e6 diverges at step 2; two weight decays; two seeds each.
GRID = "learning_rate=0.002,0.005,1e6 seed=0,1 weight_decay=0,1e-3"


def train(logdir, mnist_dir, *argv):
    argv = [*argv, "--steps", str(STEPS), "--eval-every", str(EVAL_EVERY), "--quiet"]
    argv += ["--no-compilation-cache", "--logdir", str(logdir), "--data-dir", str(mnist_dir)]
    assert cli.main(argv) == 0
    return logdir


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, mnist_dir):
    """A real 20-step run of two learning rates on MNIST, as the command line writes it."""
    return train(
        tmp_path_factory.mktemp("report") / "run", mnist_dir, "--learning-rates", "0.002,0.005"
    )


@pytest.fixture(scope="module")
def grid_dir(tmp_path_factory, mnist_dir):
    """A grid over learning rate, seed and weight decay with a diverged learning rate."""
    logdir = tmp_path_factory.mktemp("report") / "grid"
    return train(logdir, mnist_dir, "--grid", GRID, "--init-scale", "0.01")


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
        status = report_cli.main([str(arg) for arg in argv])
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def scalars(folder, tag):
    """Oracle: a tag's values read straight with TensorBoard's reader."""
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return np.array([event.value for event in events.Scalars(tag)])


def settings_of(logdir):
    return runlogs.group_settings(runlogs.run_logs(runlogs.read_results(logdir)))


def test_runs_are_read_with_every_step_and_evaluation(run_dir):
    document = json.loads((run_dir / "results.json").read_text())
    for expected in document["runs"]:
        run = next(
            runlogs.with_events(run_dir, r)
            for r in runlogs.run_logs(document)
            if r.name == expected["name"]
        )
        assert run.curves["train/loss"].steps.tolist() == list(range(1, STEPS + 1))
        assert run.curves["test/accuracy"].steps.tolist() == [5, 10, 15, 20]
        assert run.curves["test/accuracy"].values[-1] == pytest.approx(
            expected["test_accuracy"], abs=1e-6
        )
        # Zero weights predict uniformly: the first step's loss is 100 ln 10 for every rate.
        assert run.curves["train/loss"].values[0] == pytest.approx(100 * np.log(10), rel=1e-5)
        assert run.weights_step == STEPS and run.weights_image.shape[2] == 3


def test_a_grid_is_grouped_by_setting_best_first_and_diverged_apart(grid_dir):
    settings = settings_of(grid_dir)
    labels = [setting.label for setting in settings]
    assert sorted(labels) == sorted(
        f"lr={rate},wd={decay}" for rate in ("0.002", "0.005", "1e6") for decay in ("0", "1e-3")
    )
    assert labels[:2] == ["lr=0.002,wd=0", "lr=0.002,wd=1e-3"]  # in sweep order
    ranked = runlogs.ranked(settings)
    healthy = [s for s in ranked if not s.diverged]
    assert [len(s.runs) for s in healthy] == [2, 2, 2, 2]  # two seeds each
    means = [s.finals.mean() for s in healthy]
    assert means == sorted(means, reverse=True)
    assert all(s.label.startswith("lr=1e6") and len(s.diverged) == 2 for s in ranked[4:])


def test_grid_curves_are_the_mean_and_range_over_seeds(grid_dir):
    settings = runlogs.drawable(settings_of(grid_dir))
    drawn = [report._read_events(grid_dir, setting) for setting in settings]
    figure = figures.accuracy_figure(drawn)
    test_axes = figure.axes[1]
    lines = {line.get_label(): line for line in test_axes.lines}
    assert set(lines) == {s.label for s in drawn}  # the diverged settings are not drawn
    for setting in drawn:
        per_seed = [scalars(grid_dir / run.name / "test", "test/accuracy") for run in setting.runs]
        np.testing.assert_allclose(lines[setting.label].get_ydata(), np.mean(per_seed, axis=0))
    # One band per setting, from the lowest seed to the highest.
    assert len(test_axes.collections) == len(drawn)
    band = test_axes.collections[0].get_paths()[0].vertices[:, 1]
    per_seed = [scalars(grid_dir / run.name / "test", "test/accuracy") for run in drawn[0].runs]
    assert band.min() == pytest.approx(np.min(per_seed)) and band.max() == pytest.approx(
        np.max(per_seed)
    )


def test_the_diverged_rate_is_never_on_the_accuracy_axis(grid_dir):
    settings = settings_of(grid_dir)
    figure = figures.accuracy_vs_learning_rate_figure(settings)
    axes, strip = figure.axes
    document = json.loads((grid_dir / "results.json").read_text())
    plotted = {}
    for container in axes.containers:  # one error-bar line per weight decay
        line = container.lines[0]
        plotted[container.get_label()] = (line.get_xdata().tolist(), line.get_ydata().tolist())
    assert set(plotted) == {"wd=0", "wd=1e-3"}
    for label, decay in (("wd=0", 0.0), ("wd=1e-3", 1e-3)):
        rates, means = plotted[label]
        assert rates == [0.002, 0.005]  # 1e6 is not among them
        for rate, mean in zip(rates, means, strict=True):
            finals = [
                run["test_accuracy"]
                for run in document["runs"]
                if run["learning_rate"] == rate and run["weight_decay"] == decay
            ]
            assert mean == pytest.approx(np.mean(finals))
    assert axes.get_xlim()[1] < 1.0  # the axis spans the healthy rates only
    named = [text.get_text() for text in strip.texts]
    assert named == ["lr 1e6 \u2192"]  # named at the strip's edge, beyond the healthy rates


def test_a_diverged_rate_among_healthy_ones_is_a_cross_on_the_strip(grid_dir):
    settings = settings_of(grid_dir)
    # Pretend lr 0.002 had diverged in one seed: the whole setting leaves the accuracy axis.
    moved = []
    for setting in settings:
        if setting.label == "lr=0.002,wd=0":
            setting = runlogs.Setting(setting.label, setting.runs[1:], setting.runs[:1])
        moved.append(setting)
    axes, strip = figures.accuracy_vs_learning_rate_figure(moved).axes
    line = next(c.lines[0] for c in axes.containers if c.get_label() == "wd=0")
    assert line.get_xdata().tolist() == [0.005]
    crosses = np.concatenate([c.get_offsets() for c in strip.collections])
    assert crosses[:, 0].tolist() == [0.002]


def test_a_large_grid_draws_its_best_settings_and_counts_the_rest(grid_dir):
    settings = settings_of(grid_dir)
    many = [
        runlogs.Setting(f"{s.label},x={copy}", s.runs, s.diverged)
        for copy in range(3)
        for s in settings
    ]
    drawn = runlogs.drawable(many)
    assert len(drawn) == runlogs.SHOWN
    note = runlogs.note_on(many, drawn)
    assert note.startswith(f"the best {runlogs.SHOWN} of 12 settings by final test accuracy")
    assert "6 diverged, not drawn" in note


def test_write_figures_writes_readable_deterministic_pngs(grid_dir, tmp_path):
    paths = report.write_figures(grid_dir, tmp_path / "first")
    names = ["loss.png", "accuracy.png", "weights.png", "accuracy_vs_learning_rate.png"]
    assert paths == [tmp_path / "first" / name for name in [*names, "confusion.png"]]
    for path in paths:
        with Image.open(path) as image:
            image.verify()
            assert image.format == "PNG" and image.size[0] >= 600
            assert "Software" not in image.info  # no matplotlib version to churn diffs
    again = report.write_figures(grid_dir, tmp_path / "second")
    assert [path.read_bytes() for path in again] == [path.read_bytes() for path in paths]


def test_weights_show_each_drawn_settings_labelled_templates(run_dir):
    settings = [report._read_events(run_dir, s) for s in runlogs.drawable(settings_of(run_dir))]
    figure = figures.weights_figure(settings)
    shown = [axes for axes in figure.axes if axes.images]
    assert len(shown) == 2
    for axes, setting in zip(shown, settings, strict=True):
        np.testing.assert_array_equal(axes.images[0].get_array(), setting.runs[0].weights_image)
        assert axes.get_title() == f"{setting.runs[0].name}, step {STEPS}"


def test_a_run_without_events_gets_its_accuracy_figure_and_a_note(mnist_dir, tmp_path, capsys):
    logdir = train(
        tmp_path / "quiet", mnist_dir, "--learning-rates", "0.002,0.005", "--no-summaries"
    )
    status, stdout, stderr = run_main([logdir], capsys)
    assert status == 0, stderr
    names = ["accuracy_vs_learning_rate.png", "confusion.png"]
    assert stdout.splitlines() == [str(logdir / "figures" / name) for name in names]
    assert stderr.startswith("note: ") and "--no-summaries" in stderr and stderr.count("\n") == 1


def test_an_unwritable_out_dir_is_one_line_and_exit_1(run_dir, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    status, stdout, stderr = run_main([run_dir, "--out", blocker], capsys)
    assert status == 1 and stdout == ""
    assert stderr.startswith(f"error: cannot write figures to {blocker}")
    assert stderr.count("\n") == 1


@pytest.mark.parametrize("layout", ["missing", "empty", "checkpoint only", "other json"])
def test_a_folder_without_a_run_is_one_line_and_exit_1(tmp_path, capsys, layout):
    logdir = tmp_path / "log"
    if layout != "missing":
        logdir.mkdir()
    if layout == "checkpoint only":
        (logdir / "checkpoint.npz").write_bytes(b"")
    if layout == "other json":
        (logdir / "results.json").write_text('{"runs": [{"loss": 1}]}')
    status, stdout, stderr = run_main([logdir], capsys)
    assert status == 1 and stdout == "" and stderr.count("\n") == 1
    expected = {
        "missing": f"error: {logdir} holds no jaxsoftmax run (no results.json)",
        "empty": f"error: {logdir} holds no jaxsoftmax run (no results.json)",
        "checkpoint only": f"error: {logdir} holds a run that stopped before writing results",
        "other json": f"error: {logdir / 'results.json'} is not a jaxsoftmax results file",
    }[layout]
    assert stderr.startswith(expected), stderr
    assert not (logdir / "figures").exists()


def test_usage_mistakes_are_one_line_and_exit_2(capsys):
    status, _, stderr = run_main([], capsys)
    assert status == 2 and stderr.count("\n") == 1 and "logdir" in stderr


def test_without_matplotlib_it_says_what_to_install(run_dir, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    status, _, stderr = run_main([run_dir], capsys)
    assert status == 1
    assert stderr.count("\n") == 1 and "pip install 'jaxsoftmax[plot]'" in stderr


def test_runs_as_a_module_without_tensorflow_noise(grid_dir, tmp_path):
    out = tmp_path / "figures"
    done = subprocess.run(
        [sys.executable, "-m", "jaxsoftmax.report", str(grid_dir), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    written = done.stdout.splitlines()
    assert [os.path.basename(path) for path in written] == [
        "loss.png", "accuracy.png", "weights.png", "accuracy_vs_learning_rate.png",
        "confusion.png",
    ]  # fmt: skip
    assert all(os.path.isfile(path) for path in written)
    assert done.stderr == ""  # neither TensorFlow's start-up logs nor warnings


def test_long_training_curves_are_smoothed_over_their_faint_raw_values():
    steps = np.arange(1, 1001)
    noisy = runlogs.Curve(steps, np.random.default_rng(2).uniform(0.8, 1.0, size=steps.size))
    test = runlogs.Curve(steps[9::10], np.linspace(0.85, 0.92, 100))
    run = runlogs.RunLog(
        name="lr=0.005",
        point={"learning_rate": 0.005, "seed": 0, "weight_decay": 0.0, "momentum": 0.0},
        final_accuracy=0.92,
        curves={"train/accuracy": noisy, "test/accuracy": test},
    )
    train_axes = figures.accuracy_figure([runlogs.Setting("lr=0.005", (run,), ())]).axes[0]
    drawn = {line.get_label(): line for line in train_axes.lines}
    assert set(drawn) == {"lr=0.005", "_lr=0.005 raw"}
    np.testing.assert_array_equal(drawn["_lr=0.005 raw"].get_ydata(), noisy.values)
    np.testing.assert_allclose(drawn["lr=0.005"].get_ydata(), figures.smooth(noisy.values, 0.9))
    assert drawn["_lr=0.005 raw"].get_alpha() < 1 and "moving average" in train_axes.get_title()


def test_smooth_is_tensorboards_debiased_moving_average():
    values = np.random.default_rng(0).normal(size=50)
    weight = 0.9
    expected = [
        np.average(values[: i + 1], weights=weight ** np.arange(i, -1, -1))
        for i in range(len(values))
    ]
    np.testing.assert_allclose(figures.smooth(values, weight), expected, rtol=1e-12)
    np.testing.assert_allclose(figures.smooth(np.full(10, 3.5), weight), np.full(10, 3.5))
    np.testing.assert_array_equal(figures.smooth(values, 0.0), values)


def test_smoothing_spans_one_percent_of_the_steps():
    assert figures.smoothing_weight(1000) == pytest.approx(0.9)  # a window of 10 steps
    assert figures.smoothing_weight(STEPS) == 0.0  # a short run is drawn as it is


def test_a_copied_run_draws_the_same(grid_dir, tmp_path):
    """Nothing but the log directory is read: a copy elsewhere draws the same figures."""
    copy = tmp_path / "copy"
    shutil.copytree(grid_dir, copy, ignore=shutil.ignore_patterns("figures"))
    first = report.write_figures(grid_dir, tmp_path / "a")
    second = report.write_figures(copy, tmp_path / "b")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


def test_confusion_matrices_are_drawn_as_results_json_has_them(grid_dir):
    document = runlogs.read_results(grid_dir)
    settings = runlogs.drawable(runlogs.group_settings(runlogs.run_logs(document)))
    figure = figures.confusion_figure(settings, document["data"]["class_names"])
    shown = figure.axes
    assert len(shown) == figures.CONFUSIONS
    by_name = {run["name"]: run for run in document["runs"]}
    for axes, setting in zip(shown, settings, strict=False):
        run = setting.runs[0]
        matrix = np.array(by_name[run.name]["confusion_matrix"])
        written = np.array([int(text.get_text()) for text in axes.texts]).reshape(matrix.shape)
        np.testing.assert_array_equal(written, matrix)
        assert axes.get_title().startswith(f"{run.name}: ")
