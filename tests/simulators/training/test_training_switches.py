"""Today's Megatron-LM switches, each against its closed form: sequence parallelism, fused
attention, tensor-parallel overlap, the distributed optimizer's overlap, the embedding all-reduce,
fp32 gradients and synchronous pipeline transfers."""

from __future__ import annotations

import pytest

from mlsys.parallel.schedules import gpipe
from simulators.training import Cluster, ParallelConfig, TransformerConfig, costs, run_pipeline, simulate
from simulators.training.costs import Op, allreduce_time, half_ring_time, ops_time
from simulators.training.memory import activation_bytes_per_layer, memory_per_gpu

GPT = TransformerConfig(layers=8, hidden=4096, heads=32, seq_len=2048)
CLUSTER = Cluster()


def layer(tp: int = 8, **switches: bool) -> list[Op]:
    return costs.layer_forward(GPT, 1, tp, **switches)


def seconds(ops: list[Op], tp: int = 8, **kw: bool) -> float:
    return ops_time(ops, CLUSTER, tp, "bf16", **kw)


def test_sequence_parallelism_moves_the_same_bytes_and_shrinks_norms_and_dropouts() -> None:
    """Korthikanti et al., 4.2.2: an all-gather and a reduce-scatter cost one all-reduce; the
    layernorms and dropouts between them work on s/t of the sequence."""
    t, sbh = 8, GPT.seq_len * GPT.hidden
    plain, sp = layer(t), layer(t, sequence_parallel=True)
    link = CLUSTER.link_for(1, t)
    comm = lambda ops: sum(costs.op_time(o, CLUSTER, t, "bf16") for o in ops if o.kind in costs.COLLECTIVES)
    assert comm(plain) == pytest.approx(2 * allreduce_time(2 * sbh, t, link, CLUSTER.network_efficiency))
    assert comm(sp) == pytest.approx(comm(plain))
    regions = [o for o in plain if o.name in ("layernorm", "dropout-residual")]
    saved = sum(o.nbytes for o in regions) * (1 - 1 / t) / (CLUSTER.device.memory_bandwidth * 0.8)
    assert seconds(plain) - seconds(sp) == pytest.approx(saved)
    # backward: the all-gather again and the reduce-scatter of the column-parallel layers run
    # beside their GEMMs, so only two of the six collectives block
    backward = costs.backward_of(sp)
    assert sum(o.kind in costs.COLLECTIVES for o in backward) == 6
    blocking = [o for o in backward if o.kind in costs.COLLECTIVES and not o.concurrent]
    assert len(blocking) == 2 and seconds(backward) < seconds(costs.backward_of(plain))


def test_sequence_parallel_activations_follow_table_2() -> None:
    s, h, a, t = GPT.seq_len, GPT.hidden, GPT.heads, 8
    assert activation_bytes_per_layer(GPT, 1, t, sequence_parallel=True) == pytest.approx(
        s * h * (34 / t + 5 * a * s / (h * t)))
    assert activation_bytes_per_layer(GPT, 1, t, "selective", sequence_parallel=True) == pytest.approx(
        s * h * 34 / t)
    assert activation_bytes_per_layer(GPT, 1, t, "full", sequence_parallel=True) == pytest.approx(
        2 * s * h / t)


def test_fused_attention_keeps_no_score_matrix() -> None:
    """FlashAttention: no s x s tensor in memory traffic or in activations; causal attention
    executes half the score FLOPs forward and 2.5x that backward, while model FLOPs (what MFU
    counts) stay Megatron's."""
    t, b, s, h, a = 8, 1, GPT.seq_len, GPT.hidden, GPT.heads
    scores = a * s * s * b / t
    unfused = [o for o in layer(t) if o.attention_core]
    assert len(unfused) == 4 and all(o.nbytes >= 2 * scores for o in unfused)
    fused = layer(t, fused_attention=True)
    (flash,) = [o for o in fused if o.attention_core]
    assert flash.nbytes == 2 * 4 * s * b * h / t < scores  # reads Q, K, V, writes the output
    assert flash.flops == 2 * b * s * s * h / t and flash.useful_flops == 2 * flash.flops
    (grad,) = [o for o in costs.backward_of(fused) if o.attention_core]
    assert grad.flops == 2.5 * flash.flops and grad.useful_flops == 2 * flash.useful_flops
    assert activation_bytes_per_layer(GPT, b, t, fused_attention=True) == pytest.approx(
        activation_bytes_per_layer(GPT, b, t, "selective") + 4 * a * s * b / t)

    B, L, V = 16, GPT.layers, GPT.vocab
    r = simulate(GPT, ParallelConfig(tp=t, global_batch=B, fused_attention=True), CLUSTER)
    megatron = 72 * B * s * L * h * h * (1 + s / (6 * h) + V / (12 * L * h))  # its MFU formula
    assert r.model_flops == pytest.approx(megatron)
    assert r.executed_flops == pytest.approx(megatron - (12 - 7) * B * s * s * h * L)


