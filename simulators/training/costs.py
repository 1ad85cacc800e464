"""Per-operation costs of a transformer layer and of the collectives that connect GPUs.

A layer is a list of :class:`Op` (GEMMs with their FLOPs and bytes, memory-bound kernels with
their bytes, tensor-parallel collectives with their message size), for one micro-batch on one
GPU of a tensor-parallel group, following Megatron-LM's partitioning (Shoeybi et al., 2019): QKV
and fc1 split by columns, the projections by rows. Its two conjugate operators, ``f`` before a
column-parallel GEMM (identity forward, all-reduce backward) and ``g`` after a row-parallel one
(all-reduce forward, identity backward), give each layer one all-reduce after attention and one
after the MLP in the forward pass, and two in the backward pass. With sequence
parallelism (Korthikanti et al., MLSys'23) each all-reduce becomes an all-gather before the
column-parallel GEMM and a reduce-scatter after the row-parallel one, and the layernorms and
dropouts between them work on ``s/t`` of the sequence. Byte counts assume 16-bit activations
(and a 1-byte dropout mask), as in Korthikanti et al.

A GEMM takes the longer of its FLOPs at the GEMM efficiency and its bytes at the memory
efficiency (a roofline), which is what makes the unfused attention's ``s x s`` score matrices
cost time as well as memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulators.core.hardware import Interconnect

from .config import Cluster, TransformerConfig

BYTES = 2  # 16-bit activations, parameters and gradients
COLLECTIVES = ("allreduce", "allgather", "reducescatter")
FLASH_BACKWARD = 2.5  # Dao et al.: the backward pass recomputes the scores, 2.5x forward FLOPs


@dataclass(frozen=True)
class Op:
    """One kernel: ``kind`` is ``"matmul"`` (``flops`` and ``nbytes`` moved), ``"memory"``
    (``nbytes`` moved), a collective of the tensor-parallel group (``nbytes`` per GPU), or
    ``"identity"``: Megatron's ``f``, free forward, an all-reduce of ``nbytes`` backward.

    ``model_flops`` is what model-FLOP counts (Megatron's formulas) charge when it differs from
    the FLOPs executed; ``backward`` is the backward pass's FLOPs per forward FLOP.
    ``attention_core`` marks the ops that selective recomputation recomputes (Korthikanti et al.).
    A collective with ``pair`` +1 (-1) runs alongside the next (previous) GEMM in the list when
    the tensor-parallel communication is overlapped, or always if ``concurrent``.
    """

    name: str
    kind: str
    flops: float = 0.0
    nbytes: float = 0.0
    attention_core: bool = False
    model_flops: float | None = None
    backward: float = 2.0
    pair: int = 0
    concurrent: bool = False

    @property
    def useful_flops(self) -> float:
        return self.flops if self.model_flops is None else self.model_flops


def gemm(name: str, m: float, k: float, n: float, batch: float = 1, **kw: object) -> Op:
    """A (batched) ``m x k`` by ``k x n`` matrix product: reads both operands, writes the result."""
    return Op(name, "matmul", flops=2 * m * k * n * batch,
              nbytes=BYTES * (m * k + k * n + m * n) * batch, **kw)


def layer_forward(model: TransformerConfig, micro_batch: int, tp: int, *,
                  sequence_parallel: bool = False, fused_attention: bool = False) -> list[Op]:
    """The forward kernels of one transformer layer on one of ``tp`` tensor-parallel GPUs."""
    b, s, h, a = micro_batch, model.seq_len, model.hidden, model.heads
    sbh, tokens, d = s * b * h, s * b, h // a
    sp = sequence_parallel and tp > 1
    region = sbh / tp if sp else sbh  # what layernorm and dropout-residual touch
    scores = a * s * s * b / tp
    if fused_attention:  # causal: about half the tiles are masked out and skipped
        attention = [Op("flash-attention", "matmul", flops=2 * b * s * s * h / tp,
                        model_flops=4 * b * s * s * h / tp, nbytes=BYTES * 4 * sbh / tp,
                        backward=FLASH_BACKWARD, attention_core=True)]
    else:
        attention = [
            gemm("scores", s, d, s, a * b / tp, attention_core=True),
            Op("softmax", "memory", nbytes=2 * BYTES * scores, attention_core=True),
            Op("attn-dropout", "memory", nbytes=(2 * BYTES + 1) * scores, attention_core=True),
            gemm("attn-v", s, s, d, a * b / tp, attention_core=True),
        ]
    return [
        Op("layernorm", "memory", nbytes=2 * BYTES * region),
        *_enter(tp, sp, sbh, "qkv"),
        gemm("qkv", tokens, h, 3 * h / tp),
        *attention,
        gemm("proj", tokens, h / tp, h),
        *_leave(tp, sp, sbh, "proj"),
        Op("dropout-residual", "memory", nbytes=(3 * BYTES + 1) * region),
        Op("layernorm", "memory", nbytes=2 * BYTES * region),
        *_enter(tp, sp, sbh, "fc1"),
        gemm("fc1", tokens, h, 4 * h / tp),
        Op("gelu", "memory", nbytes=2 * BYTES * 4 * sbh / tp),
        gemm("fc2", tokens, 4 * h / tp, h),
        *_leave(tp, sp, sbh, "fc2"),
        Op("dropout-residual", "memory", nbytes=(3 * BYTES + 1) * region),
    ]


def _enter(tp: int, sp: bool, sbh: float, gemm_name: str) -> list[Op]:
    """Into a column-parallel GEMM: Megatron's ``f`` (nothing forward, an all-reduce of the input
    gradient backward), or an all-gather of the sequence shards with sequence parallelism."""
    if tp == 1:
        return []
    if sp:
        return [Op(f"{gemm_name}-allgather", "allgather", nbytes=BYTES * sbh, pair=+1)]
    return [Op(f"{gemm_name}-f", "identity", nbytes=BYTES * sbh)]


def _leave(tp: int, sp: bool, sbh: float, gemm_name: str) -> list[Op]:
    """Out of a row-parallel GEMM: Megatron's ``g``, an all-reduce of the partial sums (nothing
    backward), or a reduce-scatter onto the sequence shards with sequence parallelism."""
    if tp == 1:
        return []
    if sp:
        return [Op(f"{gemm_name}-reducescatter", "reducescatter", nbytes=BYTES * sbh, pair=-1)]
    return [Op(f"{gemm_name}-allreduce", "allreduce", nbytes=BYTES * sbh)]


def backward_of(ops: list[Op]) -> list[Op]:
    """Backward kernels of a forward list, in backward order.

    GEMMs cost ``op.backward`` times their FLOPs (input and weight gradients) and move twice
    their bytes; memory-bound kernels move about twice the bytes. Collectives turn into their
    conjugates: ``f`` becomes an all-reduce and ``g``'s all-reduce nothing, a reduce-scatter
    becomes an all-gather of the output
    gradient before the row-parallel GEMM's backward, and an all-gather becomes a reduce-scatter
    of the input gradient plus a second all-gather of the input for the weight gradient (the
    sequence-parallel layer keeps only its shard); Megatron-LM runs those two beside the GEMM's
    backward (Korthikanti et al., section 4.2.2).
    """
    out = []
    for op in reversed(ops):
        if op.kind == "allgather":
            out += [Op(op.name + "-grad", "reducescatter", nbytes=op.nbytes, pair=-1, concurrent=True),
                    Op(op.name + "-again", "allgather", nbytes=op.nbytes, pair=-1, concurrent=True)]
        elif op.kind == "reducescatter":
            out.append(Op(op.name + "-grad", "allgather", nbytes=op.nbytes, pair=+1))
        elif op.kind == "identity":
            out.append(Op(op.name + "-grad", "allreduce", nbytes=op.nbytes))
        elif op.kind == "allreduce":
            continue
        else:
            out.append(Op(op.name + "-grad", op.kind, flops=op.backward * op.flops,
                          model_flops=None if op.model_flops is None else 2 * op.model_flops,
                          nbytes=2 * op.nbytes, attention_core=op.attention_core))
    return out


def recomputed(ops: list[Op], recompute: str) -> list[Op]:
    """The forward kernels re-run before a layer's backward pass under ``recompute``."""
    if recompute == "full":
        return ops
    if recompute == "selective":
        return [op for op in ops if op.attention_core]
    return []


