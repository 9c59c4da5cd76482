"""`python -m jaxsoftmax.export LOGDIR -o FILE`: a trained model for other runtimes.

- `--format onnx`: an ONNX graph from uint8 images (N, height, width) to class
  probabilities (N, classes), the scaling to [0, 1] inside it. Built with `onnx.helper`
  node by node (Cast, Div, Reshape, MatMul, Add, Softmax): the model is those six
  operations, written here exactly, with no converter to trace JAX and no JAX at all.
  Needs the export extra: `pip install 'jaxsoftmax[export]'`.
- `--format npz`: plain NumPy arrays `w` (features, classes), `b` (classes,),
  `image_shape` and `class_names`, for any program with NumPy (README shows ten lines).

Both are written atomically; an existing file is kept unless `--overwrite` is given.
"""

import argparse
import pathlib
import sys
from collections.abc import Sequence

import numpy as np

from jaxsoftmax import cmdline, features, files, trained
from jaxsoftmax.errors import ConfigError, JaxsoftmaxError

FORMATS = ("onnx", "npz")
OPSET = 17  # Softmax over the last axis, as every current runtime reads it
INPUT, OUTPUT = "images", "probabilities"


def onnx_model(model: trained.Model):
    """The ONNX graph of `model`: `images` (N, *image_shape) to float32 `probabilities`
    (N, classes); class names and image shape in its metadata. A model trained on pixels
    takes uint8 images and scales them as training did; one trained on float features
    takes float32 features as they are (see `features`)."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise JaxsoftmaxError(
            "--format onnx needs onnx: pip install 'jaxsoftmax[export]'"
        ) from None
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
    ]
    input_type = TensorProto.UINT8 if pixels else TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        f"jaxsoftmax {model.name}",
        [helper.make_tensor_value_info(INPUT, input_type, ["N", *shape])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", len(model.b)])],
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


def write(model: trained.Model, path: pathlib.Path, export_format: str) -> None:
    """Writes `model` to `path` in `export_format`, atomically."""
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    parser = cmdline.OneLineParser(
        prog="python -m jaxsoftmax.export",
        description="Write a model a training run left in LOGDIR as ONNX (uint8 images in, "
        "class probabilities out) or as plain NumPy arrays.",
    )
    cmdline.add_model_choice(parser)
    parser.add_argument("--format", choices=FORMATS, default="onnx", dest="export_format",
                        help="onnx (needs the export extra) or npz")  # fmt: skip
    parser.add_argument("-o", "--output", type=pathlib.Path, required=True, metavar="FILE",
                        help="the file to write")  # fmt: skip
    parser.add_argument("--overwrite", action="store_true",
                        help="replace FILE if it exists")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; prints the file written; returns the exit status."""
    args = build_parser().parse_args(argv)

    def export() -> int:
        if args.output.exists() and not args.overwrite:
            raise ConfigError(f"{args.output} exists; choose another file or pass --overwrite")
        if args.output.is_dir() or not args.output.parent.is_dir():
            raise ConfigError(f"-o {args.output}: not a file in an existing folder")
        model = trained.choose(trained.load_run(args.logdir), args.run, best=args.best)
        write(model, args.output, args.export_format)
        print(args.output)
        return 0

    return cmdline.run_command(export)


if __name__ == "__main__":
    sys.exit(main())
