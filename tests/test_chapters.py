"""Every chapter of the book executes from top to bottom (as the book build does).

One test per notebook, named by its file so ``-k 05`` selects chapter 5. Notebooks run in a fresh
kernel with the working directory ``chapters/``, exactly as Jupyter Book executes them.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

CHAPTERS = Path(__file__).resolve().parents[1] / "chapters"
NOTEBOOKS = sorted(CHAPTERS.glob("*.ipynb"))


@pytest.mark.chapters
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_chapter_executes(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(CHAPTERS)}})
    try:
        client.execute()
    except CellExecutionError as error:
        pytest.fail(f"{path.name} failed to execute:\n{error}", pytrace=False)


def test_every_chapter_is_in_the_table_of_contents() -> None:
    toc = (CHAPTERS.parent / "_toc.yml").read_text()
    missing = [p.stem for p in NOTEBOOKS if f"chapters/{p.stem}" not in toc]
    assert not missing, f"chapters missing from _toc.yml: {missing}"


def test_chapters_are_committed_without_outputs() -> None:
    dirty = [p.name for p in NOTEBOOKS
             if any(c.get("outputs") for c in nbformat.read(p, as_version=4).cells
                    if c.cell_type == "code")]
    assert not dirty, f"clear the outputs of {dirty} before committing"
