"""Peak throughput of common GPUs, each number with its source, for drawing their rooflines.

Dense (no structured sparsity) peaks, SXM form factors, as printed in NVIDIA's datasheets.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GpuPeaks", "GPUS", "gpu"]


@dataclass(frozen=True)
class GpuPeaks:
    """A GPU's peak FLOP/s per number format, its memory bandwidth, and where they come from."""

    name: str
    flops: dict[str, float]  # format -> FLOP/s
    bandwidth: float  # bytes/s of device memory (HBM)
    source: str

    def ridge(self, fmt: str = "fp32") -> float:
        """Arithmetic intensity (FLOP/byte) where the roofline turns from memory- to compute-bound."""
        return self.flops[fmt] / self.bandwidth


T = 1e12
GPUS: dict[str, GpuPeaks] = {
    "V100": GpuPeaks(
        "V100 SXM2 32GB", {"fp32": 15.7 * T, "fp16_tensor": 125 * T}, 900e9,
        "NVIDIA Tesla V100 datasheet (2020): 15.7 TFLOPS FP32, 125 TFLOPS tensor, 900 GB/s HBM2"),
    "A100": GpuPeaks(
        "A100 SXM4 80GB", {"fp32": 19.5 * T, "tf32_tensor": 156 * T, "bf16_tensor": 312 * T},
        2039e9,
        "NVIDIA A100 Tensor Core GPU datasheet (2021): 19.5 TFLOPS FP32, 156 TF32, 312 BF16 "
        "(dense), 2,039 GB/s HBM2e"),
    "H100": GpuPeaks(
        "H100 SXM5 80GB", {"fp32": 67 * T, "tf32_tensor": 494.7 * T, "bf16_tensor": 989.4 * T},
        3.35e12,
        "NVIDIA H100 Tensor Core GPU datasheet (2023): 67 TFLOPS FP32, 989 TF32 and 1,979 "
        "BF16 with sparsity (half that dense), 3.35 TB/s HBM3"),
    "H200": GpuPeaks(
        "H200 SXM 141GB", {"fp32": 67 * T, "tf32_tensor": 494.7 * T, "bf16_tensor": 989.4 * T},
        4.8e12,
        "NVIDIA H200 Tensor Core GPU datasheet (2024): H100's compute, 4.8 TB/s HBM3e"),
    "T4": GpuPeaks(
        "T4 16GB", {"fp32": 8.1 * T, "fp16_tensor": 65 * T}, 320e9,
        "NVIDIA T4 datasheet (2019): 8.1 TFLOPS FP32, 65 TFLOPS FP16 tensor, 320 GB/s GDDR6"),
}


def gpu(name: str) -> GpuPeaks:
    """Look up a catalogued GPU, with a clear error for unknown names."""
    try:
        return GPUS[name]
    except KeyError:
        raise KeyError(f"unknown GPU {name!r}; catalogued: {', '.join(GPUS)}") from None
