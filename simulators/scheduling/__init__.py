"""GPU-cluster scheduling on job traces: cluster, jobs, trace readers, policies, metrics.

``simulate(trace, ClusterSpec(...), "las")`` replays a trace under a policy and returns a
:class:`Result` (per-job times, the GPU segment log, conservation checks, a Chrome trace).
Two more simulators share the traces: :mod:`.elastic` (jobs whose GPUs and batch sizes change:
Pollux, Optimus, Tiresias on the Pollux artifact's workloads) and :mod:`.hetero` (K80/P100/V100
clusters under Gavel's heterogeneity-aware policies).
"""

from .cluster import Cluster, ClusterSpec
from .job import Job, Trace
from .metrics import (
                      finish_time_fairness,
                      jain_index,
                      plot_jct_cdf,
                      summarize,
                      utilization,
                      utilization_series,
)
from .placement import PLACEMENTS, get_placement
from .policies import POLICIES, Policy, make_policy
from .result import Result, Segment
from .simulator import JobState, Simulation, simulate
from .traces import FORMATS, TraceError, read_trace, synthetic_trace

__all__ = ["Cluster", "ClusterSpec", "FORMATS", "Job", "JobState", "PLACEMENTS", "POLICIES", "Policy",
           "Result", "Segment", "Simulation", "Trace", "TraceError", "finish_time_fairness",
           "get_placement", "jain_index", "make_policy", "plot_jct_cdf", "read_trace", "simulate",
           "summarize", "synthetic_trace", "utilization", "utilization_series"]
