"""Training that works: the reference models reach their accuracy on the digits."""

from __future__ import annotations

from mlsys import models, optim, training
from mlsys.data import DataLoader, load_digits


def _loaders(flatten: bool):
    train = DataLoader(load_digits("train", flatten=flatten), batch_size=64, shuffle=True, seed=0)
    test = DataLoader(load_digits("test", flatten=flatten), batch_size=512)
    return train, test


def test_mlp_reaches_95_percent():
    train, test = _loaders(flatten=True)
    model = models.mlp()
    history = training.fit(model, optim.Adam(model.parameters(), lr=3e-3), train, test, epochs=10)
    assert history.accuracy[-1] >= 0.95
    assert history.loss[-1] < history.loss[0] / 5


def test_cnn_reaches_97_percent():
    train, test = _loaders(flatten=False)
    model = models.small_cnn()
    history = training.fit(model, optim.Adam(model.parameters(), lr=3e-3), train, test, epochs=12)
    assert history.accuracy[-1] >= 0.97


def test_sgd_with_momentum_also_trains_the_mlp():
    train, test = _loaders(flatten=True)
    model = models.mlp()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    assert training.fit(model, opt, train, test, epochs=8).accuracy[-1] >= 0.95
