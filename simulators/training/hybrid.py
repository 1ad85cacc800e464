"""One training step of a transformer under 3D parallelism: data x tensor x pipeline.

Data, tensor and pipeline parallelism alone are the special cases ``tp = pp = 1``,
``dp = pp = 1`` and ``dp = tp = 1``. All data-parallel replicas and tensor-parallel ranks do the
same work, so one GPU per pipeline stage is simulated:

1. each slot of the pipeline schedule costs its layers' kernels (:mod:`.costs`) including the
   tensor-parallel collectives (blocking, or beside their GEMMs when overlapped), activation
   recomputation and, under ZeRO-3, parameter all-gathers (prefetched, so they hide behind
   compute when they are shorter);
2. the schedule runs on SimPy devices with point-to-point activation transfers (without sequence
   parallelism, each of the ``t`` GPUs sends ``1/t`` of the activations and the receivers
   all-gather them: SC'21's scatter/gather optimization);
3. each stage's gradients are reduced over the data-parallel group in buckets, overlapping the
   last micro-batch's backward pass if ``overlap`` (ZeRO: reduce-scatter, then the optimizer on
   the local shard, then an all-gather of the updated parameters for stages 1 and 2, either after
   the optimizer or, with ``param_gather_overlap``, bucket by bucket under the next step's first
   forward pass);
4. with tied embeddings and a pipeline, the first and last stages then all-reduce their copies'
   gradients (Megatron-LM's embedding group) before their optimizer steps;
5. the optimizer step is memory-bound (Adam reads and writes about 28 bytes per parameter).

Left out: kernel-level effects (tile and wave quantization), launch and host overheads,
congestion between jobs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlsys.parallel.schedules import Slot, build
from simulators.core import Recorder

from . import costs
from .config import Cluster, ParallelConfig, TransformerConfig
from .costs import Op
from .data_parallel import sync_gradients
from .memory import Memory, chunk_params, layer_params, memory_per_gpu, stage_params
from .pipeline import run_pipeline

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
             cluster: Cluster | None = None, *, trace: bool = True) -> TrainingResult:
    """Simulate one optimizer step; see the module docstring for what is modelled.

    ``trace=False`` skips the timeline (the result's recorder stays empty), which roughly halves
    the wall time of a deep pipeline's step.
    """
    parallel = parallel or ParallelConfig()
    cluster = cluster or Cluster()
    _check(model, parallel)
    p, v, t, d = parallel.pp, parallel.chunks, parallel.tp, parallel.dp
    m, b, dtype = parallel.microbatches, parallel.micro_batch, parallel.dtype
    sp = parallel.sequence_parallel and t > 1
    n_chunks = p * v
    layers = model.layers // n_chunks
    dp_link = cluster.link_for(t, d)
    eff = cluster.network_efficiency

    def seconds(ops: list[Op]) -> float:
        return costs.ops_time(ops, cluster, t, dtype, tp_comm_overlap=parallel.tp_comm_overlap)

    fwd_layer = costs.layer_forward(model, b, t, sequence_parallel=sp,
                                    fused_attention=parallel.fused_attention)
    bwd_layer = costs.recomputed(fwd_layer, parallel.recompute) + costs.backward_of(fwd_layer)
    embed = costs.embedding_forward(model, b, t, sequence_parallel=sp)
    head = costs.head_forward(model, b, t, sequence_parallel=sp)  # not recomputed: its output is the loss
    gather = 0.0  # ZeRO-3 gathers each layer's parameters before its forward and its backward
    if parallel.zero == 3:
        gather = costs.half_ring_time(costs.BYTES * layer_params(model, t), d, dp_link, eff)

    times, layer_fwd, layer_bwd = {}, seconds(fwd_layer), seconds(bwd_layer)
    for c in range(n_chunks):
        fwd, bwd = layers * layer_fwd, layers * layer_bwd
        if c == 0:
            fwd, bwd = fwd + seconds(embed), bwd + seconds(costs.backward_of(embed))
        if c == n_chunks - 1:
            fwd, bwd = fwd + seconds(head), bwd + seconds(costs.backward_of(head))
        times[c, "F"], times[c, "B"] = max(fwd, layers * gather), max(bwd, layers * gather)

    grad_bytes = 4 if parallel.fp32_grads else costs.BYTES
    bucket_params = parallel.bucket_mb * 1e6 / grad_bytes
    release, first_forward = {}, {}
    if parallel.param_gather_overlap and d > 1:
        release, first_forward = _gathered_under_forward(
            chunk_params(model, parallel), p, times, bucket_params,
            lambda n: costs.half_ring_time(costs.BYTES * n, d, dp_link, eff))

    def duration(slot: Slot) -> float:
        if slot.phase == "F" and slot.microbatch == 0 and slot.chunk in first_forward:
            return first_forward[slot.chunk]
        return times[slot.chunk, slot.phase]

    recorder = Recorder()
    log = recorder if trace else None
    schedule = build(parallel.schedule, p, m, v)
    run = run_pipeline(schedule, duration, _p2p_time(model, parallel, cluster), log,
                       blocking_sends=not parallel.p2p_overlap,
                       release=(lambda s: release.get(s, 0.0)) if release else None)

    def collective(nbytes: float) -> float:  # ZeRO replaces the all-reduce by a reduce-scatter
        if parallel.zero == 0:
            return costs.allreduce_time(nbytes, d, dp_link, eff)
        return costs.half_ring_time(nbytes, d, dp_link, eff)

    # gradients of each stage during the last backward of each of its chunks: layer by layer in
    # buckets for the first chunk of the first stage, one bucket per chunk elsewhere (Megatron-Core
    # buckets only where the reduction is on the critical path)
    per_chunk, per_layer = chunk_params(model, parallel), layer_params(model, t)
    synced = []
    for stage in range(p):
        grads = []
        for c in sorted(range(stage, n_chunks, p), reverse=True):
            end = run.slot_end[Slot(c, _last_backward(schedule[stage], c), "B")]
            if c == 0:
                begin = end - times[c, "B"]
                grads += [(begin + (i + 1) / layers * times[c, "B"], grad_bytes * per_layer)
                          for i in range(layers)]  # the embeddings finish last
                grads[-1] = (end, grads[-1][1] + grad_bytes * (per_chunk[c] - layers * per_layer))
            else:
                grads.append((end, grad_bytes * per_chunk[c]))
        synced.append(sync_gradients(grads, collective, bucket_bytes=parallel.bucket_mb * 1e6,
                                     overlap=parallel.overlap, resource=f"stage {stage} dp-comm",
                                     recorder=log) if d > 1 else max(g[0] for g in grads))
    if model.tied_embeddings and p > 1:  # the first and last stages sum their embedding gradients
        begin = max(synced[0], synced[-1])
        link = cluster.link_for(t * d * (p - 1), 2)
        done = begin + costs.allreduce_time(grad_bytes * model.vocab * model.hidden / t, 2, link, eff)
        if log is not None:
            log.record("embedding all-reduce", "embedding group", begin, done, category="dp-comm",
                       group="data parallel")
        synced[0] = synced[-1] = done

    step_end, stage_totals = 0.0, stage_params(model, parallel)
    for stage in range(p):
        shard = stage_totals[stage] / (d if parallel.zero >= 1 else 1)
        opt = ADAM_BYTES_PER_PARAM * shard / (cluster.device.memory_bandwidth * cluster.memory_efficiency)
        if log is not None:
            log.record("adam", f"stage {stage}", synced[stage], synced[stage] + opt,
                       category="optimizer", group="pipeline")
        end = synced[stage] + opt
        if parallel.zero in (1, 2) and d > 1 and not parallel.param_gather_overlap:
            gathered = costs.half_ring_time(costs.BYTES * stage_totals[stage], d, dp_link, eff)
            if log is not None:
                log.record("param all-gather", f"stage {stage} dp-comm", end, end + gathered,
                           category="dp-comm", group="data parallel")
            end += gathered
        step_end = max(step_end, end)

    def flops(ops: list[Op], useful: bool = False) -> float:
        return sum(op.useful_flops if useful else op.flops for op in ops)

    extras = embed + costs.backward_of(embed) + head + costs.backward_of(head)
    executed = model.layers * flops(fwd_layer + bwd_layer) + flops(extras)
    useful = model.layers * flops(fwd_layer + costs.backward_of(fwd_layer), True) + flops(extras, True)
    scale = m * d * t  # micro-batches, replicas and tensor-parallel ranks
    return TrainingResult(model, parallel, cluster, step_end, executed * scale, useful * scale,
                          run.bubble_fraction, memory_per_gpu(model, parallel), recorder)


def _p2p_time(model: TransformerConfig, parallel: ParallelConfig, cluster: Cluster) -> float:
    """One activation (or gradient) transfer between neighbouring stages. Each of the ``t``
    GPUs sends ``1/t`` of it; without sequence parallelism the receivers then all-gather the
    pieces over their node's links (Narayanan et al., SC'21, section 4.1)."""
    t, p = parallel.tp, parallel.pp
    if p == 1:
        return 0.0
    nbytes = costs.BYTES * parallel.micro_batch * model.seq_len * model.hidden
    link, eff = cluster.link_for(t * parallel.dp, p), cluster.network_efficiency
    send = link.latency + nbytes / t / (link.bandwidth * eff)
    if parallel.sequence_parallel or t == 1:
        return send
    return send + costs.half_ring_time(nbytes, t, cluster.link_for(1, t), eff)


def _gathered_under_forward(params: list[float], p: int, times: dict, bucket_params: float,
                            gather: Callable[[float], float]) -> tuple[dict[Slot, float], dict[int, float]]:
    """Megatron's ``--overlap-param-gather``: parameters are all-gathered under the next step's
    first forward pass. The first chunk of the first stage gathers bucket by bucket, the next
    bucket while the forward pass computes with the previous one, so only gathers that outlast
    a bucket's forward show; every other chunk is one bucket, gathered one after another from
    the start of the step, which holds back that chunk's first forward until it has arrived.
    Returns the first forwards' release times and the lengthened first forward of chunk 0."""
    buckets = max(1, math.ceil(params[0] / bucket_params))
    g, f = gather(params[0] / buckets), times[0, "F"] / buckets
    first_forward = {0: times[0, "F"] + (buckets - 1) * max(0.0, g - f)}
    release = {Slot(0, 0, "F"): g}
    for stage in range(p):
        ready = first_forward[0] if stage == 0 else 0.0  # chunk 0's buckets come first
        for c in range(stage, len(params), p):
            if c:
                ready += gather(params[c])
                release[Slot(c, 0, "F")] = ready
    return release, first_forward


def _last_backward(slots: list[Slot], chunk: int) -> int:
    return next(s.microbatch for s in reversed(slots) if s.chunk == chunk and s.phase == "B")
