"""The ``"cuda"`` device: tensors that live in device memory, and a kernel for each primitive.

Imported by ``Tensor.to("cuda")``. A ``cuda`` Tensor holds a
:class:`~mlsys.kernels.cuda.memory.DeviceArray`; every primitive applied to it runs a kernel on
device arrays and leaves its result on the device. Data crosses the bus only when a program
asks for values (``.to("cpu")``, ``.numpy()``, ``.item()``, printing) or hands the device host
data (``.to("cuda")``, a CPU tensor with dimensions as an operand), and every crossing is
counted (:func:`~mlsys.kernels.cuda.memory.transfers`). CPU numbers and 0-d constants are
passed to kernels as arguments, not copied.

What runs, by the registry's own flags: every elementwise primitive a kernel generated from its
scalar template; every reduction with an accumulator a generated reduction over any axes; views
(``Primitive.view``) a view of the same device memory; matmul (batched), softmax, log_softmax,
the losses, indexing, im2col and the rest their kernels in :mod:`.nn`, :mod:`.indexing` and
:mod:`.matmul`. A kernel returns ``NotImplemented`` for what it does not take (matmul in float64,
``binary_cross_entropy``, whose reference checks its input on the host):
the engine then runs the numpy reference on downloaded copies and uploads the result, noted once
per primitive, and counted like every transfer.

Kernels marked :func:`writes_into` also take ``out=``, a device array to write the result into:
the compiled-graph executor (:mod:`mlsys.graph.executor_cuda`) passes the memory plan's buffers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...ops import linalg
from ...ops import nn as nn_ops
from ...ops import reduce as reduce_ops
from ...ops import shape as shape_ops
from ...ops._rules import result_dtype
from ...ops.registry import PRIMITIVES, Primitive, Spec
from ...ops.shape import _summed_axes
from ...tensor import Backend, register_backend
from . import indexing, loops, matmul, nn
from .memory import DeviceArray, download, empty, upload

DEVICE = "cuda"


def writes_into(impl: Any) -> Any:
    """Mark a kernel that accepts ``out=`` (a device array of the result's shape and dtype)."""
    impl.writes_into = True
    return impl


def _on_device(x: Any) -> DeviceArray:
    """A device array for an operand: a host 0-d value becomes a one-element fill (no transfer)."""
    if isinstance(x, DeviceArray):
        return x
    array = np.asarray(x)
    if array.ndim:
        return upload(array)
    return loops.fill(empty((), array.dtype), array[()])


def full(shape: tuple[int, ...], value: Any, dtype: Any) -> DeviceArray:
    """A new device array holding ``value`` everywhere (the value travels with the launch)."""
    return loops.fill(empty(shape, dtype), value)


def operand(x: Any) -> Any:
    """How a host array enters a cuda operation: 0-d stays a scalar argument, others upload."""
    return x if isinstance(x, DeviceArray) or np.ndim(x) == 0 else upload(x)


def _spec(prim: Primitive, arrays: tuple, params: dict[str, Any]) -> Spec:
    return prim.shape(*[Spec(tuple(np.shape(a)), a.dtype if isinstance(a, DeviceArray)
                             else np.asarray(a).dtype) for a in arrays], **params)


def _elementwise(prim: Primitive) -> Any:
    @writes_into
    def impl(*arrays: Any, out: DeviceArray | None = None, **params: Any) -> Any:
        if any(isinstance(a, np.ndarray) and a.dtype == np.float16 for a in arrays):
            return NotImplemented
        if out is not None:
            return loops.map_into(out, prim, arrays, params)
        return loops.elementwise(prim, arrays, params, _spec(prim, arrays, params).dtype)

    return impl


def _reduction(prim: Primitive) -> Any:
    @writes_into
    def impl(x: Any, *, axis: tuple[int, ...] | None, keepdims: bool,
             out: DeviceArray | None = None) -> Any:
        x = _on_device(x)
        if out is not None:
            return loops.reduce_into(out, prim, x, axis)
        spec = _spec(prim, (x,), {"axis": axis, "keepdims": keepdims})
        return loops.reduction(prim, x, axis, keepdims, spec.dtype)

    return impl


def _view(prim: Primitive) -> Any:
    """A view primitive's numpy forward, run on the device array's own view methods (an index
    with arrays in it gathers instead)."""
    def impl(x: Any, **params: Any) -> Any:
        if prim is shape_ops.getitem:
            return indexing.getitem(_on_device(x), params["index"].key)
        return prim.forward(_on_device(x), **params)

    return impl


@linalg.matmul.implement(DEVICE)
@writes_into
def _matmul(a: Any, b: Any, *, out: DeviceArray | None = None) -> Any:
    if a.dtype != np.float32 or b.dtype != np.float32:
        return NotImplemented
    a, b = _on_device(a), _on_device(b)
    if out is None:
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        out = empty(batch + (a.shape[-2], b.shape[-1]), np.float32)
    return matmul.matmul_into(out, a, b)


@shape_ops.sum_to.implement(DEVICE)
@writes_into
def _sum_to(x: Any, *, shape: tuple[int, ...], out: DeviceArray | None = None) -> Any:
    x = _on_device(x)
    axes = _summed_axes(x.shape, tuple(shape))
    if not axes:
        return x if out is None else loops.copy_into(out, x)
    out = empty(tuple(shape), x.dtype) if out is None else out
    return loops.reduce_into(out, reduce_ops.sum, x, axes)


def _rows(log: bool) -> Any:
    @writes_into
    def impl(x: Any, *, axis: int, out: DeviceArray | None = None) -> Any:
        x = _on_device(x)
        if x.dtype not in (np.float32, np.float64):
            return NotImplemented
        return nn.softmax(x, axis, log, out=out)

    return impl


nn_ops.softmax.implement(DEVICE)(_rows(False))
nn_ops.log_softmax.implement(DEVICE)(_rows(True))


@nn_ops.nll_loss.implement(DEVICE)
def _nll_loss(logp: Any, target: Any, *, reduction: str) -> Any:
    return nn.nll_loss(_on_device(logp), _on_device(target), reduction)


@nn_ops.nll_loss_grad.implement(DEVICE)
def _nll_loss_grad(g: Any, target: Any, *, classes: int, reduction: str) -> Any:
    return nn.nll_loss_grad(_on_device(g), _on_device(target), classes, reduction)


@nn_ops.one_hot.implement(DEVICE)
def _one_hot(idx: Any, *, num_classes: int, dtype: Any) -> Any:
    return nn.one_hot(_on_device(idx), num_classes, np.dtype(dtype))


@nn_ops.unfold2d.implement(DEVICE)
def _unfold2d(x: Any, **params: Any) -> Any:
    return nn.unfold2d(_on_device(x), **params)


@nn_ops.fold2d.implement(DEVICE)
def _fold2d(cols: Any, **params: Any) -> Any:
    return nn.fold2d(_on_device(cols), **params)


@reduce_ops.argmax.implement(DEVICE)
def _argmax(x: Any, *, axis: Any, keepdims: bool) -> Any:
    return nn.arg_extremum(_on_device(x), axis, keepdims, smallest=False)


@reduce_ops.argmin.implement(DEVICE)
def _argmin(x: Any, *, axis: Any, keepdims: bool) -> Any:
    return nn.arg_extremum(_on_device(x), axis, keepdims, smallest=True)


@reduce_ops.cumsum.implement(DEVICE)
def _cumsum(x: Any, *, axis: int) -> Any:
    x = _on_device(x)
    return nn.cumsum(x, axis, _spec(reduce_ops.cumsum, (x,), {"axis": axis}).dtype)


@reduce_ops.argsort.implement(DEVICE)
def _argsort(x: Any, *, axis: int, descending: bool) -> Any:
    return nn.argsort(_on_device(x), axis, descending)


@shape_ops.take.implement(DEVICE)
def _take(x: Any, idx: Any, *, axis: int) -> Any:
    return indexing.take(_on_device(x), _on_device(idx), axis)


@shape_ops.put_add.implement(DEVICE)
def _put_add(g: Any, idx: Any, *, axis: int, size: int) -> Any:
    return indexing.put_add(_on_device(g), _on_device(idx), axis, size)


@shape_ops.gather.implement(DEVICE)
def _gather(x: Any, idx: Any, *, axis: int) -> Any:
    return indexing.gather(_on_device(x), _on_device(idx), axis)


@shape_ops.put_along_add.implement(DEVICE)
def _put_along_add(g: Any, idx: Any, *, axis: int, shape: tuple[int, ...]) -> Any:
    return indexing.put_along_add(_on_device(g), _on_device(idx), axis, tuple(shape))


@shape_ops.concatenate.implement(DEVICE)
def _concatenate(*xs: Any, axis: int) -> Any:
    xs = [_on_device(x) for x in xs]
    return indexing.concatenate(xs, axis, result_dtype(*[Spec(x.shape, x.dtype) for x in xs]))


@shape_ops.pad.implement(DEVICE)
def _pad(x: Any, *, widths: tuple, value: float) -> Any:
    return indexing.pad(_on_device(x), widths, value)


@shape_ops.setitem.implement(DEVICE)
def _setitem(x: Any, v: Any, *, index: shape_ops.Index) -> Any:
    scalar = np.ndim(v) == 0 and indexing.basic(index.key)  # travels with the launch
    return indexing.setitem(_on_device(x), loops.as_operand(v) if scalar else _on_device(v),
                            index.key)


@shape_ops.scatter_add.implement(DEVICE)
def _scatter_add(g: Any, *, index: shape_ops.Index, shape: tuple[int, ...]) -> Any:
    return indexing.scatter_add(_on_device(g), index.key, tuple(shape))


def _graph_executable(graph: Any) -> Any:
    from ...graph.executor_cuda import CudaExecutable

    return CudaExecutable(graph)


for _prim in PRIMITIVES.values():
    if _prim.elementwise:
        _prim.impls[DEVICE] = _elementwise(_prim)
    elif _prim.reduction is not None:
        _prim.impls[DEVICE] = _reduction(_prim)
    elif _prim.view:
        _prim.impls[DEVICE] = _view(_prim)

register_backend(DEVICE, Backend(
    array_type=DeviceArray, upload=upload, download=download, full=full, operand=operand,
    copy_into=loops.copy_into, executable=_graph_executable))
