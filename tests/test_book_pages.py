"""The book's numbered figures and tables (elrt_core.study.blocks, Session.figure/table), the tables of its
written pages (elrt_core.study.book_tables) and the directives and buttons of its Sphinx extension."""

import html
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import pandas as pd
import pytest

from elrt_core import profiles, records
from elrt_core.study import blocks, book_tables, plan, sphinx_ext
from elrt_core.study.session import Session

ROOT = Path(__file__).resolve().parents[1]


def test_alt_text_comes_from_the_caption_in_plain_words():
    caption = "Final test top-1 of each setting minus `Tucker-2` {cite}`x` (paired by seed). Grey dots are seeds."
    assert blocks.alt_text(caption) == "Figure: Final test top-1 of each setting minus Tucker-2 x (paired by seed)"
    long = blocks.alt_text("word " * 200)
    assert len(long) <= blocks.ALT_LIMIT and long.endswith("…")
    assert blocks.label("fig", "main_resnet20_2x differences") == "fig-main-resnet20-2x-differences"


def test_figure_and_table_blocks_are_myst_directives_that_a_dropdown_can_hold():
    block = blocks.figure_block("fig-a", "A caption\nover two lines.", "profile 'smoke'", "Figure: a line")
    assert block.splitlines()[:4] == [":::{glue:figure} fig-a", ":name: fig-a", ":alt: Figure: a line", ":figclass: elrt-figure"]
    assert "A caption over two lines.\n\nBased on: profile 'smoke'." in block
    table = blocks.table_block("tab-a", "Caption.", "bench records", "<table></table>", collapsed="Every record")
    assert table.startswith(":::::{admonition} Every record\n:class: dropdown\n\n:::{elrt-table}\n:name: tab-a")
    assert table.rstrip().endswith("<table></table>\n:::\n:::::")


@pytest.fixture
def shown(monkeypatch):
    """What a notebook would display: every display() and glue() bundle, in order."""
    import IPython.display
    import myst_nb.ext.glue

    out = []

    def capture(obj, raw=False, metadata=None, **kwargs):
        out.append(obj if raw else getattr(obj, "data", obj))

    monkeypatch.setattr(IPython.display, "display", capture)
    monkeypatch.setattr(myst_nb.ext.glue, "ipy_display", capture)
    return out


def test_a_session_figure_is_glued_and_shown_as_a_numbered_figure_with_alt_text(tmp_path, shown):
    from elrt_core.study import figures

    s = Session("smoke", str(tmp_path), train_missing=False, notebook="02_x")
    fig, ax = figures.plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [1, 0])
    key = s.figure(
        fig, "fig4_curves", "Training loss per epoch. Lines: means.", basis="bench records", alt="Two lines that cross"
    )
    glued, output = shown
    assert key == "fig-fig4-curves" and (tmp_path / "smoke" / "figures" / "fig4_curves.svg").is_file()
    assert set(glued) >= {"application/papermill.record/image/svg+xml", "application/papermill.record/image/png"}
    assert ":::{glue:figure} fig-fig4-curves\n:name: fig-fig4-curves\n:alt: Two lines that cross" in output["text/markdown"]
    assert "Based on: bench records." in output["text/markdown"]
    assert (
        output["text/html"].startswith('<figure><img src="data:image/png;base64,')
        and 'alt="Two lines that cross"' in output["text/html"]
    )


def test_a_session_table_puts_the_method_first_and_says_what_it_rests_on(tmp_path, shown):
    s = Session("smoke", str(tmp_path), train_missing=False, notebook="02_x")
    df = pd.DataFrame({"label": ["Tucker-2"], "test_text": ["85.00 ± 0.10 (3)"]})
    label = s.table(df, "Accuracy.", basis="published values", columns={"test_text": "test top-1", "label": "method"})
    (output,) = shown
    assert label == "tab-02-x-table1"
    # a cell that ends with s.table(...) shows the table once, never its label as a stray output line
    from IPython.core.formatters import DisplayFormatter

    assert DisplayFormatter().format(label) == ({}, {})
    assert DisplayFormatter().format("tab-02-x-table1")[0]["text/plain"] == "'tab-02-x-table1'"  # a plain str would show
    assert output["text/markdown"].startswith(
        ":::{elrt-table}\n:name: tab-02-x-table1\n\nAccuracy.\n\nBased on: published values."
    )
    assert re.findall(r"<th[^>]*>([^<]+)</th>", output["text/markdown"]) == ["method", "test top-1"]


