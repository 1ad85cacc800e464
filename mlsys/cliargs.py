"""Argument types and the parser every ``mlsys`` command uses, so bad input ends the same way.

A command builds its :class:`ArgumentParser` and declares each option with one of the types below;
a value that is not finite, not positive, out of range or an unusable path is refused before any
work, with exit code 2 and one line on stderr naming the option, the value and what was expected::

    mlsys bench autodiff: error: argument --batch: expected a positive integer, got '0'

Output paths are checked when parsed (the folder exists and is writable, the path is not a
folder), so a long run never fails at its end for want of somewhere to write.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line: ``prog: error: message``."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message.splitlines()[0] if message else message}",
              file=sys.stderr)
        raise SystemExit(2)


def fail(prog: str, message: str) -> int:
    """Print ``prog: error: message`` on stderr and return exit code 2 (for checks after parsing)."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def _number(text: str, kind: type) -> Any:
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                         f"got {text!r}") from None
    return value


def int_range(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An integer in ``[low, high]`` (either bound may be open)."""
    if low == 1 and high is None:
        expected = "a positive integer"
    elif low == 0 and high is None:
        expected = "an integer >= 0"
    elif high is None:
        expected = f"an integer >= {low}"
    elif low is None:
        expected = f"an integer <= {high}"
    else:
        expected = f"an integer in [{low}, {high}]"

    def parse(text: str) -> int:
        value = _number(text, int)
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


positive_int = int_range(1)
non_negative_int = int_range(0)


def float_range(low: float | None = None, high: float | None = None, *, low_open: bool = False
                ) -> Callable[[str], float]:
    """A finite number in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    if low == 0 and low_open and high is None:
        expected = "a finite number > 0"
    elif high is None:
        expected = f"a finite number {'>' if low_open else '>='} {low:g}"
    elif low is None:
        expected = f"a finite number <= {high:g}"
    else:
        expected = f"a finite number in {'(' if low_open else '['}{low:g}, {high:g}]"

    def parse(text: str) -> float:
        value = _number(text, float)
        too_low = low is not None and (value <= low if low_open else value < low)
        if not math.isfinite(value) or too_low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


positive_float = float_range(0.0, low_open=True)
non_negative_float = float_range(0.0)


def comma_list(item: Callable[[str], Any], *, unique: bool = False) -> Callable[[str], list]:
    """A non-empty comma-separated list, each item parsed by ``item`` (an argument type)."""

    def parse(text: str) -> list:
        parts = [p.strip() for p in text.split(",")]
        if not text.strip() or any(not p for p in parts):
            raise argparse.ArgumentTypeError(f"expected a comma-separated list with no empty "
                                             f"items, got {text!r}")
        values = []
        for p in parts:
            try:
                values.append(item(p))
            except argparse.ArgumentTypeError as error:
                raise argparse.ArgumentTypeError(f"item {p!r} of {text!r}: {error}") from None
        if unique and len(set(values)) != len(values):
            raise argparse.ArgumentTypeError(f"expected distinct items, got {text!r}")
        return values

    return parse


def one_of(choices: Sequence[str]) -> Callable[[str], str]:
    """One of ``choices`` (for use inside :func:`comma_list`; plain options use ``choices=``)."""

    def parse(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(choices)}, got {text!r}")
        return text

    return parse


def multiple_of(step: int, low: int = 1, high: int | None = None) -> Callable[[str], int]:
    """An integer in ``[low, high]`` divisible by ``step`` (message sizes in whole elements)."""
    bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"

    def parse(text: str) -> int:
        value = _number(text, int)
        if value < low or (high is not None and value > high) or value % step:
            raise argparse.ArgumentTypeError(f"expected a multiple of {step} {bounds}, "
                                             f"got {text!r}")
        return value

    return parse


def input_file(text: str) -> Path:
    """An existing, readable file."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"no such file: {text!r}")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"expected a file, got the folder {text!r}")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"cannot read {text!r} (permission denied)")
    return path


def output_file(text: str) -> Path:
    """A path a file can be written to: not a folder, in an existing writable folder."""
    if not text:
        raise argparse.ArgumentTypeError("expected a file path, got ''")
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"expected a file path, got the folder {text!r}")
    folder = path.parent
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: folder {str(folder)!r} does "
                                         "not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise argparse.ArgumentTypeError(f"cannot write {text!r} (permission denied)")
    return path
