"""The pass manager: run passes in order, verify after each, record what each one changed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..ir import Graph
from .constant_fold import fold_constants
from .cse import eliminate_common_subexpressions
from .dce import eliminate_dead_code
from .fusion import fuse_elementwise
from .simplify import simplify

Pass = Callable[[Graph], Graph]

DEFAULT_PASSES: tuple[Pass, ...] = (fold_constants, simplify, eliminate_common_subexpressions,
                                    eliminate_dead_code, fuse_elementwise, eliminate_dead_code)


@dataclass
class PassManager:
    """Compose passes. ``log`` (e.g. ``print``) receives one statistics line per pass, and the
    graph text too when ``show_graphs``; ``history`` keeps ``(pass name, stats)`` rows."""

    passes: Sequence[Pass] = DEFAULT_PASSES
    log: Callable[[str], Any] | None = None
    show_graphs: bool = False
    history: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def run(self, graph: Graph) -> Graph:
        graph.verify()
        self._note("input", graph)
        for p in self.passes:
            graph = p(graph).verify()
            self._note(getattr(p, "__name__", repr(p)), graph)
        return graph

    def _note(self, name: str, graph: Graph) -> None:
        stats = graph.stats()
        self.history.append((name, stats))
        if self.log is not None:
            line = ", ".join(f"{k}={v}" for k, v in stats.items())
            self.log(f"{name:<32} {line}")
            if self.show_graphs:
                self.log(graph.text())

    def table(self) -> list[dict[str, Any]]:
        """The history as rows for :func:`mlsys.bench.report.emit`."""
        return [{"pass": name, **stats} for name, stats in self.history]


def optimize(graph: Graph, passes: Sequence[Pass] = DEFAULT_PASSES) -> Graph:
    """Run ``passes`` over ``graph`` (verifying after each)."""
    return PassManager(passes).run(graph)
