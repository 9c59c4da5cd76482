"""Reading IDX files, the format MNIST and its relatives are published in.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 per dimension, then the array in C order.
See http://yann.lecun.com/exdb/mnist/ ("FILE FORMATS").
"""

import os
import pathlib
import zlib

import numpy as np

from jaxsoftmax.errors import DataError

# Type codes of the IDX format and the big-endian NumPy dtype each stands for.
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
# The largest file we are willing to decompress; MNIST's biggest is 47 MB.
_MAX_BYTES = 2**32


def read_idx_bytes(content: bytes, *, name: str = "<bytes>") -> np.ndarray:
    """Parses the uncompressed bytes of an IDX file.

    Args:
      content: the whole file, uncompressed.
      name: how to name the file in error messages.

    Returns:
      The array, in native byte order, with the shape the header gives.

    Raises:
      DataError: the header is not IDX, or the length does not match it.
    """
    if len(content) < 4:
        raise DataError(f"{name}: not an IDX file (only {len(content)} bytes)")
    zero, type_code, num_dims = content[:2], content[2], content[3]
    if zero != b"\0\0" or type_code not in _IDX_DTYPES:
        raise DataError(f"{name}: not an IDX file (bad magic number 0x{content[:4].hex()})")
    if num_dims == 0:
        raise DataError(f"{name}: IDX header declares no dimensions")
    header_size = 4 + 4 * num_dims
    if len(content) < header_size:
        raise DataError(f"{name}: truncated IDX header ({len(content)} of {header_size} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(content, ">u4", count=num_dims, offset=4))
    dtype = _IDX_DTYPES[type_code]
    expected = header_size + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(content) != expected:
        problem = "truncated" if len(content) < expected else "has trailing bytes"
        raise DataError(
            f"{name}: IDX file {problem}: header says {'x'.join(map(str, shape))} "
            f"({expected} bytes), file has {len(content)} bytes"
        )
    array = np.frombuffer(content, dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads an IDX file, raw or gzip-compressed (detected from its content).

    Args:
      path: the file.

    Returns:
      The array the file holds.

    Raises:
      DataError: the file is missing, unreadable, not valid gzip or not valid IDX.
    """
    path = pathlib.Path(path)
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None
    if content[:2] == _GZIP_MAGIC:
        try:
            content = gunzip(content)
        except (OSError, EOFError, zlib.error) as error:
            raise DataError(f"{path}: corrupt gzip data ({error})") from None
    return read_idx_bytes(content, name=str(path))


class GzipTooLarge(OSError):
    """A gzip stream would decompress to more bytes than allowed."""


def gunzip(content: bytes, max_bytes: int = _MAX_BYTES) -> bytes:
    """Decompresses gzip bytes (one member or several), refusing a decompression bomb.

    Raises:
      GzipTooLarge: the output would exceed `max_bytes`.
      EOFError: the stream ends before its end-of-stream marker.
      zlib.error: the data is not valid gzip.
    """
    output = bytearray()
    while content:  # concatenated gzip members are legal: one decompressor each
        decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        output += decompressor.decompress(content, max_bytes + 1 - len(output))
        if len(output) > max_bytes or decompressor.unconsumed_tail:
            raise GzipTooLarge(f"uncompressed size exceeds {max_bytes} bytes")
        if not decompressor.eof:
            raise EOFError("compressed file ended before the end-of-stream marker was reached")
        content = decompressor.unused_data
    return bytes(output)


def read_images(path: str | os.PathLike) -> np.ndarray:
    """Reads an IDX file of images: uint8, shape (count, height, width).

    Raises:
      DataError: the file is not a 3-D uint8 IDX file, or its images are empty.
    """
    images = _read_uint8(path, "images of shape (count, height, width)", ndim=3)
    if images.shape[1] == 0 or images.shape[2] == 0:
        raise DataError(f"{path}: images have size {images.shape[1]}x{images.shape[2]}")
    return images


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """Reads an IDX file of class labels: uint8, shape (count,).

    Raises:
      DataError: the file is not a 1-D uint8 IDX file.
    """
    return _read_uint8(path, "labels of shape (count,)", ndim=1)


def _read_uint8(path: str | os.PathLike, what: str, *, ndim: int) -> np.ndarray:
    array = read_idx(path)
    if array.dtype != np.uint8 or array.ndim != ndim:
        raise DataError(
            f"{path}: expected uint8 {what}, found {array.dtype} of shape {array.shape}"
        )
    return array
