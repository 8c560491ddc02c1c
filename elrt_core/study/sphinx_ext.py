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
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from docutils import nodes
from sphinxcontrib.bibtex.plugin import register_plugin
from sphinxcontrib.bibtex.style.referencing import BracketStyle
from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle

__all__ = [
    "REMOVED_TAGS",
    "SOURCE_REMOVED_TAGS",
    "RoundAuthorYearStyle",
    "remove_tagged_cells",
    "clean_notebook_sources",
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


def setup(app):
    app.setup_extension("sphinxcontrib.bibtex")  # declares the plugin group that the style joins
    register_plugin("sphinxcontrib.bibtex.style.referencing", "author_year_round", RoundAuthorYearStyle)
    app.connect("doctree-read", remove_tagged_cells)
    app.connect("build-finished", clean_notebook_sources)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
