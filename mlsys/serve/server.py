"""The inference server: a Starlette app served by uvicorn, in front of the batcher and replicas.

Endpoints (the Open Inference Protocol's, as Triton and KServe expose them):

* ``POST /v2/models/<model>/infer`` — predictions (see :mod:`mlsys.serve.protocol`);
* ``GET /v2/models/<model>`` — the model's inputs and outputs;
* ``GET /v2/health/live`` and ``GET /v2/health/ready`` — liveness, and readiness (every replica up);
* ``GET /metrics`` — Prometheus text (requests by status, latency and batch-size histograms).

Each reply carries a ``Server-Timing`` header: the request's queue wait, the time its batch held
a replica, the model's compute time, the batch size and when the request reached the batcher.
A bad request gets a 4xx and ``{"error": "<one-line reason>"}``; it is refused before it reaches
a replica. A full queue gets 503 with ``Retry-After``. Ctrl-C (SIGINT) or SIGTERM lets the requests
in flight finish, then stops the replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import models
from .batcher import Batcher, PolicyError, QueueFull, Timing
from .metrics import CONTENT_TYPE_LATEST, ServerMetrics
from .policy import BatchPolicy, MaxSizeMaxWait
from .protocol import INPUT_NAME, BadRequest, encode_infer_response, parse_infer_request
from .replicas import ReplicaError, ReplicaPool

__all__ = ["ServeConfig", "create_app", "prepare_checkpoint", "run_server"]


@dataclass(frozen=True)
class ServeConfig:
    """Everything a server is started with (validated on construction)."""

    model: str = "digits-mlp"
    replicas: int = 1
    policy: BatchPolicy = field(default_factory=MaxSizeMaxWait)
    max_queue: int = 256
    max_rows: int = 64  # rows one request may carry
    max_body_bytes: int = 1 << 20
    threads: int = 1  # BLAS threads per replica

    def __post_init__(self) -> None:
        models.model_spec(self.model)
        for name in ("replicas", "max_queue", "max_rows", "max_body_bytes", "threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ServeConfig: {name} must be a positive integer, got {value!r}")
        if not isinstance(self.policy, BatchPolicy):
            raise TypeError(f"ServeConfig: policy must be a BatchPolicy, got {self.policy!r}")


def prepare_checkpoint(model: str, path: str | Path | None = None, epochs: int | None = None) -> Path:
    """A checkpoint of ``model`` for the replicas to load.

    An existing ``path`` is used as it is; otherwise the model is trained here (seeded, a few
    seconds) and saved to ``path``, or to a temporary file when ``path`` is None.
    """
    if path is not None and Path(path).is_file():
        return Path(path)
    model_weights = models.train(model, epochs=epochs)
    if path is None:
        handle, name = tempfile.mkstemp(prefix=f"mlsys-{model}-", suffix=".npz")
        os.close(handle)
        path = name
    return models.save(model_weights, path)


def server_timing(timing: Timing) -> str:
    """The W3C ``Server-Timing`` header value: durations in ms (shown by browsers' dev tools),
    the batch size, and the arrival time at the batcher in seconds of the machine's monotonic
    clock (``time.monotonic``, shared by every process on the machine: the load generator
    places each request's arrival on its own timeline with it)."""
    return (f"queue;dur={timing.queue * 1e3:.4f}, replica;dur={timing.replica * 1e3:.4f}, "
            f"compute;dur={timing.compute * 1e3:.4f}, batch;desc={timing.batch}, "
            f"arrival;desc={timing.arrival:.6f}")


def _json(payload: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(payload), status, headers, media_type="application/json")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest(400, f"Content-Length must be a number of bytes, got {declared!r}")
        if int(declared) > limit:
            raise BadRequest(413, f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(config: ServeConfig, checkpoint: str | Path) -> Starlette:
    """The Starlette app serving ``config.model`` from ``checkpoint`` (replicas start with it)."""
    metrics = ServerMetrics(config.policy.max_batch_size)
    live: dict[str, object] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool = ReplicaPool(config.model, checkpoint, config.replicas, config.threads)
        await asyncio.to_thread(pool.start)
        batcher = Batcher(config.policy, pool, config.max_queue, metrics)
        pool.attach(asyncio.get_running_loop(), batcher.poke)
        task = asyncio.get_running_loop().create_task(batcher.run())
        metrics.replicas.set(pool.size)
        live.update(pool=pool, batcher=batcher)
        try:
            yield
        finally:
            batcher.close()
            await task
            pool.close()

    async def infer(request: Request) -> Response:
        start = time.perf_counter()
        try:
            name = request.path_params["model"]
            if name != config.model:
                raise BadRequest(404, f"unknown model {name!r}; this server serves {config.model!r}")
            rows = parse_infer_request(await _read_body(request, config.max_body_bytes),
                                       models.FEATURES, config.max_rows)
            logits, timing = await live["batcher"].submit(rows)  # type: ignore[union-attr]
            response = Response(encode_infer_response(config.model, logits),
                                headers={"Server-Timing": server_timing(timing)},
                                media_type="application/json")
        except BadRequest as error:
            response = _json({"error": error.reason}, error.status)
        except QueueFull as error:
            response = _json({"error": str(error)}, 503, {"Retry-After": "1"})
        except (ReplicaError, PolicyError) as error:
            response = _json({"error": str(error)}, 500)
        metrics.requests.labels(str(response.status_code)).inc()
        metrics.latency.observe(time.perf_counter() - start)
        return response

    async def model_metadata(request: Request) -> Response:
        name = request.path_params["model"]
        if name != config.model:
            return _json({"error": f"unknown model {name!r}; this server serves {config.model!r}"}, 404)
        return _json({"name": config.model, "platform": "mlsys",
                      "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, models.FEATURES]}],
                      "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, models.CLASSES]},
                                  {"name": "label", "datatype": "INT64", "shape": [-1]}]})

    async def health_live(request: Request) -> Response:
        return _json({"live": True})

    async def health_ready(request: Request) -> Response:
        pool = live.get("pool")
        ready = isinstance(pool, ReplicaPool) and pool.alive()
        return _json({"ready": ready}, 200 if ready else 503)

    async def prometheus(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[
        Route("/v2/models/{model}/infer", infer, methods=["POST"]),
        Route("/v2/models/{model}", model_metadata, methods=["GET"]),
        Route("/v2/health/live", health_live, methods=["GET"]),
        Route("/v2/health/ready", health_ready, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
    ], lifespan=lifespan)


class _AnnouncingServer(uvicorn.Server):
    """uvicorn's server, printing one line with the address once it accepts requests."""

    def __init__(self, config: uvicorn.Config, banner: str) -> None:
        super().__init__(config)
        self.banner = banner

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            print(self.banner, flush=True)


def run_server(config: ServeConfig, host: str = "127.0.0.1", port: int = 8000,
               checkpoint: str | Path | None = None) -> None:
    """Serve until Ctrl-C or SIGTERM. ``port=0`` picks a free port (printed on start)."""
    # proto=IPPROTO_TCP: asyncio turns Nagle's algorithm off only on sockets that say they are
    # TCP; with it on, a reply's body waits ~40 ms for the client's delayed ACK of its headers.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM,
                         socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    path: Path | None = None
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if in_main else None
    try:
        path = prepare_checkpoint(config.model, checkpoint)
        bound = sock.getsockname()[1]
        banner = (f"mlsys serve: {config.model} on http://{host}:{bound} ({config.replicas} "
                  f"replica(s), {config.policy.name}, queue {config.max_queue}); Ctrl-C stops")
        server = _AnnouncingServer(uvicorn.Config(create_app(config, path), log_level="warning",
                                                  access_log=False, timeout_graceful_shutdown=10),
                                   banner)
        # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal: let that
        # end here (KeyboardInterrupt, or a no-op for SIGTERM) so the clean-up below still runs.
        if in_main:
            signal.signal(signal.SIGTERM, lambda *_: None)
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # Ctrl-C, during training or after serving
        pass
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        sock.close()
        if checkpoint is None and path is not None:
            path.unlink(missing_ok=True)
    print("mlsys serve: stopped", file=sys.stderr, flush=True)
