"""Scheduling policies, one per module, all on the :class:`~.base.Policy` interface."""

from __future__ import annotations

from .base import Policy
from .easy import EASY
from .fifo import FIFO
from .gandiva import Gandiva
from .gittins import Gittins
from .las import LAS
from .sjf import SJF
from .srtf import SRTF
from .themis import Themis

#: Every policy by name; a policy's module, class and name agree (``gandiva.py``, ``Gandiva``,
#: ``"gandiva"``).
POLICIES: dict[str, type[Policy]] = {cls.name: cls for cls in (
    FIFO, SJF, SRTF, LAS, Gittins, Gandiva, Themis, EASY)}


def make_policy(name: str, **options) -> Policy:
    """A policy by name (see :data:`POLICIES`), built with ``options``."""
    try:
        cls = POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; expected one of {sorted(POLICIES)}") from None
    return cls(**options)


__all__ = ["POLICIES", "Policy", "make_policy", "FIFO", "SJF", "SRTF", "LAS", "Gittins", "Gandiva",
           "Themis", "EASY"]
