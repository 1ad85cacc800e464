"""The wire format between the grader and a kernel: plain data out, the library's types rebuilt
from validated fields, identities kept across a session, and nothing else accepted."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mlsys
from mlsys.comm.schedules import ALGORITHMS, Schedule
from mlsys.grading.wire import Codec, WireError, dumps, loads
from mlsys.graph import trace


def roundtrip(value, types=()):
    """Through JSON bytes, as between processes: grader (side 0) to kernel (side 1)."""
    grader, kernel = Codec(types, side=0), Codec(types, side=1)
    return kernel.decode(loads(dumps(grader.encode(value)))), grader, kernel


def test_plain_values_survive_exactly() -> None:
    value = {"ints": [1, -2, 10**30], "floats": (0.5, float("inf"), float("-inf")),
             "flags": {True, False}, "none": None, "text": "é", "cplx": 1 + 2j,
             "slice": slice(1, None, -2), "dots": Ellipsis, 3: "an int key", "$tag": "safe",
             "array": np.arange(6, dtype=np.int16).reshape(2, 3), "f32": np.float32(1.5),
             "dtype": np.dtype("float64"), "scalar type": np.float32, "empty": np.zeros((0, 3))}
    back, _, _ = roundtrip(value)
    assert back.keys() == value.keys()
    for key in value:
        if isinstance(value[key], np.ndarray):
            assert back[key].dtype == value[key].dtype and np.array_equal(back[key], value[key])
        else:
            assert back[key] == value[key] and type(back[key]) is type(value[key])
    nan, _, _ = roundtrip(float("nan"))
    assert nan != nan
    assert b"NaN" not in dumps(Codec().encode([float("nan")]))  # standard JSON only


def test_library_types_are_rebuilt_and_identities_kept() -> None:
    schedule = ALGORITHMS["ring"](4, 10)
    back, _, _ = roundtrip(schedule)
    assert type(back) is Schedule and back == schedule
    x = mlsys.tensor(np.ones((2, 3), np.float32))
    graph = trace(lambda a: (a * 2.0).tanh() + a.exp(), x).graph
    back, grader, kernel = roundtrip([graph, graph.nodes[1], {graph.nodes[0]}])
    g, node, nodes = back
    assert [n.op for n in g.nodes] == [n.op for n in graph.nodes] and g.verify() is g
    assert node is g.nodes[1] and next(iter(nodes)) is g.nodes[0]  # shared, not copied
    result = loads(dumps(kernel.encode([g.nodes[0], g.nodes[1]])))  # the kernel hands them back
    assert grader.decode(result) == [graph.nodes[0], graph.nodes[1]]  # as the grader's own
    assert json.loads(dumps(grader.encode(graph)))["objects"] == []  # sent once, then referred to


def test_a_tensor_graph_crosses_with_its_tape_and_deep_chains_need_no_recursion() -> None:
    x = mlsys.tensor(np.linspace(0.1, 1, 4), dtype=np.float64, requires_grad=True)
    y = x
    for _ in range(3000):
        y = (y * 0.5 + x).tanh()
    root = y.sum()
    back, _, _ = roundtrip(root)
    assert back.grad_fn == "sum" and np.allclose(back.data, root.data)
    t, depth = back, 0
    while t._node is not None:
        t, depth = t._node.inputs[0], depth + 1
    assert depth == 3 * 3000 + 1 and t.requires_grad


@pytest.mark.parametrize("value, error", [
    (object(), "cannot send a builtins.object"),
    (lambda x: x, "cannot send a builtins.function"),
    (type("MyList", (list,), {})([1]), "cannot send a"),
    (np.array([object()]), "dtype object"),
    (np.zeros(2, dtype=[("a", "i4")]), "numbers and booleans only"),
])
def test_anything_else_is_refused(value, error: str) -> None:
    with pytest.raises(WireError, match=error):
        Codec().encode(value)


def test_an_array_subclass_crosses_as_its_plain_data() -> None:
    class AlwaysEqual(np.ndarray):
        def __eq__(self, other):
            return True

    back, _, _ = roundtrip(np.zeros(3).view(AlwaysEqual))
    assert type(back) is np.ndarray and not (back == np.ones(3)).any()


@pytest.mark.parametrize("message, error", [
    ({"objects": [], "value": {"$r": 0}}, "unknown object"),
    ({"objects": [{"$o": 1, "type": "os.system", "f": {}}], "value": None}, "may not cross"),
    ({"objects": [{"$o": 1, "type": "mlsys.comm.schedules.Step",
                   "f": {"round": 0, "src": 0, "dst": 1, "chunk": 0, "op": "copy", "x": 1}}],
      "value": None}, "no field"),
    ({"objects": [{"$o": 0, "type": "mlsys.comm.schedules.Step", "f": {}}], "value": None},
     "invalid or used twice"),  # the kernel may not use the grader's ids
    ({"objects": [], "value": {"$nd": "AAAA", "dtype": "<f8", "shape": [5]}}, "needs 40 bytes"),
    ({"objects": [], "value": {"$nd": "", "dtype": "O", "shape": [0]}}, "dtype"),
    ({"objects": [], "value": {"$slice": ["a", 1, 2]}}, "slice"),
    ({"objects": [], "value": {"$what": 1}}, "unknown tag"),
    ({"value": 1}, "must hold"),
])
def test_malformed_messages_are_errors(message, error: str) -> None:
    with pytest.raises(WireError, match=error):
        Codec(side=0).decode(message)
    with pytest.raises(WireError):
        loads(b"[" * 100000)
    with pytest.raises(WireError, match="constant"):
        loads(b"[NaN]")


def test_a_failed_message_leaves_both_memos_as_they_were() -> None:
    grader, kernel = Codec(side=0), Codec(side=1)
    schedule = ALGORITHMS["ring"](2, 4)
    with pytest.raises(WireError):
        grader.encode([schedule, object()])  # the schedule was staged, then the list failed
    message = grader.encode(schedule)
    assert message["objects"], "the schedule must still be sent in full"
    bad = {"objects": message["objects"], "value": {"$r": 10**6}}
    with pytest.raises(WireError):
        kernel.decode(bad)
    assert kernel.decode(message) == schedule  # the same ids decode cleanly afterwards
