"""The event loop: replay a trace on a cluster under a policy.

One SimPy process wakes at the next event — an arrival, a completion, a policy timer (a running
job's priority changing) or a periodic re-prioritization — applies it, and lets the policy
schedule. Queues are heaps with lazy deletion (each job state carries a version for its place in
the waiting and completion queues and a ``rank`` for its place in the running queue), so an event
costs ``O(log n)`` plus the jobs it starts or preempts, never a scan of every job. A timer only
matters when some job waits (a running job's key is compared with nobody else's otherwise), so
while nothing waits timers are not events: they are left due and applied when a job arrives.
"""

from __future__ import annotations

import heapq
import itertools
import math
from array import array
from collections.abc import Container, Iterator

import simpy

from .cluster import Cluster, ClusterSpec
from .job import Job, Trace
from .placement import Placement, get_placement
from .policies.base import Policy
from .result import Result, Segment


class JobState:
    """A job's progress as the scheduler sees it (policies read these fields)."""

    __slots__ = ("job", "index", "gpus", "remaining", "attained", "executed", "running",
                 "started", "overhead", "slowdown", "gpu_ids", "enqueued", "first_start",
                 "finish", "preemptions", "version", "rank", "key", "finish_at")

    def __init__(self, job: Job, index: int) -> None:
        self.job, self.index, self.gpus = job, index, job.gpus
        self.remaining = job.work      # seconds of consolidated work left (as of `started`)
        self.attained = 0.0            # GPU-seconds held so far (Tiresias's 2D attained service)
        self.executed = 0.0            # wall seconds held so far
        self.running = False
        self.started = self.overhead = 0.0
        self.slowdown = 1.0
        self.gpu_ids: list[tuple[int, int]] = []
        self.enqueued = job.arrival
        self.first_start = self.finish = math.nan
        self.preemptions = self.version = 0
        self.rank = 0                  # bumped whenever the running queue gets a fresh entry
        self.key: tuple = ()
        self.finish_at = math.inf

    def remaining_at(self, now: float) -> float:
        """Consolidated seconds of work left at ``now``."""
        if not self.running:
            return self.remaining
        return self.remaining - max(0.0, now - self.started - self.overhead) / self.slowdown

    def attained_at(self, now: float) -> float:
        """GPU-seconds of service received by ``now``."""
        return self.attained + (self.gpus * (now - self.started) if self.running else 0.0)


