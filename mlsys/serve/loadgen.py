"""A load generator: open-loop Poisson arrivals or closed-loop clients, with latency percentiles.

* **Open loop** (:func:`open_loop`): requests are sent at Poisson arrival times whatever the
  server does, as independent users would. Latency counts from each request's *scheduled* send
  time, so a slow server cannot hide its queue by slowing the client down ("coordinated
  omission", Tene 2015); the actual send times are kept too, for replaying in a simulator.
* **Closed loop** (:func:`closed_loop`): ``concurrency`` clients each send a request, wait for
  the reply, and send the next: throughput at a fixed number of requests in flight.

The client is a minimal HTTP/1.1 client on asyncio streams with keep-alive connections, so that
the load generator costs little CPU next to the server it measures.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from .protocol import encode_infer_request

__all__ = ["LoadResult", "open_loop", "closed_loop", "digit_payloads", "poisson_arrivals",
           "parse_server_timing"]


@dataclass
class LoadResult:
    """Per-request records of one load run (times in seconds from the run's start)."""

    mode: str
    scheduled: np.ndarray  # when each request was due (open loop) or sent (closed loop)
    sent: np.ndarray
    done: np.ndarray
    status: np.ndarray  # HTTP status, 0 for a connection error or timeout
    duration: float
    offered_rate: float | None = None
    concurrency: int | None = None
    timing: dict[str, np.ndarray] = field(default_factory=dict)  # Server-Timing; arrival on our clock

    @property
    def ok(self) -> np.ndarray:
        return self.status == 200

    @property
    def latency(self) -> np.ndarray:
        """Seconds from scheduled send to reply, for the successful requests."""
        return (self.done - self.scheduled)[self.ok]

    def summary(self) -> dict[str, float | int | None]:
        """Throughput (successful replies per second), latency percentiles (ms), error counts."""
        lat = self.latency * 1e3
        pct = (lambda q: float(np.percentile(lat, q))) if len(lat) else (lambda q: math.nan)
        return {"mode": self.mode, "offered_rps": self.offered_rate, "concurrency": self.concurrency,
                "requests": int(len(self.status)), "ok": int(self.ok.sum()),
                "rejected_503": int((self.status == 503).sum()),
                "errors": int(((self.status != 200) & (self.status != 503)).sum()),
                "throughput_rps": float(self.ok.sum() / self.duration) if self.duration else 0.0,
                "mean_ms": float(lat.mean()) if len(lat) else math.nan,
                "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99)}


def poisson_arrivals(rate: float, count: int, seed: int = 0) -> np.ndarray:
    """``count`` arrival times (s) of a Poisson process of ``rate`` per second, starting near 0."""
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"poisson_arrivals: rate must be a positive number per second, got {rate!r}")
    if count < 1:
        raise ValueError(f"poisson_arrivals: count must be at least 1, got {count}")
    return np.cumsum(np.random.default_rng(seed).exponential(1.0 / rate, count))


def digit_payloads(count: int = 64, rows: int = 1, seed: int = 0) -> list[bytes]:
    """``count`` request bodies, each ``rows`` digits from the test split, encoded once up front."""
    from ..data import load_digits

    pixels = load_digits("test").arrays[0]
    pick = np.random.default_rng(seed).integers(0, len(pixels), (count, rows))
    return [encode_infer_request(pixels[idx]) for idx in pick]


class _Connection:
    """One keep-alive HTTP/1.1 connection that sends a fixed POST."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def post(self, head: bytes, body: bytes) -> tuple[int, bool, bytes]:
        """Send one request; returns (status, whether the server keeps the connection open, its
        Server-Timing header)."""
        self.writer.write(head + body)
        header = await self.reader.readuntil(b"\r\n\r\n")
        lines = header.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, keep, timing = 0, True, b""
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"server-timing":
                timing = value
            elif name == b"connection" and value.strip().lower() == b"close":
                keep = False
        if length:
            await self.reader.readexactly(length)
        return status, keep, timing

    def close(self) -> None:
        self.writer.close()


class _Client:
    """Up to ``max_connections`` keep-alive connections to one URL, reused across requests."""

    def __init__(self, url: str, max_connections: int, timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"load generator: expected an http:// URL, got {url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.path = parts.path or "/"
        self.timeout = timeout
        self.idle: list[_Connection] = []
        self.slots = asyncio.Semaphore(max_connections)

    def head(self, body: bytes) -> bytes:
        return (f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()

    async def post(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        """(status, Server-Timing header); status 0 for a failed connection or a timeout."""
        async with self.slots:
            conn = self.idle.pop() if self.idle else None
            try:
                if conn is None:
                    conn = _Connection(*await asyncio.open_connection(self.host, self.port))
                status, keep, timing = await asyncio.wait_for(conn.post(head, body), self.timeout)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    asyncio.TimeoutError, ValueError, IndexError):
                if conn is not None:
                    conn.close()
                return 0, b""
            if keep:
                self.idle.append(conn)
            else:
                conn.close()
            return status, timing

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


def _run(coroutine: Coroutine[Any, Any, LoadResult]) -> LoadResult:
    """Run ``coroutine`` to completion, on a thread of its own if this one already runs an event
    loop (a Jupyter kernel does)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _infer_url(url: str, model: str) -> str:
    return f"{url.rstrip('/')}/v2/models/{model}/infer"


def open_loop(url: str, rate: float, duration: float, *, model: str = "digits-mlp",
              payloads: Sequence[bytes] | None = None, seed: int = 0, max_connections: int = 512,
              timeout: float = 30.0, arrivals: np.ndarray | None = None) -> LoadResult:
    """Poisson arrivals at ``rate`` requests/s for ``duration`` s (or the given ``arrivals``)."""
    if arrivals is None:
        if not (math.isfinite(duration) and duration > 0):
            raise ValueError(f"open_loop: duration must be a positive number of seconds, got {duration!r}")
        count = max(1, int(rate * duration * 1.2) + 10)
        arrivals = poisson_arrivals(rate, count, seed)
        arrivals = arrivals[arrivals < duration]
    payloads = list(payloads or digit_payloads(seed=seed))
    return _run(_open_loop(_infer_url(url, model), np.asarray(arrivals, float), payloads,
                                  rate, max_connections, timeout))


async def _open_loop(url: str, arrivals: np.ndarray, payloads: list[bytes], rate: float,
                     max_connections: int, timeout: float) -> LoadResult:
    client = _Client(url, max_connections, timeout)
    heads = [client.head(b) for b in payloads]
    n = len(arrivals)
    sent, done, status = np.zeros(n), np.zeros(n), np.zeros(n, dtype=np.int64)
    loop = asyncio.get_running_loop()
    start = loop.time()

    headers = [b""] * n

    async def one(i: int) -> None:
        k = i % len(payloads)
        sent[i] = loop.time() - start
        status[i], headers[i] = await client.post(heads[k], payloads[k])
        done[i] = loop.time() - start

    tasks = []
    for i, due in enumerate(arrivals):
        delay = due - (loop.time() - start)
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(loop.create_task(one(i)))
    await asyncio.gather(*tasks)
    client.close()
    duration = max(float(arrivals[-1]), 1e-9) if n else 0.0
    timing = parse_server_timing(headers)
    timing["arrival"] -= start  # the server's monotonic clock is this loop's clock
    return LoadResult("open", arrivals.copy(), sent, done, status, duration, offered_rate=rate,
                      timing=timing)


def closed_loop(url: str, concurrency: int, duration: float, *, model: str = "digits-mlp",
                payloads: Sequence[bytes] | None = None, seed: int = 0,
                timeout: float = 30.0) -> LoadResult:
    """``concurrency`` clients sending back to back for ``duration`` seconds."""
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"closed_loop: concurrency must be a positive integer, got {concurrency!r}")
    if not (math.isfinite(duration) and duration > 0):
        raise ValueError(f"closed_loop: duration must be a positive number of seconds, got {duration!r}")
    payloads = list(payloads or digit_payloads(seed=seed))
    return _run(_closed_loop(_infer_url(url, model), concurrency, duration, payloads, timeout))


