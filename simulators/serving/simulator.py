"""A serving system on SimPy: arrivals, a bounded queue, a batching policy, replicas, autoscaling.

The batcher is one SimPy process. Whenever a replica is free and requests wait, it asks the
policy (the same :class:`mlsys.serve.policy.BatchPolicy` objects the real server runs) for a
decision, exactly when the real batcher would: at an arrival, when a replica frees up, or when
the policy's timer fires. A dispatched batch holds its replica for a service time drawn from a
:class:`~simulators.serving.service.ServiceModel`. Arrivals do not need events of their own:
between two wake-ups nothing leaves the queue, so the batcher admits the requests that arrived
meanwhile (refusing those beyond ``max_queue``) when it wakes, and wakes at an arrival only when
that arrival could change a decision. A million requests take seconds.

Options for the parts of a real server around the batcher: ``frontend`` seconds of single-threaded
work per request before it reaches the queue (HTTP parsing on one event loop: a FIFO stage of its
own), and an ``overhead`` added to every latency (network, HTTP, the reply): a number of seconds,
or one number per request (measured ones, when replaying a real run).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import simpy

from mlsys.serve.policy import BatchPolicy, QueueState, check_decision

from ..core.recorder import Recorder
from .service import ServiceModel

__all__ = ["Autoscaler", "ServingResult", "simulate"]

_EPS = 1e-9  # seconds: times closer than this are simultaneous


@dataclass(frozen=True)
class Autoscaler:
    """Checked every ``interval`` seconds: add a replica when the queue holds more than
    ``scale_up_queue`` requests per active replica; remove an idle one when the queue is empty,
    the replicas were busy less than ``scale_down_utilization`` of the last interval, and no
    replica was added or removed for ``cooldown`` seconds (without it, a queue that empties for a
    moment during a surge would shed the replicas the surge needs: Kubernetes' autoscaler waits
    five minutes by default). A new replica serves after ``startup_delay`` seconds."""

    min_replicas: int = 1
    max_replicas: int = 8
    interval: float = 1.0
    startup_delay: float = 10.0
    scale_up_queue: float = 4.0
    scale_down_utilization: float = 0.5
    cooldown: float = 30.0

    def __post_init__(self) -> None:
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ValueError(f"Autoscaler: need 1 <= min_replicas <= max_replicas, got "
                             f"{self.min_replicas}, {self.max_replicas}")
        if not 0 <= self.scale_down_utilization <= 1:
            raise ValueError(f"Autoscaler: scale_down_utilization must be in [0, 1], "
                             f"got {self.scale_down_utilization!r}")
        for name in ("interval", "startup_delay", "scale_up_queue", "cooldown"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0) or (name == "interval" and value == 0):
                raise ValueError(f"Autoscaler: {name} must be a finite number >= 0 "
                                 f"(interval > 0), got {value!r}")


@dataclass
class ServingResult:
    """Per-request and per-batch records of one simulated run (times in seconds)."""

    arrival: np.ndarray
    admitted: np.ndarray  # bool: False where a full queue refused the request (503)
    dispatch: np.ndarray  # when its batch was sent to a replica (NaN if refused)
    done: np.ndarray  # when its reply left (NaN if refused)
    batches: np.ndarray  # one row per batch: start, end, size, replica
    replica_series: list[tuple[float, int]] = field(default_factory=list)  # (time, active replicas)
    events: int = 0

    @property
    def latency(self) -> np.ndarray:
        """Seconds from arrival to reply, for the admitted requests."""
        return (self.done - self.arrival)[self.admitted]

    @property
    def queue_wait(self) -> np.ndarray:
        return (self.dispatch - self.arrival)[self.admitted]

    def summary(self) -> dict[str, float]:
        lat = self.latency * 1e3
        span = float(np.nanmax(self.done) - self.arrival[0]) if self.admitted.any() else 0.0
        return {"requests": int(len(self.arrival)), "rejected": int((~self.admitted).sum()),
                "throughput_rps": float(self.admitted.sum() / span) if span else 0.0,
                "mean_ms": float(lat.mean()), "p50_ms": float(np.percentile(lat, 50)),
                "p95_ms": float(np.percentile(lat, 95)), "p99_ms": float(np.percentile(lat, 99)),
                "mean_batch": float(self.batches[:, 2].mean()) if len(self.batches) else 0.0,
                "utilization": self.utilization()}

    def utilization(self) -> float:
        """Fraction of replica-time spent serving, over the run (with the replica count in force)."""
        if not len(self.batches):
            return 0.0
        busy = float((self.batches[:, 1] - self.batches[:, 0]).sum())
        series = self.replica_series + [(float(self.batches[:, 1].max()), 0)]
        held = sum((t1 - t0) * n for (t0, n), (t1, _) in zip(series, series[1:]))
        return float(busy / held) if held else 0.0

    def to_recorder(self, limit: int = 5000) -> Recorder:
        """The first ``limit`` batches as spans on their replicas (for timelines and Perfetto)."""
        recorder = Recorder()
        for start, end, size, replica in self.batches[:limit]:
            recorder.record(f"batch of {int(size)}", f"replica {int(replica)}", start, end,
                            category="batch", group="replicas", size=int(size))
        return recorder


class _Replicas:
    """Busy-until time of each replica slot; a retired slot holds infinity until reused."""

    def __init__(self, count: int) -> None:
        self.free_at = [0.0] * count
        self.active = count

    def idle(self, now: float) -> list[int]:
        return [i for i, t in enumerate(self.free_at) if t <= now]

    def next_free(self) -> float:
        return min(self.free_at)

    def add(self, now: float) -> None:
        slot = next((i for i, t in enumerate(self.free_at) if t == math.inf), None)
        if slot is None:
            self.free_at.append(now)
        else:
            self.free_at[slot] = now
        self.active += 1

    def retire(self, slot: int) -> None:
        self.free_at[slot] = math.inf
        self.active -= 1


def _frontend(arrival: np.ndarray, seconds: float) -> np.ndarray:
    """When each request leaves a FIFO single-threaded stage of ``seconds`` per request
    (Lindley's recursion)."""
    out = np.empty_like(arrival)
    ready = -math.inf
    for i, t in enumerate(arrival.tolist()):
        ready = max(ready, t) + seconds
        out[i] = ready
    return out


def simulate(arrivals: Sequence[float] | np.ndarray, policy: BatchPolicy, service: ServiceModel,
             replicas: int = 1, *, max_queue: int | None = None, frontend: float = 0.0,
             overhead: float | Sequence[float] | np.ndarray = 0.0, autoscaler: Autoscaler | None = None,
             seed: int = 0) -> ServingResult:
    """Serve requests arriving at ``arrivals`` (seconds, non-decreasing) and record what happens."""
    arrival = np.asarray(arrivals, dtype=float)
    if arrival.ndim != 1 or not len(arrival) or not np.all(np.isfinite(arrival)):
        raise ValueError("simulate: arrivals must be a non-empty 1-D array of finite times")
    if np.any(np.diff(arrival) < 0):
        raise ValueError("simulate: arrivals must be sorted (non-decreasing)")
    if not isinstance(policy, BatchPolicy):
        raise TypeError(f"simulate: policy must be a mlsys.serve.policy.BatchPolicy, got {policy!r}")
    if not isinstance(service, ServiceModel):
        raise TypeError(f"simulate: service must be a ServiceModel, got {service!r}")
    if not isinstance(replicas, int) or replicas < 1:
        raise ValueError(f"simulate: replicas must be a positive integer, got {replicas!r}")
    if max_queue is not None and (not isinstance(max_queue, int) or max_queue < 1):
        raise ValueError(f"simulate: max_queue must be a positive integer or None, got {max_queue!r}")
    extra = np.asarray(overhead, dtype=float)
    if extra.ndim > 1 or (extra.ndim == 1 and len(extra) != len(arrival)):
        raise ValueError(f"simulate: overhead must be a number or one per request ({len(arrival)}), "
                         f"got shape {extra.shape}")
    for name, value in (("frontend", np.asarray(frontend, dtype=float)), ("overhead", extra)):
        if not (np.isfinite(value).all() and (value >= 0).all()):
            raise ValueError(f"simulate: {name} must be finite seconds >= 0, got {value!r}")
    if autoscaler is not None:
        replicas = min(max(replicas, autoscaler.min_replicas), autoscaler.max_replicas)
    reach = _frontend(arrival, frontend) if frontend else arrival
    run = _Run(reach, policy, service, replicas, max_queue or len(arrival) + 1, autoscaler, seed)
    run.env.run()
    done = run.done + extra
    return ServingResult(arrival, run.admitted, run.dispatch, done,
                         np.array(run.batches, dtype=float).reshape(-1, 4), run.replica_series,
                         run.wakeups)


class _Run:
    """The state of one simulation: the queue is a window [head, tail) over admitted requests."""

    def __init__(self, reach: np.ndarray, policy: BatchPolicy, service: ServiceModel, replicas: int,
                 max_queue: int, autoscaler: Autoscaler | None, seed: int) -> None:
        n = len(reach)
        self.env = simpy.Environment()
        self.reach, self.policy, self.service, self.max_queue = reach, policy, service, max_queue
        self.times = reach.tolist()  # scalar reads and bisection are faster on a list
        self.rng = np.random.default_rng(seed)
        self.admitted = np.zeros(n, dtype=bool)
        self.dispatch = np.full(n, np.nan)
        self.done = np.full(n, np.nan)
        self.queue_ids = np.empty(n, dtype=np.int64)  # admitted request ids, in order
        self.queue_times = np.empty(n)  # their arrival times at the batcher
        self.head = self.tail = self.next = 0
        self.replicas = _Replicas(replicas)
        self.starting = 0
        self.last_scaled = -math.inf  # when a replica was last requested, added or removed
        self.busy = 0.0
        self.batches: list[tuple[float, float, int, int]] = []
        self.replica_series = [(0.0, replicas)]
        self.wakeups = 0
        self.autoscaler = autoscaler
        self.batcher = self.env.process(self._batcher())
        if autoscaler is not None:
            self.env.process(self._scale(autoscaler))

    def _admit(self, now: float) -> None:
        """Admit everything that has arrived by ``now``, refusing what a full queue cannot hold."""
        first = self.next
        if first == len(self.times) or self.times[first] > now:
            return
        end = bisect.bisect_right(self.times, now, first)
        take = min(end - first, max(self.max_queue - (self.tail - self.head), 0))
        if take == 1:
            self.queue_ids[self.tail], self.queue_times[self.tail] = first, self.times[first]
            self.admitted[first] = True
        elif take:
            self.queue_ids[self.tail:self.tail + take] = np.arange(first, first + take)
            self.queue_times[self.tail:self.tail + take] = self.reach[first:first + take]
            self.admitted[first:first + take] = True
        self.tail += take
        self.next = end

    def _batcher(self):
        env, n = self.env, len(self.reach)
        while True:
            now = env.now + _EPS  # a timer set for t may fire an ulp before t
            self._admit(now)
            idle = self.replicas.idle(now)
            wake = self.times[self.next] if self.next < n else math.inf
            if self.tail > self.head and idle:
                state = QueueState(env.now, self.queue_times[self.head:self.tail], len(idle),
                                   self.replicas.active)
                decision = check_decision(self.policy, state, self.policy.decide(state))
                if decision.size:
                    self._send(env.now, idle[0], decision.size)
                    continue
                # a wait shorter than the clock's resolution would ask again at this very time
                wake = min(wake, env.now + max(decision.wait, _EPS))
                if wake == math.inf and self.autoscaler is None:
                    raise RuntimeError(f"{self.policy!r} waits forever with {self.tail - self.head} "
                                       "requests queued and no arrivals to come")
            elif self.tail > self.head:  # all busy: arrivals only join the queue until one frees
                wake = self.replicas.next_free()
            if wake == math.inf and (self.autoscaler is None or self.tail == self.head):
                return
            self.wakeups += 1
            try:
                yield env.timeout(max(wake - env.now, 0.0)) if wake < math.inf else env.event()
            except simpy.Interrupt:
                pass

    def _send(self, now: float, replica: int, size: int) -> None:
        seconds = self.service.sample(size, self.rng, now)
        ids = self.queue_ids[self.head:self.head + size]
        self.dispatch[ids] = now
        self.done[ids] = now + seconds
        self.head += size
        self.busy += seconds  # replica-seconds of work handed out (for the autoscaler)
        self.replicas.free_at[replica] = now + seconds
        self.batches.append((now, now + seconds, size, replica))

    def _scale(self, scaler: Autoscaler):
        env, n = self.env, len(self.reach)
        busy_before = 0.0
        while self.next < n or self.tail > self.head:
            yield env.timeout(scaler.interval)
            self._admit(env.now + _EPS)
            active, waiting = self.replicas.active, self.tail - self.head
            utilization = (self.busy - busy_before) / (active * scaler.interval)
            busy_before = self.busy
            if waiting > scaler.scale_up_queue * active and active + self.starting < scaler.max_replicas:
                self.starting += 1
                self.last_scaled = env.now
                env.process(self._start_replica(scaler.startup_delay))
            elif (waiting == 0 and active > scaler.min_replicas and not self.starting
                  and utilization < scaler.scale_down_utilization
                  and env.now - self.last_scaled >= scaler.cooldown):
                idle = self.replicas.idle(env.now + _EPS)
                if idle:
                    self.replicas.retire(idle[-1])
                    self.last_scaled = env.now
                    self.replica_series.append((env.now, self.replicas.active))

    def _start_replica(self, delay: float):
        yield self.env.timeout(delay)
        self.starting -= 1
        self.last_scaled = self.env.now
        self.replicas.add(self.env.now)
        self.replica_series.append((self.env.now, self.replicas.active))
        if self.batcher.is_alive and self.batcher.target is not None:
            self.batcher.interrupt()
