"""Open built pages in headless Chromium with the network cut off, and list what a reader would see wrong.

:func:`chromium` starts Debian's Chromium through Playwright (never a browser Playwright downloads).
:func:`check_page` loads one page from ``file://``, waits for MathJax, and returns one line per
problem: a request that leaves the book, raw TeX left in the text, a MathJax error, an image that is
missing or empty, a slider figure whose image does not change when a control moves, an ipywidget
(blank without a kernel), a Python traceback in an output, a script error. It saves a full-page
screenshot as it goes.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

# The flags this machine's Chromium needs to start cleanly as root without reaching for the network.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                  "--host-resolver-rules=MAP * ~NOTFOUND"]
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
MATH = "\u27e8math\u27e9"  # stands for a typeset formula in the page's text
# TeX delimiters MathJax did not consume, a formula with a command left between single dollars, or a
# stray dollar sign beside a typeset formula (math the Markdown parser split in the wrong place).
RAW_TEX = re.compile(rf"\\\(|\\\)|\\\[|\\\]|\$\$|\$[^$\n]*\\[A-Za-z]+[^$\n]*\$|\$\s*{MATH}|{MATH}\s*\$")
TRACEBACK = re.compile(r"Traceback \(most recent call last\)")

# The text a reader sees, outside code and scripts, each typeset formula replaced by MATH.
VISIBLE_TEXT_JS = """(math) => {
  const skipped = new Set(['PRE', 'CODE', 'SCRIPT', 'STYLE', 'TEXTAREA']);
  const hidden = '.highlight, .mlsys-slider-caption';
  const parts = [];
  const walk = (node) => {
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) {
        parts.push(child.textContent);
      } else if (child.nodeType === Node.ELEMENT_NODE) {
        if (child.tagName === 'MJX-CONTAINER') parts.push(math);
        else if (!skipped.has(child.tagName) && !child.matches(hidden)) walk(child);
      }
    }
  };
  walk(document.body);
  return parts.join('');
}"""

# Every image decoded, then those with no pixels; figures with nothing to show.
EMPTY_IMAGES_JS = """async () => {
  const empty = [];
  for (const img of document.images) {
    img.loading = 'eager';
    try { await img.decode(); } catch (error) {}
    if (!(img.naturalWidth > 0 && img.naturalHeight > 0)) {
      empty.push(`image ${(img.getAttribute('src') || '').slice(0, 80)} (alt "${img.alt}") did not load`);
    }
  }
  for (const figure of document.querySelectorAll('figure')) {
    if (!figure.querySelector('img, svg, canvas, video')) empty.push(`figure #${figure.id} has no image`);
  }
  return empty;
}"""

EXTERNAL_REFERENCES_JS = """() => Array.from(document.querySelectorAll(
    'script[src], link[href], img[src], iframe[src], source[src], video[src], audio[src]'))
  .filter(el => el.tagName !== 'LINK' || !/^(canonical|alternate|next|prev|index|search)$/.test(el.rel))
  .map(el => el.getAttribute('src') || el.getAttribute('href'))
  .filter(url => /^(https?:)?\\/\\//.test(url))"""


def chromium_executable() -> str | None:
    """Debian's Chromium, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def chromium() -> Iterator[object]:
    """A Playwright ``BrowserContext`` on headless Debian Chromium with a fresh profile, offline, every
    request for anything but a local resource aborted; closed on exit."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="mlsys-chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=chromium_executable(), headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900}, offline=True)
        try:
            context.route(re.compile(f"^(?!{'|'.join(LOCAL_SCHEMES)})"), lambda route: route.abort())
            yield context
        finally:
            context.close()


def check_page(context, page_path: Path, screenshot: Path) -> list[str]:
    """Load ``page_path`` in ``context`` (see :func:`chromium`) and list every problem found on it."""
    problems: list[str] = []
    requests: list[str] = []
    page = context.new_page()
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    try:
        page.goto(page_path.resolve().as_uri(), wait_until="load")
        mathjax = page.evaluate("() => window.MathJax && MathJax.startup ? "
                                "MathJax.startup.promise.then(() => 'typeset') : 'absent'")
        problems += [f"page refers outside the book: {url}" for url in page.evaluate(EXTERNAL_REFERENCES_JS)]
        problems += _math_problems(page, mathjax)
        problems += page.evaluate(EMPTY_IMAGES_JS)
        problems += _slider_problems(page)
        if page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count():
            problems.append("an ipywidget output, blank in the static book: show an "
                            "mlsys.interactive.slider_figure instead, or tag the cell remove-output")
        problems += [f"a cell output shows a Python traceback: {text.strip()[:300]}"
                     for text in page.locator(".cell_output").all_inner_texts() if TRACEBACK.search(text)]
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
    finally:
        page.close()
    outside = [url for url in requests if not url.startswith(LOCAL_SCHEMES)]
    return [f"request leaves the book: {url}" for url in outside] + problems


def _math_problems(page, mathjax: str) -> list[str]:
    text = page.evaluate(VISIBLE_TEXT_JS, MATH)
    problems = [f"raw TeX in the text (MathJax {mathjax}): "
                f"...{' '.join(text[max(0, m.start() - 50):m.end() + 50].split())}..."
                for m in RAW_TEX.finditer(text)]
    problems += [f"MathJax could not typeset: {error.get_attribute('data-mjx-error') or error.inner_text()}"
                 for error in page.locator("mjx-merror").all()]
    return problems


def _slider_problems(page) -> list[str]:
    """Move each control of each slider figure as a reader would: the image must change, and come back."""
    problems = []
    for number, slider in enumerate(page.locator(".mlsys-slider").all(), start=1):
        title = slider.locator(".mlsys-slider-title").all_inner_texts()
        name = title[0] if title else f"slider figure {number}"
        frame = slider.locator("img.mlsys-slider-frame")
        for control in slider.locator("[data-param]").all():
            param = control.get_attribute("data-param")
            original = frame.get_attribute("src")
            move_back = _switch(control)
            if move_back is None:
                continue  # a control with one value has nothing to switch to
            changed = frame.get_attribute("src")
            loaded = frame.evaluate("img => img.decode().then(() => img.naturalWidth > 0, () => false)")
            move_back()
            if changed == original:
                problems.append(f"{name}: moving {param!r} did not change the image")
            elif not loaded:
                problems.append(f"{name}: moving {param!r} shows an image that does not load")
            elif frame.get_attribute("src") != original:
                problems.append(f"{name}: moving {param!r} back did not bring the first image back")
    return problems


def _switch(control) -> Callable[[], None] | None:
    """Give ``control`` another value as a reader would (the keyboard on a range slider, another option
    in a drop-down) and return how to move it back; ``None`` if it has a single value."""
    if control.evaluate("el => el.tagName") == "SELECT":
        selected, count = control.evaluate("el => [el.selectedIndex, el.options.length]")
        if count < 2:
            return None
        control.select_option(index=(selected + 1) % count)
        return lambda: control.select_option(index=selected)
    low, high, value = (int(control.get_attribute(a)) for a in ("min", "max", "value"))
    if low == high:
        return None
    control.press("End" if value != high else "Home")

    def move_back() -> None:
        control.press("Home")
        for _ in range(value - low):
            control.press("ArrowRight")

    return move_back
