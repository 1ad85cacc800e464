"""Serving a large language model: KV-cache memory, decode on the roofline, batching and paging.

A decoder generates one token per step for every sequence in its batch. Each step reads every
weight once (shared by the batch) and each sequence's cached keys and values (its own), so at
small batches a step is bound by memory bandwidth, not FLOPs: batching is how decoding gets
compute-bound (section "Decode is bandwidth-bound" of chapter 9). Times here are roofline bounds
on a catalogued GPU (:mod:`simulators.core.hardware`): ``max(FLOPs / peak, bytes / bandwidth)``,
scaled by achievable fractions of each peak.

The scheduler (:func:`simulate_llm`) runs one engine iteration per event:

* ``static`` batching takes up to ``max_batch`` waiting requests, prefills them, and decodes until
  the longest is done; finished sequences keep their slot and new requests wait for the batch;
* ``continuous`` batching (iteration-level scheduling, Yu et al., *Orca*, OSDI 2022) lets finished
  sequences leave and waiting ones join at every iteration.

KV memory is either reserved ``contiguous`` for the longest possible sequence when a request
starts (what systems did before vLLM), or ``paged``: allocated on demand in blocks of
``block_size`` tokens, as vLLM's PagedAttention does (Kwon et al., SOSP 2023); when blocks run
out, the newest sequence is preempted and later recomputed.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import simpy

from ..core.hardware import GPU, gpu
from ..core.recorder import Recorder

__all__ = ["TransformerShape", "LLMS", "llm", "DTYPE_BYTES", "decode_step_time", "prefill_time",
           "kv_capacity_tokens", "LLMRequests", "synthetic_requests", "LLMResult", "simulate_llm"]

DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int8": 1}


@dataclass(frozen=True)
class TransformerShape:
    """A decoder-only transformer's shape, as its paper or released config gives it."""

    name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int  # fewer than heads with grouped-query attention
    params: float
    source: str = field(default="", compare=False)

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def kv_bytes_per_token(self, dtype: str = "fp16") -> int:
        """Keys and values of one token in every layer: 2 x layers x kv_heads x head_dim x bytes."""
        return 2 * self.layers * self.kv_heads * self.head_dim * DTYPE_BYTES[dtype]

    def weight_bytes(self, dtype: str = "fp16") -> float:
        return self.params * DTYPE_BYTES[dtype]


LLMS: dict[str, TransformerShape] = {
    "opt-13b": TransformerShape("opt-13b", 40, 5120, 40, 40, 12.9e9,
                                "Zhang et al., OPT: Open Pre-trained Transformer Language Models, "
                                "2022, Table 1"),
    "llama2-7b": TransformerShape("llama2-7b", 32, 4096, 32, 32, 6.74e9,
                                  "Touvron et al., Llama 2, 2023; released config (32 layers, 4096)"),
    "llama2-13b": TransformerShape("llama2-13b", 40, 5120, 40, 40, 13.0e9,
                                   "Touvron et al., Llama 2, 2023; released config (40 layers, 5120)"),
    "llama2-70b": TransformerShape("llama2-70b", 80, 8192, 64, 8, 69.0e9,
                                   "Touvron et al., Llama 2, 2023: grouped-query attention with 8 "
                                   "KV heads; released config (80 layers, 8192)"),
}


def llm(name: str) -> TransformerShape:
    """The catalogued model ``name``."""
    try:
        return LLMS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(LLMS)}") from None


def _device(device: GPU | str) -> GPU:
    return device if isinstance(device, GPU) else gpu(device)


def _check_dtype(dtype: str) -> None:
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPE_BYTES)}")


