"""Finding datasets: lookup order, cross-file checks, and the errors users see."""

import gzip
import shutil

import numpy as np
import pytest

from jaxsoftmax.data import catalog
from jaxsoftmax.data import load as data
from jaxsoftmax.errors import DataError
from tests.test_idx import idx_bytes


def write_dataset(folder, *, train=20, test=10, size=(4, 3), classes=3, compress=False, **override):
    """A small MNIST-format dataset on disk; `override` replaces one file's array."""
    rng = np.random.default_rng(0)
    arrays = {
        catalog.TRAIN_IMAGES: rng.integers(0, 256, (train, *size), dtype=np.uint8),
        catalog.TRAIN_LABELS: rng.integers(0, classes, train, dtype=np.uint8),
        catalog.TEST_IMAGES: rng.integers(0, 256, (test, *size), dtype=np.uint8),
        catalog.TEST_LABELS: (np.arange(test) % classes).astype(np.uint8),
    }
    arrays.update({getattr(catalog, k): v for k, v in override.items()})
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        content = idx_bytes(array)
        if compress:
            (folder / f"{name}.gz").write_bytes(gzip.compress(content))
        else:
            (folder / name).write_bytes(content)
    return folder


def test_loads_a_folder_and_takes_sizes_and_classes_from_the_data(tmp_path):
    dataset = data.load_dataset(
        "toy", data_dir=write_dataset(tmp_path / "toy", size=(5, 7), classes=4)
    )
    assert dataset.image_shape == (5, 7) and dataset.num_features == 35
    assert dataset.num_classes == 4
    assert dataset.train_labels.dtype == np.int32


def test_lookup_order_env_then_cache_then_nothing(tmp_path):
    root, cache = tmp_path / "root", tmp_path / "cache"
    write_dataset(cache / "jaxsoftmax" / "mnist", size=(2, 2), compress=True)
    environ = {"XDG_CACHE_HOME": str(cache)}
    assert data.load_dataset("mnist", environ=environ).image_shape == (2, 2)
    write_dataset(root / "mnist", size=(3, 3))
    environ["JAXSOFTMAX_DATA_DIR"] = str(root)
    assert data.load_dataset("mnist", environ=environ).image_shape == (3, 3)
    assert data.candidate_dirs("fashion_mnist", environ=environ) == [
        root / "fashion_mnist",
        cache / "jaxsoftmax" / "fashion_mnist",
        data.SYSTEM_DATASETS_DIR / "fashion-mnist",
    ]
    # An explicit folder wins over everything.
    explicit = write_dataset(tmp_path / "explicit", size=(6, 6))
    assert data.load_dataset("mnist", data_dir=explicit, environ=environ).image_shape == (6, 6)


def test_user_cache_defaults_to_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data.user_cache_dir({}) == tmp_path / ".cache" / "jaxsoftmax"


def test_not_found_without_download_says_where_to_put_files(tmp_path):
    with pytest.raises(DataError, match=r"put the four IDX files in .*`data_dir`=DIR") as error:
        data.load_dataset("mnist", download=False, environ={"XDG_CACHE_HOME": str(tmp_path)})
    assert "\n" not in str(error.value)


