"""Pictures for TensorBoard and the terminal-less reader: weight templates, confusion
matrices, misclassified examples; uint8 RGB arrays drawn with Pillow (which comes with
TensorBoard), each labelled with the dataset's class names."""

import functools
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

TEMPLATES_PER_ROW = 5
TEMPLATE_ZOOM = 5  # pixels per weight: a 28x28 template is 140 pixels wide
TEMPLATE_GAP = 4
LABEL_HEIGHT = 18  # a strip under each template naming its class
CELL = 36  # pixels per cell of a confusion matrix
EXAMPLE_ZOOM = 4  # pixels per pixel of a misclassified example
EXAMPLES_PER_ROW = 4


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow before 10.1: its one bitmap font
        return ImageFont.load_default()


def weight_templates(
    w: np.ndarray, image_shape: tuple[int, int], class_names: Sequence[str] | None = None
) -> np.ndarray:
    """Renders one model's weights as an RGB picture of its class templates.

    Each class's weights are shown in image shape, zoomed, white at zero, blue where a
    bright pixel votes for the class and red where it votes against, its class named
    in a strip below it.

    Args:
      w: (num_features, num_classes) weights.
      image_shape: (height, width) of the input images.
      class_names: what each class is called (default: its label).

    Returns:
      uint8 (rows * (height' + label), columns * width', 3), templates separated by gaps.
    """
    height, width = image_shape
    num_classes = w.shape[1]
    names = tuple(class_names) if class_names is not None else tuple(map(str, range(num_classes)))
    scale = np.abs(w).max()
    normalised = np.asarray(w / scale if scale > 0 else w, np.float64)
    templates = normalised.T.reshape(num_classes, height, width)
    positive, negative = np.clip(templates, 0, 1), np.clip(-templates, 0, 1)
    rgb = np.stack([1 - positive, 1 - positive - negative, 1 - negative], axis=-1)
    rgb = (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)  # then zoomed: the same pixels
    rgb = rgb.repeat(TEMPLATE_ZOOM, axis=1).repeat(TEMPLATE_ZOOM, axis=2)
    canvas = _labelled_canvas(names, height, width).copy()  # white, classes named
    columns, (row_h, column_w) = min(num_classes, TEMPLATES_PER_ROW), _template_cell(height, width)
    for index in range(num_classes):
        top, left = (index // columns) * row_h, (index % columns) * column_w
        canvas[top : top + rgb.shape[1], left : left + rgb.shape[2]] = rgb[index]
    return canvas


def _template_cell(height: int, width: int) -> tuple[int, int]:
    """The height and width of a template's place, its label and gap included."""
    row = height * TEMPLATE_ZOOM + LABEL_HEIGHT + TEMPLATE_GAP
    return row, width * TEMPLATE_ZOOM + TEMPLATE_GAP


@functools.lru_cache(maxsize=8)
def _labelled_canvas(names: tuple[str, ...], height: int, width: int) -> np.ndarray:
    """The white canvas of `weight_templates` with each class's name drawn under its
    template's place; drawn once per run, not at every summary."""
    columns = min(len(names), TEMPLATES_PER_ROW)
    rows = -(-len(names) // columns)
    row_h, column_w = _template_cell(height, width)
    cell_h, cell_w = height * TEMPLATE_ZOOM, width * TEMPLATE_ZOOM
    size = (columns * column_w - TEMPLATE_GAP, rows * row_h - TEMPLATE_GAP)
    picture = Image.new("RGB", size, (255, 255, 255))
    draw, font = ImageDraw.Draw(picture), _font(LABEL_HEIGHT - 4)
    for index, name in enumerate(names):
        top, left = (index // columns) * row_h + cell_h, (index % columns) * column_w
        text_width = draw.textlength(name, font=font)
        position = (left + max(0, (cell_w - text_width) / 2), top + 1)
        draw.text(position, name, fill=(0, 0, 0), font=font)
    canvas = np.asarray(picture)
    canvas.flags.writeable = False
    return canvas


def confusion_picture(confusion: np.ndarray, class_names: Sequence[str]) -> np.ndarray:
    """A confusion matrix as a heat map: row = true class, column = predicted class, each
    cell's count written in it and shaded by the share of its row (darker blue: more).

    Args:
      confusion: int (classes, classes) counts.
      class_names: what each class is called.

    Returns:
      uint8 (height, width, 3).
    """
    classes = len(confusion)
    font, small = _font(12), _font(10)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    rows = [name if name == str(k) else f"{k} {name}" for k, name in enumerate(class_names)]
    margin = int(max(measure.textlength(name, font=font) for name in rows)) + 12
    top = 40
    size = (margin + classes * CELL + 8, top + classes * CELL + 8)
    picture = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    draw.text((margin, 2), "columns: predicted class, rows: true class", fill=(0, 0, 0), font=font)
    shares = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    for column in range(classes):
        label = str(column)
        x = margin + column * CELL + CELL / 2 - measure.textlength(label, font=small) / 2
        draw.text((x, top - 16), label, fill=(0, 0, 0), font=small)
    for row in range(classes):
        y = top + row * CELL
        draw.text((4, y + CELL / 2 - 7), rows[row], fill=(0, 0, 0), font=font)
        for column in range(classes):
            x = margin + column * CELL
            shade = round(float(255 * (1 - shares[row, column])))
            fill = (shade, shade, 255) if row != column else (shade, 255, shade)
            draw.rectangle((x, y, x + CELL - 1, y + CELL - 1), fill=fill, outline=(220, 220, 220))
            text = str(int(confusion[row, column]))
            ink = (255, 255, 255) if shares[row, column] > 0.6 else (0, 0, 0)
            width = measure.textlength(text, font=small)
            draw.text((x + CELL / 2 - width / 2, y + CELL / 2 - 6), text, fill=ink, font=small)
    return np.asarray(picture)


def misclassified_picture(
    images: np.ndarray,
    true: Sequence[int],
    predicted: Sequence[int],
    confidence: Sequence[float],
    class_names: Sequence[str],
) -> np.ndarray:
    """Examples a model got wrong, zoomed, each with its true class and the model's answer.

    Args:
      images: uint8 (M, height, width).
      true, predicted: (M,) class indices; confidence: (M,) the answer's probability.
      class_names: what each class is called.

    Returns:
      uint8 (height, width, 3); a blank strip saying so when there is no example.
    """
    font = _font(11)
    if not len(images):
        picture = Image.new("RGB", (240, 30), (255, 255, 255))
        ImageDraw.Draw(picture).text((6, 8), "no test image misclassified", fill=(0, 0, 0))
        return np.asarray(picture)
    height, width = images.shape[1:]
    cell_w, cell_h = max(width * EXAMPLE_ZOOM, 112), height * EXAMPLE_ZOOM + 30
    columns = min(EXAMPLES_PER_ROW, len(images))
    rows = -(-len(images) // columns)
    picture = Image.new("RGB", (columns * (cell_w + 6), rows * (cell_h + 6)), (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    for index, image in enumerate(images):
        x, y = (index % columns) * (cell_w + 6), (index // columns) * (cell_h + 6)
        zoomed = Image.fromarray(image).resize(
            (width * EXAMPLE_ZOOM, height * EXAMPLE_ZOOM), Image.Resampling.NEAREST
        )
        picture.paste(zoomed.convert("RGB"), (x + (cell_w - zoomed.width) // 2, y))
        caption_y = y + height * EXAMPLE_ZOOM + 2
        draw.text((x + 2, caption_y), f"true: {class_names[true[index]]}", fill=(0, 0, 0),
                  font=font)  # fmt: skip
        said = f"said: {class_names[predicted[index]]} {confidence[index]:.0%}"
        draw.text((x + 2, caption_y + 13), said, fill=(190, 0, 0), font=font)
    return np.asarray(picture)
