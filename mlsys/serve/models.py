"""The models the server can serve: the course's digits models, trained here or loaded.

A model is trained at start-up in a few seconds (seeded, so every start gives the same weights)
or loaded from a checkpoint that an earlier start wrote (``np.savez`` of its ``state_dict``).
Nothing is downloaded. Requests carry rows of the 64 digit pixels scaled to [0, 1]; the
convolutional model reshapes them to 8x8 images itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import models, optim
from ..autograd import no_grad
from ..data import DataLoader, load_digits
from ..nn import Module
from ..random import manual_seed
from ..tensor import Tensor
from ..training import evaluate, fit

__all__ = ["ServedModel", "MODELS", "model_spec", "train", "load", "save", "predict", "accuracy"]

FEATURES = 64
CLASSES = 10


@dataclass(frozen=True)
class ServedModel:
    """How to build one servable model, shape its inputs and train it."""

    name: str
    build: Callable[[], Module]
    image_input: bool  # reshape (n, 64) rows to (n, 1, 8, 8) images
    epochs: int
    lr: float


MODELS: dict[str, ServedModel] = {
    "digits-mlp": ServedModel("digits-mlp", models.mlp, False, epochs=6, lr=3e-3),
    "digits-cnn": ServedModel("digits-cnn", models.small_cnn, True, epochs=4, lr=3e-3),
}


def model_spec(name: str) -> ServedModel:
    """The catalogued model ``name``, with a clear error for unknown names."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}") from None


def _loader(split: str, spec: ServedModel, batch_size: int, shuffle: bool) -> DataLoader:
    return DataLoader(load_digits(split, flatten=not spec.image_input), batch_size, shuffle=shuffle)


def train(name: str, epochs: int | None = None, seed: int = 0) -> Module:
    """Model ``name`` trained on the digits training split (deterministic for a seed)."""
    spec = model_spec(name)
    manual_seed(seed)
    model = spec.build()
    fit(model, optim.Adam(model.parameters(), lr=spec.lr), _loader("train", spec, 64, True),
        epochs=spec.epochs if epochs is None else epochs)
    return model.eval()


def save(model: Module, path: str | Path) -> Path:
    """Write ``model``'s state dict to ``path`` (a ``.npz`` file)."""
    path = Path(path)
    np.savez(path, **model.state_dict())
    return path


def load(name: str, path: str | Path) -> Module:
    """Model ``name`` with the weights saved at ``path``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    model = model_spec(name).build()
    with np.load(path) as state:
        model.load_state_dict(dict(state))
    return model.eval()


def predict(model: Module, name: str, rows: np.ndarray) -> np.ndarray:
    """Logits (n, 10) float32 of ``model`` for pixel rows (n, 64)."""
    x = rows.reshape(-1, 1, 8, 8) if model_spec(name).image_input else rows
    with no_grad():
        return model(Tensor(np.ascontiguousarray(x, dtype=np.float32))).data


def accuracy(model: Module, name: str) -> float:
    """Test-split accuracy of ``model``."""
    return evaluate(model, _loader("test", model_spec(name), 256, False))
