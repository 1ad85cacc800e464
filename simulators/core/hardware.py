"""Hardware catalog: GPUs (the course's one catalog, :mod:`mlsys.kernels.gpus`) and the links
between them, each number with its source. Link bandwidths are per GPU and per direction, in
bytes/s; latencies are typical one-hop figures (end-to-end small-message latency), which is
what an alpha-beta model needs. A :class:`Interconnect` has ``bandwidth`` and ``latency``, so it
can stand in wherever the network model takes a link specification.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlsys.kernels.gpus import GPU, GPUS, gpu

__all__ = ["GPU", "GPUS", "gpu", "Interconnect", "INTERCONNECTS", "interconnect"]

GB = 1e9  # decimal gigabyte, as datasheets use


@dataclass(frozen=True)
class Interconnect:
    """A link kind: ``bandwidth`` bytes/s per GPU per direction, ``latency`` seconds."""

    name: str
    bandwidth: float
    latency: float
    source: str = field(default="", compare=False)

    def time(self, nbytes: float) -> float:
        """Alpha-beta time of one message of ``nbytes`` alone on the link."""
        return self.latency + nbytes / self.bandwidth


_V100 = "NVIDIA Tesla V100 datasheet (2020)"
_A100 = "NVIDIA A100 Tensor Core GPU datasheet (2021)"
_H100 = "NVIDIA H100 Tensor Core GPU datasheet (2023)"

INTERCONNECTS: dict[str, Interconnect] = {
    # NVLink: the datasheets quote total bidirectional bandwidth per GPU; one direction is half.
    "nvlink2": Interconnect("nvlink2", 150 * GB, 2e-6, source=_V100 + ": NVLink 300 GB/s"),
    "nvlink3": Interconnect("nvlink3", 300 * GB, 2e-6, source=_A100 + ": NVLink 600 GB/s"),
    "nvlink4": Interconnect("nvlink4", 450 * GB, 2e-6, source=_H100 + ": NVLink 900 GB/s"),
    # NVSwitch gives every GPU its full NVLink bandwidth to any peer in the node.
    "nvswitch-a100": Interconnect("nvswitch-a100", 300 * GB, 3e-6,
                                  source="NVIDIA DGX A100 system architecture white paper (2020)"),
    "nvswitch-h100": Interconnect("nvswitch-h100", 450 * GB, 3e-6,
                                  source="NVIDIA DGX H100 user guide (2023): 900 GB/s per GPU"),
    # PCIe x16: 8, 16, 32 GT/s per lane with 128b/130b encoding (PCI-SIG base specifications).
    "pcie3": Interconnect("pcie3", 15.75 * GB, 5e-6, source="PCI-SIG PCIe 3.0 base spec, x16"),
    "pcie4": Interconnect("pcie4", 31.5 * GB, 5e-6, source="PCI-SIG PCIe 4.0 base spec, x16"),
    "pcie5": Interconnect("pcie5", 63 * GB, 5e-6, source="PCI-SIG PCIe 5.0 base spec, x16"),
    # InfiniBand: one HCA port per GPU (rail-optimized nodes); latency is the MPI ping-pong
    # figure NVIDIA quotes for ConnectX adapters (about 1 microsecond through one switch).
    "ib-edr": Interconnect("ib-edr", 12.5 * GB, 1.5e-6,
                           source="NVIDIA ConnectX-5 datasheet: EDR 100 Gb/s"),
    "ib-hdr": Interconnect("ib-hdr", 25 * GB, 1.5e-6,
                           source="NVIDIA ConnectX-6 datasheet: HDR 200 Gb/s"),
    "ib-ndr": Interconnect("ib-ndr", 50 * GB, 1.5e-6,
                           source="NVIDIA ConnectX-7 datasheet: NDR 400 Gb/s"),
    "roce-100g": Interconnect("roce-100g", 12.5 * GB, 3e-6,
                              source="100 GbE line rate; RoCE v2 latency a few microseconds"),
}
"""Latencies are typical end-to-end small-message figures, not datasheet guarantees."""


def interconnect(name: str) -> Interconnect:
    """The catalogued link kind called ``name`` (case-insensitive)."""
    for key, value in INTERCONNECTS.items():
        if key.lower() == str(name).lower():
            return value
    raise ValueError(f"unknown interconnect {name!r}; expected one of {sorted(INTERCONNECTS)}")
