"""What a submission's code can reach, read from its syntax tree (it is never run here).

Two questions, answered statically over the cells that run in the learner's kernel:

* **Does a graded function use the library's own implementation of its task?** Starting from a
  graded name, :class:`Analysis` follows everything its definition can reach: module-level
  assignments and aliases, imports (``import a.b as c``, ``from a import b``), attribute chains,
  subscripts and ``getattr`` with constant names, other functions and classes of the notebook
  (wrappers), decorators, default values, nested functions. Every library path it reaches is
  compared with the task's forbidden patterns: ``pkg.module.name`` prefixes (matched on the
  path as written and on where the object really lives, so re-exports do not hide it),
  ``.attr`` method names (``.backward`` matches ``loss.backward()``) and ``notebook.name`` for
  helpers the lab's own instructor cells define (a test's measuring helper, say). Dynamic lookups the
  analysis cannot follow (``eval``, ``exec``, ``__import__``, ``importlib``, ``getattr`` with a
  computed name, ``globals()``, ``sys.modules``, frames, ``gc``, ``ctypes``, dunder attributes)
  count against the task too: a grade cannot rest on code the grader cannot read.
* **Does the submission patch anything?** Assignments to attributes or items of imported
  modules and library objects, ``setattr``/``delattr``, and the same dynamic lookups, anywhere in
  the learner's cells. They are reported for review; they cannot change an out-of-process check,
  but they do void measurements taken inside the kernel.

Cells are converted from IPython syntax (magics, ``!`` commands) to Python first; a cell that
still does not parse binds nothing (it fails in the kernel too).
"""

from __future__ import annotations

import ast
import importlib
import sys
import types
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Calls the analysis cannot see through.
OPAQUE_CALLS = {"eval", "exec", "compile", "__import__", "globals", "vars", "setattr", "delattr",
                "breakpoint"}
#: Library paths the analysis cannot see through (prefixes).
OPAQUE_PATHS = ("importlib", "sys.modules", "sys._getframe", "sys.settrace", "sys.setprofile",
                "inspect", "gc", "ctypes", "builtins", "types.FunctionType", "types.CodeType",
                "types.ModuleType", "_thread", "operator.attrgetter", "operator.methodcaller")
#: Dunder attributes ordinary code uses.
PLAIN_DUNDERS = {"__init__", "__name__", "__qualname__", "__doc__", "__version__", "__len__",
                 "__call__", "__enter__", "__exit__", "__iter__", "__next__", "__getitem__"}
#: Packages whose modules the analysis may import to find where an object really lives.
LIBRARIES = ("mlsys", "simulators")
#: The path prefix of names the instructor's cells define (``notebook.helper`` in a forbid list).
NOTEBOOK = "notebook"


@dataclass(frozen=True)
class Use:
    """One thing the code reaches: what it is and where (cell index, line)."""

    what: str
    cell: int
    line: int

    def where(self) -> str:
        return f"cell {self.cell + 1}, line {self.line}"


@dataclass
class _Reach:
    paths: list[Use] = field(default_factory=list)
    attrs: list[Use] = field(default_factory=list)
    opaque: list[Use] = field(default_factory=list)
    patches: list[Use] = field(default_factory=list)


@dataclass
class _Binding:
    kind: str  # "import" (value: a path), "def" (a FunctionDef/ClassDef/Lambda), "expr"
    value: Any
    scope: _Scope | None
    cell: int
    trusted: bool
    line: int = 0


class _Scope:
    def __init__(self, parent: _Scope | None) -> None:
        self.parent = parent
        self.names: dict[str, list[_Binding]] = {}

    def bind(self, name: str, binding: _Binding) -> None:
        self.names.setdefault(name, []).append(binding)

    def lookup(self, name: str) -> list[_Binding]:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name]
            scope = scope.parent
        return []


