"""The book builds once, executing every chapter, and reads offline in a real browser.

A session fixture builds the whole book into ``_build/html`` (``tests/book/build.py``: every chapter
executed afresh, Sphinx warnings are errors). On that one build:

* each chapter's test reports its own execution error or warnings (which cell, the traceback), and
  the build as a whole has no other warning;
* every matplotlib figure on every page is drawn at 150 dpi or more;
* every page, opened from ``file://`` in Debian's headless Chromium with the network cut off, makes
  no request outside the book, shows no raw TeX, no empty image or figure, no traceback, no blank
  ipywidget, and each slider figure's image changes when a control moves
  (``tests/book/browser.py``); its full-page screenshot lands in ``_build/screenshots/``;
* the labs page lists every lab.

``make test`` runs this module first and alone, so the chapters' timings are taken on cores no other
test is using, then the rest of the suite on two workers. Run under pytest-xdist with the others,
``--dist loadscope`` keeps this module's tests on one worker, so a run builds the book once.
(``xdist_group`` would say it per test, but pytest-xdist 3.8 cannot apply it under pytest 9.2.)
``-m "not chapters"`` leaves the book out.
"""

from __future__ import annotations

import base64
import io
import re
import struct
from pathlib import Path

import matplotlib.pyplot as plt
import nbformat
import pytest
import yaml
from book.browser import check_page, chromium, chromium_executable
from book.build import BookBuild, BuildWarning, build_book, parse_warnings

from mlsys.grading import labs
from mlsys.interactive import slider_figure

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
SCREENSHOTS = ROOT / "_build" / "screenshots"
BUILD_TIMEOUT = 1500  # seconds for the whole build; a hung chapter fails with the page it was reading
CELL_TIMEOUT = 300  # seconds per cell: chapter cells take seconds
MIN_DPI = 150

pytestmark = [pytest.mark.chapters, pytest.mark.timeout(BUILD_TIMEOUT + 300)]


