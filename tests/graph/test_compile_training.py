"""Compiled training steps: one update path (the optimizers' rules on Tensors, stored with assign)
shared with eager training, and gradients written back on every call."""

import copy

import numpy as np
import pytest

import mlsys
from mlsys import optim
from mlsys.graph import TrainStep
from mlsys.nn import functional as F

# Fused kernels sum in another order than numpy and may round a last bit differently, so a
# compiled step agrees with the eager one to a few float32 ulps per step, not bitwise.
RTOL, ATOL = 1e-5, 1e-6


def _batches(n=5, batch=16, seed=0):
    rng = np.random.default_rng(seed)
    return [(mlsys.tensor(rng.standard_normal((batch, 64)).astype(np.float32)),
             mlsys.tensor(rng.integers(0, 10, batch))) for _ in range(n)]


def _close(a, b):
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=RTOL, atol=ATOL)


OPTIMIZERS = {
    "adam": lambda ps: optim.Adam(ps, lr=1e-2, weight_decay=1e-3),
    "adamw": lambda ps: optim.AdamW(ps, lr=1e-2),
    "sgd-momentum-decay": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-3),
    "sgd-nesterov-dampening": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True,
                                                   dampening=0.1),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_a_compiled_step_trains_like_the_eager_one_step_after_step(name):
    eager_model = mlsys.models.mlp(hidden=32)
    compiled_model = copy.deepcopy(eager_model)
    eager = TrainStep(eager_model, OPTIMIZERS[name](eager_model.parameters()))
    compiled = mlsys.compile(TrainStep(compiled_model, OPTIMIZERS[name](compiled_model.parameters())))
    for x, y in _batches():
        np.testing.assert_allclose(compiled(x, y).data, eager(x, y).data, rtol=RTOL)
        _close(eager_model, compiled_model)
    # the first call made the optimizer state, the second traced the steady step, no more
    assert [len(entries) for entries in compiled.cache.values()] == [2]
    for s, t in zip(eager.optimizer.state_tensors(), compiled.fn.optimizer.state_tensors()):
        np.testing.assert_allclose(s.data, t.data, rtol=RTOL, atol=ATOL)


def test_compiled_forward_and_backward_set_grad_on_every_call():
    eager_model = mlsys.models.mlp(hidden=32)
    compiled_model = copy.deepcopy(eager_model)

    def loss_and_backward(model):
        def f(x, y):
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            return loss
        return f

    f_eager, f_compiled = loss_and_backward(eager_model), mlsys.compile(loss_and_backward(compiled_model))
    opt_eager = optim.Adam(eager_model.parameters(), lr=1e-2)
    opt_compiled = optim.Adam(compiled_model.parameters(), lr=1e-2)
    for x, y in _batches():
        opt_eager.zero_grad()
        f_eager(x, y)
        opt_eager.step()
        opt_compiled.zero_grad()
        f_compiled(x, y)
        for p, q in zip(eager_model.parameters(), compiled_model.parameters()):
            np.testing.assert_allclose(q.grad.data, p.grad.data, rtol=RTOL, atol=ATOL)
        opt_compiled.step()
        _close(eager_model, compiled_model)


def test_gradients_present_on_entry_accumulate_as_eagerly():
    w = mlsys.randn(3, requires_grad=True)
    f = mlsys.compile(lambda x: (x * w).sum().backward())
    x = mlsys.tensor([1.0, 2.0, 3.0])
    for k in range(1, 5):
        f(x)
        np.testing.assert_allclose(w.grad.data, k * x.data)
    w.grad = None
    f(x)
    np.testing.assert_allclose(w.grad.data, x.data)


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad_inside_the_step_in_both_modes(set_to_none):
    model = mlsys.models.mlp(hidden=8)
    opt = optim.SGD(model.parameters(), lr=0.1)

    def step(x, y):
        opt.zero_grad(set_to_none=set_to_none)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    reference = copy.deepcopy(model)
    ref_opt = optim.SGD(reference.parameters(), lr=0.1)
    compiled = mlsys.compile(step)
    for x, y in _batches():
        compiled(x, y)
        ref_opt.zero_grad()
        F.cross_entropy(reference(x), y).backward()
        ref_opt.step()
        _close(reference, model)
        for p, q in zip(model.parameters(), reference.parameters()):
            np.testing.assert_allclose(p.grad.data, q.grad.data, rtol=RTOL, atol=ATOL)


def test_a_new_learning_rate_or_loaded_state_reaches_the_compiled_step():
    model = mlsys.models.mlp(hidden=16)
    reference = copy.deepcopy(model)
    step = mlsys.compile(TrainStep(model, optim.Adam(model.parameters(), lr=1e-2)))
    eager = TrainStep(reference, optim.Adam(reference.parameters(), lr=1e-2))
    batches = _batches(6)
    for x, y in batches[:3]:
        step(x, y), eager(x, y)
    saved = eager.optimizer.state_dict()
    for opt in (step.fn.optimizer, eager.optimizer):
        opt.param_groups[0]["lr"] = 3e-3
    for x, y in batches[3:5]:
        step(x, y), eager(x, y)
    _close(reference, model)
    for opt in (step.fn.optimizer, eager.optimizer):  # back to the state after step 3
        opt.load_state_dict(saved)
    x, y = batches[5]
    step(x, y), eager(x, y)
    _close(reference, model)
    assert step.fn.optimizer.param_groups[0]["lr"] == 1e-2


def test_optimizer_state_is_tensors_that_keep_their_identity():
    model = mlsys.models.mlp(hidden=8)
    opt = optim.Adam(model.parameters())
    step = TrainStep(model, opt)
    x, y = _batches(1)[0]
    step(x, y)
    before = {id(t) for t in opt.state_tensors()}
    step(x, y)
    assert {id(t) for t in opt.state_tensors()} == before
    assert all(float(s["step"].data) == 2 for s in opt.state.values())
    with pytest.raises(ValueError, match="momentum and weight_decay must be >= 0"):
        optim.SGD(model.parameters(), lr=0.1, momentum=-0.5)
