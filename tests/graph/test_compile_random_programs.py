"""Random programs: mlsys.compile == eager across repeated calls, new values, new shapes and
state changes (eval mode, new parameter values, new parameters, reseeding), forward only and as
training steps (backward and an optimizer step inside)."""

import copy

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import mlsys
from mlsys import nn, optim
from mlsys.graph.passes import DEFAULT_PASSES, fuse_elementwise

WIDTH = 6
# Every pass but fusion: Numba takes about a second per new kernel, and random programs make new
# kernels; the fused kernels are checked against numpy in test_passes.py and below.
PASSES = tuple(p for p in DEFAULT_PASSES if p is not fuse_elementwise)

# Each op maps (module, values so far, index tensor) to a new (batch, WIDTH) value.
OPS = [
    lambda m, vs, i: m.lin(vs[-1]),
    lambda m, vs, i: m.drop(vs[-1]),
    lambda m, vs, i: vs[-1] * m.scale + m.frozen,  # a buffer and a frozen parameter
    lambda m, vs, i: vs[-1] + mlsys.randn(WIDTH) * 0.1,
    lambda m, vs, i: vs[-1].detach() * 0.5 + vs[-1].clone(),
    lambda m, vs, i: vs[-1][:, i],  # an integer tensor index inside a tuple
    lambda m, vs, i: vs[0] + vs[-1],
    lambda m, vs, i: vs[-1] * vs[len(vs) // 2],
    lambda m, vs, i: (vs[-1] * 0.5).tanh() - vs[0].sigmoid(),
    lambda m, vs, i: vs[-1].relu() / (vs[-1].abs() + 1.0),
    lambda m, vs, i: vs[-1] - vs[-1].mean(1, keepdim=True),
    lambda m, vs, i: vs[-1].softmax(-1) * 3.0,
    lambda m, vs, i: vs[-1] * 2.0 if vs[-1].sum() > 0 else vs[-1] - 1.0,  # a bool() guard
]


class Program(nn.Module):
    def __init__(self, ops):
        super().__init__()
        self.ops = ops
        self.lin = nn.Linear(WIDTH, WIDTH)
        self.drop = nn.Dropout(0.3)
        self.frozen = nn.Parameter(mlsys.randn(WIDTH).data, requires_grad=False)
        self.register_buffer("scale", mlsys.rand(WIDTH) + 0.5)

    def forward(self, x, i):
        values = [self.lin(x)]  # every program has a parameter to train
        for k in self.ops:
            values.append(OPS[k](self, values, i))
        return values[-1], values[len(values) // 2].sum(1)


class Step:
    """A training step of ``Program``: backward and an optimizer step inside."""

    def __init__(self, program, optimizer):
        self.program, self.optimizer = program, optimizer

    def __call__(self, x, i):
        self.optimizer.zero_grad()
        out, side = self.program(x, i)
        loss = (out * out).mean() + side.mean()
        loss.backward()
        self.optimizer.step()
        return loss


def _arguments(rng, batch):
    return (mlsys.tensor(rng.standard_normal((batch, WIDTH)).astype(np.float32)),
            mlsys.tensor(rng.permutation(WIDTH)[:WIDTH]))


def _apply(event, models, rng, optimizers):
    for model in models:
        if event == "eval":
            model.eval()
        elif event == "train":
            model.train()
    if event == "load":
        state = {k: rng.standard_normal(v.shape) for k, v in models[0].state_dict().items()}
        for model in models:
            model.load_state_dict(state)
    elif event == "new parameter":
        bias = rng.standard_normal(WIDTH).astype(np.float32)
        for model, opt in zip(models, optimizers):
            old, model.lin.bias = model.lin.bias, nn.Parameter(bias.copy())
            if opt is not None:
                params = opt.param_groups[0]["params"]
                params[next(k for k, p in enumerate(params) if p is old)] = model.lin.bias
    elif event == "lr":
        for opt in optimizers:
            if opt is not None:
                opt.param_groups[0]["lr"] *= 0.5


ALL_EVENTS = ["call", "shape", "eval", "train", "load", "new parameter", "lr"]


def check_program(ops, events, train, adam, passes=PASSES):
    """Run ``Program(ops)`` (or its training step) eagerly and compiled through ``events``: each
    call twice with the same seed (the first may trace, the second runs a graph), comparing
    results and parameters."""
    rng = np.random.default_rng(len(ops) * 100 + sum(ops))
    mlsys.manual_seed(0)
    eager = Program(ops)
    twin = copy.deepcopy(eager)
    if train:
        make = (lambda ps: optim.Adam(ps, lr=1e-2)) if adam else (
            lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9))
        eager_fn = Step(eager, make(list(eager.parameters())))
        compiled = mlsys.compile(Step(twin, make(list(twin.parameters()))), passes=passes,
                                 cache_limit=64)
        optimizers = [eager_fn.optimizer, compiled.fn.optimizer]
    else:
        eager_fn, optimizers = eager, [None, None]
        compiled = mlsys.compile(twin, passes=passes, cache_limit=64)
    batch = 3
    for seed, event in enumerate(["call", *events]):
        if event == "shape":
            batch += 2
        _apply(event, [eager, twin], rng, optimizers)
        x, i = _arguments(rng, batch)
        for _ in range(2):
            mlsys.manual_seed(seed)
            want = eager_fn(x, i)
            mlsys.manual_seed(seed)
            got = compiled(x, i)
            for w, g in zip(_leaves(want), _leaves(got)):
                np.testing.assert_allclose(g.data, w.data, rtol=1e-4, atol=1e-5)
        for p, q in zip(eager.parameters(), twin.parameters()):
            np.testing.assert_allclose(q.data, p.data, rtol=1e-4, atol=1e-5)
    assert all(isinstance(entries, list) for entries in compiled.cache.values())  # no fallback


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@example(ops=list(range(len(OPS))), events=ALL_EVENTS, train=True, adam=True)
@example(ops=list(range(len(OPS))), events=ALL_EVENTS, train=False, adam=False)
@given(ops=st.lists(st.integers(0, len(OPS) - 1), min_size=1, max_size=6),
       events=st.lists(st.sampled_from(ALL_EVENTS), min_size=2, max_size=6), train=st.booleans(),
       adam=st.booleans())
def test_compiled_random_programs_match_eager(ops, events, train, adam):
    check_program(ops, events, train, adam)


def test_fused_programs_match_eager():
    """A training step through the default passes, fusion and its generated kernels included."""
    check_program([10, 12, 4, 1], ["shape", "eval", "load", "lr"], train=True, adam=True,
                  passes=DEFAULT_PASSES)


def _leaves(result):
    return result if isinstance(result, tuple) else (result,)
