"""The ``mlsys`` command: it only routes; each package owns and registers its commands.

A command is an entry point in the ``mlsys.commands`` group whose name is the command's words and
whose object is a ``main(argv: list[str]) -> int`` (in ``pyproject.toml``)::

    [project.entry-points."mlsys.commands"]
    "bench allreduce" = "mlsys.comm.bench:main"

so adding a command is one line there, and any installed package may add its own. ``mlsys --help``
lists them with a line from each module's docstring, read without importing the module, so it
stays fast; a command's module is imported only when it runs.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from importlib.machinery import PathFinder
from importlib.metadata import EntryPoint, entry_points

GROUP = "mlsys.commands"


def commands() -> dict[tuple[str, ...], EntryPoint]:
    """The registered commands: their words -> entry point."""
    return {tuple(ep.name.split()): ep for ep in entry_points(group=GROUP)}


def summary(ep: EntryPoint) -> str:
    """What the command does, from its module's docstring, read without importing the module:
    the sentence after ````mlsys WORDS``:`` where there is one, else the first line."""
    try:
        parts = ep.module.split(".")
        spec = importlib.util.find_spec(parts[0])
        for i in range(1, len(parts)):
            spec = PathFinder.find_spec(".".join(parts[: i + 1]), spec.submodule_search_locations)
        with open(spec.origin, encoding="utf-8") as source:
            doc = ast.get_docstring(ast.parse(source.read())) or ""
    except (AttributeError, ImportError, OSError, SyntaxError, TypeError, ValueError):
        return ""
    text = " ".join(doc.split())
    own = re.search(rf"``mlsys {re.escape(ep.name)}``: ([^.]*)", text)
    return own.group(1) if own else " ".join(doc.split("\n\n")[0].split()).rstrip(".")


def usage(table: dict[tuple[str, ...], EntryPoint], group: str | None = None) -> str:
    shown = {w: ep for w, ep in sorted(table.items()) if group is None or w[0] == group}
    width = max((len(" ".join(w)) for w in shown), default=0) + 2
    lines = [f"usage: mlsys {group or 'COMMAND'} {'SUBCOMMAND ' if group else ''}[ARGS...]", "",
             "commands:"]
    lines += [f"  {' '.join(w):<{width}}{summary(ep)}" for w, ep in shown.items()]
    lines.append("\nRun 'mlsys COMMAND --help' for a command's options.")
    return "\n".join(lines)


def _fail(message: str, prog: str = "mlsys") -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mlsys`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    table = commands()
    if not table:
        return _fail(f"no commands are registered in the {GROUP!r} entry-point group; "
                     "is mlsys installed (pip install -e .)?")
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(table))
        return 0
    if argv[0] == "--version":
        from . import __version__

        print(f"mlsys {__version__}")
        return 0
    for words in sorted(table, key=len, reverse=True):
        if tuple(argv[: len(words)]) == words:
            try:
                return int(table[words].load()(argv[len(words):]) or 0)
            except KeyboardInterrupt:
                print("mlsys: interrupted", file=sys.stderr)
                return 130
    groups = sorted({w[0] for w in table})
    if argv[0] not in groups:
        return _fail(f"unknown command {argv[0]!r}; expected one of {', '.join(groups)} "
                     "(see 'mlsys --help')")
    if len(argv) > 1 and argv[1] in ("-h", "--help"):
        print(usage(table, argv[0]))
        return 0
    subs = sorted(w[1] for w in table if w[0] == argv[0] and len(w) > 1)
    got = repr(argv[1]) if len(argv) > 1 else "nothing"
    return _fail(f"expected one of {', '.join(subs)}, got {got}", f"mlsys {argv[0]}")


if __name__ == "__main__":
    sys.exit(main())
