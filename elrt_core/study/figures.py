"""Figures of the study: one style, sized for a phone as well as a desktop, saved as PNG (200 dpi) and SVG.

Every figure is at most :data:`FIG_WIDTH` inches wide and its smallest text is :data:`MIN_FONT_PT`
points. The book shows a figure at its own size where the text column is wider (1400-px window: text of
13 px and more) and shrinks it to the column on a phone (390 px: a 358-px column, text of 8 px and
more). Panels are stacked rather than set side by side where one row would not fit, each format has its
own colour *and* marker (:data:`FORMAT_STYLE`), and labels sit next to what they name where a legend
would cover data. The SVG keeps its text as text (``svg.fonttype: none``), so a browser can measure it.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib import ticker
from matplotlib.axis import XAxis
from matplotlib.lines import Line2D

from ..analysis import COST_NAMES
from ..lowrank.convert import format_class
from ..lowrank.layers import FORMATS

__all__ = [
    "set_style",
    "save",
    "PNG_DPI",
    "FIG_WIDTH",
    "MIN_FONT_PT",
    "FORMAT_STYLE",
    "format_labels",
    "format_colours",
    "format_markers",
    "method_styles",
    "layer_errors",
    "error_curves",
    "error_summary",
    "training_curves",
    "accuracy_vs_flops",
    "differences",
    "curves_by_method",
    "effect_trend",
]

ERROR_LABEL = "relative error ||W - Ŵ||² / ||W||²"
PNG_DPI = 200
"""Resolution of the saved PNG files (the book shows the SVG; the PNG is for slides and papers)."""
FIG_WIDTH = 5.6
"""Width of every figure in inches (538 px in the book): a phone's column of about 340 px shrinks it to 0.63, so 10-pt text stays above 8 px."""
MIN_FONT_PT = 10.0
"""The smallest text of any figure, in points: 13 px at its own size, 8.3 px on a 390-px phone."""
STYLE = {
    "svg.hashsalt": "elrt",
    "svg.fonttype": "none",  # text stays text: searchable, sharp, measurable by the browser check
    "figure.dpi": 100,
    "savefig.dpi": PNG_DPI,
    "savefig.bbox": "tight",
    "font.size": 11,
    "axes.titlesize": 11,
    "axes.labelsize": 11,
    "figure.titlesize": 11,
    "figure.labelsize": 11,
    "xtick.labelsize": MIN_FONT_PT,
    "ytick.labelsize": MIN_FONT_PT,
    "legend.fontsize": MIN_FONT_PT,
    "legend.title_fontsize": MIN_FONT_PT,
}
"""The rcParams of every figure (:func:`set_style`)."""

OKABE_ITO = ["#0072B2", "#E69F00", "#CC79A7", "#009E73", "#D55E00", "#56B4E9", "#000000", "#999999"]
"""Colours told apart with any colour vision (Okabe and Ito), in the order methods take them."""
MARKERS = "osD^vPXh*<>"
FORMAT_STYLE: dict[str, tuple[str, str]] = {
    "tucker2": ("#0072B2", "o"),  # blue circle
    "matrix": ("#E69F00", "s"),  # orange square
    "spatial": ("#CC79A7", "^"),  # reddish purple triangle
    "cp": ("#009E73", "D"),  # bluish green diamond
}
"""Colour and marker of each format, the same in every figure; other formats take :data:`OKABE_ITO`'s rest."""
REFERENCE_GREY = "0.55"
SEED_GREY = "0.4"
"""The dots of single seeds in :func:`differences` (the captions call them grey)."""


def set_style() -> None:
    """The study's one plotting style (seaborn whitegrid, Okabe-Ito colours, :data:`STYLE`)."""
    sns.set_theme(style="whitegrid", context="notebook", palette=OKABE_ITO)
    plt.rcParams.update(STYLE)


