"""The GPU catalog: peak FLOP/s per number format, memory and its bandwidth, each with its source.

One catalog for the whole course: the roofline plots draw from it and the simulators
(``simulators.core.hardware``) cost training and serving with it. Figures are vendor datasheet
peaks for the SXM form factor (T4: its one PCIe card), dense, i.e. without 2:4 structured
sparsity. ``fp16``, ``bf16``, ``tf32``, ``fp8`` and ``int8`` are tensor-core figures; ``fp64`` on
A100/H100/H200 is the FP64 Tensor Core figure; ``fp32`` is the plain CUDA-core figure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .roofline import Peaks

__all__ = ["GPU", "GPUS", "gpu"]

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

    def ridge(self, dtype: str = "fp32") -> float:
        """Arithmetic intensity (FLOP/byte) where the roofline turns from memory- to compute-bound."""
        return self.peak(dtype) / self.memory_bandwidth

    def roof(self, dtype: str = "fp32") -> Peaks:
        """The two ceilings of its roofline for ``dtype``, to draw with :func:`roofline.plot`."""
        return Peaks(f"{self.name} ({dtype})", self.peak(dtype), self.memory_bandwidth)


_V100 = "NVIDIA Tesla V100 datasheet (2020), SXM2 32 GB"
_A100 = "NVIDIA A100 Tensor Core GPU datasheet (2021), SXM4 80 GB"
_H100 = "NVIDIA H100 Tensor Core GPU datasheet (2023), H100 SXM5 80 GB (dense: half the sparse figures)"
_H200 = "NVIDIA H200 Tensor Core GPU product brief (2024), H200 SXM 141 GB: H100's compute"
_T4 = "NVIDIA T4 datasheet (2019), PCIe 16 GB GDDR6"

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
    "T4": GPU("T4", {"fp32": 8.1 * TERA, "fp16": 65 * TERA, "int8": 130 * TERA},
              memory=16 * GB, memory_bandwidth=320 * GB, source=_T4),
}


def gpu(name: str) -> GPU:
    """The catalogued GPU called ``name`` (case-insensitive)."""
    for key, value in GPUS.items():
        if key.lower() == str(name).lower():
            return value
    raise ValueError(f"unknown GPU {name!r}; expected one of {sorted(GPUS)}")
