"""Memory per GPU: parameters, gradients, optimizer states (with ZeRO) and activations.

Model states follow the ZeRO paper (Rajbhandari et al., SC'20): mixed-precision Adam keeps
2 bytes of 16-bit parameters, 2 of 16-bit gradients and K = 12 of fp32 master weights, momentum
and variance per parameter; ZeRO stage 1 shards the optimizer states over the ``dp`` replicas,
stage 2 also the gradients, stage 3 also the parameters. Activations per layer follow Korthikanti
et al. (2022, "Reducing Activation Recomputation in Large Transformer Models"), without sequence
parallelism: ``s*b*h*(10 + 24/t + 5*a*s/(h*t))`` bytes, ``s*b*h*(10 + 24/t)`` with selective
recomputation, and only the layer input ``2*s*b*h`` with full recomputation.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import ParallelConfig, TransformerConfig
from .schedules import build, peak_in_flight

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


def model_states(params: float, dp: int, zero: int) -> tuple[float, float, float]:
    """(parameter, gradient, optimizer) bytes per GPU for ``params`` parameters on one replica."""
    if zero not in (0, 1, 2, 3):
        raise ValueError(f"zero stage must be 0, 1, 2 or 3, got {zero!r}")
    p, g, o = PARAM_BYTES * params, GRAD_BYTES * params, OPTIMIZER_BYTES * params
    return (p / dp if zero >= 3 else p, g / dp if zero >= 2 else g, o / dp if zero >= 1 else o)


def layer_params(model: TransformerConfig, tp: int) -> float:
    """Parameters of one layer on one tensor-parallel GPU: weights and column biases split,
    layernorms and row-parallel biases replicated."""
    h = model.hidden
    return (12 * h * h + 7 * h) / tp + 6 * h


def stage_params(model: TransformerConfig, parallel: ParallelConfig) -> list[float]:
    """Parameters per GPU of each pipeline stage; the first holds the embeddings, the last the
    tied output embedding and the final layernorm."""
    per_stage = model.layers / parallel.pp * layer_params(model, parallel.tp)
    embed = model.vocab * model.hidden / parallel.tp
    stages = [per_stage] * parallel.pp
    stages[0] += embed + model.seq_len * model.hidden
    if parallel.pp > 1:
        stages[-1] += embed
    stages[-1] += 2 * model.hidden
    return stages


def activation_bytes_per_layer(model: TransformerConfig, micro_batch: int, tp: int,
                               recompute: str = "none") -> float:
    """Activation bytes one layer stores for one micro-batch (Korthikanti et al., eq. 2 and 6)."""
    s, b, h, a = model.seq_len, micro_batch, model.hidden, model.heads
    if recompute == "full":
        return 2 * s * b * h
    if recompute == "selective":
        return s * b * h * (10 + 24 / tp)
    if recompute == "none":
        return s * b * h * (10 + 24 / tp + 5 * a * s / (h * tp))
    raise ValueError(f"recompute must be 'none', 'selective' or 'full', got {recompute!r}")


def memory_per_gpu(model: TransformerConfig, parallel: ParallelConfig) -> Memory:
    """Peak memory of the most loaded GPU (the first pipeline stage, which holds the most
    micro-batches in flight under 1F1B)."""
    schedule = build(parallel.schedule, parallel.pp, parallel.microbatches, parallel.chunks)
    in_flight = peak_in_flight(schedule)
    layers_per_chunk = model.layers / (parallel.pp * parallel.chunks)
    stored = activation_bytes_per_layer(model, parallel.micro_batch, parallel.tp, parallel.recompute)
    working = 0.0
    if parallel.recompute == "full":  # one layer's activations are rebuilt during its backward
        working = activation_bytes_per_layer(model, parallel.micro_batch, parallel.tp)
    best = None
    for params, alive in zip(stage_params(model, parallel), in_flight):
        mem = Memory(*model_states(params, parallel.dp, parallel.zero),
                     activations=alive * layers_per_chunk * stored + working)
        if best is None or mem.total > best.total:
            best = mem
    return best
