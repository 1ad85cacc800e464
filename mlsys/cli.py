"""The ``mlsys`` command: benchmarks, the process launcher, simulators and labs.

Each subcommand lives in the module that owns its capability and exposes ``main(argv) -> int``;
this file only routes to it, importing lazily so ``mlsys --help`` stays fast.
"""

from __future__ import annotations

import importlib
import sys

# command words -> (module, help). Each module defines ``main(argv: list[str]) -> int``.
COMMANDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("bench", "autodiff"): ("mlsys.bench.autodiff", "eager autodiff step vs numpy and PyTorch"),
    ("bench", "compile"): ("mlsys.graph.bench", "compiled vs eager training step, fusion, remat"),
    ("bench", "kernels"): ("mlsys.kernels.bench", "kernel GFLOP/s and GB/s vs libraries and roofline"),
    ("bench", "allreduce"): ("mlsys.comm.bench", "all-reduce bandwidth per algorithm (nccl-tests style)"),
    ("bench", "sim"): ("simulators.bench", "simulator speed on the standard scenarios"),
    ("bench", "grading"): ("mlsys.grading.bench", "grading throughput on a folder of submissions"),
    ("run",): ("mlsys.comm.launcher", "run a script on N processes: mlsys run -n 4 script.py"),
    ("comm", "calibrate"): ("mlsys.comm.calibrate", "fit the alpha-beta model on this machine"),
    ("sim", "train"): ("simulators.training.cli", "simulate a parallel training configuration"),
    ("sim", "collectives"): ("simulators.collectives", "simulated vs measured all-reduce on this machine"),
    ("sim", "schedule"): ("simulators.scheduling.cli", "replay a job trace under a scheduling policy"),
    ("lab",): ("mlsys.grading.cli", "list, get, check, release and grade labs"),
}


def _usage() -> str:
    lines = ["usage: mlsys COMMAND [ARGS...]", "", "commands:"]
    for words, (_, help_text) in COMMANDS.items():
        lines.append(f"  {' '.join(words):<18} {help_text}")
    lines.append("\nRun 'mlsys COMMAND --help' for a command's options.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mlsys`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        from . import __version__

        print(f"mlsys {__version__}")
        return 0
    for words, (module, _) in sorted(COMMANDS.items(), key=lambda kv: -len(kv[0])):
        if tuple(argv[: len(words)]) == words:
            return int(importlib.import_module(module).main(argv[len(words):]) or 0)
    groups = sorted({w[0] for w in COMMANDS})
    if argv[0] in groups:
        subs = [w[1] for w in COMMANDS if w[0] == argv[0] and len(w) > 1]
        got = argv[1] if len(argv) > 1 else "nothing"
        print(f"mlsys {argv[0]}: expected one of {', '.join(subs)}, got {got!r}", file=sys.stderr)
    else:
        print(f"mlsys: unknown command {argv[0]!r}\n\n{_usage()}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
