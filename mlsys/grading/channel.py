"""Length-prefixed JSON messages over a socket between the grader and a sandboxed kernel.

Each message is an 8-byte big-endian length and that many bytes of JSON (see :mod:`.wire`).
The receiving side caps the length, so a kernel cannot make the grader buffer more than
``max_bytes``, and waits with a deadline, so a silent kernel cannot hang it.
Standard library only: this module runs in kernels.
"""

from __future__ import annotations

import socket
import struct
import time

MAX_MESSAGE_BYTES = 64 << 20
_HEADER = struct.Struct(">Q")


class ChannelClosed(EOFError):
    """The other side closed the connection (for a kernel: it exited or died)."""


class ChannelTimeout(TimeoutError):
    """No complete message arrived before the deadline."""


class MessageTooLarge(ValueError):
    """The other side announced a message longer than the receiver accepts."""


class Channel:
    """One end of a connection carrying whole JSON messages (``bytes`` in, ``bytes`` out)."""

    def __init__(self, sock: socket.socket, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.sock, self.max_bytes = sock, max_bytes
        self._buffer = bytearray()
        sock.setblocking(True)

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(_HEADER.pack(len(data)) + data)
        except (BrokenPipeError, ConnectionResetError) as error:
            raise ChannelClosed(f"the other side is gone ({error})") from None

    def recv(self, timeout: float | None = None) -> bytes:
        """The next message; waits at most ``timeout`` seconds (None: forever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        size = _HEADER.unpack(self._read(_HEADER.size, deadline))[0]
        if size > self.max_bytes:
            raise MessageTooLarge(f"a message of {size} bytes (the limit is {self.max_bytes})")
        return self._read(size, deadline)

    def _read(self, size: int, deadline: float | None) -> bytes:
        while len(self._buffer) < size:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ChannelTimeout("no reply before the deadline")
                self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(max(size - len(self._buffer), 1 << 16))
            except TimeoutError:
                raise ChannelTimeout("no reply before the deadline") from None
            except ConnectionResetError:
                chunk = b""
            finally:
                if deadline is not None:
                    self.sock.settimeout(None)
            if not chunk:
                raise ChannelClosed("the other side closed the connection")
            self._buffer += chunk
        data, self._buffer = bytes(self._buffer[:size]), self._buffer[size:]
        return data

    def close(self) -> None:
        self.sock.close()

