"""The training step as a graph for TensorBoard's Graphs tab, converted from its jaxpr.

A jaxpr is a dataflow graph already: each equation becomes a `NodeDef` whose op is
the primitive, whose inputs are the nodes that computed its operands, and whose
`_output_shapes` (drawn on the out-edges) and `T` (the first output's dtype) say
what flows out. The layout follows the TF1 tutorial's graph:

- Scopes come from `jax.named_scope`, read from each equation's name stack. Transform
  wrappers such as `jvp(...)` and `vmap(...)` are dropped; the backward pass,
  `transpose(...)`, goes under `gradients/` where the gradient was taken, as
  `tf.gradients` did: `train/transpose(jvp(cross_entropy_loss))` is drawn as
  `train/gradients/cross_entropy_loss`. In a scope, nodes are named after their
  primitive: `train/softmax_linear_model/dot_general`, `.../dot_general_1`.
- Nested jaxprs are expanded in a sub-scope: `jit` as `jit_<name>`, other calls
  (`custom_jvp_call`, `custom_vjp_call`, `closed_call`, `remat2`) by primitive. A
  `cond` draws each branch in `cond/branch_<i>` and joins their results in a node
  `cond/merge`; `scan` and `while` draw their body (and condition) once, fed by the
  loop's inputs, and a node `scan/loop` or `while/loop` gives the loop's results.
- Inputs are `Placeholder` nodes and outputs `Identity` nodes, named by the caller
  (`params/w`, `outputs/loss`); literals and closed-over constants are `Const` nodes,
  which TensorBoard draws inside their consumer. Work that reaches no output is left
  out, since `jax.make_jaxpr` does not eliminate dead code.

Jaxprs are not a stable API: tests/test_graph.py pins what this module relies on.
"""

import functools
import re
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jax_core

from jaxsoftmax.core import engine, model
from jaxsoftmax.core.optimizer import GradientDescent
from jaxsoftmax.outputs._tensorboardx import (
    attr_value_pb2,
    graph_pb2,
    node_def_pb2,
    tensor_shape_pb2,
    types_pb2,
    versions_pb2,
)

# TensorFlow's names for the dtypes TensorBoard knows; other dtypes get no `T` attr.
_DATA_TYPES = {
    "bool": types_pb2.DT_BOOL,
    "int8": types_pb2.DT_INT8,
    "int16": types_pb2.DT_INT16,
    "int32": types_pb2.DT_INT32,
    "int64": types_pb2.DT_INT64,
    "uint8": types_pb2.DT_UINT8,
    "uint16": types_pb2.DT_UINT16,
    "float16": types_pb2.DT_HALF,
    "bfloat16": types_pb2.DT_BFLOAT16,
    "float32": types_pb2.DT_FLOAT,
    "float64": types_pb2.DT_DOUBLE,
    "complex64": types_pb2.DT_COMPLEX64,
    "complex128": types_pb2.DT_COMPLEX128,
}
# Parameters longer than this are cut, so a node's info card stays readable.
_MAX_ATTR_CHARS = 120
# The GraphDef version of the TF1 graphs TensorBoard was written for.
_GRAPH_DEF_PRODUCER = 22
_TRANSFORMED = re.compile(r"(\w+)\((.*)\)")


def _scope_names(name_stack) -> list[str]:
    """Scope names of a name stack: `train/transpose(jvp(a))` -> `[train, gradients, a]`."""
    names = []
    for segment in _split_outside_parentheses(str(name_stack)):
        transforms = []
        while match := _TRANSFORMED.fullmatch(segment):
            transforms.append(match[1])
            segment = match[2]
        if "transpose" in transforms:
            names.append("gradients")
        names.extend(_clean_name(part) for part in segment.split("/") if part)
    return names


def _split_outside_parentheses(text: str) -> list[str]:
    """Splits at `/`, except inside a transform: a scope name may hold `/` (`jvp(a/b)`)."""
    segments, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += (char == "(") - (char == ")")
        if char == "/" and depth == 0:
            segments.append(text[start:index])
            start = index + 1
    return [*segments, text[start:]]


def _join(*names: str) -> str:
    """Joins scope and node names with `/`, skipping empty ones."""
    return "/".join(name for name in names if name)


