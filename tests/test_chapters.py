"""The chapter notebooks and bibliography as committed: listed in the table of contents, without outputs,
math MyST reads, references sorted.

Executing them is the book build's job: tests/test_book.py builds the book once and reports each
chapter's errors (``-k 05`` selects chapter 5 there).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

CHAPTERS = Path(__file__).resolve().parents[1] / "chapters"
NOTEBOOKS = sorted(CHAPTERS.glob("*.ipynb"))
# MyST reads \( and \[ as escaped brackets: the math would show as plain "(x)". $...$ and $$...$$ typeset.
ESCAPED_MATH = re.compile(r"\\\(|\\\[")


def test_every_chapter_is_in_the_table_of_contents() -> None:
    toc = (CHAPTERS.parent / "_toc.yml").read_text()
    missing = [p.stem for p in NOTEBOOKS if f"chapters/{p.stem}" not in toc]
    assert not missing, f"chapters missing from _toc.yml: {missing}"


def test_chapters_are_committed_without_outputs() -> None:
    dirty = [p.name for p in NOTEBOOKS
             if any(c.get("outputs") for c in nbformat.read(p, as_version=4).cells
                    if c.cell_type == "code")]
    assert not dirty, f"clear the outputs of {dirty} before committing"


def test_markdown_math_uses_dollar_delimiters() -> None:
    found = [f"{p.name}, cell {i}: {m.string[max(0, m.start() - 30):m.end() + 30]!r}"
             for p in NOTEBOOKS
             for i, cell in enumerate(nbformat.read(p, as_version=4).cells, start=1)
             if cell.cell_type == "markdown" for m in ESCAPED_MATH.finditer(cell.source)]
    assert not found, "write math as $...$ or $$...$$ (MyST shows \\( \\) as brackets):\n" + "\n".join(found)


def test_bibliography_is_sorted_by_key_without_duplicates() -> None:
    keys = re.findall(r"^@\w+\{([^,]+),", (CHAPTERS / "references.bib").read_text(), flags=re.MULTILINE)
    assert len(keys) == len({k.lower() for k in keys}), "duplicate keys in references.bib"
    out_of_order = [(a, b) for a, b in zip(keys, keys[1:]) if a.lower() > b.lower()]
    assert not out_of_order, f"references.bib: keep entries sorted by key: {out_of_order}"
