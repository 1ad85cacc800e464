"""Generated kernel source, compiled by Numba and cached twice.

Code generators (fused kernels from :mod:`mlsys.graph.codegen`, ufuncs and reductions generated
from the primitives' templates) write plain Python modules. :func:`load` imports one: in-process
it is cached by its text; on disk it is written under :func:`cache_dir` and compiled with
``cache=True``, so a second process reuses the machine code instead of paying Numba's compile
time again.

The file is named by a hash of its text, and Numba's disk cache is keyed by the file (and by
Numba's version), not by what the file calls: a kernel that inlines the functions of
:mod:`mlsys.kernels.cpu.vmath` must change its text when they change. :data:`SCALAR_IMPORTS`,
the lines that bind the templates' functions, therefore carry a fingerprint of vmath's source.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType, SimpleNamespace

from ...ops.registry import SCALAR_FUNCTIONS
from . import vmath

__all__ = ["cache_dir", "load", "SCALAR_IMPORTS"]


def _scalar_imports() -> tuple[str, ...]:
    """Import lines binding every name a scalar template may call: vmath's vectorizable versions
    where it has one, else the ``math`` module's."""
    fast = [f for f in SCALAR_FUNCTIONS if f in vmath.__all__]
    rest = [f for f in SCALAR_FUNCTIONS if f not in fast]
    fingerprint = hashlib.sha1(Path(vmath.__file__).read_bytes()).hexdigest()[:16]
    return (f"from math import {', '.join(sorted(rest))}",
            f"from mlsys.kernels.cpu.vmath import {', '.join(sorted(fast))}  # vmath {fingerprint}")


SCALAR_IMPORTS = _scalar_imports()

_MODULES: dict[str, ModuleType | SimpleNamespace] = {}


def cache_dir() -> Path | None:
    """Where generated kernel modules are written (``$MLSYS_KERNEL_CACHE`` or the user cache);
    None when it cannot be created, and then kernels are cached in-process only."""
    root = os.environ.get("MLSYS_KERNEL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mlsys", "kernels")
    try:
        Path(root).mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return Path(root) if os.access(root, os.W_OK) else None


def load(source: str) -> ModuleType | SimpleNamespace:
    """The module defined by ``source`` (compiled once per process, cached on disk)."""
    module = _MODULES.get(source)
    if module is None:
        module = _MODULES.setdefault(source, _import(source))
    return module


def _import(source: str) -> ModuleType | SimpleNamespace:
    digest = hashlib.sha1(source.encode()).hexdigest()[:20]
    where = cache_dir()
    if where is None:
        namespace: dict = {}
        exec(compile(source.replace("cache=True", "cache=False"), f"<kernel {digest}>", "exec"),
             namespace)
        return SimpleNamespace(**namespace)
    path = where / f"k_{digest}.py"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=where, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(source)
        os.replace(tmp, path)
    name = f"mlsys_kernel_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # Numba's disk cache re-imports the module by name
    spec.loader.exec_module(module)
    return module