def _clean_name(name: str) -> str:
    """A name TensorBoard accepts: letters, digits, `_.-`, not starting with `_` or `-`."""
    return re.sub(r"[^\w.\-]", "_", name).lstrip("_-") or "unnamed"


def _shape(aval) -> tensor_shape_pb2.TensorShapeProto:
    """The shape TensorBoard draws on an edge; -1 for a symbolic dimension."""
    shape = getattr(aval, "shape", None)
    if shape is None:
        return tensor_shape_pb2.TensorShapeProto(unknown_rank=True)
    sizes = [int(size) if isinstance(size, (int, np.integer)) else -1 for size in shape]
    return tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in sizes]
    )


def _short(value) -> str:
    """A parameter as one short line, without numpy's `np.int64(...)` wrappers."""
    text = re.sub(r"np\.\w+\(([^()]*)\)", r"\1", " ".join(str(value).split()))
    return text if len(text) <= _MAX_ATTR_CHARS else text[: _MAX_ATTR_CHARS - 3] + "..."


def _holds_jaxpr(value) -> bool:
    if isinstance(value, (tuple, list)):
        return any(_holds_jaxpr(item) for item in value)
    return isinstance(value, (jax_core.Jaxpr, jax_core.ClosedJaxpr))


def _called_jaxpr(eqn):
    """The jaxpr a call-like equation runs on its operands as they are, or None."""
    for key in ("jaxpr", "call_jaxpr"):
        inner = eqn.params.get(key)
        body = getattr(inner, "jaxpr", inner)
        if (
            isinstance(body, jax_core.Jaxpr)
            and len(body.invars) == len(eqn.invars)
            and len(body.outvars) == len(eqn.outvars)
        ):
            return inner
    return None


