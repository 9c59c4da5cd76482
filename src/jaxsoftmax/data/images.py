"""A user's images, made fit for a model: picture files, IDX files and NumPy arrays.

A picture (PNG, JPEG, BMP, TIFF, anything Pillow reads) becomes one grayscale image: turned
upright as its EXIF orientation says, 16-bit and float pixels kept to their depth, a
transparent one flattened onto the shade its drawing stands out from; then framed as the
training images are (see `framing`: MNIST's recipe of an ink box scaled to 20x20 and
centred by mass, from a photo's background, ink and contrast), or, `raw`, only padded
to a square with its border's shade and resized; light ink on dark where the training
data is (MNIST), else inverted. A picture already of the model's size is taken as
framed. An IDX images file or a `.npy` array holds images already, of the model's size,
used as they are.
"""

import math
import pathlib
import stat
import struct
import warnings

import numpy as np

from jaxsoftmax.data import framing as framings
from jaxsoftmax.data import idx, photos
from jaxsoftmax.errors import DataError

_NPY_MAGIC = b"\x93NUMPY"
# The most an images file may be and the most pixels a picture may have, both decided
# before anything is decoded (an 8000x8000 photo), and the longest side a picture is
# shrunk to before it is looked at (its digit keeps dozens of pixels; a long thin
# picture is never padded to a huge square).
MAX_FILE_BYTES = 2**30
MAX_PICTURE_PIXELS = 64_000_000
WORK_SIDE = 1024
_EXIF_ORIENTATION = 0x0112
# What Pillow's decoders raise on a damaged or hostile file (a broken PNG chunk is a
# SyntaxError, a garbage EXIF block a struct.error).
_UNREADABLE = (OSError, ValueError, SyntaxError, struct.error, IndexError, TypeError, EOFError)
_GZIP_MAGIC = b"\x1f\x8b"


