"""Tracing: run a Tensor program once, eagerly, and record what it computes as a graph.

The tracer observes :func:`mlsys.tensor.apply` (``add_observer``), so it sees the forward pass,
the backward pass (VJP rules are written with primitives) and optimizer updates (the optimizers
apply their rules to Tensors and store them with :func:`assign`): a whole training step becomes
one graph — autodiff as a graph transformation. The engine tells it, through
:func:`mlsys.tensor.notify` and the listeners of :mod:`mlsys.random`, about everything else a
program can do with a tensor, and each case is classified the way TorchDynamo and ``jax.jit`` do:

=====================================  ====================================================
what the program does                  what the graph does with it
=====================================  ====================================================
takes Tensor arguments                 graph inputs; their shapes, dtypes, devices,
                                       ``requires_grad`` and which arguments are the same
                                       tensor are guards of :func:`mlsys.compile`
takes other arguments (numbers, ...)   baked in; guards (a new value retraces)
reads a tensor it did not make         a graph input read afresh at every call (parameters,
(parameter, buffer, optimizer state)   frozen or not, buffers, optimizer state, any closure
                                       tensor: a later ``load_state_dict`` is seen); its
                                       metadata is guarded
makes a tensor from numbers            a constant (``x * 2``, ``mlsys.zeros``, VJP constants)
``detach()``, ``clone()``, indexing    values and ops of the graph, never constants
with an integer tensor
``mlsys.randn``, ``rand``, dropout     random primitives: every call draws anew from the
                                       global generator, in the eager order
``assign``, ``optimizer.step()``       state updates: the graph returns the new values and
                                       every call stores them
``backward()``                         the VJPs are nodes; a leaf's ``.grad`` (read if it was
                                       set on entry) is written back after every call
module flags and attributes,           guards (``model.eval()``, a new ``Parameter``, a new
optimizer hyperparameters and state    learning rate, a first step that creates state retrace)
``bool(t)``: ``if t.sum() > 0``        a guard on the value: the graph computes it, a call
                                       where it differs retraces (specialization)
``.item()``, ``float()``, ``int()``,   a graph break: :func:`mlsys.compile` warns, naming the
``.tolist()``, ``.numpy()``, boolean   construct and the line, and runs the function eagerly
masks, a draw outside the random       for that signature; :func:`trace` and
primitives, ``manual_seed``, grad      ``compile(fullgraph=True)`` raise :class:`GraphBreak`
hooks
=====================================  ====================================================

Why these choices: ``bool()`` has two outcomes, so specializing on it costs one trace per branch
taken (TorchDynamo specializes on Python values the same way; ``jax.jit`` raises a
``ConcretizationTypeError``). A value read by ``.item()`` or ``float()`` usually changes every
call, and a boolean mask makes a result whose shape depends on values: no static graph holds
either (``jax.jit`` raises ``NonConcreteBooleanIndexError``; TorchDynamo breaks the graph and
runs that code in Python). ``mlsys.compile`` has no partial graphs, so its graph break runs the
whole function eagerly for that signature.

What stays invisible, as to every tracing compiler without bytecode analysis: reads and writes
of ``.data`` (numpy on a tensor's buffer), Python numbers read from globals or closures (baked in,
as ``jax.jit`` does; module attributes and optimizer settings are guarded) and other Python side
effects (appending to a list, printing), which happen only while tracing.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import random as _random
from ..ops.registry import Primitive, Spec
from ..tensor import Tensor, add_observer, assign, remove_observer
from .ir import Graph, Node, Var, fresh

__all__ = ["trace", "capture", "assign", "Traced", "Source", "GraphBreak", "is_tracing", "flatten",
           "unflatten"]

_active: list[_Recorder] = []


class GraphBreak(RuntimeError):
    """The program did something a graph cannot capture (the message names it and its line)."""


def is_tracing() -> bool:
    """Whether a trace is being recorded right now."""
    return bool(_active)


@dataclass(frozen=True, eq=False)
class Source:
    """Where a graph input is read, or a result stored, at every call: the ``arg``-th distinct
    Tensor argument, a ``state`` tensor the program found outside itself, or the ``.grad`` of
    one of those (``grad_of``)."""

    arg: int | None = None
    state: Tensor | None = None
    grad_of: Source | None = None

    def resolve(self, args: list[Tensor]) -> Tensor | None:
        if self.grad_of is not None:
            return self.grad_of.resolve(args).grad
        return self.state if self.arg is None else args[self.arg]


def _meta(t: Tensor) -> tuple:
    return (t.data.shape, t.data.dtype, t.device, t.requires_grad)


def _grad_meta(t: Tensor) -> tuple | None:
    return None if t.grad is None else _meta(t.grad)


# -- where a construct is written ---------------------------------------------------------------
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PLUMBING = {os.path.join(_PACKAGE, f) for f in ("tensor.py", "random.py", "graph/tracer.py")}
_CONSTRUCTS = {"__bool__": "bool()", "__float__": "float()", "__int__": "int()",
               "item": ".item()", "tolist": ".tolist()", "numpy": ".numpy()"}


def _site() -> tuple[str | None, str]:
    """The Tensor method the program called (``bool()``, ``.item()``...) and where: the first
    line outside the engine's plumbing, and the program's own line when that is library code."""
    frame, construct = sys._getframe(1), None
    while frame is not None and frame.f_code.co_filename in _PLUMBING:
        construct = _CONSTRUCTS.get(frame.f_code.co_name, construct)
        frame = frame.f_back
    if frame is None:
        return construct, "<unknown>"
    where = f"{_short(frame.f_code.co_filename)}:{frame.f_lineno}"
    if frame.f_code.co_filename.startswith(_PACKAGE + os.sep):
        outer = frame.f_back
        while outer is not None and outer.f_code.co_filename.startswith(_PACKAGE + os.sep):
            outer = outer.f_back
        if outer is not None:
            where += f" (called from {_short(outer.f_code.co_filename)}:{outer.f_lineno})"
    return construct, where


def _short(path: str) -> str:
    rel = os.path.relpath(path) if os.path.isabs(path) else path
    return path if rel.startswith("..") else rel


# -- pytrees: nested tuples, lists and dicts of Tensors and plain values -------------------------
def flatten(obj: Any, leaves: list[Tensor]) -> Any:
    """Append the Tensors of ``obj`` to ``leaves`` and return its structure, in which every other
    value stands as itself (and the structure of arguments is hashable when those values are)."""
    if isinstance(obj, Tensor):
        leaves.append(obj)
        return Tensor
    if type(obj) in (tuple, list):
        return (type(obj), tuple(flatten(o, leaves) for o in obj))
    if type(obj) is dict:
        return (dict, tuple((k, flatten(v, leaves)) for k, v in obj.items()))
    return (type(obj), obj)


def unflatten(structure: Any, leaves: Iterator[Any]) -> Any:
    """The inverse of :func:`flatten`: rebuild the value, taking Tensors from ``leaves``."""
    if structure is Tensor:
        return next(leaves)
    kind, content = structure
    if kind in (tuple, list):
        return kind(unflatten(s, leaves) for s in content)
    if kind is dict:
        return {k: unflatten(s, leaves) for k, s in content}
    return content


# -- the observer -----------------------------------------------------------------------------
class _Recorder:
    """Maps tensors to graph values, appends one node per primitive and keeps the guards."""

    def __init__(self, on_break: str) -> None:
        self.on_break = on_break  # "raise" or "record"
        self.vars: dict[int, Var] = {}
        self.alive: list[Any] = []  # keeps every tensor seen alive, so ids stay unique
        self.made: set[int] = set()
        self.nodes: list[Node] = []
        self.consts: dict[Var, np.ndarray] = {}
        self.inputs: list[tuple[Var, Source, Tensor]] = []
        self.sources: dict[int, Source] = {}  # arguments and state, by id
        self.grad_sources: dict[int, Source] = {}  # gradients present on entry, by id
        self.entry_grads: dict[int, tuple[Source, Tensor, Tensor | None]] = {}
        self.tensor_guards: list[tuple[Source, tuple]] = []
        self.updates: dict[int, tuple[Source, Var]] = {}
        self.guards: dict[Hashable, tuple[Callable[[], Any], Any, str]] = {}
        self.value_guards: list[tuple[Var, bool, str]] = []
        self.broken: str | None = None
        self.pending_draw: str | None = None

    def keep(self, t: Any) -> None:
        self.alive.append(t)

    # arguments and state
    def bind_arg(self, t: Tensor, k: int) -> None:
        var = fresh(Spec.of(t.data))
        source = Source(arg=k)
        self.inputs.append((var, source, t))
        self.sources[id(t)] = source
        self.vars[id(t)] = var
        self.keep(t)
        self.see(t, source)

    def see(self, t: Tensor, source: Source) -> None:
        """First sight of a leaf: remember its gradient on entry (read if the program uses it)."""
        if id(t) in self.entry_grads or not (t.requires_grad or t.grad is not None):
            return
        self.entry_grads[id(t)] = (source, t, t.grad)
        if t.grad is not None:
            self.grad_sources[id(t.grad)] = Source(grad_of=source)
            self.keep(t.grad)
        if source.arg is None:
            self.tensor_guards.append((Source(grad_of=source), _grad_meta(t)))

    def state_source(self, t: Tensor) -> Source:
        source = self.sources.get(id(t)) or self.grad_sources.get(id(t))
        if source is None:
            source = self.sources[id(t)] = Source(state=t)
            self.keep(t)
            self.tensor_guards.append((source, _meta(t)))
            self.see(t, source)
        return source

    def var_of(self, t: Tensor) -> Var:
        var = self.vars.get(id(t))
        if var is not None:
            return var
        var = fresh(Spec.of(t.data))
        if id(t) in self.made:
            self.consts[var] = np.array(t.data, copy=True)
        else:
            self.inputs.append((var, self.state_source(t), t))
        self.vars[id(t)] = var
        self.keep(t)
        return var

    # observer protocol: mlsys.tensor.apply and mlsys.tensor.notify
    def record(self, prim: Primitive, inputs: tuple[Tensor, ...], params: dict[str, Any],
               out: Tensor) -> None:
        if self.broken:
            return
        if not prim.pure:
            self.pending_draw = None
        elif self.pending_draw:
            self.graph_break("a random draw outside the random primitives", self.pending_draw)
        ins = tuple(self.var_of(t) for t in inputs)
        var = fresh(Spec.of(out.data))
        self.nodes.append(Node(prim.name, ins, dict(params), var))
        self.vars[id(out)] = var
        self.keep(out)

    def created(self, t: Tensor, source: Tensor | None) -> None:
        if source is not None:
            self.alias(t, source)
        else:
            self.made.add(id(t))
            self.keep(t)

    def alias(self, out: Tensor, of: Tensor) -> None:
        self.vars[id(out)] = self.var_of(of)
        self.keep(out)

    def assigned(self, target: Tensor, value: Tensor) -> None:
        var = self.var_of(value)
        key = id(target)
        if (key in self.sources or key in self.grad_sources
                or (key not in self.vars and key not in self.made)):
            # an argument, state or an entry gradient: every call must store the new value
            self.updates[key] = (self.state_source(target), var)
        self.vars[key] = var  # a temporary made inside is simply rebound
        self.keep(target)

    def reset_grad(self, t: Tensor) -> None:
        self.state_source(t)  # sees the gradient before zero_grad clears it

    def guard(self, key: Hashable, read: Callable[[], Any], what: str) -> None:
        if key not in self.guards:
            self.guards[key] = (read, read(), what)

    def concretize(self, t: Tensor) -> None:
        construct, where = _site()
        if construct == "bool()" and self.on_break == "record":
            if not self.broken:
                self.value_guards.append((self.var_of(t), bool(t.data.reshape(-1)[0]), where))
            return
        self.graph_break(f"{construct or 'a read'} (a tensor's value read into Python)", where)

    def graph_break(self, what: str, where: str | None = None) -> None:
        if where is None:
            where = _site()[1]
        message = f"{what} at {where}"
        if self.on_break == "raise":
            raise GraphBreak(f"trace: cannot capture {message}: a graph holds no Python value or "
                             f"side effect (mlsys.compile runs such a function eagerly, and turns "
                             f"bool() into a guard)")
        self.broken = self.broken or message

    def on_rng(self, event: str) -> None:
        if event == "seed":
            self.graph_break("mlsys.manual_seed")
        elif self.pending_draw:
            self.graph_break("a random draw outside the random primitives", self.pending_draw)
        else:
            self.pending_draw = _site()[1]


@dataclass
class Traced:
    """A traced program: the graph and how a call feeds, checks and unpacks it.

    ``graph.inputs`` are read from ``sources`` (the distinct Tensor arguments, then captured state
    and gradients); ``graph.outputs`` are the result tensors, then the values of the ``bool()``
    guards, the state updates and the new gradients that are not among them.
    """

    graph: Graph
    sources: list[Source]
    captured: list[Tensor]  # what each non-argument input held at trace time
    n_args: int
    arg_positions: list[int]  # which argument leaves were distinct (first occurrences)
    structure: Any  # of the result (see flatten)
    results: list[tuple[Source | None, int | None, str, bool]]  # same object, or output + meta
    value_guards: list[tuple[int, bool, str]]  # output index, traced value, where
    updates: list[tuple[Source, int]]  # target, output index
    grads: list[tuple[Source, int | None]]  # leaf, output index (None: set to None)
    tensor_guards: list[tuple[Source, tuple]]
    guards: list[tuple[Callable[[], Any], Any, str]]
    result: Any  # what the eager run returned
    graph_break: str | None

    @property
    def updated(self) -> list[Tensor]:
        """The state tensors (at trace time) that every call writes."""
        return [s.state for s, _ in self.updates if s.state is not None]


@contextlib.contextmanager
def _recording(recorder: _Recorder) -> Iterator[None]:
    if _active:
        raise RuntimeError("trace: already tracing; nested tracing is not supported")
    _active.append(recorder)
    add_observer(recorder)
    _random.add_listener(recorder.on_rng)
    try:
        yield
    finally:
        _random.remove_listener(recorder.on_rng)
        remove_observer(recorder)
        _active.pop()


def trace(fn: Callable[..., Any], *args: Any, state_names: Mapping[int, str] | None = None,
          **kwargs: Any) -> Traced:
    """Run ``fn(*args, **kwargs)`` once and record it as a graph (see the module docstring).

    Raises :class:`GraphBreak` where ``fn`` does something a graph cannot hold. ``state_names``
    labels captured tensors by ``id`` (default: ``fn.state_names``, or a module's parameter and
    buffer names, else ``state0``, ``state1``...).
    """
    return capture(fn, args, kwargs, on_break="raise", state_names=state_names)


def capture(fn: Callable[..., Any], args: tuple, kwargs: dict[str, Any], *, on_break: str,
            state_names: Mapping[int, str] | None = None) -> Traced:
    """:func:`trace` with a choice: ``on_break="record"`` lets the eager run finish after a graph
    break (noted in ``graph_break``) and turns ``bool()`` into value guards."""
    recorder = _Recorder(on_break)
    leaves: list[Tensor] = []
    flatten((args, kwargs), leaves)
    positions: list[int] = []
    for i, t in enumerate(leaves):
        if id(t) not in recorder.vars:
            positions.append(i)
            recorder.bind_arg(t, len(positions) - 1)
    with _recording(recorder):
        result = fn(*args, **kwargs)
        outputs: list[Tensor] = []
        structure = flatten(result, outputs)
        results = []
        for t in outputs:
            same = recorder.sources.get(id(t)) or recorder.grad_sources.get(id(t))
            results.append((same, None if same else recorder.var_of(t), t.device,
                            t.requires_grad))
        grads = _grad_effects(recorder)
        if recorder.pending_draw:
            recorder.graph_break("a random draw outside the random primitives",
                                 recorder.pending_draw)
    return _assemble(recorder, fn, args, kwargs, leaves, positions, structure, results, grads,
                     result, state_names)


def _grad_effects(recorder: _Recorder) -> list[tuple[Source, Var | None]]:
    effects = []
    for source, leaf, before in recorder.entry_grads.values():
        if leaf.grad is before:
            continue
        if leaf._hooks:
            recorder.graph_break(f"a post-accumulate-grad hook ({leaf._hooks[0].__qualname__}) "
                                 f"on a tensor of shape {leaf.shape}", "backward")
        effects.append((source, None if leaf.grad is None else recorder.var_of(leaf.grad)))
    return effects


def _assemble(recorder: _Recorder, fn: Callable[..., Any], args: tuple, kwargs: dict[str, Any],
              leaves: list[Tensor], positions: list[int], structure: Any, results: list,
              grads: list, result: Any, state_names: Mapping[int, str] | None) -> Traced:
    outputs: dict[Var, int] = {}  # each value once: a result that is also a new gradient...

    def output(var: Var) -> int:
        return outputs.setdefault(var, len(outputs))

    result_plan = [(same, None if same else output(var), device, requires_grad)
                   for same, var, device, requires_grad in results]
    value_guards = [(output(v), value, where) for v, value, where in recorder.value_guards]
    updates = [(source, output(var)) for source, var in recorder.updates.values()]
    grad_plan = [(source, None if var is None else output(var)) for source, var in grads]
    names = _input_names(recorder, fn, _leaf_names(fn, args, kwargs), leaves, positions,
                         state_names)
    graph = Graph(inputs=tuple(v for v, _, _ in recorder.inputs), nodes=tuple(recorder.nodes),
                  outputs=tuple(outputs), consts=dict(recorder.consts), names=names)
    return Traced(
        graph=graph.verify(), sources=[s for _, s, _ in recorder.inputs],
        captured=[t for _, s, t in recorder.inputs if s.arg is None], n_args=len(positions),
        arg_positions=positions, structure=structure, results=result_plan,
        value_guards=value_guards, updates=updates, grads=grad_plan,
        tensor_guards=list(recorder.tensor_guards), guards=list(recorder.guards.values()),
        result=result, graph_break=recorder.broken)


def _input_names(recorder: _Recorder, fn: Callable[..., Any], arg_names: list[str],
                 leaves: list[Tensor], positions: list[int],
                 state_names: Mapping[int, str] | None) -> dict[Var, str]:
    known = dict(state_names if state_names is not None else _state_names(fn))
    names: dict[Var, str] = {}
    for k, (var, source, t) in enumerate(recorder.inputs):
        if source.arg is not None:
            names[var] = arg_names[positions[source.arg]]
        elif source.grad_of is not None:
            owner = source.grad_of.resolve([leaves[i] for i in positions])
            names[var] = f"grad({known.get(id(owner), 'state')})"
        else:
            names[var] = known.get(id(t), f"state{k - len(positions)}")
    return names


def _state_names(fn: Callable[..., Any]) -> Mapping[int, str]:
    names = getattr(fn, "state_names", None)
    if names is not None:
        return names
    named = getattr(fn, "named_parameters", None)
    if named is None:
        return {}
    table = {id(t): name for name, t in named()}
    table.update({id(t): name for name, t in fn.named_buffers()})
    return table


def _leaf_names(fn: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> list[str]:
    """A name for each Tensor of the arguments, in :func:`flatten` order: ``x``, ``batch[0]``."""
    try:
        params = inspect.signature(getattr(fn, "forward", fn)).parameters.values()
        positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY,
                                                           p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        positional = []
    names: list[str] = []

    def walk(obj: Any, name: str) -> None:
        if isinstance(obj, Tensor):
            names.append(name)
        elif type(obj) in (tuple, list):
            for i, o in enumerate(obj):
                walk(o, f"{name}[{i}]")
        elif type(obj) is dict:
            for k, v in obj.items():
                walk(v, f"{name}[{k!r}]")

    for i, a in enumerate(args):
        walk(a, positional[i] if i < len(positional) else f"arg{i}")
    for k, v in kwargs.items():
        walk(v, k)
    return names
