"""Sphinx extension of the book (``sphinx: extra_extensions`` in ``_config.yml``).

The chapters are notebooks executed by papermill. Their first code cell (tag ``parameters``) holds
the defaults and the cell papermill adds after it (tag ``injected-parameters``) holds the values of
this build, among them the data folder of the machine that built the book. Neither is for a reader,
so this extension removes both cells from every page, outputs included. From the copies of the
notebooks that the book offers for download (``_sources``) it removes the injected cell only, so that
a downloaded notebook still runs with its defaults, and papermill's notebook metadata (the input and
output paths and the parameters of the build). The other code cells lose their source
through myst-nb's ``nb_remove_code_source``; what a reader needs to rerun a chapter is a short
markdown code block written in each notebook.

It also registers the citation style ``author_year_round`` (``bibtex_reference_style`` in
``_config.yml``): sphinxcontrib-bibtex's author-year style with round brackets and references
separated by semicolons, "(Jaderberg et al., 2014; Kim et al., 2016)" and "Bansal et al. (2018)".

Two directives: ``{elrt-table}`` (what :meth:`Session.table <elrt_core.study.session.Session.table>`
writes: a caption paragraph, then the table's HTML; numbered as a table of the book, labelled by its
``:name:``) and ``{elrt-config} WHAT`` (a table computed at build time by
:mod:`elrt_core.study.book_tables`: ``methods``, ``profiles``, ``lambdas``, ``runs PROFILE``,
``compute`` or ``chapters PROFILE``, the last two from the run records under ``$ELRT_RESULTS``, else the
book's ``results/``).

A chapter without the completion mark of ``elrt reproduce`` (an interrupted execution) stops the build.

The repository link and the launch buttons appear only where ``repository.url`` is set in
``_config.yml`` (the one place the study's address is written); a launch button opens the chapter's
source notebook in ``notebooks/``, which the repository holds, not the executed copy the book renders.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util.docutils import SphinxDirective
from sphinxcontrib.bibtex.plugin import register_plugin
from sphinxcontrib.bibtex.style.referencing import BracketStyle
from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle

__all__ = [
    "REMOVED_TAGS",
    "SOURCE_REMOVED_TAGS",
    "RoundAuthorYearStyle",
    "remove_tagged_cells",
    "clean_notebook_sources",
    "numbered_table",
    "NumberedTable",
    "ConfigTable",
    "CitationBlock",
    "frame_table",
    "repository_buttons",
    "launch_from_sources",
    "refuse_incomplete_chapters",
    "setup",
]

REMOVED_TAGS = ("parameters", "injected-parameters")
"""Cells with any of these tags are left out of the pages."""

SOURCE_REMOVED_TAGS = ("injected-parameters",)
"""Cells with any of these tags are left out of the downloadable notebooks."""


def remove_tagged_cells(app, doctree: nodes.document) -> None:
    """Drop the code cells tagged with :data:`REMOVED_TAGS` (myst-nb marks them ``tag_<tag>``)."""
    classes = {f"tag_{tag}" for tag in REMOVED_TAGS}
    for node in list(doctree.findall(nodes.container)):
        if classes & set(node.get("classes", [])) and node.parent is not None:
            node.parent.remove(node)


def clean_notebook_sources(app, exception) -> None:
    """Remove the injected cells and papermill's metadata from the notebooks copied to ``<outdir>/_sources``
    (the download button)."""
    if exception is not None:
        return
    sources = Path(app.outdir) / "_sources"
    for path in sources.rglob("*.ipynb*") if sources.is_dir() else []:
        try:
            nb = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            continue
        cells = nb.get("cells", [])
        kept = [c for c in cells if not set(c.get("metadata", {}).get("tags", [])) & set(SOURCE_REMOVED_TAGS)]
        papermill = nb.get("metadata", {}).pop("papermill", None)  # input/output paths and parameters
        if len(kept) != len(cells) or papermill is not None:
            nb["cells"] = kept
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _round(sep: str = ", ") -> BracketStyle:
    return BracketStyle(left="(", right=")", sep=sep)


@dataclass
class RoundAuthorYearStyle(AuthorYearReferenceStyle):
    """Author-year citations in round brackets: ``{cite:p}`` gives "(Sui et al., 2024)"."""

    bracket_parenthetical: BracketStyle = field(default_factory=lambda: _round("; "))
    bracket_textual: BracketStyle = field(default_factory=_round)
    bracket_author: BracketStyle = field(default_factory=_round)
    bracket_label: BracketStyle = field(default_factory=_round)
    bracket_year: BracketStyle = field(default_factory=_round)


class numbered_table(nodes.General, nodes.Element):
    """A table given as HTML, with a caption; Sphinx numbers it as a table ("Table 3")."""


def _visit_numbered_table(self, node: numbered_table) -> None:
    self.body.append(self.starttag(node, "div", CLASS="elrt-numbered-table"))


def _depart_numbered_table(self, node: numbered_table) -> None:
    self.body.append("</div>\n")


class NumberedTable(SphinxDirective):
    """``{elrt-table}``: its content is a caption paragraph, legend paragraphs (what the table rests on)
    and the table's HTML; ``:name:`` (required) is the label that numbers it and that ``{numref}`` links to."""

    has_content = True
    option_spec = {"name": directives.unchanged_required}

    def run(self) -> list[nodes.Node]:
        if "name" not in self.options:
            raise self.error("elrt-table needs a :name: (its label, which numbers it)")
        holder = nodes.Element()
        self.state.nested_parse(self.content, self.content_offset, holder)
        if not holder.children or not isinstance(holder[0], nodes.paragraph):
            raise self.error("elrt-table starts with its caption, a paragraph")
        node = numbered_table()
        node += nodes.caption(holder[0].rawsource, "", *holder[0].children)
        rest = holder.children[1:]
        lines = next((i for i, child in enumerate(rest) if not isinstance(child, nodes.paragraph)), len(rest))
        if lines:  # the paragraphs between caption and table: what it rests on, set like a figure's legend
            node += nodes.container("", *rest[:lines], classes=["legend"])
        node.extend(rest[lines:])
        self.add_name(node)
        return [node]


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "\u2014"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def frame_table(df: pd.DataFrame) -> nodes.table:
    """``df`` as a docutils table (header row, no index; floats with one decimal, missing as an em dash)."""
    table = nodes.table(classes=["elrt-config"])
    group = nodes.tgroup(cols=len(df.columns))
    table += group
    group.extend(nodes.colspec(colwidth=1) for _ in df.columns)

    def row(values) -> nodes.row:
        out = nodes.row()
        for v in values:
            out += nodes.entry("", nodes.paragraph(text=_cell(v)))
        return out

    group += nodes.thead("", row(df.columns))
    group += nodes.tbody("", *(row(r) for r in df.itertuples(index=False)))
    return table