def save(fig: plt.Figure, name: str, folder: Path) -> list[Path]:
    """Write ``fig`` as ``folder/name.png`` (:data:`PNG_DPI`) and ``.svg`` (text as text); no timestamps,
    so reruns are byte-stable. Returns ``[png, svg]``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png", folder / f"{name}.svg"]
    fig.savefig(paths[0], dpi=PNG_DPI, metadata={"Software": None})
    with plt.rc_context({"svg.fonttype": STYLE["svg.fonttype"], "svg.hashsalt": STYLE["svg.hashsalt"]}):
        fig.savefig(paths[1], metadata={"Date": None, "Creator": None})
    return paths


def format_labels(df: pd.DataFrame) -> dict[str, str]:
    """Display label of every format in ``df["format"]`` (read from its layer class), in the order of
    :data:`elrt_core.lowrank.FORMATS`."""
    present = set(df["format"])
    return {f: format_class(f).label for f in FORMATS if f in present} | {
        f: format_class(f).label for f in sorted(present - set(FORMATS))
    }


def _format_style(formats: Iterable[str]) -> dict[str, tuple[str, str]]:
    """(colour, marker) of each of ``formats``: :data:`FORMAT_STYLE`, others in sorted order after them."""
    formats = list(formats)
    spare = [c for c in OKABE_ITO if c not in {c for c, _ in FORMAT_STYLE.values()}]
    extra = sorted(set(formats) - set(FORMAT_STYLE))
    return {
        f: FORMAT_STYLE[f] if f in FORMAT_STYLE else (spare[extra.index(f) % len(spare)], MARKERS[4 + extra.index(f) % 7])
        for f in formats
    }


def format_colours(formats: Iterable[str]) -> dict[str, str]:
    """One colour per format, the same in every figure (:data:`FORMAT_STYLE`)."""
    return {f: colour for f, (colour, _) in _format_style(formats).items()}


def format_markers(formats: Iterable[str]) -> dict[str, str]:
    """One marker per format, the same in every figure (:data:`FORMAT_STYLE`)."""
    return {f: marker for f, (_, marker) in _format_style(formats).items()}


def method_styles(labels: Iterable[str]) -> dict[str, tuple[str, str]]:
    """(colour, marker) of each method label, in the order given: :data:`OKABE_ITO` and :data:`MARKERS`."""
    return {label: (OKABE_ITO[i % len(OKABE_ITO)], MARKERS[i % len(MARKERS)]) for i, label in enumerate(dict.fromkeys(labels))}


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width, break_long_words=False)) or text


def _top_legend(fig: plt.Figure, handles: list, ncol: int = 2) -> None:
    """The figure's legend above its panels, where it covers no data: the figure grows by its height."""
    extra = 0.15 + 0.24 * math.ceil(len(handles) / ncol)
    fig.set_figheight(fig.get_figheight() + extra)
    fig.legend(handles=handles, loc="upper center", ncol=ncol, frameon=False, bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 1 - extra / fig.get_figheight()))


def _budget_part(df: pd.DataFrame, by: str) -> pd.DataFrame:
    """Rows of budget kind ``by`` (all rows of a frame without a ``by`` column), with a ``label`` column."""
    part = df[df["by"] == by] if "by" in df.columns else df
    if part.empty:
        raise ValueError(f"no rows with by == {by!r}")
    return part.assign(label=part["format"].map(format_labels(part)))


def _format_handles(labels: dict[str, str], line: bool = False) -> list[Line2D]:
    style = _format_style(labels)
    return [
        Line2D([], [], color=style[f][0], marker=style[f][1], linestyle="-" if line else "", markersize=6, label=label)
        for f, label in labels.items()
    ]


