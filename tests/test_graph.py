"""The training step's graph for TensorBoard: its structure, a round trip through
TensorBoard's own reader, nested jaxprs, and pins on the jaxpr features it relies on."""

import functools

import jax
import jax.numpy as jnp
import pytest
from jax import lax
from jax.extend import core as jax_core
from tensorboard.backend.event_processing import event_accumulator
from tensorboardX.proto import types_pb2

from jaxsoftmax.core import engine, model, optimizer
from jaxsoftmax.outputs import graph, summaries

NUM_FEATURES, NUM_CLASSES, BATCH_SIZE = 784, 10, 100
# Every primitive in train_step's jaxpr, nested ones included. A change means JAX or
# optax now trace the step differently: look at the graph in TensorBoard, then update.
TRAIN_STEP_PRIMITIVES = {
    "abs", "add", "add_any", "argmax", "broadcast_in_dim", "convert_element_type", "copy",
    "cos", "div", "dot_general", "eq", "exp", "gather", "ge", "gt", "is_finite", "jit", "log",
    "lt", "max", "min", "mul", "neg", "reduce_max", "reduce_sum", "reshape", "scatter-add",
    "select_n", "sign", "stop_gradient", "sub", "transpose",
}  # fmt: skip


@pytest.fixture(scope="module")
def step_graph():
    return graph.train_step_graph(NUM_FEATURES, NUM_CLASSES, BATCH_SIZE)


def by_name(graph_def) -> dict:
    return {node.name: node for node in graph_def.node}


def output_shapes(node) -> list[tuple[int, ...]]:
    return [
        tuple(dim.size for dim in shape.dim) for shape in node.attr["_output_shapes"].list.shape
    ]


def ancestors(nodes: dict, name: str) -> set[str]:
    """`name` and every node it depends on."""
    found, pending = set(), [name]
    while pending:
        current = pending.pop()
        if current not in found:
            found.add(current)
            pending.extend(ref.split(":")[0] for ref in nodes[current].input)
    return found


def test_nodes_are_grouped_by_named_scope(step_graph):
    names = set(by_name(step_graph))
    scopes = {scope for name in names for scope in name.split("/")[:-1]}
    assert {"train", "softmax_linear_model", "cross_entropy_loss", "accuracy"} <= scopes
    # Forward ops under the user's scope, their gradients under `gradients/` beside it.
    assert "train/softmax_linear_model/dot_general" in names
    assert "train/gradients/softmax_linear_model/dot_general" in names
    assert "train/accuracy/argmax" in names
    assert not [name for name in names if "(" in name or "jvp" in name]


def test_inputs_and_outputs_are_named_nodes_with_shapes(step_graph):
    nodes = by_name(step_graph)
    features, classes, batch = NUM_FEATURES, NUM_CLASSES, BATCH_SIZE
    inputs = {
        name: output_shapes(node)[0] for name, node in nodes.items() if node.op == "Placeholder"
    }
    assert inputs == {
        "params/w": (features, classes),
        "params/b": (classes,),
        "opt_state/count": (),
        "opt_state/hyperparams/learning_rate": (),
        "opt_state/hyperparams/decay_steps": (),
        "opt_state/inner_state/1/count": (),
        "batch/inputs": (batch, features),
        "batch/labels": (batch,),
        "loss_scale": (),
    }
    outputs = {
        name: output_shapes(node)[0] for name, node in nodes.items() if node.op == "Identity"
    }
    assert outputs == {
        "outputs/params/w": (features, classes),
        "outputs/params/b": (classes,),
        "outputs/opt_state/count": (),
        "outputs/opt_state/hyperparams/learning_rate": (),
        "outputs/opt_state/hyperparams/decay_steps": (),
        "outputs/opt_state/inner_state/1/count": (),
        "outputs/loss": (),
        "outputs/accuracy": (),
    }
    assert nodes["batch/inputs"].attr["dtype"].type == types_pb2.DT_FLOAT
    assert nodes["batch/labels"].attr["dtype"].type == types_pb2.DT_INT32


def test_logits_matmul_has_its_shape_dtype_and_parameters(step_graph):
    node = by_name(step_graph)["train/softmax_linear_model/dot_general"]
    assert node.op == "dot_general"
    assert list(node.input) == ["batch/inputs", "params/w"]
    assert output_shapes(node) == [(BATCH_SIZE, NUM_CLASSES)]
    assert node.attr["T"].type == types_pb2.DT_FLOAT
    assert node.attr["dimension_numbers"].s == b"(((1,), (0,)), ((), ()))"


