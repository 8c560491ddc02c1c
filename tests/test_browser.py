"""The browser check of the book (tests/book_browser.py) finds what a reader would see wrong.

Each test builds tiny HTML pages shaped like the book's (an ``article.bd-article`` content column),
plants one defect and asserts that the check reports it, and that a clean page passes. The check of
the real book pages is ``test_every_page_reads_well_in_a_browser`` in tests/test_study_book.py.
"""

import json
import shutil
from pathlib import Path

import book_browser
import pytest

browser = pytest.mark.usefixtures("browser_ready")
pytestmark = pytest.mark.slow  # each test drives headless Chromium (seconds); make test-quick leaves them out

TEMPLATE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title>{head}</head>
<body style="margin:0"><main><article class="bd-article" style="max-width:760px; margin:0 auto; font-family:sans-serif">
<h1>{title}</h1><p>First paragraph of {title}.</p>
{body}
</article></main></body></html>"""


def _write(folder: Path, name: str, body: str, head: str = "") -> Path:
    (folder / f"{name}.html").write_text(TEMPLATE.format(title=name, body=body, head=head))
    return Path(f"{name}.html")


def _svg(folder: Path, name: str, font_px: float) -> str:
    """An SVG image 400 user units wide whose one text is ``font_px`` units tall; returns its file name."""
    (folder / name).write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="300pt" height="75pt" viewBox="0 0 400 100">'
        f'<text x="10" y="50" style="font-size: {font_px}px; font-family: sans-serif">accuracy (%)</text></svg>'
    )
    return name


def _check(folder: Path, *pages: Path, **kwargs):
    reports = book_browser.check_pages(folder, list(pages), screenshots=folder / "shots", **kwargs)
    return {r.page: r for r in reports}


def _mathjax_copy(folder: Path) -> str:
    """Copy the MathJax that sphinx-mathjax-offline ships next to the pages; return its script path."""
    import importlib

    package = Path(importlib.import_module("sphinx-mathjax-offline").__file__).parent
    shutil.copytree(package / "static" / "mathjax", folder / "mathjax")
    return "mathjax/tex-chtml.js"


@browser
def test_a_clean_page_passes_and_is_measured(tmp_path):
    page = _write(
        tmp_path,
        "clean",
        "<table><tr><th>test top-1 (%)</th></tr><tr><td>85.12</td></tr></table>"
        "<p>It costs $5 and $10, see results/cpu/figures and ../shared/data; "
        "<code>\\frac</code> in code is not math.</p>",
    )
    report = _check(tmp_path, page)["clean.html"]
    assert report.problems == []
    assert report.heading == "clean" and report.first_text == "First paragraph of clean."
    assert report.height >= book_browser.HEIGHT
    assert Path(report.screenshot).stat().st_size > 1000
    summary = json.loads((tmp_path / "shots" / "summary.json").read_text())
    assert summary["width"] == 1400 and summary["pages"][0]["page"] == "clean.html"


@browser
def test_a_planted_wide_table_is_reported(tmp_path):
    cells = "".join(f"<th>column number {i}</th>" for i in range(20))
    wide = _write(tmp_path, "wide", f"<table><tr>{cells}</tr></table>")
    scrolled = _write(tmp_path, "scrolled", f'<div style="overflow-x:auto"><table><tr>{cells}</tr></table></div>')
    reports = _check(tmp_path, wide, scrolled)
    for name in ("wide.html", "scrolled.html"):  # cut off at the column edge, or hidden behind a scroll bar
        assert any(p.startswith("too wide: <table>") for p in reports[name].problems), reports[name].problems
    assert any("the page scrolls sideways" in p for p in reports["wide.html"].problems)
    assert [p for p in reports["scrolled.html"].problems if "box that scrolls sideways" in p]


@browser
def test_a_long_code_line_is_reported_once(tmp_path):
    line = "make reproduce PROFILE=cpu   # " + "retrain every run of the profile " * 6
    page = _write(
        tmp_path,
        "code",
        f'<div class="highlight"><pre style="overflow:auto"><span class="c1">{line}</span>\n'
        f'<span class="c1">{line}</span></pre></div>',
    )
    problems = _check(tmp_path, page)["code.html"].problems
    assert len(problems) == 1 and problems[0].startswith("too wide: <pre>") and "scrolls sideways" in problems[0]


@browser
def test_planted_raw_tex_is_reported_and_offline_mathjax_renders_it(tmp_path):
    inline = _write(tmp_path, "dollars", r"<p>The error $\lVert W - \hat W \rVert_F^2$ per layer.</p>")
    sphinx_style = r'<p>The penalty <span class="math notranslate nohighlight">\(\lambda \sum_l R(U_l)\)</span>.</p>'
    cdn = _write(
        tmp_path,
        "cdn",
        sphinx_style,
        head='<script defer src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"></script>',
    )
    local = _write(tmp_path, "local", sphinx_style, head=f'<script defer src="{_mathjax_copy(tmp_path)}"></script>')
    reports = _check(tmp_path, inline, cdn, local)
    assert any("raw TeX" in p and "lVert" in p for p in reports["dollars.html"].problems)
    assert any("raw TeX" in p for p in reports["cdn.html"].problems)  # the CDN is blocked, as offline
    assert reports["cdn.html"].blocked == ["https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"]
    assert reports["local.html"].math == "rendered" and reports["local.html"].problems == []


@browser
@pytest.mark.parametrize(
    "body, expected",
    [
        ('<img src="missing.png" alt="a figure">', "image did not load: missing.png"),
        ('<div class="cell_output"><div class="output stderr"><pre>UserWarning: x</pre></div></div>', "error output shown"),
        ('<pre>Traceback (most recent call last):\n  File "x.py"</pre>', "a Python traceback"),
        (
            '<div class="cell_input"><pre>data_dir = "/work/shared/data/cifar10"</pre></div>',
            "absolute path '/work/shared/data/cifar10'",
        ),
        (r"<p>copied to C:\Users\me\book</p>", "absolute path"),
    ],
)
def test_each_other_planted_defect_is_reported(tmp_path, body, expected):
    report = _check(tmp_path, _write(tmp_path, "defect", body))["defect.html"]
    assert any(expected in p for p in report.problems), report.problems


@browser
def test_a_given_build_path_is_forbidden_in_the_text(tmp_path):
    page = _write(tmp_path, "build", "<p>results under some/where/else</p>")
    assert _check(tmp_path, page, forbidden=("some/where",))["build.html"].problems == ["the path 'some/where' in the page text"]


def test_pages_of_a_book_leave_out_theme_and_source_folders(tmp_path):
    for rel in ("genindex.html", "book/intro.html", "_static/x.html", "_sources/book/a.html"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("<html></html>")
    (tmp_path / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=book/intro.html" />')
    assert book_browser.pages_of(tmp_path) == [Path("book/intro.html"), Path("genindex.html")]


@browser
def test_a_long_wide_table_fits_the_column_and_downloads_as_csv(tmp_path):
    """display.table in Chromium: 7 columns on screen, the rest collapsed, the CSV link downloads the table."""
    import pandas as pd
    from playwright.sync_api import sync_playwright

    from elrt_core.study import display

    df = pd.DataFrame({f"a_fairly_long_column_name_{i}": [1234567.0 * (i + 1) + r for r in range(40)] for i in range(12)})
    df["method"] = [f"Tucker-2 + a regularizer with a long name, run {r}" for r in range(40)]
    t = display.table(
        df, {"method": "method", **{c: (c.replace("_", " ") + " (MACs)", ",.0f") for c in df.columns[:12]}}, name="wide_table"
    )
    page = _write(tmp_path, "table", t.to_html())
    report = _check(tmp_path, page)["table.html"]
    assert report.problems == [], report.problems  # 7 columns fit, and the 13-column table is hidden until opened
    with book_browser.serve(tmp_path) as base, sync_playwright() as pw:
        browser_ = pw.chromium.launch(executable_path=book_browser.find_chromium(), args=book_browser.CHROMIUM_ARGS)
        try:
            tab = browser_.new_page(viewport={"width": book_browser.WIDTH, "height": book_browser.HEIGHT}, accept_downloads=True)
            tab.goto(base + "table.html")
            assert tab.locator("table.elrt-table").first.locator("th").count() == 7
            assert tab.locator("details.elrt-table-full").evaluate("d => d.open") is False
            with tab.expect_download() as info:
                tab.get_by_text("Download the full table as CSV").click()
            download = info.value
            assert download.suggested_filename == "wide_table.csv"
            assert Path(download.path()).read_text() == t.csv()
            tab.locator("details.elrt-table-full > summary").click()  # opened: 13 columns scroll inside the box
            box = tab.locator("details.elrt-table-full > div")
            assert box.locator("th").count() == 13
            assert box.evaluate("b => b.scrollWidth > b.clientWidth && b.clientWidth <= b.parentElement.clientWidth")
        finally:
            browser_.close()


@browser
@pytest.mark.parametrize(
    "alt, ok",
    [
        ("Figure: test top-1 per epoch of Tucker-2 with and without SO", True),
        ("Figure: relative error ||W - Ŵ||²/||W||² of each layer (dense / low-rank)", True),
        ("", False),
        ("../../_images/2096982c81d42a080ce5812ecd60a71b2fa336f71b74218f08a0c88624f5b551.svg", False),
        ("fig4_orthogonality_on_off.png", False),
        ("a plot", False),
    ],
)
def test_an_image_needs_alt_text_that_says_what_it_shows(tmp_path, alt, ok):
    image = _svg(tmp_path, "f.svg", 20)
    report = _check(tmp_path, _write(tmp_path, "alt", f'<img src="{image}" alt="{alt}" width="400">'))["alt.html"]
    assert (report.problems == []) == ok, report.problems
    assert ok or report.problems[0].startswith("image without descriptive alt text: f.svg")


@browser
def test_svg_text_is_measured_at_the_size_the_figure_is_shown(tmp_path):
    image = _svg(tmp_path, "fig.svg", 12)  # 12 units: 12 px at 400 px wide, 3 px at 100 px wide
    body = f'<img src="{image}" alt="Figure: accuracy of each method per epoch" style="width:{{}}px">'
    large, small = _write(tmp_path, "large", body.format(400)), _write(tmp_path, "small", body.format(100))
    inline = _write(
        tmp_path, "inline", '<svg width="100" height="25" viewBox="0 0 400 100"><text y="50" font-size="12">x axis</text></svg>'
    )
    reports = _check(tmp_path, large, small, inline)
    assert reports["large.html"].problems == [] and reports["large.html"].smallest_figure_text == 12
    assert reports["small.html"].problems == ["figure text 3.0 px at its displayed size (under 8 px): 'accuracy (%)' in fig.svg"]
    assert reports["inline.html"].smallest_figure_text == 3 and len(reports["inline.html"].problems) == 1


@browser
def test_on_a_phone_a_wide_table_may_scroll_in_its_own_box_if_its_first_column_stays(tmp_path):
    cells = "".join(f'<td style="white-space:nowrap">value number {i}</td>' for i in range(12))
    sticky = '<td style="position:sticky; left:0; background:white">Tucker-2</td>'
    box = '<div style="overflow-x:auto"><table><tr>{}</tr></table></div>'
    kept = _write(tmp_path, "kept", box.format(sticky + cells))
    lost = _write(tmp_path, "lost", box.format("<td>Tucker-2</td>" + cells))
    page = _write(tmp_path, "page", f"<table><tr>{cells}</tr></table>")
    reports = _check(tmp_path, kept, lost, page, width=book_browser.PHONE)
    assert reports["kept.html"].problems == [] and len(reports["kept.html"].scrolled_boxes) == 1
    assert reports["lost.html"].problems[0].endswith("and its first column does not stay in view")
    assert any("the page scrolls sideways" in p for p in reports["page.html"].problems)
    assert _check(tmp_path, kept)["kept.html"].problems[0].startswith("too wide: <table>")  # a desktop shows it whole


@browser
def test_the_summary_must_open_the_page(tmp_path):
    summary = '<section id="summary"><p>ELRT is level with the matrix formats.</p></section>'
    first = _write(tmp_path, "first", summary)
    late = _write(tmp_path, "late", '<div style="height:1200px"></div>' + summary)
    long = _write(tmp_path, "long", summary.replace("<p>", '<p style="height:1000px">'))
    none = _write(tmp_path, "none", "<p>No summary.</p>")
    pages = ("first.html", "late.html", "long.html", "none.html")
    desk = _check(tmp_path, first, late, long, none, summary_pages=pages)
    phone = _check(tmp_path, first, late, long, none, summary_pages=pages, width=book_browser.PHONE)
    assert desk["first.html"].problems == [] and phone["first.html"].problems == []
    assert desk["late.html"].problems[0].startswith("the summary starts at") and phone["late.html"].problems
    assert desk["long.html"].problems[0].startswith("the summary ends at") and phone["long.html"].problems == []
    assert desk["none.html"].problems == ["no summary on the page (#summary, .elrt-summary)"]