def layer_errors(df: pd.DataFrame, by: str = "macs", budgets: Iterable[float] | None = None) -> plt.Figure:
    """Relative approximation error of every layer (named, network order), one panel per budget, a
    marker per format. ``df``: rows of :func:`elrt_core.analysis.layer_errors` for one kind of weights;
    the budgets of kind ``by`` (``"macs"`` or ``"params"``) are shown, only ``budgets`` where given."""
    part = _budget_part(df, by)
    if budgets is not None:
        part = part[part["budget"].isin(list(budgets))]
    budgets = sorted(part["budget"].unique())
    layers = list(part.sort_values("index")["layer"].unique())
    labels = format_labels(part)
    style = _format_style(labels)
    fig, axes = plt.subplots(
        1, len(budgets), figsize=(FIG_WIDTH, 1.1 + 0.24 * len(layers)), sharey=True, sharex=True, squeeze=False
    )
    offsets = {f: 0.6 * (i / max(1, len(labels) - 1) - 0.5) for i, f in enumerate(labels)}  # formats side by side
    position = {layer: i for i, layer in enumerate(layers)}
    for ax, budget in zip(axes[0], budgets):
        here = part[part["budget"] == budget]
        for fmt in labels:
            rows = here[here["format"] == fmt]
            y = [position[layer] + offsets[fmt] for layer in rows["layer"]]
            ax.scatter(rows["rel_error"], y, color=style[fmt][0], marker=style[fmt][1], s=22, zorder=3, linewidths=0)
        ax.set_title(f"{budget:g}x fewer\n{COST_NAMES[by]}")
        ax.xaxis.set_major_locator(ticker.MaxNLocator(3))
    axes[0, 0].set_yticks(range(len(layers)), layers)
    axes[0, 0].set_ylim(len(layers) - 0.5, -0.5)
    axes[0, 0].set_xlim(0, 1.05 * part["rel_error"].max())
    fig.supxlabel(ERROR_LABEL + " (lower is better)")
    _top_legend(fig, _format_handles(labels))
    return fig


def error_curves(df: pd.DataFrame, by: str = "macs", ncols: int = 3, layers: Iterable[str] | None = None) -> plt.Figure:
    """Best relative error against the layer's cost, one panel per layer (titled with its name; only
    ``layers`` where given), a colour and marker per format and a line style per kind of ``weights``
    (solid for the first); log cost axis.

    ``df``: rows of :func:`elrt_core.analysis.layer_errors` over many budgets of kind ``by``, with a
    ``weights`` column where it holds several networks; each point sits at the cost the format
    achieves (``macs`` or ``params`` column), not at the budget's target.
    """
    part = _budget_part(df, by).assign(cost=lambda d: d[by] / 1e6)
    if "weights" not in part.columns:
        part = part.assign(weights="")
    kinds = list(dict.fromkeys(part["weights"]))
    labels = format_labels(part)
    style = _format_style(labels)
    dashes = dict(zip(kinds, ["-", "--", ":", "-."]))
    order = list(part.sort_values("index")["layer"].unique())
    shown = [layer for layer in order if layers is None or layer in set(layers)]
    nrows = math.ceil(len(shown) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(FIG_WIDTH, 0.8 + 1.75 * nrows), sharex=True, sharey=True, squeeze=False)
    for ax, layer in zip(axes.flat, shown):
        for (fmt, kind), line in part[part["layer"] == layer].sort_values("cost").groupby(["format", "weights"]):
            ax.plot(line["cost"], line["rel_error"], dashes[kind], color=style[fmt][0], marker=style[fmt][1], markersize=3)
        ax.set_title(layer)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0,)))
        ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.yaxis.set_major_locator(ticker.MaxNLocator(3))
    for ax in axes.flat[len(shown) :]:
        ax.set_visible(False)
    handles = _format_handles(labels, line=True)
    if len(kinds) > 1:
        handles += [Line2D([], [], color="0.3", linestyle=dashes[k], label=f"{k} weights") for k in kinds]
    fig.supxlabel(f"{COST_NAMES[by]} of the layer per image (millions, log scale)")
    fig.supylabel(ERROR_LABEL)
    _top_legend(fig, handles)
    return fig


