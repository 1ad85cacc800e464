"""Simulation core: the event recorder, hardware catalog, topologies and network model."""

from . import hardware as hardware
from .network import Network
from .recorder import Event, Recorder
from .shared_data import find_shared_data
from .topology import Link, LinkSpec, Topology, cluster, fully_connected, ring, switched

__all__ = ["Event", "Recorder", "find_shared_data", "Link", "LinkSpec", "Network", "Topology",
           "cluster", "fully_connected", "ring", "switched"]