def parse_cell(source: str) -> ast.Module | None:
    """The cell as a Python syntax tree (IPython syntax converted), or None if it cannot parse."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        source = TransformerManager().transform_cell(source)
    except Exception:  # IPython missing or confused: parse the text as it is
        pass
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError):
        return None


class Analysis:
    """The static analysis of one notebook: ``cells`` are ``(source, trusted)`` in run order,
    where trusted cells are the instructor's (their function bodies are not inspected)."""

    def __init__(self, cells: Sequence[tuple[str, bool]]) -> None:
        self.module = _Scope(None)
        self.trees: list[tuple[ast.Module | None, bool]] = []
        for index, (source, trusted) in enumerate(cells):
            tree = parse_cell(source)
            self.trees.append((tree, trusted))
            if tree is not None:
                _collect(tree.body, self.module, index, trusted)

    def defined_by_learner(self, name: str) -> bool:
        return any(not b.trusted for b in self.module.names.get(name, []))

    def reach(self, name: str) -> _Reach:
        """Everything the learner's bindings of ``name`` can reach."""
        walker = _Walker(self)
        for binding in self.module.names.get(name, []):
            if not binding.trusted:
                walker.follow(binding)
        return walker.reach

    def learner_names_used_by(self, name: str) -> set[str]:
        """Module-level names the instructor's definition of ``name`` refers to that the learner
        defines (a kernel-side helper that calls the learner's function)."""
        found = set()
        for binding in self.module.names.get(name, []):
            if binding.kind in ("def", "expr"):
                for node in ast.walk(binding.value):
                    if isinstance(node, ast.Name) and self.defined_by_learner(node.id):
                        found.add(node.id)
        return found

    def patches(self) -> list[Use]:
        """Patching and dynamic lookups anywhere in the learner's cells."""
        walker = _Walker(self, follow_names=False)
        for index, (tree, trusted) in enumerate(self.trees):
            if tree is not None and not trusted:
                walker.cell = index
                for statement in tree.body:
                    walker.statement(statement, self.module)
        return walker.reach.patches + walker.reach.opaque

    def violations(self, name: str, forbid: Sequence[str], allow: Sequence[str] = ()) -> list[str]:
        """Why ``name`` may not be graded: forbidden library paths and method names it reaches,
        and lookups the analysis cannot follow; empty when it is clean."""
        reach = self.reach(name)
        patterns = Patterns(forbid, allow)
        found = []
        for use in reach.paths:
            hit = patterns.match_path(use.what)
            if hit:
                found.append(f"uses {hit} ({use.where()})")
        for use in reach.attrs:
            if patterns.match_attr(use.what):
                found.append(f"calls .{use.what} ({use.where()})")
        found += [f"uses {use.what}, which the grader cannot follow ({use.where()})"
                  for use in reach.opaque]
        return list(dict.fromkeys(found))


class Patterns:
    """Forbidden library paths (``pkg.mod.name`` prefixes) and method names (``.name``), with
    exceptions; a path and a pattern match as written or where their objects really live."""

    def __init__(self, forbid: Iterable[str], allow: Iterable[str] = ()) -> None:
        forbid = list(forbid)
        self.attrs = {p[1:] for p in forbid if p.startswith(".")}
        self.paths = _spellings(p for p in forbid if not p.startswith("."))
        self.allow = _spellings(allow)

    def match_path(self, path: str) -> str | None:
        """The forbidden path ``path`` reaches, or None; a path allowed under any of its
        spellings is never forbidden."""
        candidates = [c for c in dict.fromkeys([path, canonical(path)]) if c is not None]
        if any(_under(c, a) for c in candidates for a in self.allow):
            return None
        for candidate in candidates:
            if any(_under(candidate, pattern) for pattern in self.paths):
                return candidate
        return None

    def match_attr(self, attr: str) -> bool:
        return attr in self.attrs


def _spellings(patterns: Iterable[str]) -> list[str]:
    """Each pattern as written and where its object lives (``simulators.training.Slot`` is also
    ``mlsys.parallel.schedules.Slot`` when that is where the class is defined)."""
    out = []
    for pattern in patterns:
        out += [p for p in (pattern, canonical(pattern)) if p is not None]
    return list(dict.fromkeys(out))


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith((prefix + ".", prefix + "["))


def canonical(path: str) -> str | None:
    """Where the library object at ``path`` is defined (``module.qualname``), following
    re-exports; None for paths outside the library or that do not resolve."""
    root = path.split(".", 1)[0].split("[", 1)[0]
    if root not in LIBRARIES:
        return None
    parts = path.split("[", 1)[0].split(".")
    obj: Any = None
    for i in range(len(parts), 0, -1):  # the longest importable module prefix
        name = ".".join(parts[:i])
        try:
            obj = sys.modules.get(name) or importlib.import_module(name)
        except Exception:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return None
        break
    if obj is None:
        return None
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str):
        return f"{module}.{qualname}"
    for name, mod in list(sys.modules.items()):  # a data object: the library module holding it
        if name.split(".", 1)[0] in LIBRARIES and mod is not None:
            for key, value in list(vars(mod).items()):
                if value is obj and not key.startswith("_"):
                    return f"{name}.{key}"
    return None