def error_summary(df: pd.DataFrame, by: str = "macs") -> plt.Figure:
    """The whole trade in one view: the median relative error over the layers against the per-layer
    budget (``by`` reduction, log scale), one panel per kind of ``weights``, a colour, marker and direct
    label per format. A format is drawn at a budget only where it fits every layer (a format with a coarse
    grid of ranks can miss the largest reductions of some layers); :func:`error_curves` shows every layer."""
    part = _budget_part(df, by)
    if "weights" not in part.columns:
        part = part.assign(weights="")
    kinds = list(dict.fromkeys(part["weights"]))
    labels = format_labels(part)
    style = _format_style(labels)
    n_layers = part["layer"].nunique()
    fig, axes = plt.subplots(len(kinds), 1, figsize=(FIG_WIDTH, 0.4 + 2.9 * len(kinds)), sharex=True, sharey=True, squeeze=False)
    for ax, kind in zip(axes[:, 0], kinds):
        here = part[part["weights"] == kind].groupby(["format", "budget"])["rel_error"].agg(["median", "size"]).reset_index()
        here = here[here["size"] == n_layers]
        for fmt in labels:
            line = here[here["format"] == fmt].sort_values("budget")
            ax.plot(line["budget"], line["median"], color=style[fmt][0], marker=style[fmt][1], markersize=5, label=labels[fmt])
        ax.set_title(f"{kind} weights" if kind else "")
        ax.set_ylabel("median over layers")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.FixedLocator(_spaced(sorted(here["budget"].unique()))))
        ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%gx"))
        ax.xaxis.set_minor_locator(ticker.NullLocator())
    axes[-1, 0].set_xlabel(f"fewer {COST_NAMES[by]} per layer than dense (log scale)")
    fig.supylabel(ERROR_LABEL)
    _top_legend(fig, _format_handles(labels, line=True))
    return fig


def _spaced(values: list[float], ratio: float = 1.45) -> list[float]:
    """``values`` (ascending, > 0) thinned so that each kept one is at least ``ratio`` times the last:
    tick labels of a log axis that do not run into each other."""
    kept: list[float] = []
    for v in values:
        if not kept or v >= ratio * kept[-1]:
            kept.append(v)
    return kept


def _zoom_window(epochs: pd.Series, zoom_epochs: int | None) -> int | None:
    """First epoch of the zoomed panels: the last ``zoom_epochs`` (default a third, at least 3); ``None``
    for no zoom (``zoom_epochs=0``, or too few epochs to zoom into)."""
    last = int(epochs.max())
    count = max(3, math.ceil(last / 3)) if zoom_epochs is None else zoom_epochs
    return last - count + 1 if 0 < count < last else None


def _method_lines(ax, df: pd.DataFrame, y: str, hue: str, styles: dict, band: str | None) -> None:
    for label, (colour, marker) in styles.items():
        sns.lineplot(df[df[hue] == label], x="epoch", y=y, errorbar=band, color=colour, marker=marker, markersize=5, ax=ax)


def training_curves(
    df: pd.DataFrame, hue: str = "label", metric: str = "test_top1", zoom_epochs: int | None = None
) -> plt.Figure:
    """Training loss (left) and ``metric`` (right) per epoch: mean over seeds, band = ±1 sd over seeds.
    Below each, its last epochs zoomed (``zoom_epochs``, default a third of them; 0: none), on an axis
    that spans just those values, so that differences of a point show; the window is shaded above.

    ``df``: long form with columns ``epoch, train_loss, <metric>, seed`` and ``hue``.
    """
    start = _zoom_window(df["epoch"], zoom_epochs)
    styles = method_styles(df[hue])
    band = "sd" if df.groupby(hue)["seed"].nunique().max() > 1 else None
    rows = 1 if start is None else 2
    fig, axes = plt.subplots(rows, 2, figsize=(FIG_WIDTH, 2.7 + 2.6 * (rows - 1)), squeeze=False)
    names = {
        "train_loss": "training loss (cross-entropy)",
        metric: f"{'validation' if metric.startswith('val') else 'test'} top-1 (%)",
    }
    for col, y in enumerate(("train_loss", metric)):
        _method_lines(axes[0, col], df, y, hue, styles, band)
        axes[0, col].set_title(_wrap(names[y], 22))
        axes[0, col].set_ylabel("")
        if start is not None:
            _method_lines(axes[1, col], df[df["epoch"] >= start], y, hue, styles, band)
            axes[0, col].axvspan(start - 0.5, df["epoch"].max() + 0.5, color="0.9", zorder=0)
            axes[1, col].set_ylabel("")
            axes[1, col].xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    for ax in axes.flat:
        ax.set_xlabel("epoch")
    if start is not None:
        axes[1, 0].set_ylabel(f"epochs {start}–{int(df['epoch'].max())},\nzoomed")
    handles = [Line2D([], [], color=c, marker=m, label=label) for label, (c, m) in styles.items()]
    _top_legend(fig, handles, ncol=1 if max(map(len, styles)) > 30 else 2)
    return fig


