"""A dependency-free progress bar on stderr (one line, redrawn in place on a terminal)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``[#####.....]  5/10  12.3 s  last item`` for a known number of items."""

    def __init__(self, total: int, label: str, *, enabled: bool = True, width: int = 30,
                 stream: TextIO | None = None) -> None:
        self.total, self.label, self.width, self.done = total, label, width, 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.start = time.monotonic()
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def line(self, note: str = "") -> str:
        filled = self.width * self.done // max(self.total, 1)
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.monotonic() - self.start
        return (f"{self.label} [{bar}] {self.done}/{self.total} {elapsed:5.1f} s  {note}")[:120]

    def advance(self, note: str = "") -> None:
        self.done += 1
        if self.enabled:
            end = "" if self._tty else "\n"
            self.stream.write(("\r\033[K" if self._tty else "") + self.line(note) + end)
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._tty:
            self.stream.write("\n")
            self.stream.flush()
