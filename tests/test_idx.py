"""The IDX reader: real MNIST, hand-made files, and every kind of damage."""

import gzip
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxsoftmax.data import catalog
from jaxsoftmax.data.idx import read_idx, read_idx_bytes, read_images, read_labels
from jaxsoftmax.errors import DataError

# MNIST's published class counts (train, then test).
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """Encodes an array as IDX (independently of the reader)."""
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def test_real_mnist_shapes_and_class_counts(mnist_dir):
    images = read_images(mnist_dir / f"{catalog.TRAIN_IMAGES}.gz")
    labels = read_labels(mnist_dir / f"{catalog.TRAIN_LABELS}.gz")
    test_labels = read_labels(mnist_dir / f"{catalog.TEST_LABELS}.gz")
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(test_labels).tolist() == MNIST_TEST_COUNTS


@pytest.mark.parametrize("compress", [False, True])
def test_round_trip_raw_and_gzip(tmp_path, compress):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    content = idx_bytes(array)
    path = tmp_path / "x"
    path.write_bytes(gzip.compress(content) if compress else content)
    np.testing.assert_array_equal(read_idx(path), array)


def test_other_element_types_come_back_in_native_order():
    array = np.array([[1, -2], [300000, 4]], np.int32)
    result = read_idx_bytes(idx_bytes(array, 0x0C))
    np.testing.assert_array_equal(result, array)
    assert result.dtype == np.int32


@pytest.mark.parametrize(
    "content, match",
    [
        (b"\x00\x00", "only 2 bytes"),
        (b"\x01\x00\x08\x01" + b"\x00" * 8, "bad magic number"),
        (b"\x00\x00\x07\x01" + b"\x00" * 8, "bad magic number"),
        (b"\x00\x00\x08\x00", "no dimensions"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated IDX header"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05abc", "truncated"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x02abc", "trailing bytes"),
    ],
)
def test_damaged_content_is_named(content, match):
    with pytest.raises(DataError, match=match):
        read_idx_bytes(content, name="f")


def test_missing_and_corrupt_gzip_files(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_idx(tmp_path / "absent")
    truncated = gzip.compress(idx_bytes(np.zeros((100, 4), np.uint8)))[:-10]
    (tmp_path / "cut.gz").write_bytes(truncated)
    with pytest.raises(DataError, match=r"cut.gz: corrupt gzip"):
        read_idx(tmp_path / "cut.gz")
    (tmp_path / "garbage.gz").write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(DataError, match="corrupt gzip"):
        read_idx(tmp_path / "garbage.gz")


def test_images_and_labels_need_the_right_shape(tmp_path):
    (tmp_path / "labels").write_bytes(idx_bytes(np.zeros(5, np.uint8)))
    (tmp_path / "images").write_bytes(idx_bytes(np.zeros((5, 2, 2), np.uint8)))
    with pytest.raises(DataError, match="expected uint8 images"):
        read_images(tmp_path / "labels")
    with pytest.raises(DataError, match="expected uint8 labels"):
        read_labels(tmp_path / "images")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=64))
def test_arbitrary_bytes_give_an_array_or_a_data_error(content):
    try:
        array = read_idx_bytes(content)
    except DataError as error:
        assert "\n" not in str(error)
    else:
        assert array.size * array.itemsize == len(content) - 4 - 4 * array.ndim


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_mutated_real_files_give_a_consistent_array_or_a_data_error(data):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    compressed = data.draw(st.booleans())
    content = bytearray(gzip.compress(idx_bytes(array)) if compressed else idx_bytes(array))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(content) - 1))
        content[position] = data.draw(st.integers(0, 255))
    cut = bytes(content[: data.draw(st.integers(0, len(content)))])
    import pathlib
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "mutated"
        path.write_bytes(cut)
        try:
            loaded = read_idx(path)
        except DataError as error:
            assert "\n" not in str(error)
            return
    # What loads is exactly what its header and bytes say...
    raw = gzip.decompress(cut) if cut[:2] == b"\x1f\x8b" else cut
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    assert loaded.shape == shape
    assert loaded.astype(loaded.dtype.newbyteorder(">")).tobytes() == raw[4 + 4 * dims :]
    if compressed and cut[:2] == b"\x1f\x8b":
        # ...and gzip's checksum lets no change to the content through.
        np.testing.assert_array_equal(loaded, array)
