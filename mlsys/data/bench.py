"""``mlsys bench loader``: a training run fed by 0, 1, 2, ... loader workers, side by side.

The workload is input-bound by construction: digits augmented by a random rotation and shift
(:class:`~mlsys.data.transforms.RandomAffine`) in the loader, an MLP trained on them. Each row is
the steady-state time per training step with ``num_workers`` workers, and its speed-up over
``num_workers=0`` (everything in the training process) measured in the same run, in alternating
rounds. The training process runs its BLAS on one thread, as the workers do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from .. import cliargs, models, nn, optim
from ..bench.report import emit
from ..tensor import Tensor
from ..training import train_step
from .dataset import Dataset, Subset, Transformed
from .digits import load_digits
from .loader import DataLoader
from .transforms import RandomAffine


def augmented_digits(upsample: int = 2, passes: int = 4) -> Transformed:
    """The digits training images, (1, 8, 8), each ``passes`` times per epoch and each time read
    with a fresh random rotation and shift: an epoch long enough (90 batches of 64 by default) to
    time a pipeline well past the batches its workers prefetch at the start."""
    images = load_digits("train", flatten=False)
    return Transformed(Subset(images, np.tile(np.arange(len(images)), passes)),
                       RandomAffine(15.0, 1.0, upsample))


def digits_trainer(hidden: int = 256, lr: float = 1e-3, seed: int = 0
                   ) -> Callable[[Tensor, Tensor], float]:
    """One Adam step of an MLP (flattened 8x8 images, two hidden layers) per call; the initial
    weights come from ``mlsys.manual_seed(seed)``."""
    from ..random import manual_seed

    manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), models.mlp(64, hidden))
    optimizer = optim.Adam(model.parameters(), lr=lr)
    return lambda x, y: train_step(model, optimizer, x, y)


def step_times(loader: DataLoader, step: Callable[..., Any], batches: int) -> list[float]:
    """Run ``step(*batch)`` on the first ``batches`` batches of one epoch; when each step ended
    (seconds after the epoch began, loader start-up included)."""
    if not 1 <= batches <= len(loader):
        raise ValueError(f"step_times: batches must be in [1, {len(loader)}] (the loader's length), "
                         f"got {batches}")
    ends = []
    start = time.perf_counter()
    for i, batch in enumerate(loader):
        step(*batch)
        ends.append(time.perf_counter() - start)
        if i + 1 == batches:
            break
    return ends


def steady_step(ends: Sequence[float], warmup: int = 3) -> float:
    """Seconds per step once the pipeline is full: the mean gap between step ends after ``warmup``."""
    if len(ends) < warmup + 2:
        raise ValueError(f"steady_step: need at least {warmup + 2} steps after a warm-up of {warmup}, "
                         f"got {len(ends)}")
    return (ends[-1] - ends[warmup]) / (len(ends) - 1 - warmup)


def compare_workers(dataset: Dataset, step: Callable[[Tensor, Tensor], Any], workers: Sequence[int], *,
                    batch_size: int = 64, batches: int = 30, prefetch_factor: int = 2, rounds: int = 2,
                    seed: int = 0) -> dict[int, float]:
    """Steady seconds per step for each ``num_workers``: the best of ``rounds`` alternating runs."""
    best = {w: float("inf") for w in workers}
    for _ in range(rounds):
        for w in workers:
            loader = DataLoader(dataset, batch_size, shuffle=True, drop_last=True, seed=seed, num_workers=w,
                                prefetch_factor=prefetch_factor if w else None)
            best[w] = min(best[w], steady_step(step_times(loader, step, batches)))
    return best


def main(argv: list[str]) -> int:
    p = cliargs.ArgumentParser(prog="mlsys bench loader", description=__doc__)
    p.add_argument("--workers", type=cliargs.comma_list(cliargs.non_negative_int, unique=True),
                   default=[0, 1, 2, 3], help="comma-separated num_workers values (default 0,1,2,3; "
                                              "0 is always measured, as the baseline)")
    p.add_argument("--upsample", type=cliargs.int_range(1, 16), default=2,
                   help="augmentation resolution factor: its cost grows as the square (default 2)")
    p.add_argument("--hidden", type=cliargs.int_range(1, 1 << 14), default=256,
                   help="MLP width: the training step's cost (default 256)")
    p.add_argument("--batches", type=cliargs.int_range(6, 1000), default=60,
                   help="training steps per run, at most one epoch (default 60)")
    p.add_argument("--prefetch-factor", type=cliargs.positive_int, default=2,
                   help="batches each worker loads ahead (default 2)")
    p.add_argument("--rounds", type=cliargs.int_range(1, 100), default=2, help="alternating rounds")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    workers = sorted({0, *args.workers})
    dataset = augmented_digits(args.upsample)
    available = len(dataset) // 64
    if args.batches > available:
        p.error(f"argument --batches: expected at most {available} (one epoch of batches of 64), "
                f"got {args.batches}")
    with threadpool_limits(1):
        seconds = compare_workers(dataset, digits_trainer(args.hidden), workers, batches=args.batches,
                                  prefetch_factor=args.prefetch_factor, rounds=args.rounds)
    rows = [{"num_workers": w, "ms_per_step": s * 1e3, "steps_per_s": 1 / s, "speedup_vs_0": seconds[0] / s}
            for w, s in seconds.items()]
    print(emit(rows, as_json=args.json, title=f"Training fed by loader workers (batch 64, "
                                               f"RandomAffine upsample={args.upsample}, MLP {args.hidden})",
               notes=["steady state: mean time per step after 3 warm-up steps, best of rounds"]))
    return 0
