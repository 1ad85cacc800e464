"""DataLoader with worker processes: same batches as without, seeded workers, errors that name the
worker and the index, and no process or file descriptor left behind, however the epoch ends."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from processes import alive, children

import mlsys
from mlsys.data import DataLoader, Dataset, TensorDataset, Transformed, get_worker_info


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def no_leftover_workers():
    before = children()
    yield
    assert children() <= before, "a DataLoader worker outlived its epoch"


class Numbered(Dataset):
    """Example i is (i, i * 10); optional failures and delays at chosen indices."""

    def __init__(self, n: int, fail_at: int | None = None, error: type = ValueError,
                 sleep: float = 0.0, kill_at: int | None = None) -> None:
        self.n, self.fail_at, self.error, self.sleep, self.kill_at = n, fail_at, error, sleep, kill_at

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if i == self.fail_at:
            raise self.error(f"bad example {i}")
        if i == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(self.sleep)
        return np.array([i], dtype=np.int64), np.int64(i * 10)


class Draws(Dataset):
    """Each example records which worker read it and what each global generator gave there."""

    def __len__(self) -> int:
        return 24

    def __getitem__(self, i: int):
        info = get_worker_info()
        return (np.array([i, -1 if info is None else info.id]),
                np.array([np.random.random(), random.random(), mlsys.random.generator().random()]))


def batches(loader: DataLoader) -> list[list[list[int]]]:
    return [[t.data.tolist() for t in batch] for batch in loader]


@pytest.mark.parametrize("num_workers, prefetch_factor, tensors, drop_last",
                         [(1, 1, False, True), (2, None, True, False), (3, 4, False, False)])
def test_workers_return_the_same_batches_in_the_same_order(num_workers, prefetch_factor, tensors,
                                                           drop_last) -> None:
    dataset = TensorDataset(np.arange(53.0), np.arange(53) % 7) if tensors else Numbered(53)
    plain = DataLoader(dataset, 8, shuffle=True, drop_last=drop_last, seed=5)
    workers = DataLoader(dataset, 8, shuffle=True, drop_last=drop_last, seed=5,
                         num_workers=num_workers, prefetch_factor=prefetch_factor)
    for _ in range(2):  # two epochs: each draws the same new order in both
        expected = batches(plain)
        assert batches(workers) == expected
        assert len(expected) == len(plain) == (6 if drop_last else 7)


def test_workers_are_seeded_per_worker_and_reproducibly() -> None:
    def run(seed: int) -> tuple[np.ndarray, np.ndarray]:
        loader = DataLoader(Draws(), 4, seed=seed, num_workers=3)
        ids, draws = zip(*[(ids.data, d.data) for ids, d in loader])
        return np.concatenate(ids), np.concatenate(draws)

    ids, draws = run(seed=1)
    assert ids[:, 1].tolist() == [(i // 4) % 3 for i in range(24)]  # batch k from worker k mod 3
    first_draws = [draws[ids[:, 1] == w][0] for w in range(3)]
    for column in range(3):  # numpy, random and mlsys: each worker starts from its own seed
        assert len({round(d[column], 12) for d in first_draws}) == 3
    assert np.array_equal(run(seed=1)[1], draws)  # same seed, same draws
    assert not np.array_equal(run(seed=2)[1], draws)
    loader = DataLoader(Draws(), 4, seed=1, num_workers=3)
    epochs = [np.concatenate([d.data for _, d in loader]) for _ in range(2)]
    assert not np.array_equal(epochs[0], epochs[1])  # a new base seed every epoch


def test_worker_init_fn_runs_in_each_worker_with_its_id() -> None:
    class Tagged(Dataset):
        def __len__(self) -> int:
            return 6

        def __getitem__(self, i: int):
            return np.array([i, tag])

    def init(worker_id: int) -> None:
        global tag
        tag = 100 + worker_id

    got = np.concatenate([b[0].data for b in DataLoader(Tagged(), 2, num_workers=2, worker_init_fn=init)])
    assert got[:, 1].tolist() == [100, 100, 101, 101, 100, 100]


def test_an_error_in_a_worker_names_the_worker_and_the_index() -> None:
    loader = DataLoader(Numbered(40, fail_at=37), 4, num_workers=2)
    seen = []
    with pytest.raises(ValueError, match=r"worker 1 \(pid \d+\) while loading dataset index 37") as error:
        for x, _ in loader:
            seen.append(x.data[0, 0])
    assert "bad example 37" in str(error.value) and "Original traceback" in str(error.value)
    assert len(seen) == 9  # batches 0..8 arrive; batch 9 (from worker 1) holds index 37
    with pytest.raises(RuntimeError, match=r"KeyError in DataLoader worker 0 .*index 2"):
        list(DataLoader(Numbered(8, fail_at=2, error=KeyError), 4, num_workers=1))

    def broken_init(worker_id: int) -> None:
        raise OSError(f"no device for worker {worker_id}")

    with pytest.raises(OSError, match=r"worker 0 \(pid \d+\) in worker_init_fn"):
        list(DataLoader(Numbered(8), 4, num_workers=1, worker_init_fn=broken_init))


def test_a_worker_that_dies_is_reported_not_waited_for() -> None:
    with pytest.raises(RuntimeError, match=r"worker 1 \(pid \d+\) .*killed by SIGKILL"):
        list(DataLoader(Numbered(16, kill_at=5), 4, num_workers=2))


def test_timeout_ends_a_stuck_epoch() -> None:
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"timed out: no batch 0 from worker 0 .*timeout=0.2 s"):
        list(DataLoader(Numbered(4, sleep=30.0), 4, num_workers=1, timeout=0.2))
    assert time.monotonic() - start < 10  # the stuck worker is terminated, not awaited


def test_break_exception_and_collection_stop_the_workers() -> None:
    loader = DataLoader(Numbered(64, sleep=0.002), 4, num_workers=2)
    before = children()
    for _ in loader:
        assert len(children() - before) == 2
        break
    assert children() == before
    with pytest.raises(FloatingPointError, match="the training step failed"):
        for _ in loader:
            raise FloatingPointError("the training step failed")
    assert children() == before
    iterator = iter(loader)
    next(iterator)
    del iterator
    assert children() == before


def test_epochs_leave_no_file_descriptors_behind() -> None:
    loader = DataLoader(Numbered(12), 4, num_workers=2)
    list(loader)
    fds = open_fds()
    for _ in range(3):
        list(loader)
        next(iter(loader))
    assert open_fds() == fds


def test_workers_exit_when_the_main_process_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "victim.py"
    script.write_text(textwrap.dedent("""
        import os, signal, sys, time
        import numpy as np
        from mlsys.data import DataLoader, Transformed, TensorDataset
        slow = Transformed(TensorDataset(np.zeros((64, 2))), lambda x: (time.sleep(0.05), x)[1])
        iterator = iter(DataLoader(slow, 2, num_workers=2))
        next(iterator)
        print(" ".join(str(p.pid) for p in iterator._processes), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == -signal.SIGKILL, result.stderr
    pids = [int(p) for p in result.stdout.split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 10
    while any(map(alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(alive, pids)), f"orphaned workers {[p for p in pids if alive(p)]}"


def test_spawned_workers_give_the_same_batches() -> None:
    dataset = TensorDataset(np.arange(20.0), np.arange(20))
    spawned = DataLoader(dataset, 6, shuffle=True, num_workers=1, multiprocessing_context="spawn")
    assert batches(spawned) == batches(DataLoader(dataset, 6, shuffle=True))


def test_transformed_applies_to_the_features_only() -> None:
    data = Transformed(TensorDataset(np.arange(4.0), np.arange(4)), lambda x: x * 2)
    assert [float(x) for x, _ in [data[i] for i in range(4)]] == [0.0, 2.0, 4.0, 6.0]
    assert int(data[3][1]) == 3
    with pytest.raises(TypeError, match="transform must be callable"):
        Transformed(data, 3)


@pytest.mark.parametrize("kwargs, message", [
    ({"num_workers": -1}, "num_workers must be an integer >= 0, got -1"),
    ({"num_workers": 1.5}, "num_workers must be an integer >= 0, got 1.5"),
    ({"prefetch_factor": 2}, "prefetch_factor=2 needs num_workers > 0"),
    ({"num_workers": 1, "prefetch_factor": 0}, "prefetch_factor must be a positive integer, got 0"),
    ({"timeout": -1.0}, r"timeout must be finite seconds >= 0 \(0: wait forever\), got -1.0"),
    ({"timeout": float("nan")}, "timeout must be finite seconds >= 0"),
    ({"multiprocessing_context": "threads"}, "multiprocessing_context must be one of"),
    ({"worker_init_fn": 3}, "worker_init_fn must be callable, got 3"),
])
def test_bad_options_are_refused_with_the_value(kwargs, message) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        DataLoader(Numbered(4), 2, **kwargs)
    with pytest.raises(TypeError, match="dataset must have __len__ and __getitem__"):
        DataLoader(object(), 2)
