"""Versioned model artefacts: the weights and everything needed to trust and serve them.

A :class:`ModelRegistry` is a folder (MLflow's model registry, on a file system)::

    root/<name>/v1/weights.npz      the model's state_dict
    root/<name>/v1/metadata.json    architecture, fitted feature transformation, schema, metrics,
                                    the training data's hash, the weights' hash, when, which mlsys

Versions are numbered in order and never overwritten: a version is written into a temporary folder
and renamed into place, so a reader never sees half of one, and two writers get two versions.
Loading checks the weights against the hash in the metadata.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..nn import Module
from .features import FittedFeatures
from .model import build
from .schema import Columns, Schema

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_VERSION = re.compile(r"^v([1-9][0-9]*)$")


def data_hash(columns: Columns, labels: np.ndarray | None = None) -> str:
    """A SHA-256 of a table (column names, dtypes, shapes and values, in column order) and labels."""
    digest = hashlib.sha256()
    items = list(columns.items()) + ([("__labels__", labels)] if labels is not None else [])
    for name, values in items:
        array = np.ascontiguousarray(values)
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return "sha256:" + digest.hexdigest()


def _file_hash(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class ModelArtifact:
    """A trained model with its feature transformation, schema, metrics and provenance."""

    name: str
    version: int
    model: Module
    architecture: dict[str, Any]
    features: FittedFeatures
    schema: Schema
    metrics: dict[str, float]
    data_hash: str
    created: str
    path: Path

    def metadata(self) -> dict[str, Any]:
        return json.loads((self.path / "metadata.json").read_text())


class ModelRegistry:
    """Model versions stored under ``root`` (see the module's documentation)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _folder(self, name: str) -> Path:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"model name must be letters, digits, '_', '.', '-' (not first), got {name!r}")
        return self.root / name

    def versions(self, name: str) -> list[int]:
        """The versions of ``name`` stored so far, oldest first."""
        folder = self._folder(name)
        if not folder.is_dir():
            return []
        return sorted(int(m[1]) for p in folder.iterdir() if (m := _VERSION.match(p.name)))

    def register(self, name: str, model: Module, architecture: Mapping[str, Any], features: FittedFeatures,
                 schema: Schema, metrics: Mapping[str, float], data_hash: str) -> ModelArtifact:
        """Store a new version of ``name`` and return it as loaded back."""
        from .. import __version__

        folder = self._folder(name)
        folder.mkdir(exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the version from other readers
        try:
            np.savez(staging / "weights.npz", **model.state_dict())
            metadata = {
                "name": name, "architecture": dict(architecture), "features": features.to_dict(),
                "schema": schema.to_dict(), "metrics": {k: float(v) for k, v in metrics.items()},
                "data_hash": data_hash, "weights_hash": _file_hash(staging / "weights.npz"),
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "mlsys_version": __version__,
            }
            while True:
                version = max(self.versions(name), default=0) + 1
                metadata["version"] = version
                (staging / "metadata.json").write_text(json.dumps(metadata, indent=2))
                try:
                    os.rename(staging, folder / f"v{version}")  # fails if another writer took it
                    break
                except OSError:
                    if not (folder / f"v{version}").exists():
                        raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self.load(name, version)

    def load(self, name: str, version: int | None = None) -> ModelArtifact:
        """Version ``version`` of ``name`` (the latest if None), its weights checked against the
        hash its metadata recorded."""
        versions = self.versions(name)
        if not versions:
            raise FileNotFoundError(f"no model {name!r} in {self.root}")
        version = versions[-1] if version is None else version
        if version not in versions:
            raise FileNotFoundError(f"model {name!r} has no version {version!r}; it has {versions}")
        path = self._folder(name) / f"v{version}"
        metadata = json.loads((path / "metadata.json").read_text())
        weights = path / "weights.npz"
        if _file_hash(weights) != metadata["weights_hash"]:
            raise ValueError(f"{weights} does not match the hash in its metadata "
                             f"({metadata['weights_hash']}): the weights changed after registration")
        model = build(metadata["architecture"])
        with np.load(weights) as state:
            model.load_state_dict(dict(state))
        model.eval()
        return ModelArtifact(name, version, model, metadata["architecture"],
                             FittedFeatures.from_dict(metadata["features"]),
                             Schema.from_dict(metadata["schema"]), metadata["metrics"],
                             metadata["data_hash"], metadata["created"], path)


def compare(old: ModelArtifact, new: ModelArtifact) -> list[str]:
    """What changed between two artefacts, in words: data, features, schema, metrics."""
    changes = []
    if old.data_hash != new.data_hash:
        changes.append(f"trained on different data ({old.data_hash[:19]} -> {new.data_hash[:19]})")
    before, after = old.features.names, new.features.names
    for name in before:
        if name not in after:
            changes.append(f"feature {name!r} removed")
    for name in after:
        if name not in before:
            changes.append(f"feature {name!r} added")
    common = [n for n in before if n in after]
    moved = [n for n in common if before.index(n) != after.index(n)]
    if moved:
        changes.append(f"features moved position: {moved[:5]}{' ...' if len(moved) > 5 else ''}")
    logs = old.features.spec.log ^ new.features.spec.log
    if logs:
        changes.append(f"log transform toggled on {sorted(logs)}")
    if old.schema != new.schema:
        changes.append("schema changed")
    for metric in sorted(set(old.metrics) | set(new.metrics)):
        a, b = old.metrics.get(metric), new.metrics.get(metric)
        if a != b:
            show = lambda value: "-" if value is None else f"{value:.4g}"
            changes.append(f"{metric}: {show(a)} -> {show(b)}")
    return changes
