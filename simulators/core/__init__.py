"""Simulation core: the event recorder, hardware catalog, topologies and network model."""

from . import hardware as hardware
from .network import Network
from .recorder import Event, Recorder
from .topology import Link, LinkSpec, Topology, cluster, fully_connected, ring, switched

__all__ = ["Event", "Recorder", "Link", "LinkSpec", "Network", "Topology",
           "cluster", "fully_connected", "ring", "switched"]
