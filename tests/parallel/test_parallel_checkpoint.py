"""Kill a rank mid-training, restart from the last complete checkpoint, end bitwise equal.

Data parallelism (DDP) and ZeRO-3 each train the GPT for 8 steps with a checkpoint every 3; in
the first attempt rank 1 is killed (SIGKILL) at step 5. The launcher stops the other rank, the
second attempt resumes from step 3 and ends with exactly the parameters of a run that was never
interrupted. Nothing is left behind: no child process, no shared-memory file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from processes import nothing_left_behind

import mlsys
from mlsys import optim
from mlsys.comm import DistributedDataParallel, launch
from mlsys.parallel.checkpoint import Checkpointer, crash, run_with_restarts
from mlsys.parallel.gpt import GPT, GPTConfig, gpt_loss, markov_tokens
from mlsys.parallel.zero import ZeroDataParallel

CONFIG = GPTConfig(vocab=16, seq_len=8, dim=16, heads=2, layers=1)
STEPS, EVERY, KILL_AT = 8, 3, 5


@pytest.fixture(autouse=True)
def _nothing_left_behind():
    with nothing_left_behind(what="a rank process"):
        yield


def _batch(step: int, rank: int) -> tuple:
    return markov_tokens(4, CONFIG, seed=1000 * step + rank)


def _ddp(group, attempt: int, folder: str, kill: bool) -> list[np.ndarray]:  # noqa: ANN001
    mlsys.manual_seed(0)
    model = GPT(CONFIG)
    ddp = DistributedDataParallel(model, group, overlap=False)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    saver = Checkpointer(folder, group)
    start, state = saver.load()
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
    for step in range(start, STEPS):
        if kill and attempt == 0 and group.rank == 1 and step == KILL_AT:
            crash()
        opt.zero_grad()
        gpt_loss(ddp(_batch(step, group.rank)[0]), _batch(step, group.rank)[1]).backward()
        opt.step()
        if (step + 1) % EVERY == 0:
            saver.save(step + 1, {"model": model.state_dict(), "optimizer": opt.state_dict()})
    return [p.data.copy() for p in model.parameters()]


def _zero3(group, attempt: int, folder: str, kill: bool) -> list[np.ndarray]:  # noqa: ANN001
    mlsys.manual_seed(0)
    zero = ZeroDataParallel(GPT(CONFIG).layers(), group, 3, lambda ps: optim.Adam(ps, lr=1e-2))
    saver = Checkpointer(folder, group)
    start, state = saver.load()
    if state is not None:
        zero.load_shard_state(state)
    for step in range(start, STEPS):
        if kill and attempt == 0 and group.rank == 1 and step == KILL_AT:
            crash()
        zero.zero_grad()
        x, y = _batch(step, group.rank)
        gpt_loss(zero(x), y).backward()
        zero.step()
        if (step + 1) % EVERY == 0:
            saver.save(step + 1, zero.shard_state())
    return zero.full_parameters()


@pytest.mark.parametrize("train", [_ddp, _zero3], ids=["ddp", "zero3"])
def test_a_killed_run_restarts_from_its_checkpoint_and_ends_bitwise_equal(train, tmp_path) -> None:  # noqa: ANN001
    clean = run_with_restarts(train, 2, str(tmp_path / "clean"), False)
    killed = run_with_restarts(train, 2, str(tmp_path / "killed"), True)
    assert clean.failures == 0 and [a.failed_rank for a in killed.attempts] == [1, None]
    for rank in range(2):
        for a, b in zip(clean.results[rank], killed.results[rank]):
            np.testing.assert_array_equal(a, b)
    assert sorted(os.listdir(tmp_path / "killed")) == ["step-00000003", "step-00000006"]


def _partial(group, folder: str) -> tuple:  # noqa: ANN001
    saver = Checkpointer(folder, group, keep=1)
    saver.save(2, {"x": group.rank})
    if group.rank == 0:  # a save that died half way: one rank's file and no marker
        (Path(folder) / "step-00000004").mkdir()
        (Path(folder) / "step-00000004" / "rank-0.pkl").write_bytes(b"garbage")
    group.barrier()
    return saver.load()


def test_only_complete_checkpoints_are_loaded(tmp_path) -> None:  # noqa: ANN001
    assert launch(_partial, 2, str(tmp_path)) == [(2, {"x": 0}), (2, {"x": 1})]
    with pytest.raises(ValueError, match="max_restarts must be a non-negative integer, got -1"):
        run_with_restarts(_partial, 2, max_restarts=-1)
