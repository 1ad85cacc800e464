"""``mlsys.compile``: trace on the first call per signature, run the optimized graph after.

Each signature (the arguments' structure, the Tensors' shapes, dtypes, devices, ``requires_grad``
and gradients, which arguments are the same Tensor, the other arguments' values, the grad mode)
keeps a list of traced entries. A call runs the first entry whose guards hold (see
:mod:`mlsys.graph.tracer` for what is guarded) and whose ``bool()`` values come out as traced;
otherwise it traces again, eagerly, and that run's result is the call's result. After
``cache_limit`` traces for one signature, or at a graph break, the function runs eagerly for that
signature from then on, with a :class:`GraphBreakWarning` saying why (TorchDynamo's recompile
limit and graph breaks).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from ..autograd import is_grad_enabled
from ..ops.registry import Cost, Primitive, Spec
from ..random import get_rng_state, set_rng_state
from ..tensor import Node as TapeNode
from ..tensor import Tensor, _wrap, backend_of
from .executor import Executable
from .ir import Graph
from .passes.manager import DEFAULT_PASSES, Pass, PassManager
from .tracer import Source, Traced, capture, flatten, is_tracing, unflatten

__all__ = ["compile", "CompiledFunction", "GraphBreakWarning"]

CACHE_LIMIT = 8


class GraphBreakWarning(UserWarning):
    """A compiled function runs eagerly for a signature (a graph break, or too many retraces)."""


_EAGER = "eager"  # a cache value: run the function as it is
_RETRACE = object()  # a run whose bool() guards came out differently


def _no_backward(*_: Any, **__: Any) -> tuple:
    raise RuntimeError("backward through a result of mlsys.compile: a compiled call records no "
                       "tape; compile the whole step (forward, loss.backward(), optimizer.step()) "
                       "or call the function uncompiled")


# The tape node of compiled results that require grad: backward through one says why it cannot.
_COMPILED = Primitive("compiled", forward=lambda: None, shape=lambda: Spec((), np.dtype("f4")),
                      cost=lambda **_: Cost(0, 0), vjp=_no_backward)


def _signature(args: tuple, kwargs: dict[str, Any]) -> tuple[list[Tensor], Hashable]:
    leaves: list[Tensor] = []
    structure = flatten((args, kwargs), leaves)
    first: dict[int, int] = {}
    metas = []
    for i, t in enumerate(leaves):
        grad = t.grad
        metas.append((t.data.shape, t.data.dtype, t.device, t.requires_grad,
                      None if grad is None else (grad.data.shape, grad.data.dtype, grad.device),
                      first.setdefault(id(t), i)))
    key = (is_grad_enabled(), structure, tuple(metas))
    try:
        hash(key)
    except TypeError:
        raise TypeError("compile: non-Tensor arguments must be hashable (they are baked into the "
                        "graph and guard it); pass arrays as Tensors") from None
    return leaves, key


def _reader(source: Source) -> Callable[[list[Tensor]], np.ndarray]:
    read = _tensor_reader(source)
    return lambda args: read(args).data


def _tensor_reader(source: Source) -> Callable[[list[Tensor]], Tensor]:
    """The Tensor ``source`` names, given a call's distinct Tensor arguments."""
    if source.grad_of is not None:
        owner = _tensor_reader(source.grad_of)
        return lambda args: owner(args).grad
    if source.arg is not None:
        return lambda args, k=source.arg: args[k]
    return lambda args, t=source.state: t


def _meta(t: Tensor | None) -> tuple | None:
    return None if t is None else (t.data.shape, t.data.dtype, t.device, t.requires_grad)


class _Entry:
    """One traced specialization: its guards, its executable and how to unpack a run."""

    def __init__(self, traced: Traced, graph: Graph) -> None:
        self.traced, self.graph = traced, graph
        self.executable: Any = None  # prepared on the first run, for where the inputs live
        self.reads = [_reader(s) for s in traced.sources]
        # tensors found outside (fixed objects, checked in one sweep) and gradients on entry
        fixed = [(s.state, meta) for s, meta in traced.tensor_guards if s.state is not None]
        self.fixed, self.fixed_metas = [t for t, _ in fixed], [meta for _, meta in fixed]
        self.grad_guards = [(_tensor_reader(s), meta) for s, meta in traced.tensor_guards
                            if s.state is None]
        self.guards = traced.guards
        self.impure = any(not n.pure for n in graph.nodes)
        self.const_ids = {id(a) for a in graph.consts.values()}
        self.results = [(None if same is None else _tensor_reader(same), k, device, grad)
                        for same, k, device, grad in traced.results]
        self.updates = [(_tensor_reader(s), k) for s, k in traced.updates]
        self.grads = [(_tensor_reader(s), k) for s, k in traced.grads]
        self.failed = ""  # the guard that failed last, for the retrace-limit warning

    def holds(self, args: list[Tensor]) -> bool:
        metas = [(t.data.shape, t.data.dtype, t.device, t.requires_grad) for t in self.fixed]
        if metas != self.fixed_metas or any(_meta(read(args)) != meta
                                            for read, meta in self.grad_guards):
            self.failed = "the shape, dtype, device, requires_grad or gradient of a tensor it reads"
            return False
        for read, expected, what in self.guards:
            if read() != expected:
                self.failed = what
                return False
        return True

    def run(self, args: list[Tensor]) -> Any:
        arrays = [read(args) for read in self.reads]
        if self.executable is None:
            self.executable = _executable(self.graph, arrays)
        guarded = bool(self.traced.value_guards)
        rng = get_rng_state() if guarded and self.impure else None
        try:
            outs = self.executable(*arrays)
        except Exception:
            if not guarded:
                raise
            outs = None  # the other branch may be the one that is valid for these values
        if guarded and (outs is None or any(bool(outs[k]) != value
                                            for k, value, _ in self.traced.value_guards)):
            if rng is not None:
                set_rng_state(rng)
            self.failed = next((f"bool() at {where}" for k, value, where in self.traced.value_guards
                                if outs is None or bool(outs[k]) != value), "")
            return _RETRACE
        handed = {id(a) for a in arrays} | self.const_ids

        def own(a: np.ndarray, state: bool) -> np.ndarray:
            """``a``, or a copy where it is an input, a constant, already handed out, or (for
            state, which may be edited in place later) a view."""
            root = a if a.base is None else a.base
            if id(root) in handed or (state and (a.base is not None or not a.flags.writeable)):
                a = root = np.array(a, copy=True) if backend_of(a) is None else a.copy()
            handed.add(id(root))
            return a

        for read, k in self.updates:
            read(args).data = own(outs[k], state=True)
        for read, k in self.grads:
            leaf = read(args)
            leaf.grad = None if k is None else _result(own(outs[k], state=True), leaf.device, False)
        leaves = [read(args) if read is not None else _result(own(outs[k], state=False), device, grad)
                  for read, k, device, grad in self.results]
        return unflatten(self.traced.structure, iter(leaves))