class _GraphBuilder:
    """Accumulates uniquely named nodes while jaxprs are walked.

    Names are handed out in walk order. Given `keep`, one flag per name in that
    order (from an earlier walk), it skips the dead: their nodes are not added and
    their names not taken, so the numbering of the live ones has no gaps.
    """

    def __init__(self, keep: Sequence[bool] | None = None):
        self.nodes: dict[str, node_def_pb2.NodeDef] = {}
        self.names: list[str] = []
        self.scopes: set[str] = set()
        self._keep = keep
        self._taken: set[str] = set()
        self._next_suffix: dict[str, int] = {}

    def unique(self, name: str) -> str:
        """`name`, or `name_<k>` for the first k that no node or sub-scope has taken."""
        if self._keep is not None and not self._keep[len(self.names)]:
            self.names.append(name)
            return name
        suffix = self._next_suffix.get(name, 0)
        candidate = name if suffix == 0 else f"{name}_{suffix}"
        while candidate in self._taken:
            suffix += 1
            candidate = f"{name}_{suffix}"
        self._next_suffix[name] = suffix + 1
        self._taken.add(candidate)
        self.names.append(candidate)
        return candidate

    def sub_scope(self, name: str) -> str:
        """A fresh scope for the equations of a nested jaxpr."""
        name = self.unique(name)
        self.scopes.add(name)
        return name

    def add(self, name, op, inputs, avals, attrs=None, type_attr="T") -> list[str]:
        """Adds a node; returns the references to its outputs (`name`, `name:1`, ...)."""
        skip = self._keep is not None and not self._keep[len(self.names)]
        node = node_def_pb2.NodeDef(name=self.unique(name), op=op, input=inputs)
        refs = [node.name if index == 0 else f"{node.name}:{index}" for index in range(len(avals))]
        if skip:
            return refs
        node.attr["_output_shapes"].list.shape.extend(_shape(aval) for aval in avals)
        data_type = _DATA_TYPES.get(str(getattr(avals[0], "dtype", ""))) if avals else None
        if data_type is not None:
            node.attr[type_attr].type = data_type
        for key, value in (attrs or {}).items():
            if value is None or (isinstance(value, tuple) and not value) or _holds_jaxpr(value):
                continue
            node.attr[key].CopyFrom(attr_value_pb2.AttrValue(s=_short(value).encode()))
        self.nodes[node.name] = node
        return refs

    def const(self, scope: str, value, aval) -> str:
        """A `Const` node holding a literal or a closed-over constant."""
        shown = np.asarray(value) if np.size(value) <= 8 else f"{aval.str_short()} array"
        return self.add(_join(scope, "Const"), "Const", [], [aval], {"value": shown}, "dtype")[0]

    def convert(self, jaxpr, consts, in_refs: Sequence[str], scope: str) -> list[str]:
        """Adds the equations of `jaxpr` under `scope`; returns references to its outputs."""
        env = dict(zip(jaxpr.invars, in_refs, strict=True))
        env |= {
            var: self.const(scope, c, var.aval)
            for var, c in zip(jaxpr.constvars, consts, strict=True)
        }

        def read(var, at_scope):
            if isinstance(var, jax_core.Literal):
                return self.const(at_scope, var.val, var.aval)
            return env[var]

        for eqn in jaxpr.eqns:
            eqn_scope = _join(scope, *_scope_names(eqn.source_info.name_stack))
            inputs = [read(var, eqn_scope) for var in eqn.invars]
            env.update(zip(eqn.outvars, self.equation(eqn, inputs, eqn_scope), strict=True))
        return [read(var, scope) for var in jaxpr.outvars]

    def convert_closed(self, closed, in_refs, scope):
        """`convert` for a `ClosedJaxpr` or an open `Jaxpr` (as `remat2` holds)."""
        jaxpr = getattr(closed, "jaxpr", closed)
        return self.convert(jaxpr, getattr(closed, "consts", ()), in_refs, scope)

    def equation(self, eqn, inputs: list[str], scope: str) -> list[str]:
        """Adds one equation, expanding nested jaxprs; returns references to its outputs."""
        primitive, params = eqn.primitive.name, eqn.params
        avals = [var.aval for var in eqn.outvars]
        if primitive == "cond":
            sub = self.sub_scope(_join(scope, "cond"))
            results = [
                self.convert_closed(branch, inputs[1:], f"{sub}/branch_{index}")
                for index, branch in enumerate(params["branches"])
            ]
            merged = [inputs[0], *(ref for refs in results for ref in refs)]
            return self.add(f"{sub}/merge", primitive, merged, avals, params)
        if primitive == "scan":
            sub = self.sub_scope(_join(scope, "scan"))
            results = self.convert_closed(params["jaxpr"], inputs, f"{sub}/body")
            return self.add(f"{sub}/loop", primitive, results, avals, params)
        if primitive == "while":
            sub = self.sub_scope(_join(scope, "while"))
            cond_consts, body_consts = params["cond_nconsts"], params["body_nconsts"]
            carry = inputs[cond_consts + body_consts :]
            results = self.convert_closed(
                params["cond_jaxpr"], inputs[:cond_consts] + carry, f"{sub}/cond"
            ) + self.convert_closed(
                params["body_jaxpr"],
                inputs[cond_consts : cond_consts + body_consts] + carry,
                f"{sub}/body",
            )
            return self.add(f"{sub}/loop", primitive, results, avals, params)
        inner = _called_jaxpr(eqn)
        if inner is not None:
            label = f"{primitive}_{_clean_name(params['name'])}" if "name" in params else primitive
            return self.convert_closed(inner, inputs, self.sub_scope(_join(scope, label)))
        return self.add(_join(scope, primitive), primitive, inputs, avals, params)


def graph_def_from_jaxpr(
    closed_jaxpr: jax_core.ClosedJaxpr,
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
) -> graph_pb2.GraphDef:
    """The TensorBoard graph of a jaxpr, nested jaxprs expanded (see the module docstring).

    Args:
      closed_jaxpr: e.g. from `jax.make_jaxpr(fn)(*args)`.
      input_names: one node name per input of the jaxpr, `/` separating scopes.
      output_names: one node name per output.

    Returns:
      A `GraphDef` whose nodes all lie on a path to an output, or are inputs.
    """
    jaxpr = closed_jaxpr.jaxpr
    if len(input_names) != len(jaxpr.invars) or len(output_names) != len(jaxpr.outvars):
        raise ValueError(
            f"graph_def_from_jaxpr: the jaxpr has {len(jaxpr.invars)} inputs and "
            f"{len(jaxpr.outvars)} outputs, got {len(input_names)} and {len(output_names)} names"
        )
    # Walk once to find what reaches an output, then again to name only that.
    first = _build(closed_jaxpr, input_names, output_names, keep=None)
    live = set(first.nodes)
    live_scopes = {name[:i] for name in live for i, char in enumerate(name) if char == "/"}
    keep = [name in (live_scopes if name in first.scopes else live) for name in first.names]
    second = _build(closed_jaxpr, input_names, output_names, keep)
    return graph_pb2.GraphDef(
        node=list(second.nodes.values()),
        versions=versions_pb2.VersionDef(producer=_GRAPH_DEF_PRODUCER),
    )


