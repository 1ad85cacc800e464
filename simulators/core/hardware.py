"""Hardware catalog: datacenter GPUs and the links between them, each number with its source.

Figures are vendor datasheet peaks (dense, i.e. without 2:4 structured sparsity) for the SXM
form factor. Link bandwidths are per GPU and per direction, in bytes/s; latencies are typical
one-hop figures (end-to-end small-message latency), which is what an alpha-beta model needs.
A :class:`Interconnect` has ``bandwidth`` and ``latency``, so it can stand in wherever the
network model takes a link specification.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TERA = 1e12
GB = 1e9  # decimal gigabyte, as datasheets use


@dataclass(frozen=True)
class GPU:
    """One accelerator: peak FLOP/s per dtype, memory capacity (bytes) and bandwidth (bytes/s)."""

    name: str
    peak_flops: dict[str, float]
    memory: float
    memory_bandwidth: float
    source: str = field(default="", compare=False)

    def peak(self, dtype: str) -> float:
        """Peak FLOP/s for ``dtype``; a clear error lists the dtypes this GPU has figures for."""
        try:
            return self.peak_flops[dtype]
        except KeyError:
            raise ValueError(f"{self.name} has no peak for dtype {dtype!r}; "
                             f"expected one of {sorted(self.peak_flops)}") from None


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


_V100 = "NVIDIA Tesla V100 datasheet (2020), SXM2 32 GB"
_A100 = "NVIDIA A100 Tensor Core GPU datasheet (2021), SXM4 80 GB"
_H100 = "NVIDIA H100 Tensor Core GPU datasheet (2023), H100 SXM5 80 GB"
_H200 = "NVIDIA H200 Tensor Core GPU product brief (2024), H200 SXM 141 GB"

GPUS: dict[str, GPU] = {
    "V100": GPU("V100", {"fp64": 7.8 * TERA, "fp32": 15.7 * TERA, "fp16": 125 * TERA},
                memory=32 * GB, memory_bandwidth=900 * GB, source=_V100),
    "A100": GPU("A100", {"fp64": 19.5 * TERA, "fp32": 19.5 * TERA, "tf32": 156 * TERA,
                         "bf16": 312 * TERA, "fp16": 312 * TERA, "int8": 624 * TERA},
                memory=80 * GB, memory_bandwidth=2039 * GB, source=_A100),
    "H100": GPU("H100", {"fp64": 67 * TERA, "fp32": 67 * TERA, "tf32": 494.5 * TERA,
                         "bf16": 989.5 * TERA, "fp16": 989.5 * TERA, "fp8": 1979 * TERA},
                memory=80 * GB, memory_bandwidth=3350 * GB, source=_H100),
    "H200": GPU("H200", {"fp64": 67 * TERA, "fp32": 67 * TERA, "tf32": 494.5 * TERA,
                         "bf16": 989.5 * TERA, "fp16": 989.5 * TERA, "fp8": 1979 * TERA},
                memory=141 * GB, memory_bandwidth=4800 * GB, source=_H200),
}
"""fp64 on A100/H100/H200 is the FP64 Tensor Core figure; the others are the datasheet rows."""

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


def gpu(name: str) -> GPU:
    """The catalogued GPU called ``name`` (case-insensitive)."""
    return _lookup(GPUS, name, "GPU")


def interconnect(name: str) -> Interconnect:
    """The catalogued link kind called ``name`` (case-insensitive)."""
    return _lookup(INTERCONNECTS, name, "interconnect")


def _lookup(table: dict, name: str, what: str):
    for key, value in table.items():
        if key.lower() == str(name).lower():
            return value
    raise ValueError(f"unknown {what} {name!r}; expected one of {sorted(table)}")
