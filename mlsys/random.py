"""The engine's global random state (``mlsys.manual_seed``), used by initializers and dropout.

Every draw goes through :func:`generator`. Listeners (the graph tracer is one) hear of each
``"draw"`` and ``"seed"``, so a traced program can tell a draw made by a random primitive (which
it records, and which a compiled call repeats) from one it could not replay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

_generator = np.random.default_rng(0)
_listeners: list[Callable[[str], None]] = []


def manual_seed(seed: int) -> None:
    """Seed every random draw the engine makes (weight init, dropout, shuffling defaults)."""
    global _generator
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"manual_seed: expected a non-negative integer, got {seed!r}")
    for listener in _listeners:
        listener("seed")
    _generator = np.random.default_rng(int(seed))


def generator() -> np.random.Generator:
    """The current global generator (tell listeners a draw is coming)."""
    for listener in _listeners:
        listener("draw")
    return _generator


def get_rng_state() -> dict[str, Any]:
    """A snapshot of the global generator's state, for :func:`set_rng_state`."""
    return _generator.bit_generator.state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a state from :func:`get_rng_state`: the draws that followed it repeat."""
    _generator.bit_generator.state = state


def add_listener(listener: Callable[[str], None]) -> None:
    """Call ``listener("draw")`` before every draw and ``listener("seed")`` before every reseed."""
    _listeners.append(listener)


def remove_listener(listener: Callable[[str], None]) -> None:
    _listeners.remove(listener)
