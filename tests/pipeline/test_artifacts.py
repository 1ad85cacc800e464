"""The model registry: numbered versions that round-trip, provenance that notices changes,
weights that cannot change unnoticed, and concurrent writers that never collide."""

from __future__ import annotations

import json
import multiprocessing

import numpy as np
import pytest

from mlsys.pipeline import ModelRegistry, Schema, compare, data_hash, predict_proba, train_classifier


@pytest.fixture(scope="module")
def trained(tables, fitted):
    (train, labels), _ = tables
    model, architecture = train_classifier(fitted.transform(train), labels, epochs=3)
    return model, architecture, Schema.infer(train), data_hash(train, labels)


def register(registry: ModelRegistry, trained, fitted, metrics=None):
    model, architecture, schema, digest = trained
    return registry.register("cancer", model, architecture, fitted, schema, metrics or {"auc": 0.9}, digest)


def test_versions_round_trip_with_their_metadata(tmp_path, tables, fitted, trained) -> None:
    _, (test, _) = tables
    registry = ModelRegistry(tmp_path)
    first = register(registry, trained, fitted)
    second = register(registry, trained, fitted, {"auc": 0.95})
    assert (first.version, second.version) == (1, 2) and registry.versions("cancer") == [1, 2]
    latest = registry.load("cancer")
    assert latest.version == 2 and latest.metrics == {"auc": 0.95}
    x = fitted.transform(test)
    assert np.array_equal(predict_proba(latest.model, x), predict_proba(trained[0], x))
    assert np.array_equal(latest.features.transform(test), x) and latest.schema == trained[2]
    metadata = json.loads((tmp_path / "cancer" / "v1" / "metadata.json").read_text())
    assert metadata["data_hash"] == trained[3] and metadata["weights_hash"].startswith("sha256:")
    assert {"created", "mlsys_version", "architecture", "features", "schema"} <= set(metadata)


def test_data_hash_tracks_values_names_and_order(tables) -> None:
    (train, labels), _ = tables
    digest = data_hash(train, labels)
    assert data_hash(dict(train), labels.copy()) == digest
    nudged = dict(train, **{"mean radius": train["mean radius"] + np.eye(1, len(labels), 7).ravel()})
    assert data_hash(nudged, labels) != digest
    assert data_hash(dict(reversed(list(train.items()))), labels) != digest
    assert data_hash(train, 1 - labels) != digest and data_hash(train) != digest


def test_changed_weights_are_refused(tmp_path, fitted, trained) -> None:
    registry = ModelRegistry(tmp_path)
    register(registry, trained, fitted)
    weights = tmp_path / "cancer" / "v1" / "weights.npz"
    state = dict(np.load(weights))
    state[next(iter(state))] += 1e-3
    np.savez(weights, **state)
    with pytest.raises(ValueError, match="does not match the hash in its metadata"):
        registry.load("cancer")


def _register_three(root, trained, fitted) -> None:
    for _ in range(3):
        register(ModelRegistry(root), trained, fitted)


def test_concurrent_writers_get_distinct_complete_versions(tmp_path, fitted, trained) -> None:
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_register_three, args=(tmp_path, trained, fitted)) for _ in range(3)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(60)
    assert [p.exitcode for p in writers] == [0, 0, 0]
    registry = ModelRegistry(tmp_path)
    assert registry.versions("cancer") == list(range(1, 10))
    assert all(registry.load("cancer", v).version == v for v in range(1, 10))
    assert not [p for p in (tmp_path / "cancer").iterdir() if p.name.startswith(".staging")]


def test_compare_names_what_changed(tmp_path, tables, fitted, trained, logged) -> None:
    (train, labels), _ = tables
    registry = ModelRegistry(tmp_path)
    old = register(registry, trained, fitted, {"auc": 0.9})
    reordered_spec = type(fitted.spec)(tuple(reversed(fitted.names)), logged - {"mean area"})
    model, architecture, schema, _ = trained
    new = registry.register("cancer", model, architecture, reordered_spec.fit(train), schema, {"auc": 0.91},
                            data_hash(train, 1 - labels))
    changes = compare(old, new)
    assert changes[0].startswith("trained on different data")
    assert any(c.startswith("features moved position") for c in changes)
    assert "log transform toggled on ['mean area']" in changes and "auc: 0.9 -> 0.91" in changes
    assert compare(old, old) == []


def test_bad_names_versions_and_builders(tmp_path, fitted, trained) -> None:
    registry = ModelRegistry(tmp_path)
    with pytest.raises(ValueError, match="model name must be"):
        registry.versions("../escape")
    with pytest.raises(FileNotFoundError, match="no model 'cancer'"):
        registry.load("cancer")
    register(registry, trained, fitted)
    with pytest.raises(FileNotFoundError, match=r"has no version 5; it has \[1\]"):
        registry.load("cancer", 5)
    metadata = tmp_path / "cancer" / "v1" / "metadata.json"
    edited = json.loads(metadata.read_text())
    edited["architecture"]["builder"] = "os.system"
    metadata.write_text(json.dumps(edited))
    with pytest.raises(ValueError, match="unknown model builder 'os.system'"):
        registry.load("cancer")
