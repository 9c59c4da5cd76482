"""TensorBoard summaries, read back with TensorBoard's own event reader."""

import io

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from jaxsoftmax.core import histograms
from jaxsoftmax.files import LOCK_FILE
from jaxsoftmax.outputs import pictures, summaries
from jaxsoftmax.sweep.config import SweepConfig
from jaxsoftmax.sweep.train import train_sweep

EVERYTHING = {"scalars": 0, "images": 0, "histograms": 0, "tensors": 0}


def events(path) -> EventAccumulator:
    accumulator = EventAccumulator(str(path), size_guidance=EVERYTHING)
    accumulator.Reload()
    return accumulator


def test_histogram_matches_numpy():
    values = np.random.default_rng(0).normal(size=(50, 7)).astype(np.float32)
    got = histograms.histogram(jnp.asarray(values), 12)
    counts, edges = np.histogram(values, bins=12)
    np.testing.assert_allclose(got.bucket_limits, edges[1:], rtol=1e-5)
    np.testing.assert_array_equal(got.bucket_counts, counts)
    assert got.num == 350 and got.min == values.min() and got.max == values.max()
    np.testing.assert_allclose(got.sum, values.sum(), rtol=1e-4)
    np.testing.assert_allclose(got.sum_squares, np.square(values).sum(), rtol=1e-5)


def test_histogram_of_equal_values_keeps_them_all():
    got = histograms.histogram(jnp.zeros((784, 10)), 30)
    assert got.bucket_counts.sum() == 7840 and np.all(np.diff(got.bucket_limits) > 0)


def test_weight_templates_colour_by_sign_and_name_each_class():
    w = np.zeros((6, 3), np.float32)
    w[0, 0] = 2.0  # class 0 likes pixel (0, 0)
    w[5, 2] = -1.0  # class 2 dislikes pixel (1, 2)
    picture = pictures.weight_templates(w, (2, 3), ["zero", "one", "two"])
    zoom, gap, label = pictures.TEMPLATE_ZOOM, pictures.TEMPLATE_GAP, pictures.LABEL_HEIGHT
    assert picture.shape == (2 * zoom + label, 3 * 3 * zoom + 2 * gap, 3)
    assert picture.dtype == np.uint8
    assert picture[0, 0].tolist() == [0, 0, 255]  # full blue
    left = 2 * (3 * zoom + gap) + 2 * zoom
    assert picture[zoom, left].tolist() == [255, 128, 128]  # red, half strength (-1 / max 2)
    cell = slice(3 * zoom + gap, 2 * 3 * zoom + gap)
    assert (picture[: 2 * zoom, cell] == 255).all()  # class 1: all zero, white
    # Under each template, dark text in the label strip.
    strip = picture[2 * zoom :, :, 0]
    for column in range(3):
        start = column * (3 * zoom + gap)
        assert strip[:, start : start + 3 * zoom].min() < 100, column
    unnamed = pictures.weight_templates(w, (2, 3))  # labels default to the class numbers
    assert not np.array_equal(unnamed, picture)


