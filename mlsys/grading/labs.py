"""The labs that ship with the package: discovery, metadata and their student versions.

Each lab is a folder ``labs/<name>/`` at the top of the repository holding ``<name>.ipynb`` (the
source, in nbgrader's format, with the reference solution and hidden tests) and any data files it
needs. ``mlsys/grading/builtin_labs`` is a symbolic link to ``labs/``, so a wheel carries real
copies of them and ``mlsys lab`` works from a ``pip install``; an instructor who keeps private
labs points ``--source`` at a folder laid out the same way.
"""

from __future__ import annotations

import ast
import posixpath
import shutil
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from . import notebook
from .notebook import GradedTest, LabFormatError

BUILTIN_LABS = Path(__file__).resolve().parent / "builtin_labs"
#: Where the built-in labs' relative links point once a notebook leaves the repository.
REPOSITORY_URL = "https://github.com/mlsys-course/mlsys/blob/main/"
DEFAULT_CELL_TIMEOUT = 60.0
DEFAULT_TIMEOUT = 300.0


@dataclass(frozen=True)
class Graded:
    """A name the tests call in the learner's kernel: a function or class the learner writes
    (``helper`` False), or an instructor's helper that must run there (``helper`` True, e.g. one
    that launches the learner's CUDA kernel). ``forbid`` lists the library paths (``pkg.mod.name``
    prefixes) and method names (``.name``) the learner's version may not reach, ``allow`` the
    exceptions to them (see :mod:`.analysis`)."""

    name: str
    helper: bool = False
    forbid: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()


def defined_names(source: str) -> list[str]:
    """Names a cell binds at its top level (functions, classes, assignments)."""
    try:
        tree: ast.Module | None = ast.parse(source)
    except SyntaxError:  # IPython syntax (a magic): convert it first
        from .analysis import parse_cell

        tree = parse_cell(source)
    names: list[str] = []
    for node in tree.body if tree is not None else []:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names += [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]
    return list(dict.fromkeys(names))


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise LabFormatError(f"{where} must be a list of non-empty strings, got {value!r:.100}")
    return tuple(value)


