"""Datasets: MNIST-format images and labels, found on disk, fetched, or loaded via TFDS.

Lookup order for `load_dataset(name)` with the default `source="idx"`:

1. `data_dir`, a folder holding the four IDX files (raw or .gz);
2. `$JAXSOFTMAX_DATA_DIR/<name>`, a root with one folder per dataset;
3. the user cache, `$XDG_CACHE_HOME/jaxsoftmax/<name>` (default `~/.cache/jaxsoftmax/<name>`);
4. the system dataset folder `/usr/share/datasets/<name with - for _>` (Debian's packages);
5. a download into the user cache, verified against known SHA-256 sums.
"""

import dataclasses
import hashlib
import os
import pathlib
from collections.abc import Callable, Mapping

import numpy as np

from jaxsoftmax import catalog, features
from jaxsoftmax.errors import ConfigError, DataError
from jaxsoftmax.idx import read_images, read_labels

SOURCES = ("idx", "tfds")
# Which random stream of a seed picks the validation split (batches and initial weights
# use JAX keys of their own).
VALIDATION_STREAM = 2
SYSTEM_DATASETS_DIR = pathlib.Path("/usr/share/datasets")


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Dataset:
    """An image classification dataset held as NumPy arrays on the host.

    Attributes:
      name: the dataset's name, e.g. `mnist`.
      train_images: (num_train, *image_shape): uint8 pixels (0-255, scaled into [0, 1]
        for the model) or float32 features (taken as they are); see `features`.
      train_labels: int32 array of shape (num_train,), values in [0, num_classes).
      test_images: (num_test, *image_shape), of the train images' dtype.
      test_labels: int32 array of shape (num_test,).
      num_classes: number of classes.
      origin: where the data came from (a folder, or `tfds`), for messages.
      class_names: what each label means (`0`, `1`, ... where the data does not say).

    The arrays are not to be changed in place: `fingerprint()` is hashed once, and
    `dataclasses.replace` makes a changed dataset.
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int
    origin: str
    class_names: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.class_names:
            object.__setattr__(
                self, "class_names", default_class_names(self.name, self.num_classes)
            )

    @property
    def image_shape(self) -> tuple[int, ...]:
        """The shape of one example: (height, width), (height, width, channels) or
        (features,)."""
        return self.train_images.shape[1:]

    @property
    def inputs(self) -> str:
        """`pixels` (uint8) or `features` (float): how the model reads the arrays."""
        return features.kind_of(self.train_images.dtype)

    @property
    def drawable(self) -> bool:
        """Whether the examples are grey images, which TensorBoard can show as pictures."""
        return len(self.image_shape) == 2 and self.inputs == features.PIXELS

    @property
    def num_features(self) -> int:
        """Pixels per image: the model's input size."""
        return int(np.prod(self.image_shape))

    @property
    def background(self) -> str | None:
        """`dark` where the images' borders are mostly dark (MNIST: light digits on black),
        else `light`: what a new image is matched to before it is classified. None for
        data that are not grey pixel images."""
        if not self.drawable:
            return None
        images = self.train_images[:1000]
        border = np.concatenate(
            [images[:, 0].ravel(), images[:, -1].ravel(), images[:, :, 0].ravel(),
             images[:, :, -1].ravel()]
        )  # fmt: skip
        return "dark" if border.mean() < 128 else "light"

    def summary(self) -> dict:
        """What a model trained on this data must know to be used: JSON-friendly."""
        return {
            "name": self.name,
            "image_shape": list(self.image_shape),
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "background": self.background,
            "inputs": self.inputs,
        }

    def split_validation(self, size: int, seed: int) -> tuple["Dataset", np.ndarray]:
        """The dataset with `size` training examples held out, and those examples.

        The held-out examples are a random choice fixed by `seed` (NumPy's PCG64, the
        same on every machine); the training examples keep their order.

        Returns:
          The dataset without them, and their indices in `train_images` (sorted).

        Raises:
          ConfigError: `size` leaves fewer than one training example.
        """
        if size >= len(self.train_images):
            raise ConfigError(
                f"a validation split of {size} leaves no training examples of "
                f"{len(self.train_images)}; use a smaller --validation"
            )
        order = np.random.default_rng([seed, VALIDATION_STREAM]).permutation(len(self.train_images))
        held_out, kept = np.sort(order[:size]), np.sort(order[size:])
        rest = dataclasses.replace(
            self, train_images=self.train_images[kept], train_labels=self.train_labels[kept]
        )
        return rest, held_out

    def fingerprint(self) -> str:
        """A SHA-256 of the arrays (shapes and contents): equal data, equal fingerprint.
        Hashed once (the arrays are not changed in place)."""
        if "_fingerprint" not in self.__dict__:
            digest = hashlib.sha256()
            for array in (self.train_images, self.train_labels, self.test_images, self.test_labels):
                array = np.ascontiguousarray(array)
                digest.update(f"{array.dtype.str}{array.shape}".encode())
                digest.update(array.data)
            object.__setattr__(self, "_fingerprint", digest.hexdigest())  # frozen otherwise
        return self.__dict__["_fingerprint"]