def head_forward(model: TransformerConfig, micro_batch: int, tp: int, *,
                 sequence_parallel: bool = False) -> list[Op]:
    """The output layer: logits against the vocabulary-parallel embedding, then the loss."""
    b, s, h, v = micro_batch, model.seq_len, model.hidden, model.vocab
    sp = sequence_parallel and tp > 1
    return [*_enter(tp, sp, s * b * h, "logits"),
            gemm("logits", s * b, h, v / tp),
            Op("cross-entropy", "memory", nbytes=3 * BYTES * b * s * v / tp)]


def embedding_forward(model: TransformerConfig, micro_batch: int, tp: int = 1, *,
                      sequence_parallel: bool = False) -> list[Op]:
    """Token plus position embedding lookup; each GPU holds ``V/t`` rows of the vocabulary, so
    the partial lookups are summed (all-reduce, or reduce-scatter onto the sequence shards)."""
    sbh = micro_batch * model.seq_len * model.hidden
    return [Op("embedding", "memory", nbytes=3 * BYTES * sbh),
            *_leave(tp, sequence_parallel and tp > 1, sbh, "embedding")]


def op_time(op: Op, cluster: Cluster, tp: int, dtype: str) -> float:
    """Seconds one GPU spends on ``op`` alone (tensor-parallel collectives over the group's link)."""
    device = cluster.device
    memory = op.nbytes / (device.memory_bandwidth * cluster.memory_efficiency)
    if op.kind == "matmul":
        return max(op.flops / (device.peak(dtype) * cluster.matmul_efficiency), memory)
    if op.kind == "memory":
        return memory
    if op.kind == "identity":
        return 0.0
    if op.kind in COLLECTIVES:
        link, eff = cluster.link_for(1, tp), cluster.network_efficiency
        if op.kind == "allreduce":
            return allreduce_time(op.nbytes, tp, link, eff)
        return half_ring_time(op.nbytes, tp, link, eff)
    raise ValueError(f"op {op.name!r} has unknown kind {op.kind!r}; "
                     f"expected 'matmul', 'memory', 'identity' or one of {COLLECTIVES}")


