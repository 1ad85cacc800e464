"""Optimizers over parameter lists: SGD (momentum, Nesterov, weight decay), Adam and AdamW.

There is one update path: ``step()`` applies the rules of :mod:`mlsys.optim.rules` and stores
parameters and state with :func:`mlsys.tensor.assign`. Traced (``mlsys.compile`` of a function
that calls ``step()``), the rules run on Tensors, so the same operations become part of the graph
and every compiled call repeats them. Run eagerly on the CPU, they run on the numpy arrays behind
the Tensors (:class:`_Values`: the same primitives' forwards, so bitwise the same results, without
a Tensor, a shape rule and a tape check per intermediate value), stored the same way. State
lives in Tensors that keep their identity from step to step (a compiled step reads and writes
them in place of Python numbers: Adam's step count is a Tensor, as in PyTorch's capturable
Adam), and the hyperparameters and which state exists are guards of a compiled step (a new
learning rate retraces).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..autograd import no_grad
from ..nn.module import zero_grads
from ..ops import elementwise as E
from ..tensor import Tensor, _observers, _wrap, assign, filled, notify
from . import rules


class _Values:
    """The numpy array behind a Tensor with a Tensor's arithmetic and nothing else: each operator
    calls its primitive's numpy forward, a number taking the array's dtype as in ``Tensor._lift``
    (parameters are floating point), so results are bitwise those of the Tensor path."""

    __slots__ = ("a",)

    def __init__(self, a: Any) -> None:
        self.a = a

    def sqrt(self) -> _Values:
        return _Values(E.sqrt.forward(self.a))


def _operator(forward: Any, reflected: bool) -> Any:
    def operator(self: _Values, other: Any) -> _Values:
        # the operand inline, not through a method: this runs for every parameter at every step
        b = other.a if type(other) is _Values else np.asarray(other, dtype=self.a.dtype)
        return _Values(forward(b, self.a) if reflected else forward(self.a, b))

    return operator


for _name, _prim in (("add", E.add), ("sub", E.sub), ("mul", E.mul), ("truediv", E.div),
                     ("pow", E.pow)):
    setattr(_Values, f"__{_name}__", _operator(_prim.forward, reflected=False))
    setattr(_Values, f"__r{_name}__", _operator(_prim.forward, reflected=True))


class Optimizer:
    """Holds parameter groups and per-parameter state; subclasses define ``_update``."""

    defaults: dict[str, Any] = {}

    def __init__(self, params: Iterable[Any], **hyper: Any) -> None:
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups: list[dict[str, Any]] = []
        for group in groups:
            merged = {**self.defaults, **hyper, **group, "params": list(group["params"])}
            self._validate(merged)
            self.param_groups.append(merged)
        self.state: dict[int, dict[str, Tensor]] = {}
        self._state_version = 0  # bumped when state tensors are made: a compiled step retraces

    def _validate(self, group: dict[str, Any]) -> None:
        for p in group["params"]:  # frozen ones are welcome: they get no gradient, no update
            if not isinstance(p, Tensor) or not p.is_leaf:
                raise TypeError(f"{type(self).__name__}: every parameter must be a leaf Tensor, "
                                f"got {type(p).__name__}")
        if group["lr"] < 0:
            raise ValueError(f"{type(self).__name__}: learning rate must be >= 0, got {group['lr']}")

    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        zero_grads(self._params(), set_to_none)

    def step(self) -> None:
        """Update every parameter that has a gradient (``assign``: the same Tensor objects)."""
        traced = bool(_observers)
        if traced:
            notify("guard", self, self._trace_guard,
                   f"{type(self).__name__}'s hyperparameters or state")
        with no_grad():
            for group in self.param_groups:
                hyper = {k: v for k, v in group.items() if k != "params"}
                for p in group["params"]:
                    grad = p.grad
                    if grad is None:
                        continue
                    state = self._state_of(p)
                    if traced or p.device != "cpu" or grad.device != "cpu":
                        self._store(p, state, self._update(p, grad, state, **hyper))
                    else:  # the eager hot path: the rules on the arrays, stored as Tensors
                        arrays = {name: _Values(t._data) for name, t in state.items()}
                        new = self._update(_Values(p._data), _Values(grad._data), arrays, **hyper)
                        self._store(p, state, {name: None if v is None else _wrap(np.asarray(v.a))
                                               for name, v in new.items()})

    def _store(self, p: Tensor, state: dict[str, Tensor], new: dict[str, Tensor | None]) -> None:
        """Store ``_update``'s results: ``"param"`` into ``p``, the rest into ``state`` (into the
        existing Tensor, or a new one made from a copy); None stores nothing."""
        for name, value in new.items():
            if value is None:
                continue
            target = p if name == "param" else state.get(name)
            if target is None:
                state[name] = value.clone()
            else:
                assign(target, value, donate=True)

    def _state_of(self, p: Tensor) -> dict[str, Tensor]:
        state = self.state.get(id(p))
        if state is None:
            state = self.state[id(p)] = self._init_state(p)
            self._state_version += 1
        return state

    def _init_state(self, p: Tensor) -> dict[str, Tensor]:
        return {}

    def _update(self, p: Any, grad: Any, state: dict[str, Any], **hyper: Any) -> dict[str, Any]:
        """The new parameter (``"param"``) and state values, from the update rules; the values
        are all Tensors, or all :class:`_Values` (the eager path)."""
        raise NotImplementedError

    def _trace_guard(self) -> tuple:
        """What a traced ``step()`` depends on besides tensor values: the hyperparameters, the
        parameters and which state exists."""
        groups = tuple((tuple(map(id, g["params"])), tuple((k, v) for k, v in g.items()
                                                          if k != "params"))
                       for g in self.param_groups)
        return self._state_version, id(self.state), len(self.state), groups

    def state_tensors(self) -> list[Tensor]:
        """Every state Tensor, parameter by parameter (in ``param_groups`` order)."""
        return [t for p in self._params() for t in self.state.get(id(p), {}).values()]

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters and a numpy copy of the state, by parameter index."""
        index = {id(p): i for i, p in enumerate(self._params())}
        return {"state": {index[k]: {name: np.array(t.data, copy=True) for name, t in v.items()}
                          for k, v in self.state.items() if k in index},
                "param_groups": [{k: v for k, v in g.items() if k != "params"}
                                 for g in self.param_groups]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load hyperparameters and state; state tensors that exist keep their identity (a
        compiled step reads the loaded values)."""
        params = self._params()
        for group, saved in zip(self.param_groups, state_dict["param_groups"]):
            group.update(saved)
        loaded: dict[int, dict[str, Tensor]] = {}
        for i, saved in state_dict["state"].items():
            own = self.state.get(id(params[i]), {})
            loaded[id(params[i])] = {name: _store(own.get(name), value)
                                     for name, value in saved.items()}
        self.state = loaded
        self._state_version += 1


def _store(target: Tensor | None, value: Any) -> Tensor:
    value = value if isinstance(value, Tensor) else Tensor(np.array(value, copy=True))
    if target is None or target.shape != value.shape or target.dtype != value.dtype:
        return Tensor(np.array(value.data, copy=True))
    assign(target, value)
    return target


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov and weight decay."""

    defaults = {"lr": 0.01, "momentum": 0.0, "weight_decay": 0.0, "nesterov": False,
                "dampening": 0.0}

    def __init__(self, params: Iterable[Any], lr: float = 0.01, **hyper: Any) -> None:
        super().__init__(params, lr=lr, **hyper)

    def _validate(self, group: dict[str, Any]) -> None:
        super()._validate(group)
        if group["momentum"] < 0 or group["weight_decay"] < 0:
            raise ValueError(f"SGD: momentum and weight_decay must be >= 0, got "
                             f"{group['momentum']} and {group['weight_decay']}")

    def _update(self, p, grad, state, **hyper):
        new, buffer = rules.sgd(p, grad, state.get("momentum_buffer"), **hyper)
        return {"momentum_buffer": buffer, "param": new}


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015); weight decay is added to the gradient (L2).

    The step count is a Tensor of the parameter's dtype and the bias corrections are computed
    from it in that dtype (PyTorch's ``capturable=True``): a compiled step does not retrace as it
    grows.
    """

    defaults = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}
    decoupled = False

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, **hyper: Any) -> None:
        super().__init__(params, lr=lr, **hyper)

    def _init_state(self, p: Tensor) -> dict[str, Tensor]:
        zeros = lambda shape: filled(shape, 0, p.dtype, p.device)  # noqa: E731
        return {"step": zeros(()), "exp_avg": zeros(p.shape), "exp_avg_sq": zeros(p.shape)}

    def _update(self, p, grad, state, *, lr, betas, eps, weight_decay):
        step = state["step"] + 1.0
        new, exp_avg, exp_avg_sq = rules.adam(
            p, grad, state["exp_avg"], state["exp_avg_sq"], step, lr=lr, beta1=betas[0],
            beta2=betas[1], eps=eps, weight_decay=weight_decay, decoupled=self.decoupled)
        return {"step": step, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq, "param": new}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter, 2019)."""

    defaults = {**Adam.defaults, "weight_decay": 1e-2}
    decoupled = True