class Simulation:
    """Replays ``trace`` on a cluster of shape ``spec`` under ``policy``.

    ``spread_slowdown``: a job spread over more nodes than it needs (an 8-GPU job on two 4-GPU
    nodes needs two) runs this many times slower (a job's own ``spread_slowdown`` overrides it);
    ``switch_slowdown`` multiplies in when it spans more switches than it needs.
    ``restart_cost``: seconds a preempted job spends restoring its checkpoint (holding its GPUs
    without progress) when it resumes.
    """

    def __init__(self, trace: Trace | list[Job], spec: ClusterSpec, policy: Policy, *,
                 placement: str | Placement = "consolidated", spread_slowdown: float = 1.25,
                 switch_slowdown: float = 1.0, restart_cost: float = 30.0) -> None:
        trace = trace if isinstance(trace, Trace) else Trace("jobs", list(trace))
        if not trace.jobs:
            raise ValueError(f"trace {trace.name!r} has no jobs")
        trace.validate(max_gpus=spec.gpus)
        if spread_slowdown < 1 or switch_slowdown < 1:
            raise ValueError(f"slowdowns must be >= 1, got spread={spread_slowdown}, "
                             f"switch={switch_slowdown}")
        if restart_cost < 0:
            raise ValueError(f"restart_cost must be >= 0 s, got {restart_cost}")
        self.trace, self.spec, self.policy = trace, spec, policy
        self.place = get_placement(placement)
        self.placement_name = placement if isinstance(placement, str) else placement.__name__
        self.spread_slowdown, self.switch_slowdown = spread_slowdown, switch_slowdown
        self.restart_cost = restart_cost
        self.cluster = Cluster(spec)
        self.states = [JobState(job, i) for i, job in enumerate(trace.jobs)]
        self.now = 0.0
        self._seq = itertools.count()
        self._waiting: dict[int, list] = {}  # GPU count -> heap of (key, seq, state, version)
        self._running: list = []      # (negated key, seq, state, rank)
        self._completions: list = []  # (time, seq, state, version)
        self._timers: list = []       # (time, seq, state, rank): a running job's key changes
        self._wait_timers: list = []  # (time, seq, state, version): a waiting job's key changes
        self._next_arrival = 0
        self._active = 0
        self._n_running = 0
        self.segments: list[Segment] = []
        self.samples = {k: array("d") for k in ("time", "busy", "queued", "fragmentation")}
        self.events = 0

    # ---- queues policies use ------------------------------------------------------------
    @property
    def free_gpus(self) -> int:
        return self.cluster.free_gpus

    @property
    def active_jobs(self) -> int:
        """Jobs that have arrived and not finished (waiting or running)."""
        return self._active

    def best_waiting(self, max_gpus: int | None = None, exclude: Container[int] = ()) -> JobState | None:
        """The waiting job with the best key among those asking for at most ``max_gpus`` GPUs
        and for a GPU count not in ``exclude``; ``None`` if there is none.

        Waiting jobs are kept in one heap per GPU count, so this costs one look per distinct
        job size, however long the queue.
        """
        best = None
        for gpus, heap in self._waiting.items():
            if (max_gpus is not None and gpus > max_gpus) or gpus in exclude:
                continue
            while heap and (heap[0][3] != heap[0][2].version or heap[0][2].running):
                heapq.heappop(heap)
            if heap and (best is None or heap[0] < best):
                best = heap[0]
        return None if best is None else best[2]

    def waiting(self, max_gpus: int | None = None) -> Iterator[JobState]:
        """Waiting jobs (asking for at most ``max_gpus``), best key first; stop early when you can."""
        popped = []
        try:
            while (state := self.best_waiting(max_gpus)) is not None:
                popped.append(heapq.heappop(self._waiting[state.gpus]))
                yield state
        finally:
            for entry in popped:
                if entry[3] == entry[2].version and not entry[2].running:
                    heapq.heappush(self._waiting[entry[2].gpus], entry)

    def running_states(self) -> list[JobState]:
        """Running jobs (a scan of the running heap, which it compacts: for policies that re-plan)."""
        valid = [e for e in self._running if e[3] == e[2].rank and e[2].running]
        if len(valid) < len(self._running):
            self._running[:] = valid  # in place: preempt_for may hold the list
            heapq.heapify(self._running)
        return [e[2] for e in valid]

    def try_start(self, state: JobState) -> bool:
        """Place and start a waiting job now; ``False`` if the placement refuses."""
        if state.gpus > self.cluster.free_gpus:
            return False
        counts = self.place(self.cluster, state.gpus)
        if counts is None:
            return False
        now = self.now
        state.gpu_ids = self.cluster.allocate(counts)
        state.slowdown = self._slowdown(state, counts)
        state.overhead = self.restart_cost if state.preemptions else 0.0
        state.running, state.started = True, now
        self._n_running += 1
        if math.isnan(state.first_start):
            state.first_start = now
        state.version += 1
        state.finish_at = now + state.overhead + state.remaining * state.slowdown
        self.policy.on_start(state, now)
        heapq.heappush(self._completions, (state.finish_at, next(self._seq), state, state.version))
        self._push_running(state)
        return True

    def refresh(self, state: JobState) -> None:
        """Recompute an active job's key (and timers) now: for a policy whose own bookkeeping
        changed a key at a time it did not announce."""
        if state.running:
            self._push_running(state)
        elif not state.finish <= self.now:  # waiting (a finished job's finish is set)
            state.version += 1
            self._push_waiting(state)

    def preempt(self, state: JobState) -> None:
        """Stop a running job, keep its progress, and put it back in the waiting queue."""
        self._stop(state)
        state.preemptions += 1
        state.enqueued = self.now
        self.policy.on_preempt(state, self.now)
        self._push_waiting(state)

    def preempt_for(self, state: JobState) -> bool | None:
        """Preempt running jobs with worse keys than ``state`` until it fits, then start it.

        Nothing is preempted unless enough worse jobs exist to free ``state.gpus`` GPUs, and of
        the worse jobs found, the best are spared while the rest free enough (the greedy packing
        Tiresias's simulator recomputes at every event), so no job is preempted only to restart
        at once. Returns whether ``state`` started, or ``None`` when no running job at all has a
        worse key.
        """
        need = state.gpus - self.cluster.free_gpus
        if need > 0:  # most calls fail: find out without reordering the running queue
            found = self._worse_gpus(state, need)
            if found is not None and found < need:
                return False if found else None
        victims, freed, heap = [], self.cluster.free_gpus, self._running
        while freed < state.gpus and heap:
            entry = heap[0]
            victim = entry[2]
            if entry[3] != victim.rank or not victim.running:
                heapq.heappop(heap)
                continue
            key = self.policy.key(victim, self.now)
            if key != victim.key:  # priority improved since pushed (e.g. SRTF): refresh
                heapq.heappop(heap)
                self._push_running(victim)
                continue
            if not key > state.key:
                break
            victims.append(heapq.heappop(heap))
            freed += victim.gpus
        if freed < state.gpus:
            for entry in victims:
                heapq.heappush(heap, entry)
            return False if victims else None
        spared = []
        for entry in reversed(victims):  # best key first
            if freed - entry[2].gpus >= state.gpus:
                freed -= entry[2].gpus
                spared.append(entry)
        kept = {id(entry) for entry in spared}
        for entry in victims:
            if id(entry) not in kept:
                self.preempt(entry[2])
        if self.try_start(state):
            for entry in spared:
                heapq.heappush(heap, entry)
            return True
        for entry in reversed(spared):  # the placement needs their GPUs too (e.g. whole nodes)
            self.preempt(entry[2])
        return self.try_start(state)

    # ---- internals ----------------------------------------------------------------------
    def _slowdown(self, state: JobState, counts: list[tuple[int, int]]) -> float:
        """How much slower ``state`` runs on ``counts``: the spread factor if it spans more nodes
        than it needs, times the switch factor if it spans more switches than it needs."""
        spec = self.spec
        nodes = -(-state.gpus // spec.gpus_per_node)
        slowdown = 1.0
        if len(counts) > nodes:
            slowdown = state.job.spread_slowdown or self.spread_slowdown
        if self.switch_slowdown != 1.0 and len(counts) > 1:
            switches = len({self.cluster.switch_of(n) for n, _ in counts})
            if switches > -(-nodes // spec.nodes_per_switch):
                slowdown *= self.switch_slowdown
        return slowdown

    def _worse_gpus(self, state: JobState, need: int) -> int | None:
        """GPUs held by running jobs with worse keys than ``state``, counted up to ``need``.

        Reads the running heap in place instead of popping it: the walk stops below the first
        key that is not worse, so it costs the number of worse jobs. ``None`` when a job
        :meth:`preempt_for` would look at has a key that changed since it was queued (it must
        then refresh it, so the caller takes the popping path).
        """
        heap, bound, now, key_of = self._running, tuple([-x for x in state.key]), self.now, self.policy.key
        size, found, stack, frontier = len(heap), 0, [0], []
        while stack:
            i = stack.pop()
            if i >= size:
                continue
            entry = heap[i]
            if not entry[0] < bound:
                frontier.append((entry[:2], i))
                continue
            _, _, job, rank = entry
            if rank == job.rank and job.running:
                if key_of(job, now) != job.key:
                    return None
                found += job.gpus
                if found >= need:
                    return found
            stack += (2 * i + 1, 2 * i + 2)
        # preempt_for stops at the first live job that is not worse: its key must be current too
        heapq.heapify(frontier)
        while frontier:
            _, i = heapq.heappop(frontier)
            _, _, job, rank = heap[i]
            if rank == job.rank and job.running:
                return found if key_of(job, now) == job.key else None
            for child in (2 * i + 1, 2 * i + 2):
                if child < size:
                    heapq.heappush(frontier, (heap[child][:2], child))
        return found

    def _push_waiting(self, state: JobState) -> None:
        now = self.now
        state.key = self.policy.key(state, now)
        heap = self._waiting.setdefault(state.gpus, [])
        heapq.heappush(heap, (state.key, next(self._seq), state, state.version))
        when = self.policy.next_wait_change(state, now)
        if when is not None and when > now:
            heapq.heappush(self._wait_timers, (when, next(self._seq), state, state.version))

    def _push_running(self, state: JobState) -> None:
        """Give a running job a fresh key: one valid running-queue entry per job, old ones go stale."""
        now = self.now
        state.key = key = self.policy.key(state, now)
        state.rank += 1
        heapq.heappush(self._running, (tuple([-x for x in key]), next(self._seq), state, state.rank))
        if len(self._running) > 2 * self._n_running + 64:  # mostly stale entries: compact
            self.running_states()
        when = self.policy.next_key_change(state, now)
        if when is not None and now < when < state.finish_at:
            heapq.heappush(self._timers, (when, next(self._seq), state, state.rank))

    def _stop(self, state: JobState) -> None:
        now = self.now
        held = now - state.started
        progress = max(0.0, held - state.overhead) / state.slowdown
        state.remaining = max(0.0, state.remaining - progress)
        state.attained += state.gpus * held
        state.executed += held
        self.segments.append(Segment(state.index, state.started, now, tuple(state.gpu_ids),
                                     min(state.overhead, held), progress, state.slowdown))
        self.cluster.release(state.gpu_ids)
        self._n_running -= 1
        state.gpu_ids, state.running, state.finish_at = [], False, math.inf
        state.version += 1

    def _rekey(self) -> None:
        self.policy.on_rekey(self.now)
        waiting = [e[2] for heap in self._waiting.values() for e in heap
                   if e[3] == e[2].version and not e[2].running]
        self._waiting = {}
        for state in waiting:
            self._push_waiting(state)
        running = self.running_states()
        self._running = []
        for state in running:
            self._push_running(state)

    def _next_time(self) -> float:
        t = math.inf
        if self._next_arrival < len(self.states):
            t = self.states[self._next_arrival].job.arrival
        heap = self._completions
        while heap and heap[0][3] != heap[0][2].version:
            heapq.heappop(heap)
        if heap:
            t = min(t, heap[0][0])
        if self._active > self._n_running:  # timers matter only while someone waits
            heap = self._timers
            while heap and (heap[0][3] != heap[0][2].rank or not heap[0][2].running):
                heapq.heappop(heap)
            if heap:
                t = min(t, heap[0][0])
            heap = self._wait_timers
            while heap and (heap[0][3] != heap[0][2].version or heap[0][2].running):
                heapq.heappop(heap)
            if heap:
                t = min(t, heap[0][0])
        return t

    def _process(self, now: float) -> list[JobState] | None:
        """Apply what is due at ``now``. Returns the running jobs re-keyed by their timers when
        that is all that happened, ``None`` when a job arrived, finished or changed while waiting."""
        changed = False
        while self._completions and self._completions[0][0] <= now:
            _, _, state, version = heapq.heappop(self._completions)
            if version == state.version:
                self._stop(state)
                state.remaining, state.finish = 0.0, now
                self._active -= 1
                self.policy.on_finish(state, now)
                changed = True
        states = self.states
        while self._next_arrival < len(states) and states[self._next_arrival].job.arrival <= now:
            state = states[self._next_arrival]
            self._next_arrival += 1
            self._active += 1
            self.policy.on_arrival(state, now)
            self._push_waiting(state)
            changed = True
        rekeyed = []
        if self._active > self._n_running:  # due timers, some left due while nothing waited
            timers = self._timers
            while timers and timers[0][0] <= now:
                _, _, state, rank = heapq.heappop(timers)
                if rank == state.rank and state.running:
                    self.policy.on_timer(state, now)
                    self._push_running(state)
                    rekeyed.append(state)
            timers = self._wait_timers
            while timers and timers[0][0] <= now:
                _, _, state, version = heapq.heappop(timers)
                if version == state.version and not state.running:
                    self.policy.on_timer(state, now)
                    state.version += 1  # its old place in the waiting queue goes stale
                    self._push_waiting(state)
                    changed = True
        return None if changed else rekeyed

    def _pass_needed(self, rekeyed: list[JobState]) -> bool:
        """Whether a scheduling pass can change anything after only ``rekeyed`` running jobs' keys
        got worse: the last pass left nothing to start, so only a waiting job that now beats one
        of them can act (the default pass; a policy's own ``schedule`` always runs)."""
        if type(self.policy).schedule is not Policy.schedule:
            return True
        best = self.best_waiting()
        return best is not None and any(best.key < state.key for state in rekeyed)

    def _loop(self, env: simpy.Environment):
        interval = self.policy.rekey_interval
        next_rekey = interval if interval else math.inf
        samples = self.samples
        while self._active or self._next_arrival < len(self.states):
            t = min(self._next_time(), next_rekey)
            if t == math.inf:
                raise RuntimeError(f"policy {self.policy.name!r} left {self._active} jobs waiting on "
                                   f"an idle cluster with nothing left to happen")
            if t > env.now:
                yield env.timeout(t - env.now)
            self.now = t
            rekeyed = self._process(t)
            self.events += 1
            if t >= next_rekey:
                self._rekey()
                next_rekey = t + interval
            elif rekeyed is not None and not self._pass_needed(rekeyed):
                continue
            self.policy.schedule(self, t)
            samples["time"].append(t)
            samples["busy"].append(self.spec.gpus - self.cluster.free_gpus)
            samples["queued"].append(self._active - self._n_running)
            samples["fragmentation"].append(self.cluster.fragmentation())

    def run(self) -> Result:
        """Run to the last completion and return the :class:`Result`."""
        self.policy.attach(self)
        env = simpy.Environment()
        env.process(self._loop(env))
        env.run()
        return Result(self)


def simulate(trace: Trace | list[Job], spec: ClusterSpec, policy: Policy | str, **options) -> Result:
    """Run one simulation; ``policy`` may be a name from :data:`simulators.scheduling.POLICIES`."""
    if isinstance(policy, str):
        from .policies import make_policy

        policy = make_policy(policy)
    return Simulation(trace, spec, policy, **options).run()
