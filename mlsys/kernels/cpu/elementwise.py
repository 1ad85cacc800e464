"""Elementwise primitives as Numba ufuncs (``@vectorize``), generated from the registry.

Each elementwise primitive's scalar template becomes a ufunc (a compiled loop with numpy's
broadcasting) for the operand dtypes it is called with, on first use, cached on disk. The
operands are float32 or float64 (one of them for all), bool where a primitive takes a condition;
other dtypes are left to the numpy reference. ``exp``, ``tanh`` and ``erf`` are
:mod:`mlsys.kernels.cpu.vmath`'s (vectorizable polynomials on float32). Fused elementwise kernels
(several ops in one loop) are generated from traced graphs by :mod:`mlsys.graph.codegen`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ...ops.registry import Primitive, Spec, get
from .generated import SCALAR_IMPORTS, load

__all__ = ["ufunc", "supported", "HEADER"]

# Binds every name a template may call (``SCALAR_FUNCTIONS``: vmath's vectorizable versions where
# it has them) and numpy; ``F`` is set per kernel.
HEADER = "\n".join(["import numba", "import numpy as np", *SCALAR_IMPORTS, "", ""])


def supported(dtypes: Sequence[np.dtype]) -> np.dtype | None:
    """The kernels' float type for operands of these dtypes, or None when there is none."""
    floats = {d for d in dtypes if d != np.bool_}
    if len(floats) != 1 or not floats <= {np.dtype(np.float32), np.dtype(np.float64)}:
        return None
    return floats.pop()


def ufunc(prim: Primitive | str, dtypes: Any, **params: Any) -> Callable[..., np.ndarray]:
    """The ufunc computing elementwise primitive ``prim`` (or its name) on operands of ``dtypes``
    (one dtype for every operand, or a sequence), compiled once."""
    prim = get(prim) if isinstance(prim, str) else prim
    if not prim.elementwise:
        raise ValueError(f"ufunc: {prim.name} is not an elementwise primitive")
    if not isinstance(dtypes, (tuple, list)):
        dtypes = [dtypes] * prim.arity
    dtypes = tuple(np.dtype(d) for d in dtypes)
    if supported(dtypes) is None:
        raise TypeError(f"ufunc: the kernels take float32 or float64 operands (bool for a "
                        f"condition), one float type for all; got {', '.join(map(str, dtypes))}")
    return _compiled(prim, dtypes, tuple(sorted(params.items())))


@functools.cache
def _compiled(prim: Primitive, dtypes: tuple[np.dtype, ...], params: tuple) -> Callable[..., np.ndarray]:
    out = prim.shape(*[Spec((), d) for d in dtypes], **dict(params)).dtype
    names = [d.name.replace("bool", "boolean") for d in (out, *dtypes)]
    signature = f"{names[0]}({', '.join(names[1:])})"
    source = (HEADER + f"F = np.{supported(dtypes).name}\n\n\n"
              f"@numba.vectorize([{signature!r}], cache=True)\n"
              + prim.scalar_function(dict(params), name="kernel"))
    return load(source).kernel
