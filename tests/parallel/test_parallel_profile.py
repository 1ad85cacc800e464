"""Profiling real steps into parts, and the simulator's predictions from them (no timing claims:
those are the benchmark's, ``mlsys bench parallel``)."""

from __future__ import annotations

import numpy as np

import mlsys
from mlsys import optim
from mlsys.comm import launch
from mlsys.parallel.gpt import GPT, GPTConfig, gpt_loss, markov_tokens, tensor_parallel
from mlsys.parallel.layout import layout
from mlsys.parallel.profile import Recording, Silent, profile_pipeline, profile_step
from mlsys.parallel.schedules import build
from simulators.core import Recorder
from simulators.training.engine_parallel import predict_pipeline, predict_step, real_pipeline_timeline

CONFIG = GPTConfig(vocab=16, seq_len=8, dim=16, heads=2, layers=2)


def _tp(group):  # noqa: ANN001, ANN202
    model = tensor_parallel(GPT(CONFIG), group)
    x, y = markov_tokens(4, CONFIG)

    def step() -> None:
        model.zero_grad()
        model.loss(x, y).backward()

    return step, lambda: sum(p.data.nbytes for p in model.parameters())


def test_a_tensor_parallel_step_makes_megatrons_all_reduces() -> None:
    profile = profile_step(_tp, 2, rounds=2)
    # forward: the embedding, 2 per block, 3 scalars per token in the loss; backward: 2 per
    # block and the output layer's input (Shoeybi et al.: 4 per layer and step)
    assert [c.collective for c in profile.calls] == ["all_reduce"] * 13
    activations = [c for c in profile.calls if c.shape == (4, 8, 16)]
    assert len(activations) == 1 + 4 * CONFIG.layers + 1
    assert len(profile.comm) == 13 and min(profile.comm) > 0 and profile.compute > 0
    prediction = predict_step(profile, "TP")
    assert prediction.predicted == profile.compute + sum(profile.comm)


def _silent_and_recording(group) -> list:  # noqa: ANN001
    silent = Silent(group.rank, 4)
    assert silent.all_gather(np.ones(3)).shape == (4, 3)
    assert silent.reduce_scatter(np.arange(10.0)).tolist() == [[0, 1, 2], [3, 4, 5], [6, 7],
                                                                [8, 9]][group.rank]
    if group.rank in (1, 3):
        assert silent.subgroup([3, 1]).rank == [3, 1].index(group.rank)
    recording = Recording(group)
    grid = layout(recording, tp=2, dp=2)
    grid.dp.all_reduce(np.ones(5), op="mean")
    grid.tp.all_gather(np.ones((2, 3), np.float32))
    return recording.calls


def test_recording_notes_each_collective_with_its_group() -> None:
    for calls in launch(_silent_and_recording, 4):
        assert [(c.collective, c.shape, c.op, c.group) for c in calls] == [
            ("all_reduce", (5,), "mean", 2), ("all_gather", (2, 3), None, 1)]
        assert calls[1].nbytes == 24


def _parts():  # noqa: ANN202
    mlsys.manual_seed(0)
    x, y = markov_tokens(8, CONFIG)
    return GPT(CONFIG).layers(), x, y, gpt_loss, lambda ps: optim.SGD(ps, lr=0.1)


def test_a_pipeline_profile_feeds_the_simulated_schedule() -> None:
    profile = profile_pipeline(_parts, 2, "1f1b", 4, rounds=2)
    assert set(profile.slot_seconds) == {(c, ph) for c in (0, 1) for ph in "FB"}
    assert 0 < profile.bubble < 1 and profile.p2p > 0 and profile.optimizer > 0
    simulated = Recorder()
    prediction = predict_pipeline(profile, simulated)
    real = real_pipeline_timeline(profile)
    assert prediction.predicted > profile.optimizer
    assert len(real) == sum(len(s) for s in build("1f1b", 2, 4)) == 16
    assert {e.resource for e in real.events} <= set(simulated.resources)
    assert real.to_chrome_trace().keys() == simulated.to_chrome_trace().keys()
