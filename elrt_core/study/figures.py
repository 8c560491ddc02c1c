"""Figures of the study: one seaborn style, readable labels and units, saved as PNG (200 dpi) and SVG."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib import ticker
from matplotlib.lines import Line2D

from ..analysis import COST_NAMES
from ..lowrank.convert import format_class
from ..lowrank.layers import FORMATS

__all__ = [
    "set_style",
    "save",
    "PNG_DPI",
    "format_labels",
    "format_colours",
    "layer_errors",
    "error_curves",
    "training_curves",
    "accuracy_vs_flops",
    "differences",
    "curves_by_method",
    "effect_trend",
]

ERROR_LABEL = "relative error ||W - Ŵ||² / ||W||²"
PNG_DPI = 200
"""Resolution of the saved PNG files (the book shows the SVG; the PNG is for slides and papers)."""


def set_style() -> None:
    """The study's one plotting style (seaborn whitegrid, colorblind palette, deterministic SVG)."""
    sns.set_theme(style="whitegrid", context="notebook", palette="colorblind")
    plt.rcParams.update(
        {"svg.hashsalt": "elrt", "figure.dpi": 100, "savefig.dpi": PNG_DPI, "savefig.bbox": "tight", "axes.titlesize": "medium"}
    )


def save(fig: plt.Figure, name: str, folder: Path) -> list[Path]:
    """Write ``fig`` as ``folder/name.png`` (:data:`PNG_DPI`) and ``.svg`` (text as paths); no timestamps,
    so reruns are byte-stable. Returns ``[png, svg]``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png", folder / f"{name}.svg"]
    fig.savefig(paths[0], dpi=PNG_DPI, metadata={"Software": None})
    fig.savefig(paths[1], metadata={"Date": None, "Creator": None})
    return paths


def format_labels(df: pd.DataFrame) -> dict[str, str]:
    """Display label of every format in ``df["format"]`` (read from its layer class), in the order of
    :data:`elrt_core.lowrank.FORMATS`."""
    present = set(df["format"])
    return {f: format_class(f).label for f in FORMATS if f in present} | {
        f: format_class(f).label for f in sorted(present - set(FORMATS))
    }


def format_colours(formats: Iterable[str]) -> dict[str, tuple[float, float, float]]:
    """One colour per format, the same in every figure: the colorblind palette in the order of
    :data:`elrt_core.lowrank.FORMATS` (other formats after them), skipping its vermillion, which
    is too close to its orange for thin lines."""
    palette = [c for i, c in enumerate(sns.color_palette("colorblind", 10)) if i != 3]
    formats = list(formats)
    order = list(FORMATS) + sorted(set(formats) - set(FORMATS))
    return {f: palette[order.index(f) % len(palette)] for f in formats}


def _budget_part(df: pd.DataFrame, by: str) -> pd.DataFrame:
    """Rows of budget kind ``by`` (all rows of a frame without a ``by`` column), with a ``label`` column."""
    part = df[df["by"] == by] if "by" in df.columns else df
    if part.empty:
        raise ValueError(f"no rows with by == {by!r}")
    return part.assign(label=part["format"].map(format_labels(part)))


def layer_errors(df: pd.DataFrame, by: str = "macs", budgets: Iterable[float] | None = None) -> plt.Figure:
    """Relative approximation error of every layer (named, network order), one panel per budget, a dot
    per format. ``df``: rows of :func:`elrt_core.analysis.layer_errors` for one kind of weights; the
    budgets of kind ``by`` (``"macs"`` or ``"params"``) are shown, only ``budgets`` where given."""
    part = _budget_part(df, by)
    if budgets is not None:
        part = part[part["budget"].isin(list(budgets))]
    budgets = sorted(part["budget"].unique())
    layers = list(part.sort_values("index")["layer"].unique())
    names = format_labels(part)
    labels = list(names.values())
    palette = {names[f]: c for f, c in format_colours(names).items()}
    fig, axes = plt.subplots(
        1, len(budgets), figsize=(2.0 + 3.6 * len(budgets), 1.6 + 0.3 * len(layers)), sharey=True, sharex=True, squeeze=False
    )
    for ax, budget in zip(axes[0], budgets):
        sns.stripplot(
            part[part["budget"] == budget],
            x="rel_error",
            y="layer",
            hue="label",
            order=layers,
            hue_order=labels,
            palette=palette,
            jitter=False,
            dodge=True,
            size=5,
            ax=ax,
            legend=ax is axes[0, 0],
        )
        ax.set_title(f"{budget:g}x fewer {COST_NAMES[by]} per layer")
        ax.set_xlabel(ERROR_LABEL)
        ax.set_ylabel("")
    axes[0, 0].set_xlim(0, 1.05 * part["rel_error"].max())
    axes[0, 0].set_ylabel("conv layer (network order)")
    handles, names = axes[0, 0].get_legend_handles_labels()
    axes[0, 0].legend_.remove()
    fig.legend(handles, names, loc="upper center", ncol=len(names), bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    return fig


def error_curves(df: pd.DataFrame, by: str = "macs", ncols: int = 6) -> plt.Figure:
    """Best relative error against the layer's cost, one panel per layer (titled with its name), a
    colour per format and a line style per kind of ``weights`` (solid for the first); log cost axis.

    ``df``: rows of :func:`elrt_core.analysis.layer_errors` over many budgets of kind ``by``, with a
    ``weights`` column where it holds several networks; each point sits at the cost the format
    achieves (``macs`` or ``params`` column), not at the budget's target.
    """
    part = _budget_part(df, by).assign(cost=lambda d: d[by] / 1e6)
    if "weights" not in part.columns:
        part = part.assign(weights="")
    kinds = list(dict.fromkeys(part["weights"]))
    labels = format_labels(part)
    colours = format_colours(labels)
    styles = dict(zip(kinds, ["-", "--", ":", "-."]))
    layers = list(part.sort_values("index")["layer"].unique())
    nrows = math.ceil(len(layers) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(14, 1.0 + 2.3 * nrows), sharex=True, sharey=True, squeeze=False)
    for ax, layer in zip(axes.flat, layers):
        for (fmt, kind), line in part[part["layer"] == layer].sort_values("cost").groupby(["format", "weights"]):
            ax.plot(line["cost"], line["rel_error"], styles[kind], color=colours[fmt], marker=".", markersize=4)
        ax.set_title(layer)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    for ax in axes.flat[len(layers) :]:
        ax.set_visible(False)
    handles = [Line2D([], [], color=colours[f], label=label) for f, label in labels.items()]
    if len(kinds) > 1:
        handles += [Line2D([], [], color="0.3", linestyle=styles[k], label=f"{k} weights") for k in kinds]
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), frameon=False, fontsize="small")
    fig.supxlabel(f"{COST_NAMES[by]} of the layer per image (millions, log scale)")
    fig.supylabel(ERROR_LABEL)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
    return fig


def training_curves(df: pd.DataFrame, hue: str = "label", metric: str = "test_top1") -> plt.Figure:
    """Training loss (left) and ``metric`` (right) per epoch: mean over seeds, band = ±1 sd over seeds.

    ``df``: long form with columns ``epoch, train_loss, <metric>, seed`` and ``hue``.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    band = "sd" if df.groupby(hue)["seed"].nunique().max() > 1 else None
    sns.lineplot(df, x="epoch", y="train_loss", hue=hue, errorbar=band, marker="o", markersize=4, ax=left)
    sns.lineplot(df, x="epoch", y=metric, hue=hue, errorbar=band, marker="o", markersize=4, ax=right)
    left.set_ylabel("training loss (cross-entropy)")
    right.set_ylabel(f"{'validation' if metric.startswith('val') else 'test'} top-1 accuracy (%)")
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.legend(title=None, fontsize="small")
    fig.tight_layout()
    return fig


