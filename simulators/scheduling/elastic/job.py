"""An elastic training job: its progress epoch by epoch under changing GPUs and batch sizes.

A job trains for its application's epochs. While it holds GPUs it advances at its goodput
(:mod:`.goodput`), computed from the measured step time of its placement and the gradient
statistics of its current epoch and batch size; at each epoch boundary, and whenever its GPUs
change, it picks its batch size again. Each change of GPUs costs ``restart`` seconds of
checkpoint-restore before it makes progress (the Pollux artifact uses 30 s).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .application import Application
from .goodput import best_config, fixed_goodput, split_batch


@dataclass(eq=False)
class ElasticJob:
    """One job of a workload. ``batch_size`` fixed (Optimus, Tiresias) or ``None`` (Pollux
    chooses); ``gpus`` the fixed GPU count a non-elastic scheduler gives it (Tiresias);
    ``max_gpus`` a cap an elastic scheduler respects."""

    name: str
    app: Application
    arrival: float
    gpus: int | None = None
    batch_size: int | None = None
    max_gpus: int | None = None
    placement: tuple[int, ...] = ()          # replicas per node it holds (empty: none)
    nodes: tuple[int, ...] = ()              # the node of each replica
    progress: float = 0.0                    # steps at the smallest batch size, done
    epoch: int = 0
    finish: float | None = None
    attained: float = 0.0                    # GPU-seconds held
    restarts: int = 0                        # reallocations after the first start
    started: bool = False
    most_replicas: int = 0                   # largest allocation run so far (Pollux explores)
    restoring: float = 0.0                   # restore seconds left before progress resumes
    current_batch: int = 0
    history: list[tuple[float, int, int]] = field(default_factory=list)  # (time, GPUs, batch)

    @property
    def replicas(self) -> int:
        return sum(self.placement)

    def grad(self, batch_size: int | None = None) -> tuple[float, float]:
        """Gradient statistics the job observes in its current epoch at ``batch_size``."""
        size = batch_size or self.current_batch or self.app.init_batch_size
        return self.app.grad_stats(size, min(self.epoch, self.app.max_epochs - 1))

    def choose_batch(self) -> int:
        """The total batch size for the current placement and epoch."""
        app, replicas = self.app, self.replicas
        if self.batch_size is not None:
            atomic, accum = split_batch(app, self.batch_size, replicas)
            return replicas * atomic * (accum + 1)
        if not self.started:  # nothing measured yet: the smallest batch these GPUs can run
            atomic, accum = split_batch(app, max(app.init_batch_size, app.min_local_bsz * replicas),
                                        replicas)
            return replicas * atomic * (accum + 1)
        return best_config(app, self.placement, self.grad())[1]

    def goodput(self) -> float:
        """Steps-at-the-smallest-batch per second at the current placement and batch size."""
        return fixed_goodput(self.app, self.placement, self.current_batch, self.grad())

    def reallocate(self, nodes: tuple[int, ...], now: float, restart: float) -> None:
        """Move to ``nodes`` (one entry per replica; empty: stop). A change costs ``restart``."""
        self.nodes = tuple(sorted(nodes))
        counts: dict[int, int] = {}
        for node in self.nodes:
            counts[node] = counts.get(node, 0) + 1
        self.placement = tuple(counts.values())
        if not self.nodes:
            self.current_batch = 0
            self.history.append((now, 0, 0))
            return
        if self.started:
            self.restarts += 1
        self.restoring = restart
        self.most_replicas = max(self.most_replicas, self.replicas)
        self.current_batch = self.choose_batch()
        self.history.append((now, self.replicas, self.current_batch))

    def advance(self, now: float, seconds: float) -> None:
        """Run ``seconds`` from ``now`` on the current placement; sets ``finish`` when done."""
        if not self.placement or self.finish is not None:
            return
        self.started = True
        held = self.replicas
        delay = min(self.restoring, seconds)
        self.restoring -= delay
        self.attained += delay * held
        now, seconds = now + delay, seconds - delay
        app = self.app
        while seconds > 0 and self.finish is None:
            rate = self.goodput()
            target = app.progress_at(self.epoch + 1)
            if self.progress + rate * seconds < target:
                self.progress += rate * seconds
                self.attained += seconds * held
                return
            spent = (target - self.progress) / rate
            self.progress, self.epoch = target, self.epoch + 1
            self.attained += spent * held
            now, seconds = now + spent, seconds - spent
            if self.epoch >= app.max_epochs:
                self.finish = now
                return
            self.current_batch = self.choose_batch()  # the noise scale grows: re-pick the batch

