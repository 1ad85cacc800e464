"""A server in its own process, as ``mlsys serve`` starts it, for notebooks, tests and benchmarks.

    with ServerProcess(replicas=2, max_batch_size=16) as server:
        ...  # server.url is http://127.0.0.1:<free port>

The server picks a free port and prints it; the context manager reads that line, and on exit
sends SIGINT (Ctrl-C) and waits for the clean shutdown, killing the process only if it hangs.
Running the server apart from the client keeps the two from sharing one interpreter lock.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO

__all__ = ["ServerProcess"]

_BANNER = re.compile(r"on (http://\S+) ")


class ServerProcess:
    """``python -m mlsys.serve`` with the given options, started on a free loopback port."""

    def __init__(self, model: str = "digits-mlp", *, replicas: int = 1, max_batch_size: int = 8,
                 max_wait: float = 0.002, max_queue: int = 256, checkpoint: str | Path | None = None,
                 extra_args: tuple[str, ...] = (), start_timeout: float = 180.0) -> None:
        self.args = [sys.executable, "-m", "mlsys.serve", "--model", model, "--port", "0",
                     "--replicas", str(replicas), "--max-batch-size", str(max_batch_size),
                     "--max-wait-ms", repr(max_wait * 1e3), "--max-queue", str(max_queue),
                     *(["--checkpoint", str(checkpoint)] if checkpoint else []), *extra_args]
        self.start_timeout = start_timeout
        self.url = ""
        self.process: subprocess.Popen | None = None
        self._stderr: IO[str] | None = None
        self.returncode: int | None = None

    def start(self) -> ServerProcess:
        """Launch the server and wait until it accepts requests."""
        self._stderr = tempfile.TemporaryFile("w+")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=self._stderr,
                                        text=True, env=env)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_drain, args=(self.process.stdout, lines), daemon=True).start()
        try:
            line = lines.get(timeout=self.start_timeout)
        except queue.Empty:
            self.stop()
            raise TimeoutError(f"server not ready after {self.start_timeout} s: {self._errors()}") from None
        match = _BANNER.search(line)
        if not match:
            self.stop()
            raise RuntimeError(f"server failed to start: {line.strip() or self._errors()}")
        self.url = match.group(1)
        return self

    def stop(self, timeout: float = 20.0) -> int:
        """Ctrl-C the server and wait for it; returns its exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.returncode = self.process.returncode
        if self.process.stdout:
            self.process.stdout.close()
        self.process = None
        return self.returncode

    def _errors(self) -> str:
        if self.process is not None and self.process.poll() is None:
            return "(still starting)"
        assert self._stderr is not None
        self._stderr.seek(0)
        lines = [line for line in self._stderr.read().strip().splitlines() if line.strip()]
        return lines[-1] if lines else "no error output"

    @property
    def stderr(self) -> str:
        """What the server wrote to stderr so far."""
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _drain(stream: IO[str] | None, lines: queue.Queue[str]) -> None:
    """Forward the server's stdout lines (the first is the banner) until it closes."""
    if stream is None:
        return
    try:
        for line in stream:
            lines.put(line)
    except ValueError:  # closed while reading
        pass
    lines.put("")
