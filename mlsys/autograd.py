"""Gradient mode: ``no_grad``, ``enable_grad`` and ``set_grad_enabled`` (as in PyTorch)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_state = {"enabled": True}


def is_grad_enabled() -> bool:
    """Whether new operations are being recorded for backward."""
    return _state["enabled"]


class _GradMode:
    """A context manager and decorator that sets the recording mode and restores it after."""

    mode = True

    def __enter__(self) -> None:
        self._prev = _state["enabled"]
        _state["enabled"] = self.mode

    def __exit__(self, *exc: object) -> None:
        _state["enabled"] = self._prev

    def __call__(self, fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _mode(self.mode):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class no_grad(_GradMode):
    """Do not record operations: for evaluation and optimizer updates."""

    mode = False


class enable_grad(_GradMode):
    """Record operations even inside ``no_grad``."""

    mode = True


class set_grad_enabled(_GradMode):
    """Set the mode now (as a call) or for a block (as a context manager)."""

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)
        self._prev = _state["enabled"]
        _state["enabled"] = self.mode

    def __enter__(self) -> None:
        pass


def _mode(mode: bool) -> _GradMode:
    block = _GradMode()
    block.mode = mode
    return block
