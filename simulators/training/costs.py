"""Per-operation costs of a transformer layer and of the collectives that connect GPUs.

A layer is a list of :class:`Op` (GEMMs counted in FLOPs, memory-bound kernels in bytes moved,
tensor-parallel all-reduces in bytes), for one micro-batch on one GPU of a tensor-parallel
group, following Megatron-LM's partitioning (Shoeybi et al., 2019): QKV and fc1 split by
columns, the projections by rows, so each layer needs one all-reduce after attention and one
after the MLP in the forward pass, and two in the backward pass. Byte counts assume 16-bit
activations (and a 1-byte dropout mask), as in Korthikanti et al., 2022.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulators.core.hardware import Interconnect

from .config import Cluster, TransformerConfig

BYTES = 2  # 16-bit activations, parameters and gradients


@dataclass(frozen=True)
class Op:
    """One kernel: ``kind`` is ``"matmul"`` (``flops``), ``"memory"`` or ``"allreduce"`` (``nbytes``).

    ``attention_core`` marks the ops that selective recomputation recomputes (Korthikanti et al.).
    """

    name: str
    kind: str
    flops: float = 0.0
    nbytes: float = 0.0
    attention_core: bool = False


def layer_forward(model: TransformerConfig, micro_batch: int, tp: int) -> list[Op]:
    """The forward kernels of one transformer layer on one of ``tp`` tensor-parallel GPUs."""
    b, s, h, a = micro_batch, model.seq_len, model.hidden, model.heads
    sbh, scores = s * b * h, a * s * s * b / tp
    ops = [
        Op("layernorm", "memory", nbytes=2 * BYTES * sbh),
        Op("qkv", "matmul", flops=6 * b * s * h * h / tp),
        Op("scores", "matmul", flops=2 * b * s * s * h / tp, attention_core=True),
        Op("softmax", "memory", nbytes=2 * BYTES * scores, attention_core=True),
        Op("attn-dropout", "memory", nbytes=(2 * BYTES + 1) * scores, attention_core=True),
        Op("attn-v", "matmul", flops=2 * b * s * s * h / tp, attention_core=True),
        Op("proj", "matmul", flops=2 * b * s * h * h / tp),
        Op("tp-allreduce", "allreduce", nbytes=BYTES * sbh),
        Op("dropout-residual", "memory", nbytes=(3 * BYTES + 1) * sbh),
        Op("layernorm", "memory", nbytes=2 * BYTES * sbh),
        Op("fc1", "matmul", flops=8 * b * s * h * h / tp),
        Op("gelu", "memory", nbytes=2 * BYTES * 4 * sbh / tp),
        Op("fc2", "matmul", flops=8 * b * s * h * h / tp),
        Op("tp-allreduce", "allreduce", nbytes=BYTES * sbh),
        Op("dropout-residual", "memory", nbytes=(3 * BYTES + 1) * sbh),
    ]
    return [op for op in ops if tp > 1 or op.kind != "allreduce"]


def backward_of(ops: list[Op]) -> list[Op]:
    """Backward kernels of a forward list: GEMMs cost twice (input and weight gradients),
    memory-bound kernels move about twice the bytes, each all-reduce has its conjugate."""
    return [Op(op.name + "-grad", op.kind, flops=2 * op.flops,
               nbytes=op.nbytes if op.kind == "allreduce" else 2 * op.nbytes,
               attention_core=op.attention_core) for op in reversed(ops)]


def recomputed(ops: list[Op], recompute: str) -> list[Op]:
    """The forward kernels re-run before a layer's backward pass under ``recompute``."""
    if recompute == "full":
        return ops
    if recompute == "selective":
        return [op for op in ops if op.attention_core]
    return []


def head_forward(model: TransformerConfig, micro_batch: int, tp: int) -> list[Op]:
    """The output layer: logits against the vocabulary-parallel embedding, then the loss."""
    b, s, h, v = micro_batch, model.seq_len, model.hidden, model.vocab
    return [Op("logits", "matmul", flops=2 * b * s * h * v / tp),
            Op("cross-entropy", "memory", nbytes=3 * BYTES * b * s * v / tp)]


def embedding_forward(model: TransformerConfig, micro_batch: int) -> list[Op]:
    """Token plus position embedding lookup."""
    return [Op("embedding", "memory", nbytes=3 * BYTES * micro_batch * model.seq_len * model.hidden)]


def op_time(op: Op, cluster: Cluster, tp: int, dtype: str) -> float:
    """Seconds one GPU spends on ``op`` (tensor-parallel all-reduces over the group's link)."""
    device = cluster.device
    if op.kind == "matmul":
        return op.flops / (device.peak(dtype) * cluster.matmul_efficiency)
    if op.kind == "memory":
        return op.nbytes / (device.memory_bandwidth * cluster.memory_efficiency)
    if op.kind == "allreduce":
        return allreduce_time(op.nbytes, tp, cluster.link_for(1, tp), cluster.network_efficiency)
    raise ValueError(f"op {op.name!r} has unknown kind {op.kind!r}; "
                     "expected 'matmul', 'memory' or 'allreduce'")


def ops_time(ops: list[Op], cluster: Cluster, tp: int, dtype: str) -> float:
    return sum(op_time(op, cluster, tp, dtype) for op in ops)


def ring_time(nbytes: float, n: int, link: Interconnect, efficiency: float, steps_factor: int) -> float:
    """Ring collective: ``steps_factor * (n-1)`` steps, each moving ``nbytes/n`` over ``link``."""
    if n <= 1:
        return 0.0
    steps = steps_factor * (n - 1)
    return steps * (link.latency + nbytes / n / (link.bandwidth * efficiency))


def allreduce_time(nbytes: float, n: int, link: Interconnect, efficiency: float = 1.0) -> float:
    """Ring all-reduce (reduce-scatter then all-gather): 2(n-1)(alpha + S/(n B))."""
    return ring_time(nbytes, n, link, efficiency, 2)


def half_ring_time(nbytes: float, n: int, link: Interconnect, efficiency: float = 1.0) -> float:
    """Ring reduce-scatter or all-gather alone: (n-1)(alpha + S/(n B))."""
    return ring_time(nbytes, n, link, efficiency, 1)
