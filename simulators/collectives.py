"""Collective algorithms on a modelled network: the ``mlsys.comm`` schedules, simulated.

:func:`simulate` runs a :class:`~mlsys.comm.schedules.Schedule` the way the real executor
(:mod:`mlsys.comm.executor`) does: each rank goes round by round; in a round, the steps between the
same two ranks coalesce into one message, the rank starts its sends, and it moves on when its sends
are delivered and its receives have arrived (and, for reductions, been reduced: ``gamma`` seconds
per byte on the receiving device). Messages cross a :class:`~simulators.core.Network`, so routes,
latencies, bandwidths and contention on shared links come from the topology.

On an uncontended topology the simulated time equals the alpha-beta-gamma closed forms
(:func:`alpha_beta`; Thakur, Rabenseifner & Gropp, IJHPCA 2005). On a cluster of nodes,
:func:`mlsys.comm.schedules.hierarchical_ring` (reduce-scatter inside each node, one ring per local
rank across nodes, all-gather inside each node; the "2D ring" of e.g. Jia et al., arXiv:1807.11205,
2018) crosses the slow inter-node network in ``2(N-1)`` rounds instead of ``2(Nk-1)``, on ``k``
NICs at once.

``mlsys sim collectives``: simulated vs measured all-reduce on this machine. It measures the real
engine's all-reduce on this machine's processes, takes the alpha-beta-gamma model of
:mod:`mlsys.comm.cost` from ``mlsys comm calibrate --json`` output (or fits it to the same run),
runs the schedules on :func:`machine` (the processes on a switch with those figures) and prints
predictions beside measurements.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlsys import cliargs
from mlsys.bench.report import emit
from mlsys.comm.cost import CostModel, terms
from mlsys.comm.cost import fit as fit_terms
from mlsys.comm.schedules import ALGORITHMS, Schedule
from simulators.core import LinkSpec, Network, Recorder, Topology, switched
from simulators.data import read_text


@dataclass(frozen=True)
class CollectiveRun:
    """A simulated collective: its time, event log and bytes carried per link."""

    schedule: Schedule
    time: float
    recorder: Recorder
    bytes_on: dict[str, float]


def simulate(schedule: Schedule, topology: Topology, itemsize: int = 4, *,
             placement: Sequence[str] | None = None, gamma: float = 0.0) -> CollectiveRun:
    """Run ``schedule`` on ``topology`` with rank ``r`` on device ``placement[r]`` (default: the
    topology's devices in order); elements are ``itemsize`` bytes."""
    if not isinstance(itemsize, int) or itemsize < 1:
        raise ValueError(f"itemsize must be a positive integer number of bytes, got {itemsize!r}")
    if not (isinstance(gamma, (int, float)) and math.isfinite(gamma) and gamma >= 0):
        raise ValueError(f"gamma must be a finite number of seconds per byte >= 0, got {gamma!r}")
    devices = _placement(schedule, topology, placement)
    net = Network(topology)
    env = net.env
    messages = schedule.messages()
    by_rank: dict[tuple[int, int], list[tuple[int, int, int]]] = defaultdict(list)
    for key in messages:
        rnd, src, dst = key
        by_rank[(src, rnd)].append(key)
        by_rank[(dst, rnd)].append(key)
    sent = {key: env.event() for key in messages}
    reduced = {key: env.event() for key in messages}

    def deliver(key: tuple[int, int, int]) -> Generator:
        rnd, src, dst = key
        steps = messages[key]
        nbytes = itemsize * sum(schedule.chunk_size(s.chunk) for s in steps)
        yield net.transfer(devices[src], devices[dst], nbytes, name=f"round {rnd}", round=rnd)
        sent[key].succeed()
        if steps[0].op == "reduce" and gamma > 0:
            yield net.compute(devices[dst], gamma * nbytes, name="reduce", round=rnd)
        reduced[key].succeed()

    def rank(r: int) -> Generator:
        for rnd in range(schedule.num_rounds):
            waits = []
            for key in by_rank.get((r, rnd), ()):
                if key[1] == r:
                    env.process(deliver(key))
                    waits.append(sent[key])
                else:
                    waits.append(reduced[key])
            yield env.all_of(waits)

    for r in range(schedule.world_size):
        env.process(rank(r))
    net.run()
    return CollectiveRun(schedule, env.now, net.recorder, dict(net.bytes_on))


def _placement(schedule: Schedule, topology: Topology,
               placement: Sequence[str] | None) -> list[str]:
    p = schedule.world_size
    devices = list(topology.devices[:p] if placement is None else placement)
    if len(devices) != p:
        raise ValueError(f"{schedule.algorithm} on {p} ranks needs {p} devices, but "
                         f"{topology.name} {'has' if placement is None else 'was given'} "
                         f"{len(devices)}")
    unknown = [d for d in devices if d not in topology.devices]
    repeated = sorted({d for d in devices if devices.count(d) > 1})
    if unknown or repeated:
        raise ValueError(f"placement must name {p} distinct devices of {topology.name}; "
                         f"unknown {unknown}, repeated {repeated}")
    return devices


def alpha_beta(algorithm: str, world_size: int, nbytes: float, alpha: float, beta: float,
               gamma: float = 0.0) -> float:
    """Textbook all-reduce time on ``p`` ranks of ``n`` bytes with uncontended links (Thakur,
    Rabenseifner & Gropp 2005): ``alpha`` seconds per message, ``beta`` per byte sent, ``gamma``
    per byte reduced. The power-of-two algorithms need ``p`` a power of two."""
    p, n = world_size, nbytes
    if p < 2:
        raise ValueError(f"alpha_beta: world_size must be >= 2, got {p!r}")
    log_p = math.log2(p)
    if algorithm in ("recursive_doubling", "halving_doubling") and not log_p.is_integer():
        raise ValueError(f"alpha_beta: {algorithm} needs a power-of-two world size, got {p}")
    frac = (p - 1) / p
    forms = {
        "ring": 2 * (p - 1) * alpha + 2 * frac * n * beta + frac * n * gamma,
        "recursive_doubling": log_p * (alpha + n * beta + n * gamma),
        "halving_doubling": 2 * log_p * alpha + 2 * frac * n * beta + frac * n * gamma,
        "direct": 2 * alpha + 2 * n / p * beta + frac * n * gamma,
    }
    if algorithm not in forms:
        raise ValueError(f"alpha_beta: no closed form for {algorithm!r}; expected one of "
                         f"{sorted(forms)}")
    return forms[algorithm]


# ---------------------------------------------------------------------------------------------
# predicting the real engine on this machine, from the alpha-beta-gamma model of mlsys.comm.cost

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


def main(argv: list[str] | None = None) -> int:
    p = cliargs.ArgumentParser(prog="mlsys sim collectives",
                               description="simulated vs measured all-reduce on this machine")
    p.add_argument("--ranks", type=cliargs.comma_list(cliargs.int_range(2, 256)), default=[2],
                   help="world sizes, comma-separated")
    p.add_argument("--sizes", type=cliargs.comma_list(cliargs.multiple_of(4, 4, 1 << 30)),
                   default=[4 << (2 * i) << 10 for i in range(6)],
                   help="message sizes in bytes (multiples of 4), comma-separated")
    p.add_argument("--algorithms", type=cliargs.comma_list(cliargs.one_of(list(ALGORITHMS)),
                                                           unique=True),
                   default=["ring", "recursive_doubling", "halving_doubling"],
                   help=f"among {', '.join(ALGORITHMS)}")
    p.add_argument("--calibration", type=cliargs.input_file,
                   help="JSON from 'mlsys comm calibrate --json' (default: fit alpha, beta, gamma "
                   "to this run's rows)")
    p.add_argument("--repeat", type=cliargs.int_range(1, 100), default=3,
                   help="runs per row; the best is kept")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ns = p.parse_args(argv)
    ranks, sizes, algorithms = ns.ranks, ns.sizes, ns.algorithms
    model = None
    if ns.calibration:  # read before measuring: a bad file fails at once
        try:
            model = load_calibration(ns.calibration)
        except (ValueError, OSError) as error:
            return cliargs.fail(p.prog, f"argument --calibration: {error}")
    rows = measure(ranks, sizes, algorithms, ns.repeat)
    if model is not None:
        source = f"from {ns.calibration}"
    else:
        model, source = fit(rows), "fitted to this run's rows (in-sample)"
    out = []
    for r in rows:
        predicted = predict(model, r["algorithm"], r["ranks"], r["bytes"])
        out.append({**r, "measured_us": r["seconds"] * 1e6, "predicted_us": predicted * 1e6,
                    "error": predicted / r["seconds"] - 1})
    errors = [abs(r["error"]) for r in out]
    notes = [f"model {source}: {model.describe()}",
             f"|error|: median {np.median(errors):.1%}, max {max(errors):.1%}"]
    print(emit(out, as_json=ns.json, title="all-reduce: simulated vs measured (mlsys.comm)",
               columns=["ranks", "algorithm", "bytes", "measured_us", "predicted_us", "error"],
               notes=notes))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
