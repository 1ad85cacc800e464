"""Tensors that live on the "cuda" device: residency, counted transfers, the caching allocator.

Run under Numba's CUDA simulator when there is no GPU (every count is the same there).
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

import mlsys
from mlsys.kernels import to_device
from mlsys.kernels.cuda.memory import (
    ALLOCATOR,
    MIN_BLOCK,
    CachingAllocator,
    DeviceArray,
    count_transfers,
    download,
    memory_stats,
    round_size,
    upload,
)


def _cuda(array: np.ndarray, requires_grad: bool = False) -> mlsys.Tensor:
    return mlsys.tensor(array, requires_grad=requires_grad).to("cuda")


def test_data_crosses_the_bus_only_when_asked(rng: np.random.Generator) -> None:
    a = rng.standard_normal((3, 4), dtype=np.float32)
    with count_transfers() as moved:
        x = _cuda(a, requires_grad=True)
    assert isinstance(x._data, DeviceArray) and (moved.to_device, moved.to_device_bytes) == (1, a.nbytes)
    with count_transfers() as moved:
        y = ((x * 2.0 + 1.0).relu() @ x.T).softmax(1)  # numbers travel with the launches
        loss = y.sum()
        loss.backward()
        z = x.detach().reshape(4, 3)[1:].T  # views: no copies
    assert moved.count == 0
    assert isinstance(y._data, DeviceArray) and isinstance(x.grad._data, DeviceArray)
    assert z._base is x and isinstance(z._data, DeviceArray) and z._data.block is x._data.block
    expected = mlsys.tensor(a, requires_grad=True)
    ((expected * 2.0 + 1.0).relu() @ expected.T).softmax(1).sum().backward()
    with count_transfers() as moved:
        np.testing.assert_allclose(loss.item(), 3.0, rtol=1e-6)
        np.testing.assert_allclose(x.grad.to("cpu").numpy(), expected.grad.numpy(), rtol=1e-4,
                                   atol=1e-6)
        host = z.numpy()
        text = repr(y)
    assert (moved.to_host, moved.to_device) == (4, 0)
    np.testing.assert_array_equal(host, a.reshape(4, 3)[1:].T)
    assert not host.flags.writeable and "device='cuda'" in text


def test_writes_stay_on_the_device_and_views_see_them() -> None:
    x = _cuda(np.zeros((2, 3), np.float32))
    row = x[1]
    with count_transfers() as moved:
        x.add_(1.0)
        x[0, 1:] = 5.0
        row.mul_(3.0)
    assert moved.count == 0
    np.testing.assert_array_equal(x.numpy(), [[1, 5, 5], [3, 3, 3]])
    assert x._version == 3
    with pytest.raises(RuntimeError, match="read-only"):
        x[0].expand(4, 3).add_(1.0)


def test_moving_between_devices_copies_and_keeps_requires_grad() -> None:
    x = mlsys.tensor(np.arange(6, dtype=np.float32), requires_grad=True)
    y = x.to("cuda")
    assert y.is_leaf and y.requires_grad and y.device == "cuda"
    back = y.detach().to("numba")  # a different memory: a copy on the host
    assert isinstance(back._data, np.ndarray) and back.device == "numba"
    np.testing.assert_array_equal(back.data, x.data)
    with pytest.raises(RuntimeError, match="move leaf tensors"):
        (y * 2).to("cpu")
    assert (y * 2).detach().to("cpu").device == "cpu"


def test_to_device_moves_parameters_in_place_and_factories_fill_on_the_device() -> None:
    model = mlsys.models.mlp(4, 3, 2)
    before = [id(p) for p in model.parameters()]
    with count_transfers() as moved:
        to_device(model, "cuda")
    assert [id(p) for p in model.parameters()] == before
    assert all(isinstance(p._data, DeviceArray) for p in model.parameters())
    assert moved.to_device == len(before) and moved.to_host == 0
    with count_transfers() as moved:
        z = mlsys.zeros(2, 3, device="cuda")
        o = mlsys.ones_like(z)
        f = mlsys.full((2,), 7.0, device="cuda")
    assert moved.count == 0 and z.device == o.device == f.device == "cuda"
    np.testing.assert_array_equal(o.numpy() + f.numpy()[0], np.full((2, 3), 8.0))


def test_device_arrays_refuse_numpy_functions_and_pickle_through_the_host() -> None:
    d = upload(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert np.shape(d) == (2, 3) and np.broadcast_to(d[0], (4, 3)).strides == (0, 1)
    with pytest.raises(TypeError, match="zeros_like"):
        np.zeros_like(d)
    again = pickle.loads(pickle.dumps(d))
    assert isinstance(again, DeviceArray) and again.block is not d.block
    np.testing.assert_array_equal(download(again), download(d))
    t = pickle.loads(pickle.dumps(_cuda(np.ones(3, np.float32))))
    assert t.device == "cuda" and isinstance(t._data, DeviceArray)


def test_strided_views_index_like_numpy() -> None:
    a = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    d = upload(a)
    for key in [(1,), (slice(None), 2), (Ellipsis, 3), (slice(None, None, -1), None, 1),
                (slice(1, 3), slice(None, None, 2), -1), (0, 0, 0)]:
        np.testing.assert_array_equal(download(d[key]), a[key], err_msg=str(key))
    np.testing.assert_array_equal(download(d.transpose((2, 0, 1)).reshape(5, 12)),
                                  a.transpose(2, 0, 1).reshape(5, 12))
    with pytest.raises(IndexError, match="only basic indexing"):
        d[np.array([0, 1])]
    with pytest.raises(ValueError, match="cannot reshape"):
        d.reshape(7, 9)


def test_the_allocator_reuses_freed_blocks_by_size() -> None:
    pool = CachingAllocator()
    first = pool.malloc(1000)
    raw = first.raw
    assert first.nbytes == round_size(1000) == 2 * MIN_BLOCK and pool.stats.device_mallocs == 1
    del first
    assert pool.stats.allocated_bytes == 0 and pool.stats.cached_bytes == 2 * MIN_BLOCK
    again = pool.malloc(900)  # rounds to the same size: served from the cache
    assert again.raw is raw and pool.stats.cache_hits == 1 and pool.stats.device_mallocs == 1
    other = pool.malloc(5000)
    assert other.raw is not raw and pool.stats.device_mallocs == 2
    assert pool.stats.peak_allocated_bytes == 2 * MIN_BLOCK + round_size(5000)
    del again, other
    pool.empty_cache()
    assert pool.stats.reserved_bytes == 0


def test_a_training_loop_stops_calling_the_driver() -> None:
    mlsys.manual_seed(0)
    model = to_device(mlsys.models.mlp(8, 8, 3), "cuda")
    opt = mlsys.optim.SGD(model.parameters(), lr=0.1)
    x = _cuda(np.ones((4, 8), np.float32))
    y = _cuda(np.array([0, 1, 2, 0]))
    mallocs = []
    for _ in range(3):
        before = ALLOCATOR.stats.device_mallocs
        mlsys.training.train_step(model, opt, x, y)
        mallocs.append(ALLOCATOR.stats.device_mallocs - before)
    assert mallocs[-1] == 0 and memory_stats()["cache_hits"] > 0


def test_mixing_devices() -> None:
    x = _cuda(np.ones(3, np.float32))
    with count_transfers() as moved:
        y = x + np.arange(3, dtype=np.float32)  # a host array with dimensions: uploaded
    assert moved.to_device == 1
    np.testing.assert_array_equal(y.numpy(), [1, 2, 3])
    with pytest.raises(RuntimeError, match="different devices, 'numba' and 'cuda'"):
        x.detach().to("numba") + x


def test_a_primitive_without_a_kernel_runs_the_reference_on_copies() -> None:
    p = _cuda(np.full(3, 0.25, np.float32))
    with warnings.catch_warnings(record=True) as notes, count_transfers() as moved:
        warnings.simplefilter("always")
        out = mlsys.nn.functional.binary_cross_entropy(p, p, reduction="none")
    assert out.device == "cuda" and moved.to_host == 2 and moved.to_device == 1
    assert any("binary_cross_entropy on device 'cuda'" in str(n.message) for n in notes)
    with pytest.raises(ValueError, match="probabilities in"):
        mlsys.nn.functional.binary_cross_entropy(p * 8.0, p)
