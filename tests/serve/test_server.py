"""The real server on a loopback port: predictions, batching, metrics, bad requests, overload,
a replica dying, and a clean Ctrl-C. Every request loop is bounded; servers stop at the end."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from processes import children
from prometheus_client.parser import text_string_to_metric_families

from mlsys.data import load_digits
from mlsys.serve import ServerProcess, models, open_loop
from mlsys.serve.policy import BatchPolicy, Decision, QueueState, dispatch
from mlsys.serve.protocol import encode_infer_request
from mlsys.serve.server import ServeConfig, create_app

MODEL = "digits-mlp"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models.save(models.train(MODEL, epochs=1), tmp_path_factory.mktemp("serve") / "mlp.npz")


@pytest.fixture(scope="module")
def server(checkpoint: Path):
    with ServerProcess(MODEL, replicas=2, max_batch_size=8, max_wait=0.005, max_queue=64,
                       checkpoint=checkpoint, extra_args=("--max-body-kb", "64")) as s:
        yield s


def call(url: str, body: bytes | None = None, timeout: float = 30.0) -> tuple[int, dict, dict]:
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            raw, status, headers = reply.read(), reply.status, dict(reply.headers)
    except urllib.error.HTTPError as error:
        raw, status, headers = error.read(), error.code, dict(error.headers)
    payload = json.loads(raw) if headers.get("content-type", "").startswith("application/json") else {}
    return status, payload, headers


def infer_url(server: ServerProcess) -> str:
    return f"{server.url}/v2/models/{MODEL}/infer"


def metrics(server: ServerProcess) -> dict[str, float]:
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return values


def test_health_metadata_and_predictions_match_the_engine(server: ServerProcess, checkpoint: Path) -> None:
    assert call(f"{server.url}/v2/health/live")[0] == 200
    assert call(f"{server.url}/v2/health/ready")[:2] == (200, {"ready": True})
    status, meta, _ = call(f"{server.url}/v2/models/{MODEL}")
    assert status == 200 and meta["inputs"][0]["shape"] == [-1, 64]
    rows = load_digits("test").arrays[0][:5]
    status, reply, _ = call(infer_url(server), encode_infer_request(rows))
    assert status == 200
    logits = np.array(reply["outputs"][0]["data"], np.float32).reshape(reply["outputs"][0]["shape"])
    expected = models.predict(models.load(MODEL, checkpoint), MODEL, rows)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    assert reply["outputs"][1]["data"] == expected.argmax(1).tolist()


def test_concurrent_requests_are_batched_and_counted(server: ServerProcess) -> None:
    before = metrics(server)
    body = encode_infer_request(load_digits("test").arrays[0][:1])
    with ThreadPoolExecutor(24) as pool:
        statuses = list(pool.map(lambda _: call(infer_url(server), body)[0], range(96)))
    assert statuses == [200] * 96
    after = metrics(server)
    delta = {k: after[k] - before.get(k, 0.0) for k in after}
    assert delta["mlsys_requests_total{code=200}"] == 96
    assert delta["mlsys_batch_size_sum"] == 96  # every request in exactly one batch
    assert delta["mlsys_batch_size_count"] < 96  # ... and some batches held several
    assert delta["mlsys_request_latency_seconds_count"] == 96
    assert after["mlsys_replicas"] == 2
    assert after["mlsys_batch_size_bucket{le=+Inf}"] == after["mlsys_batch_size_count"]


@pytest.mark.parametrize("body, status, reason", [
    (b"{oops", 400, "malformed JSON"),
    (json.dumps({"inputs": [{"shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}).encode(), 400,
     "expected shape [n, 64]"),
    (json.dumps({"inputs": [{"shape": [1, 64], "datatype": "INT8", "data": [1] * 64}]}).encode(), 400,
     "datatype must be 'FP32'"),
    (json.dumps({"inputs": [{"shape": [1, 64], "datatype": "FP32", "data": ["x"] * 64}]}).encode(), 400,
     "must be numbers"),
    (b"0" * (65 * 1024), 413, "exceeds the limit of 65536 bytes"),
])
def test_bad_requests_get_a_4xx_with_one_line_and_do_not_hurt_replicas(
        server: ServerProcess, body: bytes, status: int, reason: str) -> None:
    got, payload, _ = call(infer_url(server), body)
    assert got == status and reason in payload["error"] and "\n" not in payload["error"]
    assert call(infer_url(server), encode_infer_request(np.zeros((1, 64))))[0] == 200
    assert call(f"{server.url}/v2/health/ready")[0] == 200


def test_unknown_model_is_404(server: ServerProcess) -> None:
    status, payload, _ = call(f"{server.url}/v2/models/resnet/infer", encode_infer_request(np.zeros((1, 64))))
    assert status == 404 and "unknown model 'resnet'" in payload["error"]


def _replica_pids(pid: int) -> list[int]:
    return sorted(children(pid))


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_a_killed_replica_fails_only_its_batch_and_is_replaced(server: ServerProcess) -> None:
    assert server.process is not None
    victim = _replica_pids(server.process.pid)[0]
    os.kill(victim, signal.SIGKILL)
    body = encode_infer_request(np.zeros((1, 64)))
    deadline = time.monotonic() + 60
    while call(f"{server.url}/v2/health/ready")[0] != 200 or victim in _replica_pids(server.process.pid):
        assert call(infer_url(server), body)[0] in (200, 500)
        assert time.monotonic() < deadline, "replica not replaced within 60 s"
        time.sleep(0.2)
    assert [call(infer_url(server), body)[0] for _ in range(10)] == [200] * 10


def test_overload_gets_503_with_a_bounded_queue_and_ctrl_c_stops_cleanly(checkpoint: Path) -> None:
    small = ServerProcess(MODEL, replicas=1, max_batch_size=1, max_wait=0.0, max_queue=4,
                          checkpoint=checkpoint).start()
    try:
        replicas = _replica_pids(small.process.pid) if Path("/proc/self/task").exists() else []
        burst = np.zeros(300)  # 300 requests at once: far beyond one replica and a queue of 4
        result = open_loop(small.url, 1.0, 1.0, arrivals=burst)
        codes = set(result.status.tolist())
        assert codes <= {200, 503} and 503 in codes and 200 in codes
        assert metrics(small)["mlsys_queue_depth"] <= 4
        assert call(f"{small.url}/v2/health/ready")[0] == 200
    finally:
        code = small.stop()
    assert code == 0, small.stderr
    assert "Traceback" not in small.stderr and "stopped" in small.stderr
    for pid in replicas:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


class _Broken(BatchPolicy):
    name, max_batch_size = "broken", 4

    def decide(self, state: QueueState) -> Decision:
        return dispatch(state.waiting + 1)  # more than are waiting


def test_a_broken_policy_fails_its_requests_with_a_500_and_the_server_lives_on(checkpoint: Path) -> None:
    app = create_app(ServeConfig(MODEL, policy=_Broken()), checkpoint)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()  # in-process, so the policy object is ours; a real replica process serves
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        status, payload, _ = call(f"{url}/v2/models/{MODEL}/infer", encode_infer_request(np.zeros((1, 64))))
        assert status == 500 and "batching policy failed" in payload["error"]
        assert call(f"{url}/v2/health/ready")[0] == 200
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
    assert not thread.is_alive()
