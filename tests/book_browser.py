"""Read a built book in headless Chromium as a reader would, and say what is wrong on each page.

Every HTML page is served from 127.0.0.1 and opened at a desktop width (1400 px) and a phone's (390 px)
with every other request aborted (so MathJax from a CDN fails as it would offline). On each page it
checks that

- the page does not scroll sideways; at the desktop width no element is wider than the content column
  either, while on the phone a table may scroll sideways inside its own box (never the page) if its first
  column stays in view (``position: sticky``);
- every image loaded (``naturalWidth > 0``) and has descriptive alt text: words, not a file name or path;
- no text of an SVG figure is smaller than 8 px at the size the figure is shown (its smallest is reported);
- the introduction's summary (``#summary`` or ``.elrt-summary``) starts within the first 900 px, and at
  the desktop width ends there too (``summary_pages``);
- no raw TeX is left in the text once MathJax has run (``$..$``, ``\\(..\\)``, ``\\frac``...), and
  MathJax reported no error;
- no stderr or traceback output box is shown;
- the text holds no absolute filesystem path (``/home/...``, ``/tmp/...``, ``C:\\...``, or any
  string given in ``forbidden``);

and it takes a full-page screenshot, the page's height in pixels, its first heading and its first
line of text. Used by tests/test_browser.py (planted defects) and tests/test_study_book.py (the
smoke book); by hand: ``python tests/book_browser.py _build/html --out _build/screenshots`` (both
widths, screenshots and a summary.json in one folder per width).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import re
import shutil
import sys
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

WIDTH = 1400
PHONE = 390
WIDTHS = (WIDTH, PHONE)
"""The window widths every page is read at: a desktop and a phone."""
HEIGHT = 900
FIRST_SCREEN = 900
"""How far down the introduction's summary must start (and, at the desktop width, end), in px."""
MIN_FIGURE_TEXT = 8.0
"""The smallest text an SVG figure may show at its displayed size, in px."""
SUMMARY_SELECTOR = "#summary, .elrt-summary"
"""The element that holds a page's summary (a section labelled ``summary`` or a box of class ``elrt-summary``)."""
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SKIPPED_FOLDERS = {"_static", "_sources", "_images", "_downloads", "_sphinx_design_static"}

ABSOLUTE_PATH = re.compile(
    r"(?<![\w.:/~-])/(?:home|root|tmp|work|Users|usr|opt|var|mnt|srv|private|scratch|media|builds|runner|github)/[^\s'\"<>)\]]+"
    r"|\b[A-Za-z]:\\[^\s'\"<>]+"
)
RAW_TEX = re.compile(
    r"\\\(|\\\)|\\\[|\\\]|\$\$"  # MathJax delimiters left in the text
    r"|\$[^$\n]{0,200}?[\\^_{}][^$\n]{0,200}?\$"  # $...$ holding TeX syntax
    r"|\\[A-Za-z]{2,}"
)  # a TeX command: \frac, \mathbb, \text, ...


