"""A trained model for other runtimes, written atomically by `write(model, path, format)`.

- `onnx`: an ONNX graph from uint8 images (N, height, width) to class probabilities (N,
  classes) and the predicted class (N,), the scaling to [0, 1] inside it. Built with
  `onnx.helper` node by node (Cast, Div, Reshape, MatMul, Add, Softmax, ArgMax): the model
  is those seven operations, written here exactly, with no converter to trace JAX and no
  JAX at all. Needs the export extra: `pip install 'jaxsoftmax[export]'`.
- `npz`: plain NumPy arrays `w` (features, classes), `b` (classes,), `image_shape` and
  `class_names`, for any program with NumPy (README shows ten lines).
"""

import pathlib

import numpy as np

from jaxsoftmax import files
from jaxsoftmax.core import features
from jaxsoftmax.errors import ConfigError, JaxsoftmaxError
from jaxsoftmax.trained.run import Model

FORMATS = ("onnx", "npz")
OPSET = 17  # Softmax over the last axis, as every current runtime reads it
INPUT, OUTPUT, LABEL = "images", "probabilities", "label"


def onnx_model(model: Model):
    """The ONNX graph of `model`: `images` (N, *image_shape) to float32 `probabilities` (N,
    classes) and int64 `label` (N,), the predicted class as `predict` picks it (the
    argmax of the logits, not of probabilities that may round to equal); class names and
    image shape in its metadata. A model trained on pixels takes uint8 images and scales
    them as training did; one trained on float features takes float32 features as they
    are (see `features`)."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise JaxsoftmaxError("ONNX export needs onnx: pip install 'jaxsoftmax[export]'") from None
    shape = tuple(model.image_shape)
    pixels = model.inputs == features.PIXELS
    constants = [
        numpy_helper.from_array(np.asarray(features.PIXEL_MAX, np.float32), "pixel_max"),
        numpy_helper.from_array(np.asarray([-1, int(np.prod(shape))], np.int64), "flat_shape"),
        numpy_helper.from_array(np.asarray(model.w, np.float32), "w"),
        numpy_helper.from_array(np.asarray(model.b, np.float32), "b"),
    ][0 if pixels else 1 :]
    scale = [
        helper.make_node("Cast", [INPUT], ["pixels"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["pixels", "pixel_max"], ["scaled"]),
    ]
    nodes = [
        *(scale if pixels else []),
        helper.make_node("Reshape", ["scaled" if pixels else INPUT, "flat_shape"], ["inputs"]),
        helper.make_node("MatMul", ["inputs", "w"], ["products"]),
        helper.make_node("Add", ["products", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [OUTPUT], axis=-1),
        helper.make_node("ArgMax", ["logits"], [LABEL], axis=-1, keepdims=0),
    ]
    input_type = TensorProto.UINT8 if pixels else TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        f"jaxsoftmax {model.name}",
        [helper.make_tensor_value_info(INPUT, input_type, ["N", *shape])],
        [
            helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", len(model.b)]),
            helper.make_tensor_value_info(LABEL, TensorProto.INT64, ["N"]),
        ],
        initializer=constants,
    )
    exported = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="jaxsoftmax"
    )
    helper.set_model_props(
        exported,
        {"class_names": "\n".join(model.class_names), "image_shape": "x".join(map(str, shape)),
         "run": model.name, "inputs": model.inputs},
    )  # fmt: skip
    onnx.checker.check_model(exported, full_check=True)
    return exported


def write(model: Model, path: pathlib.Path, export_format: str) -> None:
    """Writes `model` to `path` in `export_format`, atomically; never over what is not a
    regular file (a device, FIFO or link: renaming over it would replace it)."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise ConfigError(f"{path} is not a regular file (a device, FIFO, link or folder); "
                          "give a file to write")  # fmt: skip
    if export_format == "onnx":
        content = onnx_model(model).SerializeToString()
        with files.atomic_writer(path) as handle:
            handle.write(content)
        return
    with files.atomic_writer(path) as handle:
        np.savez(
            handle,
            w=model.w,
            b=model.b,
            image_shape=np.asarray(model.image_shape, np.int64),
            class_names=np.asarray(model.class_names, dtype=str),
        )
