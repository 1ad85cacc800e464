"""``mlsys bench autodiff``: one MLP training step, the engine vs hand-written numpy vs PyTorch.

All three run the same model (``mlsys.models.mlp``: 64 -> hidden -> hidden -> 10, ReLU, softmax
cross-entropy, plain SGD) on the same batch of digits in the same process, so the ratios are the
figures: the engine's cost over hand-written numpy is its per-op overhead (tape, Tensor objects,
shape rules), and the ratio to PyTorch is how far that overhead is from a production framework's.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable, Iterator

import numba
import numpy as np
from threadpoolctl import threadpool_limits

from .. import cliargs, models, nn
from ..data import load_digits
from ..optim import SGD
from ..tensor import Tensor
from .report import emit, time_side_by_side

LR = 0.05
PYTORCH_TARGET = 1.2


def engine_step(model: nn.Module, x: Tensor, y: Tensor) -> Callable[[], None]:
    optimizer = SGD(model.parameters(), lr=LR)

    def step() -> None:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()

    return step


def numpy_step(weights: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> Callable[[], None]:
    """The same step written by hand: forward, softmax cross-entropy, backward, SGD."""
    onehot = np.eye(10, dtype=np.float32)[y]

    def step() -> None:
        acts, h = [x], x
        layers = list(zip(weights[::2], weights[1::2]))
        for i, (w, b) in enumerate(layers):
            h = h @ w.T + b
            if i < len(layers) - 1:
                h = np.maximum(h, 0)
            acts.append(h)
        shifted = h - h.max(1, keepdims=True)
        probs = np.exp(shifted)
        probs /= probs.sum(1, keepdims=True)
        g = (probs - onehot) / len(y)
        for i in reversed(range(len(layers))):
            w, b = layers[i]
            gw, gb = g.T @ acts[i], g.sum(0)
            if i:
                g = (g @ w) * (acts[i] > 0)
            w -= LR * gw
            b -= LR * gb

    return step


def torch_step(weights: list[np.ndarray], x: np.ndarray, y: np.ndarray, optimizer: str = "SGD",
               **hyper: float) -> Callable[[], None] | None:
    """PyTorch's eager step of the same MLP with ``torch.optim.<optimizer>`` (None without torch)."""
    try:
        import torch
    except ImportError:
        return None
    layers, tensors = [], [torch.tensor(w) for w in weights]
    for i, (w, b) in enumerate(zip(tensors[::2], tensors[1::2])):
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        layers += [lin, torch.nn.ReLU()] if i < len(tensors) // 2 - 1 else [lin]
    model = torch.nn.Sequential(*layers)
    opt = getattr(torch.optim, optimizer)(model.parameters(), **(hyper or {"lr": LR}))
    tx, ty = torch.tensor(x), torch.tensor(y)

    def step() -> None:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(tx), ty).backward()
        opt.step()

    return step


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Run the block with every thread pool on ``n`` threads (Numba's at most its own maximum):
    BLAS and OpenMP (threadpoolctl), Numba's parallel kernels, PyTorch's and numexpr's when they
    are installed, so that side-by-side figures compare equal numbers of cores. Restores them."""
    torch = importlib.import_module("torch") if importlib.util.find_spec("torch") else None
    numexpr = importlib.import_module("numexpr") if importlib.util.find_spec("numexpr") else None
    saved = (numba.get_num_threads(), torch and torch.get_num_threads(),
             numexpr and numexpr.get_num_threads())
    with threadpool_limits(n):
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        if torch is not None:
            torch.set_num_threads(n)
        if numexpr is not None:
            numexpr.set_num_threads(n)
        try:
            yield
        finally:
            numba.set_num_threads(saved[0])
            if torch is not None:
                torch.set_num_threads(saved[1])
            if numexpr is not None:
                numexpr.set_num_threads(saved[2])


def run(batch: int, hidden: int, repeat: int) -> list[dict]:
    data = load_digits("train")
    x, y = data.arrays[0][:batch], data.arrays[1][:batch]
    model = models.mlp(hidden=hidden)
    weights = [p.data.copy() for p in model.parameters()]
    steps = {"mlsys (eager)": engine_step(model, Tensor(x), Tensor(y)),
             "numpy by hand": numpy_step([w.copy() for w in weights], x, y),
             "pytorch (cpu)": torch_step(weights, x, y)}
    steps = {name: fn for name, fn in steps.items() if fn is not None}
    # many short samples, alternating: the best of each sees the least load from other programs
    times = dict(zip(steps, time_side_by_side(list(steps.values()), rounds=repeat, repeat=20,
                                              min_time=0.005)))
    rows = []
    for name, seconds in times.items():
        rows.append({"implementation": name, "batch": batch, "hidden": hidden,
                     "step_us": seconds * 1e6,
                     "vs_numpy": seconds / times["numpy by hand"],
                     "vs_pytorch": seconds / times["pytorch (cpu)"] if "pytorch (cpu)" in times
                     else None})
    return rows


def _overheads(rows: list[dict], batch: int) -> str:
    """``batch B: mlsys X us vs PyTorch Y us``: each step's time beyond hand-written numpy's."""
    us = {r["implementation"]: r["step_us"] for r in rows if r["batch"] == batch}
    base = us["numpy by hand"]
    return (f"batch {batch}: mlsys {us['mlsys (eager)'] - base:.0f} us vs "
            f"PyTorch {us['pytorch (cpu)'] - base:.0f} us")


def main(argv: list[str]) -> int:
    p = cliargs.ArgumentParser(prog="mlsys bench autodiff", description=__doc__)
    p.add_argument("--batch", type=cliargs.int_range(1, 1 << 16), nargs="+", default=[32, 128, 512],
                   help="batch sizes (default 32 128 512)")
    p.add_argument("--hidden", type=cliargs.int_range(1, 1 << 14), default=128,
                   help="MLP width (default 128)")
    p.add_argument("--repeat", type=cliargs.int_range(1, 1000), default=5,
                   help="alternating timing rounds")
    p.add_argument("--threads", type=cliargs.int_range(1, 1024), default=1,
                   help="BLAS and PyTorch threads for all three (default 1: a like-for-like step)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    available = len(load_digits("train"))
    if max(args.batch) > available:
        p.error(f"argument --batch: expected at most {available} (the digits training set), got "
                f"{max(args.batch)}")
    with threads(args.threads):
        rows = [row for b in args.batch for row in run(b, args.hidden, args.repeat)]
    engine = [r for r in rows if r["implementation"] == "mlsys (eager)"]
    if all(r["vs_pytorch"] for r in engine):
        worst = max(r["vs_pytorch"] for r in engine)
        notes = [f"target: the engine's step <= {PYTORCH_TARGET}x PyTorch's at every batch size: "
                 f"at most {worst:.2f}x, {'met' if worst <= PYTORCH_TARGET else 'NOT met'}",
                 "overhead per step over hand-written numpy (the same arithmetic): "
                 + "; ".join(_overheads(rows, b) for b in args.batch),
                 "the engine's overhead is Python run per op (Tensor objects, tape, VJP rules, "
                 "optimizer): about the same at every batch size, it weighs most at small ones"]
    else:
        notes = ["PyTorch is not installed: pip install 'mlsys[bench]'"]
    print(emit(rows, as_json=args.json, notes=notes,
               title="MLP training step (forward + backward + SGD), best of repeats"))
    return 0
