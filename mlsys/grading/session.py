"""The grader's side of a learner's kernel: start it in a sandbox, run cells, call functions.

:class:`Session` starts :mod:`.kernel` inside a :class:`~.sandbox.Sandbox` with one end of a
socket pair, runs the submission's cells there, and calls its functions with plain data
(:mod:`.wire`). Everything the kernel sends is decoded strictly; a kernel that dies, hangs, sends
garbage or too much ends as :class:`KernelGone` with the reason, never as an error of the grader.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .channel import Channel, ChannelClosed, ChannelTimeout, MessageTooLarge
from .sandbox import Confinement, Sandbox, package_folders
from .wire import Codec, WireError, dumps, loads

KERNEL_ENV = {"MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1",
              "PYDEVD_DISABLE_FILE_VALIDATION": "1", "PYTHONUNBUFFERED": "1"}
HARD_GRACE_S = 5.0  # after a soft time-out interrupts nothing, the sandbox is killed


class KernelGone(RuntimeError):
    """The kernel died, was stopped for running too long, or broke the protocol."""


class LearnerError(AssertionError):
    """An exception raised by the learner's code, or a value the grader cannot take from it."""


class Session:
    """One sandboxed kernel for one submission (see the module docstring)."""

    def __init__(self, kind: str, confinement: Confinement, *, env: Mapping[str, str] = (),
                 hide: Sequence[Path | str] = (), files: Mapping[str, bytes] = (),
                 types: Iterable[str] = ()) -> None:
        roots = dict.fromkeys(str(folder.parent) for folder in package_folders())
        environment = {**KERNEL_ENV, **dict(env), "PYTHONPATH": os.pathsep.join(roots)}
        self.sandbox = Sandbox(kind, confinement, hide=hide, env=environment)
        self.confinement, self.files, self.types = confinement, dict(files), list(types)
        self.codec = Codec(self.types, side=0)  # for the session: objects are sent once
        self.channel: Channel | None = None
        self.gone: str | None = None  # why the kernel is no longer usable

    @property
    def alive(self) -> bool:
        return self.channel is not None and self.gone is None

    def start(self, timeout: float) -> None:
        """Start the kernel and wait until it is ready; raises :class:`KernelGone` otherwise."""
        ours, theirs = socket.socketpair()
        log = tempfile.TemporaryFile()
        processes = 0 if self.sandbox.kind == "none" else self.confinement.processes
        try:
            self.sandbox.start([sys.executable, "-m", "mlsys.grading.kernel",
                                str(theirs.fileno()), str(processes)],
                               pass_fds=[theirs.fileno()], stderr=log)
        finally:
            theirs.close()
        self.channel = Channel(ours)
        try:
            reply = loads(self.channel.recv(timeout))
            if reply != {"ready": True}:
                raise WireError(f"unexpected greeting {reply!r:.100}")
        except (ChannelClosed, ChannelTimeout, WireError, MessageTooLarge) as error:
            log.seek(0)
            lines = log.read().decode(errors="replace").strip().splitlines()
            self._fail(f"the grading kernel did not start ({error}"
                       + (f"; {lines[-1][:300]}" if lines else "") + ")")
        finally:
            log.close()
        self.sandbox.seal()
        if self.files:
            self._request({"op": "files", "files": {
                name: base64.b64encode(data).decode() for name, data in self.files.items()}},
                timeout, "writing the lab's files")

    def run(self, source: str, timeout: float) -> str | None:
        """Run ``source`` as a cell; returns its error (``Name: message``) or None."""
        reply = self._request({"op": "run", "source": source, "timeout": timeout}, timeout,
                              "a cell")
        error = reply.get("error")
        return None if error is None else str(error)[:2000]

    def call(self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any],
             timeout: float) -> Any:
        """``name(*args, **kwargs)`` in the kernel; the result as plain values.

        Raises :class:`LearnerError` for the learner's exceptions and for results the grader
        cannot take, :class:`KernelGone` when the kernel is not there to answer."""
        codec = self.codec
        try:
            message = {"op": "call", "name": name, "args": codec.encode(list(args)),
                       "kwargs": codec.encode(dict(kwargs)), "types": self.types,
                       "timeout": timeout}
        except WireError as error:
            raise TypeError(f"the test passes {name} a value that cannot be sent: {error}") from None
        reply = self._request(message, timeout, f"{name}()")
        if "error" in reply:
            raise LearnerError(str(reply["error"])[:2000])
        try:
            return codec.decode(reply["value"])
        except (WireError, KeyError) as error:
            raise LearnerError(f"{name} returned data the grader cannot read: {error}") from None

    def _request(self, message: dict, timeout: float, what: str) -> dict:
        if not self.alive:
            raise KernelGone(self.gone or "the kernel is not running")
        try:
            self.channel.send(dumps(message))
            reply = loads(self.channel.recv(timeout + HARD_GRACE_S))
        except ChannelTimeout:
            self._fail(f"{what} ran longer than {timeout:g} s and did not stop when interrupted; "
                       f"the kernel was stopped")
        except ChannelClosed:
            self._fail(self._death())
        except (WireError, MessageTooLarge) as error:
            self._fail(f"the kernel broke the protocol ({error}); it was stopped")
        if not isinstance(reply, dict):
            self._fail("the kernel broke the protocol (a reply that is not an object); it was stopped")
        return reply

    def _death(self) -> str:
        proc = self.sandbox.proc
        code = proc.wait() if proc is not None else None
        c = self.confinement
        why = {signal.SIGXCPU: f"it used up its {c.cpu_seconds:g} CPU-seconds",
               signal.SIGXFSZ: f"it wrote a file larger than {c.file_mb} MiB"}
        for sig, text in why.items():
            if code in (-sig, 128 + sig):
                return f"the kernel died: {text}"
        return (f"the kernel died (sys.exit/os._exit, a crash, or more than {c.memory_mb} MiB of "
                f"memory; exit code {code})")

    def _fail(self, why: str) -> None:
        self.gone = why
        self.stop()
        raise KernelGone(why)

    def stop(self) -> list[str]:
        """Stop the kernel and everything it started; returns the sandbox's problems, if any."""
        if self.channel is not None:
            if self.gone is None:
                try:
                    self.channel.send(dumps({"op": "quit"}))
                except ChannelClosed:
                    pass
                self.gone = "the kernel was stopped"
            self.channel.close()
        return self.sandbox.stop()