def find_chromium() -> str | None:
    """The Chromium to drive: ``$ELRT_CHROMIUM``, else Debian's /usr/bin/chromium, else one on PATH."""
    candidates = [os.environ.get("ELRT_CHROMIUM"), "/usr/bin/chromium"]
    candidates += [shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def missing_requirement() -> str | None:
    """Why the browser check cannot run here (one line), or None when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed (pip install -e '.[dev]')"
    if find_chromium() is None:
        return (
            "no Chromium found ($ELRT_CHROMIUM, /usr/bin/chromium, chromium on PATH); install it with `apt-get install chromium`"
        )
    return None


@dataclass
class PageReport:
    """What the check found on one page."""

    page: str
    height: int = 0
    heading: str = ""
    first_text: str = ""
    screenshot: str = ""
    problems: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    math: str = ""
    width: int = WIDTH
    smallest_figure_text: float | None = None
    scrolled_boxes: list[str] = field(default_factory=list)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextmanager
def serve(folder: Path):
    """Serve ``folder`` on 127.0.0.1 (a free port) for the duration of the block; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


REDIRECT = re.compile(r"<meta[^>]+http-equiv=[\"']?refresh", re.IGNORECASE)


def pages_of(html_dir: Path) -> list[Path]:
    """Every HTML page of a built book, relative to ``html_dir``: theme and source folders and
    redirect stubs (the root ``index.html`` that sends the reader to the first page) left out."""
    html_dir = Path(html_dir)
    return sorted(
        p.relative_to(html_dir)
        for p in html_dir.rglob("*.html")
        if not SKIPPED_FOLDERS & set(p.relative_to(html_dir).parts[:-1])
        and not REDIRECT.search(p.read_text(errors="replace")[:2000])
    )


_WAIT_FOR_MATH = """async () => {
  const mj = window.MathJax;
  if (!mj) return 'no MathJax on this page';
  if (!mj.startup || !mj.startup.promise) return 'MathJax configured but its script did not load';
  const timeout = new Promise(resolve => setTimeout(() => resolve('timed out'), 20000));
  const done = mj.startup.promise.then(() => 'rendered');
  return await Promise.race([done, timeout]);
}"""

_WAIT_FOR_IMAGES = """async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(img => { if (img.loading === 'lazy') img.loading = 'eager'; });
  const pending = imgs.filter(img => !img.complete).map(img => new Promise(resolve => {
    img.addEventListener('load', resolve, {once: true}); img.addEventListener('error', resolve, {once: true});
  }));
  await Promise.race([Promise.all(pending), new Promise(resolve => setTimeout(resolve, 10000))]);
  return imgs.length;
}"""

_INSPECT = """([phone, summarySelector]) => {
  const out = {overflow: [], scrolled: [], images: [], alts: [], tex: [], mathErrors: 0, errorBoxes: [], text: '', height: 0,
               heading: '', first: '', summary: null};
  const col = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  const colRect = col.getBoundingClientRect();
  const describe = el => {
    const cls = (el.getAttribute('class') || '').trim().split(/\\s+/).filter(Boolean).slice(0, 3).join('.');
    const text = Array.from((el.innerText || el.textContent || '').trim().replace(/\\s+/g, ' ')).slice(0, 60).join('');
    return `<${el.tagName.toLowerCase()}${cls ? '.' + cls : ''}> "${text}"`;
  };
  const docWidth = document.documentElement.scrollWidth;
  if (docWidth > window.innerWidth + 1)
    out.overflow.push(`the page scrolls sideways: ${docWidth}px wide in a ${window.innerWidth}px window`);
  const scroller = el => {  // the nearest ancestor inside the column that clips or scrolls sideways
    for (let a = el.parentElement; a && a !== col; a = a.parentElement)
      if (['auto', 'scroll', 'hidden', 'clip'].includes(getComputedStyle(a).overflowX)) return a;
    return null;
  };
  const wide = new Set();
  for (const el of col.querySelectorAll('*')) {
    if (el.closest('mjx-assistive-mml, script, style')) continue;
    if (el.checkVisibility && !el.checkVisibility()) continue;  // not rendered, e.g. inside a closed <details>
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    if (r.width > colRect.width + 1 || r.right > colRect.right + 1 || r.left < colRect.left - 1) wide.add(el);
  }
  const boxes = new Set();
  for (const el of wide) {
    if (el.parentElement && wide.has(el.parentElement)) continue;  // report the outermost one only
    const box = scroller(el);
    if (box && !wide.has(box)) {  // cut off inside a box that scrolls: one report per box
      if (boxes.has(box)) continue;
      boxes.add(box);
      const inner = box.children.length === 1 ? box.children[0] : box;
      const text = `${describe(inner)} is ${box.scrollWidth}px wide in a ${box.clientWidth}px box that scrolls sideways ` +
                   `(content column ${Math.round(colRect.width)}px)`;
      const cell = box.querySelector('table tr > :first-child');
      if (!phone) out.overflow.push(text);
      else if (cell && getComputedStyle(cell).position !== 'sticky') out.overflow.push(`${text}, and its first column does not stay in view`);
      else out.scrolled.push(text);  // on a phone, a box of its own that scrolls is the way a wide table fits
      continue;
    }
    const r = el.getBoundingClientRect();
    out.overflow.push(`${describe(el)} is ${Math.round(r.width)}px wide (spans ${Math.round(r.left)}..${Math.round(r.right)}px), ` +
                      `the content column ${Math.round(colRect.width)}px (${Math.round(colRect.left)}..${Math.round(colRect.right)}px)`);
  }
  for (const img of document.images)
    if (!img.complete || img.naturalWidth === 0) out.images.push(img.getAttribute('src') || '(no src)');
  for (const img of col.querySelectorAll('img')) {  // alt text that says what the image shows, not its file
    const alt = (img.getAttribute('alt') || '').trim();
    const words = alt.split(/\\s+/).filter(w => /[A-Za-z]{2,}/.test(w)).length;
    if (words < 3 || /(^|\\s)(\\.{0,2}\\/|[A-Za-z]:\\\\)\\S|\\.(svg|png|jpe?g|gif|webp)\\b|[0-9a-f]{16,}/i.test(alt))
      out.alts.push(`${img.getAttribute('src') || '(no src)'} has alt ${JSON.stringify(alt)}`);
  }
  const summary = document.querySelector(summarySelector);
  if (summary) { const r = summary.getBoundingClientRect(); out.summary = [r.top + window.scrollY, r.bottom + window.scrollY]; }
  const walker = document.createTreeWalker(col, NodeFilter.SHOW_TEXT);
  const skip = 'pre, code, kbd, samp, script, style, textarea, mjx-container, .highlight, .MathJax';
  const chunks = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode())
    if (n.parentElement && !n.parentElement.closest(skip)) chunks.push(n.textContent);
  out.tex = chunks.join(' ');
  out.mathErrors = col.querySelectorAll('mjx-merror, .MathJax_Error').length;
  for (const el of document.querySelectorAll('.output.stderr, .output.traceback, .stderr, .traceback, .output.error'))
    out.errorBoxes.push(describe(el));
  out.text = document.body.innerText;
  out.height = Math.max(document.documentElement.scrollHeight, document.body.scrollHeight);
  const h = col.querySelector('h1, h2') || document.querySelector('h1');
  out.heading = h ? h.innerText.replace(/[#¶]\\s*$/, '').trim() : '';
  const visible = Array.from(col.querySelectorAll('p, li, td, .admonition')).find(el => el.innerText.trim() && el.getClientRects().length);
  out.first = visible ? Array.from(visible.innerText.trim().replace(/\\s+/g, ' ')).slice(0, 160).join('') : '';
  return out;
}"""


_FIGURE_TEXT = r"""async () => {
  const col = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  const found = [];
  const measure = (svg, src) => {  // the smallest text of one SVG at its displayed size, in CSS px
    let least = null;
    for (const t of svg.querySelectorAll('text')) {
      const m = t.getScreenCTM();
      const words = t.textContent.trim();
      if (!m || !words) continue;
      const px = parseFloat(getComputedStyle(t).fontSize) * Math.hypot(m.a, m.b);
      if (px > 0 && (!least || px < least.px)) least = {src, px, text: words.slice(0, 40)};
    }
    if (least) found.push(least);
  };
  for (const svg of col.querySelectorAll('svg')) if (svg.querySelector('text')) measure(svg, 'an inline SVG');
  for (const img of col.querySelectorAll('img')) {  // an SVG image: laid out again, hidden, at the size it is shown
    const src = img.currentSrc || img.src, r = img.getBoundingClientRect();
    if (!r.width || !(/\.svg([?#]|$)/i.test(src) || src.startsWith('data:image/svg'))) continue;
    let svg;
    try { svg = new DOMParser().parseFromString(await (await fetch(src)).text(), 'image/svg+xml').documentElement; }
    catch (e) { continue; }
    if (svg.tagName.toLowerCase() !== 'svg') continue;
    svg = document.importNode(svg, true);
    svg.setAttribute('width', r.width);
    svg.setAttribute('height', r.height);
    const box = document.createElement('div');
    box.style.cssText = 'position:absolute; left:0; top:0; visibility:hidden; pointer-events:none';
    box.appendChild(svg);
    document.body.appendChild(box);
    measure(svg, img.getAttribute('src'));
    box.remove();
  }
  return found;
}"""


def _summary_problems(span: list[float] | None, width: int) -> list[str]:
    """Where the summary is not in the first screen: missing, starting below it, or (desktop) ending below it."""
    if span is None:
        return [f"no summary on the page ({SUMMARY_SELECTOR})"]
    top, bottom = span
    if top > FIRST_SCREEN:
        return [f"the summary starts at {top:.0f} px, below the first {FIRST_SCREEN} px"]
    if width > PHONE and bottom > FIRST_SCREEN:
        return [f"the summary ends at {bottom:.0f} px, below the first {FIRST_SCREEN} px"]
    return []


def _tex_problems(text: str) -> list[str]:
    found = []
    for m in RAW_TEX.finditer(text):
        start, end = max(0, m.start() - 30), min(len(text), m.end() + 30)
        found.append(f"raw TeX {m.group(0)[:40]!r} in \u2026{text[start:end].strip()}\u2026")
        if len(found) >= 5:
            break
    return found


STRAY_LABEL = re.compile(r"'(?:tab|fig)-[a-z0-9-]+'")
"""A figure's or table's label printed as a cell's output (a cell that ended with a plain string)."""


def _label_problems(text: str) -> list[str]:
    return [f"the label {m.group(0)} shown as an output line" for m in STRAY_LABEL.finditer(text)][:5]


def _path_problems(text: str, forbidden: tuple[str, ...]) -> list[str]:
    found = [f"absolute path {m.group(0)[:80]!r} in the page text" for m in ABSOLUTE_PATH.finditer(text)]
    found += [f"the path {f!r} in the page text" for f in forbidden if f and f in text]
    return found[:5]


def check_pages(
    html_dir: Path,
    pages: list[Path] | None = None,
    *,
    screenshots: Path | None = None,
    forbidden: tuple[str, ...] = (),
    width: int = WIDTH,
    summary_pages: tuple[str, ...] = (),
) -> list[PageReport]:
    """Open every page (default :func:`pages_of`) in a ``width``-px window and return one
    :class:`PageReport` per page; the pages named in ``summary_pages`` must show their summary first."""
    from playwright.sync_api import sync_playwright

    html_dir = Path(html_dir).resolve()
    pages = pages_of(html_dir) if pages is None else [Path(p) for p in pages]
    if screenshots is not None:
        screenshots = Path(screenshots)
        screenshots.mkdir(parents=True, exist_ok=True)
    reports = []
    with serve(html_dir) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": width, "height": HEIGHT}, accept_downloads=False)
            blocked: list[str] = []

            def route(r):
                url = r.request.url
                if url.startswith(base) or url.startswith(("data:", "blob:", "about:")):
                    r.continue_()
                else:
                    blocked.append(url)
                    r.abort()

            context.route("**/*", route)
            for rel in pages:
                blocked.clear()
                report = PageReport(page=rel.as_posix(), width=width)
                page = context.new_page()
                try:
                    page.goto(base + rel.as_posix(), wait_until="load", timeout=60000)
                    report.math = page.evaluate(_WAIT_FOR_MATH)
                    page.evaluate(_WAIT_FOR_IMAGES)
                    found = page.evaluate(_INSPECT, [width <= PHONE, SUMMARY_SELECTOR])
                    report.height, report.heading, report.first_text = found["height"], found["heading"], found["first"]
                    report.scrolled_boxes = found["scrolled"]
                    report.problems += [f"too wide: {o}" for o in found["overflow"]]
                    report.problems += [f"image did not load: {src}" for src in found["images"]]
                    report.problems += [f"image without descriptive alt text: {a}" for a in found["alts"]]
                    sizes = page.evaluate(_FIGURE_TEXT)
                    report.smallest_figure_text = round(min(f["px"] for f in sizes), 1) if sizes else None
                    report.problems += [
                        f"figure text {f['px']:.1f} px at its displayed size (under {MIN_FIGURE_TEXT:g} px): "
                        f"{f['text']!r} in {f['src']}"
                        for f in sizes
                        if f["px"] < MIN_FIGURE_TEXT
                    ]
                    if report.page in summary_pages:
                        report.problems += _summary_problems(found["summary"], width)
                    report.problems += _tex_problems(found["tex"])
                    if found["mathErrors"]:
                        report.problems.append(f"MathJax could not render {found['mathErrors']} formula(s)")
                    report.problems += [f"error output shown: {box}" for box in found["errorBoxes"]]
                    if "Traceback (most recent call last)" in found["text"]:
                        report.problems.append("a Python traceback in the page text")
                    report.problems += _path_problems(found["text"], forbidden)
                    report.problems += _label_problems(found["text"])
                    report.blocked = sorted(set(blocked))
                    if screenshots is not None:
                        shot = screenshots / (rel.with_suffix("").as_posix().replace("/", "__") + ".png")
                        page.screenshot(path=str(shot), full_page=True)
                        report.screenshot = str(shot)
                except Exception as e:  # a page that does not open is a problem of that page
                    report.problems.append(f"could not be checked: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
                finally:
                    page.close()
                reports.append(report)
        finally:
            browser.close()
    if screenshots is not None:
        write_summary(reports, screenshots / "summary.json", width=width)
    return reports


def write_summary(reports: list[PageReport], path: Path, *, width: int = WIDTH) -> Path:
    """Write the reports as JSON (page, height in px at ``width``, first heading and text, problems)."""
    path = Path(path)
    path.write_text(json.dumps({"width": width, "pages": [asdict(r) for r in reports]}, indent=1, ensure_ascii=False) + "\n")
    return path


def check_widths(
    html_dir: Path,
    pages: list[Path] | None = None,
    *,
    screenshots: Path | None = None,
    widths: tuple[int, ...] = WIDTHS,
    **options,
) -> list[PageReport]:
    """:func:`check_pages` at each of ``widths`` (screenshots in ``<screenshots>/<width>/``); the reports
    of every width, width by width. ``options``: ``forbidden`` and ``summary_pages``."""
    return [
        report
        for width in widths
        for report in check_pages(
            html_dir, pages, screenshots=None if screenshots is None else Path(screenshots) / str(width), width=width, **options
        )
    ]


def describe(reports: list[PageReport]) -> str:
    """A plain-text account: one line per page and width, then its problems indented."""
    lines = []
    for r in reports:
        text = "" if r.smallest_figure_text is None else f", figure text from {r.smallest_figure_text:g} px"
        lines.append(
            f"{r.page} at {r.width} px: {r.height} px tall{text}, {len(r.problems)} problem(s); "
            f"\u201c{r.heading}\u201d \u2014 {r.first_text[:90]}"
        )
        lines += [f"    {p}" for p in r.problems]
        if r.blocked:
            lines.append(f"    blocked requests: {', '.join(r.blocked[:4])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path, help="the built book, e.g. _build/html")
    parser.add_argument("--out", type=Path, default=Path("_build/screenshots"), help="screenshots and summary.json")
    parser.add_argument("--forbid", action="append", default=[], help="a string that must not appear in any page text")
    parser.add_argument("--width", type=int, action="append", help=f"window width in px (repeatable; default {WIDTHS})")
    parser.add_argument(
        "--summary", action="append", default=None, help="a page that must show its summary first (default book/intro.html)"
    )
    args = parser.parse_args(argv)
    why = missing_requirement()
    if why:
        print(f"cannot check the book in a browser: {why}", file=sys.stderr)
        return 2
    reports = check_widths(
        args.html,
        screenshots=args.out,
        widths=tuple(args.width or WIDTHS),
        forbidden=tuple(args.forbid),
        summary_pages=tuple(args.summary if args.summary is not None else ["book/intro.html"]),
    )
    print(describe(reports))
    print(f"screenshots and summary.json: {args.out}/<width>/")
    return 1 if any(r.problems for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
