"""``mlsys bench sim``: wall time and events per second of the standard simulator scenarios.

Scenarios come from each simulator family's own ``bench`` module (training and scheduling); each
exposes ``scenarios(quick: bool) -> list[dict]`` returning one row per scenario. The scheduling
family also replays the Pollux artifact's workloads per elastic policy, against the artifact's own
mean JCTs (a second table; under ``"pollux"`` in JSON).
"""

from __future__ import annotations

import importlib
import json

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
    if args.only not in (None, "scheduling"):
        print(emit(rows, as_json=args.json, title="Simulator performance"))
        return 0
    from simulators.scheduling import bench as scheduling

    pollux = scheduling.pollux_rows(quick=args.quick)
    if args.json:
        print(json.dumps({"title": "Simulator performance", "rows": rows, "notes": [],
                          "pollux": {"title": scheduling.POLLUX_TITLE, "rows": pollux,
                                     "notes": list(scheduling.POLLUX_NOTES)}}, indent=2))
    else:
        print(emit(rows, as_json=False, title="Simulator performance"))
        print()
        print(emit(pollux, as_json=False, title=scheduling.POLLUX_TITLE, notes=scheduling.POLLUX_NOTES))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(__import__("sys").argv[1:]))
