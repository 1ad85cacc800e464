"""The primitive registry and every primitive of the engine (one module per op family)."""

from . import elementwise, linalg, nn, reduce, shape
from .registry import PRIMITIVES, Cost, Primitive, Spec, get, register

__all__ = ["PRIMITIVES", "Cost", "Primitive", "Spec", "get", "register",
           "elementwise", "linalg", "nn", "reduce", "shape"]