def _collect(body: Iterable[ast.stmt], scope: _Scope, cell: int, trusted: bool) -> None:
    """Record the bindings a block of statements makes in ``scope`` (not inside nested defs)."""
    for node in _statements(body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            scope.bind(node.name, _Binding("def", node, scope, cell, trusted))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    scope.bind(alias.asname, _Binding("import", alias.name, scope, cell, trusted,
                                                      node.lineno))
                else:
                    top = alias.name.split(".")[0]
                    scope.bind(top, _Binding("import", top, scope, cell, trusted, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            base = ("." * node.level) + (node.module or "")
            for alias in node.names:
                if alias.name != "*":
                    scope.bind(alias.asname or alias.name, _Binding(
                        "import", f"{base}.{alias.name}", scope, cell, trusted, node.lineno))
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.NamedExpr)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if node.value is not None:
                for target in targets:
                    for name in _names(target):
                        scope.bind(name, _Binding("expr", node.value, scope, cell, trusted))
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
            for name in _names(node.target):
                scope.bind(name, _Binding("expr", node.iter, scope, cell, trusted))
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if item.optional_vars is not None:
                    for name in _names(item.optional_vars):
                        scope.bind(name, _Binding("expr", item.context_expr, scope, cell, trusted))


def _statements(body: Iterable[ast.AST]) -> Iterator[ast.AST]:
    """Every node of a block that binds in its scope, descending into compound statements and
    expressions (walrus, comprehensions) but not into nested function or class bodies."""
    stack = list(body)[::-1]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        stack.extend(list(ast.iter_child_nodes(node))[::-1])


def _names(target: ast.AST) -> list[str]:
    """The names an assignment target binds (``a``, ``a, *b``; not the ``a`` of ``a.x = ...``)."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for element in target.elts for n in _names(element)]
    if isinstance(target, ast.Starred):
        return _names(target.value)
    return []


def _const_str(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


class _Walker:
    """Walks definitions and records what they reach (following names into their bindings)."""

    def __init__(self, analysis: Analysis, follow_names: bool = True) -> None:
        self.analysis, self.follow_names = analysis, follow_names
        self.reach = _Reach()
        self.seen: set[int] = set()
        self._values: dict[tuple[int, int], set[str]] = {}
        self._scopes: list[_Scope] = []  # kept alive: the memo is keyed by their ids
        self.cell = 0

    def follow(self, binding: _Binding) -> None:
        if id(binding.value) in self.seen or binding.trusted:
            return
        self.seen.add(id(binding.value))
        cell, self.cell = self.cell, binding.cell
        if binding.kind == "def":
            self.definition(binding.value, binding.scope)
        elif binding.kind == "expr":
            self.expr(binding.value, binding.scope)
        elif binding.kind == "import":
            self._path(binding.value, binding.line)
        self.cell = cell

    # -- definitions and statements ---------------------------------------------------------
    def definition(self, node: ast.AST, scope: _Scope) -> None:
        if isinstance(node, ast.ClassDef):
            for expr in [*node.bases, *[k.value for k in node.keywords], *node.decorator_list]:
                self.expr(expr, scope)
            inner = self._scope(scope)
            _collect(node.body, inner, self.cell, False)
            for statement in node.body:
                self.statement(statement, inner)
            return
        args = node.args
        for expr in [*args.defaults, *[d for d in args.kw_defaults if d is not None],
                     *getattr(node, "decorator_list", [])]:
            self.expr(expr, scope)
        inner = self._scope(scope)
        for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if a is not None:
                inner.bind(a.arg, _Binding("param", None, inner, self.cell, False))
        body = node.body if isinstance(node.body, list) else [node.body]
        declared_global = {n for s in ast.walk(node) if isinstance(s, ast.Global) for n in s.names}
        _collect([s for s in body], inner, self.cell, False)
        for name in declared_global:
            inner.names.pop(name, None)
        for statement in body:
            if isinstance(statement, ast.expr):
                self.expr(statement, inner)
            else:
                self.statement(statement, inner)

    def _scope(self, parent: _Scope) -> _Scope:
        scope = _Scope(parent)
        self._scopes.append(scope)
        return scope

    def statement(self, node: ast.AST, scope: _Scope) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            self.definition(node, scope)
            return
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = (node.targets if isinstance(node, (ast.Assign, ast.Delete))
                       else [node.target])
            for target in targets:
                self._store(target, scope)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                base = ("." * node.level + (node.module or "")) if isinstance(
                    node, ast.ImportFrom) else ""
                self._path(f"{base}.{alias.name}" if base else alias.name, node.lineno)
            return
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                self.statement(child, scope)
            elif isinstance(child, ast.expr):
                self.expr(child, scope)
            elif isinstance(child, (ast.excepthandler, ast.withitem, ast.match_case,
                                    ast.comprehension, ast.keyword, ast.arguments)):
                self.statement(child, scope)

    def _store(self, target: ast.AST, scope: _Scope) -> None:
        if isinstance(target, (ast.Tuple, ast.List, ast.Starred)):
            for element in ast.iter_child_nodes(target):
                self._store(element, scope)
        elif isinstance(target, (ast.Attribute, ast.Subscript)):
            paths = self.values(target.value, scope)
            what = target.attr if isinstance(target, ast.Attribute) else "[...]"
            for path in paths:
                self.reach.patches.append(Use(f"an assignment to {path}.{what}".replace(".[", "["),
                                              self.cell, target.lineno))

    # -- expressions --------------------------------------------------------------------------
    def expr(self, node: ast.AST, scope: _Scope) -> None:
        if isinstance(node, ast.Lambda):
            self.definition(node, scope)
            return
        for sub in _expr_nodes(node):
            line = getattr(sub, "lineno", 0)
            if isinstance(sub, ast.Lambda):
                self.definition(sub, scope)
            elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load):
                bindings = scope.lookup(sub.id)
                if not bindings and sub.id in OPAQUE_CALLS | {"__builtins__"}:
                    self.reach.opaque.append(Use(f"{sub.id}", self.cell, line))
                for path in self.values(sub, scope):
                    self._path(path, line)
                if any(b.trusted and b.kind in ("def", "expr") for b in bindings):
                    self._path(f"{NOTEBOOK}.{sub.id}", line)  # an instructor's helper
                if self.follow_names:
                    for binding in bindings:
                        if binding.kind in ("def", "expr"):
                            self.follow(binding)
            elif isinstance(sub, ast.Attribute):
                if sub.attr.startswith("__") and sub.attr.endswith("__") and \
                        sub.attr not in PLAIN_DUNDERS:
                    self.reach.opaque.append(Use(f".{sub.attr}", self.cell, line))
                self.reach.attrs.append(Use(sub.attr, self.cell, line))
                for path in self.values(sub, scope):
                    self._path(path, line)
            elif isinstance(sub, ast.Subscript):
                for path in self.values(sub, scope):
                    self._path(path, line)
            elif isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and \
                    sub.func.id == "getattr" and not scope.lookup("getattr"):
                name = _const_str(sub.args[1]) if len(sub.args) > 1 else None
                if name is None:
                    self.reach.opaque.append(Use("getattr with a computed name", self.cell, line))
                else:
                    self.reach.attrs.append(Use(name, self.cell, line))
                    for path in self.values(sub, scope):
                        self._path(path, line)

    def _path(self, path: str, line: int) -> None:
        self.reach.paths.append(Use(path, self.cell, line))
        if any(_under(path, p) for p in OPAQUE_PATHS):
            self.reach.opaque.append(Use(path, self.cell, line))

    def values(self, node: ast.AST, scope: _Scope) -> set[str]:
        """The library paths ``node`` may evaluate to (empty when none is known); memoized, and a
        value defined in terms of itself (``x = x.y`` in a loop) resolves to what is known."""
        key = (id(node), id(scope))
        if key not in self._values:
            self._values[key] = set()  # while in progress: breaks cycles
            self._values[key] = self._evaluate(node, scope)
        return self._values[key]

    def _evaluate(self, node: ast.AST, scope: _Scope) -> set[str]:
        if isinstance(node, ast.Name):
            out: set[str] = set()
            for binding in scope.lookup(node.id):
                if binding.kind == "import":
                    out.add(binding.value)
                elif binding.kind == "expr":
                    out |= self.values(binding.value, binding.scope)
            return out
        if isinstance(node, ast.Attribute):
            return {f"{p}.{node.attr}" for p in self.values(node.value, scope)}
        if isinstance(node, ast.Subscript):
            key = node.slice
            text = repr(key.value) if isinstance(key, ast.Constant) else "..."
            return {f"{p}[{text}]" for p in self.values(node.value, scope)}
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id == "getattr" and len(node.args) >= 2 and _const_str(node.args[1]):
            name = _const_str(node.args[1])
            return {f"{p}.{name}" for p in self.values(node.args[0], scope)}
        if isinstance(node, (ast.IfExp, ast.BoolOp)):
            parts = [node.body, node.orelse] if isinstance(node, ast.IfExp) else node.values
            return set().union(*(self.values(p, scope) for p in parts))
        if isinstance(node, ast.NamedExpr):
            return self.values(node.value, scope)
        return set()


def _expr_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """The nodes of an expression; a lambda is yielded but not entered (it is a definition)."""
    stack = [node]
    while stack:
        sub = stack.pop()
        yield sub
        if not isinstance(sub, ast.Lambda):
            stack.extend(ast.iter_child_nodes(sub))
