"""The dataflow way: the same supersteps as tasks on Dask's distributed scheduler.

The driver (this process, a :class:`distributed.Client`) holds the coordinator, as a Spark
driver does. The partitions live in the workers' memory (a cached RDD, in Spark's words) and every
step is a small task graph: one ``statistics`` task per partition, pinned to the worker that
holds it, then an aggregation; the decision goes back out inside one ``apply`` task per
partition (the decisions here are small; a large one would be scattered once, as Spark
broadcasts a variable), which makes the next generation of partitions. Two aggregations:

* ``reduce="driver"``: the driver gathers every partition's statistics and sums them (Spark's
  ``aggregate`` / ``reduce``);
* ``reduce="shuffle"``: a shuffle stage, as Spark's ``reduceByKey`` writes one: each statistics
  vector is cut into one block per partition, block ``j`` of every partition goes to the worker of
  partition ``j``, which sums them, and the driver gathers the summed blocks (a reduce-scatter
  through the engine, then a gather).

Both sum in partition order, so the model is bitwise the same as with the other executors. The
same code runs on a multi-node Dask cluster: only the :class:`~distributed.Client` changes.
Spans come from Dask's own task stream (compute and transfer times on every worker) and from the
driver's clock.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .algorithm import Algorithm, Partition
from .run import Run, Sizes, Span, check_parts, sum_in_order

REDUCES = ("driver", "shuffle")
WORKER_WAIT_SECONDS = 60


def statistics(partition: Partition, step: int) -> np.ndarray:
    return partition.statistics(step)


def cut_blocks(partition: Partition, step: int, parts: int) -> tuple[np.ndarray, ...]:
    return tuple(np.array_split(partition.statistics(step), parts))


def take_block(blocks: tuple[np.ndarray, ...], j: int) -> np.ndarray:
    return blocks[j]


def apply_decision(partition: Partition, decision: np.ndarray, step: int) -> Partition:
    return partition.apply(decision, step)


def add_blocks(*blocks: np.ndarray) -> np.ndarray:
    return sum_in_order(blocks)


def run_dask(algorithm: Algorithm, parts: Sequence[dict], client: Any,
             reduce: str = "driver") -> Run:
    """Fit with the partitions on the workers of ``client``'s cluster (round-robin) and the
    coordinator here, on the driver."""
    from distributed import get_task_stream, wait

    check_parts(algorithm, parts, 1, "run_dask")
    if reduce not in REDUCES:
        raise ValueError(f"run_dask: reduce must be one of {REDUCES}, got {reduce!r}")
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_SECONDS)
    except TimeoutError:
        raise RuntimeError(f"run_dask: no worker joined the cluster within {WORKER_WAIT_SECONDS} s "
                           "(are its worker processes running?)") from None
    addresses = sorted(client.scheduler_info()["workers"])
    place = [[addresses[i % len(addresses)]] for i in range(len(parts))]
    n = len(parts)
    # a list, so that scatter ships each dict whole (a dict alone would be scattered per key)
    data = [client.scatter([p], workers=w, hash=False)[0] for p, w in zip(parts, place)]
    partitions = [client.submit(algorithm.partition, d, workers=w, pure=False)
                  for d, w in zip(data, place)]
    wait(partitions)
    coordinator = algorithm.coordinator()
    driver: list[Span] = []
    moved, sizes = 0.0, Sizes()
    with get_task_stream(client) as stream:
        start = time.time()
        for step in range(algorithm.steps):
            t0 = time.time()
            if reduce == "driver":
                stats = [client.submit(statistics, p, step, workers=w, pure=False)
                         for p, w in zip(partitions, place)]
                arrays = client.gather(stats)
                total = sum_in_order(arrays)
                moved += sum(a.nbytes for a in arrays)
            else:
                blocks = [client.submit(cut_blocks, p, step, n, workers=w, pure=False)
                          for p, w in zip(partitions, place)]
                cut = [[client.submit(take_block, b, j, workers=w, pure=False) for j in range(n)]
                       for b, w in zip(blocks, place)]
                sums = [client.submit(add_blocks, *[cut[i][j] for i in range(n)], workers=place[j],
                                      pure=False) for j in range(n)]
                arrays = client.gather(sums)
                total = np.concatenate(arrays)
                # every block but a partition's own goes to another partition's worker, then the
                # sums come in (counted as if every partition had a worker of its own)
                moved += total.nbytes * (n - 1) + total.nbytes
            t1 = time.time()
            decision = coordinator.decide(total, step)
            t2 = time.time()
            sizes.add(total, decision)
            if step + 1 < algorithm.steps:  # the decision travels inside each task
                partitions = [client.submit(apply_decision, p, decision, step, workers=w,
                                            pure=False) for p, w in zip(partitions, place)]
                moved += n * decision.nbytes
            driver += [Span("driver", "wait", step, t0 - start, t1 - start),
                       Span("driver", "update", step, t1 - start, t2 - start),
                       Span("driver", "comm", step, t2 - start, time.time() - start)]
        seconds = time.time() - start
    names = {a: f"worker {i}" for i, a in enumerate(addresses)}
    return Run(f"Dask ({reduce})", n, coordinator.result(), algorithm.steps, seconds, moved,
               *sizes.means(), driver + _task_spans(stream.data, names, start))


def _task_spans(records: list[dict], names: dict[str, str], start: float) -> list[Span]:
    """Spans from Dask's task stream: each task's run on its worker (``compute`` for statistics,
    ``update`` for applying a decision, ``comm`` for the shuffle's cutting and summing of blocks)
    and its transfers between workers (``comm``)."""
    from dask.utils import key_split

    task_kind = {"statistics": "compute", "cut_blocks": "compute", "apply_decision": "update"}
    spans = []
    for record in records:
        worker = names.get(record.get("worker"), str(record.get("worker")))
        computes = task_kind.get(key_split(record.get("key", "")), "comm")  # the shuffle's tasks
        for part in record.get("startstops", ()):
            kind = {"compute": computes, "transfer": "comm"}.get(part["action"], "overhead")
            spans.append(Span(worker, kind, -1, part["start"] - start, part["stop"] - start))
    return sorted(spans, key=lambda s: (s.worker, s.start))
