"""The eager ``Tensor`` and reverse-mode automatic differentiation over a tape.

Every operation on Tensors is a primitive from :mod:`mlsys.ops`. When gradients are needed, the
result remembers its :class:`Node` (the primitive, its inputs, its parameters and when it saved
them). ``backward`` walks those nodes in reverse topological order and calls each
primitive's VJP rule; the rules are themselves written with primitives, so a backward pass can be
traced into a graph or differentiated again (``create_graph=True``).

Dtypes follow PyTorch: Python numbers take the tensor's dtype unless they are of a higher kind
(``int64 * 2.5`` is float32), integer true division gives float32, and an in-place op keeps the
tensor's dtype. In-place ops (``add_``, ``x[i] = v``...) compute out of place and write the
result into the tensor's memory, so views see it; each write counts a version
(:mod:`mlsys.versions`) and backward refuses values changed after it saved them.

Devices: ``cpu`` and ``numba`` tensors hold host numpy arrays; a device with a :class:`Backend`
(``cuda``) holds its own arrays in its own memory, and data crosses between host and device
only on ``to()``, ``numpy()``, ``item()``, ``tolist()``, printing and host operands.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from . import autograd
from .ops import elementwise as E
from .ops import linalg as L
from .ops import nn as NN
from .ops import reduce as R
from .ops import shape as S
from .ops._rules import DEFAULT_FLOAT, normalize_axes
from .ops.registry import Primitive, Spec, set_dispatcher
from .versions import CLOCK, TrackedArray, bump, new_counter

__all__ = ["Tensor", "tensor", "apply", "add_observer", "remove_observer", "notify", "assign",
           "ValuesIndices", "Backend", "register_backend", "backend_of", "move_", "filled",
           "forward_on"]

DEFAULT_DTYPE = DEFAULT_FLOAT


class Node:
    """How a tensor was made: the primitive, its input tensors, its static parameters, and the
    write clock when it saved them (:mod:`mlsys.versions`)."""

    __slots__ = ("prim", "inputs", "params", "saved_at")

    def __init__(self, prim: Primitive, inputs: tuple[Tensor, ...], params: dict[str, Any],
                 saved_at: int | None = None):
        self.prim, self.inputs, self.params = prim, inputs, params
        self.saved_at = CLOCK[0] if saved_at is None else saved_at


class ValuesIndices(NamedTuple):
    """What ``max(dim)``, ``min(dim)``, ``sort`` and ``topk`` return, as in PyTorch."""

    values: Tensor
    indices: Tensor


class RemovableHandle:
    """Returned by hook registration; ``remove()`` unregisters the hook."""

    def __init__(self, hooks: list, hook: Callable) -> None:
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


# Observers see every primitive application (the graph tracer is one), and the events of notify.
_observers: list[Any] = []


def add_observer(observer: Any) -> None:
    """Call ``observer.record(prim, inputs, params, out)`` after every primitive application."""
    _observers.append(observer)


def remove_observer(observer: Any) -> None:
    _observers.remove(observer)


def notify(event: str, *args: Any) -> None:
    """Tell each observer that has a method named ``event`` about something other than a primitive
    application. The graph tracer listens for ``created(t, source)`` (a tensor made from data, or
    sharing ``source``'s), ``alias(out, of)`` (same values: detach, clone), ``concretize(t)`` (the
    value goes to Python: item, tolist, numpy), ``assigned(target, value)``, ``reset_grad(t)``,
    ``guard(key, read, what)`` and ``graph_break(what)``."""
    for observer in _observers:
        method = getattr(observer, event, None)
        if method is not None:
            method(*args)


def assign(target: Tensor, value: Tensor, *, donate: bool = False) -> None:
    """``target.data = value.data`` (a copy, cast to ``target``'s dtype), outside autodiff.

    This is how optimizers and running statistics store new state; a traced program records it as
    a state update (the graph returns the new value, the compiled function stores it).
    ``donate=True`` hands ``value``'s buffer over without a copy (the caller never uses ``value``
    again).
    """
    if not isinstance(target, Tensor) or not isinstance(value, Tensor):
        raise TypeError(f"assign: expected two Tensors, got {type(target).__name__} and "
                        f"{type(value).__name__}")
    if target._data.shape != value._data.shape:
        raise ValueError(f"assign: value of shape {value.shape} does not fit target of shape "
                         f"{target.shape}")
    if _observers:
        notify("assigned", target, value)
    data, dtype = _data_on(target.device, value), target._data.dtype
    if donate and data.base is None and data.dtype == dtype and data.flags.writeable:
        _rebind(target, data)
    elif target.device in _RESIDENT:
        _rebind(target, data.astype(dtype))  # a copy on the device
    else:
        _rebind(target, np.array(data, dtype=dtype, copy=True))


def _rebind(t: Tensor, data: Any) -> None:
    """Make ``data`` (an array in ``t``'s device memory) ``t``'s new memory: a new version, no
    longer a view of anything."""
    version = _version_of(t)
    t._data = data
    t._view = t._base = None
    t._counter = new_counter(version + 1)


_spec_cache: dict[tuple, Spec] = {}


def _infer_spec(prim: Primitive, arrays: Sequence[Any], params: dict[str, Any], key: tuple) -> Spec:
    """The output spec from the primitive's shape rule, memoized under ``key``, the input
    signature (``apply`` builds it: the primitive, each input's shape and dtype, the parameters).

    Training loops repeat the same signatures every step, so the rule (which validates shapes and
    dtypes and raises the clear errors) runs once per signature rather than once per call.
    """
    spec = prim.shape(*[Spec(a.shape, a.dtype) for a in arrays], **params)
    if len(_spec_cache) > 50_000:
        _spec_cache.clear()
    try:
        _spec_cache[key] = spec
    except TypeError:  # an unhashable parameter: validated, not memoized
        pass
    return spec


def _wrap(data: np.ndarray, device: str = "cpu") -> Tensor:
    """A Tensor around ``data`` that takes no part in autodiff (the fast constructor)."""
    out = Tensor.__new__(Tensor)
    out._data, out.grad, out._node, out._hooks, out._retains_grad = data, None, None, None, False
    out.device, out.requires_grad, out._counter, out._base, out._view = device, False, None, None, None
    return out


def _made(data: np.ndarray, device: str = "cpu") -> Tensor:
    """A constant made from data (a lifted number, a VJP rule's constant), announced to observers.
    On a device with its own memory a one-element constant is made there (no transfer)."""
    backend = _RESIDENT.get(device)
    if backend is not None:
        data = (backend.full(data.shape, data.reshape(-1)[0], data.dtype) if data.size == 1
                else backend.upload(data))
    out = _wrap(data, device)
    if _observers:
        notify("created", out, None)
    return out


def _owner(t: Tensor) -> Tensor:
    """The tensor owning ``t``'s memory and version counter: its base when ``t`` is a view."""
    return t if t._base is None else t._base


def _version_of(t: Tensor) -> int:
    counter = _owner(t)._counter
    return 0 if counter is None else counter[0]


def _copy_counter(t: Tensor) -> list | None:
    """A counter of its own at ``t``'s version and last write (for a copy of ``t``)."""
    counter = _owner(t)._counter
    return None if counter is None else list(counter)


def _counter_for(t: Tensor) -> list:
    owner = _owner(t)
    if owner._counter is None:
        owner._counter = new_counter()
    return owner._counter


def apply(prim: Primitive, *inputs: Tensor, **params: Any) -> Tensor:
    """Apply a primitive to Tensors, checking it with its shape rule and recording it for backward."""
    device = "cpu"
    # One pass over the inputs checks them and builds the signature the shape rule's result is
    # memoized under, flat: (prim, shape, dtype, shape, dtype, ..., params) (the eager hot path).
    arrays, key = [], [prim]
    for t in inputs:
        if not isinstance(t, Tensor):
            raise TypeError(f"{prim.name}: expected Tensor inputs, got {type(t).__name__}")
        if t.device != "cpu":
            device = _join_devices(prim, device, t.device)
        data = t._data
        arrays.append(data)
        key.append(data.shape)
        key.append(data.dtype)
    if params:
        key.extend(params.items())
    key = tuple(key)
    try:
        spec = _spec_cache[key]
    except (KeyError, TypeError):
        spec = _infer_spec(prim, arrays, params, key)
    if device == "cpu":
        data = prim.forward(*arrays, **params)
    else:
        data = forward_on(device, prim, arrays, params)
    if type(data) is not np.ndarray and device not in _RESIDENT:  # numpy returns 0-d scalars
        data = np.asarray(data)
    if data.dtype is not spec.dtype and data.dtype != spec.dtype:
        data = data.astype(spec.dtype)
    out = Tensor.__new__(Tensor)
    out._data, out.grad, out._node, out._hooks, out._retains_grad = data, None, None, None, False
    out.device, out.requires_grad, out._counter, out._view = device, False, None, None
    # a view (or an op handing back its input) shares memory, hence versions, with its input
    if (prim.view and data.base is not None) or (arrays and data is arrays[0]):
        out._base = _owner(inputs[0])
    else:
        out._base = None
    if prim.vjp is not None and autograd._state["enabled"]:
        for t in inputs:
            if t.requires_grad:
                out.requires_grad = True
                out._node = Node(prim, inputs, params, CLOCK[0])
                break
    for observer in _observers:
        observer.record(prim, inputs, params, out)
    return out


set_dispatcher(apply)

# Devices a Tensor can live on, and the module whose import registers each one's kernels into
# ``Primitive.impls`` (and, for a device with memory of its own, its Backend). On "numba" the data
# is a host numpy array and the device picks the implementation that computes it; on "cuda" it
# lives in device memory (see ``mlsys.kernels``).
DEVICES = {"cpu": None, "numba": "mlsys.kernels.cpu.register", "cuda": "mlsys.kernels.cuda.register"}
_fallback_noted: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Backend:
    """A device whose tensors live in its own memory, as arrays of ``array_type``: how data moves
    between host and device (``upload``, ``download``; each a counted transfer), how it makes a
    filled array there (``full``: the value travels with the launch), how a host operand of one of
    its operations enters it (``operand``), how it writes one array into another
    (``copy_into(dst, src)``, converting the dtype) and how it runs a compiled graph
    (``executable(graph)``, called ``(*arrays) -> list of arrays``)."""

    array_type: type
    upload: Callable[[np.ndarray], Any]
    download: Callable[[Any], np.ndarray]
    full: Callable[[tuple[int, ...], Any, np.dtype], Any]
    operand: Callable[[Any], Any]
    copy_into: Callable[[Any, Any], Any]
    executable: Callable[[Any], Callable[..., list]]


_RESIDENT: dict[str, Backend] = {}


def register_backend(device: str, backend: Backend) -> None:
    """Make ``device``'s tensors live in ``backend``'s memory (its kernel module does this)."""
    _RESIDENT[device] = backend


def backend_of(array: Any) -> Backend | None:
    """The backend whose memory holds ``array`` (None for a host array)."""
    if type(array) is np.ndarray:
        return None
    return next((b for b in _RESIDENT.values() if isinstance(array, b.array_type)), None)


def _host(t: Tensor) -> np.ndarray:
    """``t``'s values on the host (downloaded, counted, from a device with its own memory)."""
    backend = _RESIDENT.get(t.device)
    return t._data if backend is None else backend.download(t._data)


def _data_on(device: str, t: Tensor) -> Any:
    """``t``'s data in ``device``'s memory: its own, or moved there (a counted transfer)."""
    source, target = _RESIDENT.get(t.device), _RESIDENT.get(device)
    if source is target:
        return t._data
    data = t._data if source is None else source.download(t._data)
    return data if target is None else target.upload(data)


def filled(shape: Sequence[int], value: Any, dtype: Any, device: str = "cpu") -> Tensor:
    """A new tensor holding ``value`` everywhere, made on ``device`` (on a device with its own
    memory by a fill kernel: nothing crosses the bus)."""
    _check_device(device)
    backend = _RESIDENT.get(device)
    shape, dtype = tuple(int(n) for n in shape), np.dtype(dtype)
    data = np.full(shape, value, dtype) if backend is None else backend.full(shape, value, dtype)
    return _made(data, device) if backend is None else _announce(_wrap(data, device))


def _announce(t: Tensor) -> Tensor:
    if _observers:
        notify("created", t, None)
    return t


def _copy_into(target: Tensor, value: Tensor) -> None:
    """Write ``value``'s values into ``target``'s memory (converting the dtype, same kind)."""
    backend = _RESIDENT.get(target.device)
    if backend is None:
        np.copyto(target._data, _host(value), casting="same_kind")
        return
    data = value._data
    if backend_of(data) is not backend:
        host = _host(value)
        scalar = host.size and not any(host.strides)  # a broadcast number (fill_): no transfer
        data = host[(0,) * host.ndim] if scalar else backend.upload(host)
    backend.copy_into(target._data, data)


def move_(t: Tensor, device: str) -> Tensor:
    """Move a leaf's data (and gradient) to ``device`` in place, keeping the Tensor object (how
    ``mlsys.kernels.to_device`` moves the parameters an optimizer holds). Returns ``t``."""
    _check_device(device)
    if device != t.device:
        data = _data_on(device, t)
        if t.grad is not None:
            t.grad = t.grad.to(device)
        version = _version_of(t)
        t._data, t.device, t._view, t._base = data, device, None, None
        t._counter = new_counter(version + 1)
    return t


def _join_devices(prim: Primitive, a: str, b: str) -> str:
    """The device of an op whose inputs live on ``a`` and ``b`` (cpu operands join any device)."""
    if a != "cpu" and a != b:
        raise RuntimeError(f"{prim.name}: inputs live on different devices, {a!r} and {b!r}; "
                           f"move them to one device with .to(device)")
    return b


def forward_on(device: str, prim: Primitive, arrays: list, params: dict[str, Any]) -> Any:
    """Run ``prim`` with the ``device`` kernel, or the numpy reference (noted once) without one.

    A kernel returns ``NotImplemented`` for inputs it does not handle (a dtype, a layout). On a
    device with its own memory, host operands enter it first (0-d ones as kernel arguments) and
    the reference runs on downloaded copies, its result uploaded.
    """
    backend = _RESIDENT.get(device)
    if backend is not None:
        arrays = [backend.operand(a) for a in arrays]
    impl = prim.impls.get(device)
    if impl is not None:
        data = impl(*arrays, **params)
        if data is not NotImplemented:
            return data
    if (prim.name, device) not in _fallback_noted:
        _fallback_noted.add((prim.name, device))
        shapes = ", ".join(f"{a.dtype}{list(a.shape)}" for a in arrays)
        why = "no kernel" if impl is None else f"its kernel does not take ({shapes})"
        warnings.warn(f"mlsys: {prim.name} on device {device!r}: {why}; running the numpy "
                      f"reference instead (noted once per primitive and device)", stacklevel=3)
    if backend is None:
        return prim.forward(*arrays, **params)
    host = [backend.download(a) if isinstance(a, backend.array_type) else a for a in arrays]
    return backend.upload(np.asarray(prim.forward(*host, **params)))


def _check_device(device: str) -> None:
    """Import the device's kernels on first use, with a clear error for unknown names."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")
    if DEVICES[device] is not None:
        importlib.import_module(DEVICES[device])


def _default_dtype_for(array: np.ndarray) -> np.dtype:
    if array.dtype == np.float64 or array.dtype == np.float16:
        return DEFAULT_DTYPE
    if np.issubdtype(array.dtype, np.integer):
        return np.dtype(np.int64)
    return array.dtype


def _as_array(data: Any, dtype: Any, copy: bool) -> np.ndarray:
    """Python data becomes float32/int64 as in PyTorch; numpy arrays and scalars keep their dtype."""
    if isinstance(data, Tensor):
        data = _host(data)
    array = np.array(data, dtype=dtype, copy=True) if copy else np.asarray(data, dtype=dtype)
    if dtype is None and not isinstance(data, (np.ndarray, np.generic)):
        array = array.astype(_default_dtype_for(array), copy=False)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"tensor: cannot make a tensor from {type(data).__name__} holding "
                        f"non-numeric values ({array.dtype}); expected numbers")
    return array


_KIND_RANK = {"b": 0, "i": 1, "u": 1, "f": 2}
_SCALAR_DEFAULT = {"b": np.dtype(bool), "i": np.dtype(np.int64), "u": np.dtype(np.int64),
                   "f": DEFAULT_DTYPE}


class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    ``data`` is the underlying numpy array. Leaves created with ``requires_grad=True`` receive
    gradients in ``.grad`` (accumulated across ``backward`` calls until ``zero_grad``).
    """

    __slots__ = ("_data", "requires_grad", "grad", "_node", "_hooks", "_retains_grad", "device",
                 "_counter", "_base", "_view", "__weakref__")
    __array_priority__ = 1000  # numpy defers to Tensor's reflected operators

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None) -> None:
        source = data if isinstance(data, Tensor) and dtype is None else None
        self._data = _as_array(data, dtype, copy=False)
        self.grad: Tensor | None = None
        self._node: Node | None = None
        self._hooks: list | None = None
        self._retains_grad = False
        self.device = "cpu"
        self._counter = self._view = None
        # made around another tensor's array: the same memory, so the same versions
        self._base = _owner(source) if source is not None and self._data is source._data else None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)
        if _observers:
            notify("created", self, source)

    # -- the data and its versions ------------------------------------------------------------
    @property
    def data(self) -> Any:
        """The numpy array holding the values (writes through it count a version); on a device
        with its own memory, its device array (``np.asarray`` of it downloads the values)."""
        if self.device in _RESIDENT:
            return self._data
        view = self._view
        if view is None:
            view = self._view = TrackedArray.of(self._data, _counter_for(self))
        return view

    @data.setter
    def data(self, value: Any) -> None:
        """Rebind to new memory (no longer a view of anything): a new version. Data from another
        device is moved to this tensor's (a counted transfer)."""
        if isinstance(value, Tensor):
            value = _data_on(self.device, value)
        backend, source = _RESIDENT.get(self.device), backend_of(value)
        if backend is not source:
            value = (backend.upload(np.asarray(value)) if source is None
                     else source.download(value) if backend is None
                     else backend.upload(source.download(value)))
        _rebind(self, value if backend is not None else np.asarray(value))

    @property
    def _version(self) -> int:
        """How many times this tensor's memory has been written in place (PyTorch's name)."""
        return _version_of(self)

    def __getstate__(self) -> dict[str, Any]:  # copies and pickles own their memory: no view state
        return {"_data": self._data, "requires_grad": self.requires_grad, "grad": self.grad,
                "_node": self._node, "_hooks": self._hooks, "_retains_grad": self._retains_grad,
                "device": self.device, "_counter": _copy_counter(self)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)
        self._base = self._view = None

    # -- construction helpers -------------------------------------------------------------
    def new_constant(self, data: Any) -> Tensor:
        """A tensor that takes no part in autodiff (used by VJP rules for constants)."""
        return _made(np.asarray(data))

    def _lift(self, other: Any) -> Tensor:
        """Turn a Python number or array operand into a Tensor. A number takes this tensor's dtype
        unless it is of a higher kind (a float with an integer tensor: the default float type)."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, np.ndarray):
            return Tensor(other)
        array = np.asarray(other)
        kind = array.dtype.kind
        if kind not in _KIND_RANK:
            raise TypeError(f"expected a number, an array or a Tensor as operand, got "
                            f"{type(other).__name__}")
        mine = self._data.dtype
        dtype = mine if _KIND_RANK[kind] <= _KIND_RANK.get(mine.kind, 3) else _SCALAR_DEFAULT[kind]
        return _made(array.astype(dtype, copy=False))

    # -- basic properties ----------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def ndim(self) -> int:
        return self._data.ndim

    def dim(self) -> int:
        return self._data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def grad_fn(self) -> str | None:
        """Name of the primitive that produced this tensor (None for leaves)."""
        return None if self._node is None else self._node.prim.name

    def is_floating_point(self) -> bool:
        return self._data.dtype.kind == "f"

    def numel(self) -> int:
        return int(self._data.size)

    def size(self, dim: int | None = None) -> tuple[int, ...] | int:
        return self._data.shape if dim is None else self._data.shape[dim]

    def numpy(self) -> np.ndarray:
        """The data as a numpy array (refuses tensors that require grad, as PyTorch does). From a
        device with its own memory: a read-only host copy (writes to it could not reach the
        tensor)."""
        if self.requires_grad:
            raise RuntimeError("numpy(): this tensor requires grad; call .detach().numpy()")
        notify("concretize", self)
        if self.device not in _RESIDENT:
            return self.data
        host = _host(self)
        host.flags.writeable = False
        return host

    def item(self) -> float | int | bool:
        if self._data.size != 1:
            raise ValueError(f"item(): only one-element tensors convert to a Python scalar, "
                             f"got shape {self.shape}")
        notify("concretize", self)
        return self._data.item()

    def tolist(self) -> Any:
        notify("concretize", self)
        return self._data.tolist()

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __repr__(self) -> str:
        body = np.array2string(_host(self), separator=", ", precision=4, prefix="tensor(")
        extra = f", dtype={self.dtype}" if self.dtype not in (DEFAULT_DTYPE, np.int64) else ""
        if self.device != "cpu":
            extra += f", device={self.device!r}"
        if self._node is not None:
            extra += f", grad_fn=<{self._node.prim.name}>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    def __bool__(self) -> bool:
        return bool(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    __hash__ = object.__hash__

    # -- autodiff state --------------------------------------------------------------------
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and not np.issubdtype(self._data.dtype, np.floating):
            raise TypeError(f"only floating-point tensors can require gradients, got dtype "
                            f"{self._data.dtype}")
        if not self.is_leaf and not requires_grad:
            raise RuntimeError("requires_grad_(False) is only allowed on leaf tensors; use detach()")
        self.requires_grad = bool(requires_grad)
        return self

    def detach(self) -> Tensor:
        """The same memory (and version counter) on the same device, cut from the graph."""
        out = _wrap(self._data, self.device)
        out._base = _owner(self)
        notify("alias", out, self)
        return out

    def clone(self) -> Tensor:
        """A copy on the same device; gradients flow back through it (a recorded ``copy``)."""
        return E.copy(self)

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor after backward."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad(): this tensor does not require grad")
        self._retains_grad = True

    def register_post_accumulate_grad_hook(self, hook: Callable[[Tensor], None]) -> RemovableHandle:
        """Call ``hook(tensor)`` each time backward has accumulated this leaf's ``.grad``."""
        if not self.is_leaf:
            raise RuntimeError("post-accumulate-grad hooks can only be registered on leaf tensors")
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(hook)
        return RemovableHandle(self._hooks, hook)

    def backward(self, gradient: Tensor | np.ndarray | None = None,
                 retain_graph: bool | None = None, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into ``.grad`` of every leaf that requires grad.

        The graph is freed afterwards unless ``retain_graph`` (default: ``create_graph``);
        ``create_graph=True`` records the backward pass itself, for higher derivatives.
        """
        from .backward import run_backward

        retain = create_graph if retain_graph is None else retain_graph
        run_backward(self, gradient, retain_graph=retain, create_graph=create_graph)

    # -- in-place operations ------------------------------------------------------------------
    def _write(self, name: str, compute: Callable[[Tensor], Tensor], *operands: Any) -> Tensor:
        """Make ``compute(self)`` (an out-of-place result) this tensor's contents, in its memory.

        When the result joins the graph, it is computed from a recorded copy of the old contents
        (which keeps their history), and this tensor becomes the op's output: PyTorch rebases
        history the same way.
        """
        recording = autograd._state["enabled"] and (
            self.requires_grad or any(isinstance(o, Tensor) and o.requires_grad for o in operands))
        if recording and self.requires_grad and self._node is None:
            raise RuntimeError(f"{name}: in-place operation on a leaf tensor that requires grad; do "
                               f"it under mlsys.no_grad() (as optimizers do), or on a clone()")
        if recording and self._base is not None:
            raise RuntimeError(f"{name}: in-place operation on a view (made by slicing, reshape, "
                               f"detach...) whose result requires grad is not supported; use the "
                               f"out-of-place op instead")
        if not self._data.flags.writeable:
            raise RuntimeError(f"{name}: this tensor's memory is read-only (an expand/broadcast_to "
                               f"view shares one element among several); clone() it first")
        value = compute(self._recorded_copy() if recording else self)
        if value.shape != self.shape:
            raise RuntimeError(f"{name}: the result has shape {value.shape}, which does not fit "
                               f"this tensor's shape {self.shape} (in-place ops do not broadcast "
                               f"the tensor written to)")
        if not np.can_cast(value.dtype, self.dtype, "same_kind"):
            raise TypeError(f"{name}: a {value.dtype} result cannot be stored in place in this "
                            f"{self.dtype} tensor")
        _copy_into(self, value)
        bump(_counter_for(self))
        if recording:
            node = self._node = value._node
            self.requires_grad = value.requires_grad
            if node is not None:  # it saved its inputs just now; its output is this write
                node.saved_at = CLOCK[0]
        notify("assigned", self, value)
        return self

    def _recorded_copy(self) -> Tensor:
        """``copy(self)`` whose recorded input is a stand-in for this tensor's history so far: the
        in-place write that follows changes this tensor, not the values its history produced."""
        source = E.copy(self)
        if self.requires_grad:
            old = _wrap(source._data, self.device)
            old._node, old.requires_grad = self._node, True
            old._counter = _copy_counter(self)
            source._node.inputs = (old,)
        return source

    def add_(self, other: Any, alpha: float = 1) -> Tensor:
        other = self._lift(other)
        return self._write("add_", lambda s: s + (other if alpha == 1 else other * alpha), other)

    def sub_(self, other: Any, alpha: float = 1) -> Tensor:
        other = self._lift(other)
        return self._write("sub_", lambda s: s - (other if alpha == 1 else other * alpha), other)

    def mul_(self, other: Any) -> Tensor:
        other = self._lift(other)
        return self._write("mul_", lambda s: s * other, other)

    def div_(self, other: Any) -> Tensor:
        other = self._lift(other)
        return self._write("div_", lambda s: s / other, other)

    def fill_(self, value: Any) -> Tensor:
        value = self._lift(value)
        if value.ndim:
            raise ValueError(f"fill_: expected a number or a 0-d tensor, got shape {value.shape}")
        return self._write("fill_", lambda s: S.broadcast_to(value, shape=s.shape), value)

    def zero_(self) -> Tensor:
        return self.fill_(0)

    def copy_(self, src: Any) -> Tensor:
        src = self._lift(src)
        return self._write("copy_", lambda s: S.broadcast_to(src, shape=s.shape), src)

    def clamp_(self, min: Any = None, max: Any = None) -> Tensor:
        return self._write("clamp_", lambda s: s.clamp(min, max), min, max)

    def masked_fill_(self, mask: Tensor, value: Any) -> Tensor:
        return self._write("masked_fill_", lambda s: s.masked_fill(mask, value), value)

    def __setitem__(self, key: Any, value: Any) -> None:
        value = self._lift(value)
        index = S.Index(_index_key(key))
        self._write("setitem", lambda s: S.setitem(s, value, index=index), value)

    def __iadd__(self, other: Any) -> Tensor:
        return self.add_(other)

    def __isub__(self, other: Any) -> Tensor:
        return self.sub_(other)

    def __imul__(self, other: Any) -> Tensor:
        return self.mul_(other)

    def __itruediv__(self, other: Any) -> Tensor:
        return self.div_(other)

    # -- arithmetic --------------------------------------------------------------------------
    def __add__(self, other: Any) -> Tensor:
        return E.add(self, self._lift(other))

    def __radd__(self, other: Any) -> Tensor:
        return E.add(self._lift(other), self)

    def __sub__(self, other: Any) -> Tensor:
        return E.sub(self, self._lift(other))

    def __rsub__(self, other: Any) -> Tensor:
        return E.sub(self._lift(other), self)

    def __mul__(self, other: Any) -> Tensor:
        return E.mul(self, self._lift(other))

    def __rmul__(self, other: Any) -> Tensor:
        return E.mul(self._lift(other), self)

    def __truediv__(self, other: Any) -> Tensor:
        return E.div(self, self._lift(other))

    def __rtruediv__(self, other: Any) -> Tensor:
        return E.div(self._lift(other), self)

    def __pow__(self, other: Any) -> Tensor:
        return E.pow(self, self._lift(other))

    def __rpow__(self, other: Any) -> Tensor:
        return E.pow(self._lift(other), self)

    def __neg__(self) -> Tensor:
        return E.neg(self)

    def __abs__(self) -> Tensor:
        return E.abs(self)

    def __matmul__(self, other: Any) -> Tensor:
        return matmul(self, self._lift(other))

    def __rmatmul__(self, other: Any) -> Tensor:
        return matmul(self._lift(other), self)

    def __gt__(self, other: Any) -> Tensor:
        return E.greater(self, self._lift(other))

    def __ge__(self, other: Any) -> Tensor:
        return E.greater_equal(self, self._lift(other))

    def __lt__(self, other: Any) -> Tensor:
        return E.less(self, self._lift(other))

    def __le__(self, other: Any) -> Tensor:
        return E.less_equal(self, self._lift(other))

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return E.equal(self, self._lift(other))

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return E.not_equal(self, self._lift(other))

    def exp(self) -> Tensor:
        return E.exp(self)

    def log(self) -> Tensor:
        return E.log(self)

    def sqrt(self) -> Tensor:
        return E.sqrt(self)

    def tanh(self) -> Tensor:
        return E.tanh(self)

    def sigmoid(self) -> Tensor:
        return E.sigmoid(self)

    def relu(self) -> Tensor:
        return E.relu(self)

    def abs(self) -> Tensor:
        return E.abs(self)

    def sign(self) -> Tensor:
        return E.sign(self)

    def maximum(self, other: Any) -> Tensor:
        return E.maximum(self, self._lift(other))

    def minimum(self, other: Any) -> Tensor:
        return E.minimum(self, self._lift(other))

    def clamp(self, min: Any = None, max: Any = None) -> Tensor:
        """Limit to [min, max]; the gradient passes where min <= x <= max (PyTorch's rule)."""
        if min is None and max is None:
            raise ValueError("clamp: give at least one of min and max")
        out = self
        if min is not None:
            low = self._lift(min)
            out = E.where(E.less(out, low), low, out)
        if max is not None:
            high = self._lift(max)
            out = E.where(E.greater(out, high), high, out)
        return out

    clip = clamp

    def masked_fill(self, mask: Tensor, value: Any) -> Tensor:
        """``value`` where ``mask`` (bool, broadcastable) holds, else this tensor; keeps the dtype."""
        if not isinstance(mask, Tensor) or mask.dtype != np.dtype(bool):
            raise TypeError(f"masked_fill: mask must be a bool Tensor, got "
                            f"{getattr(mask, 'dtype', type(mask).__name__)}")
        fill = value if isinstance(value, Tensor) else _made(np.asarray(value, dtype=self.dtype))
        if fill.ndim:
            raise ValueError(f"masked_fill: value must be a number or a 0-d tensor, got shape "
                             f"{fill.shape}")
        return E.where(mask, fill.to(self.dtype), self)

    def to(self, dtype: Any) -> Tensor:
        """Convert to ``dtype`` (a numpy dtype or name), or move to a device ("cpu", "numba", "cuda").

        Moving gives a leaf on the new device (a leaf that required grad still does): it shares
        this tensor's data when both devices keep it in host memory, and is a copy (a counted
        transfer) when one of them is a device with memory of its own. Move parameters in place
        with ``mlsys.kernels.to_device``.
        """
        if isinstance(dtype, str) and dtype in DEVICES:
            if dtype == self.device:
                return self
            if self.requires_grad and not self.is_leaf:
                raise RuntimeError(f"to({dtype!r}): move leaf tensors (inputs, parameters); "
                                   f"this one was made by {self.grad_fn}")
            _check_device(dtype)
            if _RESIDENT.get(dtype) is _RESIDENT.get(self.device):
                out = self.detach()
            else:
                notify("graph_break", f"moving a tensor from {self.device!r} to {dtype!r} memory")
                out = _wrap(_data_on(dtype, self))
            out.device = dtype
            out.requires_grad = self.requires_grad
            return out
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"to({dtype!r}): expected a numpy dtype or a device "
                            f"({', '.join(DEVICES)})") from None
        return self if dtype == self.dtype else E.cast(self, dtype=dtype)

    def float(self) -> Tensor:
        return self.to(np.float32)

    def double(self) -> Tensor:
        return self.to(np.float64)

    def long(self) -> Tensor:
        return self.to(np.int64)

    # -- reductions -----------------------------------------------------------------------------
    def sum(self, dim: int | Sequence[int] | None = None, keepdim: bool = False) -> Tensor:
        return R.sum(self, axis=normalize_axes(dim, self.ndim, "sum"), keepdims=keepdim)

    def mean(self, dim: int | Sequence[int] | None = None, keepdim: bool = False) -> Tensor:
        return R.mean(self, axis=normalize_axes(dim, self.ndim, "mean"), keepdims=keepdim)

    def prod(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        return R.prod(self, axis=normalize_axes(dim, self.ndim, "prod"), keepdims=keepdim)

    def amax(self, dim: int | Sequence[int] | None = None, keepdim: bool = False) -> Tensor:
        """Maximum over ``dim`` (all dims when None); tied maxima share the gradient."""
        return R.max(self, axis=normalize_axes(dim, self.ndim, "amax"), keepdims=keepdim)

    def amin(self, dim: int | Sequence[int] | None = None, keepdim: bool = False) -> Tensor:
        """Minimum over ``dim`` (all dims when None); tied minima share the gradient."""
        return R.min(self, axis=normalize_axes(dim, self.ndim, "amin"), keepdims=keepdim)

    def max(self, dim: int | Tensor | None = None, keepdim: bool = False) -> Tensor | ValuesIndices:
        """The maximum (``dim=None``), ``(values, indices)`` along an int ``dim`` (the gradient goes
        to the index), or the elementwise maximum with another Tensor — PyTorch's three forms."""
        if isinstance(dim, Tensor):
            return E.maximum(self, dim)
        if dim is None:
            return R.max(self, axis=None, keepdims=False)
        return self._pick(R.argmax, dim, keepdim, "max")

    def min(self, dim: int | Tensor | None = None, keepdim: bool = False) -> Tensor | ValuesIndices:
        """The minimum, ``(values, indices)`` along ``dim``, or the elementwise minimum."""
        if isinstance(dim, Tensor):
            return E.minimum(self, dim)
        if dim is None:
            return R.min(self, axis=None, keepdims=False)
        return self._pick(R.argmin, dim, keepdim, "min")

    def _pick(self, arg: Primitive, dim: int, keepdim: bool, name: str) -> ValuesIndices:
        if self.ndim == 0:
            values, indices = self.reshape(1)._pick(arg, 0, False, name)
            return ValuesIndices(values, indices)
        axis = _one_axis(dim, self.ndim, name)
        indices = arg(self, axis=(axis,), keepdims=True)
        values = S.gather(self, indices, axis=axis)
        if not keepdim:
            values, indices = values.squeeze(axis), indices.squeeze(axis)
        return ValuesIndices(values, indices)

    def argmax(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        return R.argmax(self, axis=normalize_axes(dim, self.ndim, "argmax"), keepdims=keepdim)

    def argmin(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        return R.argmin(self, axis=normalize_axes(dim, self.ndim, "argmin"), keepdims=keepdim)

    def var(self, dim: int | Sequence[int] | None = None, keepdim: bool = False,
            correction: int = 1) -> Tensor:
        """Variance with Bessel's ``correction`` (NaN when it leaves no degrees of freedom)."""
        axes = normalize_axes(dim, self.ndim, "var")
        count = self.numel() if axes is None else int(np.prod([self.shape[a] for a in axes]))
        centered = self - self.mean(dim, keepdim=True)
        return (centered * centered).sum(dim, keepdim) / max(count - correction, 0)

    def std(self, dim: int | Sequence[int] | None = None, keepdim: bool = False,
            correction: int = 1) -> Tensor:
        return self.var(dim, keepdim, correction).sqrt()

    def cumsum(self, dim: int) -> Tensor:
        return R.cumsum(self, axis=_one_axis(dim, self.ndim, "cumsum"))

    def softmax(self, dim: int = -1) -> Tensor:
        return NN.softmax(self, axis=_one_axis(dim, self.ndim, "softmax"))

    def log_softmax(self, dim: int = -1) -> Tensor:
        return NN.log_softmax(self, axis=_one_axis(dim, self.ndim, "log_softmax"))

    # -- ordering -----------------------------------------------------------------------------
    def argsort(self, dim: int = -1, descending: bool = False) -> Tensor:
        """Indices that sort ``dim`` (stable; NaN sorts as the largest value)."""
        return R.argsort(self, axis=_one_axis(dim, self.ndim, "argsort"), descending=bool(descending))

    def sort(self, dim: int = -1, descending: bool = False, stable: bool = False) -> ValuesIndices:
        """``(values, indices)`` sorted along ``dim`` (always stable); gradients follow the indices."""
        if self.ndim == 0:
            return ValuesIndices(E.copy(self), _made(np.zeros((), np.int64), self.device))
        indices = self.argsort(dim, descending)
        return ValuesIndices(S.gather(self, indices, axis=_one_axis(dim, self.ndim, "sort")), indices)

    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> ValuesIndices:
        """The ``k`` largest (or smallest) entries along ``dim``, in order, with their indices."""
        if self.ndim == 0:
            raise ValueError("topk: expected a tensor with at least one dimension, got a 0-d tensor")
        axis = _one_axis(dim, self.ndim, "topk")
        size = self.shape[axis]
        if not isinstance(k, (int, np.integer)) or not 0 <= k <= size:
            raise ValueError(f"topk: k must be an int in [0, {size}] for dimension {axis} of shape "
                             f"{self.shape}, got {k!r}")
        order = self.argsort(axis, descending=largest)
        indices = order[(slice(None),) * axis + (slice(0, int(k)),)]
        return ValuesIndices(S.gather(self, indices, axis=axis), indices)

    # -- shape ----------------------------------------------------------------------------------
    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        target = _resolve_shape(_flat_shape(shape), self.numel(), self.shape)
        return self if target == self.shape else S.reshape(self, shape=target)

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        if self.ndim == 0:
            return self.reshape(1)
        start, end = start_dim % self.ndim, end_dim % self.ndim
        middle = int(np.prod(self.shape[start:end + 1], dtype=np.int64))
        return self.reshape(self.shape[:start] + (middle,) + self.shape[end + 1:])

    def unsqueeze(self, dim: int) -> Tensor:
        dim = dim % (self.ndim + 1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim: int | None = None) -> Tensor:
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        dim = dim % self.ndim
        if self.shape[dim] != 1:
            return self
        return self.reshape(self.shape[:dim] + self.shape[dim + 1:])

    def permute(self, *dims: int | Sequence[int]) -> Tensor:
        axes = tuple(d % self.ndim for d in _flat_shape(dims))
        return S.permute(self, axes=axes)

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        axes = list(range(self.ndim))
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return S.permute(self, axes=tuple(axes))

    def t(self) -> Tensor:
        """Transpose a matrix (a 0-d or 1-d tensor is returned as is), as ``torch.Tensor.t``."""
        if self.ndim > 2:
            raise ValueError(f"t(): expects a tensor with at most 2 dimensions, got shape "
                             f"{self.shape}; use transpose(dim0, dim1) or permute")
        return self if self.ndim < 2 else self.transpose(0, 1)

    @property
    def T(self) -> Tensor:
        return S.permute(self, axes=tuple(reversed(range(self.ndim))))

    def expand(self, *shape: int | Sequence[int]) -> Tensor:
        target = tuple(self.shape[i - len(_flat_shape(shape)) + self.ndim] if n == -1 else n
                       for i, n in enumerate(_flat_shape(shape)))
        return self if target == self.shape else S.broadcast_to(self, shape=target)

    broadcast_to = expand

    def gather(self, dim: int, index: Tensor) -> Tensor:
        """``out[i][j] = self[i][index[i][j]]`` along ``dim`` (PyTorch's gather)."""
        return S.gather(self, index, axis=_one_axis(dim, self.ndim, "gather"))

    def split(self, split_size_or_sections: int | Sequence[int], dim: int = 0) -> tuple[Tensor, ...]:
        """Pieces of ``split_size`` along ``dim`` (the last may be smaller), or of the listed sizes."""
        axis = _one_axis(dim, self.ndim, "split")
        n = self.shape[axis]
        if isinstance(split_size_or_sections, (int, np.integer)):
            size = int(split_size_or_sections)
            if size <= 0:
                raise ValueError(f"split: split_size must be positive, got {size}")
            sizes = [min(size, n - start) for start in range(0, n, size)] or [0]
        else:
            sizes = [int(s) for s in split_size_or_sections]
            if sum(sizes) != n or any(s < 0 for s in sizes):
                raise ValueError(f"split: sizes {sizes} do not add up to dimension {axis} of size {n}")
        bounds = np.cumsum([0] + sizes)
        lead = (slice(None),) * axis
        return tuple(self[lead + (slice(int(a), int(b)),)] for a, b in zip(bounds[:-1], bounds[1:]))

    def chunk(self, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
        """At most ``chunks`` pieces of equal size (the last may be smaller) along ``dim``."""
        if not isinstance(chunks, (int, np.integer)) or chunks <= 0:
            raise ValueError(f"chunk: chunks must be a positive int, got {chunks!r}")
        n = self.shape[_one_axis(dim, self.ndim, "chunk")]
        return self.split(max(-(-n // int(chunks)), 1), dim)

    def __getitem__(self, key: Any) -> Tensor:
        key = key if isinstance(key, tuple) else (key,)
        tensors = [k for k in key if isinstance(k, Tensor)]
        if tensors:
            if (len(tensors) == 1 and np.issubdtype(tensors[0].dtype, np.integer)
                    and all(isinstance(k, (Tensor, int, np.integer, slice)) or k is None
                            or k is Ellipsis for k in key)):
                return _take_along(self, key)
            # a mask's result shape depends on its values, so no static graph can hold it
            notify("graph_break", "indexing with a boolean mask or with several index arrays")
        key = tuple(_host(k) if isinstance(k, Tensor) else
                    np.asarray(k) if isinstance(k, list) else k for k in key)
        return S.getitem(self, index=S.Index(key))


def _index_key(key: Any) -> tuple:
    """A numpy index tuple for ``x[key] = v``: Tensors and lists inside it become arrays (a Tensor
    index is a graph break for the tracer: its values would be baked in)."""
    key = key if isinstance(key, tuple) else (key,)
    if any(isinstance(k, Tensor) for k in key):
        notify("graph_break", "assignment with a tensor index")
    return tuple(k._data if isinstance(k, Tensor) else np.asarray(k) if isinstance(k, list) else k
                 for k in key)


def _take_along(x: Tensor, key: tuple) -> Tensor:
    """``x[key]`` for a key holding one integer Tensor: a static ``getitem`` for what precedes it,
    ``take`` along its axis, a static ``getitem`` for what follows (numpy's placement of a single
    advanced index), so the index stays a value of the program."""
    at = next(i for i, k in enumerate(key) if isinstance(k, Tensor))
    used = sum(0 if k is None or k is Ellipsis else 1 for k in key)
    if Ellipsis in key[:at]:
        e = key.index(Ellipsis)
        key = key[:e] + (slice(None),) * (x.ndim - used) + key[e + 1:]
        at += x.ndim - used - 1
    before, idx, after = key[:at], key[at], key[at + 1:]
    if before != (slice(None),) * len(before):
        x = S.getitem(x, index=S.Index(before + (Ellipsis,)))
    axis = sum(0 if isinstance(k, (int, np.integer)) else 1 for k in before)
    out = S.take(x, idx, axis=axis)
    if after:
        out = S.getitem(out, index=S.Index((slice(None),) * (axis + idx.ndim) + after))
    return out


def _one_axis(dim: int, ndim: int, name: str) -> int:
    return normalize_axes(dim, ndim, name)[0]


def _flat_shape(shape: tuple) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def _resolve_shape(shape: tuple[int, ...], size: int, old: tuple[int, ...]) -> tuple[int, ...]:
    """Fill in a single -1 the way PyTorch's ``reshape`` does."""
    if shape.count(-1) > 1:
        raise ValueError(f"reshape: only one dimension can be -1, got {shape}")
    if -1 in shape:
        known = int(np.prod([n for n in shape if n != -1], dtype=np.int64))
        if known == 0 or size % known:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {old} into shape {shape}")
        shape = tuple(size // known if n == -1 else n for n in shape)
    return tuple(int(n) for n in shape)


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Make a tensor from a Python scalar, a (nested) list or a numpy array or scalar (copied).

    Python floats become float32 and ints int64, as in PyTorch; numpy arrays and numpy scalars
    keep their dtype (``tensor(np.float64(2))`` is float64).
    """
    return Tensor(_as_array(data, dtype, copy=True), requires_grad=requires_grad)


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` with numpy's rules for 1-D operands (promoted, then squeezed)."""
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least one dimension, got shapes "
                         f"{a.shape} and {b.shape}")
    squeeze_a, squeeze_b = a.ndim == 1, b.ndim == 1
    if squeeze_a:
        a = a.reshape(1, -1)
    if squeeze_b:
        b = b.reshape(-1, 1)
    out = L.matmul(a, b)
    if squeeze_a:
        out = out.squeeze(-2)
    if squeeze_b:
        out = out.squeeze(-1)
    return out


def as_tensors(items: Iterable[Any]) -> list[Tensor]:
    return [t if isinstance(t, Tensor) else Tensor(t) for t in items]
