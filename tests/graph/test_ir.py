import numpy as np
import pytest

import mlsys
from mlsys.graph import Graph, GraphError, Node, trace
from mlsys.graph.ir import fresh
from mlsys.ops.registry import Spec

F32 = np.dtype(np.float32)


def _spec(*shape):
    return Spec(shape, F32)


def test_text_form_shows_typed_inputs_nodes_and_return():
    t = trace(lambda x, w: (x @ w).relu(), mlsys.randn(2, 3), mlsys.randn(3, 4))
    text = t.graph.text()
    x, w = t.graph.inputs
    assert text.splitlines()[0] == f"graph({x}: f32[2,3] x, {w}: f32[3,4] w) {{"
    assert "= matmul" in text and "= relu" in text and text.rstrip().endswith("}")
    assert t.graph.stats()["nodes"] == 2
    assert t.graph.stats()["flops"] == 2 * 2 * 4 * 3 + 2 * 4


def test_verify_rejects_use_before_definition():
    a, b = fresh(_spec(3)), fresh(_spec(3))
    g = Graph((a,), (Node("neg", (b,), {}, fresh(_spec(3))),), ())
    with pytest.raises(GraphError, match="before its definition"):
        g.verify()


def test_verify_rejects_double_definition_unknown_op_and_wrong_spec():
    a = fresh(_spec(3))
    out = fresh(_spec(3))
    twice = Graph((a,), (Node("neg", (a,), {}, out), Node("exp", (a,), {}, out)), (out,))
    with pytest.raises(GraphError, match="defined twice"):
        twice.verify()
    with pytest.raises(GraphError, match="unknown primitive 'frobnicate'"):
        Graph((a,), (Node("frobnicate", (a,), {}, out),), (out,)).verify()
    wrong = fresh(_spec(4))
    with pytest.raises(GraphError, match="shape rule gives"):
        Graph((a,), (Node("neg", (a,), {}, wrong),), (wrong,)).verify()
    bad = fresh(_spec(2, 2))
    with pytest.raises(GraphError, match="rejects the inputs"):
        Graph((a,), (Node("matmul", (a, a), {}, bad),), (bad,)).verify()


def test_verify_rejects_constant_of_wrong_spec():
    c = fresh(_spec(3))
    with pytest.raises(GraphError, match="constant"):
        Graph((), (), (c,), {c: np.zeros(4, np.float32)}).verify()


def test_dot_and_matplotlib_drawing():
    import matplotlib

    matplotlib.use("Agg")
    from mlsys.graph import draw, to_dot

    t = trace(lambda x: (x * 2.0).exp().sum(), mlsys.randn(3, 2))
    dot = to_dot(t.graph)
    assert dot.startswith("digraph") and dot.count("->") == sum(len(n.inputs) for n in t.graph.nodes)
    ax = draw(t.graph)
    boxes = [a for a in ax.texts if a.get_bbox_patch() is not None]
    assert len(boxes) == len(t.graph.inputs) + len(t.graph.nodes)