class ConfigTable(SphinxDirective):
    """``{elrt-config} WHAT``: a table of :mod:`elrt_core.study.book_tables`, computed at build time
    (see the module docstring); with a ``:caption:`` it is numbered as a table (caption above it), and
    ``:name:`` labels it."""

    required_arguments = 1
    optional_arguments = 1
    option_spec = {"caption": directives.unchanged, "name": directives.unchanged}

    def _frame(self) -> pd.DataFrame:
        from . import book_tables

        what, *rest = self.arguments
        if what in book_tables.TABLES and not rest:
            return book_tables.TABLES[what]()
        if what in ("runs", "chapters") and rest:
            return book_tables.runs_table(rest[0]) if what == "runs" else book_tables.chapter_table(self._results(), rest[0])
        if what == "compute" and not rest:
            return book_tables.compute_table(self._results())
        raise self.error(
            f"elrt-config: unknown table {' '.join(self.arguments)!r}; allowed: "
            f"{', '.join(book_tables.TABLES)}, runs PROFILE, compute, chapters PROFILE"
        )

    def _results(self) -> Path:
        return Path(os.environ.get("ELRT_RESULTS") or Path(self.env.srcdir) / "results")

    def run(self) -> list[nodes.Node]:
        table = frame_table(self._frame())
        if "caption" not in self.options:
            return [table]
        node = numbered_table()  # the caption above the table, outside the box it may scroll in
        node += nodes.caption(self.options["caption"], "", *self.parse_inline(self.options["caption"])[0])
        node += table
        self.add_name(node)
        return [node]


