import numpy as np
import pytest
from graph_programs import inputs, make_program

import mlsys
from mlsys.graph import Executable, optimize, plan_memory, rematerialize, run_graph, sgd_step, trace
from mlsys.graph.memory import peak_live_bytes


def _mlp_step(batch=32, **shape):
    mlsys.manual_seed(0)
    model = mlsys.models.mlp(**shape)
    x = mlsys.randn(batch, 64)
    y = mlsys.tensor(np.arange(batch) % 10)
    t = trace(sgd_step(model, 0.1), x, y)
    start = [p.data for p in t.captured]
    return t.graph, [x.data, y.data, *start]


def _independent_intervals(graph):
    """Live interval of each allocated value, recomputed here without the library's code."""
    views = {"reshape", "broadcast_to", "permute", "getitem"}
    owner = {}
    for v in (*graph.inputs, *graph.consts):
        owner[v] = None
    interval = {}
    for i, n in enumerate(graph.nodes):
        same = n.op == "sum_to" and n.inputs[0].spec.shape == n.out.spec.shape
        owner[n.out] = owner[n.inputs[0]] if n.op in views or same else n.out
        if owner[n.out] is n.out:
            interval[n.out] = [i, i]
        for v in n.inputs:
            if owner[v] is not None:
                interval[owner[v]][1] = max(interval[owner[v]][1], i)
    for v in graph.outputs:
        if owner[v] is not None:
            interval[owner[v]][1] = len(graph.nodes)
    return interval


@pytest.mark.parametrize("optimized", [False, True])
def test_no_two_live_values_share_a_buffer(optimized):
    graph, _ = _mlp_step()
    _check_plan(optimize(graph) if optimized else graph)


@pytest.mark.parametrize("seed", range(12))
def test_no_two_live_values_share_a_buffer_on_random_programs(seed):
    x, b = (mlsys.tensor(a) for a in inputs(seed))
    graph = trace(make_program(seed), x, b).graph
    _check_plan(graph)
    _check_plan(optimize(graph))


def _check_plan(graph):
    plan = plan_memory(graph)
    # each peak bounds the plan made with the same in-place choices
    assert plan.peak_live_bytes <= plan.planned_bytes
    assert peak_live_bytes(graph) <= plan_memory(graph, inplace=False).planned_bytes
    interval = _independent_intervals(graph)
    assert set(plan.buffer_of) == set(interval)
    for v, b in plan.buffer_of.items():
        assert plan.buffer_sizes[b] >= v.spec.nbytes
    owners = list(plan.buffer_of.items())
    for k, (a, ba) in enumerate(owners):
        for b, bb in owners[k + 1:]:
            if ba != bb:
                continue
            (s1, e1), (s2, e2) = sorted([interval[a], interval[b]])
            first, second = (a, b) if interval[a][0] <= interval[b][0] else (b, a)
            in_place = plan.inplace.get(second) is first and e1 == s2
            assert e1 < s2 or in_place, f"{a} and {b} overlap in buffer {ba}"


def test_planned_peak_is_at_least_30_percent_below_naive_on_the_mlp_step():
    graph, _ = _mlp_step()
    for g in (graph, optimize(graph)):
        plan = plan_memory(g)
        assert plan.planned_bytes <= 0.7 * plan.naive_bytes
        assert plan.peak_live_bytes <= plan.planned_bytes


def test_in_place_execution_gives_the_same_results():
    graph, arrays = _mlp_step()
    g = optimize(graph)
    with_plan = Executable(g)
    assert with_plan.plan.inplace, "the MLP step should have in-place fused nodes"
    without = Executable(g, plan_memory(g, inplace=False))
    for a, b in zip(with_plan(*[a.copy() for a in arrays]), without(*arrays)):
        np.testing.assert_array_equal(a, b)


def test_rematerialization_trades_recompute_for_memory():
    graph, arrays = _mlp_step(batch=256, hidden=32, depth=4)  # activations dominate memory
    g = optimize(graph)
    peak = peak_live_bytes(g)
    budget = int(0.85 * peak)
    remat = rematerialize(g, budget).verify()
    assert peak_live_bytes(remat) <= budget
    assert len(remat.nodes) > len(g.nodes) and remat.cost().flops > g.cost().flops
    for a, b in zip(run_graph(g, *arrays), run_graph(remat, *arrays)):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert rematerialize(g, 10 * peak) is g
    with pytest.raises(ValueError, match="budget_bytes must be >= 0"):
        rematerialize(g, -1)


def test_rematerialization_never_recomputes_random_masks():
    from mlsys.nn import functional as F

    w = mlsys.randn(16, 16, requires_grad=True)

    def step(x):
        h = F.dropout((x @ w).relu(), 0.5)
        for _ in range(4):
            h = (h @ w).tanh()
        h.sum().backward()
        return w.grad

    g = optimize(trace(step, mlsys.randn(16, 16)).graph)
    remat = rematerialize(g, 0)
    ops = [n.op for n in remat.nodes]
    assert ops.count("dropout_mask") == 1