def _build(closed_jaxpr, input_names, output_names, keep) -> _GraphBuilder:
    """Walks `closed_jaxpr`; without `keep`, its nodes are what reaches an output, and inputs."""
    jaxpr = closed_jaxpr.jaxpr
    builder = _GraphBuilder(keep)
    in_refs = [
        builder.add(_node_name(name), "Placeholder", [], [var.aval], type_attr="dtype")[0]
        for name, var in zip(input_names, jaxpr.invars, strict=True)
    ]
    out_refs = builder.convert(jaxpr, closed_jaxpr.consts, in_refs, "")
    outputs = [
        builder.add(_node_name(name), "Identity", [ref], [var.aval])[0]
        for name, ref, var in zip(output_names, out_refs, jaxpr.outvars, strict=True)
    ]
    if keep is None:
        live, pending = set(in_refs), list(outputs)
        while pending:
            name = pending.pop()
            if name not in live:
                live.add(name)
                pending.extend(ref.split(":")[0] for ref in builder.nodes[name].input)
        builder.nodes = {name: node for name, node in builder.nodes.items() if name in live}
    return builder


def _node_name(name: str) -> str:
    """A caller's node name, each `/`-separated part cleaned."""
    return "/".join(_clean_name(part) for part in name.split("/") if part)


def _leaf_names(tree, prefix: str = "") -> list[str]:
    """Node names of a pytree's leaves from their paths: `params/w`, `opt_state/count`."""
    paths = [path for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
    keys = [jax.tree_util.keystr(path, simple=True, separator="/") for path in paths]
    return ["/".join(part for part in (prefix, key) if part) for key in keys]


def train_step_graph(
    num_features: int,
    num_classes: int,
    batch_size: int,
    descent: GradientDescent = GradientDescent(),
) -> graph_pb2.GraphDef:
    """The graph of `engine.train_step` for one model, traced on shapes alone.

    Args:
      num_features: input size (pixels per image).
      num_classes: output size.
      batch_size: examples per step.
      descent: the parts of the run's gradient descent (weight decay, momentum).

    Returns:
      A `GraphDef` with inputs `params/{w,b}`, `opt_state/...`, `batch/{inputs,labels}`
      and `loss_scale`, and outputs `outputs/params/{w,b}`, `outputs/opt_state/...`,
      `outputs/loss` and `outputs/accuracy`.
    """
    state = jax.eval_shape(  # shapes only: nothing is computed or compiled
        lambda: engine.init_state(
            model.init_params(num_features, num_classes),
            learning_rate=0.0,
            weight_decay=0.0 if descent.weight_decay else None,
            momentum=0.0 if descent.momentum else None,
        )
    )
    # Strong types, as the arrays of a real sweep have.
    state = jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype), state)
    inputs = jax.ShapeDtypeStruct((batch_size, num_features), jnp.float32)
    labels = jax.ShapeDtypeStruct((batch_size,), jnp.int32)
    loss_scale = jax.ShapeDtypeStruct((), jnp.float32)
    step = functools.partial(engine.train_step, optimizer=descent.transformation())
    closed_jaxpr, (new_state, metrics) = jax.make_jaxpr(step, return_shape=True)(
        state, inputs, labels, loss_scale
    )
    return graph_def_from_jaxpr(
        closed_jaxpr,
        input_names=[*_leaf_names(state), "batch/inputs", "batch/labels", "loss_scale"],
        output_names=[*_leaf_names(new_state, "outputs"), *_leaf_names(metrics, "outputs")],
    )
