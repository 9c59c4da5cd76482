"""Reading IDX files, the format MNIST and its relatives are published in.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 per dimension, then the array in C order.
See http://yann.lecun.com/exdb/mnist/ ("FILE FORMATS").
"""

import math
import os
import pathlib
import stat
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


# An IDX header names at most this many dimensions (MNIST's images have 3).
MAX_DIMS = 8


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
    return _read_stream(_Stream(content, gzipped=False), name)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads an IDX file, raw or gzip-compressed (detected from its content), reading
    (and inflating) no more than its header promises: a file that holds more is refused
    as soon as the first byte beyond is seen, one whose header promises more than this
    machine's free memory before anything is read.

    Args:
      path: the file.

    Returns:
      The array the file holds.

    Raises:
      DataError: the file is missing, unreadable, not a regular file, not valid gzip or
        not valid IDX, or too big.
    """
    path = pathlib.Path(path)
    try:
        found = path.stat()
        if not stat.S_ISREG(found.st_mode):
            raise DataError(f"{path}: not a regular file; give an IDX file")
        if found.st_size > _MAX_BYTES:
            raise DataError(f"{path}: {found.st_size} bytes, more than an IDX file may hold")
        content = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None
    try:
        return _read_stream(_Stream(content, gzipped=content[:2] == _GZIP_MAGIC), str(path))
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: corrupt gzip data ({error})") from None


def _read_stream(stream: "_Stream", name: str) -> np.ndarray:
    """The array of an IDX file read from `stream`: its header, then exactly the bytes
    the header promises (checked against free memory first), then nothing more."""
    head = stream.read(4)
    if len(head) < 4:
        raise DataError(f"{name}: not an IDX file (only {len(head)} bytes)")
    zero, type_code, num_dims = head[:2], head[2], head[3]
    if zero != b"\0\0" or type_code not in _IDX_DTYPES:
        raise DataError(f"{name}: not an IDX file (bad magic number 0x{head.hex()})")
    if num_dims == 0:
        raise DataError(f"{name}: IDX header declares no dimensions")
    if num_dims > MAX_DIMS:
        raise DataError(f"{name}: IDX header declares {num_dims} dimensions (at most {MAX_DIMS})")
    dims = stream.read(4 * num_dims)
    if len(dims) < 4 * num_dims:
        raise DataError(
            f"{name}: truncated IDX header ({4 + len(dims)} of {4 + 4 * num_dims} bytes)"
        )
    shape = tuple(int.from_bytes(dims[i : i + 4], "big") for i in range(0, len(dims), 4))
    dtype = _IDX_DTYPES[type_code]
    size = math.prod(shape) * dtype.itemsize  # Python integers: no overflow
    described = f"header says {'x'.join(map(str, shape))} ({4 + 4 * num_dims + size} bytes)"
    check_fits(size, f"{name}: IDX {described}")
    data = stream.read(size)
    if len(data) < size:
        raise DataError(f"{name}: IDX file truncated: {described}, file has "
                        f"{4 + len(dims) + len(data)} bytes")  # fmt: skip
    if stream.read(1):
        raise DataError(f"{name}: IDX file has trailing bytes: {described}, file has more")
    array = np.frombuffer(data, dtype).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def check_fits(size: int, what: str) -> None:
    """Raises DataError when `size` bytes are more than this machine's free memory (or
    than an IDX file may hold), naming `what` would take them."""
    free = available_memory()
    if size > _MAX_BYTES or (free is not None and size > free):
        room = "" if free is None else f"; {free / 2**30:.1f} GiB of memory is free"
        raise DataError(f"{what}: {size / 2**30:.1f} GiB, too big to read{room}")


def available_memory() -> int | None:
    """Bytes of memory free for this process now (Linux's MemAvailable), or None."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


class _Stream:
    """An IDX file's bytes read on demand: as they are, or inflated from gzip members,
    never more than asked for (so a decompression bomb is never inflated)."""

    def __init__(self, content: bytes, *, gzipped: bool):
        self._rest, self._gzipped, self._position = content, gzipped, 0
        self._inflating = None

    def read(self, count: int) -> bytes:
        if not self._gzipped:
            out = self._rest[self._position : self._position + count]
            self._position += len(out)
            return out
        parts, wanted = [], count
        while wanted > 0:
            if self._inflating is None:
                if not self._rest:
                    break
                self._inflating = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            part = self._inflating.decompress(self._rest, wanted)
            parts.append(part)
            wanted -= len(part)
            if self._inflating.eof:  # the next gzip member, if any
                self._rest, self._inflating = self._inflating.unused_data, None
            else:
                self._rest = self._inflating.unconsumed_tail
                if not part and not self._rest:
                    raise EOFError("compressed file ended before the end-of-stream marker")
        return parts[0] if len(parts) == 1 else b"".join(parts)


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


def looks_like_idx(magic: bytes) -> bool:
    """Whether a file's first bytes are an IDX header's: two zero bytes, a type code,
    at least one dimension (a TGA or ICO picture also starts with two zero bytes)."""
    return len(magic) >= 4 and magic[:2] == b"\0\0" and magic[2] in _IDX_DTYPES and magic[3] > 0


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
