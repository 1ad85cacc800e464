"""``mlsys bench serve``: the real server under load, batching settings side by side, and the int8
matmul next to float32 BLAS.

Every setting's server runs at the same time, next to the one-request-at-a-time baseline (one
replica, batches of one, no waiting): closed-loop throughput and latency at a fixed number of
requests in flight, the best of alternating rounds, then open-loop Poisson arrivals at a rate both
can carry (half the baseline's capacity by default). Read the ``x_baseline`` ratios, not the
absolute numbers: other work on the machine moves those.
"""

from __future__ import annotations

import itertools
import tempfile
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from .. import cliargs
from ..bench.report import emit, time_side_by_side
from . import models
from .loadgen import closed_loop, digit_payloads, open_loop
from .process import ServerProcess

__all__ = ["serve_rows", "int8_rows", "main"]

INT8_SHAPES = ((64, 64, 128), (64, 128, 128), (256, 1024, 1024))  # (n, k, m): (n, k) @ (k, m)


def serve_rows(model: str = "digits-mlp", replicas: tuple[int, ...] = (1, 2),
               batches: tuple[int, ...] = (1, 8, 32), waits: tuple[float, ...] = (0.002,),
               concurrency: int = 32, duration: float = 2.0, rate: float | None = None,
               rounds: int = 3, checkpoint: Path | None = None) -> list[dict]:
    """The baseline and every (replicas, batch, wait) setting; ratios against the baseline.

    Every setting's server runs at once; closed-loop throughput is the best of ``rounds``
    alternating runs of ``duration / rounds`` seconds (so a burst of other work on the machine
    lands on every setting); then each gets ``duration`` seconds of open-loop Poisson load at
    ``rate`` (default: half the baseline's closed-loop throughput).
    """
    settings = [("one at a time (baseline)", 1, 1, 0.0)]
    settings += [(f"{r} replica(s), batch<={b}, wait {w * 1e3:g} ms", r, b, w)
                 for r, b, w in itertools.product(replicas, batches, waits) if (r, b) != (1, 1)]
    payloads = digit_payloads()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        checkpoint = checkpoint or models.save(models.train(model), Path(tmp) / f"{model}.npz")
        servers = [stack.enter_context(ServerProcess(
            model, replicas=r, max_batch_size=b, max_wait=w, max_queue=max(1024, 4 * concurrency),
            checkpoint=checkpoint)) for _, r, b, w in settings]
        for server in servers:  # warm-up
            closed_loop(server.url, concurrency, 0.2, model=model, payloads=payloads)
        best: dict[int, dict] = {}
        for _ in range(rounds):
            for i, server in enumerate(servers):
                run = closed_loop(server.url, concurrency, duration / rounds, model=model,
                                  payloads=payloads).summary()
                if i not in best or run["throughput_rps"] > best[i]["throughput_rps"]:
                    best[i] = run
        rate = rate or 0.5 * best[0]["throughput_rps"]
        rows = []
        for i, ((label, r, b, w), server) in enumerate(zip(settings, servers)):
            opened = open_loop(server.url, rate, duration, model=model, payloads=payloads).summary()
            rows.append({"setting": label, "replicas": r, "max_batch": b, "max_wait_ms": w * 1e3,
                         "closed_rps": best[i]["throughput_rps"],
                         "x_baseline": best[i]["throughput_rps"] / best[0]["throughput_rps"],
                         "closed_p50_ms": best[i]["p50_ms"], "closed_p99_ms": best[i]["p99_ms"],
                         "open_rps": rate, "open_p50_ms": opened["p50_ms"], "open_p99_ms": opened["p99_ms"],
                         "open_rejected": opened["rejected_503"] + opened["errors"]})
    return rows


def int8_rows(shapes: tuple[tuple[int, int, int], ...] = INT8_SHAPES, rounds: int = 3) -> list[dict]:
    """The Numba int8 matmul (int32 accumulation) next to numpy's float32 BLAS, one thread each."""
    from ..compress.int8 import int8_matmul, quantize_per_channel, quantize_per_tensor

    rng = np.random.default_rng(0)
    rows = []
    with threadpool_limits(1):
        for n, k, m in shapes:
            a = rng.standard_normal((n, k)).astype(np.float32)
            w = rng.standard_normal((m, k)).astype(np.float32)  # (out, in), as nn.Linear stores it
            qa, _ = quantize_per_tensor(a)
            qw, _ = quantize_per_channel(w)
            wt = np.ascontiguousarray(w.T)
            t8, t32 = time_side_by_side([partial(int8_matmul, qa, qw), partial(np.matmul, a, wt)],
                                        rounds=rounds)
            ops = 2 * n * k * m
            rows.append({"shape": f"({n}x{k}) @ ({k}x{m})", "int8_gops": ops / t8 / 1e9,
                         "fp32_blas_gflops": ops / t32 / 1e9, "int8_vs_blas": t32 / t8,
                         "weight_bytes_ratio": qw.nbytes / w.nbytes})
    return rows


def main(argv: list[str]) -> int:
    p = cliargs.ArgumentParser(prog="mlsys bench serve", description=__doc__)
    p.add_argument("--model", default="digits-mlp", choices=sorted(models.MODELS))
    p.add_argument("--replicas", type=cliargs.comma_list(cliargs.positive_int, unique=True),
                   default=[1, 2], help="replica counts, comma-separated (default 1,2)")
    p.add_argument("--batch", type=cliargs.comma_list(cliargs.positive_int, unique=True),
                   default=[1, 8, 32], help="max batch sizes (default 1,8,32)")
    p.add_argument("--max-wait-ms", type=cliargs.comma_list(cliargs.non_negative_float, unique=True),
                   default=[2.0], help="max waits in ms (default 2)")
    p.add_argument("--concurrency", type=cliargs.positive_int, default=32,
                   help="closed-loop requests in flight")
    p.add_argument("--duration", type=cliargs.positive_float, default=2.0, help="seconds per measurement")
    p.add_argument("--rate", type=cliargs.positive_float,
                   help="open-loop requests/s (default: half the baseline's closed-loop throughput)")
    p.add_argument("--rounds", type=cliargs.positive_int, default=3,
                   help="alternating closed-loop rounds per setting (default 3)")
    p.add_argument("--part", choices=["all", "server", "int8"], default="all")
    p.add_argument("--quick", action="store_true", help="one short sweep (for tests)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = p.parse_args(argv)
    if args.quick:
        args.replicas, args.batch, args.duration = [1], [8], min(args.duration, 1.0)
    if args.part in ("all", "server"):
        rows = serve_rows(args.model, tuple(args.replicas), tuple(args.batch),
                          tuple(w / 1e3 for w in args.max_wait_ms), args.concurrency, args.duration,
                          args.rate, args.rounds)
        columns = ["setting", "closed_rps", "x_baseline", "closed_p50_ms", "closed_p99_ms", "open_rps",
                   "open_p50_ms", "open_p99_ms", "open_rejected"]
        print(emit(rows, as_json=args.json, columns=columns,
                   title=f"Serving {args.model}: closed loop ({args.concurrency} in flight) and open-loop "
                         "Poisson, each setting after the one-at-a-time baseline"))
    if args.part in ("all", "int8"):
        shapes = INT8_SHAPES[:1] if args.quick else INT8_SHAPES
        print(emit(int8_rows(shapes), as_json=args.json,
                   title="int8 matmul (Numba, int32 accumulation) vs float32 BLAS, one thread each"))
    return 0
