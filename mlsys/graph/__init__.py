"""The graph compiler: IR, tracer, passes, Numba code generation, memory planning, executor.

``mlsys.trace(fn, *args)`` records a Tensor program (forward, backward and update) as a
:class:`Graph`; ``mlsys.compile(fn)`` traces on the first call per input signature and runs the
optimized graph afterwards, guarded: what the trace depends on is a graph input or a guard, and
what a graph cannot hold falls back to eager with a warning (see :mod:`mlsys.graph.tracer`).
"""

from . import codegen, memory, passes
from .compiler import CompiledFunction, GraphBreakWarning, compile
from .draw import draw, to_dot
from .executor import Executable, run_graph
from .ir import FUSED, Fused, Graph, GraphError, Node, Var
from .memory import MemoryPlan, plan_memory
from .passes import PassManager, optimize, rematerialize
from .step import TrainStep, run_epochs, sgd_step
from .tracer import GraphBreak, Traced, assign, trace

__all__ = ["Graph", "Node", "Var", "Fused", "FUSED", "GraphError", "trace", "Traced", "assign",
           "GraphBreak", "GraphBreakWarning", "compile", "CompiledFunction", "Executable",
           "run_graph", "PassManager", "optimize", "rematerialize", "plan_memory", "MemoryPlan",
           "TrainStep", "sgd_step", "run_epochs", "draw", "to_dot", "codegen", "memory", "passes"]
