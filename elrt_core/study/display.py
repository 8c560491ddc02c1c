"""Readable tables for the book: chosen columns with readable headers and units, formatted numbers.

One call in a notebook::

    display.table(df, {"final_top1": ("test top-1 (%)", ".2f"), "method": "method",
                       "macs": ("MACs per image", ",d")}, name="main_results")

(or ``Session.table(df, caption, runs, columns=...)``, which adds the caption and a file name).
The columns appear in the order given, except that ``result=`` (the accuracy, say) and before it
``key=`` (what names a row: the method) move to the front. No index column is shown. At most
``max_columns`` columns and ``max_rows`` rows are on screen; when the table has more, the rest is in
a collapsed ``<details>`` box. A table wider than the page (on a phone) scrolls sideways inside its
own box (``elrt-table-scroll``), never the page, with its first column kept in view (``_static/elrt.css``). Every table has a
link that downloads the full table as CSV. The CSV travels inside the notebook output as a ``data:``
URL, like the notebook's images, so it works in Jupyter, in the built book and offline, wherever
papermill wrote the executed notebook. Missing values show as an em dash; integers get thousands
separators.
"""

from __future__ import annotations

import base64
import html
import math
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Col", "Table", "table", "columns_of", "format_value", "decisive", "decimals", "MISSING", "MAX_COLUMNS", "MAX_ROWS"]

MISSING = "\u2014"
"""What a missing value (NaN, None) shows as: an em dash."""

MAX_COLUMNS = 7
MAX_ROWS = 15

Formatter = str | Callable[[object], str] | None


@dataclass(frozen=True)
class Col:
    """One column of a table: the DataFrame column ``key`` (or index level), shown as ``header``.

    ``fmt``: a format spec for :func:`format` (``".2f"``, ``",d"``, ``"+.1f"``, ``".1%"``), a
    callable value -> text, or None for the default (integers, and integer columns that a missing
    value made float, with thousands separators; other numbers with 2 decimals; anything else as
    ``str``). Put the unit into the header:
    ``"test top-1 (%)"``, ``"MACs per image"``, ``"step time (ms)"``.
    """

    key: str
    header: str
    fmt: Formatter = None


ColumnsSpec = Mapping[str, str | tuple] | Sequence[Col | tuple | str] | None


def columns_of(spec: ColumnsSpec, df: pd.DataFrame) -> list[Col]:
    """Normalize the accepted spellings of column specs into :class:`Col` objects (``None``: every column of ``df``)."""
    if spec is None:  # every column, header = name with spaces
        return [Col(str(c), str(c).replace("_", " ")) for c in df.columns]
    items = list(spec.items()) if isinstance(spec, Mapping) else list(spec)
    cols = []
    for item in items:
        if isinstance(item, Col):
            cols.append(item)
            continue
        if isinstance(spec, Mapping):
            key, value = item
            value = (value,) if isinstance(value, str) else tuple(value)
            cols.append(Col(key, *value))
        elif isinstance(item, str):
            cols.append(Col(item, item.replace("_", " ")))
        else:
            cols.append(Col(*item))
    return cols


def _is_missing(value) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isnan(value)


