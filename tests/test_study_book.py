"""The study end to end at the smoke profile: every notebook runs under papermill, every figure and
table states what it rests on (the profile of its runs, or bench records / published values), and the Jupyter Book builds offline with each figure, table and glued number."""

import html as html_lib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import book_browser
import nbformat
import pytest

from elrt_core.study import bench_records, provenance, regime, tables

# Every test here is slow (the smoke book takes minutes): make test-quick leaves them out.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
PROFILE_WORDS = ("profile 'smoke'", "2 epochs", "320-image training subset", "200 held out for validation", "n = ")
OTHER_BASES = (bench_records.BASIS, tables.PUBLISHED_BASIS, provenance.BASIS, regime.BASIS)


def _elrt(*args, env, log: Path) -> subprocess.Popen:
    """``elrt ARGS`` started in a child process writing its output to ``log`` (see :func:`_finished`)."""
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "elrt_core.cli", *args], stdout=out, stderr=subprocess.STDOUT, env=env)


def _finished(proc: subprocess.Popen, log: Path) -> None:
    """Wait for ``proc`` (an :func:`_elrt`); the test fails with the end of its output unless it succeeded."""
    proc.wait(timeout=1200)
    assert proc.returncode == 0, f"{' '.join(proc.args[2:])} failed:\n{log.read_text()[-6000:]}"