def accuracy_vs_flops(summary: pd.DataFrame, spread: float = 0.012) -> plt.Figure:
    """Final test top-1 (mean over seeds, bar = ±1 sd) against MACs per image (log scale), one
    panel per model, one marker per method, its n in the legend. Methods that share a budget have
    nearly equal MACs, so each is drawn ``spread`` (a fraction of its MACs) to the side of the last,
    the group centred on the budget, so that none hides another; a method alone at its budget stays
    in place. ``summary``: :func:`elrt_core.study.tables.summary` (columns ``model``, ``flops_ratio``,
    ``label``, ``macs``, ``test_top1``, ``test_sd``, ``n``)."""
    models = list(dict.fromkeys(summary["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(6.4 * len(models), 4.4), squeeze=False)
    markers = "osD^vP*Xh<>"
    for ax, model in zip(axes[0], models):
        group = summary[summary["model"] == model]
        budget = group["flops_ratio"].fillna(1.0)  # dense has none: its own budget
        place = group.groupby(budget, sort=False).cumcount()
        count = group.groupby(budget, sort=False)["label"].transform("size")
        shift = 1 + spread * (place - (count - 1) / 2)
        for i, label in enumerate(dict.fromkeys(group["label"])):
            part = group[group["label"] == label]
            ns = sorted(set(part["n"]))
            n_text = f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]}–{ns[-1]}"
            ax.errorbar(
                part["macs"] * shift[part.index],
                part["test_top1"],
                yerr=part["test_sd"].fillna(0),
                fmt=markers[i % len(markers)],
                capsize=3,
                markersize=7,
                label=f"{label} ({n_text})",
            )
        ax.set_xscale("log")
        ax.set_title(model)
        ax.set_xlabel("FLOPs (MACs per image, log scale; methods of one budget drawn side by side)")
        ax.set_ylabel("final test top-1 (%)")
        ax.legend(fontsize="x-small", title=None)
    fig.tight_layout()
    return fig


def differences(comparisons: list, names: dict[str, str], unit: str = "points") -> plt.Figure:
    """Paired differences, one row per comparison (``stats.Paired``): a grey dot per seed, the mean
    (black diamond) and its confidence interval (black line; the level is in each row's label), and
    the zero line. A row whose interval misses zero shows a difference larger than the seed noise.
    The axis spans the seeds and means (and 0) with room to spare, and every interval end up to twice
    that far out; an interval reaching further (few seeds make very wide t intervals) is drawn to the
    edge with an arrow and its end written there."""
    fig, ax = plt.subplots(figsize=(8.5, 0.8 + 0.65 * len(comparisons)))
    points = [0.0, *(d for c in comparisons for d in c.diffs), *(c.mean for c in comparisons if c.n)]
    middle = (max(points) + min(points)) / 2
    half = max(1.0, 1.5 * (max(points) - min(points)) / 2 + 0.5)  # points of the unit each side of the middle
    ends = [e for c in comparisons if c.n >= 2 for e in (c.low, c.high) if abs(e - middle) <= 2 * half]  # not extreme
    lo_edge, hi_edge = min([middle - half, *ends]), max([middle + half, *ends])
    for y, c in enumerate(comparisons):
        ax.scatter(c.diffs, [y] * c.n, color="0.55", s=18, zorder=2)
        if c.n >= 2:
            ax.plot([max(c.low, lo_edge), min(c.high, hi_edge)], [y, y], color="black", linewidth=2, zorder=3)
            for end, edge, marker, align in ((c.low, lo_edge, "<", "left"), (c.high, hi_edge, ">", "right")):
                if (end < edge) if marker == "<" else (end > edge):
                    ax.scatter([edge], [y], marker=marker, color="black", s=40, zorder=3, clip_on=False)
                    ax.annotate(
                        f"CI to {end:+.1f}", (edge, y), xytext=(0, 7), textcoords="offset points", ha=align, fontsize="x-small"
                    )
        ax.scatter([c.mean], [y], marker="D", color="black", s=45, zorder=4)
    ax.set_xlim(lo_edge, hi_edge)
    ax.axvline(0, color="tab:red", linewidth=1, linestyle="--")
    ax.set_yticks(range(len(comparisons)))
    ax.set_yticklabels(
        [
            f"{names.get(c.treatment, c.treatment)} − {names.get(c.reference, c.reference)}\n"
            f"(n = {c.n}, " + (f"{100 * c.confidence:.3g}% CI)" if not math.isnan(c.low) else "no interval)")
            for c in comparisons
        ],
        fontsize="small",
    )
    ax.invert_yaxis()
    ax.set_xlabel(f"difference in final test top-1 ({unit})")
    fig.tight_layout()
    return fig


def curves_by_method(df: pd.DataFrame, reference: str, metric: str = "test_top1", hue: str = "label") -> plt.Figure:
    """Small multiples: one panel per method, its ``metric`` per epoch (mean, band ±1 sd over seeds)
    in colour and the ``reference`` method's in grey in every panel."""
    others = [m for m in dict.fromkeys(df[hue]) if m != reference]
    cols = min(3, max(1, len(others)))
    rows = -(-len(others) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), sharex=True, sharey=True, squeeze=False)
    ref = df[df[hue] == reference]
    for ax, method in zip(axes.flat, others):
        sns.lineplot(ref, x="epoch", y=metric, errorbar="sd", color="0.6", ax=ax, label=reference)
        sns.lineplot(df[df[hue] == method], x="epoch", y=metric, errorbar="sd", color="tab:blue", ax=ax, label=method)
        ax.set_title(method, fontsize="small")
        ax.set_ylabel("test top-1 (%)" if metric == "test_top1" else metric)
        ax.legend(fontsize="x-small", title=None)
    for ax in list(axes.flat)[len(others) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def effect_trend(table: pd.DataFrame, smallest: float | None = None, unit: str = "points") -> plt.Figure:
    """Each effect against training length: one panel per ``effect`` of ``table`` (rows of
    :func:`elrt_core.study.regime.trend`), one position per profile on a log axis of the optimizer steps
    of a run (labelled with the profile), a grey dot per seed's paired difference beside the mean (black
    diamond) and its 95% interval (black line), the zero line (red, dashed) and the band ``± smallest``
    (the smallest effect of interest, shaded). A profile without runs of an effect says so at zero."""
    effects = list(dict.fromkeys(table["effect"]))
    positions = table.drop_duplicates("profile").sort_values("steps")
    fig, axes = plt.subplots(len(effects), 1, figsize=(7.5, 0.6 + 2.1 * len(effects)), sharex=True, squeeze=False)
    for ax, effect in zip(axes[:, 0], effects, strict=True):
        rows = table[table["effect"] == effect]
        if smallest is not None:
            ax.axhspan(-smallest, smallest, color="0.9", zorder=0)
        ax.axhline(0, color="tab:red", linewidth=1, linestyle="--", zorder=1)
        for r in rows.itertuples():
            if r.n == 0:
                ax.annotate("no runs yet", (r.steps, 0), xytext=(0, 5), textcoords="offset points", ha="center", fontsize="small")
                continue
            ax.scatter([r.steps * 0.92] * r.n, r.diffs, color="0.5", s=16, zorder=2)
            if not math.isnan(r.low):
                ax.plot([r.steps, r.steps], [r.low, r.high], color="black", linewidth=2, zorder=3)
            ax.scatter([r.steps], [r.mean], marker="D", color="black", s=40, zorder=4)
            ax.annotate(f"n = {r.n}", (r.steps, r.mean), xytext=(7, 0), textcoords="offset points", va="center", fontsize="small")
        ax.margins(y=0.2)
        ax.set_title(effect, fontsize="medium", loc="left")
        ax.set_ylabel(unit)
    bottom = axes[-1, 0]
    bottom.set_xscale("log")
    bottom.set_xlim(positions["steps"].min() / 1.4, positions["steps"].max() * 1.4)
    bottom.xaxis.set_major_locator(ticker.FixedLocator(positions["steps"].tolist()))
    bottom.xaxis.set_minor_locator(ticker.NullLocator())
    bottom.set_xticklabels([f"{r.profile}\n{r.steps:,} steps" for r in positions.itertuples()])
    bottom.set_xlabel("optimizer steps of one run (log scale)")
    fig.tight_layout()
    return fig
