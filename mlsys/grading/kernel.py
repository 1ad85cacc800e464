"""The learner's side of a grading session: runs cells and answers calls, inside the sandbox.

The grader (:mod:`.session`) starts ``python -m mlsys.grading.kernel FD PROCESSES`` in the
sandbox with one end of a socket pair as file descriptor ``FD``, and sends requests, one reply
each (JSON, see :mod:`.channel` and :mod:`.wire`):

* ``{"op": "files", "files": {name: base64}}``: write these files into the working directory;
* ``{"op": "run", "source": S, "timeout": T}``: run ``S`` as the next notebook cell (IPython);
  reply ``{"error": None}`` or ``{"error": "ValueError: ..."}``;
* ``{"op": "call", "name": N, "args": A, "kwargs": K, "types": [...], "timeout": T}``: call the
  notebook's ``N(*A, **K)``; reply ``{"value": V}`` or ``{"error": ...}``;
* ``{"op": "quit"}``.

A cell or call that runs past its timeout is interrupted (``KeyboardInterrupt``-style); the grader
kills the whole sandbox if that does not stop it. Nothing here is trusted by the grader: this
process runs the learner's code, which can change any of it. It only ever hands out values.
"""

from __future__ import annotations

import base64
import os
import resource
import signal
import socket
import sys
from typing import Any

from .channel import Channel, ChannelClosed
from .wire import Codec, WireError, dumps, loads


class Interrupted(Exception):
    """Raised in the learner's code when its cell or call runs past the time limit."""


def describe(error: BaseException) -> str:
    """``Name: message`` of an exception, or just the name (never raises)."""
    try:
        text = BaseException.__str__(error)
    except BaseException:  # an exception whose message itself fails
        text = "<unprintable>"
    name = type(error).__name__
    return f"{name}: {text}" if text else name


class _Alarm:
    """Raise :class:`Interrupted` in the main thread after ``seconds`` (a soft limit)."""

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds, self.what = float(seconds), what

    def _fire(self, signum: int, frame: Any) -> None:
        raise Interrupted(f"{self.what} ran longer than {self.seconds:g} s and was interrupted")

    def __enter__(self) -> None:
        signal.signal(signal.SIGALRM, self._fire)
        signal.setitimer(signal.ITIMER_REAL, max(self.seconds, 0.01))

    def __exit__(self, *exc: object) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _shell() -> Any:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    config.InteractiveShell.colors = "NoColor"
    return InteractiveShell.instance(config=config)


def run_cell(shell: Any, source: str, timeout: float) -> dict:
    with _Alarm(timeout, "the cell"):
        result = shell.run_cell(source, store_history=False)
    error = result.error_before_exec or result.error_in_exec
    return {"error": None if error is None else describe(error)[:2000]}


def call(namespace: dict, message: dict, codec: Codec) -> dict:
    name = message["name"]
    fn = namespace.get(name)
    if fn is None:
        return {"error": f"NameError: {name!r} is not defined (did its cell run without errors?)"}
    try:
        args, kwargs = codec.decode(message["args"]), codec.decode(message["kwargs"])
        with _Alarm(message["timeout"], f"{name}()"):
            value = fn(*args, **kwargs)
    except BaseException as error:  # the learner's exceptions, SystemExit included
        return {"error": describe(error)[:2000]}
    try:
        return {"value": codec.encode(value)}
    except WireError as error:
        return {"error": f"{name} returned data the grader cannot take: {error}"}
    except BaseException as error:
        return {"error": f"{name} returned a value that failed to convert: {describe(error)}"}


def serve(channel: Channel) -> None:
    shell = _shell()
    codec: Codec | None = None  # one for the session: objects are sent once, then referred to
    channel.send(dumps({"ready": True}))
    devnull = os.open(os.devnull, os.O_WRONLY)  # from here on the learner's output goes nowhere
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    while True:
        message = loads(channel.recv())
        op = message.get("op")
        if op == "quit":
            return
        if op == "files":
            for name, data in message["files"].items():
                with open(os.path.basename(name), "wb") as f:
                    f.write(base64.b64decode(data))
            reply: dict = {"error": None}
        elif op == "run":
            reply = run_cell(shell, message["source"], message["timeout"])
        elif op == "call":
            codec = codec or Codec(message.get("types", ()), side=1)
            reply = call(shell.user_ns, message, codec)
        else:
            reply = {"error": f"unknown request {op!r}"}
        channel.send(dumps(reply))


def main(argv: list[str]) -> int:
    fd, processes = int(argv[0]), int(argv[1])
    if processes > 0:  # counted in this user namespace (0: no namespace, so no limit here)
        resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
    channel = Channel(socket.socket(fileno=fd))
    try:
        serve(channel)
    except (ChannelClosed, KeyboardInterrupt):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
