"""Data-parallel gradient synchronization: bucketing and overlap with the backward pass.

As in PyTorch DDP (Li et al., VLDB 2020), gradients are grouped, in the order backward produces
them, into buckets of about ``bucket_bytes``; a bucket's all-reduce starts on the communication
stream as soon as its last gradient is ready (``overlap=True``) or once the whole backward has
finished (``overlap=False``). The stream runs one collective at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import simpy

from simulators.core import Recorder


def buckets(grads: Sequence[tuple[float, float]], bucket_bytes: float) -> list[tuple[float, float]]:
    """Group ``(ready_time, nbytes)`` gradients, in order, into ``(ready_time, nbytes)`` buckets."""
    if bucket_bytes <= 0:
        raise ValueError(f"bucket_bytes must be positive, got {bucket_bytes}")
    out, ready, size = [], 0.0, 0.0
    for t, n in grads:
        ready, size = max(ready, t), size + n
        if size >= bucket_bytes:
            out.append((ready, size))
            size = 0.0
    if size > 0:
        out.append((ready, size))
    return out


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