def accuracy_vs_flops(summary: pd.DataFrame, spread: float = 0.012) -> plt.Figure:
    """Final test top-1 (mean over seeds, bar = ±1 sd) against MACs per image (log scale), one
    panel per model (stacked), one colour and marker per method, its n in the legend below the panel.
    Methods that share a budget have nearly equal MACs, so each is drawn ``spread`` (a fraction of its
    MACs) to the side of the last, the group centred on the budget, so that none hides another; a method
    alone at its budget stays in place. ``summary``: :func:`elrt_core.study.tables.summary` (columns
    ``model``, ``flops_ratio``, ``label``, ``macs``, ``test_top1``, ``test_sd``, ``n``)."""
    models = list(dict.fromkeys(summary["model"]))
    styles = method_styles(summary["label"])
    rows = [len(set(summary[summary["model"] == m]["label"])) for m in models]
    fig, axes = plt.subplots(
        len(models),
        1,
        figsize=(FIG_WIDTH, sum(3.4 + 0.22 * r for r in rows)),
        squeeze=False,
        height_ratios=[3.4 + 0.22 * r for r in rows],
    )
    for ax, model in zip(axes[:, 0], models):
        group = summary[summary["model"] == model]
        budget = group["flops_ratio"].fillna(1.0)  # dense has none: its own budget
        place = group.groupby(budget, sort=False).cumcount()
        count = group.groupby(budget, sort=False)["label"].transform("size")
        shift = 1 + spread * (place - (count - 1) / 2)
        for label in dict.fromkeys(group["label"]):
            part = group[group["label"] == label]
            ns = sorted(set(part["n"]))
            n_text = f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]}–{ns[-1]}"
            colour, marker = styles[label]
            ax.errorbar(
                part["macs"] * shift[part.index],
                part["test_top1"],
                yerr=part["test_sd"].fillna(0),
                fmt=marker,
                color=colour,
                capsize=3,
                markersize=7,
                label=f"{label} ({n_text})",
            )
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 1.5, 2.0, 3.0, 4.0, 6.0)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v / 1e6:g}M"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_title(model)
        ax.set_xlabel("MACs per image (log scale)")
        ax.set_ylabel("final test top-1 (%)")
        ax.legend(title=None, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1, frameon=False)
    fig.tight_layout()
    return fig


def _difference_label(c, names: dict[str, str]) -> str:
    level = f"{100 * c.confidence:.3g}% CI" if not math.isnan(c.low) else "no interval"
    return _wrap(f"{names.get(c.treatment, c.treatment)} − {names.get(c.reference, c.reference)} (n = {c.n}, {level})", 62)


def _difference_axis(comparisons: list) -> tuple[float, float]:
    """The x range of :func:`differences`: every seed and mean (and 0) with room to spare, and every
    interval end up to twice that far out."""
    points = [0.0, *(d for c in comparisons for d in c.diffs), *(c.mean for c in comparisons if c.n)]
    middle = (max(points) + min(points)) / 2
    half = max(1.0, 1.5 * (max(points) - min(points)) / 2 + 0.5)  # points of the unit each side of the middle
    ends = [e for c in comparisons if c.n >= 2 for e in (c.low, c.high) if abs(e - middle) <= 2 * half]  # not extreme
    return min([middle - half, *ends]), max([middle + half, *ends])


def _interval(ax, c, y: float, lo_edge: float, hi_edge: float) -> None:
    """Draw ``c``'s interval on row ``y``, cut at the axis edges with an arrow and its end written there."""
    ax.plot([max(c.low, lo_edge), min(c.high, hi_edge)], [y, y], color="black", linewidth=2, zorder=3)
    for end, edge, marker, align in ((c.low, lo_edge, "<", "left"), (c.high, hi_edge, ">", "right")):
        if (end < edge) if marker == "<" else (end > edge):
            ax.scatter([edge], [y], marker=marker, color="black", s=40, zorder=3, clip_on=False)
            ax.annotate(f"CI to {end:+.1f}", (edge, y), xytext=(0, -13), textcoords="offset points", ha=align, va="top")


