"""``mlsys sim collectives``: the real engine's all-reduce measured on this machine's processes
beside the schedules simulated on :func:`~.calibration.machine`, with the alpha-beta-gamma model
from ``mlsys comm calibrate --json`` output or fitted to the same run."""

from __future__ import annotations

import numpy as np

from mlsys import cliargs
from mlsys.bench.report import emit
from mlsys.comm.schedules import ALGORITHMS

from .calibration import fit, load_calibration, measure, predict


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
