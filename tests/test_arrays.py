"""Arrays a user already holds: kept as they are (never silently cast), trained, written to
a log directory from Python, and read back by load_run, predict, export and TensorBoard."""

import json

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import jaxsoftmax as js
from jaxsoftmax.core import features
from jaxsoftmax.data import load as data
from jaxsoftmax.errors import DataError
from jaxsoftmax.sweep.config import SweepConfig
from jaxsoftmax.sweep.train import train_sweep

CONFIG = SweepConfig(learning_rates=(0.005,), steps=300, eval_every=100)


def arrays_of(dataset, scale=None):
    """The dataset's four arrays, images as they are or divided into float32 by `scale`."""
    images = [dataset.train_images, dataset.test_images]
    if scale is not None:
        images = [image.astype(np.float32) / np.float32(scale) for image in images]
    return {"train_images": images[0], "train_labels": dataset.train_labels,
            "test_images": images[1], "test_labels": dataset.test_labels}  # fmt: skip


def test_float_pixels_in_0_1_train_as_the_uint8_files_do(mnist):
    scaled = js.make_dataset(**arrays_of(mnist, 255.0))
    assert scaled.train_images.dtype == np.float32 and scaled.inputs == features.FEATURES
    assert scaled.train_images.max() == 1.0  # kept as they are: not cast to uint8 zeros
    uint8, floats = train_sweep(mnist, CONFIG), train_sweep(scaled, CONFIG)
    assert abs(floats.test_accuracy[-1, 0] - uint8.test_accuracy[-1, 0]) <= 0.001
    assert uint8.test_accuracy[-1, 0] > 0.88  # not chance: a real model


def test_feature_vectors_train_like_the_images_they_flatten(mnist):
    flat = arrays_of(mnist, 255.0)
    flat = {k: v.reshape(len(v), -1) if k.endswith("images") else v for k, v in flat.items()}
    vectors = js.make_dataset(**flat, class_names=[f"digit {k}" for k in range(10)])
    assert vectors.image_shape == (784,)
    assert data.describe(vectors) == (
        "arrays: 60000 training and 10000 test examples of float features of 784, "
        "10 classes, from arrays in memory"
    )
    images = js.make_dataset(**arrays_of(mnist, 255.0))
    np.testing.assert_array_equal(
        train_sweep(vectors, CONFIG).test_accuracy, train_sweep(images, CONFIG).test_accuracy
    )


def numpy_logits(features_, w, b):
    """Oracle: float64 logits of features taken as they are."""
    return features_.reshape(len(features_), -1).astype(np.float64) @ np.float64(w) + b


def test_features_on_their_own_scale_are_logged_and_read_back(mnist, tmp_path):
    """Standardised features (not in [0, 1]) train, log, predict and export as they are."""
    rng = np.random.default_rng(0)
    train, test = mnist.train_images[:3000], mnist.test_images[:500]
    mean, spread = train.mean(axis=0), train.std(axis=0) + 1.0
    standardise = lambda images: ((images - mean) / spread).astype(np.float32)  # noqa: E731
    dataset = js.make_dataset(
        train_images=standardise(train), train_labels=mnist.train_labels[:3000],
        test_images=standardise(test), test_labels=mnist.test_labels[:500],
        name="standardised",
    )  # fmt: skip
    assert dataset.train_images.min() < -0.5 and dataset.train_images.max() > 2
    config = SweepConfig(learning_rates=(0.001, 0.002), steps=60, eval_every=20)
    logdir = tmp_path / "run"
    result = js.train_logged(dataset, config, logdir)
    document = json.loads((logdir / "results.json").read_text())
    assert document["data"]["inputs"] == "features" and document["data"]["background"] is None
    run = js.load_run(logdir)
    for k, model in enumerate(run):
        logits = numpy_logits(dataset.test_images, model.w, model.b)
        accuracy = (logits.argmax(axis=1) == dataset.test_labels).mean()
        assert document["runs"][k]["test_accuracy"] == pytest.approx(accuracy, abs=1e-6)
        assert result.test_accuracy[-1, k] == pytest.approx(accuracy, abs=1e-6)
        np.testing.assert_array_equal(model.predict(dataset.test_images), logits.argmax(axis=1))
    with pytest.raises(DataError, match="trained on float features, not uint8"):
        run[run.names[0]].predict(test)
    # TensorBoard reads the scalars; no picture of examples that are not pixels.
    events = EventAccumulator(str(logdir / run.names[0] / "test"))
    events.Reload()
    assert [e.step for e in events.Scalars("test/accuracy")] == [20, 40, 60]
    root = EventAccumulator(str(logdir))
    root.Reload()
    assert "input" not in root.Tags()["images"]
    onnxruntime = pytest.importorskip("onnxruntime")
    from jaxsoftmax.trained import export

    model = run[run.names[1]]
    session = onnxruntime.InferenceSession(export.onnx_model(model).SerializeToString())
    got, label = session.run(None, {"images": dataset.test_images[:50]})
    np.testing.assert_allclose(got, model.predict_proba(dataset.test_images[:50]), atol=1e-5)
    np.testing.assert_array_equal(label, model.predict(dataset.test_images[:50]))
    del rng


