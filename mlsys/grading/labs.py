"""The labs that ship with the package: discovery, metadata and their student versions.

Each lab is a folder ``labs/<name>/`` at the top of the repository holding ``<name>.ipynb`` (the
source, in nbgrader's format, with the reference solution and hidden tests) and any data files it
needs. ``mlsys/grading/builtin_labs`` is a symbolic link to ``labs/``, so a wheel carries real
copies of them and ``mlsys lab`` works from a ``pip install``; an instructor who keeps private
labs points ``--source`` at a folder laid out the same way.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from . import notebook
from .notebook import GradedTest, LabFormatError

BUILTIN_LABS = Path(__file__).resolve().parent / "builtin_labs"
DEFAULT_CELL_TIMEOUT = 60.0
DEFAULT_TIMEOUT = 300.0


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

    def student_notebook(self) -> Any:
        return notebook.student_version(self.source, f"lab {self.name}")

    def write_student_version(self, folder: Path, *, force: bool = False) -> Path:
        """Write ``<name>.ipynb`` (student version) and the lab's data files into ``folder``."""
        folder = Path(folder)
        target = folder / f"{self.name}.ipynb"
        if target.exists() and not force:
            raise FileExistsError(f"{target} exists; it may hold your work (use --force to "
                                  f"overwrite it)")
        folder.mkdir(parents=True, exist_ok=True)
        notebook.write(self.student_notebook(), target)
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
