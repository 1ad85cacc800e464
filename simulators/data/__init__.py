"""The public traces and reference tables the course reads, shipped as package data.

Each dataset folder under ``traces/`` or ``reference/`` has a ``SOURCE.md`` (origin, paper,
license, what was changed). Files larger than a few kilobytes are stored gzip-compressed
(``name.csv.gz``); :func:`data_path` finds a file by its uncompressed name and :func:`open_text`
reads either form. ``$MLSYS_DATA`` may point to a larger local copy laid out the same way (for
example a full trace you downloaded); it is searched first.
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path
from typing import TextIO

PACKAGE_DATA = Path(__file__).resolve().parent
DATA_ENV = "MLSYS_DATA"


def data_roots() -> list[Path]:
    """Where data is looked for: ``$MLSYS_DATA`` (if set) then the installed package."""
    env = os.environ.get(DATA_ENV)
    if env and not Path(env).is_dir():
        raise FileNotFoundError(f"{DATA_ENV}={env} is not a directory")
    return [Path(env), PACKAGE_DATA] if env else [PACKAGE_DATA]


def data_path(name: str | Path) -> Path:
    """The file for ``name`` (e.g. ``"traces/tiresias/60_job.csv"``), plain or ``.gz``."""
    name = Path(name)
    if name.is_absolute() or ".." in name.parts:
        raise ValueError(f"data name {str(name)!r} must be relative to the data folder, "
                         "like 'traces/tiresias/60_job.csv'")
    for root in data_roots():
        for candidate in (root / name, root / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(f"no dataset file {str(name)!r} (nor {name}.gz) in "
                            + ", ".join(str(r) for r in data_roots())
                            + "; list what ships with simulators.data.list_data()")


def list_data(prefix: str = "") -> list[str]:
    """Names of the shipped data files (uncompressed names) under ``prefix``."""
    names = set()
    for root in data_roots():
        for path in (root / prefix).rglob("*") if (root / prefix).is_dir() else []:
            if path.is_file() and path.suffix not in (".py", ".md", ".pyc"):
                relative = path.relative_to(root).as_posix()
                names.add(relative.removesuffix(".gz"))
    return sorted(names)


def resolve(path_or_name: str | Path) -> Path:
    """``path_or_name`` if it is an existing file, else the shipped file of that name.

    A shipped trace may be named with or without its ``traces/`` folder
    (``tiresias/60_job.csv`` or ``traces/tiresias/60_job.csv``).
    """
    path = Path(path_or_name)
    if path.is_file():
        return path
    if path.with_name(path.name + ".gz").is_file():
        return path.with_name(path.name + ".gz")
    if path.is_absolute() or ".." in path.parts:
        raise FileNotFoundError(f"file {path} does not exist")
    for name in (path, Path("traces") / path):
        try:
            return data_path(name)
        except FileNotFoundError:
            continue
    raise FileNotFoundError(f"{path} is neither a file nor a shipped dataset; "
                            "see simulators.data.list_data('traces')")


def file_stem(path: str | Path) -> str:
    """The name of ``path`` without ``.gz`` and its extension (``60_job`` for ``60_job.csv.gz``)."""
    path = Path(path)
    return Path(path.name.removesuffix(".gz")).stem


def open_text(path: str | Path) -> TextIO:
    """``path`` opened as UTF-8 text (a leading BOM dropped), decompressing ``.gz``.

    A file that is not UTF-8 raises ``ValueError`` naming the file and the byte offset.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file {path} does not exist")
    raw = gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")
    with raw:
        data = raw.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        bad = data[error.start:error.start + 1]
        raise ValueError(f"{path} is not UTF-8 text (byte {error.start}: {bad!r})") from None
    return io.StringIO(text, newline=None)


def read_text(path: str | Path) -> str:
    """The whole of ``path`` as text (see :func:`open_text`)."""
    with open_text(path) as handle:
        return handle.read()


__all__ = ["DATA_ENV", "PACKAGE_DATA", "data_path", "data_roots", "file_stem", "list_data", "open_text",
           "read_text", "resolve"]