def _toc_documents() -> list[str]:
    """The documents of _toc.yml in reading order, as paths without suffix ("chapters/index", ...)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())

    def walk(entries: list[dict]) -> list[str]:
        found = []
        for entry in entries:
            found += [entry["file"]] if "file" in entry else []
            found += walk(entry.get("sections", []) + entry.get("chapters", []))
        return found

    return [toc["root"], *walk(toc.get("chapters", []) + toc.get("parts", []))]


PAGES = [*_toc_documents(), "genindex", "search"]


@pytest.fixture(scope="session")
def book() -> BookBuild:
    try:
        return build_book(ROOT, timeout=BUILD_TIMEOUT, cell_timeout=CELL_TIMEOUT)
    except TimeoutError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def browser():
    if chromium_executable() is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run installs it "
                    "when apt-get can), so the built pages cannot be opened")
    pytest.importorskip("playwright", reason="playwright (the [dev] extra) drives Chromium")
    with chromium() as context:
        yield context


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_executes(book: BookBuild, path: Path) -> None:
    problems = _explained(book.warnings_about(path))
    if not problems and not (book.html / "chapters" / f"{path.stem}.html").is_file():
        problems.append(f"{path.name}: no page was written (build log: {book.log})")
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def test_book_builds_without_warnings(book: BookBuild) -> None:
    chapters = {p.resolve() for p in CHAPTERS}
    in_chapters = [w for w in book.warnings if w.path is not None and w.path.resolve() in chapters]
    others = _explained([w for w in book.warnings if w not in in_chapters])
    failed = sorted({w.path.name for w in in_chapters})
    assert not others, "the book build warned (warnings are errors):\n\n" + "\n\n".join(others)
    assert book.returncode == 0, (f"the book build failed (exit {book.returncode}) on chapters {failed}: see "
                                  f"their test_chapter_executes; build log {book.log}")


@pytest.mark.parametrize("document", PAGES)
def test_figures_are_drawn_at_150_dpi_or_more(book: BookBuild, document: str) -> None:
    page = book.html / f"{document}.html"
    html = page.read_text()
    files = [page.parent / src for src in re.findall(r'<img[^>]+src="([^":]+\.png)"', html)]
    pngs = [(f"{f.name}", f.read_bytes()) for f in files]
    pngs += [(f"embedded image {i}", base64.b64decode(data))
             for i, data in enumerate(re.findall(r"iVBORw0KGgo[A-Za-z0-9+/]+=*", html), start=1)]
    coarse = [f"{name}: {dpi:.0f} dpi" for name, png in pngs
              if b"Matplotlib" in png[:4096] and (dpi := _png_dpi(png)) < MIN_DPI - 0.5]
    assert not coarse, (f"{document}: figures drawn below {MIN_DPI} dpi (chapters/matplotlibrc sets the "
                        f"default; slider_figure takes dpi=):\n" + "\n".join(coarse))


@pytest.mark.parametrize("document", PAGES)
def test_page_reads_offline_in_chromium(book: BookBuild, browser, document: str) -> None:
    page = book.html / f"{document}.html"
    assert page.is_file(), f"{document}.html was not built"
    problems = check_page(browser, page, SCREENSHOTS / f"{Path(document).name}.png")
    assert not problems, f"{document}.html:\n" + "\n".join(problems)


def test_labs_page_lists_every_lab(book: BookBuild) -> None:
    text = " ".join(re.sub(r"<[^>]+>", " ", (book.html / "chapters" / "labs.html").read_text()).split())
    missing = [name for name, lab in labs.available().items()
               if f"mlsys lab get {name}" not in text or lab.title not in text]
    assert not missing, f"the labs page does not list {missing}"


def test_browser_check_reports_what_a_reader_would_see(browser, tmp_path: Path) -> None:
    frozen = slider_figure(lambda k: _line(1.0), {"k": [1, 2]}, title="frozen")  # every frame the same
    moving = slider_figure(_line, {"slope": [1.0, 2.0, 3.0], "style": ["-", ":"]}, title="moving",
                           defaults={"slope": 2.0})
    page = tmp_path / "page.html"
    page.write_text(f"""<html><head><script src="https://cdn.example.org/lib.js"></script></head><body>
        <p>Inline \\(x^2\\) left raw.</p><img src="missing.png" alt="lost">
        {frozen._repr_html_()}{moving._repr_html_()}
        <div class="cell_output"><pre>ValueError    Traceback (most recent call last)</pre></div>
        <script type="application/vnd.jupyter.widget-view+json">{{}}</script>
        <script>notDefinedAnywhere();</script></body></html>""")
    problems = "\n".join(check_page(browser, page, tmp_path / "page.png"))
    for expected in ("request leaves the book: https://cdn.example.org/lib.js", "raw TeX", "missing.png",
                     "frozen: moving 'k' did not change the image", "ipywidget", "Python traceback",
                     "script error"):
        assert expected in problems, f"the check missed {expected!r}; it reported:\n{problems}"
    assert "moving:" not in problems, problems
    assert (tmp_path / "page.png").stat().st_size > 0


def test_build_warnings_are_read_with_their_chapter_and_cell(tmp_path: Path) -> None:
    stream = (f"{tmp_path}/chapters/a.ipynb: WARNING: Executing notebook failed: CellExecutionError\n"
              "Traceback (most recent call last):\n  ValueError: boom\n [mystnb.exec]\n"
              f"\x1b[91m{tmp_path}/chapters/b.ipynb:40002: WARNING: unknown document: 'nope'\x1b[39;49;00m\n"
              "WARNING: a warning about no file\n")
    first, second, third = parse_warnings(stream)
    assert first.path == tmp_path / "chapters" / "a.ipynb"
    assert first.message.endswith("ValueError: boom\n [mystnb.exec]")
    assert second.where == "b.ipynb, cell 4 (counting from 1), line 2"
    assert second.message == "unknown document: 'nope'"
    assert third.path is None and third.where == "the book"


def test_png_resolution_is_read_from_the_file() -> None:
    figure = _line(1.0)
    drawn = {}
    for dpi in (100, 150):
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=dpi)
        drawn[dpi] = _png_dpi(buffer.getvalue())
    plt.close(figure)
    assert drawn == pytest.approx({100: 100, 150: 150}, abs=0.5)


def _line(slope: float, style: str = "-"):
    figure, axes = plt.subplots(figsize=(2, 1.5))
    axes.plot([0, 1], [0, slope], linestyle=style)
    axes.set_ylim(0, 3)
    return figure


def _explained(warnings: list[BuildWarning]) -> list[str]:
    """Warnings as a reader of the test report wants them: a failed cell as its chapter, cell and error."""
    explained = []
    for warning in warnings:
        message = warning.message
        if "Notebook exception traceback saved in" in message:
            continue  # a copy of the error reported just before it
        if "An error occurred while executing" not in message:
            explained.append(str(warning))
            continue
        message = message[message.index("An error occurred while executing"):]
        where = warning.where
        if warning.path is not None and warning.path.suffix == ".ipynb" and "------------------" in message:
            source = message.split("------------------")[1].strip()
            cells = nbformat.read(warning.path, as_version=4).cells
            numbers = [i for i, cell in enumerate(cells, start=1) if cell.source.strip() == source]
            where = f"{warning.path.name}, cell {numbers[0]} (counting from 1)" if numbers else where
        explained.append(f"{where}: {message}")
    return explained


def _png_dpi(png: bytes) -> float:
    """Horizontal resolution stored in a PNG's pHYs chunk, in dots per inch (0 when absent)."""
    at = png.find(b"pHYs")
    if at < 0:
        return 0.0
    per_unit, _, unit = struct.unpack(">IIB", png[at + 4:at + 13])
    return per_unit * 0.0254 if unit == 1 else 0.0