def ops_time(ops: list[Op], cluster: Cluster, tp: int, dtype: str, *,
             tp_comm_overlap: bool = False) -> float:
    """Seconds for ``ops`` in order on one GPU.

    A collective that may overlap (``op.concurrent``, or any paired one under
    ``tp_comm_overlap``) runs alongside its GEMM: ``max(G, C)`` when it just runs on another
    stream, ``max(G, C) + min(G, C)/t`` when it is cut into ``t`` chunks pipelined with the GEMM
    (the first chunk cannot overlap).
    """
    times = [op_time(op, cluster, tp, dtype) for op in ops]
    beside: dict[int, float] = {}
    total = 0.0
    for i, op in enumerate(ops):
        if op.kind in COLLECTIVES and op.pair and (tp_comm_overlap or op.concurrent):
            j = _paired_gemm(ops, i)
            if j is not None:
                beside[j] = beside.get(j, 0.0) + times[i]
                continue
        if op.kind != "matmul":
            total += times[i]
    for i, op in enumerate(ops):
        if op.kind == "matmul":
            g, c = times[i], beside.get(i, 0.0)
            total += max(g, c) + (min(g, c) / tp if tp_comm_overlap else 0.0)
    return total


def _paired_gemm(ops: list[Op], i: int) -> int | None:
    step = ops[i].pair
    j = i + step
    while 0 <= j < len(ops):
        if ops[j].kind == "matmul":
            return j
        j += step
    return None


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
