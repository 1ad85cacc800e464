"""Megatron-style tensor parallelism inside one layer, kernel by kernel.

Each kernel of a layer's forward and backward pass (:func:`~.costs.layer_forward`) runs in turn;
the all-reduces block the compute stream, as in Megatron-LM of 2021 (before sequence parallelism
and communication overlap, which :func:`~.hybrid.simulate` models), so their time adds to the
layer's.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulators.core import Recorder

from .config import Cluster, TransformerConfig
from .costs import COLLECTIVES, backward_of, layer_forward, op_time


@dataclass(frozen=True)
class LayerTiming:
    """Seconds one layer's forward plus backward spends computing and communicating."""

    compute: float
    communication: float

    @property
    def total(self) -> float:
        return self.compute + self.communication

    @property
    def communication_fraction(self) -> float:
        return self.communication / self.total


def layer_timeline(model: TransformerConfig, tp: int, cluster: Cluster | None = None, *,
                   micro_batch: int = 1, dtype: str = "bf16",
                   recorder: Recorder | None = None) -> LayerTiming:
    """Time one layer's forward and backward on one of ``tp`` GPUs, recording every kernel."""
    cluster = cluster or Cluster()
    if model.heads % tp:
        raise ValueError(f"model.heads={model.heads} must be divisible by tp={tp}")
    fwd = layer_forward(model, micro_batch, tp)
    now = compute = comm = 0.0
    for op in fwd + backward_of(fwd):
        if op.kind == "identity":  # Megatron's f: nothing to do in the forward pass
            continue
        dt = op_time(op, cluster, tp, dtype)
        if recorder is not None:
            resource = "link" if op.kind in COLLECTIVES else "compute"
            recorder.record(op.name, f"tp={tp} {resource}", now, now + dt, category=op.kind,
                            group=f"tp={tp}")
        now += dt
        if op.kind in COLLECTIVES:
            comm += dt
        else:
            compute += dt
    return LayerTiming(compute, comm)
