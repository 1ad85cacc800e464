"""RandomAffine against exact rotations and shifts; the loader benchmark's timing helpers."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mlsys
from mlsys.data import DataLoader, TensorDataset
from mlsys.data.bench import steady_step, step_times
from mlsys.data.transforms import RandomAffine


def test_random_affine_is_an_exact_rotation_and_shift_at_native_resolution() -> None:
    image = np.arange(16.0).reshape(4, 4)
    exact = RandomAffine(upsample=1)
    assert np.allclose(exact.apply(image, 90.0, (0.0, 0.0)), np.rot90(image))  # counter-clockwise
    moved = exact.apply(image, 0.0, (1.0, 0.0))  # one row down: the top row comes in empty
    assert np.allclose(moved[1:], image[:-1]) and np.allclose(moved[0], 0.0)
    smooth = RandomAffine(upsample=2).apply(image[None], 0.0, (0.0, 0.0))
    assert smooth.shape == (1, 4, 4) and abs(smooth.mean() - image.mean()) < 0.5


def test_random_affine_draws_from_the_engine_generator() -> None:
    image = np.random.default_rng(0).random((2, 8, 8))
    augment = RandomAffine(20.0, 1.0, upsample=2)
    mlsys.manual_seed(5)
    first = augment(image)
    mlsys.manual_seed(5)
    assert np.array_equal(augment(image), first) and not np.array_equal(augment(image), first)
    with pytest.raises(ValueError, match="upsample must be a positive integer, got 0"):
        RandomAffine(upsample=0)
    with pytest.raises(ValueError, match=r"expected an image shaped \(\.\.\., H, W\), got shape \(3,\)"):
        augment(np.zeros(3))


def test_step_times_and_the_steady_step() -> None:
    loader = DataLoader(TensorDataset(np.zeros((40, 2))), 4)
    seen = []
    ends = step_times(loader, lambda x: seen.append(x.shape), batches=6)
    assert len(ends) == 6 == len(seen) and all(b > a for a, b in zip(ends, ends[1:]))
    assert steady_step([0.0, 1.0, 2.0, 3.0, 5.0, 7.0, 9.0], warmup=3) == pytest.approx(2.0)
    with pytest.raises(ValueError, match=r"batches must be in \[1, 10\]"):
        step_times(loader, lambda x: None, batches=11)
    with pytest.raises(ValueError, match="need at least 5 steps after a warm-up of 3, got 4"):
        steady_step([0.0, 1.0, 2.0, 3.0])


def test_the_loader_bench_runs_with_its_default_batches(capsys) -> None:
    from mlsys.data.bench import main

    assert main(["--workers", "0", "--upsample", "1", "--hidden", "8", "--rounds", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["num_workers"] for r in rows] == [0] and rows[0]["speedup_vs_0"] == 1.0
