"""The efficiency chapter's figure: measured training speedup against MAC reduction."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from .bench_claim import CLAIM_SETTING
from .figures import FIG_WIDTH

__all__ = ["speedup_figure"]


def speedup_figure(table: pd.DataFrame) -> plt.Figure:
    """Measured training speedup over the fastest dense step the record timed (older records: over the same
    dense variant) against MAC reduction (rows of :func:`~elrt_core.study.bench_tables.speedup_table`) of the Tucker-2
    records in the :data:`CLAIM_SETTING` variant and batch (the other formats, variants and batches are in
    the table): one panel per device, colour for the rank rule (uniform or hardware-aware), marker for the
    model, the ideal line dashed. The records claim 5 judges (column ``judged``) are ringed; records
    measured beside busy processes (``busy``) are left out."""
    setting = (
        (table["format"] == "tucker2")
        & (table["variant"] == CLAIM_SETTING["variant"])
        & (table["batch"] == CLAIM_SETTING["batch_size"])
    )
    table = table[setting & ~table["busy"]]  # busy: measured beside busy processes, so it times the sharing, not the network
    if table.empty:
        fig, ax = plt.subplots(figsize=(5.2, 1.2))
        ax.axis("off")
        ax.text(
            0.5, 0.5, "no Tucker-2 speedup record of the training setting measured on a quiet machine", ha="center", va="center"
        )
        return fig
    best = table["train_speedup_best"].astype(float).fillna(table["train_speedup"])  # older records: the same variant
    df = table.assign(ranks=table["rank_rule"].map(lambda r: "hardware-aware" if r.startswith("hw:") else r), speedup=best)
    devices, models_order = list(dict.fromkeys(df["device"])), sorted(set(df["model"]))  # one marker per model in every panel
    cols, rows = 1, len(devices)  # one panel a row: wider rows shrink to unreadable text on a phone
    fig, axes = plt.subplots(rows, cols, figsize=(FIG_WIDTH, 3.8 * rows), sharey=True, squeeze=False)
    for ax in list(axes.flat)[len(devices) :]:
        ax.set_visible(False)
    top = max(df["macs_reduction"].max(), df["speedup"].max()) * 1.1
    for i, (ax, device) in enumerate(zip(axes.flat, devices)):
        here = df[df["device"] == device]
        sns.scatterplot(
            here,
            x="macs_reduction",
            y="speedup",
            hue="ranks",
            style="model",
            s=70,
            ax=ax,
            hue_order=["uniform", "hardware-aware"],
            style_order=models_order,
        )
        ring = here[here["judged"]]
        ax.scatter(
            ring["macs_reduction"], ring["speedup"], s=260, facecolors="none", edgecolors="black", label="judged by claim 5"
        )
        ax.plot([1, top], [1, top], "--", color="gray", label="ideal (speedup = MAC reduction)")
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_title(device)
        ax.set_xlabel("MAC reduction (dense / low-rank)")
        ax.set_ylabel("training-step speedup over the fastest dense step")
        if i == 0:
            ax.legend(title=None)
        else:
            ax.get_legend().remove()
    fig.tight_layout()
    return fig
