"""``mlsys.compile``: trace on the first call per input signature, run the optimized graph after."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..autograd import is_grad_enabled
from ..tensor import Tensor
from .executor import Executable
from .ir import Graph
from .passes.manager import DEFAULT_PASSES, Pass, PassManager
from .tracer import Traced, trace

__all__ = ["compile", "CompiledFunction"]


@dataclass
class _Entry:
    traced: Traced
    graph: Graph
    executable: Executable
    copy_out: tuple[bool, ...]  # outputs that are inputs or constants: hand out copies


class CompiledFunction:
    """A function of Tensors compiled per input signature (shapes, dtypes, non-Tensor args).

    The first call with a new signature runs ``fn`` eagerly while tracing it (its result is the
    eager one), optimizes the graph with ``passes`` and prepares it; later calls execute the
    graph on the arguments' and captured state's current data, store state updates (see
    :func:`mlsys.graph.assign`) and return Tensors that do not require grad.
    """

    def __init__(self, fn: Callable[..., Any], passes: Sequence[Pass] = DEFAULT_PASSES) -> None:
        if not callable(fn):
            raise TypeError(f"compile: expected a callable, got {type(fn).__name__}")
        self.fn, self.passes = fn, tuple(passes)
        self.cache: dict[tuple, _Entry] = {}
        functools.update_wrapper(self, fn)

    def _key(self, args: tuple[Any, ...]) -> tuple:
        key: list[Any] = [is_grad_enabled()]
        for a in args:
            if isinstance(a, Tensor):
                key.append(("tensor", a.shape, a.dtype))
            else:
                try:
                    hash(a)
                except TypeError:
                    raise TypeError(f"compile: non-Tensor arguments must be hashable (they are "
                                    f"baked into the graph), got {type(a).__name__}") from None
                key.append(("static", a))
        return tuple(key)

    def __call__(self, *args: Any) -> Any:
        key = self._key(args)
        entry = self.cache.get(key)
        if entry is None:
            traced = trace(self.fn, *args)
            graph = PassManager(self.passes).run(traced.graph)
            static = set(graph.inputs) | set(graph.consts)
            self.cache[key] = _Entry(traced, graph, Executable(graph),
                                     tuple(v in static for v in graph.outputs))
            return traced.result
        traced = entry.traced
        arrays = [a.data for a in args if isinstance(a, Tensor)] + [t.data for t in traced.captured]
        outs = entry.executable(*arrays)
        outs = [np.array(o, copy=True) if c else o for o, c in zip(outs, entry.copy_out)]
        for t, new in zip(traced.updated, outs[traced.n_results:]):
            t.data = new
        results = [Tensor(o) for o in outs[:traced.n_results]]
        if traced.structure == "none":
            return None
        return results[0] if traced.structure == "tensor" else tuple(results)

    def graph(self, *args: Any) -> Graph:
        """The optimized graph for the signature of ``args`` (compiling it if needed)."""
        key = self._key(args)
        if key not in self.cache:
            self(*args)
        return self.cache[key].graph


def compile(fn: Callable[..., Any] | None = None, *,
            passes: Sequence[Pass] = DEFAULT_PASSES) -> Any:
    """Compile ``fn`` (usable as ``@mlsys.compile`` or ``@mlsys.compile(passes=...)``)."""
    if fn is None:
        return lambda f: CompiledFunction(f, passes)
    return CompiledFunction(fn, passes)
