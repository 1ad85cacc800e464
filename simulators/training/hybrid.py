"""One training step of a transformer under 3D parallelism: data x tensor x pipeline.

Data, tensor and pipeline parallelism alone are the special cases ``tp = pp = 1``,
``dp = pp = 1`` and ``dp = tp = 1``. All data-parallel replicas and tensor-parallel ranks do the
same work, so one GPU per pipeline stage is simulated:

1. each slot of the pipeline schedule costs its layers' kernels (:mod:`.costs`) including the
   tensor-parallel all-reduces, activation recomputation and, under ZeRO-3, parameter
   all-gathers (prefetched, so they hide behind compute when they are shorter);
2. the schedule runs on SimPy devices with point-to-point activation transfers;
3. each stage's gradients are reduced over the data-parallel group in buckets, overlapping the
   last micro-batch's backward pass if ``overlap`` (ZeRO: reduce-scatter, then the optimizer on
   the local shard, then an all-gather of the updated parameters for stages 1 and 2);
4. the optimizer step is memory-bound (Adam reads and writes about 28 bytes per parameter).

Left out: the all-reduce of the tied embedding between the first and last stages, sequence
parallelism, kernel-level effects (tile and wave quantization), congestion between jobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulators.core import Recorder

from . import costs
from .config import Cluster, ParallelConfig, TransformerConfig
from .costs import Op
from .data_parallel import sync_gradients
from .memory import Memory, layer_params, memory_per_gpu, stage_params
from .pipeline import run_pipeline
from .schedules import Slot, build

ADAM_BYTES_PER_PARAM = 28  # read 16-bit grad, fp32 master/m/v; write master/m/v and 16-bit param


@dataclass
class TrainingResult:
    """Step time and what follows from it, per-GPU memory and the step's timeline."""

    model: TransformerConfig
    parallel: ParallelConfig
    cluster: Cluster
    step_time: float
    executed_flops: float
    model_flops: float
    bubble_fraction: float
    memory: Memory
    recorder: Recorder

    @property
    def tokens_per_s(self) -> float:
        return self.parallel.global_batch * self.model.seq_len / self.step_time

    @property
    def achieved_flops_per_gpu(self) -> float:
        """Executed FLOP/s per GPU, recomputation included (what SC'21 reports)."""
        return self.executed_flops / (self.step_time * self.parallel.gpus)

    @property
    def model_flops_per_gpu(self) -> float:
        """Useful FLOP/s per GPU, recomputation excluded (model FLOPs utilization)."""
        return self.model_flops / (self.step_time * self.parallel.gpus)

    @property
    def fraction_of_peak(self) -> float:
        return self.achieved_flops_per_gpu / self.cluster.device.peak(self.parallel.dtype)

    @property
    def fits(self) -> bool:
        return self.memory.fits(self.cluster.device.memory)

    def summary(self) -> dict[str, Any]:
        """The headline figures as a flat dict (for tables and JSON)."""
        mem = self.memory.as_gb()
        return {"gpus": self.parallel.gpus, "step_s": self.step_time,
                "tokens_per_s": self.tokens_per_s,
                "achieved_tflops_per_gpu": self.achieved_flops_per_gpu / 1e12,
                "model_tflops_per_gpu": self.model_flops_per_gpu / 1e12,
                "fraction_of_peak": self.fraction_of_peak, "bubble_fraction": self.bubble_fraction,
                "memory_gb": mem["total"], "params_gb": mem["params"], "grads_gb": mem["grads"],
                "optimizer_gb": mem["optimizer"], "activations_gb": mem["activations"],
                "fits": self.fits, "events": len(self.recorder)}


def _check(model: TransformerConfig, parallel: ParallelConfig) -> None:
    per = parallel.pp * parallel.chunks
    if model.layers % per:
        raise ValueError(f"model.layers={model.layers} must be divisible by pp*chunks={per}")
    if model.heads % parallel.tp:
        raise ValueError(f"model.heads={model.heads} must be divisible by tp={parallel.tp}")