def test_edges_connect_and_nothing_dangles(step_graph):
    nodes = by_name(step_graph)
    assert len(nodes) == len(step_graph.node), "node names must be unique"
    for node in step_graph.node:
        for ref in node.input:
            source, _, index = ref.partition(":")
            assert source in nodes, f"{node.name} reads missing {ref}"
            assert int(index or 0) < len(output_shapes(nodes[source]))
    outputs = [name for name, node in nodes.items() if node.op == "Identity"]
    reached = set().union(*(ancestors(nodes, name) for name in outputs))
    assert reached == set(nodes)


def test_new_weights_depend_on_the_weight_gradient_and_learning_rate(step_graph):
    nodes = by_name(step_graph)
    needed = ancestors(nodes, "outputs/params/w")
    assert {
        "train/gradients/softmax_linear_model/dot_general",
        "train/cross_entropy_loss/exp",
        "opt_state/hyperparams/learning_rate",
        "batch/labels",
        "loss_scale",
    } <= needed
    assert "train/accuracy/argmax" not in needed


def test_graph_round_trips_through_tensorboards_reader(tmp_path, step_graph):
    events = summaries.EventFile(tmp_path)
    events.add_graph(step_graph)
    events.close()
    read_back = event_accumulator.EventAccumulator(str(tmp_path)).Reload().Graph()
    assert [node.name for node in read_back.node] == [node.name for node in step_graph.node]
    assert read_back.SerializeToString(deterministic=True) == step_graph.SerializeToString(
        deterministic=True
    )


def test_dead_code_is_dropped_without_gaps_in_names():
    def fn(x):
        unused = jnp.exp(x) * 3.0
        del unused
        return (x + 1.0) * 2.0

    graph_def = graph.graph_def_from_jaxpr(
        jax.make_jaxpr(fn)(1.0), input_names=["x"], output_names=["y"]
    )
    assert sorted(node.op for node in graph_def.node) == sorted(
        ["Placeholder", "Const", "add", "Const", "mul", "Identity"]
    )
    assert {"mul", "Const", "Const_1"} <= set(by_name(graph_def))


def test_name_count_must_match_the_jaxpr():
    with pytest.raises(ValueError, match="2 inputs"):
        graph.graph_def_from_jaxpr(
            jax.make_jaxpr(jnp.add)(1.0, 2.0), input_names=["x"], output_names=["y"]
        )


@jax.jit
def double(values):
    return 2.0 * values


@jax.custom_vjp
def squash(value):
    """tanh, with its gradient clipped rather than computed."""
    return jnp.tanh(value)


squash.defvjp(lambda x: (jnp.tanh(x), None), lambda _, grad: (jnp.clip(grad, -1.0, 1.0),))


def nested(values, flag):
    """jit, custom_jvp (relu), cond, scan, while, custom_vjp and remat, in that order."""
    with jax.named_scope("prepare"):
        values = jax.nn.relu(double(values))
    values = lax.cond(flag > 0, lambda v: v - 1.0, lambda v: v + 1.0, values)
    total, products = lax.scan(lambda carry, x: (carry + x, carry * x), jnp.float32(0), values)
    doubled = lax.while_loop(lambda c: c < total, lambda c: c * 2.0, jnp.float32(1))
    return jax.checkpoint(jnp.sin)(squash(doubled)), products


def test_nested_jaxprs_are_expanded_in_sub_scopes():
    closed = jax.make_jaxpr(nested)(jnp.zeros(3, jnp.float32), jnp.int32(1))
    nodes = by_name(
        graph.graph_def_from_jaxpr(
            closed, input_names=["values", "flag"], output_names=["out/sine", "out/products"]
        )
    )
    assert list(nodes["prepare/jit_double/mul"].input) == ["prepare/jit_double/Const", "values"]
    assert "prepare/custom_jvp_call/jit_relu/max" in nodes
    # cond: each branch in its own scope, joined by a merge node.
    assert list(nodes["cond/merge"].input) == [
        "convert_element_type",
        "cond/branch_0/add",
        "cond/branch_1/sub",
    ]
    # scan: the body fed by the loop's inputs; the loop node has the loop's outputs.
    assert nodes["scan/loop"].op == "scan"
    assert list(nodes["scan/loop"].input) == ["scan/body/add", "scan/body/mul"]
    assert output_shapes(nodes["scan/loop"]) == [(), (3,)]
    assert list(nodes["out/products"].input) == ["scan/loop:1"]
    assert list(nodes["while/loop"].input) == ["while/cond/lt", "while/body/mul"]
    assert list(nodes["while/cond/lt"].input) == ["Const_2", "scan/loop"]
    assert list(nodes["custom_vjp_call/tanh"].input) == ["while/loop"]
    assert list(nodes["remat2/sin"].input) == ["custom_vjp_call/tanh"]
    called = {"jit", "pjit", "custom_jvp_call", "custom_vjp_call", "remat2", "closed_call"}
    assert not called & {node.op for node in nodes.values()}


