"""What a chapter's figure or table output holds: a MyST block for the book and an HTML view for Jupyter.

A figure is glued (myst-nb ``glue``) under its label and shown by a ``{glue:figure}`` block: a real
figure of the book, numbered across the book by Sphinx, with its caption, a legend line saying what it
rests on, descriptive alt text and a label that other pages link to (``{numref}`fig-...```). A table is
an ``{elrt-table}`` block (:mod:`elrt_core.study.sphinx_ext`): its caption, the same legend line and the
table's HTML, numbered as a table. Either can sit in a collapsed box (``collapsed``: the box's title).

Each output also carries ``text/html`` (the figure as an image, the table with its caption), which
Jupyter shows; the book renders ``text/markdown`` first (``nb_mime_priority_overrides`` in
``_config.yml``).
"""

from __future__ import annotations

import html
import re

__all__ = ["plain", "alt_text", "label", "basis_line", "figure_block", "table_block", "figure_html", "table_html", "ALT_LIMIT"]

ALT_LIMIT = 240
"""The longest default alt text, in characters (a screen reader reads it whole)."""

_MARKUP = re.compile(r"\{[a-z:]+\}`([^`]*)`|[`*$]")


def plain(text: str) -> str:
    """``text`` without MyST markup: roles keep their content, backticks, emphasis and ``$`` go."""
    return re.sub(r"\s+", " ", _MARKUP.sub(lambda m: m.group(1) or "", text)).strip()


def alt_text(caption: str) -> str:
    """A default alt text from a caption: its first sentence in plain text ("Figure: ..."), cut at a
    word within :data:`ALT_LIMIT` characters."""
    text = plain(caption)
    first = re.split(r"(?<=[.!?])\s+(?=[A-Z])", text, maxsplit=1)[0].rstrip(".")
    alt = f"Figure: {first}"
    if len(alt) > ALT_LIMIT:
        alt = alt[: ALT_LIMIT - 1].rsplit(" ", 1)[0] + "…"
    return alt


def label(prefix: str, name: str) -> str:
    """A label for cross-references: ``prefix-name`` in lower case, runs of other characters as ``-``."""
    return f"{prefix}-" + (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "x")


def _fence(kind: str, argument: str, options: dict[str, str], body: str, colons: int = 3) -> str:
    head = ":" * colons + f"{{{kind}}} {argument}".rstrip()
    lines = [head, *(f":{k}: {v}" for k, v in options.items()), "", body, ":" * colons]
    return "\n".join(lines)


def _collapsed(block: str, title: str | None) -> str:
    """``block`` inside a collapsed box titled ``title`` (a dropdown admonition), or as it is."""
    if not title:
        return block
    return _fence("admonition", title, {"class": "dropdown"}, block, colons=5)  # longer fence: it holds the block


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def figure_block(key: str, caption: str, basis: str, alt: str, collapsed: str | None = None) -> str:
    """The MyST block of the figure glued under ``key`` (also its label)."""
    body = f"{_one_line(caption)}\n\n{basis_line(basis)}"
    options = {"name": key, "alt": _one_line(alt), "figclass": "elrt-figure"}
    return _collapsed(_fence("glue:figure", key, options, body), collapsed)


def table_block(name: str, caption: str, basis: str, table_html: str, collapsed: str | None = None) -> str:
    """The MyST block of a table labelled ``name``: caption, legend line, then the table's HTML."""
    body = f"{_one_line(caption)}\n\n{basis_line(basis)}\n\n{table_html}"
    return _collapsed(_fence("elrt-table", "", {"name": name}, body), collapsed)


def basis_line(basis: str) -> str:
    """The legend line under a caption: what the figure or table rests on."""
    return f"Based on: {_one_line(basis)}."


def figure_html(png_base64: str, width: int, caption: str, basis: str, alt: str) -> str:
    """The figure for Jupyter: the PNG at ``width`` px, its caption and legend line."""
    return (
        f'<figure><img src="data:image/png;base64,{png_base64}" width="{width}" alt="{html.escape(alt, quote=True)}">'
        f"<figcaption>{html.escape(caption)}<br><small>{html.escape(basis_line(basis))}</small></figcaption></figure>"
    )


def table_html(caption: str, basis: str, table: str) -> str:
    """The table for Jupyter: caption, legend line and table."""
    return f"<p><b>{html.escape(caption)}</b><br><small>{html.escape(basis_line(basis))}</small></p>{table}"
