"""Data-parallel gradient synchronization: bucketing and overlap with the backward pass.

As in PyTorch DDP (Li et al., VLDB 2020), gradients are grouped, in the order backward produces
them, into buckets of at most ``bucket_bytes`` (the real engine's rule, shared with it); a
bucket's all-reduce starts on the communication stream as soon as its last gradient is ready
(``overlap=True``) or once the whole backward has finished (``overlap=False``). The stream runs
one collective at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import simpy

from mlsys.comm.ddp import bucket_ranges
from simulators.core import Recorder


def buckets(grads: Sequence[tuple[float, float]], bucket_bytes: float) -> list[tuple[float, float]]:
    """Group ``(ready_time, nbytes)`` gradients, in order, into ``(ready_time, nbytes)`` buckets
    by the engine's own rule (:func:`mlsys.comm.ddp.bucket_ranges`: at most ``bucket_bytes``
    each, or one gradient alone)."""
    return [(max(grads[i][0] for i in r), sum(grads[i][1] for i in r))
            for r in bucket_ranges([n for _, n in grads], bucket_bytes)]


def sync_gradients(grads: Sequence[tuple[float, float]], collective: Callable[[float], float], *,
                   bucket_bytes: float, overlap: bool, resource: str = "dp all-reduce",
                   recorder: Recorder | None = None) -> float:
    """Simulate the bucketed all-reduces of ``grads``; returns when the last one finishes.

    ``collective(nbytes)`` is the time of one bucket's collective.
    """
    if not grads:
        return 0.0
    plan = buckets(grads, bucket_bytes)
    backward_end = max(t for t, _ in grads)
    env = simpy.Environment(initial_time=min(t for t, _ in grads))
    stream = simpy.Resource(env, capacity=1)

    def bucket(i: int, ready: float, nbytes: float):
        yield env.timeout(max(0.0, (ready if overlap else backward_end) - env.now))
        with stream.request() as turn:
            yield turn
            t0 = env.now
            yield env.timeout(collective(nbytes))
            if recorder is not None:
                recorder.record(f"bucket {i}", resource, t0, env.now, category="dp-comm",
                                group="data parallel", nbytes=nbytes)

    # buckets are queued in order, so the stream serves them first-come first-served
    for i, (ready, nbytes) in enumerate(plan):
        env.process(bucket(i, ready, nbytes))
    env.run()
    return env.now