def decode_step_time(model: TransformerShape, device: GPU | str, contexts: np.ndarray | list[int],
                     dtype: str = "fp16", flops_efficiency: float = 1.0,
                     bandwidth_efficiency: float = 1.0) -> float:
    """Seconds for one decode step of a batch whose sequences hold ``contexts`` tokens each.

    Bytes: the weights once plus every sequence's KV cache. FLOPs: ``2 x params`` per sequence
    for the matmuls plus ``4 x layers x hidden x context`` for attention (scores and values).
    """
    _check_dtype(dtype)
    dev = _device(device)
    ctx = np.asarray(contexts, dtype=float)
    if not len(ctx):
        return 0.0
    nbytes = model.weight_bytes(dtype) + model.kv_bytes_per_token(dtype) * ctx.sum()
    flops = 2 * model.params * len(ctx) + 4 * model.layers * model.hidden * ctx.sum()
    return float(max(flops / (dev.peak(_peak_key(dtype, dev)) * flops_efficiency),
                     nbytes / (dev.memory_bandwidth * bandwidth_efficiency)))


def prefill_time(model: TransformerShape, device: GPU | str, prompt_tokens: np.ndarray | list[int],
                 dtype: str = "fp16", flops_efficiency: float = 1.0,
                 bandwidth_efficiency: float = 1.0) -> float:
    """Seconds to process whole prompts (one forward pass over all their tokens): compute-bound
    for all but tiny prompts. Causal attention costs ``2 x layers x hidden x p^2`` per prompt."""
    _check_dtype(dtype)
    dev = _device(device)
    p = np.asarray(prompt_tokens, dtype=float)
    if not len(p):
        return 0.0
    flops = 2 * model.params * p.sum() + 2 * model.layers * model.hidden * (p ** 2).sum()
    nbytes = model.weight_bytes(dtype) + model.kv_bytes_per_token(dtype) * p.sum()
    return float(max(flops / (dev.peak(_peak_key(dtype, dev)) * flops_efficiency),
                     nbytes / (dev.memory_bandwidth * bandwidth_efficiency)))


def _peak_key(dtype: str, dev: GPU) -> str:
    return dtype if dtype in dev.peak_flops else "fp16"


