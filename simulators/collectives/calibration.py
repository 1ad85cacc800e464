"""Predicting the real engine on this machine from the alpha-beta-gamma model of
:mod:`mlsys.comm.cost`: the machine as a topology, the model fitted to measured all-reduces or
read from ``mlsys comm calibrate --json`` output, and the measurement itself."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlsys.comm.cost import CostModel, terms
from mlsys.comm.cost import fit as fit_terms
from mlsys.comm.schedules import ALGORITHMS
from simulators.core import LinkSpec, Topology, switched
from simulators.data import read_text

from .run import simulate


def machine(model: CostModel, world_size: int) -> Topology:
    """Processes of one machine as devices on a switch whose two hops add up to ``model.alpha``
    and whose ports move one byte per ``model.beta`` seconds each way (a fit may put all the
    per-byte cost in ``gamma``; ``beta = 0`` then gives ports that never limit)."""
    _check_model(model)
    bandwidth = 1 / model.beta if model.beta > 0 else 1e300
    return switched(world_size, LinkSpec(bandwidth, model.alpha / 2, "shm"))


def predict(model: CostModel, algorithm: str, world_size: int, nbytes: int,
            itemsize: int = 4) -> float:
    """Simulated seconds of one all-reduce of ``nbytes`` by ``algorithm`` on :func:`machine`."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; expected one of {list(ALGORITHMS)}")
    schedule = ALGORITHMS[algorithm](world_size, nbytes // itemsize)
    return simulate(schedule, machine(model, world_size), itemsize, gamma=model.gamma).time


def fit(rows: Sequence[Mapping[str, Any]], itemsize: int = 4) -> CostModel:
    """:func:`mlsys.comm.cost.fit` over measured all-reduce rows with keys ``algorithm``,
    ``ranks``, ``bytes`` and ``seconds`` (or ``measured_us``, as ``mlsys comm calibrate`` writes)."""
    samples = []
    for r in rows:
        seconds = r["seconds"] if "seconds" in r else r["measured_us"] * 1e-6
        schedule = ALGORITHMS[r["algorithm"]](r["ranks"], r["bytes"] // itemsize)
        samples.append((terms(schedule, itemsize), seconds))
    return fit_terms(samples)


def load_calibration(source: Mapping[str, Any] | str | Path) -> CostModel:
    """The cost model in calibration JSON (a file, a JSON string or a parsed mapping): the
    first mapping holding ``alpha`` and ``beta`` (and optionally ``gamma``), or else the model
    refitted from the measured rows of ``mlsys comm calibrate --json``. Anything else raises a
    ``ValueError`` naming the source and what is wrong."""
    data: Any = source
    name = "calibration JSON"
    try:
        if isinstance(source, Path) or (isinstance(source, str)
                                        and not source.lstrip().startswith("{")):
            name = str(source)
            data = json.loads(read_text(source))
        elif isinstance(source, str):
            data = json.loads(source)
    except json.JSONDecodeError as error:
        raise ValueError(f"{name} is not valid JSON: {error}") from None
    found = _find(data, lambda m: "alpha" in m and "beta" in m)
    if found is not None:
        values = [found["alpha"], found["beta"], found.get("gamma", 0.0)]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise ValueError(f"{name}: alpha, beta and gamma must be numbers, got {values}")
        model = CostModel(*(float(v) for v in values))
    else:
        rows = _find(data, lambda m: isinstance(m.get("rows"), list))
        measured = [r for r in (rows or {}).get("rows", []) if isinstance(r, Mapping)
                    and {"algorithm", "ranks", "bytes", "measured_us"} <= r.keys()]
        if not measured:
            raise ValueError(f"{name} has neither a mapping with 'alpha' and 'beta' nor measured "
                             "rows (algorithm, ranks, bytes, measured_us) to fit")
        for r in measured:
            if (r["algorithm"] not in ALGORITHMS or not _count(r["ranks"], 2)
                    or not _count(r["bytes"], 4) or r["bytes"] % 4
                    or not (isinstance(r["measured_us"], (int, float))
                            and math.isfinite(r["measured_us"]) and r["measured_us"] > 0)):
                raise ValueError(f"{name}: a measured row must have a known algorithm, ranks >= 2, "
                                 f"bytes a positive multiple of 4 and measured_us > 0, got {dict(r)}")
        model = fit(measured)
    try:
        _check_model(model)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None
    return model


def _count(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _check_model(model: CostModel) -> None:
    for name in ("alpha", "beta", "gamma"):
        v = getattr(model, name)
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise ValueError(f"cost model {name} must be a finite number >= 0, got {v!r}")


def _find(data: Any, wanted: Any) -> Mapping[str, Any] | None:
    """The first mapping (depth-first) in ``data`` for which ``wanted`` is true."""
    if isinstance(data, Mapping):
        if wanted(data):
            return data
        data = list(data.values())
    if isinstance(data, list):
        for item in data:
            found = _find(item, wanted)
            if found is not None:
                return found
    return None


def measure(world_sizes: Sequence[int], sizes: Sequence[int], algorithms: Sequence[str],
            repeat: int = 3) -> list[dict[str, Any]]:
    """The real engine's all-reduce seconds (``mlsys bench allreduce``'s measurement), the best
    of ``repeat`` runs per row, each run in fresh processes."""
    from mlsys.comm.bench import collect

    best: dict[tuple[str, int, int], float] = {}
    for _ in range(repeat):
        for r in collect(world_sizes, sizes, algorithms, baselines=False):
            key = (r["impl"].removeprefix("mlsys "), r["ranks"], r["bytes"])
            best[key] = min(best.get(key, math.inf), r["time_us"] / 1e6)
    return [{"algorithm": a, "ranks": p, "bytes": n, "seconds": t} for (a, p, n), t in best.items()]
