"""The server's Prometheus metrics, in a registry of its own (so several servers can coexist).

``GET /metrics`` returns them in Prometheus's text exposition format; the names follow its
conventions (``_total`` counters, ``_seconds`` units, cumulative ``_bucket`` histograms).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["ServerMetrics", "CONTENT_TYPE_LATEST", "LATENCY_BUCKETS"]

# seconds: 250 us to 10 s, roughly x2 per bucket
LATENCY_BUCKETS = (0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256,
                   0.512, 1.0, 2.0, 5.0, 10.0)


class ServerMetrics:
    """Request counts by status, latencies, queue waits, batch sizes and replica compute times."""

    def __init__(self, max_batch_size: int) -> None:
        self.registry = CollectorRegistry()
        sizes = [1]
        while sizes[-1] < max_batch_size:
            sizes.append(min(2 * sizes[-1], max_batch_size))
        self.requests = Counter("mlsys_requests", "Inference requests by HTTP status code",
                                ["code"], registry=self.registry)
        self.latency = Histogram("mlsys_request_latency_seconds",
                                 "Time from receiving a request to sending its reply",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.queue_wait = Histogram("mlsys_queue_wait_seconds",
                                    "Time a request waited in the batcher's queue",
                                    buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("mlsys_batch_size", "Requests per batch sent to a replica",
                                    buckets=sizes, registry=self.registry)
        self.compute = Histogram("mlsys_batch_compute_seconds",
                                 "Time a replica's model took for one batch",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("mlsys_queue_depth", "Requests waiting in the batcher's queue",
                                 registry=self.registry)
        self.busy_replicas = Gauge("mlsys_replicas_busy", "Replicas running a batch",
                                   registry=self.registry)
        self.replicas = Gauge("mlsys_replicas", "Replicas started", registry=self.registry)

    def render(self) -> bytes:
        """All metrics in the Prometheus text format."""
        return generate_latest(self.registry)