async def _closed_loop(url: str, concurrency: int, duration: float, payloads: list[bytes],
                       timeout: float) -> LoadResult:
    client = _Client(url, concurrency, timeout)
    heads = [client.head(b) for b in payloads]
    loop = asyncio.get_running_loop()
    start = loop.time()
    records: list[tuple[float, float, int]] = []
    headers: list[bytes] = []

    async def user(u: int) -> None:
        k = u
        while loop.time() - start < duration:
            k = (k + concurrency) % len(payloads)
            t0 = loop.time() - start
            code, timing = await client.post(heads[k], payloads[k])
            records.append((t0, loop.time() - start, code))
            headers.append(timing)

    await asyncio.gather(*(user(u) for u in range(concurrency)))
    client.close()
    elapsed = loop.time() - start
    t = np.array(records, dtype=float).reshape(-1, 3)
    timing = parse_server_timing(headers)
    timing["arrival"] -= start
    return LoadResult("closed", t[:, 0], t[:, 0].copy(), t[:, 1], t[:, 2].astype(np.int64),
                      elapsed, concurrency=concurrency, timing=timing)


def parse_server_timing(headers: Sequence[bytes]) -> dict[str, np.ndarray]:
    """Arrays (seconds, or the batch size) from ``Server-Timing`` headers such as
    ``queue;dur=1.2, replica;dur=0.8, compute;dur=0.5, batch;desc=4, arrival;desc=812.5``; NaN
    where absent. ``arrival`` is on the machine's monotonic clock."""
    out = {name: np.full(len(headers), np.nan)
           for name in ("queue", "replica", "compute", "batch", "arrival")}
    for i, header in enumerate(headers):
        for metric in header.decode("latin-1").split(","):
            name, _, rest = metric.strip().partition(";")
            if name not in out:
                continue
            key, _, value = rest.partition("=")
            try:
                out[name][i] = float(value) / (1e3 if key == "dur" else 1)
            except ValueError:
                continue
    return out

