"""A user's images, made fit for a model: picture files, IDX files and NumPy arrays.

A picture (PNG, JPEG, BMP, anything Pillow reads) becomes one grayscale image: flattened
onto white where it is transparent, padded to a square with its own border's shade (so
a digit keeps its proportions), resized to the model's size with antialiasing, and
inverted where its background does not match the training data's (MNIST is a light
digit on a dark ground; a scan is usually dark on light). An IDX images file or a `.npy`
array holds images already, of the model's size, used as they are.
"""

import math
import pathlib
import stat

import numpy as np

from jaxsoftmax.data.idx import check_fits, read_idx
from jaxsoftmax.errors import DataError

_NPY_MAGIC = b"\x93NUMPY"
# The most an images file may be and the most pixels a picture may have, both decided
# before anything is decoded (an 8000x8000 photo), and the most pixels of the square a
# picture is padded to (a longer one is shrunk first).
MAX_FILE_BYTES = 2**30
MAX_PICTURE_PIXELS = 64_000_000
MAX_SQUARE_PIXELS = 16_000_000
_GZIP_MAGIC = b"\x1f\x8b"


def read_images(
    path: str | pathlib.Path,
    image_shape: tuple[int, int],
    *,
    background: str = "dark",
    invert: bool | None = None,
) -> np.ndarray:
    """The images in a file, (N, height, width), as the model takes them: uint8, or
    float32 in [0, 1] where a `.npy` array holds floats.

    Args:
      path: a picture, an IDX images file (raw or gzip) or a `.npy` array of images.
      image_shape: (height, width) the model takes.
      background: the training images' background, `dark` or `light`.
      invert: for pictures, whether to invert them; None decides from their border.

    Raises:
      DataError: the file cannot be read, holds no images, or images of another size
        (for IDX and arrays, which are not resized).
    """
    path = pathlib.Path(path)
    try:
        found = path.stat()
        if not stat.S_ISREG(found.st_mode):  # /dev/zero, a FIFO, a folder: never read
            raise DataError(f"{path}: not a regular file; give a picture, IDX file or .npy array")
        if found.st_size > MAX_FILE_BYTES:
            raise DataError(
                f"{path}: {found.st_size / 2**20:.0f} MiB, more than the "
                f"{MAX_FILE_BYTES // 2**20} MiB an images file may be"
            )
        with open(path, "rb") as handle:
            magic = handle.read(8)
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None
    if magic.startswith(_NPY_MAGIC):
        return _fit_array(path, _load_npy(path), image_shape)
    if magic.startswith(_GZIP_MAGIC) or magic[:2] == b"\0\0":
        return _fit_array(path, read_idx(path), image_shape)
    return _picture(path, image_shape, background=background, invert=invert)[None]


def _load_npy(path: pathlib.Path) -> np.ndarray:
    """A `.npy` array, its header checked against the file's size and free memory first."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)  # fmt: skip
            shape, _, dtype = read_header(handle)
            data_bytes = path.stat().st_size - handle.tell()
        if dtype.hasobject or dtype.fields is not None:
            raise DataError(f"{path}: a .npy array of {dtype} holds no images; give numbers")
        size = math.prod(shape) * dtype.itemsize
        if size != data_bytes:
            raise DataError(
                f"{path}: .npy header says {shape} {dtype} ({size} bytes), the file holds "
                f"{data_bytes}"
            )
        check_fits(size, f"{path}: a .npy array of {shape} {dtype}")
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"{path}: not a readable .npy array ({error})") from None


def _fit_array(path: pathlib.Path, array: np.ndarray, image_shape) -> np.ndarray:
    """An array of images checked against the model's shape: uint8 (N, height, width)."""
    height, width = image_shape
    if array.shape == (height, width):
        array = array[None]
    if array.ndim == 2 and array.shape[1] == height * width:
        array = array.reshape(len(array), height, width)
    if array.ndim != 3 or array.shape[1:] != (height, width) or not len(array):
        raise DataError(
            f"{path} holds an array of shape {array.shape}; the model takes {height}x{width} "
            f"images: (N, {height}, {width}), (N, {height * width}) or ({height}, {width})"
        )
    if array.dtype == np.uint8:
        return array
    floats = np.issubdtype(array.dtype, np.floating) and np.isfinite(array).all()
    if floats and array.min() >= 0 and array.max() <= 1:
        return array.astype(np.float32)
    raise DataError(f"{path}: images must be uint8 (0-255) or float in [0, 1], not {array.dtype}")


def _picture(path: pathlib.Path, image_shape, *, background: str, invert) -> np.ndarray:
    """One picture as a uint8 (height, width) image the model takes."""
    from PIL import Image, UnidentifiedImageError  # Pillow comes with TensorBoard

    try:
        with Image.open(path) as picture:  # reads the header alone
            _check_pixels(path, *picture.size)
            picture.load()
            if picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info:
                white = Image.new("RGBA", picture.size, (255, 255, 255, 255))
                picture = Image.alpha_composite(white, picture.convert("RGBA"))
            gray = picture.convert("L")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
        reason = "not an image, IDX file or .npy array"
        if not isinstance(error, UnidentifiedImageError):
            reason = f"cannot read it as an image ({str(error).splitlines()[0] or error})"
        raise DataError(f"{path}: {reason}") from None
    pixels = np.asarray(gray)
    if pixels.size == 0:
        raise DataError(f"{path}: the image is empty")
    shade = int(np.median(_border(pixels)))
    side = max(pixels.shape)
    if side * side > MAX_SQUARE_PIXELS:  # a long thin picture: shrink it before padding
        scale = math.sqrt(MAX_SQUARE_PIXELS) / side
        size = (max(1, round(gray.width * scale)), max(1, round(gray.height * scale)))
        gray, side = gray.resize(size, Image.Resampling.LANCZOS), max(size)
    square = Image.new("L", (side, side), shade)
    square.paste(gray, ((side - gray.width) // 2, (side - gray.height) // 2))
    height, width = image_shape
    resized = np.asarray(square.resize((width, height), Image.Resampling.LANCZOS))
    if invert is None:
        invert = (shade >= 128) != (background == "light")
    return 255 - resized if invert else resized


def _check_pixels(path: pathlib.Path, width: int, height: int) -> None:
    """Raises DataError before a picture of more than MAX_PICTURE_PIXELS is decoded."""
    if width * height > MAX_PICTURE_PIXELS:
        raise DataError(
            f"{path}: a {width}x{height} picture is too big to classify (at most "
            f"{MAX_PICTURE_PIXELS // 10**6} million pixels); crop or shrink it"
        )


def _border(pixels: np.ndarray) -> np.ndarray:
    return np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