def test_a_python_run_logs_what_the_command_line_logs(mnist, mnist_dir, tmp_path):
    """train_logged and `python -m jaxsoftmax.train` write the same results and tags."""
    from jaxsoftmax.cli import train as cli

    argv = ["--steps", "20", "--eval-every", "10", "--learning-rates", "0.002,0.005"]
    argv += ["--data-dir", str(mnist_dir), "--quiet", "--no-compilation-cache"]
    assert cli.main([*argv, "--logdir", str(tmp_path / "cli")]) == 0
    config = SweepConfig(learning_rates=(0.002, 0.005), steps=20, eval_every=10)
    js.train_logged(mnist, config, tmp_path / "python")
    documents = [json.loads((tmp_path / d / "results.json").read_text()) for d in ("cli", "python")]
    for document in documents:
        del document["timing"]
    cli_doc, python_doc = documents
    assert python_doc == cli_doc
    for run in ("", "lr=0.005", "lr=0.005/train", "lr=0.005/test"):
        tags = []
        for folder in ("cli", "python"):
            events = EventAccumulator(str(tmp_path / folder / run))
            events.Reload()
            tags.append({kind: sorted(names) for kind, names in events.Tags().items()
                         if isinstance(names, list)})  # fmt: skip
        assert tags[0] == tags[1], run


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"train_images": [[1.0, 2.0], [3.0]]}, "train examples are ragged"),
        ({"test_images": np.full((3, 4), np.nan, np.float32)}, "NaN or infinite"),
        ({"train_images": np.full((3, 4), np.inf)}, "NaN or infinite"),
        ({"train_images": np.full((3, 4), 300, np.int64)}, "int64 from 300 to 300"),
        ({"train_images": np.zeros((3, 4), np.complex64)}, "complex64"),
        ({"train_images": np.zeros((3, 4, 2, 2, 2), np.uint8)}, "shape (3, 4, 2, 2, 2)"),
        ({"train_images": np.zeros(3, np.uint8)}, "shape (3,)"),
        ({"test_images": np.zeros((2, 4), np.float32)}, "train examples are pixels but test"),
        ({"test_images": np.zeros((2, 5), np.uint8)}, "train images are 4 but test images are 5"),
        ({"train_labels": [0, 1]}, "train split has 3 images but 2 labels"),
        ({"train_labels": [[0], [1], [1]]}, "labels have shape (3, 1)"),
        ({"train_labels": [0, 1, -1]}, "whole numbers >= 0"),
        ({"class_names": ["a", "b", "c"]}, "3 class names for 2 classes"),
        ({"test_labels": None}, "give test images and test labels, or neither"),
        ({"test_images": None}, "give test images and test labels, or neither"),
        ({"test_images": np.zeros((0, 4), np.uint8), "test_labels": []}, "test split is empty"),
        ({"train_images": np.zeros((0, 4), np.uint8), "train_labels": []}, "train split is empty"),
    ],
)
def test_bad_arrays_are_refused_in_one_line(change, message):
    arrays = {"train_images": np.zeros((3, 4), np.uint8), "train_labels": [0, 1, 1],
              "test_images": np.zeros((2, 4), np.uint8), "test_labels": [1, 0]}  # fmt: skip
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        js.make_dataset(**(arrays | change))
    assert "\n" not in str(error.value)


def test_whole_pixels_of_a_wider_integer_type_are_the_same_pixels(mnist):
    wide = js.make_dataset(**{k: v.astype(np.int64) for k, v in arrays_of(mnist).items()})
    assert wide.train_images.dtype == np.uint8 and wide.inputs == features.PIXELS
    assert wide.fingerprint() == js.make_dataset(**arrays_of(mnist)).fingerprint()


def test_a_dataset_without_a_test_split_trains_chooses_on_validation_and_predicts(tmp_path):
    """No test split at all: nothing is evaluated on one (no NaN charts, no analysis), a
    sweep and a search still choose on validation, and the models predict."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(900, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5)
    dataset = js.make_dataset(train_images=x, train_labels=y)
    assert dataset.test_images.shape == (0, 5) and dataset.num_classes == 3
    config = SweepConfig(learning_rates=(0.5, 2.0), steps=60, eval_every=20, loss_scale=1.0,
                         validation=300)  # fmt: skip
    result = js.train_logged(dataset, config, tmp_path / "sweep")
    document = json.loads((tmp_path / "sweep" / "results.json").read_text())
    assert all(run["test_accuracy"] is None for run in document["runs"])
    assert "analyses" not in document or not document["analyses"]
    k = int(np.nanargmax(result.validation_accuracy[-1]))
    best = js.load_run(tmp_path / "sweep").best()
    assert best.name == document["runs"][k]["name"]
    held_out = config.split(dataset)[1]  # what predict gets right is what was recorded
    accuracy = (best.predict(x[held_out]) == y[held_out]).mean()
    assert accuracy == pytest.approx(result.validation_accuracy[-1, k], abs=1e-6) and accuracy > 0.7
    space = js.parse_space("learning_rate=log:0.1:3")
    trials = js.search_config(space, 9, validation=300, steps=90, eval_every=10, loss_scale=1.0,
                              evaluate_test=False)  # fmt: skip
    js.train_logged(dataset, trials, tmp_path / "search", halving=js.Halving(min_steps=10))
    found = json.loads((tmp_path / "search" / "results.json").read_text())["search"]
    assert found["chosen"] == js.load_run(tmp_path / "search").best().name
