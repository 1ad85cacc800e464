"""Compiler passes, one per file, each a pure ``Graph -> Graph``, and the pass manager."""

from .constant_fold import fold_constants
from .cse import eliminate_common_subexpressions
from .dce import eliminate_dead_code
from .fusion import fuse_elementwise
from .manager import DEFAULT_PASSES, PassManager, optimize
from .remat import rematerialize
from .simplify import simplify

__all__ = ["fold_constants", "eliminate_common_subexpressions", "eliminate_dead_code",
           "fuse_elementwise", "simplify", "rematerialize", "PassManager", "DEFAULT_PASSES",
           "optimize"]
