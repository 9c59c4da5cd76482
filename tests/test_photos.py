"""Digits from the real world: photos framed as MNIST's digits were (`data.framing`), and
pictures in every encoding a camera or editor writes (16-bit, float TIFF, transparent,
EXIF-rotated) read as the same image. Oracles: the true classes of the MNIST test digits
the photos are made from, where each was drawn, and the 8-bit picture of each."""

import json
import re

import numpy as np
import pytest
from PIL import Image

import jaxsoftmax as js
from jaxsoftmax.cli import predict
from jaxsoftmax.cli import train as cli
from jaxsoftmax.data import framing, images
from jaxsoftmax.errors import DataError

from .conftest import REPO
from .photos import make_photos
from .test_trained import run_main


@pytest.fixture(scope="module")
def default_run(tmp_path_factory, mnist_dir):
    """The default model: 1,000 steps at the README's learning rate 0.005."""
    logdir = tmp_path_factory.mktemp("photos") / "run"
    argv = ["--learning-rates", "0.005", "--data-dir", str(mnist_dir), "--quiet"]
    assert cli.main([*argv, "--no-summaries", "--logdir", str(logdir)]) == 0
    return logdir


def test_photos_of_test_digits_are_classified_as_well_as_the_digits(
    default_run, mnist, tmp_path, capsys
):
    """60 photos (gradients, noise, off centre, scaled 2-6x, a quarter light on dark, JPEG
    quality 70): framed, at least 85% right and each ink box inside the square its digit
    was drawn in; as the pipeline before framing took them (`--raw`), near chance."""
    paths, labels, squares = make_photos(mnist.test_images, mnist.test_labels, tmp_path, 60)
    accuracy = {}
    for mode in ("framed", "raw"):
        argv = [default_run, "--json", *paths] + (["--raw"] if mode == "raw" else [])
        status, out, err = run_main(predict, argv, capsys)
        assert status == 0, err
        predictions = json.loads(out)["predictions"]
        got = np.array([row["top"][0]["class"] for row in predictions])
        accuracy[mode] = (got == labels).mean()
        for number, (row, square) in enumerate(zip(predictions, squares, strict=True)):
            prepared = row["prepared"]
            assert prepared["framed"] is (mode == "framed")
            assert prepared["ink"] == ("light" if number % 4 == 3 else "dark")
            if mode == "framed":
                left, top, right, bottom = prepared["ink_box"]
                assert square[0] - 2 <= left < right <= square[2] + 2, (prepared, square)
                assert square[1] - 2 <= top < bottom <= square[3] + 2, (prepared, square)
                assert max(prepared["scaled_to"]) == 20
    print(f"photos: framed {accuracy['framed']:.1%}, raw {accuracy['raw']:.1%}")
    assert accuracy["framed"] >= 0.85 and accuracy["raw"] < 0.5, accuracy


def test_readmes_photo_is_a_two(default_run, capsys):
    """README's example: docs/scan.jpg, a 520x467 JPEG of test digit 1 (a 2): framed, a
    confident 2; only padded and resized (`--raw`), a digit too small to tell (README
    shows both)."""
    best = {}
    for extra in ([], ["--raw"]):
        status, out, err = run_main(predict, [default_run, *extra, REPO / "docs/scan.jpg"], capsys)
        assert status == 0, err
        found = re.match(r".*scan\.jpg: (\d) \((\d+\.\d)%\)", out)
        best[bool(extra)] = found.group(1), float(found.group(2))
    assert best[False][0] == "2" and best[False][1] >= 90, best
    assert best[True][1] < 50, best


def test_each_dataset_records_how_it_frames_its_images(default_run, mnist, mnist_dir):
    """MNIST: digits in a 20x20 box centred by mass; Fashion-MNIST: the whole 28x28,
    centred by box; a run records its data's framing and the model reads it back."""
    assert framing.framing_of(mnist.train_images, "dark") == {"box": 20, "centre": "mass"}
    fashion = js.load_dataset("fashion_mnist", data_dir=mnist_dir.parent)
    assert framing.framing_of(fashion.train_images, "dark") == {"box": 28, "centre": "box"}
    assert js.load_run(default_run)["lr=0.005"].framing == {"box": 20, "centre": "mass"}
    with open(default_run / "results.json") as handle:
        assert json.load(handle)["data"]["framing"] == {"box": 20, "centre": "mass"}


@pytest.fixture
def scan(mnist):
    """An 84x84 dark-on-light picture of test digit 0, as an 8-bit PNG would hold it."""
    large = Image.fromarray(mnist.test_images[0]).resize((84, 84), Image.Resampling.BICUBIC)
    return 255 - np.asarray(large)