def traced_train_step():
    state = jax.eval_shape(
        lambda: engine.init_state(model.init_params(NUM_FEATURES, NUM_CLASSES), 0.0)
    )
    descent = optimizer.GradientDescent().transformation()
    return jax.make_jaxpr(functools.partial(engine.train_step, optimizer=descent))(
        state,
        jax.ShapeDtypeStruct((BATCH_SIZE, NUM_FEATURES), jnp.float32),
        jax.ShapeDtypeStruct((BATCH_SIZE,), jnp.int32),
        jax.ShapeDtypeStruct((), jnp.float32),
    )


def all_equations(jaxpr):
    for eqn in jaxpr.eqns:
        yield eqn
        for inner in jax_core.jaxprs_in_params(eqn.params):
            yield from all_equations(inner)


def equation_of(primitive: str, fn, *args):
    """The first equation of `fn`'s jaxpr that applies `primitive`."""
    eqns = jax.make_jaxpr(fn)(*args).eqns
    found = [eqn.primitive.name for eqn in eqns]
    assert primitive in found, f"expected the primitive {primitive!r}, JAX now traces {found}"
    return eqns[found.index(primitive)]


def test_pin_jaxpr_features_the_converter_relies_on():
    """Jaxprs are not a stable API; a JAX upgrade that breaks these breaks graph.py."""
    closed = traced_train_step()
    primitives = {eqn.primitive.name for eqn in all_equations(closed.jaxpr)}
    assert primitives == TRAIN_STEP_PRIMITIVES, (
        f"train_step now traces to new primitives {primitives - TRAIN_STEP_PRIMITIVES} and "
        f"drops {TRAIN_STEP_PRIMITIVES - primitives}: check graph.py handles them, then update"
    )
    # Scopes: graph.py reads `str(name_stack)`, with autodiff as `jvp(...)`/`transpose(...)`.
    stacks = {
        str(eqn.source_info.name_stack)
        for eqn in closed.eqns
        if eqn.primitive.name == "dot_general"
    }
    expected = {"train/jvp(softmax_linear_model)", "train/transpose(jvp(softmax_linear_model))"}
    assert stacks == expected, f"JAX's name stacks now read {stacks}: update graph._scope_names"
    # Literals are `jax.extend.core.Literal` with a `val`.
    literals = [v for eqn in closed.eqns for v in eqn.invars if isinstance(v, jax_core.Literal)]
    assert literals and all(hasattr(literal, "val") for literal in literals)
    # Where nested jaxprs live, by primitive.
    x = jnp.float32(1)
    pins = {
        "jit": (jax.jit(jnp.sin), {"jaxpr", "name"}),
        "custom_jvp_call": (jax.nn.relu, {"call_jaxpr"}),
        "custom_vjp_call": (squash, {"call_jaxpr"}),
        "remat2": (jax.checkpoint(jnp.sin), {"jaxpr"}),
        "cond": (lambda v: lax.cond(v > 0, jnp.sin, jnp.cos, v), {"branches"}),
        "scan": (lambda v: lax.scan(lambda c, _: (c, c), v, length=2), {"jaxpr", "num_consts"}),
        "while": (
            lambda v: lax.while_loop(lambda c: c < 1, lambda c: c + 1, v),
            {"cond_jaxpr", "body_jaxpr", "cond_nconsts", "body_nconsts"},
        ),
    }
    for primitive, (fn, params) in pins.items():
        eqn = equation_of(primitive, fn, x)
        assert params <= set(eqn.params), f"{primitive} params are now {sorted(eqn.params)}"
