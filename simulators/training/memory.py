"""Memory per GPU: parameters, gradients, optimizer states (with ZeRO) and activations.

Model states follow the ZeRO paper (Rajbhandari et al., SC'20): mixed-precision Adam keeps
2 bytes of 16-bit parameters, 2 of 16-bit gradients and K = 12 of fp32 master weights, momentum
and variance per parameter; ZeRO stage 1 shards the optimizer states over the ``dp`` replicas,
stage 2 also the gradients, stage 3 also the parameters (fp32 gradients take 4 bytes instead of
2). Activations per layer follow Korthikanti et al. (MLSys'23, "Reducing Activation Recomputation
in Large Transformer Models", Table 2): ``s*b*h*(10 + 24/t + 5*a*s/(h*t))`` bytes, or
``s*b*h*(34/t + 5*a*s/(h*t))`` with sequence parallelism; selective recomputation and fused
attention both drop the ``5*a*s/(h*t)`` term of the score matrices (fused attention keeps a
4-byte log-sum-exp per row and head instead), and full recomputation keeps only the layer input,
``2*s*b*h`` (divided by ``t`` when it lives in the sequence-parallel region).
"""

from __future__ import annotations

from dataclasses import dataclass

from mlsys.parallel.schedules import build, peak_in_flight

from .config import ParallelConfig, TransformerConfig

OPTIMIZER_BYTES = 12  # K in the ZeRO paper: fp32 master weights, Adam momentum and variance
GRAD_BYTES = PARAM_BYTES = 2


@dataclass(frozen=True)
class Memory:
    """Bytes per GPU by kind."""

    params: float
    grads: float
    optimizer: float
    activations: float

    @property
    def total(self) -> float:
        return self.params + self.grads + self.optimizer + self.activations

    def fits(self, capacity: float) -> bool:
        return self.total <= capacity

    def as_gb(self) -> dict[str, float]:
        return {k: v / 1e9 for k, v in {"params": self.params, "grads": self.grads,
                                          "optimizer": self.optimizer,
                                          "activations": self.activations,
                                          "total": self.total}.items()}


def model_states(params: float, dp: int, zero: int, grad_bytes: int = GRAD_BYTES, *,
                 param_bytes: int = PARAM_BYTES,
                 optimizer_bytes: int = OPTIMIZER_BYTES) -> tuple[float, float, float]:
    """(parameter, gradient, optimizer) bytes per GPU for ``params`` parameters on one replica.

    The defaults are mixed-precision Adam's; the real engine trains in one precision without
    master weights (float32: 4, 4 and 8 bytes per parameter), which
    :class:`mlsys.parallel.zero.ZeroDataParallel` holds exactly.
    """
    if zero not in (0, 1, 2, 3):
        raise ValueError(f"zero stage must be 0, 1, 2 or 3, got {zero!r}")
    p, g, o = param_bytes * params, grad_bytes * params, optimizer_bytes * params
    return (p / dp if zero >= 3 else p, g / dp if zero >= 2 else g, o / dp if zero >= 1 else o)


def layer_params(model: TransformerConfig, tp: int) -> float:
    """Parameters of one layer on one tensor-parallel GPU: weights and column biases split,
    layernorms and row-parallel biases replicated."""
    h = model.hidden
    return (12 * h * h + 7 * h) / tp + 6 * h


def chunk_params(model: TransformerConfig, parallel: ParallelConfig) -> list[float]:
    """Parameters per GPU of each model chunk (``pp * chunks`` of them, chunk ``c`` on stage
    ``c % pp``); the first holds the embeddings, the last the output embedding (a copy of the
    input one when tied and on another stage) and the final layernorm."""
    n = parallel.pp * parallel.chunks
    embed = model.vocab * model.hidden / parallel.tp
    chunks = [model.layers / n * layer_params(model, parallel.tp)] * n
    chunks[0] += embed + model.seq_len * model.hidden
    if parallel.pp > 1 or not model.tied_embeddings:
        chunks[-1] += embed
    chunks[-1] += 2 * model.hidden
    return chunks


def stage_params(model: TransformerConfig, parallel: ParallelConfig) -> list[float]:
    """Parameters per GPU of each pipeline stage: the sum of its chunks."""
    per_chunk = chunk_params(model, parallel)
    return [sum(per_chunk[stage::parallel.pp]) for stage in range(parallel.pp)]


def activation_bytes_per_layer(model: TransformerConfig, micro_batch: int, tp: int,
                               recompute: str = "none", *, sequence_parallel: bool = False,
                               fused_attention: bool = False) -> float:
    """Activation bytes one layer stores for one micro-batch (Korthikanti et al., Table 2)."""
    s, b, h, a = model.seq_len, micro_batch, model.hidden, model.heads
    shards = tp if sequence_parallel else 1  # the layernorm/dropout region is split too
    if recompute == "full":
        return 2 * s * b * h / shards
    if recompute not in ("none", "selective"):
        raise ValueError(f"recompute must be 'none', 'selective' or 'full', got {recompute!r}")
    stored = s * b * h * (10 / shards + 24 / tp)
    if fused_attention:
        return stored + 4 * a * s * b / tp  # fp32 log-sum-exp per row and head
    if recompute == "selective":
        return stored
    return stored + s * b * h * 5 * a * s / (h * tp)


def memory_per_gpu(model: TransformerConfig, parallel: ParallelConfig) -> Memory:
    """Peak memory of the most loaded GPU (the first pipeline stage, which holds the most
    micro-batches in flight under 1F1B)."""
    schedule = build(parallel.schedule, parallel.pp, parallel.microbatches, parallel.chunks)
    in_flight = peak_in_flight(schedule)
    layers_per_chunk = model.layers / (parallel.pp * parallel.chunks)
    kw = {"sequence_parallel": parallel.sequence_parallel, "fused_attention": parallel.fused_attention}
    stored = activation_bytes_per_layer(model, parallel.micro_batch, parallel.tp, parallel.recompute, **kw)
    working = 0.0
    if parallel.recompute == "full":  # one layer's activations are rebuilt during its backward
        working = activation_bytes_per_layer(model, parallel.micro_batch, parallel.tp, **kw)
    grad_bytes = 4 if parallel.fp32_grads else GRAD_BYTES
    best = None
    for params, alive in zip(stage_params(model, parallel), in_flight):
        mem = Memory(*model_states(params, parallel.dp, parallel.zero, grad_bytes),
                     activations=alive * layers_per_chunk * stored + working)
        if best is None or mem.total > best.total:
            best = mem
    return best
