"""What a training simulation is about: the model, the parallel layout and the cluster.

All three are validated dataclasses; :func:`from_dict` builds them from a JSON/YAML mapping with
the sections ``model``, ``parallel`` and ``cluster``.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, fields
from typing import Any

from simulators.core.hardware import GPU, Interconnect, gpu, interconnect

SCHEDULES = ("gpipe", "1f1b", "interleaved")
RECOMPUTE = ("none", "selective", "full")


def _positive(owner: str, **values: int | float) -> None:
    for name, value in values.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{owner}.{name} must be a positive number, got {value!r}")


def _choice(owner: str, name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{owner}.{name} must be one of {allowed}, got {value!r}")


@dataclass(frozen=True)
class TransformerConfig:
    """A GPT-style decoder: ``layers`` blocks of attention and a 4x MLP.

    With ``tied_embeddings`` (GPT-2/3, Megatron-LM's default) the output layer reuses the input
    embedding; a pipeline then keeps a copy on its first and last stages and all-reduces the
    copies' gradients every step. Untied (``--untie-embeddings-and-output-weights``), the output
    layer is a matrix of its own: ``V*h`` more parameters and no such all-reduce.
    """

    layers: int
    hidden: int
    heads: int
    seq_len: int
    vocab: int = 51200
    tied_embeddings: bool = True

    def __post_init__(self) -> None:
        _positive("model", layers=self.layers, hidden=self.hidden, heads=self.heads,
                  seq_len=self.seq_len, vocab=self.vocab)
        if self.hidden % self.heads:
            raise ValueError(f"model.hidden={self.hidden} must be divisible by heads={self.heads}")

    @property
    def params(self) -> int:
        """Parameter count: 12h^2 + 13h per layer, embeddings V*h + s*h (and V*h more for an
        untied output layer), final layernorm."""
        h = self.hidden
        output = 0 if self.tied_embeddings else self.vocab * h
        return self.layers * (12 * h * h + 13 * h) + (self.vocab + self.seq_len) * h + output + 2 * h


@dataclass(frozen=True)
class ParallelConfig:
    """How the work is split: data (``dp``), tensor (``tp``) and pipeline (``pp``) degrees.

    ``global_batch`` sequences per step are cut into micro-batches of ``micro_batch`` sequences;
    each data-parallel replica runs ``global_batch / (dp * micro_batch)`` of them per step.
    ``chunks`` is the number of model chunks per pipeline stage (interleaved schedule only).
    ``overlap`` overlaps the gradient reduction with the last micro-batch's backward pass.

    The switches of today's Megatron-LM, each costed in :mod:`.costs` and :mod:`.hybrid` and
    sized in :mod:`.memory`:

    - ``sequence_parallel`` (Korthikanti et al., MLSys'23, section 4.2.2): layernorms and dropouts
      run on ``s/t`` of the sequence; each tensor-parallel all-reduce becomes an all-gather and a
      reduce-scatter; activations shrink to ``sbh(34/t + 5as/(ht))`` per layer.
    - ``fused_attention`` (FlashAttention, Dao et al., NeurIPS'22): one kernel computes attention
      tile by tile, so the ``s x s`` scores never reach memory (no traffic, no ``5as/h`` term in
      activations); it skips the masked half under a causal mask and recomputes the scores in
      its backward pass (2.5x the forward FLOPs).
    - ``tp_comm_overlap`` (Megatron ``--tp-comm-overlap``, needs ``sequence_parallel``): each
      all-gather and reduce-scatter is cut into ``t`` chunks pipelined with its GEMM.
    - ``param_gather_overlap`` (Megatron ``--overlap-param-gather``, needs ``zero`` 1 or 2 and
      ``overlap``): the distributed optimizer's parameter all-gather runs bucket by bucket under
      the next step's first forward pass instead of after the optimizer step.
    - ``p2p_overlap``: pipeline transfers run beside the compute; ``False`` blocks the sending
      GPU for each transfer, as Megatron-LM's synchronous send/receive did before
      ``--overlap-p2p-comm``.
    - ``fp32_grads``: gradients are accumulated and reduced in fp32 (Megatron-LM does this for
      bf16 training): twice the gradient memory and data-parallel traffic.
    """

    dp: int = 1
    tp: int = 1
    pp: int = 1
    micro_batch: int = 1
    global_batch: int = 8
    schedule: str = "1f1b"
    chunks: int = 1
    zero: int = 0
    recompute: str = "none"
    overlap: bool = True
    bucket_mb: float = 25.0
    dtype: str = "bf16"
    sequence_parallel: bool = False
    fused_attention: bool = False
    tp_comm_overlap: bool = False
    param_gather_overlap: bool = False
    p2p_overlap: bool = True
    fp32_grads: bool = False

    def __post_init__(self) -> None:
        _positive("parallel", dp=self.dp, tp=self.tp, pp=self.pp, micro_batch=self.micro_batch,
                  global_batch=self.global_batch, chunks=self.chunks, bucket_mb=self.bucket_mb)
        _choice("parallel", "schedule", self.schedule, SCHEDULES)
        _choice("parallel", "recompute", self.recompute, RECOMPUTE)
        if self.zero not in (0, 1, 2, 3):
            raise ValueError(f"parallel.zero must be 0, 1, 2 or 3, got {self.zero!r}")
        if self.global_batch % (self.dp * self.micro_batch):
            raise ValueError(f"parallel.global_batch={self.global_batch} must be divisible by "
                             f"dp*micro_batch={self.dp * self.micro_batch}")
        if self.chunks > 1 and self.schedule != "interleaved":
            raise ValueError(f"parallel.chunks={self.chunks} needs schedule='interleaved'")
        if self.schedule == "interleaved" and self.microbatches % self.pp:
            raise ValueError(f"the interleaved schedule needs micro-batches per replica "
                             f"({self.microbatches}) divisible by pp={self.pp}")
        if self.tp_comm_overlap and not self.sequence_parallel:
            raise ValueError("parallel.tp_comm_overlap=true needs sequence_parallel=true "
                             "(as Megatron-LM's --tp-comm-overlap does)")
        if self.param_gather_overlap and (self.zero not in (1, 2) or not self.overlap):
            raise ValueError(f"parallel.param_gather_overlap=true needs zero 1 or 2 (a distributed "
                             f"optimizer) and overlap=true, got zero={self.zero}, "
                             f"overlap={self.overlap}")

    @property
    def gpus(self) -> int:
        return self.dp * self.tp * self.pp

    @property
    def microbatches(self) -> int:
        """Micro-batches per replica per step (gradient accumulation steps)."""
        return self.global_batch // (self.dp * self.micro_batch)


@dataclass(frozen=True)
class Cluster:
    """Nodes of ``gpus_per_node`` GPUs joined inside by ``intra`` and between by ``inter`` links.

    Ranks are laid out tensor-parallel fastest, then data-parallel, then pipeline (Megatron's
    order), so a group is inside one node when its stride times its size fits in a node.
    Efficiencies are the fractions of peak that large GEMMs, memory-bound kernels and NCCL
    collectives reach in practice (calibrated once, see the chapter).
    """

    gpu: str = "A100"
    gpus_per_node: int = 8
    intra: str = "nvswitch-a100"
    inter: str = "ib-hdr"
    matmul_efficiency: float = 0.75
    memory_efficiency: float = 0.8
    network_efficiency: float = 0.8

    def __post_init__(self) -> None:
        _positive("cluster", gpus_per_node=self.gpus_per_node)
        for name in ("matmul_efficiency", "memory_efficiency", "network_efficiency"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ValueError(f"cluster.{name} must be in (0, 1], got {value!r}")
        gpu(self.gpu), interconnect(self.intra), interconnect(self.inter)  # noqa: B018 (validate names)

    @property
    def device(self) -> GPU:
        return gpu(self.gpu)

    @property
    def intra_link(self) -> Interconnect:
        return interconnect(self.intra)

    @property
    def inter_link(self) -> Interconnect:
        return interconnect(self.inter)

    def link_for(self, stride: int, size: int) -> Interconnect:
        """The link a group of ``size`` ranks spaced ``stride`` apart communicates over."""
        return self.intra_link if stride * size <= self.gpus_per_node else self.inter_link


def _build(cls: type, section: str, data: Any) -> Any:
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise ValueError(f"config section {section!r} must be a mapping, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)} in {section!r}; expected {sorted(known)}")
    missing = [f.name for f in fields(cls) if f.default is MISSING and f.name not in data]
    if missing:
        raise ValueError(f"config section {section!r} is missing required keys {missing}")
    for f in fields(cls):
        if f.name in data:
            _check_type(f"{section}.{f.name}", f.type, data[f.name])
    return cls(**data)


_TYPES = {"int": "an integer", "float": "a finite number", "bool": "true or false",
          "str": "a string"}


def _check_type(name: str, kind: str, value: Any) -> None:
    """Refuse a value of the wrong type: a number given as a string, ``NaN``, ``"no"`` for a
    flag would otherwise pass or silently mean something else."""
    ok = {"int": isinstance(value, int) and not isinstance(value, bool),
          "float": isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value),
          "bool": isinstance(value, bool), "str": isinstance(value, str)}.get(kind, True)
    if not ok:
        raise ValueError(f"{name} must be {_TYPES[kind]}, got {value!r}")


def from_dict(config: dict[str, Any]) -> tuple[TransformerConfig, ParallelConfig, Cluster]:
    """Build the three configs from ``{"model": ..., "parallel": ..., "cluster": ...}``."""
    if not isinstance(config, dict) or "model" not in config:
        raise ValueError("a training config must be a mapping with a 'model' section "
                         "(and optional 'parallel' and 'cluster' sections)")
    unknown = set(config) - {"model", "parallel", "cluster"}
    if unknown:
        raise ValueError(f"unknown config sections {sorted(unknown)}; "
                         "expected 'model', 'parallel', 'cluster'")
    return (_build(TransformerConfig, "model", config["model"]),
            _build(ParallelConfig, "parallel", config.get("parallel")),
            _build(Cluster, "cluster", config.get("cluster")))
