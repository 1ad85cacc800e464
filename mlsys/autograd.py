"""Gradient mode (``no_grad``, ``enable_grad``, ``set_grad_enabled``) and ``grad``, as in PyTorch."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .tensor import Tensor

F = TypeVar("F", bound=Callable[..., Any])

_state = {"enabled": True}


def is_grad_enabled() -> bool:
    """Whether new operations are being recorded for backward."""
    return _state["enabled"]


class _GradMode:
    """A context manager and decorator that sets the recording mode and restores it after."""

    mode = True

    def __enter__(self) -> None:
        self._prev = _state["enabled"]
        _state["enabled"] = self.mode

    def __exit__(self, *exc: object) -> None:
        _state["enabled"] = self._prev

    def __call__(self, fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _mode(self.mode):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class no_grad(_GradMode):
    """Do not record operations: for evaluation and optimizer updates."""

    mode = False


class enable_grad(_GradMode):
    """Record operations even inside ``no_grad``."""

    mode = True


class set_grad_enabled(_GradMode):
    """Set the mode now (as a call) or for a block (as a context manager)."""

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)
        self._prev = _state["enabled"]
        _state["enabled"] = self.mode

    def __enter__(self) -> None:
        pass


def _mode(mode: bool) -> _GradMode:
    block = _GradMode()
    block.mode = mode
    return block


def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor],
         grad_outputs: Any = None, retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool = False) -> tuple[Tensor | None, ...]:
    """The gradients of ``outputs`` with respect to ``inputs``, returned rather than accumulated
    into ``.grad`` (``torch.autograd.grad``). ``grad_outputs`` gives one cotangent per output
    (None: ones, for one-element outputs); ``create_graph=True`` records the computation, so the
    result can be differentiated again. An input the outputs do not depend on is an error unless
    ``allow_unused`` (then its gradient is None).
    """
    from .backward import run_backward
    from .tensor import Tensor

    single = isinstance(outputs, Tensor)
    outs = [outputs] if single else list(outputs)
    ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None:
        seeds = [None] * len(outs)
    else:
        seeds = [grad_outputs] if single else list(grad_outputs)
    if len(seeds) != len(outs):
        raise ValueError(f"grad: {len(outs)} outputs but {len(seeds)} grad_outputs")
    for i, x in enumerate(ins):
        if not isinstance(x, Tensor) or not x.requires_grad:
            raise RuntimeError(f"grad: input {i} does not require grad")
    retain = create_graph if retain_graph is None else retain_graph
    grads = run_backward(outs, seeds, retain_graph=retain, create_graph=create_graph, inputs=ins)
    for i, g in enumerate(grads):
        if g is None and not allow_unused:
            raise RuntimeError(f"grad: input {i} was not used to compute the outputs; pass "
                               f"allow_unused=True to get None for it")
    return tuple(grads)
