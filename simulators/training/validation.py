"""The training simulator against published Megatron-LM runs, row by row.

Three tables ship in ``simulators/data/reference/`` (their SOURCE note says where each figure and
setting comes from):

- :func:`sc21_table1`: Narayanan et al., SC'21, Table 1. A100s, Megatron-LM of 2021: fp16, full
  recomputation, synchronous pipeline transfers; each row's micro-batch, interleaving and
  data-parallel implementation from the paper's scripts. Compares achieved TFLOP/s per GPU.
- :func:`recomputation_table`: Korthikanti et al., MLSys'23. A100s, Megatron-LM of 2022, one
  row per model and method (full recomputation; sequence parallelism with selective
  recomputation). Compares seconds per iteration.
- :func:`h100_weak_scaling`: the Megatron-LM README's H100 table (Megatron-Core r0.8.0): bf16,
  sequence parallelism, fused attention and every communication overlap. Compares model TFLOP/s
  per GPU.

The A100 efficiencies are :class:`~simulators.training.Cluster`'s defaults, set once and not
fitted to any row. The H100's GEMM efficiency is the one number fitted, to the whole H100 table
(:data:`H100_MATMUL_EFFICIENCY`); its memory and network efficiencies are the A100's.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass

from simulators.data import data_path, read_text

from .config import Cluster, ParallelConfig, TransformerConfig
from .hybrid import TrainingResult, simulate

H100_MATMUL_EFFICIENCY = 0.58
"""Share of the H100's bf16 peak that the simulated GEMMs reach: the value (to 0.01) with the
least mean squared relative error on the H100 table (the validation tests check it is)."""

A100 = Cluster()
H100 = Cluster(gpu="H100", intra="nvswitch-h100", inter="ib-ndr",
               matmul_efficiency=H100_MATMUL_EFFICIENCY)


@dataclass(frozen=True)
class Comparison:
    """One published figure next to the simulator's (``error``: simulated / published - 1)."""

    table: str
    row: str
    setting: str
    unit: str
    published: float
    simulated: float
    bubble: float
    memory_gb: float
    fits: bool

    @property
    def error(self) -> float:
        return self.simulated / self.published - 1

    def as_row(self) -> dict[str, object]:
        return {"model": self.row, "setting": self.setting, f"published {self.unit}": self.published,
                f"simulated {self.unit}": self.simulated, "error %": 100 * self.error,
                "bubble": self.bubble, "memory GB": self.memory_gb, "fits": self.fits}


def reference_rows(name: str) -> list[dict[str, str]]:
    """The rows of ``simulators/data/reference/<name>`` (comment lines skipped)."""
    text = read_text(data_path(f"reference/{name}"))
    return list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))


def _compare(table: str, row: str, setting: str, unit: str, published: float,
             result: TrainingResult, simulated: float) -> Comparison:
    return Comparison(table, row, setting, unit, published, simulated, result.bubble_fraction,
                      result.memory.total / 1e9, result.fits)


def _layout(row: dict[str, str], micro_batch: int, layers_per_chunk: int | None = None,
            **switches: object) -> ParallelConfig:
    tp, pp = int(row["tensor_parallel"]), int(row["pipeline_parallel"])
    chunks = int(row["layers"]) // pp // layers_per_chunk if layers_per_chunk else 1
    return ParallelConfig(dp=int(row["gpus"]) // (tp * pp), tp=tp, pp=pp, micro_batch=micro_batch,
                          global_batch=int(row["global_batch"]), chunks=chunks,
                          schedule="interleaved" if chunks > 1 else "1f1b", **switches)


def _gpt(row: dict[str, str], seq_len: int, vocab: int, tied: bool = True) -> TransformerConfig:
    return TransformerConfig(layers=int(row["layers"]), hidden=int(row["hidden"]),
                             heads=int(row["heads"]), seq_len=seq_len, vocab=vocab,
                             tied_embeddings=tied)


def sc21_table1() -> list[Comparison]:
    """Every row of SC'21 Table 1: achieved TFLOP/s per A100 (recomputation included)."""
    out = []
    for row in reference_rows("megatron_sc21_table1.csv"):
        chunk = row["layers_per_virtual_stage"]
        par = _layout(row, int(row["micro_batch"]), int(chunk) if chunk else None,
                      recompute="full", dtype="fp16", overlap=row["ddp"] == "torch",
                      p2p_overlap=False)
        r = simulate(_gpt(row, 2048, 51200), par, A100, trace=False)
        schedule = f"interleaved v={par.chunks}" if par.chunks > 1 else "1F1B"
        out.append(_compare("SC'21 Table 1", f"{row['params_billion']}B",
                            f"t={par.tp} p={par.pp} d={par.dp} b={par.micro_batch} {schedule}",
                            "TFLOP/s", float(row["achieved_tflops_per_gpu"]), r,
                            r.achieved_flops_per_gpu / 1e12))
    return out


RECOMPUTATION_METHODS = {
    "full recomputation": ("full_recompute_s", {"recompute": "full"}),
    "sequence parallel + selective": ("present_work_s",
                                      {"recompute": "selective", "sequence_parallel": True}),
}


def recomputation_table() -> list[Comparison]:
    """Korthikanti et al.: seconds per iteration, for both methods on every model (micro-batch
    1 and plain 1F1B assumed: the paper's text we could read does not say)."""
    out = []
    for row in reference_rows("korthikanti_mlsys23_iteration_times.csv"):
        model = _gpt(row, 2048, 51200)
        for method, (column, switches) in RECOMPUTATION_METHODS.items():
            r = simulate(model, _layout(row, 1, p2p_overlap=False, **switches), A100, trace=False)
            out.append(_compare("Korthikanti et al.", f"{row['params_billion']}B", method, "s",
                                float(row[column]), r, r.step_time))
    return out


def h100_layout(row: dict[str, str]) -> ParallelConfig:
    """The README's switches on one row of the H100 table, with our assumptions for what it does
    not say: bf16 (so fp32 gradient reduction), no recomputation, fused attention, Megatron-Core's
    gradient buckets (max(40M, 1M x dp) parameters), plain 1F1B with micro-batch 1 on the
    pipelined rows, and one micro-batch of all of a replica's sequences on the others."""
    tp, pp, dp = int(row["tensor_parallel"]), int(row["pipeline_parallel"]), int(row["data_parallel"])
    per_replica = int(row["global_batch"]) // dp
    return _layout(row, 1 if pp > 1 else per_replica, dtype="bf16", fp32_grads=True,
                   zero=1, overlap=True, param_gather_overlap=True,
                   bucket_mb=4 * max(40, dp), sequence_parallel=True, tp_comm_overlap=tp > 1,
                   fused_attention=True)


def h100_weak_scaling(cluster: Cluster = H100,
                      layout: Callable[[dict[str, str]], ParallelConfig] = h100_layout) -> list[Comparison]:
    """Every row of the H100 weak-scaling table: model TFLOP/s per GPU (no recomputation).
    ``layout`` builds a row's settings (to try other assumptions than :func:`h100_layout`'s)."""
    out = []
    for row in reference_rows("megatron_h100_weak_scaling.csv"):
        par = layout(row)
        r = simulate(_gpt(row, 4096, 131072, tied=False), par, cluster, trace=False)
        out.append(_compare("Megatron-LM H100", row["model"],
                            f"t={par.tp} p={par.pp} d={par.dp} b={par.micro_batch}", "TFLOP/s",
                            float(row["model_tflops_per_gpu"]), r, r.model_flops_per_gpu / 1e12))
    return out