def test_unknown_names_and_sources(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'cifar'"):
        data.load_dataset("cifar", environ={})
    with pytest.raises(DataError, match="unknown data source"):
        data.load_dataset("mnist", source="csv")


def test_missing_file_is_named(tmp_path):
    folder = write_dataset(tmp_path / "d")
    (folder / catalog.TEST_LABELS).unlink()
    with pytest.raises(DataError, match=f"missing IDX file.*{catalog.TEST_LABELS}"):
        data.load_dataset("d", data_dir=folder)


@pytest.mark.parametrize(
    "override, match",
    [
        ({"TRAIN_LABELS": np.zeros(19, np.uint8)}, "20 images but 19 labels"),
        (
            {"TEST_IMAGES": np.zeros((10, 4, 4), np.uint8)},
            "train images are 4x3 but test images are 4x4",
        ),
        (
            {"TRAIN_LABELS": np.zeros(20, np.uint8), "TEST_LABELS": np.zeros(10, np.uint8)},
            "only 1 class",
        ),
    ],
)
def test_inconsistent_files_are_refused(tmp_path, override, match):
    with pytest.raises(DataError, match=match):
        data.load_dataset("d", data_dir=write_dataset(tmp_path / "d", **override))


def test_labels_outside_declared_classes_are_refused():
    images = np.zeros((4, 2, 2), np.uint8)
    with pytest.raises(DataError, match="training label 10 is outside the 10 classes of x"):
        data.make_dataset(
            name="x", train_images=images, train_labels=np.array([0, 1, 2, 10]),
            test_images=images, test_labels=np.zeros(4), num_classes=10, origin="x",
        )  # fmt: skip


@pytest.mark.parametrize(
    "labels", [np.array([0, 1, -1, 2]), np.array([0.0, 1.5, 2.0, 1.0]), np.array([0, 1, np.nan, 2])]
)
def test_labels_that_are_not_whole_numbers_are_refused(labels):
    images = np.zeros((4, 2, 2), np.uint8)
    with pytest.raises(DataError, match="train labels must be whole numbers >= 0"):
        data.make_dataset(
            name="x", train_images=images, train_labels=labels, test_images=images,
            test_labels=np.arange(4), origin="x",
        )  # fmt: skip


def test_a_known_dataset_refuses_labels_beyond_its_classes(mnist, tmp_path):
    """Training labels overwritten with random bytes (0..255) in a folder of MNIST."""
    rng = np.random.default_rng(0)
    folder = write_dataset(
        tmp_path / "mnist",
        TRAIN_IMAGES=mnist.train_images[:500],
        TRAIN_LABELS=rng.integers(0, 256, 500).astype(np.uint8),
        TEST_IMAGES=mnist.test_images[:100],
        TEST_LABELS=mnist.test_labels[:100].astype(np.uint8),
    )
    with pytest.raises(DataError) as error:
        data.load_dataset("mnist", data_dir=folder)
    assert str(error.value).startswith(f"{folder}: training label 255 is outside the 10 classes")
    # A folder of another name: the two splits' ranges disagree, and both are named.
    renamed = folder.rename(tmp_path / "digits")
    with pytest.raises(DataError, match=r"training labels span 0\.\.255 but test labels 0\.\.9"):
        data.load_dataset("digits", data_dir=renamed)
    # Unless the user says how many classes there are.
    dataset = data.load_dataset("digits", data_dir=renamed, num_classes=256)
    assert dataset.num_classes == 256 and dataset.class_names[255] == "255"


def test_class_names_come_from_the_catalog(mnist):
    assert mnist.class_names == tuple("0123456789")
    fashion = data.make_dataset(
        name="fashion_mnist", train_images=mnist.train_images[:20],
        train_labels=mnist.train_labels[:20], test_images=mnist.test_images[:20],
        test_labels=mnist.test_labels[:20], origin="test",
    )  # fmt: skip
    assert fashion.class_names[0] == "T-shirt/top" and fashion.class_names[9] == "Ankle boot"


def test_real_mnist_through_the_environment(mnist_dir, tmp_path):
    environ = {"JAXSOFTMAX_DATA_DIR": str(mnist_dir.parent), "XDG_CACHE_HOME": str(tmp_path)}
    dataset = data.load_dataset("mnist", environ=environ)
    assert (len(dataset.train_images), len(dataset.test_images)) == (60000, 10000)
    assert dataset.num_classes == 10 and dataset.image_shape == (28, 28)


def test_download_fills_the_cache_when_nothing_is_found(mnist_dir, tmp_path, monkeypatch):
    """The lookup falls through to fetching; the fetch itself is tested in test_download."""
    fetched = []

    def fake_fetch(spec, target_dir, report=None):
        # Stand-in for the network, which tests may not use: copy the real files.
        fetched.append(spec.name)
        shutil.copytree(mnist_dir, target_dir)
        return target_dir

    from jaxsoftmax.data import download

    monkeypatch.setattr(download, "fetch_dataset", fake_fetch)
    dataset = data.load_dataset("mnist", environ={"XDG_CACHE_HOME": str(tmp_path)})
    assert fetched == ["mnist"] and len(dataset.test_labels) == 10000
    assert data.find_idx_files(tmp_path / "jaxsoftmax" / "mnist") is not None
