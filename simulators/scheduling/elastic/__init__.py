"""Elastic scheduling: jobs whose GPUs and batch sizes change while they run (Pollux, Optimus).

The Pollux artifact's eight 160-job workloads replay on its 64-GPU cluster under three policies,
with throughput and statistical efficiency from the artifact's own measurements::

    from simulators.scheduling.elastic import Pollux, read_workload, replay
    policy = Pollux()
    result = replay(read_workload(6, policy), policy)
    result.summary()["avg_jct"]                      # seconds; artifact_jcts("pollux", 6) to compare
"""

from __future__ import annotations

import csv

from ...data import data_path, open_text
from .application import Application, load_application
from .job import ElasticJob
from .policies import ElasticPolicy, Optimus, Pollux, Tiresias
from .simulator import ElasticResult, read_workload, replay

POLICIES: dict[str, type[ElasticPolicy]] = {cls.name: cls for cls in (Pollux, Optimus, Tiresias)}


def artifact_jcts(policy: str, workload: int) -> dict[str, float]:
    """Job completion times (s) the Pollux artifact's own simulator gave ``policy`` on ``workload``
    at the default job load (see the SOURCE note of ``traces/pollux_philly``)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; expected one of {sorted(POLICIES)}")
    with open_text(data_path("traces/pollux_philly/results/jobload-1.0.csv")) as handle:
        jcts = {row["job"]: float(row["jct"]) for row in csv.DictReader(handle)
                if row["policy"] == policy and int(row["workload"]) == workload}
    if not jcts:
        raise ValueError(f"the artifact has workloads 1 to 8, got {workload}")
    return jcts


__all__ = ["POLICIES", "Application", "ElasticJob", "ElasticPolicy", "ElasticResult", "Optimus",
           "Pollux", "Tiresias", "artifact_jcts", "load_application", "read_workload", "replay"]