def test_a_session_note_and_a_planned_part_are_one_line_each(tmp_path, shown):
    s = Session("smoke", str(tmp_path), train_missing=False, notebook="03_x")
    planned = plan.comparison(s.profile, "orthogonality")
    s.planned("The controls", planned)
    s.note("No profile trains\nthese runs.")
    s.planned("Partly", planned, [(planned[0], None)])  # one finished run (its record is not read)
    assert shown == [
        f"**The controls.** Planned: {len(planned)} runs, not yet trained; `elrt plan --profile smoke` lists them.",
        "No profile trains these runs.",
        f"**Partly.** {len(planned) - 1} of its {len(planned)} planned runs are not trained yet; `elrt plan --profile smoke` lists them.",
    ]


def test_the_config_tables_read_the_profiles_file():
    methods = book_tables.methods_table()
    assert list(methods["key"]) == list(profiles.methods())
    elrt = methods.set_index("key").loc["elrt"]
    assert elrt["regularizer"] == "SO on U1, U2, each factor's penalty / rank" and elrt["λ"] == "calibrated"
    assert methods.set_index("key").loc["tucker2+so/4", "λ"] == "0.25 × calibrated"
    table = book_tables.profiles_table().set_index("profile")
    assert table.loc["cpu-full", "training images"] == 45000 and table.loc["cpu-quick", "training images"] == 10000
    assert table.loc["cpu-full", "planned runs"] == len(plan.plan(profiles.load("cpu-full")))
    runs = book_tables.runs_table("cpu-full")
    assert list(runs["priority"]) == sorted(runs["priority"]) and runs["seeds"].iloc[0] == "0–4"


def _record(run, folder: Path, seconds: float | None):
    provenance = {"device_name": "cpu-x"} | ({"train_wall_seconds": seconds} if seconds is not None else {})
    data = records.build(
        run.config,
        status="finished",
        history=[{"epoch": e + 1, "train_loss": 1.0, "test_top1": 50.0} for e in range(run.config.epochs)],  # one row per epoch
        sizes={"train_images": 1, "val_images": 0, "test_images": 1},
        cost={"macs": 10, "params": 5, "macs_ratio": 1.0, "params_ratio": 1.0},
        provenance=provenance,
    )
    (folder / run.config.name).mkdir(parents=True)
    records.write_json(folder / run.config.name / records.RECORD_FILE, data)


def test_the_compute_of_a_profile_is_summed_from_its_records(tmp_path):
    planned = plan.plan(profiles.load("cpu-quick"))
    for run, seconds in zip(planned[:3], (3600, 7200, None)):  # the third record has no time
        _record(run, tmp_path / "cpu-quick", seconds)
    rows = book_tables.compute_table(tmp_path).set_index("profile")
    quick = rows.loc["cpu-quick"]
    assert quick["finished"] == 3 and quick["training hours, finished runs"] == 3.0
    assert quick["hours per run (median)"] == 1.5 and quick["hours left (estimate)"] == (len(planned) - 3) * 1.5
    assert (
        "smoke" not in rows.index and rows.loc["paper", "finished"] == 0 and pd.isna(rows.loc["paper", "hours per run (median)"])
    )
    full = plan.plan(profiles.load("cpu-full"))
    dense = [run for run in full if run.method == "dense"]
    for run in dense:  # 60 minutes for 15 epochs each; no weights kept: compression of seeds 0-2 retrains them
        _record(run, tmp_path / "cpu-full", 3600)
    left = sum(run.config.epochs for run in full if run.method != "dense") + 3 * 15  # compress runs count 5 epochs
    assert book_tables.compute_table(tmp_path).set_index("profile").loc["cpu-full", "hours left (estimate)"] == round(
        left / 15, 1
    )
    # cpu-full-60 has no finished run: its estimate takes the pace of cpu-full, which trains on the same data
    longest = plan.plan(profiles.load("cpu-full-60"))
    rows = book_tables.compute_table(tmp_path).set_index("profile")
    assert rows.loc["cpu-full-60", "hours left (estimate)"] == round(sum(run.config.epochs for run in longest) / 15, 1)
    assert (
        rows.loc["cpu-full-60", "pace of"] == "the runs of cpu-full (same data)" and rows.loc["cpu-full", "pace of"] == "its runs"
    )
    assert pd.isna(rows.loc["paper", "pace of"])  # nothing trains on its data
    chapters = book_tables.chapter_table(tmp_path, "cpu-quick").set_index("chapter")
    assert "05_provenance" not in chapters.index and chapters.loc["02_orthogonality_on_off", "planned runs"] > 0


