"""Serving systems, simulated: queueing with dynamic batching, and large-model (LLM) serving.

* :mod:`~simulators.serving.simulator` — arrivals, a bounded queue, a batching policy (the same
  objects as :mod:`mlsys.serve.policy`), replicas with a batch-size-dependent service time, and
  autoscaling with a start-up delay, on SimPy;
* :mod:`~simulators.serving.service` — service-time models, measured from the engine;
* :mod:`~simulators.serving.closed_forms` — M/M/1, M/D/1, M/G/1 and M/M/c (Erlang C);
* :mod:`~simulators.serving.validate` — the simulator next to the real server on this machine;
* :mod:`~simulators.serving.llm` — KV-cache memory, static vs continuous batching, paged KV.
"""

from .closed_forms import erlang_c, md1_wait, mg1_wait, mm1_sojourn_quantile, mm1_wait, mmc_wait
from .service import Affine, Deterministic, Empirical, Exponential, ServiceModel, measure_engine
from .simulator import Autoscaler, ServingResult, simulate

__all__ = ["simulate", "ServingResult", "Autoscaler", "ServiceModel", "Deterministic", "Exponential",
           "Affine", "Empirical", "measure_engine", "mm1_wait", "md1_wait", "mg1_wait", "mmc_wait",
           "erlang_c", "mm1_sojourn_quantile"]
