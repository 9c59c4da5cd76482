"""Loading through tensorflow-datasets, the optional `tfds` source.

TFDS cannot download anything here (no network in the sandbox or CI), so these tests run on
`tfds.testing.mock_data`: tfds builds each split from the dataset's own feature spec (real
image shapes, dtypes and class count) and fills it with random examples, without any files;
one prepares tfds's small `DummyMnist`, which is made from code. Where a test lets tfds
download, the probe that decides whether it could is pointed at a local server, or every proxy
at a closed local port, so that no request leaves the machine.
The tests that need tensorflow-datasets skip where the `tfds` extra is not installed; the one
for a missing install runs everywhere.
"""

import os
import pathlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from jaxsoftmax.data import catalog, tfds_source
from jaxsoftmax.errors import DataError

NUM_EXAMPLES = 7
MNIST_IMAGE_SHAPE = (28, 28)
MNIST_NUM_CLASSES = 10
REPO = pathlib.Path(__file__).resolve().parents[1]
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
PROXIES_SET_OFFLINE = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")
# "Fails fast": the command line measures under 2 s here; the bound leaves room for a busy machine.
FAST_FAILURE_BOUND_S = 30.0


@pytest.fixture(scope="module")
def tfds_only():
    """tensorflow_datasets alone, which imports without TensorFlow (under a second)."""
    return pytest.importorskip("tensorflow_datasets")


