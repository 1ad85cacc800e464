"""``mlsys comm calibrate``: measure all-reduce on this machine and fit the alpha-beta-gamma model.

Every algorithm is timed over a range of message sizes on real processes; one
:class:`~mlsys.comm.cost.CostModel` is fitted to all of them (each measurement described by its
schedule's :func:`~mlsys.comm.cost.terms`), and the table shows measured against predicted time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict

from .. import cliargs
from ..bench.report import emit
from .bench import MAX_BYTES, collect
from .cost import CostModel, fit, terms
from .schedules import ALGORITHMS
from .shm import MAX_RANKS

DEFAULT_SIZES = tuple(4 << (2 * i) << 10 for i in range(6))  # 4 KiB .. 4 MiB
DEFAULT_ALGORITHMS = ("ring", "halving_doubling", "recursive_doubling", "double_binary_tree")
ITEMSIZE = 4  # float32


def calibrate(world_size: int = 4, sizes: Sequence[int] = DEFAULT_SIZES,
              algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
              budget_bytes: float = 5e7) -> tuple[CostModel, list[dict]]:
    """Measure every algorithm at every size on ``world_size`` processes and fit the model.

    Returns the model and one row per measurement with measured and predicted microseconds.
    """
    measured = collect([world_size], sizes, algorithms, baselines=False,
                       budget_bytes=budget_bytes)
    for row in measured:
        row["algorithm"] = row["impl"].removeprefix("mlsys ")
        schedule = ALGORITHMS[row["algorithm"]](world_size, row["bytes"] // ITEMSIZE)
        row["terms"] = terms(schedule, ITEMSIZE)
    model = fit([(r["terms"], r["time_us"] * 1e-6) for r in measured])
    rows = [{"ranks": r["ranks"], "algorithm": r["algorithm"], "size": r["size"],
             "bytes": r["bytes"], "measured_us": r["time_us"],
             "predicted_us": model.predict(r["terms"]) * 1e6,
             "ratio": model.predict(r["terms"]) * 1e6 / r["time_us"]} for r in measured]
    return model, rows


def plot(rows: Sequence[dict], path: str | None = None):  # noqa: ANN201 - a matplotlib Figure
    """Measured (dots) and predicted (lines) time over message size, one colour per algorithm."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, algorithm in enumerate(dict.fromkeys(r["algorithm"] for r in rows)):
        mine = [r for r in rows if r["algorithm"] == algorithm]
        sizes = [r["bytes"] for r in mine]
        ax.loglog(sizes, [r["measured_us"] for r in mine], "o", color=f"C{i}", label=algorithm)
        ax.loglog(sizes, [r["predicted_us"] for r in mine], "-", color=f"C{i}")
    ax.set_xlabel("message size (bytes)")
    ax.set_ylabel("all-reduce time (us)")
    ax.set_title(f"all-reduce on {rows[0]['ranks']} processes: measured (dots) vs model (lines)")
    ax.legend()
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=120)
    return fig


def main(argv: list[str]) -> int:
    """``mlsys comm calibrate [-n N] [--sizes ...] [--algorithms ...] [--plot FILE] [--json]``."""
    parser = cliargs.ArgumentParser(prog="mlsys comm calibrate",
                                    description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--ranks", type=cliargs.int_range(2, MAX_RANKS), default=4,
                        help="number of processes")
    parser.add_argument("--sizes", type=cliargs.comma_list(cliargs.multiple_of(4, 4, MAX_BYTES),
                                                           unique=True),
                        default=list(DEFAULT_SIZES), help="message sizes in bytes, comma-separated")
    parser.add_argument("--algorithms", type=cliargs.comma_list(cliargs.one_of(list(ALGORITHMS)),
                                                                unique=True),
                        default=list(DEFAULT_ALGORITHMS),
                        help=f"algorithms among {', '.join(ALGORITHMS)}")
    parser.add_argument("--plot", type=cliargs.output_file,
                        help="save the measured-vs-predicted plot to this file")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ns = parser.parse_args(argv)
    if len(ns.sizes) < 2 or len(ns.sizes) * len(ns.algorithms) < 3:
        parser.error(f"argument --sizes: the fit of alpha, beta and gamma needs at least 2 sizes "
                     f"and 3 measurements (sizes x algorithms), got {len(ns.sizes)} size(s) and "
                     f"{len(ns.algorithms)} algorithm(s)")
    model, rows = calibrate(ns.ranks, ns.sizes, ns.algorithms)
    columns = ["ranks", "algorithm", "size", "measured_us", "predicted_us", "ratio"]
    report = emit(rows, as_json=ns.json, title="alpha-beta-gamma fit of all-reduce",
                  columns=columns,
                  notes=[f"fitted: {model.describe()}", "ratio = predicted / measured"])
    if ns.json:  # the fitted model too, in seconds: what simulators.collectives loads
        report = json.dumps({"model": asdict(model), **json.loads(report)}, indent=2)
    print(report)
    if ns.plot:
        plot(rows, ns.plot)
    return 0