@dataclass
class Lab:
    """One lab: its source notebook and the files that travel with it."""

    name: str
    folder: Path
    source: Any = field(repr=False)

    @classmethod
    def load(cls, folder: Path) -> Lab:
        folder = Path(folder)
        path = folder / f"{folder.name}.ipynb"
        if not path.is_file():
            raise LabFormatError(f"lab folder {folder} has no {path.name}")
        source = notebook.read(path)
        lab = cls(folder.name, folder, source)
        if lab.meta.get("lab") != lab.name:
            raise LabFormatError(f"{path}: metadata.mlsys.lab must be {lab.name!r}, got "
                                 f"{lab.meta.get('lab')!r}")
        if not lab.tests:
            raise LabFormatError(f"{path}: a lab needs at least one graded test cell")
        minutes = lab.meta.get("minutes")
        if not isinstance(minutes, int) or isinstance(minutes, bool) or minutes <= 0:
            raise LabFormatError(f"{path}: metadata.mlsys.minutes (the estimated time) must be a "
                                 f"positive int, got {minutes!r}")
        lab.interface  # noqa: B018 (reading it validates every cell's mlsys metadata)
        _strings(lab.meta.get("types", []), f"{path}: metadata.mlsys.types")
        return lab

    @property
    def meta(self) -> dict:
        return dict(self.source.metadata.get("mlsys", {}))

    @property
    def title(self) -> str:
        return str(self.meta.get("title", self.name))

    @property
    def chapter(self) -> str:
        return str(self.meta.get("chapter", ""))

    @cached_property
    def tests(self) -> list[GradedTest]:
        return notebook.graded_tests(self.source, f"lab {self.name}")

    @property
    def points(self) -> float:
        return sum(t.points for t in self.tests)

    @property
    def minutes(self) -> int:
        """The estimated time to complete the lab, in minutes."""
        return int(self.meta["minutes"])

    @property
    def types(self) -> list[str]:
        """Library types (``module.QualName``) the lab's functions exchange besides the built-in
        ones of :mod:`.wire`."""
        return list(self.meta.get("types", []))

    @cached_property
    def interface(self) -> dict[str, Graded]:
        """The names tests call in the learner's kernel: every name a solution cell defines, and
        those of locked cells marked ``metadata.mlsys.kernel``."""
        out: dict[str, Graded] = {}
        for i, cell in enumerate(self.source.cells):
            meta, where = notebook.mlsys_meta(cell), f"{self.folder.name} cell {i} metadata.mlsys"
            solution = bool(notebook.nbgrader_meta(cell).get("solution"))
            helper = notebook.is_locked(cell) and meta.get("kernel") is True
            if cell.get("cell_type") != "code" or not (solution or helper):
                continue
            forbid = _strings(meta.get("forbid", []), f"{where}.forbid")
            allow = _strings(meta.get("allow", []), f"{where}.allow")
            for name in defined_names(cell.source):
                out[name] = Graded(name, helper, () if helper else forbid, () if helper else allow)
        return out

    @property
    def link_base(self) -> str:
        """What the notebook's relative links are relative to, once it is copied elsewhere: the
        repository on the web for built-in labs, the lab's folder on this machine otherwise."""
        if self.folder.parent.resolve() == BUILTIN_LABS.resolve():
            return f"{REPOSITORY_URL}labs/{self.name}/"
        return self.folder.resolve().as_uri() + "/"

    def absolute_link(self, target: str) -> str:
        base = self.link_base
        scheme, _, path = base.partition("://")
        host, _, folder = path.partition("/")
        return f"{scheme}://{host}{posixpath.normpath(posixpath.join('/' + folder, target))}"

    @property
    def cell_timeout(self) -> float:
        return float(self.meta.get("cell_timeout", DEFAULT_CELL_TIMEOUT))

    @property
    def timeout(self) -> float:
        return float(self.meta.get("timeout", DEFAULT_TIMEOUT))

    @property
    def env(self) -> dict[str, str]:
        """Environment variables for the kernel (e.g. ``NUMBA_ENABLE_CUDASIM``)."""
        return {str(k): str(v) for k, v in self.meta.get("env", {}).items()}

    @property
    def data_files(self) -> list[Path]:
        """Files next to the source notebook that the lab's cells read (never notebooks)."""
        return sorted(p for p in self.folder.iterdir()
                      if p.is_file() and p.suffix != ".ipynb" and not p.name.startswith(("_", ".")))

    def student_notebook(self, secret_id: str | None = None) -> Any:
        """The student version, its relative links made absolute; ``secret_id`` (see
        :func:`mlsys.grading.checks.secret_id`) records which class secret it was released for."""
        nb = notebook.absolute_links(notebook.student_version(self.source, f"lab {self.name}"),
                                     self.absolute_link)
        if secret_id is not None:
            nb.metadata["mlsys"]["secret_id"] = secret_id
        return nb

    def write_student_version(self, folder: Path, *, force: bool = False,
                              secret_id: str | None = None) -> Path:
        """Write ``<name>.ipynb`` (student version) and the lab's data files into ``folder``."""
        folder = Path(folder)
        target = folder / f"{self.name}.ipynb"
        if target.exists() and not force:
            raise FileExistsError(f"{target} exists; it may hold your work (use --force to "
                                  f"overwrite it)")
        folder.mkdir(parents=True, exist_ok=True)
        notebook.write(self.student_notebook(secret_id), target)
        for data in self.data_files:
            shutil.copy2(data, folder / data.name)
        return target


def available(source: Path | None = None) -> dict[str, Lab]:
    """All labs in ``source`` (default: the labs shipped with the package), by name."""
    root = Path(source) if source is not None else BUILTIN_LABS
    if not root.is_dir():
        raise FileNotFoundError(f"lab source folder {root} does not exist")
    return {p.name: Lab.load(p) for p in sorted(root.iterdir())
            if p.is_dir() and (p / f"{p.name}.ipynb").is_file()}


def get(name: str, source: Path | None = None) -> Lab:
    """The lab called ``name``, with an error listing the known labs otherwise."""
    labs = available(source)
    if name not in labs:
        raise KeyError(f"unknown lab {name!r}; available labs: {', '.join(labs) or 'none'}")
    return labs[name]
