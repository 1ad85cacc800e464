"""Training and scoring a classifier on a feature matrix with the engine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import models, optim
from ..autograd import no_grad
from ..data import DataLoader, TensorDataset
from ..nn import Module
from ..nn import functional as F
from ..random import manual_seed
from ..tensor import Tensor
from ..training import train_step

# the models an artefact may name, so that loading one never imports code named by a file
BUILDERS = {"mlp": models.mlp}


def build(architecture: Mapping[str, Any]) -> Module:
    """A fresh model from ``{"builder": name, "kwargs": {...}}`` (a name in :data:`BUILDERS`)."""
    builder = architecture.get("builder")
    if builder not in BUILDERS:
        raise ValueError(f"unknown model builder {builder!r}; expected one of {sorted(BUILDERS)}")
    return BUILDERS[builder](**architecture.get("kwargs", {}))


def train_classifier(x: np.ndarray, y: np.ndarray, *, hidden: int = 16, epochs: int = 20,
                     lr: float = 1e-2, batch_size: int = 64, seed: int = 0) -> tuple[Module, dict[str, Any]]:
    """An MLP with one hidden layer trained with Adam; returns the model and its architecture."""
    x, y = np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64)
    if x.ndim != 2 or len(x) != len(y) or not len(x):
        raise ValueError(f"train_classifier: need x (n, features) and y (n,), got {x.shape} and {y.shape}")
    manual_seed(seed)
    architecture = {"builder": "mlp", "kwargs": {"in_features": int(x.shape[1]), "hidden": hidden,
                                                 "classes": int(y.max()) + 1, "depth": 1}}
    model = build(architecture)
    optimizer = optim.Adam(model.parameters(), lr=lr)
    loader = DataLoader(TensorDataset(x, y), batch_size, shuffle=True, seed=seed)
    for _ in range(epochs):
        for xb, yb in loader:
            train_step(model, optimizer, xb, yb)
    return model, architecture


def predict_proba(model: Module, x: np.ndarray) -> np.ndarray:
    """Class probabilities, one row per example."""
    model.eval()
    with no_grad():
        probs = F.softmax(model(Tensor(np.asarray(x, dtype=np.float32))), dim=1).data
    return probs.astype(np.float64)


def classification_metrics(model: Module, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy, ROC AUC (of class 1) and log loss on ``(x, y)``."""
    from sklearn.metrics import roc_auc_score

    probs, y = predict_proba(model, x), np.asarray(y)
    return {"accuracy": float((probs.argmax(1) == y).mean()),
            "auc": float(roc_auc_score(y, probs[:, 1])),
            "log_loss": float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None))))}
