"""Simulation core: the event recorder, hardware catalog, topologies and network model."""

from .recorder import Event, Recorder
from .shared_data import find_shared_data

__all__ = ["Event", "Recorder", "find_shared_data"]
