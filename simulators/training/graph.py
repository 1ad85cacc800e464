"""Simulate a traced ``mlsys`` program on a catalogued GPU, alone or data parallel.

This is the "define once, run two ways" link between the engine and the training simulators: each
node of a traced graph (:mod:`mlsys.graph`) costs what its primitive's cost rule says (FLOPs and
bytes moved; a fused group moves only its external inputs and output). On a GPU a node takes its
roofline time, ``max(FLOPs / achieved peak, bytes / achieved bandwidth)`` (Williams et al., 2009),
and nodes run one after another, as kernels do on one stream. Under data parallelism each gradient
is ready when the node that produces it finishes, and the bucketed all-reduces of
:func:`simulators.training.data_parallel.sync_gradients` overlap with the rest of backward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mlsys.graph import trace
from mlsys.graph.ir import Graph, Node, Var
from mlsys.nn import Module
from mlsys.nn import functional as F
from mlsys.tensor import Tensor
from simulators.core import Recorder

from . import costs
from .config import Cluster
from .data_parallel import sync_gradients

__all__ = ["GraphStep", "node_time", "simulate_graph", "trace_gradients"]


@dataclass(frozen=True)
class GraphStep:
    """One simulated step of a traced program on each of ``dp`` GPUs."""

    step_time: float
    compute_time: float
    flops: float
    bytes_moved: float
    dp: int
    recorder: Recorder

    @property
    def exposed_communication(self) -> float:
        """Seconds the step waits on gradient all-reduces after its own compute is done."""
        return self.step_time - self.compute_time


def node_time(node: Node, cluster: Cluster, dtype: str = "fp32") -> float:
    """Roofline seconds of one node on ``cluster``'s GPU at the cluster's efficiencies."""
    cost, gpu = node.cost(), cluster.device
    return max(cost.flops / (gpu.peak(dtype) * cluster.matmul_efficiency),
               cost.bytes / (gpu.memory_bandwidth * cluster.memory_efficiency))


def simulate_graph(graph: Graph, cluster: Cluster | None = None, *, dp: int = 1,
                   gradients: Sequence[Var] = (), dtype: str = "fp32", bucket_mb: float = 25.0,
                   overlap: bool = True) -> GraphStep:
    """Cost ``graph`` node by node; with ``dp > 1``, all-reduce ``gradients`` across ``dp`` GPUs."""
    cluster = cluster or Cluster()
    if dp < 1:
        raise ValueError(f"simulate_graph: dp must be at least 1, got {dp}")
    produced = {n.out for n in graph.nodes}
    strangers = [v for v in gradients if v not in produced]
    if strangers:
        raise ValueError(f"simulate_graph: gradients {strangers} are not computed by the graph's nodes")
    recorder, now, ready = Recorder(), 0.0, {}
    for node in graph.nodes:
        seconds = node_time(node, cluster, dtype)
        recorder.record(node.op, "gpu", now, now + seconds, category="compute", group="compute")
        now += seconds
        ready[node.out] = now
    step = now
    if dp > 1 and gradients:
        link = cluster.link_for(1, dp)
        step = max(now, sync_gradients(
            [(ready[v], v.spec.nbytes) for v in sorted(gradients, key=ready.__getitem__)],
            lambda nbytes: costs.allreduce_time(nbytes, dp, link, cluster.network_efficiency),
            bucket_bytes=bucket_mb * 1e6, overlap=overlap, recorder=recorder))
    total = graph.cost()
    return GraphStep(step, now, float(total.flops), float(total.bytes), dp, recorder)


def trace_gradients(model: Module, x: Tensor, y: Tensor,
                    loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy
                    ) -> tuple[Graph, list[Var]]:
    """Trace forward, loss and backward of ``model`` on one batch.

    Returns the graph (outputs: the loss, then each parameter's gradient) and the gradient values,
    ready for :func:`simulate_graph`.
    """
    params = list(model.parameters())

    def step(x: Tensor, y: Tensor) -> tuple[Tensor, ...]:
        for p in params:
            p.grad = None
        loss = loss_fn(model(x), y)
        loss.backward()
        return (loss, *[p.grad for p in params])

    graph = trace(step, x, y).graph
    for p in params:
        p.grad = None
    return graph, list(graph.outputs[1:])
