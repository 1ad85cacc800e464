"""``mlsys bench sim``: wall time and events per second of the standard simulator scenarios.

Scenarios come from each simulator family's own ``bench`` module (training and scheduling); each
exposes ``scenarios(quick: bool) -> list[dict]`` returning one row per scenario.
"""

from __future__ import annotations

import importlib

from mlsys import cliargs
from mlsys.bench.report import emit

FAMILIES = ("simulators.training.bench", "simulators.scheduling.bench", "simulators.serving.bench")


def main(argv: list[str]) -> int:
    p = cliargs.ArgumentParser(prog="mlsys bench sim", description=__doc__)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--quick", action="store_true", help="smaller scenarios (seconds, for tests)")
    p.add_argument("--only", choices=["training", "scheduling", "serving"], help="run one family")
    args = p.parse_args(argv)
    rows = []
    for module in FAMILIES:
        if args.only and args.only not in module:
            continue
        rows += importlib.import_module(module).scenarios(quick=args.quick)
    print(emit(rows, as_json=args.json, title="Simulator performance"))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(__import__("sys").argv[1:]))
