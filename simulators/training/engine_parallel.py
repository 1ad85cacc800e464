"""Predict the real engine's tensor-parallel, pipeline, ZeRO and parameter-server runs.

The pattern of :func:`simulators.training.engine.predict_engine_ddp`, for the strategies of
:mod:`mlsys.parallel`: each real run is profiled on this machine's processes
(:mod:`mlsys.parallel.profile`), and the simulator composes the measured parts by the strategy's
own rule:

* tensor parallelism, ZeRO, and data parallelism without overlap: every collective blocks the
  step (as Megatron-LM's tensor-parallel all-reduces do, :mod:`.tensor_parallel`), so the step
  is the compute alone plus each collective alone;
* a pipeline: the schedule runs on SimPy devices (:func:`.pipeline.run_pipeline`) with each
  slot's measured compute and one activation's measured transfer;
* a parameter server: the SSP rule on SimPy workers (:func:`.parameter_server.simulate_parameter_server`)
  with each worker's measured iteration times and the measured transfer of a slice.

On a machine with fewer cores than processes, ranks take turns on the cores: the real step then
includes waiting for a core, which no part measured alone contains (see the chapter).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mlsys.comm.ps import WorkerReport
from mlsys.parallel.profile import PipelineProfile, StepProfile
from mlsys.parallel.schedules import build
from simulators.core import Recorder

from .parameter_server import ParameterServerConfig, ParameterServerResult, simulate_parameter_server
from .pipeline import run_pipeline

__all__ = ["Prediction", "predict_step", "predict_pipeline", "real_pipeline_timeline",
           "predict_parameter_server", "real_parameter_server_timeline"]


@dataclass(frozen=True)
class Prediction:
    """A real run's measured seconds next to the simulator's prediction from its parts."""

    strategy: str
    world_size: int
    measured: float
    predicted: float

    @property
    def error(self) -> float:
        """Relative error (positive: the simulator is slower than reality)."""
        return self.predicted / self.measured - 1


def predict_step(profile: StepProfile, strategy: str) -> Prediction:
    """A step whose collectives block it: the compute alone plus every collective alone."""
    return Prediction(strategy, profile.world_size, profile.measured,
                      profile.compute + float(np.sum(profile.comm)))


def predict_pipeline(profile: PipelineProfile, recorder: Recorder | None = None) -> Prediction:
    """The schedule on simulated devices with the measured slot times and transfer, then the
    slowest device's optimizer step."""
    schedule = build(profile.schedule, profile.world_size, profile.microbatches,
                     profile.chunks_per_device)
    run = run_pipeline(schedule, lambda slot: profile.slot_seconds[slot.chunk, slot.phase],
                       profile.p2p, recorder)
    name = f"PP {profile.schedule}" + (f" v={profile.chunks_per_device}"
                                       if profile.chunks_per_device > 1 else "")
    return Prediction(name, profile.world_size, profile.measured, run.makespan + profile.optimizer)


def real_pipeline_timeline(profile: PipelineProfile) -> Recorder:
    """The measured round as events named like the simulator's (same Chrome-trace format)."""
    recorder = Recorder()
    for device, phase, chunk, microbatch, start, end in profile.timeline:
        recorder.record(f"{phase}{microbatch}", f"stage {device}", start, end, category=phase,
                        group="pipeline", chunk=chunk)
    return recorder


def predict_parameter_server(workers: Sequence[WorkerReport], mode: str, staleness: int,
                             servers: int, transfer: float,
                             model_bytes: float) -> tuple[Prediction, ParameterServerResult]:
    """The SSP rule on simulated workers with each worker's measured iteration times and a
    slice's measured ``transfer`` seconds; compares the time until the last worker finishes."""
    iterations = len(workers[0].compute)
    config = ParameterServerConfig(
        workers=len(workers), mode=mode, staleness=staleness, servers=servers,
        iteration_times=tuple(tuple(w.compute) for w in workers), iterations=iterations,
        model_bytes=model_bytes, bandwidth=model_bytes / servers / max(transfer, 1e-9), latency=0.0)
    result = simulate_parameter_server(config)
    measured = max(w.ends[-1] for w in workers)
    return Prediction(f"PS {mode} ({servers} servers)", len(workers) + servers, measured,
                      result.makespan), result


def real_parameter_server_timeline(workers: Sequence[WorkerReport]) -> Recorder:
    """The measured iterations as events named like the simulator's (same Chrome-trace format):
    each worker's compute, from the moment the first worker started."""
    recorder, origin = Recorder(), min(w.start for w in workers)
    for w in workers:
        for k, (began, computed, *_) in enumerate(w.times):
            recorder.record(f"iter {k}", f"worker {w.worker}", began - origin, computed - origin,
                            category="compute", group="workers")
    return recorder
