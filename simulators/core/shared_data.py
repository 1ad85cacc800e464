"""Locate the course's shared research data (``shared/data``) for tests and chapters.

The pip-installed library never needs these files; chapters and tests read public traces from
them. The folder is found from ``$MLSYS_SHARED_DATA`` or by looking for ``shared/data`` beside
(or inside) a parent of the current directory.
"""

from __future__ import annotations

import os
from pathlib import Path


def find_shared_data(start: str | Path | None = None) -> Path:
    """The ``shared/data`` folder, or a ``FileNotFoundError`` saying where it was looked for."""
    env = os.environ.get("MLSYS_SHARED_DATA")
    if env:
        path = Path(env)
        if path.is_dir():
            return path
        raise FileNotFoundError(f"MLSYS_SHARED_DATA={env} is not a directory")
    here = Path(start or Path.cwd()).resolve()
    tried = []
    for parent in (here, *here.parents):
        for candidate in (parent / "shared" / "data", parent.parent / "shared" / "data"):
            tried.append(str(candidate))
            if candidate.is_dir():
                return candidate
    raise FileNotFoundError("shared/data not found; set MLSYS_SHARED_DATA. Looked in: "
                            + ", ".join(dict.fromkeys(tried)))