def simulate(model: TransformerConfig, parallel: ParallelConfig | None = None,
             cluster: Cluster | None = None) -> TrainingResult:
    """Simulate one optimizer step; see the module docstring for what is modelled."""
    parallel = parallel or ParallelConfig()
    cluster = cluster or Cluster()
    _check(model, parallel)
    p, v, t, d = parallel.pp, parallel.chunks, parallel.tp, parallel.dp
    m, b, dtype = parallel.microbatches, parallel.micro_batch, parallel.dtype
    n_chunks = p * v
    layers = model.layers // n_chunks
    dp_link = cluster.link_for(t, d)
    eff = cluster.network_efficiency

    fwd_layer = costs.layer_forward(model, b, t)
    bwd_layer = costs.recomputed(fwd_layer, parallel.recompute) + costs.backward_of(fwd_layer)
    gather = 0.0  # ZeRO-3 gathers each layer's parameters before its forward and its backward
    if parallel.zero == 3:
        gather = costs.half_ring_time(costs.BYTES * layer_params(model, t), d, dp_link, eff)

    def chunk_ops(chunk: int) -> tuple[list[Op], list[Op]]:
        fwd, bwd = fwd_layer * layers, bwd_layer * layers
        extra_f, extra_b = [], []
        if chunk == 0:
            extra_f += costs.embedding_forward(model, b)
            extra_b += costs.backward_of(costs.embedding_forward(model, b))
        if chunk == n_chunks - 1:
            head = costs.head_forward(model, b, t)  # not recomputed: its output is the loss
            extra_f += head
            extra_b = costs.backward_of(head) + extra_b
        return fwd + extra_f, extra_b + bwd

    ops = {c: chunk_ops(c) for c in range(n_chunks)}
    times = {}
    for c, (f_ops, b_ops) in ops.items():
        times[c, "F"] = max(costs.ops_time(f_ops, cluster, t, dtype), layers * gather)
        times[c, "B"] = max(costs.ops_time(b_ops, cluster, t, dtype), layers * gather)

    recorder = Recorder()
    schedule = build(parallel.schedule, p, m, v)
    p2p_link = cluster.link_for(t * d, p)
    p2p = 0.0 if p == 1 else p2p_link.latency + costs.BYTES * b * model.seq_len * model.hidden / t / (
        p2p_link.bandwidth * eff)
    run = run_pipeline(schedule, lambda s: times[s.chunk, s.phase], p2p, recorder)

    def collective(nbytes: float) -> float:  # ZeRO replaces the all-reduce by a reduce-scatter
        if parallel.zero == 0:
            return costs.allreduce_time(nbytes, d, dp_link, eff)
        return costs.half_ring_time(nbytes, d, dp_link, eff)

    # gradients of each stage, layer by layer, during the last backward of each of its chunks
    grad_bytes = costs.BYTES * layer_params(model, t)
    step_end = 0.0
    stage_totals = stage_params(model, parallel)
    for stage in range(p):
        grads = []
        for c in sorted(range(stage, n_chunks, p), reverse=True):
            end = run.slot_end[Slot(c, _last_backward(schedule[stage], c), "B")]
            begin = end - times[c, "B"]
            grads += [(begin + (i + 1) / layers * times[c, "B"], grad_bytes) for i in range(layers)]
        extra = (stage_totals[stage] - layers * v * layer_params(model, t)) * costs.BYTES
        grads[-1] = (grads[-1][0], grads[-1][1] + extra)  # embeddings and head finish last

        synced = sync_gradients(grads, collective, bucket_bytes=parallel.bucket_mb * 1e6,
                                overlap=parallel.overlap, resource=f"stage {stage} dp-comm",
                                recorder=recorder) if d > 1 else max(g[0] for g in grads)
        shard = stage_totals[stage] / (d if parallel.zero >= 1 else 1)
        opt = ADAM_BYTES_PER_PARAM * shard / (cluster.device.memory_bandwidth * cluster.memory_efficiency)
        recorder.record("adam", f"stage {stage}", synced, synced + opt, category="optimizer",
                        group="pipeline")
        end = synced + opt
        if parallel.zero in (1, 2) and d > 1:
            gathered = costs.half_ring_time(costs.BYTES * stage_totals[stage], d, dp_link, eff)
            recorder.record("param all-gather", f"stage {stage} dp-comm", end, end + gathered,
                            category="dp-comm", group="data parallel")
            end += gathered
        step_end = max(step_end, end)

    executed = sum(op.flops for f_ops, b_ops in ops.values() for op in f_ops + b_ops)
    model_flops = executed - sum(op.flops for op in costs.recomputed(fwd_layer, parallel.recompute)) * \
        model.layers
    scale = m * d * t  # micro-batches, replicas and tensor-parallel ranks
    return TrainingResult(model, parallel, cluster, step_end, executed * scale, model_flops * scale,
                          run.bubble_fraction, memory_per_gpu(model, parallel), recorder)


def _last_backward(slots: list[Slot], chunk: int) -> int:
    return next(s.microbatch for s in reversed(slots) if s.chunk == chunk and s.phase == "B")
