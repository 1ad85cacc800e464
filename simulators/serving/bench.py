"""Serving scenarios for ``mlsys bench sim``: a million requests through the batching simulator,
and an LLM replica under continuous batching with paged KV memory.

The full run serves 1,000,000 Poisson requests (3,000/s on 2 replicas, batches of up to 16
within 2 ms) and 5,000 LLM requests; ``quick`` serves 20,000 and 500. The simulator's own
events are its batcher's wake-ups (arrivals cost none of their own: see
:mod:`simulators.serving.simulator`).
"""

from __future__ import annotations

import time
from typing import Any

from mlsys.serve.loadgen import poisson_arrivals
from mlsys.serve.policy import MaxSizeMaxWait

from .llm import simulate_llm, synthetic_requests
from .service import Affine
from .simulator import simulate


def scenarios(quick: bool = False) -> list[dict[str, Any]]:
    """One row per scenario: events, simulated time, wall time, events and requests per second."""
    n = 20_000 if quick else 1_000_000
    arrivals = poisson_arrivals(3000.0, n, seed=0)
    start = time.perf_counter()
    result = simulate(arrivals, MaxSizeMaxWait(16, 0.002), Affine(0.0005, 0.0001), replicas=2, seed=0)
    wall = time.perf_counter() - start
    rows = [{"family": "serving", "scenario": f"batching {n:,} requests, 2 replicas",
             "events": result.events, "simulated_s": float(arrivals[-1]), "wall_s": wall,
             "events_per_s": result.events / wall, "requests_per_s": n / wall}]
    m = 500 if quick else 5_000
    requests = synthetic_requests(m, 8.0, prompt_mean=256, output_mean=256, seed=0)
    start = time.perf_counter()
    llm = simulate_llm(requests, "llama2-13b", "A100", batching="continuous", kv="paged")
    wall = time.perf_counter() - start
    rows.append({"family": "serving", "scenario": f"llm {m:,} requests, continuous + paged",
                 "events": len(llm.iterations), "simulated_s": float(llm.finish.max()),
                 "wall_s": wall, "events_per_s": len(llm.iterations) / wall,
                 "requests_per_s": m / wall})
    return rows