def _executable(graph: Graph, arrays: list[Any]) -> Any:
    """The executor for where the inputs live: numpy's, or that of the device holding them."""
    backend = next((b for b in map(backend_of, arrays) if b is not None), None)
    return Executable(graph) if backend is None else backend.executable(graph)


def _result(array: Any, device: str, requires_grad: bool) -> Tensor:
    out = _wrap(np.asarray(array) if backend_of(array) is None else array, device)
    if requires_grad:
        out.requires_grad = True
        out._node = TapeNode(_COMPILED, (), {})
    return out


class CompiledFunction:
    """A function of Tensors compiled per signature, with guards (see the module docstring).

    The first call of a signature runs ``fn`` eagerly while tracing it (its result is the eager
    one), optimizes the graph with ``passes`` and prepares it; later calls execute the graph on
    the arguments' and captured state's current data, store state updates and gradients, and
    return new Tensors (results that require grad eagerly do here too, but refuse ``backward``).
    ``fullgraph=True`` raises :class:`~mlsys.graph.tracer.GraphBreak` instead of falling back.
    """

    def __init__(self, fn: Callable[..., Any], passes: Sequence[Pass] = DEFAULT_PASSES, *,
                 fullgraph: bool = False, cache_limit: int = CACHE_LIMIT) -> None:
        if not callable(fn):
            raise TypeError(f"compile: expected a callable, got {type(fn).__name__}")
        if cache_limit < 1:
            raise ValueError(f"compile: cache_limit must be at least 1, got {cache_limit}")
        self.fn, self.passes = fn, tuple(passes)
        self.fullgraph, self.cache_limit = fullgraph, cache_limit
        self.cache: dict[Hashable, list[_Entry] | str] = {}
        functools.update_wrapper(self, fn, updated=())  # a module's attributes stay its own

    @property
    def _name(self) -> str:
        return getattr(self.fn, "__qualname__", type(self.fn).__name__)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if is_tracing():  # called from a function being traced: become part of its graph
            return self.fn(*args, **kwargs)
        leaves, key = _signature(args, kwargs)
        entries = self.cache.get(key)
        if entries is _EAGER:
            return self.fn(*args, **kwargs)
        if entries:
            distinct = [leaves[i] for i in entries[0].traced.arg_positions]
            for i, entry in enumerate(entries):
                if entry.holds(distinct):
                    out = entry.run(distinct)
                    if out is not _RETRACE:
                        if i:
                            entries.insert(0, entries.pop(i))
                        return out
        return self._trace(key, args, kwargs)

    def _trace(self, key: Hashable, args: tuple, kwargs: dict[str, Any]) -> Any:
        entries = self.cache.setdefault(key, [])
        if len(entries) >= self.cache_limit:
            self._fall_back(key, f"traced {len(entries)} times for one signature (last change: "
                                 f"{entries[0].failed or 'unknown'})")
            return self.fn(*args, **kwargs)
        traced = capture(self.fn, args, kwargs, on_break="raise" if self.fullgraph else "record")
        if traced.graph_break:
            self._fall_back(key, f"graph break: {traced.graph_break}")
            return traced.result
        entries.insert(0, _Entry(traced, PassManager(self.passes).run(traced.graph)))
        return traced.result

    def _fall_back(self, key: Hashable, why: str) -> None:
        self.cache[key] = _EAGER
        warnings.warn(f"mlsys.compile: {self._name}: {why}; running it eagerly for these argument "
                      f"types from now on", GraphBreakWarning, stacklevel=4)

    def graph(self, *args: Any, **kwargs: Any) -> Graph:
        """The optimized graph of the entry that runs for ``args`` (compiling it if needed)."""
        _, key = _signature(args, kwargs)
        if not self.cache.get(key):
            self(*args, **kwargs)
        entries = self.cache[key]
        if entries is _EAGER:
            raise RuntimeError(f"compile: {self._name} runs eagerly for these arguments (see the "
                               f"GraphBreakWarning); there is no graph")
        return entries[0].graph


def compile(fn: Callable[..., Any] | None = None, *, passes: Sequence[Pass] = DEFAULT_PASSES,
            fullgraph: bool = False, cache_limit: int = CACHE_LIMIT) -> Any:
    """Compile ``fn`` (usable as ``@mlsys.compile`` or ``@mlsys.compile(passes=...)``)."""
    if fn is None:
        return lambda f: CompiledFunction(f, passes, fullgraph=fullgraph, cache_limit=cache_limit)
    return CompiledFunction(fn, passes, fullgraph=fullgraph, cache_limit=cache_limit)