def test_citations_come_from_the_citation_file_and_the_bibliography():
    study = book_tables.citation_bibtex(ROOT / "CITATION.cff")
    assert study.startswith("@software{elrt_study,") and "{ELRT, reproduced: low-rank training of compact CNNs}" in study
    paper = book_tables.bib_entry(ROOT / "references.bib", "sui2024elrt")
    assert paper.startswith("@misc{sui2024elrt,") and paper.endswith("}") and paper.count("{") == paper.count("}")
    with pytest.raises(KeyError):
        book_tables.bib_entry(ROOT / "references.bib", "nobody2099")


def test_repository_and_launch_buttons_appear_only_with_a_repository_address():
    empty = SimpleNamespace(
        html_theme_options={"repository_url": "", "launch_buttons": {"binderhub_url": "https://mybinder.org"}}
    )
    sphinx_ext.repository_buttons(None, empty)
    assert empty.html_theme_options == {"launch_buttons": {}}
    url = "https://github.com/owner/study"
    set_ = SimpleNamespace(
        html_theme_options={"repository_url": url, "launch_buttons": {"binderhub_url": "https://mybinder.org"}}
    )
    sphinx_ext.repository_buttons(None, set_)
    assert set_.html_theme_options["use_repository_button"] and set_.html_theme_options["launch_buttons"]
    context = {
        "header_buttons": [
            {"buttons": [{"url": "https://mybinder.org/v2/gh/o/r/main?urlpath=lab/tree/book/generated/02_x.ipynb"}]}
        ]
    }
    sphinx_ext.launch_from_sources(None, "book/generated/02_x", "page.html", context, None)
    assert context["header_buttons"][0]["buttons"][0]["url"].endswith("urlpath=lab/tree/notebooks/02_x.ipynb")


PAGE = """# A page

:::{elrt-table}
:name: tab-demo

The demo caption.

Based on: nothing at all.

<table class="demo"><tr><td>42</td></tr></table>
:::

See {numref}`tab-demo` and {numref}`tab-methods`.

```{elrt-config} methods
:caption: The methods.
:name: tab-methods
```

```{elrt-config} compute
```

```{elrt-citation}
```
"""


@pytest.mark.slow
def test_the_directives_number_tables_and_render_the_config_in_a_sphinx_build(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text(
        'extensions = ["myst_parser", "elrt_core.study.sphinx_ext"]\nbibtex_bibfiles = ["refs.bib"]\n'
        'myst_enable_extensions = ["colon_fence"]\nnumfig = True\nnumfig_format = {"table": "Table %s"}\n'
    )
    (src / "refs.bib").write_text((ROOT / "references.bib").read_text())
    (src / "CITATION.cff").write_text((ROOT / "CITATION.cff").read_text())
    (src / "index.md").write_text(PAGE)
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", str(src), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env={**os.environ, "ELRT_RESULTS": str(tmp_path / "no-results")},
        cwd=ROOT,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    page = (tmp_path / "out" / "index.html").read_text()
    demo = page[page.index('id="tab-demo"') :]
    assert re.search(r'<span class="caption-number">Table 1 </span><span class="caption-text">The demo caption', demo)
    assert re.search(r'<div class="legend[^"]*">\s*<p>Based on: nothing at all.</p>', demo) and '<table class="demo">' in demo
    assert re.search(r'href="#tab-demo"[^>]*><span class="std std-numref">Table 1</span>', page)
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    assert "Table 2" in text and "Tucker-2 + SO (U2)" in text and "tucker2+so" in text
    assert "cpu-full" in text  # the compute of each profile, from no records: none finished
    assert "@software{elrt_study," in text


def test_the_build_refuses_a_chapter_without_its_completion_mark(tmp_path):
    import nbformat
    from sphinx.errors import ExtensionError

    from elrt_core.study.reproduce import COMPLETE

    generated = tmp_path / "book" / "generated"
    generated.mkdir(parents=True)
    done, cut = nbformat.v4.new_notebook(), nbformat.v4.new_notebook()
    done.metadata[COMPLETE] = True
    nbformat.write(done, generated / "02_done.ipynb")
    nbformat.write(cut, generated / "03_cut.ipynb")  # what an interrupted execution would leave
    app = SimpleNamespace(srcdir=str(tmp_path))
    sphinx_ext.refuse_incomplete_chapters(app, None, ["book/intro", "book/generated/02_done"])
    with pytest.raises(ExtensionError, match="03_cut.ipynb has no completion mark"):
        sphinx_ext.refuse_incomplete_chapters(app, None, ["book/generated/02_done", "book/generated/03_cut"])