@pytest.fixture(scope="module")
def tfds():
    """tensorflow_datasets with TensorFlow imported (about 3 s, once for this module)."""
    pytest.importorskip("tensorflow")
    return pytest.importorskip("tensorflow_datasets")


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens, so connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def offline_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` with no proxy settings but HTTP(S) proxies, both cases, at a closed local port."""
    proxy = f"http://127.0.0.1:{closed_port()}"
    kept = {name: value for name, value in environ.items() if name.lower() not in PROXY_VARIABLES}
    return kept | {name: proxy for name in PROXIES_SET_OFFLINE}


def remove_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Takes every proxy variable out of this process's environment for the test."""
    for name in list(os.environ):
        if name.lower() in PROXY_VARIABLES:
            monkeypatch.delenv(name)


@pytest.fixture
def offline(monkeypatch) -> str:
    """Sends this process's web requests to a closed local port, as on a machine offline.

    Returns:
      The proxy URL.
    """
    remove_proxy_settings(monkeypatch)
    environment = offline_environment({})
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return environment["https_proxy"]


@pytest.fixture
def answering_server() -> Iterator[str]:
    """The URL of a local web server that answers every request, with an HTTP error."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            del args  # Keeps test output quiet.

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"http://{host}:{port}/"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """The URL of a local port that accepts connections but never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        host, port = listener.getsockname()
        yield f"http://{host}:{port}/"


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
    assert "'mnist'" in message and str(tmp_path) in message and "`source`=idx" in message
    assert "\n" not in message
    assert raised.value.__cause__ is not None


def test_unprepared_dataset_offline_fails_at_once_saying_what_to_do(tfds_only, tmp_path, offline):
    with pytest.raises(DataError) as raised:
        tfds_source.load_tfds_arrays(catalog.MNIST, data_dir=str(tmp_path), download=True)

    message = str(raised.value)
    assert message.startswith(
        f"tfds has no prepared 'mnist' in {tmp_path} and cannot download it "
        f"(storage.googleapis.com through proxy {offline}: connection refused)."
    )
    assert "import tensorflow_datasets as tfds; tfds.load('mnist')" in message
    assert "~/tensorflow_datasets/mnist" in message and "`data_dir`=DIR" in message
    assert "\n" not in message


def test_unprepared_dataset_behind_a_silent_server_fails_after_the_probe_timeout(
    tfds_only, tmp_path, silent_server, monkeypatch
):
    monkeypatch.setattr(tfds_source, "_DOWNLOAD_PROBE_URL", silent_server)
    monkeypatch.setattr(tfds_source, "_DOWNLOAD_PROBE_TIMEOUT_S", 0.5)
    remove_proxy_settings(monkeypatch)

    start_time = time.monotonic()
    with pytest.raises(DataError, match=r"cannot download it \(127\.0\.0\.1: "):
        tfds_source.load_tfds_arrays(catalog.MNIST, data_dir=str(tmp_path), download=True)
    assert time.monotonic() - start_time < FAST_FAILURE_BOUND_S


def test_any_answer_from_the_download_host_lets_tfds_download(
    tfds, tmp_path, answering_server, monkeypatch
):
    # mock_data stands in for tfds's download and prepare; the probe is all that is real here.
    monkeypatch.setattr(tfds_source, "_DOWNLOAD_PROBE_URL", answering_server)
    with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
        train_images, *_ = tfds_source.load_tfds_arrays(
            catalog.MNIST, data_dir=str(tmp_path), download=True
        )
    assert train_images.shape == (NUM_EXAMPLES, *MNIST_IMAGE_SHAPE)


def test_command_line_offline_fails_fast_with_one_line(tfds_only, tmp_path, cli_env):
    """`--source tfds` with no prepared dataset and no network: one line, within seconds.

    Every proxy names a closed local port, so the one request the run tries is refused on this
    machine; nothing is sent anywhere else.
    """
    python_path = os.pathsep.join(filter(None, [str(REPO), cli_env.get("PYTHONPATH")]))
    environment = offline_environment(cli_env) | {
        "PYTHONPATH": python_path,
        "TFDS_DATA_DIR": str(tmp_path / "tfds"),
    }
    command = [sys.executable, "-m", "jaxsoftmax.train", "--source", "tfds", "--steps", "1"]
    command += ["--logdir", str(tmp_path / "run")]

    start_time = time.monotonic()
    done = subprocess.run(
        command, env=environment, capture_output=True, text=True, timeout=FAST_FAILURE_BOUND_S * 4
    )
    elapsed_s = time.monotonic() - start_time

    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: tfds has no prepared 'mnist'")
    assert "--data-dir" in lines[0] and "Traceback" not in done.stderr
    assert elapsed_s < FAST_FAILURE_BOUND_S
    assert not (tmp_path / "run").exists()


def test_missing_tensorflow_datasets_says_how_to_install_it(monkeypatch):
    # None in sys.modules makes `import tensorflow_datasets` raise ImportError, installed or not.
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(DataError) as raised:
        tfds_source.load_tfds_arrays(catalog.MNIST)

    message = str(raised.value)
    assert "jaxsoftmax[tfds]" in message and "\n" not in message
    assert isinstance(raised.value.__cause__, ImportError)


def test_command_line_trains_from_tfds(tfds, tmp_path, capsys, monkeypatch, answering_server):
    """`--source tfds` end to end: the mocked dataset flows through the real training run."""
    from jaxsoftmax.cli import train as cli

    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    monkeypatch.setattr(tfds_source, "_DOWNLOAD_PROBE_URL", answering_server)
    logdir = tmp_path / "run"
    argv = ["--source", "tfds", "--steps", "4", "--batch-size", "5", "--eval-every", "2"]
    with tfds.testing.mock_data(num_examples=20):
        status = cli.main([*argv, "--quiet", "--no-compilation-cache", "--logdir", str(logdir)])
    assert status == 0, capsys.readouterr().err
    assert (logdir / "results.json").is_file()


def test_prepared_dataset_loads_without_asking_the_network(tfds, tmp_path, offline):
    class SupervisedDummyMnist(tfds.testing.DummyMnist, skip_registration=True):
        """tfds's 20 MNIST-shaped examples per split, made from code, as (image, label) pairs."""

        def _info(self):
            info = super()._info()
            return tfds.core.DatasetInfo(
                builder=self, features=info.features, supervised_keys=("image", "label")
            )

    builder = SupervisedDummyMnist(data_dir=str(tmp_path))
    builder.download_and_prepare()
    spec = catalog.DatasetSpec(name=builder.name, sha256={}, mirrors=(), tfds_name=builder.name)

    train_images, train_labels, test_images, _, num_classes = tfds_source.load_tfds_arrays(
        spec, data_dir=str(tmp_path), download=True
    )

    assert train_images.shape == (builder.info.splits["train"].num_examples, *MNIST_IMAGE_SHAPE)
    assert len(test_images) == builder.info.splits["test"].num_examples
    assert num_classes == MNIST_NUM_CLASSES
    assert sorted(set(train_labels.tolist())) == list(range(MNIST_NUM_CLASSES))