def _integral(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def format_value(value, fmt: Formatter = None) -> str:
    """``value`` as text: em dash when missing, yes or no for a truth value, else by ``fmt`` (see :class:`Col`)."""
    if _is_missing(value):
        return MISSING
    if callable(fmt):
        return fmt(value)
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if fmt:
        if fmt.endswith("d") and isinstance(value, numbers.Real) and float(value).is_integer():
            value = int(value)  # integer columns that pandas turned into floats (because of a NaN)
        return format(value, fmt)
    if _integral(value):
        return format(value, ",d")
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return format(value, ",.2f")
    return str(value)


def decisive(value: float, limit: float, digits: int = 2, most: int = 6) -> float:
    """``value`` rounded to ``digits`` decimals, or to more (up to ``most``) where fewer would put it
    on the other side of ``limit`` (or onto it) than it is: 1.5996 against 1.6 stays 1.5996, never
    1.6, so a reader who compares the printed number with the limit reaches the verdict the code
    reached from the unrounded one. Print it with :func:`decimals`."""
    for d in range(digits, most + 1):
        shown = round(value, d)
        if (shown > limit, shown == limit) == (value > limit, value == limit):
            return shown
    return value  # closer to the limit than ``most`` decimals: kept whole (:func:`decimals` prints it so)


def decimals(value: float, digits: int = 2, most: int = 6, sign: bool = False) -> str:
    """``value`` with at least ``digits`` decimals and every further one it carries (up to ``most``):
    1.2 -> "1.20", 1.5996 -> "1.5996"; a value that carries more prints in full (1.5999999, -1e-07);
    with ``sign``, a + before positive values."""
    plus = "+" if sign else ""
    d = next((d for d in range(digits, most + 1) if round(value, d) == value), None)
    return f"{value:{plus}.{d}f}" if d is not None else f"{value:{plus}}"


def _numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _whole_floats(series: pd.Series) -> bool:
    """An integer column that a missing value made float: float, with a NaN, every other value whole."""
    if not pd.api.types.is_float_dtype(series) or not series.isna().any():
        return False
    values = series.dropna()
    return len(values) > 0 and bool((values == values.round()).all()) and bool((values.abs() < 2**53).all())


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "table"


# Numbers align right and never break; headers and text break between words, and inside a word only
# when that word alone is wider than the column could be (``break-word``, unlike ``anywhere``, does
# not let the browser squeeze a column below its longest word: "channels_last" stays whole).
_CELL_STYLE = {True: "text-align:right; white-space:nowrap", False: "text-align:left; overflow-wrap:break-word"}
_NUMBER_TEXT = re.compile(r"[-+−]?[\d.,]+%?( ± [\d.,]+)?( \(\d+\))?")
"""A number written as text, such as "85.19 ± 0.20 (3)": set like a number (right-aligned, never broken)."""
_SCROLL = '<div class="elrt-table-scroll" style="overflow-x:auto; max-width:100%">'
"""Opens the box a table scrolls sideways in where it is wider than the page (a phone), never the page."""
_HEAD_STYLE = {True: "text-align:right; overflow-wrap:break-word", False: "text-align:left; overflow-wrap:break-word"}


class Table:
    """A formatted table; shows itself in Jupyter and in the book through ``_repr_html_``.

    Attributes: ``columns`` (the :class:`Col` specs, result first), ``data`` (the selected raw
    columns, readable headers, a fresh 0..n-1 index), ``text`` (the same, formatted as strings),
    ``name`` (the CSV file name without ``.csv``), ``max_columns`` and ``max_rows``.
    """

    def __init__(
        self,
        df: pd.DataFrame,
        columns: ColumnsSpec = None,
        *,
        name: str = "table",
        result: str | None = None,
        key: str | None = None,
        max_columns: int = MAX_COLUMNS,
        max_rows: int = MAX_ROWS,
    ) -> None:
        if max_columns < 1 or max_rows < 1:
            raise ValueError("max_columns and max_rows must be at least 1")
        cols = columns_of(columns, df)
        missing_index = [c.key for c in cols if c.key not in df.columns and c.key in (df.index.names or [])]
        if missing_index:
            df = df.reset_index(level=missing_index)
        unknown = [c.key for c in cols if c.key not in df.columns]
        if unknown:
            raise KeyError(f"no column {unknown} in the table; it has {list(df.columns)}")
        for lead in (result, key):  # the key column ends up first, the result column next
            if lead is None:
                continue
            first = [c for c in cols if c.key == lead]
            if not first:
                raise KeyError(
                    f"{'key' if lead == key else 'result'} column {lead!r} is not among the columns {[c.key for c in cols]}"
                )
            cols = first + [c for c in cols if c.key != lead]
        headers = [c.header for c in cols]
        if len(set(headers)) != len(headers):
            raise ValueError(f"headers must be distinct: {headers}")
        whole = [c.fmt is None and _whole_floats(df[c.key]) for c in cols]
        cols = [replace(c, fmt=",d") if w else c for c, w in zip(cols, whole)]
        self.columns = cols
        self.name = _slug(name)
        self.max_columns = max_columns
        self.max_rows = max_rows
        raw = df[[c.key for c in cols]].reset_index(drop=True)
        raw.columns = headers
        for header, w in zip(headers, whole):
            if w:  # whole numbers stay whole in the CSV too
                raw[header] = raw[header].astype("Int64")
        self.data = raw
        self._numeric = [_numeric(df[c.key]) for c in cols]
        self.text = pd.DataFrame(
            {h: [format_value(v, c.fmt) for v in raw[h].tolist()] for h, c in zip(headers, cols)}, columns=headers
        )

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape

    @property
    def truncated(self) -> bool:
        """True when rows or columns are left off the on-screen part (they are in the dropdown)."""
        rows, cols = self.shape
        return rows > self.max_rows or cols > self.max_columns

    def csv(self) -> str:
        """The full table as CSV text: readable headers, raw (unrounded) values, empty for missing."""
        return self.data.to_csv(index=False, lineterminator="\n")

    def csv_href(self) -> str:
        """A ``data:`` URL holding :meth:`csv` (UTF-8, base64)."""
        return "data:text/csv;charset=utf-8;base64," + base64.b64encode(self.csv().encode()).decode("ascii")

    def _html_table(self, rows: int, cols: int) -> str:
        head = "".join(
            f'<th style="{_HEAD_STYLE[num]}">{html.escape(h)}</th>'
            for h, num in zip(self.text.columns[:cols], self._numeric[:cols])
        )
        body = []
        for _, row in self.text.iloc[:rows, :cols].iterrows():
            cells = "".join(
                f'<td style="{_CELL_STYLE[num or bool(_NUMBER_TEXT.fullmatch(v))]}">{html.escape(v)}</td>'
                for v, num in zip(row.tolist(), self._numeric[:cols])
            )
            body.append(f"<tr>{cells}</tr>")
        return f'<table class="dataframe elrt-table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'

    def to_html(self) -> str:
        rows, cols = self.shape
        shown_rows, shown_cols = min(rows, self.max_rows), min(cols, self.max_columns)
        parts = ['<div class="elrt-table-block">', _SCROLL, self._html_table(shown_rows, shown_cols), "</div>"]
        if self.truncated:
            left_off = []
            if cols > shown_cols:
                left_off.append(f"{shown_cols} of {cols} columns")
            if rows > shown_rows:
                left_off.append(f"{shown_rows} of {rows} rows")
            parts.append(f'<p class="elrt-table-note">Shown: {" and ".join(left_off)}.</p>')
            parts.append(
                f'<details class="elrt-table-full"><summary>Full table ({rows} rows, {cols} columns)</summary>'
                f"{_SCROLL}{self._html_table(rows, cols)}</div></details>"
            )
        parts.append(
            f'<p class="elrt-table-download"><a download="{self.name}.csv" href="{self.csv_href()}">'
            f"Download the full table as CSV ({self.name}.csv)</a></p>"
        )
        parts.append("</div>")
        return "".join(parts)

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        return self.text.head(self.max_rows).to_string(index=False)


def table(df: pd.DataFrame, columns: ColumnsSpec = None, **options: Any) -> Table:
    """A :class:`Table` of ``df``: see the module docstring. Returning it from a cell displays it.

    ``columns``: a mapping ``key -> header`` or ``key -> (header, fmt)``, or a list of :class:`Col`,
    ``(key, header[, fmt])`` tuples or plain keys; None takes every column. ``result``: the key of
    the result column, moved to the front (default: the first column given); ``key``: the column that
    names a row, moved before it. Other ``options``: ``name``, ``max_columns``, ``max_rows`` of :class:`Table`.
    """
    return Table(df, columns, **options)
