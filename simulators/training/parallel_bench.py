"""``mlsys bench parallel``: step time and memory per rank of every parallel strategy, measured on
real processes next to one-process training and next to the simulator's prediction.

One run trains the same GPT (:class:`mlsys.parallel.gpt.GPT`, float32, Adam) on one process and
then, at each process count, with data parallelism (DDP), tensor parallelism, pipelines (GPipe,
1F1B, interleaved), ZeRO stages 1 to 3 and a 2 x 2 DP x TP hybrid, all on the same global batch.
Each row gives the median step, its speed-up over one process, the model-state bytes of the most
loaded rank (parameters, gradients, optimizer state) against one process's, and the simulator's
prediction from parts measured in the same run (:mod:`simulators.training.engine_parallel`).
It lives with the simulators because it runs both: ``mlsys`` never imports ``simulators``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

import mlsys
from mlsys import cliargs, optim
from mlsys.bench.report import emit
from mlsys.comm import DistributedDataParallel
from mlsys.parallel.gpt import GPT, GPTConfig, gpt_loss, markov_tokens, tensor_parallel
from mlsys.parallel.layout import layout
from mlsys.parallel.pipeline import saved_bytes
from mlsys.parallel.profile import profile_pipeline, profile_step
from mlsys.parallel.zero import ZeroDataParallel

from .engine_parallel import Prediction, predict_pipeline, predict_step

FULL = GPTConfig(vocab=256, seq_len=32, dim=128, heads=8, layers=4)
QUICK = GPTConfig(vocab=32, seq_len=8, dim=32, heads=4, layers=2)
LR = 1e-3


def _model(config: GPTConfig) -> GPT:
    mlsys.manual_seed(0)
    return GPT(config)


def _state_bytes(params: list, optimizer: optim.Optimizer) -> int:
    """Parameters, gradients and the optimizer's per-element state held for ``params``."""
    total = sum(p.data.nbytes + (p.grad.data.nbytes if p.grad is not None else 0) for p in params)
    return total + sum(t.data.nbytes for t in optimizer.state_tensors() if t.ndim)


def _trainer(model: GPT, module: Any, batch: tuple, loss: Callable) -> tuple[Callable, Callable]:
    opt = optim.Adam(model.parameters(), lr=LR)
    params = list(model.parameters())

    def step() -> None:
        opt.zero_grad()
        loss(module(batch[0]), batch[1]).backward()
        opt.step()

    def held() -> int:
        step_grads = [p.grad for p in params]
        return _state_bytes(params, opt) if all(g is not None for g in step_grads) else 0

    return step, held


def _shard(config: GPTConfig, batch: int, group: Any, parts: int) -> tuple:
    x, y = markov_tokens(batch, config, seed=7)
    size = batch // parts
    r = group.rank % parts
    return x[r * size:(r + 1) * size], y[r * size:(r + 1) * size]


def data_parallel(config: GPTConfig, batch: int) -> Callable:
    def make(group: Any) -> tuple[Callable, Callable]:
        model = _model(config)
        ddp = DistributedDataParallel(model, group, overlap=False)
        return _trainer(model, ddp, _shard(config, batch, group, group.world_size), gpt_loss)
    return make


def tensor_parallel_step(config: GPTConfig, batch: int) -> Callable:
    def make(group: Any) -> tuple[Callable, Callable]:
        model = tensor_parallel(_model(config), group)
        return _trainer(model, model, markov_tokens(batch, config, seed=7), model.criterion)
    return make


def zero_step(config: GPTConfig, batch: int, stage: int) -> Callable:
    def make(group: Any) -> tuple[Callable, Callable]:
        zero = ZeroDataParallel(_model(config).layers(), group, stage,
                                lambda ps: optim.Adam(ps, lr=LR))
        x, y = _shard(config, batch, group, group.world_size)
        held = [0]

        def step() -> None:
            zero.zero_grad()
            gpt_loss(zero(x), y).backward()
            held[0] = zero.state_bytes().total
            zero.step()
        return step, lambda: held[0]
    return make


