"""A dataset held in memory: the `Dataset` value, and `make_dataset`, which builds one from
arrays (a caller's own, or those the loaders in `data` read) after checking them.
"""

import dataclasses
import hashlib

import numpy as np

from jaxsoftmax.core import features
from jaxsoftmax.data import catalog
from jaxsoftmax.data import framing as framings
from jaxsoftmax.errors import ConfigError, DataError

# Which random stream of a seed picks the validation split (batches and initial weights
# use JAX keys of their own).
VALIDATION_STREAM = 2


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
      train_weights: float32 (num_train,), how much each training example counts in the
        loss (a step's loss is the batch mean of weight x cross-entropy), or None: each 1.

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
    train_weights: np.ndarray | None = None

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

    @property
    def framing(self) -> dict | None:
        """How the images frame what they show (`framing.framing_of`: MNIST's digits fill
        a 20x20 box centred by mass), which a picture is made to match; None for data
        that are not grey pixel images."""
        return framings.framing_of(self.train_images, self.background) if self.drawable else None

    def summary(self) -> dict:
        """What a model trained on this data must know to be used: JSON-friendly."""
        return {
            "name": self.name,
            "image_shape": list(self.image_shape),
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "background": self.background,
            "framing": self.framing,
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
        check_validation(size, len(self.train_images))
        order = np.random.default_rng([seed, VALIDATION_STREAM]).permutation(len(self.train_images))
        held_out, kept = np.sort(order[:size]), np.sort(order[size:])
        weights = None if self.train_weights is None else self.train_weights[kept]
        rest = dataclasses.replace(
            self, train_images=self.train_images[kept], train_labels=self.train_labels[kept],
            train_weights=weights,
        )  # fmt: skip
        return rest, held_out

    def fingerprint(self) -> str:
        """A SHA-256 of the arrays (shapes and contents): equal data, equal fingerprint.
        Hashed once (the arrays are not changed in place)."""
        if "_fingerprint" not in self.__dict__:
            digest = hashlib.sha256()
            arrays = (self.train_images, self.train_labels, self.test_images, self.test_labels)
            weights = () if self.train_weights is None else (self.train_weights,)
            for array in arrays + weights:
                array = np.ascontiguousarray(array)
                digest.update(f"{array.dtype.str}{array.shape}".encode())
                digest.update(array.data)
            object.__setattr__(self, "_fingerprint", digest.hexdigest())  # frozen otherwise
        return self.__dict__["_fingerprint"]


def check_validation(size: int, training_examples: int) -> None:
    """Raises ConfigError when a validation split of `size` leaves no training example."""
    if size >= training_examples:
        raise ConfigError(
            f"a validation split of {size} leaves no training examples of "
            f"{training_examples}; use a smaller `validation`"
        )


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


def make_dataset(
    *,
    train_images,
    train_labels,
    test_images=None,
    test_labels=None,
    name: str = "arrays",
    num_classes: int | None = None,
    class_names=None,
    origin: str = "arrays in memory",
    train_weights=None,
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
      train_labels, test_labels: (N,) whole numbers >= 0. Without a test split (both
        None), nothing is evaluated on one: choose on a validation split.
      name: what to call the data in messages and results.json.
      num_classes: the class count if known (from the user, or TFDS metadata). Else a
        dataset the catalog knows by `name` has its own (10 for mnist), and any other
        one as many as its labels span, the same in both splits.
      class_names: what each class is called (default: the catalog's, else the labels).
      origin: where the data came from, for messages.
      train_weights: (N,) numbers >= 0, not all 0, as `Dataset.train_weights`; None: 1s.

    Raises:
      DataError: ragged, non-finite or mismatched arrays, counts, shapes or labels, in
        one line naming the split.
    """
    train_images = _examples(origin, "train", train_images)
    train_labels = _labels(origin, "train", train_labels)
    test_images, test_labels = _test_split(origin, test_images, test_labels, train_images)
    _check_splits(origin, (train_images, train_labels), (test_images, test_labels))
    num_classes = _class_count(name, origin, train_labels, test_labels, num_classes)
    class_names = _class_names(origin, class_names, num_classes)
    return Dataset(
        name=name,
        train_images=train_images,
        train_labels=train_labels.astype(np.int32),
        test_images=test_images,
        test_labels=test_labels.astype(np.int32),
        num_classes=num_classes,
        origin=origin,
        class_names=class_names or (),
        train_weights=_weights(origin, train_weights, len(train_labels)),
    )


def _class_names(origin: str, class_names, num_classes: int) -> tuple[str, ...] | None:
    if class_names is None:
        return None
    class_names = tuple(str(class_name) for class_name in class_names)
    if len(class_names) != num_classes:
        raise DataError(
            f"{origin}: {len(class_names)} class names for {num_classes} classes; "
            "name each class once"
        )
    return class_names


def _weights(origin: str, weights, examples: int) -> np.ndarray | None:
    """The training examples' weights as float32, or None (checked as `make_dataset` says)."""
    if weights is None:
        return None
    try:
        weights = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{origin}: train weights must be numbers, one per example") from None
    if weights.shape != (examples,):
        raise DataError(
            f"{origin}: train weights have shape {weights.shape}; give one per example "
            f"({examples},)"
        )
    if not (np.isfinite(weights).all() and (weights >= 0).all() and weights.sum() > 0):
        raise DataError(f"{origin}: train weights must be finite, >= 0 and not all 0")
    return weights.astype(np.float32)


def _test_split(origin: str, images, labels, train_images: np.ndarray):
    """The test split's examples and labels; without one (both None), an empty split of
    the train split's kind and shape."""
    if (images is None) != (labels is None):
        raise DataError(f"{origin}: give test images and test labels, or neither")
    if images is None:
        return train_images[:0], np.zeros(0, np.int64)
    images, labels = _examples(origin, "test", images), _labels(origin, "test", labels)
    if len(images) == 0 and len(labels) == 0:
        raise DataError(f"{origin}: test split is empty; give None for no test split")
    return images, labels


def _check_splits(origin: str, train: tuple, test: tuple) -> None:
    """Raises DataError unless the (examples, labels) of both splits fit together."""
    (train_images, train_labels), (test_images, test_labels) = train, test
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
        if len(images) == 0 and split == "train":
            raise DataError(f"{origin}: {split} split is empty")
        if not _whole_and_not_negative(np.asarray(labels)):
            raise DataError(f"{origin}: {split} labels must be whole numbers >= 0")
    if train_images.shape[1:] != test_images.shape[1:]:
        raise DataError(
            f"{origin}: train images are {'x'.join(map(str, train_images.shape[1:]))} "
            f"but test images are {'x'.join(map(str, test_images.shape[1:]))}"
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
        return bool((labels >= 0).all())
    if np.issubdtype(labels.dtype, np.floating):  # 3.0 is a label, 2.5 and NaN are not
        return bool(np.isfinite(labels).all() and (labels == np.round(labels)).all()
                    and (labels >= 0).all())  # fmt: skip
    return False


def _class_count(name, origin, train_labels, test_labels, num_classes: int | None) -> int:
    """The class count, checked against the labels (see `make_dataset`)."""
    spans = {"training": int(train_labels.max())}
    if len(test_labels):  # a dataset without a test split takes its count from training
        spans["test"] = int(test_labels.max())
    spec = catalog.DATASETS.get(name)
    if num_classes is None and spec is not None and spec.class_names:
        num_classes = len(spec.class_names)
    if num_classes is not None:
        for split, largest in spans.items():
            if largest >= num_classes:
                raise DataError(
                    f"{origin}: {split} label {largest} is outside the {num_classes} classes "
                    f"of {name}; check the label files, or pass `num_classes`=N"
                )
    elif spans["training"] != spans.get("test", spans["training"]):
        raise DataError(
            f"{origin}: training labels span 0..{spans['training']} but test labels "
            f"0..{spans['test']}; check the label files, or pass `num_classes`=N if the "
            "data really has N classes"
        )
    else:
        num_classes = spans["training"] + 1
    if num_classes < 2:
        raise DataError(f"{origin}: labels name only {num_classes} class; need at least 2")
    return num_classes
