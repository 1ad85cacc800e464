"""Serving the engine's models: an HTTP inference server with dynamic batching and replicas.

* :mod:`~mlsys.serve.policy` — batching policies, shared with :mod:`simulators.serving`;
* :mod:`~mlsys.serve.server` — the Starlette/uvicorn app (``mlsys serve``), its
  :mod:`~mlsys.serve.batcher`, :mod:`~mlsys.serve.replicas` (worker processes) and
  :mod:`~mlsys.serve.metrics` (Prometheus);
* :mod:`~mlsys.serve.protocol` — the Open Inference Protocol's JSON, validated;
* :mod:`~mlsys.serve.process` — a server in its own process, for notebooks and tests;
* :mod:`~mlsys.serve.loadgen` — open- and closed-loop load with latency percentiles
  (``mlsys bench serve``).
"""

from .loadgen import LoadResult, closed_loop, digit_payloads, open_loop, poisson_arrivals
from .policy import BatchPolicy, Decision, MaxSizeMaxWait, NoBatching, QueueState, dispatch, wait
from .process import ServerProcess

__all__ = ["BatchPolicy", "Decision", "MaxSizeMaxWait", "NoBatching", "QueueState", "dispatch",
           "wait", "ServerProcess", "LoadResult", "open_loop", "closed_loop", "digit_payloads",
           "poisson_arrivals"]
