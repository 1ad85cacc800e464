"""The serving simulator next to the real server, on this machine, in one run.

:func:`compare_with_server` starts the real server (its own process, loopback port), measures
its capacity (closed loop), offers open-loop Poisson load at a fraction of it, and then replays the
*same arrival times* through the simulator with the same policy and replica count. Two
simulations are reported:

* **calibrated in the run**: the requests arrive at the simulated batcher when they reached the
  real one, batches hold a replica as long as the real batches sent at that moment did, and each
  request's time outside the batcher (the client, HTTP, parsing, the reply) is added as measured
  (all from the server's ``Server-Timing`` headers). What the simulator itself decides is the
  queueing and batching: when each batch is sent, how large it is, on which replica;
* **predicted from the engine alone**: service times from timing the model in this process
  (:func:`~simulators.serving.service.measure_engine`) and a fixed overhead from a one-at-a-time
  run. On a quiet machine the two agree; on a busy one the gap shows how much of the latency is
  CPU contention that no engine benchmark sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlsys.serve import ServerProcess, closed_loop, open_loop
from mlsys.serve.loadgen import LoadResult
from mlsys.serve.policy import MaxSizeMaxWait

from .service import Replayed, ServiceModel, measure_engine
from .simulator import simulate

__all__ = ["Comparison", "served_service_times", "replay_inputs", "compare_with_server"]


@dataclass
class Comparison:
    """One real run and its simulations (latencies in seconds, from actual send to reply)."""

    real: np.ndarray
    calibrated: np.ndarray
    engine_only: np.ndarray
    offered_rps: float
    capacity_rps: float
    mean_batch_real: float
    mean_batch_sim: float

    def rows(self) -> list[dict]:
        """Mean and p99 (ms) of each, and the simulations' relative errors."""
        def stats(x: np.ndarray) -> tuple[float, float]:
            return float(x.mean() * 1e3), float(np.percentile(x, 99) * 1e3)

        real_mean, real_p99 = stats(self.real)
        rows = [{"latency": "real server", "mean_ms": real_mean, "p99_ms": real_p99,
                 "mean_error": None, "p99_error": None}]
        for label, values in (("simulated, calibrated in the run", self.calibrated),
                              ("simulated, engine benchmark only", self.engine_only)):
            mean, p99 = stats(values)
            rows.append({"latency": label, "mean_ms": mean, "p99_ms": p99,
                         "mean_error": mean / real_mean - 1, "p99_error": p99 / real_p99 - 1})
        return rows


def _served(result: LoadResult) -> np.ndarray:
    """Successful requests that carry the server's timing."""
    return result.ok & np.isfinite(result.timing["replica"]) & np.isfinite(result.timing["arrival"])


def served_service_times(result: LoadResult, curve: ServiceModel) -> Replayed:
    """How long each batch of a load run held its replica and computed (from Server-Timing), in
    time order, with ``curve`` (the engine's cost curve) to rescale compute to other batch sizes.

    Requests of one batch were sent to the replica together (arrival + queue wait) and report
    the same replica and compute times."""
    ok = _served(result)
    held, compute = result.timing["replica"][ok], result.timing["compute"][ok]
    sizes = result.timing["batch"][ok].astype(int)
    sent = result.timing["arrival"][ok] + result.timing["queue"][ok]
    _, first = np.unique(np.stack([held, compute]), axis=1, return_index=True)
    return Replayed(sent[first], sizes[first], held[first], compute[first], curve)


def replay_inputs(result: LoadResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arrival times at the batcher (sorted), each request's time outside the batcher and its
    replica (the client, HTTP, parsing, the reply), and its measured latency, from a load run."""
    ok = _served(result)
    arrival = result.timing["arrival"][ok]
    latency = (result.done - result.sent)[ok]
    inside = result.timing["queue"][ok] + result.timing["replica"][ok]
    order = np.argsort(arrival, kind="stable")
    return arrival[order], np.maximum(latency - inside, 0.0)[order], latency[order]


def compare_with_server(model: str = "digits-mlp", replicas: int = 1, max_batch_size: int = 8,
                        max_wait: float = 0.002, load: float = 0.5, duration: float = 4.0,
                        checkpoint: str | None = None, seed: int = 0) -> Comparison:
    """Run the real server at ``load`` x its measured capacity and simulate the same arrivals."""
    if not 0 < load < 1:
        raise ValueError(f"compare_with_server: load must be in (0, 1), got {load!r}")
    policy = MaxSizeMaxWait(max_batch_size, max_wait)
    sizes = sorted({1, 2, 4, max_batch_size} | {b for b in (8, 16) if b <= max_batch_size})
    engine = measure_engine(model, sizes, samples=30, checkpoint=checkpoint)
    with ServerProcess(model, replicas=replicas, max_batch_size=max_batch_size, max_wait=max_wait,
                       checkpoint=checkpoint) as server:
        capacity = closed_loop(server.url, 8 * max_batch_size * replicas, 1.0,
                               model=model).summary()["throughput_rps"]
        single = closed_loop(server.url, 1, 0.5, model=model)
        run = open_loop(server.url, load * capacity, duration, model=model, seed=seed)
    arrivals, outside, real = replay_inputs(run)
    calibrated = simulate(arrivals, policy, served_service_times(run, engine.curve), replicas,
                          overhead=outside, seed=seed)
    alone = simulate(single.sent, policy, engine, 1, seed=seed)
    fixed = max(float(np.mean(single.done - single.sent) - alone.latency.mean()), 0.0)
    engine_only = simulate(np.sort(run.sent[run.ok]), policy, engine, replicas, overhead=fixed,
                           seed=seed)
    return Comparison(real, calibrated.latency, engine_only.latency, load * capacity, capacity,
                      float(np.nanmean(run.timing["batch"][_served(run)])),
                      float(calibrated.batches[:, 2].mean()))