def test_tp_comm_overlap_pipelines_each_collective_with_its_gemm() -> None:
    """t chunks: the GEMM and the transfer overlap except for one chunk, max(G, C) + min(G, C)/t."""
    t = 8
    gemm = costs.gemm("fc1", GPT.seq_len, GPT.hidden, 4 * GPT.hidden / t)
    gather = Op("allgather", "allgather", nbytes=2 * GPT.seq_len * GPT.hidden, pair=+1)
    g, c = (costs.op_time(o, CLUSTER, t, "bf16") for o in (gemm, gather))
    assert seconds([gather, gemm]) == pytest.approx(g + c)
    assert seconds([gather, gemm], tp_comm_overlap=True) == pytest.approx(max(g, c) + min(g, c) / t)
    plain = simulate(GPT, ParallelConfig(tp=t, global_batch=8, sequence_parallel=True), CLUSTER)
    overlapped = simulate(GPT, ParallelConfig(tp=t, global_batch=8, sequence_parallel=True,
                                              tp_comm_overlap=True), CLUSTER)
    assert overlapped.step_time < plain.step_time
    with pytest.raises(ValueError, match="tp_comm_overlap=true needs sequence_parallel=true"):
        ParallelConfig(tp=t, tp_comm_overlap=True)


def test_param_gather_overlap_hides_the_distributed_optimizers_all_gather() -> None:
    slow = Cluster(inter="ib-edr")
    base = dict(dp=16, global_batch=16, zero=1, bucket_mb=40.0)
    after = simulate(GPT, ParallelConfig(**base), slow)
    under = simulate(GPT, ParallelConfig(**base, param_gather_overlap=True), slow)
    gathered = [e for e in after.recorder.events if e.name == "param all-gather"]
    assert len(gathered) == 1 and not [e for e in under.recorder.events if e.name == "param all-gather"]
    # the first bucket holds the forward back; later buckets hide behind the forward
    first_forward = next(e for e in under.recorder.events if e.resource == "stage 0")
    assert 0 < first_forward.start < gathered[0].duration
    assert under.step_time < after.step_time
    with pytest.raises(ValueError, match="param_gather_overlap=true needs zero 1 or 2"):
        ParallelConfig(dp=2, param_gather_overlap=True)


def test_tied_embeddings_cost_an_all_reduce_between_first_and_last_stage() -> None:
    untied = TransformerConfig(**{**GPT.__dict__, "tied_embeddings": False})
    par = ParallelConfig(pp=2, tp=2, global_batch=8)
    tied_run, untied_run = simulate(GPT, par, CLUSTER), simulate(untied, par, CLUSTER)
    link = CLUSTER.link_for(2 * 1 * 1, 2)
    expected = allreduce_time(2 * GPT.vocab * GPT.hidden / 2, 2, link, CLUSTER.network_efficiency)
    assert tied_run.step_time - untied_run.step_time == pytest.approx(expected)
    assert tied_run.memory == untied_run.memory  # the last stage holds a copy either way
    assert untied.params - GPT.params == GPT.vocab * GPT.hidden
    one_stage = ParallelConfig(global_batch=8)
    assert memory_per_gpu(untied, one_stage).params - memory_per_gpu(GPT, one_stage).params == \
        2 * GPT.vocab * GPT.hidden


def test_fp32_gradients_double_gradient_memory_and_traffic() -> None:
    base = dict(dp=8, global_batch=8, overlap=False)
    half = simulate(GPT, ParallelConfig(**base), CLUSTER)
    full = simulate(GPT, ParallelConfig(**base, fp32_grads=True), CLUSTER)
    assert full.memory.grads == 2 * half.memory.grads
    link, eff = CLUSTER.link_for(1, 8), CLUSTER.network_efficiency
    grads = lambda run: sum(e.duration for e in run.recorder.events if e.category == "dp-comm")
    assert grads(full) == pytest.approx(2 * grads(half), rel=0.01)  # all but the latencies
    assert grads(half) > allreduce_time(2 * GPT.params, 8, link, eff) * 0.99
    assert half_ring_time(1.0, 8, link, eff) < allreduce_time(1.0, 8, link, eff)


def test_synchronous_sends_hold_the_sender() -> None:
    """GPipe, 2 stages, 2 micro-batches, unit slots, transfers of x: 6 + 2x with transfers beside
    the compute; 6 + 4x when each send blocks its device."""
    x = 0.25
    schedule = gpipe(2, 2)
    assert run_pipeline(schedule, lambda s: 1.0, x).makespan == pytest.approx(6 + 2 * x)
    assert run_pipeline(schedule, lambda s: 1.0, x, blocking_sends=True).makespan == pytest.approx(6 + 4 * x)
    held = run_pipeline(schedule, lambda s: 1.0, release=lambda s: 0.5 if s.chunk == 0 else 0.0)
    assert held.makespan == pytest.approx(6.5)
    pipelined = ParallelConfig(pp=4, global_batch=8)
    assert simulate(GPT, pipelined).step_time < simulate(
        GPT, ParallelConfig(pp=4, global_batch=8, p2p_overlap=False)).step_time


def test_megatron_f_and_g_operators() -> None:
    """Shoeybi et al.: f (before a column-parallel GEMM) all-reduces only backward, g (after a
    row-parallel GEMM) only forward; the vocabulary-parallel embedding ends in a g, the output
    layer starts with an f."""
    fwd = layer(8)
    backward = costs.backward_of(fwd)
    reduced = [backward[i - 1].name for i, o in enumerate(backward) if o.kind == "allreduce"]
    assert reduced == ["fc1-grad", "qkv-grad"]
    assert [o.name for o in fwd if o.kind == "allreduce"] == ["proj-allreduce", "fc2-allreduce"]
    embed, head = costs.embedding_forward(GPT, 1, 8), costs.head_forward(GPT, 1, 8)
    assert [o.kind for o in costs.backward_of(embed)] == ["memory"]
    assert [o.kind for o in costs.backward_of(head)] == ["memory", "matmul", "allreduce"]
    assert costs.op_time(fwd[1], CLUSTER, 8, "bf16") == 0.0 and fwd[1].kind == "identity"
