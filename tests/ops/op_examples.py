"""One example application (inputs, params) of every primitive, shared by the registry's tests
and the backend matrix (a uniquely named module, not a conftest)."""

from __future__ import annotations

import numpy as np

from mlsys.ops.shape import Index

f32 = np.float32
R = np.random.default_rng(0)


def a(*shape, dtype=f32):
    return R.standard_normal(shape).astype(dtype)


def ints(*shape, high=3):
    return R.integers(0, high, size=shape)


EXAMPLES = {
    **{n: ((a(2, 3), a(3)), {}) for n in ("add", "sub", "mul", "div", "maximum", "minimum",
                                          "greater", "greater_equal", "less", "less_equal",
                                          "equal", "not_equal")},
    "pow": ((np.abs(a(2, 3)) + 0.1, a(3)), {}),
    **{n: ((a(2, 3),), {}) for n in ("neg", "exp", "tanh", "sigmoid", "relu", "abs", "sign", "copy")},
    **{n: ((np.abs(a(2, 3)) + 0.1,), {}) for n in ("log", "sqrt")},
    "gelu": ((a(4),), {"approximate": "none"}),
    "gelu_grad": ((a(4),), {"approximate": "tanh"}),
    "relu_grad": ((a(2, 3), a(3)), {}),
    "where": ((a(2, 3) > 0, a(2, 3), a(1, 3)), {}),
    "cast": ((a(2),), {"dtype": np.dtype(np.float64)}),
    **{n: ((a(2, 3, 4),), {"axis": (0, 2), "keepdims": False})
       for n in ("sum", "mean", "max", "min", "prod")},
    **{n: ((a(2, 3),), {"axis": (1,), "keepdims": True}) for n in ("argmax", "argmin")},
    "cumsum": ((ints(2, 3),), {"axis": 1}),
    "argsort": ((a(2, 3),), {"axis": 0, "descending": True}),
    "gather": ((a(3, 4), ints(2, 4)), {"axis": 0}),
    "put_along_add": ((a(2, 4), ints(2, 4)), {"axis": 0, "shape": (3, 4)}),
    "setitem": ((a(4, 5), a(2, 1)), {"index": Index((slice(1, 3), np.array([0, 4])))}),
    "pad": ((a(2, 3),), {"widths": ((1, 0), (2, 2)), "value": 0.5}),
    "binary_cross_entropy": ((np.full((2, 3), 0.3, f32), a(3)), {}),
    "matmul": ((a(5, 2, 3), a(3, 4)), {}),
    "reshape": ((a(2, 6),), {"shape": (3, 4)}),
    "permute": ((a(2, 3, 4),), {"axes": (2, 0, 1)}),
    "broadcast_to": ((a(3, 1),), {"shape": (2, 3, 4)}),
    "sum_to": ((a(2, 3, 4),), {"shape": (3, 1)}),
    "getitem": ((a(4, 5),), {"index": Index((slice(1, 3), np.array([0, 4])))}),
    "scatter_add": ((a(2, 2),), {"index": Index((slice(1, 3), np.array([0, 4]))), "shape": (4, 5)}),
    "take": ((a(4, 3), ints(2, 5, high=4)), {"axis": 0}),
    "put_add": ((a(2, 5, 3), ints(2, 5, high=4)), {"axis": 0, "size": 4}),
    "concatenate": ((a(2, 3), a(4, 3)), {"axis": 0}),
    "softmax": ((a(2, 3),), {"axis": 1}),
    "log_softmax": ((a(2, 3),), {"axis": 0}),
    "one_hot": ((ints(4),), {"num_classes": 3, "dtype": np.dtype(f32)}),
    "nll_loss": ((a(4, 3, 2), ints(4, 2)), {"reduction": "none"}),
    "nll_loss_grad": ((a(), ints(4)), {"classes": 3, "reduction": "mean"}),
    "unfold2d": ((a(2, 3, 5, 5),), {"kernel_size": (3, 3), "stride": (2, 1), "padding": (1, 0)}),
    "fold2d": ((a(2, 27, 9),), {"input_size": (5, 5), "kernel_size": (3, 3), "stride": (2, 1),
                                "padding": (1, 0)}),
    "dropout_mask": ((), {"shape": (3, 4), "p": 0.25, "dtype": np.dtype(f32)}),
    "random": ((), {"shape": (3, 4), "dtype": np.dtype(f32), "distribution": "normal"}),
}