def test_every_encoding_of_a_picture_reads_as_the_same_image(scan, tmp_path):
    """16-bit PNG, float TIFF, EXIF-rotated PNG and a digit on a transparent ground (white
    or black ink) give the 8-bit picture's image."""
    Image.fromarray(scan).save(tmp_path / "8bit.png")
    expected, _ = images.read_images(tmp_path / "8bit.png", (28, 28))
    assert expected.max() == 255 and expected[0, 0, 0] == 0  # framed: light ink on black
    Image.fromarray(scan.astype(np.uint16) * 257).save(tmp_path / "16bit.png")
    Image.fromarray(scan.astype(np.float32) / 255).save(tmp_path / "float.tif")
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise: stored turned the other way
    Image.fromarray(np.rot90(scan, k=1)).save(tmp_path / "rotated.png", exif=exif)
    ink = (255 - scan).astype(np.uint8)  # how much each pixel is drawn
    for name, colour in (("white-on-nothing.png", 255), ("black-on-nothing.png", 0)):
        rgba = np.zeros((*scan.shape, 4), np.uint8)
        rgba[..., :3], rgba[..., 3] = colour, ink
        Image.fromarray(rgba, "RGBA").save(tmp_path / name)
    for name in ("16bit.png", "float.tif", "rotated.png", "white-on-nothing.png",
                 "black-on-nothing.png"):  # fmt: skip
        got, how = images.read_images(tmp_path / name, (28, 28))
        assert np.abs(got.astype(int) - expected).max() <= 1, name
        assert ("orientation" in how) is (name == "rotated.png"), (name, how)


def test_a_large_picture_reads_alike_in_every_encoding(scan, tmp_path):
    """Past 1024 pixels a side a picture is shrunk before it is read: a float TIFF on grey
    (its levels taken before shrinking, which overshoots 1), 16-bit, and a non-square one
    stored turned (EXIF 6) give the 8-bit picture's image; TGA (whose first bytes are an
    IDX header's zeros) is read as a picture."""
    canvas = np.full((1100, 1500), 77, np.uint8)  # a grey page, the digit darker or lighter
    big = np.asarray(Image.fromarray(scan).resize((252, 252), Image.Resampling.BICUBIC))
    canvas[300:552, 900:1152] = np.where(big < 128, 0, 77)
    Image.fromarray(canvas).save(tmp_path / "8bit.png")
    expected, how = images.read_images(tmp_path / "8bit.png", (28, 28))
    assert how["ink_box"][0] >= 890 and how["ink_box"][2] <= 1160, how
    Image.fromarray(canvas.astype(np.float32) / 255).save(tmp_path / "float.tif")
    Image.fromarray(canvas.astype(np.uint16) * 257).save(tmp_path / "16bit.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.rot90(canvas, k=1)).save(tmp_path / "rotated.png", exif=exif)
    Image.fromarray(canvas).save(tmp_path / "picture.tga")
    for name in ("float.tif", "16bit.png", "rotated.png", "picture.tga"):
        got, how = images.read_images(tmp_path / name, (28, 28))
        assert np.abs(got.astype(int) - expected).max() <= 2, (name, how)


def test_pictures_already_of_the_models_size_and_raw_ones_are_not_framed(scan, tmp_path):
    small = np.asarray(Image.fromarray(scan).resize((28, 28), Image.Resampling.LANCZOS))
    Image.fromarray(small).save(tmp_path / "small.png")
    got, how = images.read_images(tmp_path / "small.png", (28, 28))
    np.testing.assert_array_equal(got[0], 255 - small)  # only inverted
    assert how == {"ink": "dark", "framed": False}
    Image.fromarray(scan).save(tmp_path / "scan.png")
    got, how = images.read_images(tmp_path / "scan.png", (28, 28), raw=True)
    shrunk = Image.fromarray(scan.astype(np.float32) / 255)
    expected = shrunk.resize((28, 28), Image.Resampling.LANCZOS)
    np.testing.assert_allclose(got[0], 255 * (1 - np.clip(np.asarray(expected), 0, 1)), atol=0.51)


def test_blank_pictures_and_pixels_that_are_not_numbers(tmp_path):
    """A picture with nothing drawn is classified as the blank image; NaN pixels, a PNG
    whose data is damaged and garbage EXIF are one line each (a damaged PNG chunk was a
    SyntaxError traceback that stopped every other file)."""
    Image.fromarray(np.full((60, 80), 200, np.uint8)).save(tmp_path / "blank.png")
    got, how = images.read_images(tmp_path / "blank.png", (28, 28))
    assert not got.any() and how["found"] == "no ink"
    values = np.zeros((40, 40), np.float32)
    values[3, 4] = np.nan
    Image.fromarray(values).save(tmp_path / "nan.tif")
    with pytest.raises(DataError, match=r"nan\.tif: the picture holds pixels that are not"):
        images.read_images(tmp_path / "nan.tif", (28, 28))
    Image.fromarray(np.arange(1600, dtype=np.uint8).reshape(40, 40)).save(tmp_path / "ok.png")
    data = bytearray((tmp_path / "ok.png").read_bytes())
    at = data.index(b"IDAT") + 20
    data[at : at + 8] = b"\xff" * 8  # damaged image data (its CRC no longer matches)
    (tmp_path / "damaged.png").write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"damaged\.png: cannot read it as an image"):
        images.read_images(tmp_path / "damaged.png", (28, 28))