@pytest.fixture(scope="module")
def smoke_book(tmp_path_factory, cifar10_dir):
    """Train the smoke runs, bench, execute every notebook and build the book in a scratch copy. The
    benches run beside the training (neither reads what the other writes) and the notebooks two at a
    time, so that the book is ready sooner; each step writes what it writes alone."""
    work = tmp_path_factory.mktemp("smoke_book")
    env = {**os.environ, "ELRT_RESULTS": str(work / "results"), "ELRT_DATA_DIR": str(cifar10_dir)}
    env["ELRT_QUIET_CORES"] = "1000"  # the chain, not a speed: the smoke bench counts whatever else the machine runs

    def elrt(*args: str) -> None:
        log = work / f"elrt-{args[0]}-{len(list(work.glob('elrt-*')))}.log"
        _finished(_elrt(*args, env=env, log=log), log)

    training_log = work / "elrt-batch.log"
    training = _elrt("batch", "--profile", "smoke", "--jobs", "2", "--threads", "1", "--device", "cpu", env=env, log=training_log)
    try:
        judged = bench_records.CLAIM_SETTING  # claim 5 reads only records of this setting
        setting = ["--variant", judged["variant"], "--rank-rule", judged["rank_rule"], "--batch-size", str(judged["batch_size"])]
        elrt("bench", *setting, "--steps", "3", "--warmup", "0")  # 3 rounds: an interval
        elrt("bench", "--reg-overhead", "--batch-size", "8", "--steps", "1", "--warmup", "0")
    except BaseException:
        training.terminate()  # the batch stops its runs (as for Ctrl-C) and is not left running
        raise
    _finished(training, training_log)
    book = work / "book_src"
    generated = book / "book" / "generated"
    elrt("reproduce", "--profile", "smoke", "--reuse-only", "--jobs", "2", "--out", str(generated))
    for name in ("_config.yml", "_toc.yml", "references.bib", "CITATION.cff"):  # the cite page reads the last two
        shutil.copy(ROOT / name, book / name)
    shutil.copytree(ROOT / "_static", book / "_static")
    for page in (ROOT / "book").glob("*.md"):
        shutil.copy(page, book / "book" / page.name)
    build = subprocess.run(
        [str(Path(sys.executable).parent / "jupyter-book"), "build", "--all", str(book)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return {"work": work, "generated": generated, "html": book / "_build" / "html", "build": build}


def test_every_notebook_has_a_parameters_cell_and_is_committed_without_outputs():
    assert NOTEBOOKS == [
        "01_approximation_error",
        "02_orthogonality_on_off",
        "03_regularizer_comparison",
        "04_main_results",
        "05_provenance",
        "06_efficiency",
        "07_training_length",
    ]
    for name in NOTEBOOKS:
        raw = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
        ids = [c.get("id") for c in raw["cells"]]  # nbformat 4.5: every cell has its own id (read before nbformat adds any)
        assert None not in ids and len(set(ids)) == len(ids), f"{name}: a cell without an id, or two with one"
        nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), name
        assert "profile =" in code[0].source
        assert all(not c.get("outputs") for c in code), f"{name} is committed with outputs"


def _blocks(outputs, kind: str) -> list[str]:
    """The MyST blocks of one kind (``glue:figure`` or ``elrt-table``) among the Markdown outputs."""
    return [md for o in outputs if f"{{{kind}}}" in (md := o.get("data", {}).get("text/markdown", ""))]


def test_every_notebook_executes_and_every_figure_and_table_states_its_basis(smoke_book):
    """Each figure is glued and shown as a numbered figure with a label and descriptive alt text, each
    table as a numbered table; both say what they rest on (the training profile, or another basis)."""
    for name in NOTEBOOKS:
        nb = nbformat.read(smoke_book["generated"] / f"{name}.ipynb", as_version=4)
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
        assert not [o for o in outputs if o.output_type == "error"], name
        figures, shown_tables = _blocks(outputs, "glue:figure"), _blocks(outputs, "elrt-table")
        assert figures or shown_tables, f"{name} shows nothing"
        glued = {o["metadata"]["scrapbook"]["name"] for o in outputs if "scrapbook" in o.get("metadata", {})}
        for block in figures:
            key = re.search(r"\{glue:figure\} (\S+)", block).group(1)
            alt = re.search(r"^:alt: (.+)$", block, re.M).group(1)
            assert key in glued and f":name: {key}" in block and len(alt.split()) >= 4, (name, block[:300])
        texts = [o.get("data", {}).get("text/markdown", "") for o in outputs]
        assert f"elrt reproduce --profile smoke --only {name}" in texts[-1], name  # the reproduce snippet ends the chapter
        for block in figures + shown_tables:  # each states what it rests on: the training profile, or another basis
            basis = re.search(r"^Based on: (.+)$", block, re.M).group(1)
            bases = [b for b in OTHER_BASES if b in basis]
            assert bases or all(w in basis for w in PROFILE_WORDS), (name, basis)
            assert not (bases and "epochs" in basis), (name, basis)
        if name == "06_efficiency":  # bench records and published speedups; training runs only for the rank rules' accuracy
            blocks = figures + shown_tables
            assert any(bench_records.BASIS in b for b in blocks) and any(tables.PUBLISHED_BASIS in b for b in blocks)
            assert all(bench_records.BASIS in b or tables.PUBLISHED_BASIS in b or "hardware-aware" in b for b in blocks)


def test_no_chapter_prints_a_raw_text_box(smoke_book):
    """A chapter says why a section is empty in a line of text (Session.note, Session.planned), never in a
    box of printed output."""
    printed = {}
    for name in NOTEBOOKS:
        nb = nbformat.read(smoke_book["generated"] / f"{name}.ipynb", as_version=4)
        streams = [o.text for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "stream"]
        if streams:
            printed[name] = streams
    assert not printed, printed


def test_figures_are_saved_as_png_and_svg(smoke_book):
    folder = smoke_book["work"] / "results" / "smoke" / "figures"
    pngs = {p.stem for p in folder.glob("*.png")}
    assert {
        "fig3_layer_errors_trained",
        "fig4_orthogonality_on_off",
        "fig5_regularizers_differences",
        "main_accuracy_vs_flops",
        "efficiency_speedup_vs_macs",
    } <= pngs
    assert pngs == {p.stem for p in folder.glob("*.svg")}


def test_book_builds_offline_with_figures_tables_and_glued_numbers(smoke_book):
    build = smoke_book["build"]
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert "WARNING" not in build.stdout + build.stderr, re.findall(r".*WARNING.*", build.stdout + build.stderr)
    html = smoke_book["html"]
    for name in NOTEBOOKS:
        page = (html / "book" / "generated" / f"{name}.html").read_text()
        assert "<table" in page, name
        if name not in ("05_provenance",):
            assert re.search(r"<img[^>]+\.(svg|png)", page), name
    intro = html_lib.unescape(re.sub(r"<[^>]+>", "", (html / "book" / "intro.html").read_text()))
    for phrase in (
        "smoke",
        "2 epochs, 320-image training subset",
        "at 2x fewer MACs per layer, relative error of each other format minus its own",
        "has the lower error): vs matrix",
        "Tucker-2 + SO (U2) − Tucker-2",
        "none is named best",
        "ELRT (Tucker-2 + SO on U1, U2, 1/rank) − each",
        "training step vs dense",
    ):
        assert phrase in intro, phrase
    assert "not available" in intro
    words = re.findall(r"\b(supported|contradicted|inconclusive)\b", intro)
    assert len(words) >= 5 + 3  # five verdict cells, and the three words explained above the table


def test_chapters_show_no_code_and_no_parameter_cells(smoke_book):
    """Code sources are hidden (nb_remove_code_source), the parameter cells are gone with their
    outputs (elrt_core.study.sphinx_ext), and math is served from the build, not a CDN."""
    for name in NOTEBOOKS:
        page = (smoke_book["html"] / "book" / "generated" / f"{name}.html").read_text()
        assert "cell_input" not in page, name
        assert "tag_parameters" not in page and "tag_injected-parameters" not in page, name
    methods = (smoke_book["html"] / "book" / "methods.html").read_text()
    assert re.search(r'<script[^>]+src="\.\./_static/mathjax/tex-chtml\.js(\?[^"]*)?"', methods)
    assert (smoke_book["html"] / "_static" / "mathjax" / "output" / "chtml" / "fonts").is_dir()
    assert "cdn.jsdelivr" not in methods


def test_no_published_file_holds_a_path_of_the_building_machine(smoke_book, cifar10_dir):
    """Pages and the notebooks offered for download name neither the data folder nor the build folder."""
    html = smoke_book["html"]
    paths = (str(cifar10_dir), str(smoke_book["work"]), str(ROOT))
    for f in [*html.rglob("*.html"), *(html / "_sources").rglob("*")]:
        if f.is_file():
            text = f.read_text(errors="replace")
            assert not [p for p in paths if p in text], (f.relative_to(html), [p for p in paths if p in text])


def test_every_page_reads_well_in_a_browser(smoke_book, cifar10_dir, browser_ready):
    """Headless Chromium at 1400 and 390 px, network blocked: no overflow (on the phone, wide tables scroll
    in their own box with their first column in view), images loaded with descriptive alt text, figure text
    of 8 px or more as shown, math rendered, no error boxes, no machine paths (tests/book_browser.py).
    Screenshots and summary.json go to _build/screenshots/<width>/."""
    html = smoke_book["html"]
    pages = book_browser.pages_of(html)
    assert {f"book/generated/{n}.html" for n in NOTEBOOKS} | {"book/intro.html", "book/references.html"} <= {
        p.as_posix() for p in pages
    }
    reports = book_browser.check_widths(
        html, pages, screenshots=ROOT / "_build" / "screenshots", forbidden=(str(cifar10_dir), str(smoke_book["work"]), str(ROOT))
    )
    print(book_browser.describe(reports))
    assert all(r.height > 0 and r.heading for r in reports), book_browser.describe(reports)
    assert not [r for r in reports if r.problems], book_browser.describe([r for r in reports if r.problems])
    math = {(r.page, r.width): r.math for r in reports}
    assert math[("book/methods.html", book_browser.WIDTH)] == "rendered"
    assert not [r.blocked for r in reports if r.blocked], "the book fetched from the network"


def test_the_introduction_opens_with_its_summary(smoke_book, browser_ready):
    """The introduction's summary (a section labelled ``summary`` or a box of class ``elrt-summary``) starts
    within its first 900 px at 1400 and at 390 px, and ends there at 1400 px."""
    intro = [Path("book/intro.html")]
    reports = book_browser.check_widths(smoke_book["html"], intro, summary_pages=("book/intro.html",))
    summary = [p for r in reports for p in r.problems if "summary" in p]
    assert not summary, summary
