"""Loading through tensorflow-datasets, the optional `tfds` source.

TFDS cannot download anything here (no network in the sandbox or CI), so these tests run on
`tfds.testing.mock_data`: tfds builds each split from the dataset's own feature spec (real
image shapes, dtypes and class count) and fills it with random examples, without any files.
The tests that need tensorflow-datasets skip where the `tfds` extra is not installed; the one
for a missing install runs everywhere.
"""

import sys

import numpy as np
import pytest

from jaxsoftmax import catalog, tfds_source
from jaxsoftmax.errors import DataError

NUM_EXAMPLES = 7
MNIST_IMAGE_SHAPE = (28, 28)
MNIST_NUM_CLASSES = 10


@pytest.fixture(scope="module")
def tfds():
    """tensorflow_datasets with TensorFlow imported (about 3 s, once for this module)."""
    pytest.importorskip("tensorflow")
    return pytest.importorskip("tensorflow_datasets")


@pytest.mark.parametrize("spec", catalog.DATASETS.values(), ids=list(catalog.DATASETS))
def test_catalog_datasets_load_as_grayscale_images_and_class_labels(tfds, spec, tmp_path):
    with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
        train_images, train_labels, test_images, test_labels, num_classes = (
            tfds_source.load_tfds_arrays(spec, data_dir=str(tmp_path), download=False)
        )

    assert num_classes == MNIST_NUM_CLASSES
    for images, labels in ((train_images, train_labels), (test_images, test_labels)):
        assert images.shape == (NUM_EXAMPLES, *MNIST_IMAGE_SHAPE)
        assert images.dtype == np.uint8
        assert labels.shape == (NUM_EXAMPLES,)
        assert labels.dtype == np.int32
        assert labels.min() >= 0 and labels.max() < num_classes


def test_arrays_hold_the_examples_tfds_yields_in_order(tfds, tmp_path, monkeypatch):
    # Batches of 3 over 7 examples: two full batches and a partial one to concatenate.
    monkeypatch.setattr(tfds_source, "_COPY_BATCH_SIZE", 3)
    with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
        train_images, train_labels, test_images, test_labels, _ = tfds_source.load_tfds_arrays(
            catalog.MNIST, data_dir=str(tmp_path), download=False
        )
        # Oracle: the same mocked splits read one example at a time, straight from tfds.
        splits = tfds.load("mnist", split=["train", "test"], as_supervised=True)
        (expected_train, expected_test) = (list(tfds.as_numpy(split)) for split in splits)

    for images, labels, expected in (
        (train_images, train_labels, expected_train),
        (test_images, test_labels, expected_test),
    ):
        np.testing.assert_array_equal(images, np.stack([image[..., 0] for image, _ in expected]))
        np.testing.assert_array_equal(labels, [label for _, label in expected])


def test_colour_images_are_rejected(tfds, tmp_path):
    cifar10 = catalog.DatasetSpec(name="cifar10", sha256={}, mirrors=(), tfds_name="cifar10")
    with (
        tfds.testing.mock_data(num_examples=2),
        pytest.raises(DataError, match=r"'cifar10' train images are uint8 \(2, 32, 32, 3\)"),
    ):
        tfds_source.load_tfds_arrays(cifar10, data_dir=str(tmp_path), download=False)


def test_unprepared_dataset_without_download_names_it_and_suggests_idx(tfds, tmp_path):
    with pytest.raises(DataError) as raised:
        tfds_source.load_tfds_arrays(catalog.MNIST, data_dir=str(tmp_path), download=False)

    message = str(raised.value)
    assert "'mnist'" in message and str(tmp_path) in message and "--source idx" in message
    assert "\n" not in message
    assert raised.value.__cause__ is not None


def test_missing_tensorflow_datasets_says_how_to_install_it(monkeypatch):
    # None in sys.modules makes `import tensorflow_datasets` raise ImportError, installed or not.
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(DataError) as raised:
        tfds_source.load_tfds_arrays(catalog.MNIST)

    message = str(raised.value)
    assert "jaxsoftmax[tfds]" in message and "\n" not in message
    assert isinstance(raised.value.__cause__, ImportError)


def test_command_line_trains_from_tfds(tfds, tmp_path, capsys, monkeypatch):
    """`--source tfds` end to end: the mocked dataset flows through the real training run."""
    from jaxsoftmax import cli

    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    logdir = tmp_path / "run"
    argv = ["--source", "tfds", "--steps", "4", "--batch-size", "5", "--eval-every", "2"]
    with tfds.testing.mock_data(num_examples=20):
        status = cli.main([*argv, "--quiet", "--no-compilation-cache", "--logdir", str(logdir)])
    assert status == 0, capsys.readouterr().err
    assert (logdir / "results.json").is_file()