def hybrid_step(config: GPTConfig, batch: int) -> Callable:
    def make(group: Any) -> tuple[Callable, Callable]:
        grid = layout(group, tp=2, dp=group.world_size // 2)
        model = tensor_parallel(_model(config), grid.tp)
        ddp = DistributedDataParallel(model, grid.dp, overlap=False)
        return _trainer(model, ddp, _shard(config, batch, grid.dp, grid.dp.world_size),
                        model.criterion)
    return make


def single_process(config: GPTConfig, batch: int, rounds: int) -> tuple[float, int, int]:
    """Median step on one process, its model-state bytes and its activation bytes."""
    model = _model(config)
    x, y = markov_tokens(batch, config, seed=7)
    step, held = _trainer(model, model, (x, y), gpt_loss)
    step()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), held(), saved_bytes(gpt_loss(model(x), y))


def pipeline_parts(config: GPTConfig, batch: int) -> Callable:
    def make() -> tuple:
        x, y = markov_tokens(batch, config, seed=7)
        return _model(config).layers(), x, y, gpt_loss, lambda ps: optim.Adam(ps, lr=LR)
    return make


def collect(config: GPTConfig, batch: int, world_sizes: list[int], rounds: int) -> list[dict]:
    """One row per strategy and process count (see the module docstring)."""
    single, single_bytes, single_activations = single_process(config, batch, rounds)
    rows = []
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    def row(prediction: Prediction, held: int, activations: int | None = None) -> None:
        rows.append({"strategy": prediction.strategy, "processes": prediction.world_size,
                     "step_ms": 1e3 * prediction.measured, "one_process_ms": 1e3 * single,
                     "speedup": single / prediction.measured,
                     "predicted_ms": 1e3 * prediction.predicted, "error_%": 100 * prediction.error,
                     "state_MB_per_rank": held / 1e6, "one_process_MB": single_bytes / 1e6,
                     "activation_MB": "" if activations is None else activations / 1e6,
                     "one_process_activation_MB": single_activations / 1e6,
                     "oversubscribed": prediction.world_size > (cores or 1)})

    for world in world_sizes:
        steps = {"DP (DDP)": data_parallel(config, batch), "TP": tensor_parallel_step(config, batch),
                 **{f"ZeRO-{s}": zero_step(config, batch, s) for s in (1, 2, 3)}}
        if world == 4:
            steps["DP x TP (2 x 2)"] = hybrid_step(config, batch)
        for name, make in steps.items():
            profile = profile_step(make, world, rounds)
            row(predict_step(profile, name), profile.state_bytes)
        m = 2 * world
        for schedule, v in (("gpipe", 1), ("1f1b", 1), ("interleaved", 2)):
            if world * v > config.layers + 2:
                continue
            profile = profile_pipeline(pipeline_parts(config, batch), world, schedule, m, v,
                                       rounds=max(2, rounds // 2))
            row(predict_pipeline(profile), max(profile.state_bytes), max(profile.peak_bytes))
    return rows


def main(argv: list[str]) -> int:
    p = cliargs.ArgumentParser(prog="mlsys bench parallel", description=__doc__)
    p.add_argument("--processes", type=cliargs.comma_list(cliargs.int_range(2, 4), unique=True),
                   default=[2, 4], help="comma-separated process counts, each 2 to 4 (default 2,4)")
    p.add_argument("--batch", type=cliargs.int_range(8, 1024), default=32,
                   help="global batch in sequences, a multiple of 8 (default 32)")
    p.add_argument("--rounds", type=cliargs.int_range(2, 100), default=6,
                   help="timed steps per strategy (default 6)")
    p.add_argument("--quick", action="store_true", help="a tiny GPT (for a fast check)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    if args.batch % 8:
        p.error(f"argument --batch: expected a multiple of 8, got {args.batch}")
    config = QUICK if args.quick else FULL
    with threadpool_limits(1):
        rows = collect(config, args.batch, sorted(args.processes), args.rounds)
    print(emit(rows, as_json=args.json,
               title=f"Parallel training of a GPT ({config.params:,} parameters, batch "
                     f"{args.batch}), float32 Adam, on real processes",
               notes=["step_ms: median step of the slowest rank (forward, backward, optimizer)",
                      "predicted_ms: the simulator, from compute and communication measured alone "
                      "in the same run",
                      "state_MB_per_rank: parameters + gradients + optimizer state of the most "
                      "loaded rank; activation_MB: a pipeline device's peak of saved activations",
                      "oversubscribed: more processes than cores; they take turns, which no part "
                      "measured alone shows"]))
    return 0