def test_weight_templates_are_each_weights_colour_zoomed_and_unchanged_by_a_second_call():
    """Every template pixel against the colour rule in float64 (white at 0, blue where
    the weight is positive, red where negative, zoomed); and the labels' canvas, drawn
    once per run, is never drawn on."""
    rng = np.random.default_rng(0)
    for trial in range(40):  # with seed 0, trial 9 once rounded differently in float32
        w = rng.normal(size=(12 * 8, 7)).astype(np.float32)
        picture = pictures.weight_templates(w, (12, 8))
        zoom, gap = pictures.TEMPLATE_ZOOM, pictures.TEMPLATE_GAP
        row, column = 12 * zoom + pictures.LABEL_HEIGHT + gap, 8 * zoom + gap
        scaled = (w / np.abs(w).max()).astype(np.float64)  # normalised in the weights' dtype
        for k in range(7):
            v = np.kron(scaled[:, k].reshape(12, 8), np.ones((zoom, zoom)))
            blue, red = np.clip(v, 0, 1), np.clip(-v, 0, 1)
            rgb = np.stack([1 - blue, 1 - blue - red, 1 - red], axis=-1)
            expected = (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)
            top, left = (k // 5) * row, (k % 5) * column
            got = picture[top : top + 12 * zoom, left : left + 8 * zoom]
            np.testing.assert_array_equal(got, expected, err_msg=f"trial {trial}, class {k}")
        assert np.array_equal(pictures.weight_templates(w, (12, 8)), picture)


def test_runs_and_tags(logged_run):
    logdir, _ = logged_run
    for label in ("0.002", "0.005"):
        for split, steps in (("train", list(range(1, 21))), ("test", [5, 10, 15, 20])):
            accumulator = events(logdir / f"lr={label}" / split)
            assert set(accumulator.Tags()["scalars"]) == {f"{split}/loss", f"{split}/accuracy"}
            assert [e.step for e in accumulator.Scalars(f"{split}/accuracy")] == steps
        run = events(logdir / f"lr={label}")
        assert set(run.Tags()["histograms"]) == {"weights", "biases"}
        # Beside the histograms, in a file of its own: where the finished model errs.
        assert sorted(run.Tags()["images"]) == ["confusion_matrix", "misclassified"]
        assert len(list((logdir / f"lr={label}").glob("events.out.tfevents.*"))) == 2
        assert events(logdir / f"lr={label}" / "train").Tags()["images"] == ["weights"]


def test_last_test_accuracy_in_events_equals_results_json(logged_run):
    logdir, document = logged_run
    for run in document["runs"]:
        test = events(logdir / f"lr={run['learning_rate']}" / "test")
        assert test.Scalars("test/accuracy")[-1].value == pytest.approx(
            run["test_accuracy"], abs=1e-7
        )
        assert test.Scalars("test/loss")[-1].value == pytest.approx(run["test_loss"], rel=1e-6)


def test_histograms_describe_the_trained_parameters(logged_run, mnist):
    logdir, _ = logged_run
    # The same run through the API gives the parameters the histograms must describe.
    result = train_sweep(mnist, SweepConfig(learning_rates=(0.002, 0.005), steps=20, eval_every=5))
    for k, label in enumerate(("0.002", "0.005")):
        run = events(logdir / f"lr={label}")
        weights = run.Histograms("weights")
        assert [h.step for h in weights] == [5, 10, 15, 20]
        last = weights[-1].histogram_value
        assert sum(last.bucket) == 784 * 10 and len(last.bucket) == summaries.HISTOGRAM_BUCKETS
        assert last.min == pytest.approx(result.params["w"][k].min(), abs=1e-7)
        assert last.max == pytest.approx(result.params["w"][k].max(), abs=1e-7)
        assert sum(run.Histograms("biases")[-1].histogram_value.bucket) == 10


def test_images_have_the_expected_shapes(logged_run, mnist):
    logdir, _ = logged_run
    inputs = events(logdir).Images("input")
    assert len(inputs) == 1
    digits = np.asarray(Image.open(io.BytesIO(inputs[0].encoded_image_string)))
    assert digits.shape[:2] == (28, 5 * 28)
    templates = events(logdir / "lr=0.005" / "train").Images("weights")
    zoom, gap, label = pictures.TEMPLATE_ZOOM, pictures.TEMPLATE_GAP, pictures.LABEL_HEIGHT
    # Two rows of five 140-pixel templates, each with its class named below it.
    height, width = 2 * (28 * zoom + label + gap) - gap, 5 * (28 * zoom + gap) - gap
    assert (templates[-1].height, templates[-1].width) == (height, width)
    assert templates[-1].step == 20


def test_the_layout_for_custom_scalars_is_read_back_by_tensorboard(logged_run):
    from tensorboard.plugins.custom_scalar import metadata

    logdir, _ = logged_run
    root = events(logdir)
    content = root.PluginTagToContent(metadata.PLUGIN_NAME)
    assert list(content) == [metadata.CONFIG_SUMMARY_TAG]
    # No validation split: no validation chart, which would stay empty ("Matches (0)").
    assert layout_charts(logdir) == {
        "test accuracy": ["^test/accuracy$"],
        "test loss": ["^test/loss$"],
        "training loss (minibatch)": ["^train/loss$"],
        "training accuracy (minibatch)": ["^train/accuracy$"],
    }
    tags = {tag for run in logdir.iterdir() if run.is_dir() for tag in scalar_tags(run)}
    for tags_charted in layout_charts(logdir).values():  # every chart has lines to draw
        assert tags_charted[0].strip("^$") in tags


def layout_charts(logdir) -> dict[str, list[str]]:
    """The CUSTOM SCALARS charts a run's root events lay out: {title: tag patterns}."""
    from tensorboard.plugins.custom_scalar import layout_pb2, metadata

    tensor = events(logdir).Tensors(metadata.CONFIG_SUMMARY_TAG)[0].tensor_proto
    layout = layout_pb2.Layout.FromString(tensor.string_val[0])
    return {chart.title: list(chart.multiline.tag) for chart in layout.category[0].chart}


def scalar_tags(run_folder) -> set[str]:
    return {
        tag
        for split in ("train", "test", "validation")
        if (run_folder / split).is_dir()
        for tag in events(run_folder / split).Tags()["scalars"]
    }


def test_hparams_sessions_hold_settings_and_final_metrics(logged_run):
    logdir, document = logged_run
    for run in document["runs"]:
        accumulator = events(logdir / f"lr={run['learning_rate']}")
        content = accumulator.PluginTagToContent("hparams")
        start = plugin_data_pb2.HParamsPluginData.FromString(
            content["_hparams_/session_start_info"]
        ).session_start_info
        settings = {
            name: value.string_value or value.number_value for name, value in start.hparams.items()
        }
        assert settings == {
            "learning_rate": run["learning_rate"],
            "batch_size": 100,
            "steps": 20,
            "loss_scale": 100.0,
            "seed": 0,
            "weight_decay": 0.0,
            "momentum": 0.0,
            "init_scale": 0.0,
            "schedule": "constant",
        }
        experiment = plugin_data_pb2.HParamsPluginData.FromString(
            content["_hparams_/experiment"]
        ).experiment
        assert {m.name.tag for m in experiment.metric_infos} == {
            "hparams/test_accuracy",
            "hparams/test_loss",
            "hparams/diverged",
            "hparams/steps_trained",
        }
        assert accumulator.Scalars("hparams/steps_trained")[-1].value == 20
        final = accumulator.Scalars("hparams/test_accuracy")
        assert final[-1].value == pytest.approx(run["test_accuracy"], abs=1e-7)
        assert accumulator.Scalars("hparams/diverged")[-1].value == 0


def test_summaries_off_writes_no_events(mnist_dir, tmp_path):
    from jaxsoftmax.cli import train as cli

    logdir = tmp_path / "quiet"
    argv = ["--steps", "5", "--no-summaries", "--quiet", "--no-compilation-cache"]
    assert cli.main([*argv, "--data-dir", str(mnist_dir), "--logdir", str(logdir)]) == 0
    files = sorted(p.name for p in logdir.rglob("*") if p.is_file())
    assert files == [LOCK_FILE, "checkpoint.npz", "results.json"]


def test_ctrl_c_leaves_flushed_readable_events(cli_env, tmp_path):
    """A real SIGINT to a training process: exit 130 and every event written so far on disk."""
    import signal
    import subprocess
    import sys
    import time

    logdir = tmp_path / "interrupted"
    command = [sys.executable, "-m", "jaxsoftmax.train", "--steps", "1000000", "--eval-every", "50"]
    process = subprocess.Popen(
        [*command, "--learning-rates", "0.005", "--logdir", str(logdir)],
        env=cli_env | {"PYTHONUNBUFFERED": "1"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The progress bar redraws with a carriage return; wait until it reports steps done.
        progress, deadline = "", time.monotonic() + 120
        while "test_accuracy=" not in progress and time.monotonic() < deadline:
            progress += process.stderr.read(1)
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, progress + rest
    assert "interrupted" in rest
    train = events(logdir / "lr=0.005" / "train")
    steps = [event.step for event in train.Scalars("train/loss")]
    assert steps[:3] == [1, 2, 3] and len(steps) >= 200
    assert len(events(logdir / "lr=0.005").Histograms("weights")) >= 4


def test_importing_the_summaries_does_not_import_pytorch():
    """tensorboardX would import PyTorch (1.2 s, 250 MB) where installed; we keep it out."""
    import subprocess
    import sys

    code = (
        "import sys, jaxsoftmax.outputs.summaries, jaxsoftmax.outputs.graph; "
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr


def test_the_input_images_are_the_first_batch_the_models_train_on(mnist_dir, mnist, tmp_path):
    """With a validation split the first batch comes from the images left for training."""
    from jaxsoftmax.cli import train as cli
    from jaxsoftmax.core import batches

    logdir = tmp_path / "run"
    argv = ["--steps", "2", "--validation", "1000", "--seed", "3", "--data-dir", str(mnist_dir)]
    assert cli.main([*argv, "--quiet", "--no-compilation-cache", "--logdir", str(logdir)]) == 0
    (image,) = events(logdir).Images("input")
    shown = np.asarray(Image.open(io.BytesIO(image.encoded_image_string)))
    shown = shown if shown.ndim == 2 else shown[..., 0]
    train, _ = mnist.split_validation(1000, 3)
    # The engine's own minibatch rule (a compiled sort), not the summary's NumPy argsort.
    first = np.asarray(batches.batch_indices(batches.shuffle_key(3), 0, 1, 59_000, 100))[0]
    expected = np.concatenate(list(train.train_images[first[: summaries.INPUT_IMAGES]]), axis=1)
    np.testing.assert_array_equal(shown, expected)
    charts = layout_charts(logdir)  # both splits evaluated: charts for both
    assert {"validation accuracy", "validation loss", "test accuracy", "test loss"} <= set(charts)