def default_class_names(name: str, num_classes: int) -> tuple[str, ...]:
    """The catalog's class names of a known dataset of that many classes, else the labels."""
    spec = catalog.DATASETS.get(name)
    if spec is not None and len(spec.class_names) == num_classes:
        return spec.class_names
    return tuple(str(label) for label in range(num_classes))


def describe(dataset: Dataset) -> str:
    """One line saying what a dataset holds and where it came from."""
    shape = "x".join(map(str, dataset.image_shape))
    what = "images" if dataset.inputs == features.PIXELS else "examples of float features"
    return (
        f"{dataset.name}: {len(dataset.train_images)} training and {len(dataset.test_images)} "
        f"test {what} of {shape}, {dataset.num_classes} classes, from {dataset.origin}"
    )


def user_cache_dir(environ: Mapping[str, str] | None = None) -> pathlib.Path:
    """The jaxsoftmax folder of the user cache, honouring XDG_CACHE_HOME."""
    environ = os.environ if environ is None else environ
    root = environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(root) / "jaxsoftmax"


def candidate_dirs(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[pathlib.Path]:
    """The folders searched for a dataset's IDX files, in order.

    Args:
      name: dataset name; only used to form per-dataset folder names.
      data_dir: a folder given explicitly; when set it is the only candidate.
      environ: the environment to read JAXSOFTMAX_DATA_DIR and XDG_CACHE_HOME from
        (default: the process environment).
    """
    if data_dir is not None:
        return [pathlib.Path(data_dir)]
    environ = os.environ if environ is None else environ
    dirs = []
    if environ.get("JAXSOFTMAX_DATA_DIR"):
        dirs.append(pathlib.Path(environ["JAXSOFTMAX_DATA_DIR"]) / name)
    dirs.append(user_cache_dir(environ) / name)
    spec = catalog.DATASETS.get(name)
    system_name = spec.system_dir_name if spec else name.replace("_", "-")
    dirs.append(SYSTEM_DATASETS_DIR / system_name)
    return dirs


def find_idx_files(folder: pathlib.Path) -> dict[str, pathlib.Path] | None:
    """The four standard IDX files in `folder` (raw or .gz), or None if any is missing."""
    found = {}
    for stem in catalog.IDX_FILES:
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                found[stem] = candidate
                break
        else:
            return None
    return found


def load_idx_folder(
    folder: str | os.PathLike, *, name: str | None = None, num_classes: int | None = None
) -> Dataset:
    """Loads and cross-checks the four IDX files of an MNIST-format dataset.

    Image size comes from the data, and so does the class count unless the catalog
    knows the dataset by `name` or `num_classes` is given (see `make_dataset`).

    Raises:
      DataError: a file is missing, corrupt, or the files disagree with each other.
    """
    folder = pathlib.Path(folder)
    files = find_idx_files(folder)
    if files is None:
        missing = [
            stem
            for stem in catalog.IDX_FILES
            if not (folder / stem).is_file() and not (folder / f"{stem}.gz").is_file()
        ]
        raise DataError(
            f"{folder}: missing IDX file(s) {', '.join(missing)}; "
            "a data folder must hold the four standard files (optionally .gz)"
        )
    train_images = read_images(files[catalog.TRAIN_IMAGES])
    train_labels = read_labels(files[catalog.TRAIN_LABELS])
    test_images = read_images(files[catalog.TEST_IMAGES])
    test_labels = read_labels(files[catalog.TEST_LABELS])
    return make_dataset(
        name=name or folder.name,
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        num_classes=num_classes,
        origin=str(folder),
    )


def make_dataset(
    *,
    train_images,
    train_labels,
    test_images,
    test_labels,
    name: str = "arrays",
    num_classes: int | None = None,
    class_names=None,
    origin: str = "arrays in memory",
) -> Dataset:
    """Builds a Dataset from arrays a caller holds, after checking that they fit together.

        dataset = js.make_dataset(train_images=x_train, train_labels=y_train,
                                  test_images=x_test, test_labels=y_test)

    Nothing is silently converted. uint8 arrays are pixels, 0-255, which the model scales
    into [0, 1] (as IDX files and TFDS give them); whole numbers 0-255 of another integer
    dtype are the same pixels. Float arrays are features, kept as float32 on the scale
    they have: MNIST already divided by 255 trains as the uint8 files do, standardised
    columns train as they are (see `features`).

    Args:
      train_images, test_images: (N, features) vectors, (N, height, width) images or
        (N, height, width, channels), of one kind (pixels or features) and shape.
      train_labels, test_labels: (N,) whole numbers >= 0.
      name: what to call the data in messages and results.json.
      num_classes: the class count if known (from the user, or TFDS metadata). Else a
        dataset the catalog knows by `name` has its own (10 for mnist), and any other
        one as many as its labels span, the same in both splits.
      class_names: what each class is called (default: the catalog's, else the labels).
      origin: where the data came from, for messages.

    Raises:
      DataError: ragged, non-finite or mismatched arrays, counts, shapes or labels, in
        one line naming the split.
    """
    train_images = _examples(origin, "train", train_images)
    test_images = _examples(origin, "test", test_images)
    train_labels = _labels(origin, "train", train_labels)
    test_labels = _labels(origin, "test", test_labels)
    if train_images.dtype != test_images.dtype:
        raise DataError(
            f"{origin}: train examples are {features.kind_of(train_images.dtype)} but test "
            f"examples {features.kind_of(test_images.dtype)}; give both as uint8 pixels or "
            "both as float features"
        )
    for split, images, labels in (
        ("train", train_images, train_labels),
        ("test", test_images, test_labels),
    ):
        if len(images) != len(labels):
            raise DataError(
                f"{origin}: {split} split has {len(images)} images but {len(labels)} labels"
            )
        if len(images) == 0:
            raise DataError(f"{origin}: {split} split is empty")
        if not _whole_and_not_negative(np.asarray(labels)):
            raise DataError(f"{origin}: {split} labels must be whole numbers >= 0")
    if train_images.shape[1:] != test_images.shape[1:]:
        raise DataError(
            f"{origin}: train images are {'x'.join(map(str, train_images.shape[1:]))} "
            f"but test images are {'x'.join(map(str, test_images.shape[1:]))}"
        )
    num_classes = _class_count(name, origin, train_labels, test_labels, num_classes)
    if class_names is not None:
        class_names = tuple(str(class_name) for class_name in class_names)
        if len(class_names) != num_classes:
            raise DataError(
                f"{origin}: {len(class_names)} class names for {num_classes} classes; "
                "name each class once"
            )
    return Dataset(
        name=name,
        train_images=train_images,
        train_labels=train_labels.astype(np.int32),
        test_images=test_images,
        test_labels=test_labels.astype(np.int32),
        num_classes=num_classes,
        origin=origin,
        class_names=class_names or (),
    )


def _examples(origin: str, split: str, images) -> np.ndarray:
    """A split's examples as uint8 pixels or float32 features (see `make_dataset`)."""
    try:
        images = np.asarray(images)
    except ValueError:
        raise DataError(
            f"{origin}: {split} examples are ragged (not all of one shape); give one array"
        ) from None
    if images.ndim not in (2, 3, 4):
        raise DataError(
            f"{origin}: {split} examples have shape {images.shape}; give (N, features) "
            "vectors, (N, height, width) or (N, height, width, channels) images"
        )
    if images.dtype == np.uint8:
        return images
    if np.issubdtype(images.dtype, np.floating):
        if not np.isfinite(images).all():
            raise DataError(f"{origin}: {split} examples hold NaN or infinite values")
        return images.astype(np.float32)
    if np.issubdtype(images.dtype, np.integer) and images.size:
        if images.min() >= 0 and images.max() <= 255:  # pixels in a wider type
            return images.astype(np.uint8)
        raise DataError(
            f"{origin}: {split} examples are {images.dtype} from {images.min()} to "
            f"{images.max()}; give uint8 pixels 0-255, or float features"
        )
    raise DataError(
        f"{origin}: {split} examples are {images.dtype}; give uint8 pixels or float features"
    )


def _labels(origin: str, split: str, labels) -> np.ndarray:
    try:
        labels = np.asarray(labels)
    except ValueError:
        raise DataError(f"{origin}: {split} labels are ragged; give one number each") from None
    if labels.ndim != 1:
        raise DataError(
            f"{origin}: {split} labels have shape {labels.shape}; give one per example (N,)"
        )
    return labels


def _whole_and_not_negative(labels: np.ndarray) -> bool:
    if np.issubdtype(labels.dtype, np.integer):
        return bool(labels.min() >= 0)
    if np.issubdtype(labels.dtype, np.floating):  # 3.0 is a label, 2.5 and NaN are not
        return bool(np.isfinite(labels).all() and (labels == np.round(labels)).all()
                    and labels.min() >= 0)  # fmt: skip
    return False


def _class_count(name, origin, train_labels, test_labels, num_classes: int | None) -> int:
    """The class count, checked against the labels (see `make_dataset`)."""
    spans = {"training": int(train_labels.max()), "test": int(test_labels.max())}
    spec = catalog.DATASETS.get(name)
    if num_classes is None and spec is not None and spec.class_names:
        num_classes = len(spec.class_names)
    if num_classes is not None:
        for split, largest in spans.items():
            if largest >= num_classes:
                raise DataError(
                    f"{origin}: {split} label {largest} is outside the {num_classes} classes "
                    f"of {name}; check the label files, or pass --num-classes N"
                )
    elif spans["training"] != spans["test"]:
        raise DataError(
            f"{origin}: training labels span 0..{spans['training']} but test labels "
            f"0..{spans['test']}; check the label files, or pass --num-classes N if the "
            "data really has N classes"
        )
    else:
        num_classes = spans["training"] + 1
    if num_classes < 2:
        raise DataError(f"{origin}: labels name only {num_classes} class; need at least 2")
    return num_classes


def load_dataset(
    name: str = "mnist",
    *,
    data_dir: str | os.PathLike | None = None,
    source: str = "idx",
    download: bool = True,
    environ: Mapping[str, str] | None = None,
    report: Callable[[str], None] | None = None,
    num_classes: int | None = None,
) -> Dataset:
    """Loads a dataset by name, or from a folder of IDX files.

    Args:
      name: `mnist` or `fashion_mnist`; with `data_dir`, any name (used in messages; a
        catalog name also fixes the class count and class names).
      data_dir: a folder holding the four standard IDX files; skips the lookup.
      source: `idx` (files on disk, fetched if missing) or `tfds` (tensorflow-datasets).
      download: whether to fetch a known dataset that is found nowhere on disk.
      environ: environment for JAXSOFTMAX_DATA_DIR and XDG_CACHE_HOME (default: os.environ).
      report: called with one-line progress messages (e.g. downloads); default silent.
      num_classes: the class count, where the labels alone do not show it (see
        `make_dataset`).

    Returns:
      The dataset, images uint8 (N, height, width) and labels int32 (N,).

    Raises:
      DataError: the dataset is unknown, cannot be found or fetched, or is invalid.
    """
    if source not in SOURCES:
        raise DataError(f"unknown data source {source!r}; choose one of {', '.join(SOURCES)}")
    if source == "tfds":
        return _load_tfds(name, data_dir, download)
    spec = catalog.DATASETS.get(name)
    if data_dir is not None:
        return load_idx_folder(data_dir, name=name, num_classes=num_classes)
    if spec is None:
        raise DataError(f"unknown dataset {name!r}; choose {_known()}, or pass --data-dir DIR")
    for folder in candidate_dirs(name, environ=environ):
        if find_idx_files(folder) is not None:
            return load_idx_folder(folder, name=name, num_classes=num_classes)
    cache = user_cache_dir(environ) / name
    if not download:
        searched = ", ".join(map(str, candidate_dirs(name, environ=environ)))
        raise DataError(
            f"{name} not found (looked in {searched}); "
            f"put the four IDX files in {cache} or pass --data-dir DIR"
        )
    from jaxsoftmax import download as fetching

    fetching.fetch_dataset(spec, cache, report=report)
    return load_idx_folder(cache, name=name, num_classes=num_classes)


def _load_tfds(name: str, data_dir, download: bool) -> Dataset:
    from jaxsoftmax import tfds_source  # TensorFlow is heavy: import only when asked.

    spec = catalog.DATASETS.get(name)
    if spec is None:
        raise DataError(f"unknown dataset {name!r} for --source tfds; choose {_known()}")
    arrays = tfds_source.load_tfds_arrays(
        spec, data_dir=None if data_dir is None else str(data_dir), download=download
    )
    train_images, train_labels, test_images, test_labels, num_classes = arrays
    return make_dataset(
        name=name,
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        num_classes=num_classes,
        origin="tfds",
    )


def _known() -> str:
    return " or ".join(catalog.DATASETS)
