"""Roofline arithmetic, measured ceilings, the GPU catalog and the plot."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from mlsys.kernels import gpus, roofline

matplotlib.use("Agg")


def test_attainable_is_the_minimum_of_the_two_roofs() -> None:
    peaks = roofline.Peaks("toy", flops=100e9, bandwidth=10e9)
    assert peaks.ridge == 10
    np.testing.assert_allclose(roofline.attainable(np.array([1, 10, 100]), peaks), [10e9, 100e9, 100e9])
    h100 = gpus.gpu("H100").roof("fp32")
    assert roofline.attainable(1.0, h100) == pytest.approx(3350e9)
    assert roofline.attainable(1e6, h100) == pytest.approx(67e12)


def test_primitive_cost_reads_the_registry_rule() -> None:
    cost = roofline.primitive_cost("matmul", (8, 16), (16, 4))
    assert cost.flops == 2 * 8 * 16 * 4
    assert cost.bytes == 4 * (8 * 16 + 16 * 4 + 8 * 4)
    add = roofline.primitive_cost("add", (100,), (100,), dtype=np.float64)
    assert add.intensity == pytest.approx(100 / (3 * 100 * 8))


def test_measured_ceilings_are_plausible() -> None:
    bandwidth = roofline.measure_bandwidth(megabytes=8, repeat=2)
    flops = roofline.measure_flops(n=128, repeat=2)
    assert 1e8 < bandwidth < 1e13 and 1e7 < flops < 1e14
    with pytest.raises(ValueError, match="megabytes must be > 0, got 0"):
        roofline.measure_bandwidth(megabytes=0)


def test_triad_covers_every_element_in_every_thread_share() -> None:
    a, b, c = np.zeros(1001), np.arange(1001.0), np.full(1001, 2.0)
    roofline._triad(a, b, c, 3.0, 4, 3)  # four passes: the last one's scale is 3 + 3
    np.testing.assert_array_equal(a, b + 6.0 * c)


def _fake_cpu(root, cpu: int, caches: list[tuple[int, str, str, str]]) -> None:
    for k, (level, kind, size, shared) in enumerate(caches):
        index = root / f"cpu{cpu}" / "cache" / f"index{k}"
        index.mkdir(parents=True)
        for name, value in (("level", level), ("type", kind), ("size", size),
                            ("shared_cpu_list", shared)):
            (index / name).write_text(f"{value}\n")


def test_caches_are_read_from_sysfs_and_size_the_dram_probe(tmp_path) -> None:
    for cpu in range(4):  # per core L1d, L1i, L2; one L3 per pair of cores
        _fake_cpu(tmp_path, cpu, [(1, "Data", "32K", str(cpu)), (1, "Instruction", "32K", str(cpu)),
                                  (2, "Unified", "1024K", str(cpu)),
                                  (3, "Unified", "16M", "0-1" if cpu < 2 else "2-3")])
    hierarchy = roofline.caches(tmp_path)
    assert hierarchy == [roofline.Cache(1, 32 << 10, 4), roofline.Cache(2, 1 << 20, 4),
                         roofline.Cache(3, 16 << 20, 2)]
    assert hierarchy[-1].total == 32 << 20
    assert roofline.dram_megabytes(hierarchy) == 128  # STREAM: each array 4x the total LLC
    assert roofline.dram_megabytes([roofline.Cache(2, 1 << 20, 1)]) == 64  # never below 64 MiB
    assert roofline.dram_megabytes([roofline.Cache(3, 1 << 30, 2)]) == roofline.MAX_DRAM_MB
    assert roofline.caches(tmp_path / "absent") == []
    assert roofline.dram_megabytes([]) == roofline.FALLBACK_DRAM_MB


def test_gpu_catalog_carries_sources() -> None:
    for entry in gpus.GPUS.values():
        assert entry.source and entry.peak("fp32") > 1e12 and entry.memory_bandwidth > 1e11
    assert gpus.gpu("a100").ridge() == pytest.approx(19.5e12 / 2039e9)
    assert gpus.gpu("H100").roof("bf16").ridge == pytest.approx(gpus.gpu("H100").ridge("bf16"))
    with pytest.raises(ValueError, match="unknown GPU 'Z80'"):
        gpus.gpu("Z80")


def test_plot_draws_the_roof_and_points() -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    roofline.plot(ax, roofline.Peaks("toy", 100e9, 10e9), [("k", 2.0, 15e9)])
    roof = ax.get_lines()[0].get_ydata()
    assert roof.max() == pytest.approx(100) and roof.min() == pytest.approx(10 / 16)
    assert [t.get_text() for t in ax.texts] == ["k"]
    plt.close(fig)