def differences(comparisons: list, names: dict[str, str], unit: str = "points") -> plt.Figure:
    """Paired differences, one row per comparison (``stats.Paired``), its label written above it: the
    mean (black diamond) and its confidence interval (black line), a grey dot per seed just below them
    (not hidden under the line), and the zero line (dashed, vermillion). A row whose interval misses zero shows a difference larger
    than the seed noise. The axis spans the seeds and means (and 0) with room to spare, and every interval
    end up to twice that far out; an interval reaching further (few seeds make very wide t intervals) is
    drawn to the edge with an arrow and its end written there."""
    fig, ax = plt.subplots(figsize=(FIG_WIDTH, 0.6 + 1.05 * len(comparisons)))
    lo_edge, hi_edge = _difference_axis(comparisons)
    for y, c in enumerate(comparisons):
        ax.text(
            0.01, y - 0.2, _difference_label(c, names), transform=ax.get_yaxis_transform(), va="bottom", ha="left",
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1.0}, zorder=6,
        )  # fmt: skip
        lanes = [y + 0.2 + 0.1 * (i % 2) for i in range(c.n)]  # two lanes, so that seeds a hair apart both show
        ax.scatter(sorted(c.diffs), lanes, color=SEED_GREY, edgecolors="white", linewidths=0.6, s=32, zorder=4)
        if c.n >= 2:
            _interval(ax, c, y, lo_edge, hi_edge)
        ax.scatter([c.mean], [y], marker="D", color="black", s=45, zorder=5)
    ax.set_xlim(lo_edge, hi_edge)
    ax.set_ylim(len(comparisons) - 0.45, -0.62)
    ax.axvline(0, color="#D55E00", linewidth=1, linestyle="--")
    ax.set_yticks([])
    ax.set_xlabel(f"difference in final test top-1 ({unit})")
    handles = [
        Line2D([], [], color=SEED_GREY, marker="o", linestyle="", label="one seed"),
        Line2D([], [], color="black", marker="D", linewidth=2, label="mean and interval"),
    ]
    _top_legend(fig, handles)
    return fig


def curves_by_method(
    df: pd.DataFrame, reference: str, metric: str = "test_top1", hue: str = "label", first_epoch: int | None = None
) -> plt.Figure:
    """Small multiples: one panel per method, its ``metric`` per epoch (mean, band ±1 sd over seeds)
    in colour and the ``reference`` method's in grey in every panel, from ``first_epoch`` (default: the
    last third of training, where the curves settle and a point of difference shows; 1: every epoch)."""
    others = [m for m in dict.fromkeys(df[hue]) if m != reference]
    start = first_epoch if first_epoch is not None else (_zoom_window(df["epoch"], None) or 1)
    df = df[df["epoch"] >= start]
    cols = min(2, max(1, len(others)))
    rows = -(-len(others) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(FIG_WIDTH, 0.7 + 2.5 * rows), sharex=True, sharey=True, squeeze=False)
    ref = df[df[hue] == reference]
    for ax, method in zip(axes.flat, others):
        sns.lineplot(ref, x="epoch", y=metric, errorbar="sd", color=REFERENCE_GREY, ax=ax)
        sns.lineplot(df[df[hue] == method], x="epoch", y=metric, errorbar="sd", color="#0072B2", marker="o", markersize=4, ax=ax)
        ax.set_title(_wrap(method, 32))
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    for ax in list(axes.flat)[len(others) :]:
        ax.set_visible(False)
    fig.supxlabel(f"epoch (from epoch {start})")
    fig.supylabel("test top-1 (%)" if metric == "test_top1" else metric)
    handles = [
        Line2D([], [], color=REFERENCE_GREY, label=f"{reference} (every panel)"),
        Line2D([], [], color="#0072B2", marker="o", label="the panel's method"),
    ]
    _top_legend(fig, handles, ncol=1)
    return fig


