"""A traced mlsys program costed by the simulator: registry cost rules, roofline, DP overlap."""

from __future__ import annotations

import numpy as np
import pytest

import mlsys
from mlsys.graph.passes import optimize
from simulators.training import Cluster
from simulators.training.costs import allreduce_time
from simulators.training.data_parallel import buckets
from simulators.training.graph import node_time, simulate_graph, trace_gradients


@pytest.fixture(scope="module")
def traced():
    mlsys.manual_seed(0)
    model = mlsys.models.mlp(hidden=256, depth=3)
    x = mlsys.tensor(np.random.default_rng(0).standard_normal((512, 64)).astype(np.float32))
    y = mlsys.tensor(np.arange(512) % 10)
    return model, trace_gradients(model, x, y)


def test_one_gpu_is_the_sum_of_roofline_node_times(traced) -> None:
    model, (graph, grads) = traced
    cluster = Cluster(gpu="A100")
    step = simulate_graph(graph, cluster)
    gpu = cluster.device
    expected = sum(max(n.cost().flops / (gpu.peak("fp32") * cluster.matmul_efficiency),
                       n.cost().bytes / (gpu.memory_bandwidth * cluster.memory_efficiency))
                   for n in graph.nodes)
    assert step.step_time == pytest.approx(expected, rel=1e-12) == step.compute_time
    assert step.flops == graph.cost().flops
    # the matmuls of forward and backward: 2 * 3 * batch * weights (x's own gradient is not needed)
    weights = sum(p.data.size for p in model.parameters() if p.ndim == 2)
    first = model[0].weight.data.size
    assert sum(n.cost().flops for n in graph.nodes if n.op == "matmul") == 2 * 512 * (3 * weights - first)
    assert [v.spec.shape for v in grads] == [p.shape for p in model.parameters()]


def test_fusion_makes_the_memory_bound_part_cheaper(traced) -> None:
    _, (graph, _) = traced
    fused = optimize(graph)
    cluster = Cluster(gpu="H100")
    assert simulate_graph(fused, cluster).step_time < simulate_graph(graph, cluster).step_time
    assert simulate_graph(fused, cluster).bytes_moved < simulate_graph(graph, cluster).bytes_moved


def test_data_parallel_overlap_hides_all_reduces_behind_backward(traced) -> None:
    _, (graph, grads) = traced
    cluster = Cluster(gpu="V100", inter="ib-edr", gpus_per_node=1)
    alone = simulate_graph(graph, cluster)
    serial = simulate_graph(graph, cluster, dp=8, gradients=grads, overlap=False, bucket_mb=0.1)
    overlapped = simulate_graph(graph, cluster, dp=8, gradients=grads, overlap=True, bucket_mb=0.1)
    link = cluster.link_for(1, 8)
    ready = {n.out: t for n, t in zip(graph.nodes, np.cumsum([node_time(n, cluster) for n in graph.nodes]))}
    plan = buckets(sorted((ready[v], v.spec.nbytes) for v in grads), 0.1e6)
    comm = sum(allreduce_time(b, 8, link, cluster.network_efficiency) for _, b in plan)
    assert serial.step_time == pytest.approx(alone.step_time + comm, rel=1e-9)
    assert alone.step_time < overlapped.step_time < serial.step_time
    assert simulate_graph(graph, cluster, dp=1, gradients=grads).step_time == alone.step_time


def test_bad_input_is_named(traced) -> None:
    _, (graph, grads) = traced
    with pytest.raises(ValueError, match="dp must be at least 1, got 0"):
        simulate_graph(graph, dp=0, gradients=grads)
    with pytest.raises(ValueError, match="not computed by the graph"):
        simulate_graph(graph, dp=2, gradients=list(graph.inputs[:1]))