class CitationBlock(SphinxDirective):
    """``{elrt-citation}``: the study's BibTeX entry, made from ``CITATION.cff`` beside the book;
    ``{elrt-citation} KEY``: the entry ``KEY`` of the book's bibliography (``bibtex_bibfiles``), as written."""

    optional_arguments = 1

    def run(self) -> list[nodes.Node]:
        from . import book_tables

        if self.arguments:
            bib = Path(self.env.srcdir) / self.config.bibtex_bibfiles[0]
            self.env.note_dependency(str(bib))
            text = book_tables.bib_entry(bib, self.arguments[0])
        else:
            cff = Path(self.env.srcdir) / "CITATION.cff"
            self.env.note_dependency(str(cff))
            text = book_tables.citation_bibtex(cff)
        return [nodes.literal_block(text, text, language="bibtex")]


def repository_buttons(app, config) -> None:
    """Show the repository link and the launch buttons only where ``repository.url`` is set; without
    it there is nothing to link to or launch from (the notebook download stays)."""
    options = config.html_theme_options
    if options.get("repository_url"):
        options.setdefault("use_repository_button", True)
        return
    options.pop("repository_url", None)
    for key in ("launch_buttons", "use_repository_button", "use_issues_button", "use_edit_page_button"):
        if key in options:  # only the options the theme was given: another theme knows none of them
            options[key] = {} if key == "launch_buttons" else False


GENERATED, SOURCES = "book/generated/", "notebooks/"
"""Where the book's executed chapters are, and where the repository keeps their source notebooks."""


def _to_sources(value):
    if isinstance(value, dict):
        return {k: _to_sources(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_sources(v) for v in value]
    return value.replace(GENERATED, SOURCES) if isinstance(value, str) and "://" in value else value


def launch_from_sources(app, pagename, templatename, context, doctree) -> None:
    """Point the launch buttons of a chapter at its source notebook (``notebooks/``): the executed copy
    under ``book/generated/`` is a build output that the repository does not hold."""
    if "header_buttons" in context:
        context["header_buttons"] = _to_sources(context["header_buttons"])


def refuse_incomplete_chapters(app, env, docnames: list[str]) -> None:
    """Stop the build at a chapter without the completion mark of ``elrt reproduce``
    (:func:`elrt_core.study.reproduce.is_complete`): a chapter whose execution was interrupted is never
    published, whoever left it there."""
    from sphinx.errors import ExtensionError

    from .reproduce import is_complete

    for doc in docnames:
        path = Path(app.srcdir) / f"{doc}.ipynb"
        if doc.startswith("book/generated/") and path.exists() and not is_complete(path):
            raise ExtensionError(
                f"{path} has no completion mark: its execution was interrupted or it was not written by "
                "`elrt reproduce`; rerun `elrt reproduce` (or `make book`) before building"
            )


def setup(app):
    app.setup_extension("sphinxcontrib.bibtex")  # declares the plugin group that the style joins
    register_plugin("sphinxcontrib.bibtex.style.referencing", "author_year_round", RoundAuthorYearStyle)
    app.connect("env-before-read-docs", refuse_incomplete_chapters)
    app.connect("doctree-read", remove_tagged_cells)
    app.connect("build-finished", clean_notebook_sources)
    app.connect("config-inited", repository_buttons)
    app.connect("html-page-context", launch_from_sources, priority=900)  # after the theme adds the buttons
    app.add_enumerable_node(numbered_table, "table", html=(_visit_numbered_table, _depart_numbered_table))
    app.add_directive("elrt-table", NumberedTable)
    app.add_directive("elrt-config", ConfigTable)
    app.add_directive("elrt-citation", CitationBlock)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
