"""``Module`` and ``Parameter``: containers that find their own parameters, as in PyTorch."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..tensor import Tensor, _observers, assign, filled, notify


def _plain(value: Any) -> bool:
    if type(value) is tuple:
        return all(map(_plain, value))
    return isinstance(value, (bool, int, float, str, type(None)))


class Parameter(Tensor):
    """A tensor that is a module's learnable state (requires grad by default)."""

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of layers and models: attributes that are Parameters or Modules are registered."""

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_version", 0)  # counts attribute changes (see _trace_guard)

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before "
                                 f"assigning attribute {name!r}")
        buffer = name in self._buffers and (value is None or isinstance(value, Tensor))
        for table in (self._parameters, self._modules, self._buffers):
            table.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif buffer:  # a new value for a registered buffer stays a buffer, as in PyTorch
            self._buffers[name] = value
        object.__setattr__(self, name, value)
        self._touch()

    def _touch(self) -> None:
        object.__setattr__(self, "_version", self._version + 1)

    def register_buffer(self, name: str, value: Tensor) -> None:
        """State saved in ``state_dict`` that is not learned (e.g. running statistics)."""
        setattr(self, name, value)
        self._buffers[name] = value
        self._touch()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _observers:  # a tracer is listening: the description is built only then
            notify("guard", self, self._trace_guard, f"an attribute of {type(self).__name__} (the "
                   f"training flag, a parameter, buffer or submodule, a setting)")
        return self.forward(*args, **kwargs)

    def _trace_guard(self) -> tuple:
        """What a traced call depends on besides tensor values: the plain attributes (the
        training flag, a dropout's ``p``) and which parameters, buffers and submodules it holds.
        Recomputed only after an attribute changed (``_version``)."""
        cached = self.__dict__.get("_guard")
        if cached is not None and cached[0] == (id(self), self._version):
            return cached[1]
        plain = tuple((k, v) for k, v in self.__dict__.items()
                      if k not in ("_version", "_guard") and _plain(v))
        held = tuple(tuple((k, id(v)) for k, v in table.items())
                     for table in (self._parameters, self._buffers, self._modules))
        object.__setattr__(self, "_guard", ((id(self), self._version), (plain, held)))
        return plain, held

    # -- traversal --------------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def children(self) -> Iterator[Module]:
        yield from self._modules.values()

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        seen: set[int] = set()
        for mod_name, module in self.named_modules(prefix):
            for name, p in module._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        for mod_name, module in self.named_modules(prefix):
            for name, b in module._buffers.items():
                if b is not None:
                    yield (f"{mod_name}.{name}" if mod_name else name), b

    def buffers(self) -> Iterator[Tensor]:
        for _, b in self.named_buffers():
            yield b

    def apply(self, fn: Callable[[Module], None]) -> Module:
        for m in self.modules():
            fn(m)
        return self

    # -- modes and gradients ------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", mode)
            m._touch()
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        zero_grads(self.parameters(), set_to_none)

    # -- state -----------------------------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Every parameter and buffer by dotted name, as numpy copies."""
        state: OrderedDict[str, np.ndarray] = OrderedDict()
        for mod_name, module in self.named_modules():
            for name, t in list(module._parameters.items()) + list(module._buffers.items()):
                state[f"{mod_name}.{name}" if mod_name else name] = np.array(t.data, copy=True)
        return state

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Copy values into parameters and buffers, checking names and shapes."""
        own: dict[str, Tensor] = {}
        for mod_name, module in self.named_modules():
            for name, t in list(module._parameters.items()) + list(module._buffers.items()):
                own[f"{mod_name}.{name}" if mod_name else name] = t
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for name, value in state.items():
            if name not in own:
                continue
            array = np.asarray(value.data if isinstance(value, Tensor) else value)
            if array.shape != own[name].shape:
                raise ValueError(f"load_state_dict: {name} has shape {own[name].shape} in the "
                                 f"model but {array.shape} in the state dict")
            own[name].data = array.astype(own[name].dtype, copy=True)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_repr}")
        return "\n".join(lines) + ("\n)" if self._modules else ")")


def zero_grads(params: Any, set_to_none: bool = True) -> None:
    """Clear each tensor's ``.grad``: drop it (``set_to_none``) or store zeros in it."""
    for p in params:
        if p.grad is None:
            continue
        if _observers:
            notify("reset_grad", p)
        if set_to_none:
            p.grad = None
        else:
            assign(p.grad, filled(p.grad.shape, 0, p.grad.dtype, p.grad.device), donate=True)