def kv_capacity_tokens(model: TransformerShape, device: GPU | str, dtype: str = "fp16",
                       memory_fraction: float = 0.9) -> int:
    """Tokens of KV cache that fit beside the weights in ``memory_fraction`` of the GPU's memory
    (0 if the weights alone do not fit)."""
    _check_dtype(dtype)
    if not 0 < memory_fraction <= 1:
        raise ValueError(f"memory_fraction must be in (0, 1], got {memory_fraction!r}")
    free = _device(device).memory * memory_fraction - model.weight_bytes(dtype)
    return max(int(free // model.kv_bytes_per_token(dtype)), 0)


@dataclass(frozen=True)
class LLMRequests:
    """Arrival times (s), prompt lengths and output lengths (tokens) of a request stream."""

    arrival: np.ndarray
    prompt: np.ndarray
    output: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.arrival)
        if not n or len(self.prompt) != n or len(self.output) != n:
            raise ValueError("LLMRequests: arrival, prompt and output must be equally long and non-empty")
        if np.any(np.diff(self.arrival) < 0) or np.any(self.prompt < 1) or np.any(self.output < 1):
            raise ValueError("LLMRequests: arrivals sorted, prompts and outputs at least 1 token")


def synthetic_requests(count: int, rate: float, prompt_mean: int = 512, output_mean: int = 256,
                       max_len: int = 2048, seed: int = 0) -> LLMRequests:
    """Poisson arrivals; prompt and output lengths drawn from exponential distributions (rounded,
    each capped at ``max_len / 2``): most answers are short, a few are long, as in chat traces."""
    if count < 1 or not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"synthetic_requests: need count >= 1 and rate > 0, got {count}, {rate}")
    rng = np.random.default_rng(seed)
    arrival = np.cumsum(rng.exponential(1 / rate, count))
    prompt = np.clip(rng.exponential(prompt_mean, count).round(), 1, max_len // 2).astype(np.int64)
    output = np.clip(rng.exponential(output_mean, count).round(), 1, max_len // 2).astype(np.int64)
    return LLMRequests(arrival, prompt, output)


@dataclass
class LLMResult:
    """Per-request times and per-iteration engine records of one simulated run."""

    requests: LLMRequests
    first_token: np.ndarray  # time the first output token was produced
    finish: np.ndarray
    iterations: np.ndarray  # rows: start, end, running sequences, KV tokens used, KV tokens held
    capacity_tokens: int
    preemptions: int = 0

    @property
    def ttft(self) -> np.ndarray:
        return self.first_token - self.requests.arrival

    def summary(self) -> dict[str, float]:
        span = float(self.finish.max() - self.requests.arrival[0])
        tokens = float(self.requests.output.sum())
        it = self.iterations
        decode = (self.finish - self.first_token) / np.maximum(self.requests.output - 1, 1)
        return {"requests": len(self.finish), "tokens_per_s": tokens / span,
                "requests_per_s": len(self.finish) / span,
                "ttft_mean_s": float(self.ttft.mean()), "ttft_p99_s": float(np.percentile(self.ttft, 99)),
                "tpot_mean_ms": float(decode.mean() * 1e3),
                "mean_batch": float(np.average(it[:, 2], weights=it[:, 1] - it[:, 0])),
                "kv_used_of_held": float(it[:, 3].sum() / max(it[:, 4].sum(), 1)),
                "preemptions": self.preemptions}


    def to_recorder(self, limit: int = 5000) -> Recorder:
        """The first ``limit`` engine iterations as spans (for timelines and Perfetto)."""
        recorder = Recorder()
        for start, end, running, used, held in self.iterations[:limit]:
            recorder.record(f"step, batch {int(running)}", "gpu", start, end, category="iteration",
                            group="replica", batch=int(running), kv_tokens=int(used), kv_held=int(held))
        return recorder


@dataclass(eq=False)
class _Seq:
    index: int
    prompt: int
    output: int
    generated: int = 0
    held: int = 0  # KV tokens allocated to it

    @property
    def length(self) -> int:
        return self.prompt + self.generated


def simulate_llm(requests: LLMRequests, model: TransformerShape | str, device: GPU | str,
                 batching: str = "continuous", kv: str = "paged", max_batch: int = 256,
                 max_seq_len: int = 4096, block_size: int = 16, dtype: str = "fp16",
                 memory_fraction: float = 0.9, flops_efficiency: float = 1.0,
                 bandwidth_efficiency: float = 1.0) -> LLMResult:
    """Serve ``requests`` with one model replica on ``device`` and record what happens."""
    if batching not in ("static", "continuous"):
        raise ValueError(f"batching must be 'static' or 'continuous', got {batching!r}")
    if kv not in ("contiguous", "paged"):
        raise ValueError(f"kv must be 'contiguous' or 'paged', got {kv!r}")
    for name, value in (("max_batch", max_batch), ("max_seq_len", max_seq_len), ("block_size", block_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    lengths = requests.prompt + requests.output
    too_long = np.flatnonzero(lengths > max_seq_len)
    if len(too_long):
        raise ValueError(f"request {too_long[0]} needs {lengths[too_long[0]]} tokens > "
                         f"max_seq_len {max_seq_len}")
    shape = llm(model) if isinstance(model, str) else model
    capacity = kv_capacity_tokens(shape, device, dtype, memory_fraction)
    if capacity < (max_seq_len if kv == "contiguous" else block_size):
        raise ValueError(f"{shape.name} in {dtype} leaves room for {capacity} KV tokens on "
                         f"{_device(device).name}: not even one sequence fits")
    engine = _Engine(requests, shape, _device(device), batching, kv, max_batch, max_seq_len,
                     block_size, dtype, capacity, flops_efficiency, bandwidth_efficiency)
    engine.env.run()
    return LLMResult(requests, engine.first_token, engine.finish,
                     np.array(engine.log, dtype=float).reshape(-1, 5), capacity, engine.preemptions)


class _Engine:
    def __init__(self, requests: LLMRequests, shape: TransformerShape, dev: GPU, batching: str,
                 kv: str, max_batch: int, max_seq_len: int, block: int, dtype: str, capacity: int,
                 flops_eff: float, bw_eff: float) -> None:
        self.env = simpy.Environment()
        self.req, self.shape, self.dev, self.dtype = requests, shape, dev, dtype
        self.batching, self.kv, self.max_batch = batching, kv, max_batch
        self.max_seq_len, self.block, self.capacity = max_seq_len, block, capacity
        self.eff = {"flops_efficiency": flops_eff, "bandwidth_efficiency": bw_eff}
        n = len(requests.arrival)
        self.first_token = np.full(n, np.nan)
        self.finish = np.full(n, np.nan)
        self.waiting: deque[_Seq] = deque()
        self.running: list[_Seq] = []
        self.padded: list[_Seq] = []  # finished, still in a static batch
        self.held = 0
        self.next = 0
        self.log: list[tuple[float, float, int, int, int]] = []
        self.preemptions = 0
        self.env.process(self._loop())

    def _need(self, seq: _Seq, length: int) -> int:
        """KV tokens ``seq`` must hold to store ``length`` tokens."""
        if self.kv == "contiguous":
            return self.max_seq_len
        return -(-length // self.block) * self.block

    def _arrive(self) -> None:
        now, n = self.env.now, len(self.req.arrival)
        while self.next < n and self.req.arrival[self.next] <= now + 1e-12:
            i = self.next
            self.waiting.append(_Seq(i, int(self.req.prompt[i]), int(self.req.output[i])))
            self.next += 1

    def _admit(self) -> list[_Seq]:
        joined = []
        while self.waiting and len(self.running) < self.max_batch:
            seq = self.waiting[0]
            need = self._need(seq, seq.length + 1)
            if self.held + need > self.capacity:
                break
            self.waiting.popleft()
            seq.held, self.held = need, self.held + need
            self.running.append(seq)
            joined.append(seq)
        return joined

    def _grow(self) -> None:
        """Give every running sequence room for its next token, preempting the newest if blocks
        run out (paged only; a contiguous reservation already holds the whole sequence)."""
        for seq in list(self.running):
            if seq not in self.running:
                continue
            need = self._need(seq, seq.length + 1)
            while need > seq.held and self.held + need - seq.held > self.capacity:
                victim = self.running.pop()
                self.held -= victim.held
                victim.held, victim.prompt, victim.output = 0, victim.length, victim.output - victim.generated
                victim.generated = 0
                self.waiting.appendleft(victim)
                self.preemptions += 1
                if victim is seq:
                    break
            if seq in self.running and need > seq.held:
                self.held += need - seq.held
                seq.held = need

    def _loop(self):
        env, n = self.env, len(self.req.arrival)
        while self.next < n or self.waiting or self.running:
            self._arrive()
            if not self.running and not self.waiting:
                yield env.timeout(self.req.arrival[self.next] - env.now)
                continue
            joined = self._admit() if (self.batching == "continuous" or not self.running) else []
            step = prefill_time(self.shape, self.dev, [s.length for s in joined], self.dtype, **self.eff)
            for seq in joined:  # the prefill produces each joiner's first token
                seq.generated += 1
                if np.isnan(self.first_token[seq.index]):
                    self.first_token[seq.index] = env.now + step
            self._grow()
            decoding = [s for s in self.running if s not in joined]
            # static batching pads: finished sequences keep computing until the batch is done
            contexts = [s.length for s in decoding + self.padded]
            step += decode_step_time(self.shape, self.dev, contexts, self.dtype, **self.eff)
            used = sum(s.length for s in self.running)
            start = env.now
            yield env.timeout(step)
            self.log.append((start, env.now, len(self.running) + len(self.padded), used, self.held))
            for seq in decoding:
                seq.generated += 1
            self._retire()

    def _retire(self) -> None:
        """Finished sequences leave (continuous) or wait for their batch to finish (static)."""
        still = []
        for seq in self.running:
            if seq.generated < seq.output:
                still.append(seq)
                continue
            self.finish[seq.index] = self.env.now
            if self.batching == "static":
                self.padded.append(seq)
            else:
                self.held -= seq.held
        self.running = still
        if not still and self.padded:  # a static batch is done: release its memory
            self.held -= sum(s.held for s in self.padded)
            self.padded = []
