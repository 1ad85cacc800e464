"""``mlsys bench compile``: the graph compiler measured against eager execution, in one run.

Four tables: (1) eager vs compiled training step (time on one thread, and planned peak memory
against naive allocation) for the MLP, an elementwise-heavy GELU MLP and the CNN; (2) the MLP's
Adam step, eager, compiled and PyTorch's eager step, on one thread each; (3) elementwise chains —
with broadcasting and a row sum, as after a GELU layer — run eagerly, as an unfused graph, by
``mlsys.compile`` (fused into one generated kernel), by numexpr (blocked, multi-threaded
elementwise evaluation) and by PyTorch, on one thread and on every core (each library given the
same number of threads); (4) rematerialization: memory budget vs peak bytes, recomputed FLOPs and
measured step time. Each table's variants are timed in alternating rounds, so load from other
programs lands on all.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import os
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numba
import numpy as np

from .. import cliargs, models, nn
from ..bench.autodiff import threads, torch_step
from ..bench.report import emit, time_side_by_side
from ..data import load_digits
from ..optim import Adam
from ..random import manual_seed
from ..tensor import Tensor
from .compiler import CompiledFunction
from .executor import Executable
from .memory import peak_live_bytes, plan_memory
from .passes import DEFAULT_PASSES, fuse_elementwise, optimize, rematerialize
from .step import TrainStep, sgd_step
from .tracer import trace

SPEEDUP_TARGET = 1.5
MEMORY_TARGET = 0.30
ADAM_BATCH = 128


def gelu_mlp(width: int = 128) -> nn.Sequential:
    """An elementwise-heavy model: GELU (tanh form) between narrow linear layers, so that GELU
    and its gradient (several numpy passes each when eager) are a large share of the step."""
    return nn.Sequential(nn.Linear(64, width), nn.GELU("tanh"), nn.Linear(width, width),
                         nn.GELU("tanh"), nn.Linear(width, 10))


def _batch(n: int, images: bool) -> tuple[Tensor, Tensor]:
    data = load_digits("train", flatten=not images)
    x, y = data[np.arange(n) % len(data)]
    return Tensor(x), Tensor(y)


def side_by_side(fns: list[Callable[[], Any]], quick: bool) -> list[float]:
    """Seconds per call of each of ``fns``, timed in alternating rounds (``quick``: one short
    round, a smoke test's figures)."""
    if quick:
        return time_side_by_side(fns, rounds=1, repeat=1, min_time=0.005)
    return time_side_by_side(fns, rounds=3, repeat=3)


def step_rows(quick: bool) -> list[dict[str, Any]]:
    configs = [("mlp", models.mlp, 64, False), ("gelu_mlp", gelu_mlp, 1024, False),
               ("cnn", models.small_cnn, 64, True)]
    rows = []
    for name, make, batch, images in configs:
        manual_seed(0)
        model = make()
        x, y = _batch(batch // 4 if quick else batch, images)
        eager = sgd_step(model, lr=0.01)
        compiled = CompiledFunction(sgd_step(copy.deepcopy(model), lr=0.01))
        for _ in range(3):  # trace (the first step makes the optimizer's state), compile kernels
            compiled(x, y)
        with threads(1):  # BLAS's threads on small matmuls swing with other programs' load
            t_eager, t_compiled = side_by_side([functools.partial(eager, x, y),
                                                 functools.partial(compiled, x, y)], quick)
        graph = compiled.graph(x, y)
        traced = trace(sgd_step(copy.deepcopy(model), lr=0.01), x, y).graph
        naive, planned = plan_memory(traced), plan_memory(graph)
        rows.append({"model": name, "batch": len(y), "eager_ms": 1e3 * t_eager,
                     "compiled_ms": 1e3 * t_compiled, "speedup": t_eager / t_compiled,
                     "nodes": f"{len(traced.nodes)}->{len(graph.nodes)}",
                     "naive_KB": naive.naive_bytes / 1e3, "planned_KB": planned.planned_bytes / 1e3,
                     "memory_saving": 1 - planned.planned_bytes / naive.naive_bytes})
    return rows


def adam_rows(quick: bool) -> list[dict[str, Any]]:
    """The MLP's Adam step (lr 1e-3): mlsys eager, mlsys.compile and PyTorch eager (when
    installed), from the same weights on the same batch, one thread each."""
    manual_seed(0)
    model = models.mlp()
    x, y = _batch(ADAM_BATCH // 4 if quick else ADAM_BATCH, images=False)
    twin = copy.deepcopy(model)
    compiled = CompiledFunction(TrainStep(twin, Adam(twin.parameters(), lr=1e-3)))
    calls = {"mlsys eager": functools.partial(TrainStep(model, Adam(model.parameters(), lr=1e-3)),
                                              x, y),
             "mlsys.compile": functools.partial(compiled, x, y)}
    reference = torch_step([p.data.copy() for p in model.parameters()], x.data, y.data, "Adam",
                           lr=1e-3)
    if reference is not None:
        calls["pytorch eager"] = reference
    for _ in range(3):  # trace (the first step makes the optimizer's state), compile kernels
        compiled(x, y)
    with threads(1):
        times = dict(zip(calls, side_by_side(list(calls.values()), quick)))
    base = times.get("pytorch eager")
    return [{"step": name, "batch": len(y), "step_us": 1e6 * t,
             "vs_pytorch": t / base if base else None} for name, t in times.items()]


class _Numexpr:
    """A numexpr expression built by running a chain on it: arithmetic writes the expression's
    text, and numbers become float32 variables (a literal would make numexpr compute in float64).
    ``rows`` marks a final sum over rows, which numpy does after numexpr's elementwise pass."""

    def __init__(self, text: str, names: dict[str, Any], rows: bool = False) -> None:
        self.text, self.names, self.rows = text, names, rows

    def _operand(self, other: Any) -> str:
        if isinstance(other, _Numexpr):
            return other.text
        name = f"c{len(self.names)}"
        self.names[name] = np.float32(other)
        return name

    def call(self, function: str) -> _Numexpr:
        return _Numexpr(f"{function}({self.text})", self.names)

    def __neg__(self) -> _Numexpr:
        return _Numexpr(f"(-{self.text})", self.names)


def _numexpr_operator(symbol: str, reflected: bool) -> Callable[[_Numexpr, Any], _Numexpr]:
    def op(self: _Numexpr, other: Any) -> _Numexpr:
        a, b = self.text, self._operand(other)
        return _Numexpr(f"({b} {symbol} {a})" if reflected else f"({a} {symbol} {b})", self.names)

    return op


for _name, _symbol in (("add", "+"), ("sub", "-"), ("mul", "*"), ("truediv", "/")):
    setattr(_Numexpr, f"__{_name}__", _numexpr_operator(_symbol, reflected=False))
    setattr(_Numexpr, f"__r{_name}__", _numexpr_operator(_symbol, reflected=True))


def _numexpr_gelu(v: _Numexpr, approximate: str) -> _Numexpr:
    if approximate != "tanh":
        raise NotImplementedError("numexpr has no erf")
    return 0.5 * v * (1.0 + (0.7978845608028654 * (v + 0.044715 * v * v * v)).call("tanh"))


# The operations the chains use, on each library's values.
MLSYS_OPS = SimpleNamespace(exp=lambda v: v.exp(), tanh=lambda v: v.tanh(),
                            sigmoid=lambda v: v.sigmoid(), relu=lambda v: v.relu(),
                            gelu=lambda v, approximate: nn.functional.gelu(v, approximate),
                            sum_rows=lambda v: v.sum(1))
NUMEXPR_OPS = SimpleNamespace(exp=lambda v: v.call("exp"), tanh=lambda v: v.call("tanh"),
                              sigmoid=lambda v: 1.0 / (1.0 + (-v).call("exp")),
                              relu=lambda v: _Numexpr(f"where({v.text} > 0, {v.text}, 0)", v.names),
                              gelu=_numexpr_gelu,
                              sum_rows=lambda v: _Numexpr(v.text, v.names, rows=True))


def _torch_ops() -> SimpleNamespace | None:
    if importlib.util.find_spec("torch") is None:
        return None
    import torch
    return SimpleNamespace(exp=torch.exp, tanh=torch.tanh, sigmoid=torch.sigmoid, relu=torch.relu,
                           gelu=lambda v, approximate: torch.nn.functional.gelu(v, approximate=approximate),
                           sum_rows=lambda v: v.sum(1))


def _gated_gelu_chain(approximate: str) -> Callable[..., Any]:
    """``exp(gelu(x*a+1)*sigmoid(y) + tanh(y*y))*0.5 - x`` summed over rows: transcendentals, a
    (columns,) and a (rows, 1) operand broadcast, a row sum at the end."""
    def chain(o: Any, x: Any, a: Any, y: Any) -> Any:
        return o.sum_rows(o.exp(o.gelu(x * a + 1.0, approximate) * o.sigmoid(y) + o.tanh(y * y)) * 0.5
                          - x)
    return chain


# name: (chain(ops, *inputs), input shapes (full size, quick size))
CHAINS: dict[str, tuple[Callable[..., Any], list[tuple[tuple[int, ...], tuple[int, ...]]]]] = {
    "arithmetic": (lambda o, x: o.relu((x * 1.5 + 0.5) * x - 0.25) * 0.1 + x,
                   [((1 << 22,), (1 << 16,))]),
    "transcendental": (lambda o, x: o.sigmoid(o.tanh(x * 1.5) * x) + o.exp(x * 0.5),
                       [((1 << 22,), (1 << 16,))]),
    "gated GELU rows, tanh form": (_gated_gelu_chain("tanh"),
                                 [((512, 2048), (64, 512)), ((2048,), (512,)), ((512, 1), (64, 1))]),
    "gated GELU rows, erf form": (_gated_gelu_chain("none"),
                                [((512, 2048), (64, 512)), ((2048,), (512,)), ((512, 1), (64, 1))]),
}
TRANSCENDENTAL_REDUCTIONS = ("gated GELU rows, tanh form", "gated GELU rows, erf form")


def _numexpr_call(chain: Callable[..., Any], arrays: list[np.ndarray]) -> Callable[[], Any] | None:
    """numexpr evaluating ``chain`` (None without numexpr, or for a chain it cannot express)."""
    if importlib.util.find_spec("numexpr") is None:
        return None
    import numexpr
    names = {f"a{k}": a for k, a in enumerate(arrays)}
    try:
        expr = chain(NUMEXPR_OPS, *[_Numexpr(name, names) for name in list(names)])
    except NotImplementedError:
        return None

    def run() -> np.ndarray:
        out = numexpr.evaluate(expr.text, local_dict=names)
        return out.sum(1) if expr.rows else out

    return run


Variant = tuple[str, Callable[[], Any], Any]
FUSED = "mlsys.compile (fused kernels)"

# How far a variant's result may be from eager's: float32 rounding, the vmath polynomials
# (within a few ulp) and the order of a row sum's additions
AGREEMENT_RTOL = 1e-4


def _as_array(value: Any) -> np.ndarray:
    """A variant's result as a numpy array (a Tensor's data, a torch tensor's, a graph's list of
    outputs)."""
    if isinstance(value, (tuple, list)):
        (value,) = value
    value = getattr(value, "data", value) if isinstance(value, Tensor) else value
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


def check_agreement(variants: list[Variant]) -> None:
    """Raise if any variant's result differs from the first's (eager) beyond rounding: a fast
    wrong answer must not reach the table."""
    want = _as_array(variants[0][1]())
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    for name, run, _ in variants[1:]:
        got = _as_array(run())
        if got.shape != want.shape or not np.allclose(got, want, rtol=AGREEMENT_RTOL,
                                                      atol=AGREEMENT_RTOL * scale):
            worst = (float(np.max(np.abs(got.astype(np.float64) - want))) if got.shape == want.shape
                     else "different shape")
            raise RuntimeError(f"bench compile: {name} computed a different result from eager "
                               f"(shape {got.shape} vs {want.shape}, largest difference {worst})")


def chain_variants(chain: Callable[..., Any], arrays: list[np.ndarray]) -> list[Variant]:
    """``(variant, call, graph whose cost rules give its bytes or None)`` for each way to run
    ``chain`` on ``arrays``: eager, the traced graph without fusion, ``mlsys.compile`` (every pass,
    fusion included: what a user calls), numexpr, PyTorch."""
    tensors = [Tensor(a) for a in arrays]
    eager = functools.partial(chain, MLSYS_OPS, *tensors)
    graph = trace(lambda *ts: chain(MLSYS_OPS, *ts), *tensors).graph
    unfused = optimize(graph, [p for p in DEFAULT_PASSES if p is not fuse_elementwise])
    compiled = CompiledFunction(lambda *ts: chain(MLSYS_OPS, *ts))
    variants = [("eager (Tensor ops)", eager, unfused),
                ("graph, unfused (numpy per op)", functools.partial(Executable(unfused), *arrays), unfused),
                (FUSED, functools.partial(compiled, *tensors), compiled.graph(*tensors))]
    numexpr_call = _numexpr_call(chain, arrays)
    if numexpr_call is not None:
        variants.append(("numexpr", numexpr_call, None))
    torch_ops = _torch_ops()
    if torch_ops is not None:
        import torch
        inputs = [torch.from_numpy(a) for a in arrays]
        variants.append(("pytorch eager", functools.partial(chain, torch_ops, *inputs), None))
    return variants


def thread_counts() -> list[int]:
    """One thread, and every core Numba may use."""
    return sorted({1, numba.config.NUMBA_NUM_THREADS})


def fusion_rows(quick: bool) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    rows = []
    for name, (chain, shapes) in CHAINS.items():
        arrays = [rng.standard_normal(quick_shape if quick else shape).astype(np.float32)
                  for shape, quick_shape in shapes]
        variants = chain_variants(chain, arrays)
        check_agreement(variants)
        for n in thread_counts():
            with threads(n):
                for _, run, _ in variants:
                    run()  # wakes each library's thread pool at its new size
                times = side_by_side([run for _, run, _ in variants], quick)
            by = dict(zip([v for v, _, _ in variants], times))
            for (variant, _, graph), t in zip(variants, times):
                rows.append({"chain": name, "threads": n, "variant": variant,
                             "kernels": len(graph.nodes) if graph else None, "ms": 1e3 * t,
                             "MB_moved": graph.cost().bytes / 1e6 if graph else None,
                             "speedup_vs_eager": times[0] / t,
                             "vs_numexpr": t / by["numexpr"] if "numexpr" in by else None})
    return rows


def fusion_targets(rows: list[dict[str, Any]]) -> list[str]:
    """The met / NOT met lines of the chains' table."""
    fused = [r for r in rows if r["variant"] == FUSED]
    heavy = [r for r in fused if r["chain"] in TRANSCENDENTAL_REDUCTIONS]
    speedups = ", ".join(f"{r['speedup_vs_eager']:.1f}x ({r['chain'].split(', ')[1]}, "
                         f"{_threads(r['threads'])})" for r in heavy)
    lines = [f"target: compiled >= {SPEEDUP_TARGET}x eager on transcendental chains with "
             f"broadcasting and a row sum: {speedups}, "
             f"{_verdict(all(r['speedup_vs_eager'] >= SPEEDUP_TARGET for r in heavy))}"]
    against = [r for r in fused if r["vs_numexpr"] is not None]
    if against:
        worst = max(against, key=lambda r: r["vs_numexpr"])
        lines.append(f"target: fused kernels at least as fast as numexpr on every chain it can "
                     f"express, on 1 and on all threads: at worst {worst['vs_numexpr']:.2f}x "
                     f"numexpr's time ({worst['chain']}, {_threads(worst['threads'])}), "
                     f"{_verdict(worst['vs_numexpr'] <= 1.0)}")
        import numexpr
        vml = "on" if numexpr.use_vml else "off: its exp and tanh are the C library's scalar functions"
        lines.append(f"numexpr {numexpr.__version__}, Intel VML {vml}")
    else:
        lines.append("numexpr is not installed (pip install 'mlsys[bench]'): no numexpr rows")
    return lines + [
        "numexpr has no erf: it runs the gated GELU chain in GELU's tanh form only (PyTorch's "
        "approximate='tanh'); numexpr then sums the rows with numpy",
        f"every variant's result agrees with eager's (rtol {AGREEMENT_RTOL:g}) before it is timed",
        "MB_moved from the primitives' cost rules: a fused kernel reads its inputs once and writes "
        "its result once; the generated kernels evaluate exp, tanh and erf as vectorized "
        "polynomials (mlsys.kernels.cpu.vmath) and spread row blocks over the threads",
        f"load average {os.getloadavg()[0]:.1f} over the last minute on {os.cpu_count()} cores: "
        "timings on a busy machine are noisy, the ratios of one table less so; a parallel loop "
        "waits for its slowest thread, so when other programs hold the cores the all-threads rows "
        "of every library suffer most, and the 1-thread rows are the steadier comparison"]


def _threads(n: int) -> str:
    return f"{n} thread{'s' if n > 1 else ''}"


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def remat_rows(quick: bool) -> list[dict[str, Any]]:
    manual_seed(0)
    batch = 256 if quick else 2048
    model = models.mlp(depth=4, hidden=128)
    x, y = _batch(batch, images=False)
    t = trace(sgd_step(model, lr=0.01), x, y)
    graph = optimize(t.graph)
    arrays = [x.data, y.data] + [p.data.copy() for p in t.captured]
    base_peak, base_flops = peak_live_bytes(graph), graph.cost().flops
    fractions = (1.0, 0.9, 0.8, 0.7, 0.6)
    graphs = [rematerialize(graph, int(f * base_peak)) for f in fractions]
    with threads(1):
        seconds = side_by_side([functools.partial(Executable(g), *arrays) for g in graphs], quick)
    return [{"budget": f"{f:.0%} of peak", "budget_KB": f * base_peak / 1e3,
             "peak_live_KB": peak_live_bytes(g) / 1e3, "planned_KB": plan_memory(g).planned_bytes / 1e3,
             "nodes": len(g.nodes), "extra_flops": g.cost().flops / base_flops - 1,
             "step_ms": 1e3 * s, "time_vs_no_remat": s / seconds[0]}
            for f, g, s in zip(fractions, graphs, seconds)]


def main(argv: list[str]) -> int:
    p = cliargs.ArgumentParser(prog="mlsys bench compile", description=__doc__)
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--quick", action="store_true", help="small sizes, one repeat (a smoke test)")
    args = p.parse_args(argv)
    steps = step_rows(args.quick)
    adam = adam_rows(args.quick)
    chains = fusion_rows(args.quick)
    compiled_adam = next(r for r in adam if r["step"] == "mlsys.compile")["vs_pytorch"]
    heavy = next(r for r in steps if r["model"] == "gelu_mlp")
    mlp = next(r for r in steps if r["model"] == "mlp")
    sections = [
        ("Training step, eager vs mlsys.compile (SGD, one thread each; time per step, memory of "
         "the step's values)",
         steps, [f"target: compiled >= {SPEEDUP_TARGET}x eager on the elementwise-heavy model: "
                 f"{heavy['speedup']:.2f}x, {_verdict(heavy['speedup'] >= SPEEDUP_TARGET)}",
                 f"target: planned peak >= {MEMORY_TARGET:.0%} below naive on the MLP step: "
                 f"{mlp['memory_saving']:.0%}, {_verdict(mlp['memory_saving'] >= MEMORY_TARGET)}",
                 "naive = one buffer per value of the traced step; planned = buffers after "
                 "optimization, liveness-based reuse and in-place fused kernels"]),
        ("Adam training step of the MLP: eager, compiled, PyTorch eager (one thread each)", adam,
         [f"target: compiled step faster than PyTorch's eager step at batch {adam[0]['batch']}: "
          + ("PyTorch is not installed (pip install 'mlsys[bench]')" if compiled_adam is None
             else f"{compiled_adam:.2f}x its time, {_verdict(compiled_adam < 1.0)}")]),
        ("Elementwise chains (float32): eager, unfused graph, fused kernels, numexpr, PyTorch; "
         "each on 1 thread and on all", chains, fusion_targets(chains)),
        ("Rematerialization: memory budget vs recompute (MLP depth 4, width 128; one thread)",
         remat_rows(args.quick), ["peak_live = most bytes live at one node (before buffer packing); "
                                  "a budget below what the backward pass must hold at once is "
                                  "not reachable, and the greedy stops at the lowest peak it finds"]),
    ]
    if args.quick:
        sections[0][2].insert(0, "--quick: small sizes and one short timing round, a smoke test; "
                                 f"the targets are set for the full sizes (Adam at batch {ADAM_BATCH})")
    if args.json:
        print(json.dumps([json.loads(emit(rows, as_json=True, title=title, notes=notes))
                          for title, rows, notes in sections], indent=2))
    else:
        print("\n\n".join(emit(rows, as_json=False, title=title, notes=notes)
                          for title, rows, notes in sections))
    return 0