def read_images(
    path: str | pathlib.Path,
    image_shape: tuple[int, int],
    *,
    background: str = "dark",
    invert: bool | None = None,
    framing: dict | None = None,
    raw: bool = False,
) -> tuple[np.ndarray, dict | None]:
    """The images in a file, (N, height, width), as the model takes them: uint8, or
    float32 in [0, 1] where a `.npy` array holds floats; and, for a picture, what was
    done to it (None for arrays, taken as they are).

    Args:
      path: a picture, an IDX images file (raw or gzip) or a `.npy` array of images.
      image_shape: (height, width) the model takes.
      background: the training images' background, `dark` or `light`.
      invert: for pictures, whether to invert them; None decides from their border.
      framing: how the training images are framed (`framing.framing_of`); None:
        MNIST's recipe.
      raw: pictures only padded and resized, not framed.

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
        return _fit_array(path, _load_npy(path), image_shape), None
    if magic.startswith(_GZIP_MAGIC) or idx.looks_like_idx(magic):
        return _fit_array(path, idx.read_idx(path), image_shape), None
    image, how = _picture(path, image_shape, background=background, invert=invert,
                          framing=framing, raw=raw)  # fmt: skip
    return image[None], how


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
        idx.check_fits(size, f"{path}: a .npy array of {shape} {dtype}")
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


def _picture(
    path: pathlib.Path, image_shape, *, background: str, invert, framing: dict | None, raw: bool
) -> tuple[np.ndarray, dict]:
    """One picture as a uint8 (height, width) image the model takes, and what was done."""
    gray, scale, how = _decoded(path)
    dark_ink = None if invert is None else invert != (background == "light")
    if raw or (gray.shape == tuple(image_shape) and scale == 1):
        image, done = _padded(gray, image_shape, dark_ink)
        how |= done | {"framed": False}
    else:
        framing = framing or framings.default_framing(image_shape)
        image, done = photos.frame(gray, image_shape, framing, dark_ink=dark_ink)
        if "ink_box" in done:
            done["ink_box"] = [round(v / scale) for v in done["ink_box"]]
        how |= done | {"framed": True}
    if background == "light":
        image = 1 - image
    return np.round(image * 255).astype(np.uint8), how


def _decoded(path: pathlib.Path) -> tuple[np.ndarray, float, dict]:
    """A picture in grayscale, float in [0, 1], turned upright and shrunk to at most
    WORK_SIDE pixels a side; the scale it was shrunk by; what was done."""
    from PIL import Image, ImageOps, UnidentifiedImageError  # Pillow comes with TensorBoard

    how = {}
    try:
        with warnings.catch_warnings():  # Pillow's own bomb warning: ours is checked next
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(path)  # reads the header alone
        with opened as picture:
            _check_pixels(path, *picture.size)
            picture.draft("L", (WORK_SIDE, WORK_SIDE))  # a JPEG decoded smaller, gray
            picture.load()
            orientation = picture.getexif().get(_EXIF_ORIENTATION, 1)
            if orientation in range(2, 9):
                picture = ImageOps.exif_transpose(picture)
                how["orientation"] = f"turned upright (EXIF orientation {orientation})"
            picture, levels = _resizable(path, picture)
            scale = min(1.0, WORK_SIDE / max(picture.size))
            if scale < 1:  # reduced by whole factors first: a long thin picture stays cheap
                size = [max(1, round(side * scale)) for side in picture.size]
                picture = picture.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
            gray = _gray(path, picture, levels)
    except Image.DecompressionBombError:  # past twice Pillow's own bound: ours is lower
        raise DataError(
            f"{path}: a picture too big to classify (at most "
            f"{MAX_PICTURE_PIXELS // 10**6} million pixels); crop or shrink it"
        ) from None
    except (UnidentifiedImageError, *_UNREADABLE) as error:
        reason = "not an image, IDX file or .npy array"
        if not isinstance(error, UnidentifiedImageError):
            reason = f"cannot read it as an image ({str(error).splitlines()[0] or error})"
        raise DataError(f"{path}: {reason}") from None
    if gray.size == 0:
        raise DataError(f"{path}: the image is empty")
    return gray, scale, how


def _resizable(path: pathlib.Path, picture) -> tuple:
    """`picture` in a mode Pillow resizes without losing what it holds (16-bit and float
    pictures keep their depth, transparent ones their alpha), and the levels (black,
    white) its pixels are read between, taken before any resizing overshoots them:
    16-bit by 65535, other integers and floats in [0, 1], [0, 255] or [0, 65535] as
    they fit, else stretched from their least to most."""
    if picture.mode.startswith("I;16"):
        return picture.convert("I"), (0.0, 65535.0)
    if picture.mode in ("I", "F"):
        low, high = picture.getextrema()
        if not (math.isfinite(low) and math.isfinite(high)):
            raise DataError(f"{path}: the picture holds pixels that are not numbers (NaN or inf)")
        for top in (1.0, 255.0, 65535.0)[picture.mode == "I" :]:
            if low >= 0 and high <= top:
                return picture, (0.0, top)
        return picture, (low, max(high, low + 1e-12))
    drawn_over = picture.mode in ("LA", "PA", "La", "RGBa") or "transparency" in picture.info
    wanted = "RGBA" if picture.mode == "RGBA" or drawn_over else "L"
    if picture.mode != wanted:  # (a converted copy of a vast picture costs its size again)
        picture = picture.convert(wanted)
    return picture, (0.0, 255.0)


def _gray(path: pathlib.Path, picture, levels: tuple[float, float]) -> np.ndarray:
    """A picture (as `_resizable` leaves it) as float grayscale in [0, 1], read between
    `levels`. A transparent picture is flattened onto black where what it draws is light
    (a white digit on nothing), else onto white."""
    black, white = levels
    values = (np.asarray(picture, np.float64) - black) / (white - black)
    if not np.isfinite(values).all():
        raise DataError(f"{path}: the picture holds pixels that are not numbers (NaN or inf)")
    values = np.clip(values, 0, 1)  # what resizing overshot
    if picture.mode != "RGBA":
        return values
    luminance = values[..., :3] @ np.array([0.299, 0.587, 0.114])
    alpha = values[..., 3]
    drawn = alpha > 0.5
    ground = 0.0 if drawn.any() and luminance[drawn].mean() > 0.5 else 1.0
    return luminance * alpha + ground * (1 - alpha)


def _padded(gray: np.ndarray, image_shape, dark_ink: bool | None) -> tuple[np.ndarray, dict]:
    """The picture as it is (`--raw`): padded to a square with its border's shade,
    resized, light ink on black (float [0, 1])."""
    from PIL import Image

    shade = float(np.median(framings.border(gray)))
    if dark_ink is None:
        dark_ink = shade >= 0.5
    side = max(gray.shape)
    square = np.full((side, side), shade, np.float32)
    top, left = (side - gray.shape[0]) // 2, (side - gray.shape[1]) // 2
    square[top : top + gray.shape[0], left : left + gray.shape[1]] = gray
    height, width = image_shape
    resized = Image.fromarray(square).resize((width, height), Image.Resampling.LANCZOS)
    image = np.clip(np.asarray(resized), 0, 1)
    return (1 - image if dark_ink else image), {"ink": "dark" if dark_ink else "light"}


def _check_pixels(path: pathlib.Path, width: int, height: int) -> None:
    """Raises DataError before a picture of more than MAX_PICTURE_PIXELS is decoded."""
    if width * height > MAX_PICTURE_PIXELS:
        raise DataError(
            f"{path}: a {width}x{height} picture is too big to classify (at most "
            f"{MAX_PICTURE_PIXELS // 10**6} million pixels); crop or shrink it"
        )
