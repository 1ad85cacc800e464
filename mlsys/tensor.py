"""The eager ``Tensor`` and reverse-mode automatic differentiation over a tape.

Every operation on Tensors is a primitive from :mod:`mlsys.ops`. When gradients are needed, the
result remembers its :class:`Node` (the primitive, its inputs and its parameters). ``backward``
walks those nodes in reverse topological order and calls each primitive's VJP rule; the rules are
themselves written with primitives, so a backward pass can be traced into a graph or differentiated
again (``create_graph=True``).
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from . import autograd
from .ops import elementwise as E
from .ops import linalg as L
from .ops import nn as NN
from .ops import reduce as R
from .ops import shape as S
from .ops._rules import normalize_axes
from .ops.registry import Primitive, Spec, set_dispatcher

__all__ = ["Tensor", "tensor", "apply", "add_observer", "remove_observer", "notify", "assign"]

DEFAULT_DTYPE = np.dtype(np.float32)


class Node:
    """How a tensor was made: the primitive, its input tensors and its static parameters."""

    __slots__ = ("prim", "inputs", "params")

    def __init__(self, prim: Primitive, inputs: tuple[Tensor, ...], params: dict[str, Any]):
        self.prim, self.inputs, self.params = prim, inputs, params


class RemovableHandle:
    """Returned by hook registration; ``remove()`` unregisters the hook."""

    def __init__(self, hooks: list, hook: Callable) -> None:
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


# Observers see every primitive application (the graph tracer is one).
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
    if target.shape != value.shape:
        raise ValueError(f"assign: value of shape {value.shape} does not fit target of shape "
                         f"{target.shape}")
    notify("assigned", target, value)
    data = value.data
    owned = donate and data.base is None and data.flags.writeable and data.dtype == target.dtype
    target.data = data if owned else np.array(data, dtype=target.dtype, copy=True)


_spec_cache: dict[tuple, Spec] = {}


def infer_spec(prim: Primitive, inputs: tuple[Tensor, ...], params: dict[str, Any]) -> Spec:
    """The output spec from the primitive's shape rule, memoized per input signature.

    Training loops repeat the same signatures every step, so the rule (which validates shapes and
    dtypes and raises the clear errors) runs once per signature rather than once per call.
    """
    key = (prim, *[(t.data.shape, t.data.dtype) for t in inputs], *params.items())
    try:
        return _spec_cache[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable parameter: validate without memoizing
        return prim.shape(*[Spec(t.data.shape, t.data.dtype) for t in inputs], **params)
    spec = prim.shape(*[Spec(t.data.shape, t.data.dtype) for t in inputs], **params)
    if len(_spec_cache) > 50_000:
        _spec_cache.clear()
    _spec_cache[key] = spec
    return spec


def apply(prim: Primitive, *inputs: Tensor, **params: Any) -> Tensor:
    """Apply a primitive to Tensors, checking it with its shape rule and recording it for backward."""
    device = "cpu"
    for t in inputs:
        if not isinstance(t, Tensor):
            raise TypeError(f"{prim.name}: expected Tensor inputs, got {type(t).__name__}")
        if t.device != "cpu":
            device = _join_devices(prim, device, t.device)
    spec = infer_spec(prim, inputs, params)
    if device == "cpu":
        data = prim.forward(*[t.data for t in inputs], **params)
    else:
        data = _forward_on(device, prim, [t.data for t in inputs], params)
    if data.dtype != spec.dtype:
        data = data.astype(spec.dtype)
    out = Tensor.__new__(Tensor)
    out.data, out.grad, out._node, out._hooks, out._retains_grad = data, None, None, None, False
    out.device = device
    out.requires_grad = False
    if prim.vjp is not None and autograd._state["enabled"]:
        for t in inputs:
            if t.requires_grad:
                out.requires_grad = True
                out._node = Node(prim, inputs, params)
                break
    for observer in _observers:
        observer.record(prim, inputs, params, out)
    return out


set_dispatcher(apply)

# Devices a Tensor can live on, and the module whose import registers each one's kernels into
# ``Primitive.impls``. The data stays a host numpy array on every device; the device picks the
# implementation that computes it (see ``mlsys.kernels``).
DEVICES = {"cpu": None, "numba": "mlsys.kernels.cpu.register", "cuda": "mlsys.kernels.cuda.register"}
_fallback_noted: set[tuple[str, str]] = set()


def _join_devices(prim: Primitive, a: str, b: str) -> str:
    """The device of an op whose inputs live on ``a`` and ``b`` (cpu operands join any device)."""
    if a != "cpu" and a != b:
        raise RuntimeError(f"{prim.name}: inputs live on different devices, {a!r} and {b!r}; "
                           f"move them to one device with .to(device)")
    return b


def _forward_on(device: str, prim: Primitive, arrays: list, params: dict[str, Any]) -> Any:
    """Run ``prim`` with the ``device`` kernel, or the numpy reference (noted once) without one.

    A kernel returns ``NotImplemented`` for inputs it does not handle (a dtype, a layout).
    """
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
    return prim.forward(*arrays, **params)


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


class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    ``data`` is the underlying numpy array. Leaves created with ``requires_grad=True`` receive
    gradients in ``.grad`` (accumulated across ``backward`` calls until ``zero_grad``).
    """

    __slots__ = ("data", "requires_grad", "grad", "_node", "_hooks", "_retains_grad", "device",
                 "__weakref__")
    __array_priority__ = 1000  # numpy defers to Tensor's reflected operators

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None) -> None:
        source = data if isinstance(data, Tensor) and dtype is None else None
        if isinstance(data, Tensor):
            data = data.data
        array = np.asarray(data, dtype=dtype)
        if dtype is None and not isinstance(data, np.ndarray):
            array = array.astype(_default_dtype_for(array), copy=False)
        if array.dtype == object:
            raise TypeError(f"tensor: cannot make a tensor from {type(data).__name__} "
                            f"holding non-numeric values")
        self.data = array
        self.grad: Tensor | None = None
        self._node: Node | None = None
        self._hooks: list | None = None
        self._retains_grad = False
        self.device = "cpu"
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)
        if _observers:
            notify("created", self, source)

    # -- construction helpers -------------------------------------------------------------
    def new_constant(self, data: Any) -> Tensor:
        """A tensor that takes no part in autodiff (used by VJP rules for constants)."""
        return Tensor(np.asarray(data))

    def _lift(self, other: Any) -> Tensor:
        """Turn a Python scalar or array operand into a Tensor; scalars take this tensor's dtype."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, np.ndarray):
            return Tensor(other)
        array = np.asarray(other)
        if self.data.dtype.kind == "f" and array.dtype.kind in "biuf":
            array = array.astype(self.data.dtype)
        elif array.dtype.kind == "f":
            array = array.astype(DEFAULT_DTYPE)
        return Tensor(array)

    # -- basic properties ----------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def grad_fn(self) -> str | None:
        """Name of the primitive that produced this tensor (None for leaves)."""
        return None if self._node is None else self._node.prim.name

    def numel(self) -> int:
        return int(self.data.size)

    def size(self, dim: int | None = None) -> tuple[int, ...] | int:
        return self.data.shape if dim is None else self.data.shape[dim]

    def numpy(self) -> np.ndarray:
        """The data as a numpy array (refuses tensors that require grad, as PyTorch does)."""
        if self.requires_grad:
            raise RuntimeError("numpy(): this tensor requires grad; call .detach().numpy()")
        notify("concretize", self)
        return self.data

    def item(self) -> float | int | bool:
        if self.data.size != 1:
            raise ValueError(f"item(): only one-element tensors convert to a Python scalar, "
                             f"got shape {self.shape}")
        notify("concretize", self)
        return self.data.item()

    def tolist(self) -> Any:
        notify("concretize", self)
        return self.data.tolist()

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", precision=4, prefix="tensor(")
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
        if requires_grad and not np.issubdtype(self.data.dtype, np.floating):
            raise TypeError(f"only floating-point tensors can require gradients, got dtype "
                            f"{self.data.dtype}")
        if not self.is_leaf and not requires_grad:
            raise RuntimeError("requires_grad_(False) is only allowed on leaf tensors; use detach()")
        self.requires_grad = bool(requires_grad)
        return self

    def detach(self) -> Tensor:
        """The same data on the same device, cut from the graph."""
        out = Tensor(self.data)
        out.device = self.device
        notify("alias", out, self)
        return out

    def clone(self) -> Tensor:
        if self.requires_grad:
            return self * 1
        out = Tensor(self.data.copy())
        notify("alias", out, self)
        return out

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor after backward."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad(): this tensor does not require grad")
        self._retains_grad = True

    def zero_(self) -> Tensor:
        self.data[...] = 0
        if _observers:  # a traced program's later reads of self must see the zeros
            notify("assigned", self, Tensor(np.zeros_like(self.data)))
        return self

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
        return E.maximum(self, -self)

    def to(self, dtype: Any) -> Tensor:
        """Convert to ``dtype`` (a numpy dtype or name), or move to a device ("cpu", "numba", "cuda").

        Moving gives a leaf on the new device sharing this tensor's data (a leaf that required
        grad still does); move parameters in place with ``mlsys.kernels.to_device``.
        """
        if isinstance(dtype, str) and dtype in DEVICES:
            if dtype == self.device:
                return self
            if not self.is_leaf:
                raise RuntimeError(f"to({dtype!r}): move leaf tensors (inputs, parameters); "
                                   f"this one was made by {self.grad_fn}")
            _check_device(dtype)
            out = self.detach()
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

    def max(self, dim: int | Sequence[int] | None = None, keepdim: bool = False) -> Tensor:
        return R.max(self, axis=normalize_axes(dim, self.ndim, "max"), keepdims=keepdim)

    def argmax(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        return R.argmax(self, axis=normalize_axes(dim, self.ndim, "argmax"), keepdims=keepdim)

    def var(self, dim: int | Sequence[int] | None = None, keepdim: bool = False,
            correction: int = 1) -> Tensor:
        axes = normalize_axes(dim, self.ndim, "var")
        count = self.numel() if axes is None else int(np.prod([self.shape[a] for a in axes]))
        centered = self - self.mean(dim, keepdim=True)
        return (centered * centered).sum(dim, keepdim) / max(count - correction, 1)

    def softmax(self, dim: int = -1) -> Tensor:
        return NN.softmax(self, axis=_one_axis(dim, self.ndim, "softmax"))

    def log_softmax(self, dim: int = -1) -> Tensor:
        return NN.log_softmax(self, axis=_one_axis(dim, self.ndim, "log_softmax"))

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

    @property
    def T(self) -> Tensor:
        return S.permute(self, axes=tuple(reversed(range(self.ndim))))

    def expand(self, *shape: int | Sequence[int]) -> Tensor:
        target = tuple(self.shape[i - len(_flat_shape(shape)) + self.ndim] if n == -1 else n
                       for i, n in enumerate(_flat_shape(shape)))
        return self if target == self.shape else S.broadcast_to(self, shape=target)

    broadcast_to = expand

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
        key = tuple(k.data if isinstance(k, Tensor) else
                    np.asarray(k) if isinstance(k, list) else k for k in key)
        return S.getitem(self, index=S.Index(key))


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
    """Make a tensor from a Python scalar, a (nested) list or a numpy array (copied).

    Python floats become float32 and ints int64, as in PyTorch; numpy arrays keep their dtype.
    """
    if isinstance(data, Tensor):
        data = data.data
    array = np.array(data, dtype=dtype, copy=True)
    if dtype is None and not isinstance(data, np.ndarray):
        array = array.astype(_default_dtype_for(array), copy=False)
    return Tensor(array, requires_grad=requires_grad)


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