def _stagger(axis: XAxis, steps: pd.Series, apart: float = 0.45) -> None:
    """Move each tick label of a log ``axis`` down by its own height (two lines: 2.6 font sizes with the
    line spacing) when its tick is closer than ``apart`` decades to its left neighbour (unless that
    neighbour moved), so neighbouring labels do not overlap."""
    moved = False
    for i, tick in enumerate(axis.get_major_ticks()[1:], start=1):
        moved = not moved and math.log10(steps.iloc[i] / steps.iloc[i - 1]) < apart
        if moved:
            tick.set_pad(tick.get_pad() + 2.6 * tick.label1.get_fontsize())


def effect_trend(table: pd.DataFrame, smallest: float | None = None, unit: str = "points") -> plt.Figure:
    """Each effect against training length: one panel per ``effect`` of ``table`` (rows of
    :func:`elrt_core.study.regime.trend`), one position per profile on a log axis of the optimizer steps
    of a run (labelled with the profile), a grey dot per seed's paired difference beside the mean (black
    diamond; hollow and labelled "no interval" where fewer than two seeds give none) and its 95% interval
    (black line), the zero line (red, dashed) and the band ``± smallest`` (the smallest effect of interest,
    shaded). A profile without runs of an effect is a grey cross on the zero line (the caption says so)."""
    effects = list(dict.fromkeys(table["effect"]))
    positions = table.drop_duplicates("profile").sort_values("steps")
    # narrower than FIG_WIDTH: the "n = ..." labels right of the points widen the saved figure
    fig, axes = plt.subplots(len(effects), 1, figsize=(FIG_WIDTH - 0.6, 0.6 + 2.3 * len(effects)), sharex=True, squeeze=False)
    for ax, effect in zip(axes[:, 0], effects, strict=True):
        rows = table[table["effect"] == effect]
        if smallest is not None:
            ax.axhspan(-smallest, smallest, color="0.9", zorder=0)
        ax.axhline(0, color="tab:red", linewidth=1, linestyle="--", zorder=1)
        for r in rows.itertuples():
            if r.n == 0:
                # a cross on the zero line, not a text: neighbouring profiles sit close and labels would collide
                ax.scatter([r.steps], [0], marker="x", color="0.4", s=36, zorder=4)
                continue
            ax.scatter([r.steps * 0.92] * r.n, r.diffs, color="0.5", s=16, zorder=2)
            if not math.isnan(r.low):
                ax.plot([r.steps, r.steps], [r.low, r.high], color="black", linewidth=2, zorder=3)
            interval = not math.isnan(r.low)  # a mean without an interval (one seed) is drawn hollow
            ax.scatter(
                [r.steps], [r.mean], marker="D", s=40, zorder=4, color="black" if interval else "white", edgecolors="black"
            )
            ax.annotate(
                f"n = {r.n}" + ("" if interval else "\nno interval"),  # centred above the point: neighbours sit close
                (r.steps, max(r.high if interval else r.mean, *r.diffs)),
                xytext=(0, 6),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=MIN_FONT_PT,
            )
        ax.margins(y=0.2)
        low, high = ax.get_ylim()
        ax.set_ylim(low, high + 0.35 * (high - low))  # room for the two-line labels above the highest points
        ax.set_title(textwrap.fill(effect, 48), loc="left")  # a long label would widen the figure past FIG_WIDTH
        ax.set_ylabel(unit)
    bottom = axes[-1, 0]
    bottom.set_xscale("log")
    bottom.set_xlim(positions["steps"].min() / 1.5, positions["steps"].max() * 1.5)
    bottom.xaxis.set_major_locator(ticker.FixedLocator(positions["steps"].tolist()))
    bottom.xaxis.set_minor_locator(ticker.NullLocator())
    bottom.set_xticklabels([f"{r.profile}\n{r.steps:,} steps" for r in positions.itertuples()])
    _stagger(bottom.xaxis, positions["steps"])
    bottom.set_xlabel("optimizer steps of one run (log scale)")
    fig.tight_layout()
    return fig
