"""Pipeline stages on real processes: the schedules' losses, gradients, bubble and memory.

Every schedule (GPipe, 1F1B, interleaved 1F1B) at 2 and 4 stages trains the float64 GPT to the
same loss and gradients as one process. Each device's activation sets alive at once equal the
schedule's ``peak_in_flight`` and its bytes that many sets. With stages that sleep instead of
computing (so load from other programs on the cores hardly distorts it) the measured bubble is the
closed form ``(p - 1) / (v m + p - 1)`` to 0.03.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import mlsys
import simulators.training as simulated
from mlsys.comm import launch
from mlsys.nn.module import Module
from mlsys.ops import Cost, Primitive
from mlsys.parallel import schedules
from mlsys.parallel.gpt import GPT, GPTConfig, gpt_loss, markov_tokens, to_float64
from mlsys.parallel.pipeline import Pipeline, split_layers
from mlsys.parallel.schedules import bubble_fraction, build, peak_in_flight
from mlsys.tensor import Tensor, apply

CONFIG = GPTConfig(vocab=32, seq_len=8, dim=16, heads=4, layers=2)
CASES = [("gpipe", 2, 4, 1), ("1f1b", 2, 4, 1), ("interleaved", 2, 4, 2), ("gpipe", 4, 4, 1),
         ("1f1b", 4, 4, 1), ("interleaved", 4, 4, 1)]


def test_the_simulators_run_the_same_schedule_objects() -> None:
    assert simulated.memory.build is schedules.build and simulated.Slot is schedules.Slot
    assert simulated.peak_in_flight is schedules.peak_in_flight


def _dense() -> tuple[float, dict[str, np.ndarray]]:
    mlsys.manual_seed(0)
    model = to_float64(GPT(CONFIG))
    x, y = markov_tokens(8, CONFIG)
    loss = model.loss(x, y)
    loss.backward()
    return float(loss.item()), {n: p.grad.data.copy() for n, p in model.named_parameters()}


def _stage(group, name: str, m: int, v: int) -> tuple:  # noqa: ANN001
    mlsys.manual_seed(0)
    model = to_float64(GPT(CONFIG))
    names = {id(p): n for n, p in model.named_parameters()}
    pipe = Pipeline(model.layers(), group, name, m, v, loss_fn=gpt_loss)
    report = pipe.step(*markov_tokens(8, CONFIG))
    grads = {names[id(p)]: p.grad.data.copy() for p in pipe.parameters()}
    return report, grads, [s.slot for s in report.slots]


@pytest.mark.parametrize("name,p,m,v", CASES)
def test_pipeline_equals_one_process_and_holds_what_the_schedule_says(name: str, p: int, m: int,
                                                                       v: int) -> None:
    loss, dense = _dense()
    results = launch(_stage, p, name, m, v)
    schedule = build(name, p, m, v)
    seen = {}
    for device, (report, grads, order) in enumerate(results):
        assert order == schedule[device]  # ran its slots in the schedule's order
        assert report.peak_sets == peak_in_flight(schedule)[device]
        if v == 1:  # one chunk per device: every activation set has the same size
            assert report.peak_bytes == report.peak_sets * report.set_bytes[device]
        for n, g in grads.items():
            np.testing.assert_allclose(g, dense[n], rtol=1e-10, atol=1e-12, err_msg=n)
        seen.update(grads)
    assert set(seen) == set(dense)  # every parameter lives on exactly one device
    assert results[(p * v - 1) % p][0].loss == pytest.approx(loss, rel=1e-12)


SECONDS = 0.03


def _sleep(x, *, seconds):  # noqa: ANN001, ANN202
    time.sleep(seconds)
    return x.copy()


SLEEP = Primitive("sleep", forward=_sleep, shape=lambda x, **_: x, cost=lambda x, **_: Cost(0, 0),
                  vjp=lambda g, out, x, *, seconds: (apply(SLEEP, g, seconds=2 * seconds),))


class Sleeper(Module):
    """A stage that takes ``SECONDS`` forward and twice that backward, without using a core."""

    def forward(self, x: Tensor) -> Tensor:
        return apply(SLEEP, x, seconds=SECONDS)


def _timed(group, name: str, m: int, v: int) -> list[tuple[float, float, float]]:  # noqa: ANN001
    layers = [Sleeper() for _ in range(group.world_size * v)]
    pipe = Pipeline(layers, group, name, m, v, loss_fn=lambda out, y: out.sum())
    x = mlsys.tensor(np.ones((m, 2)), requires_grad=True)  # so the first stage has a backward
    pipe.step(x, x)  # warm up
    return [(r.start, r.end, r.busy) for r in (pipe.step(x, x) for _ in range(3))]


@pytest.mark.parametrize("name,p,m,v", [("1f1b", 2, 4, 1), ("gpipe", 4, 4, 1),
                                        ("interleaved", 2, 4, 2)])
def test_measured_bubble_is_the_closed_form(name: str, p: int, m: int, v: int) -> None:
    """The least bubble of three steps (the one other programs disturbed least)."""
    steps = list(zip(*launch(_timed, p, name, m, v)))  # per step, every device's timing
    bubbles = []
    for runs in steps:
        makespan = max(end for _, end, _ in runs) - min(start for start, _, _ in runs)
        bubbles.append(1 - sum(busy for *_, busy in runs) / (p * makespan))
    assert min(bubbles) == pytest.approx(bubble_fraction(name, p, m, v), abs=0.03)


def _bad(group) -> str:  # noqa: ANN001
    layers = [Sleeper() for _ in range(4)]
    with pytest.raises(ValueError, match="chunks_per_device=2 needs the 'interleaved' schedule"):
        Pipeline(layers, group, "1f1b", 4, chunks_per_device=2)
    with pytest.raises(ValueError, match="microbatches .3. divisible by stages .2."):
        Pipeline(layers, group, "interleaved", 3, chunks_per_device=2)
    pipe = Pipeline(layers, group, "1f1b", 3, loss_fn=lambda out, y: out.sum())
    with pytest.raises(ValueError, match="a batch of 4 does not split into 3 equal micro-batches"):
        pipe.step(mlsys.tensor(np.ones((4, 2))), mlsys.tensor(np.ones(4)))
    return "ok"


def test_bad_settings_are_named() -> None:
    assert launch(_bad, 2) == ["ok", "ok"]
    with pytest.raises(ValueError, match="cannot cut 2 layers into 3 chunks"):
        split_layers([Sleeper(), Sleeper()], 3)
