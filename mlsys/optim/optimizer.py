"""Optimizers over parameter lists: SGD (momentum, Nesterov, weight decay), Adam and AdamW."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..tensor import Tensor
from . import rules


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
        self.state: dict[int, dict[str, Any]] = {}

    def _validate(self, group: dict[str, Any]) -> None:
        for p in group["params"]:
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(f"{type(self).__name__}: every parameter must be a Tensor that "
                                f"requires grad, got {type(p).__name__}")
        if group["lr"] < 0:
            raise ValueError(f"{type(self).__name__}: learning rate must be >= 0, got {group['lr']}")

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad.data[...] = 0

    def step(self) -> None:
        """Update every parameter that has a gradient, in place."""
        for group in self.param_groups:
            hyper = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.setdefault(id(p), {})
                p.data = np.asarray(self._update(p.data, p.grad.data, state, **hyper),
                                    dtype=p.data.dtype)

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict, **hyper: Any) -> np.ndarray:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        index = {id(p): i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}
        return {"state": {index[k]: dict(v) for k, v in self.state.items() if k in index},
                "param_groups": [{k: v for k, v in g.items() if k != "params"}
                                 for g in self.param_groups]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        params = [p for g in self.param_groups for p in g["params"]]
        for group, saved in zip(self.param_groups, state_dict["param_groups"]):
            group.update(saved)
        self.state = {id(params[i]): dict(v) for i, v in state_dict["state"].items()}


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov and weight decay."""

    defaults = {"lr": 0.01, "momentum": 0.0, "weight_decay": 0.0, "nesterov": False,
                "dampening": 0.0}

    def __init__(self, params: Iterable[Any], lr: float = 0.01, **hyper: Any) -> None:
        super().__init__(params, lr=lr, **hyper)

    def _update(self, param, grad, state, **hyper):
        new, state["momentum_buffer"] = rules.sgd(param, grad, state.get("momentum_buffer"), **hyper)
        return new


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015); weight decay is added to the gradient (L2)."""

    defaults = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}
    decoupled = False

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, **hyper: Any) -> None:
        super().__init__(params, lr=lr, **hyper)

    def _update(self, param, grad, state, *, lr, betas, eps, weight_decay):
        if not state:
            state.update(step=0, exp_avg=np.zeros_like(param), exp_avg_sq=np.zeros_like(param))
        state["step"] += 1
        new, state["exp_avg"], state["exp_avg_sq"] = rules.adam(
            param, grad, state["exp_avg"], state["exp_avg_sq"], state["step"], lr=lr,
            beta1=betas[0], beta2=betas[1], eps=eps, weight_decay=weight_decay,
            decoupled=self.decoupled)
        return new


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter, 2019)."""

    defaults = {**Adam.defaults, "weight_decay": 1e-2}
    decoupled = True
