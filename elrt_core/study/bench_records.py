"""Tables and figures of the efficiency chapter, read from ``elrt bench`` records (JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

__all__ = ["load", "speedup_table", "breakdown_table", "speedup_figure", "regularizer_overhead", "BENCH_FOLDER"]

PARTS = ("conv_kxk", "conv_1x1", "conv_depthwise", "batchnorm", "optimizer", "other")

BENCH_FOLDER = "bench"


def load(root: Path, kind: str) -> list[dict]:
    """Every bench record of ``kind`` (``"speedup"`` or ``"regularizer_overhead"``) under ``root/bench``."""
    out = []
    for path in sorted((Path(root) / BENCH_FOLDER).rglob("*.json")):
        data = json.loads(path.read_text())
        if data.get("kind") == kind:
            out.append({**data, "path": str(path)})
    return out


def speedup_table(session) -> pd.DataFrame | None:
    """One row per speedup record: device, model, format, MAC reduction, measured speedups, ceiling."""
    rows = [
        {
            "device": r["provenance"]["device_name"],
            "model": r["model"],
            "format": r["format"],
            "variant": r["variant"],
            "batch": r["batch_size"],
            "macs_reduction": round(r["macs_ratio"], 2),
            "train_speedup": round(r["train_speedup"], 3),
            "infer_speedup": round(r["infer_speedup"], 3),
            "amdahl_ceiling": round(r["amdahl_ceiling"], 2),
            "conv_share_dense": round(r["dense"]["breakdown"]["conv"], 3),
            "memory_ratio": round(r["memory_ratio"], 2) if r.get("memory_ratio") else None,
            "dense_step_ms": round(r["dense"]["train_step_ms"], 1),
            "lowrank_step_ms": round(r["lowrank"]["train_step_ms"], 1),
        }
        for r in load(session.root, "speedup")
    ]
    return pd.DataFrame(rows) if rows else None


def breakdown_table(session) -> pd.DataFrame | None:
    """Where a training step's time goes (ms per part, from the shares measured with module hooks
    times the measured step time), dense and low-rank, for every speedup record with a breakdown."""
    rows = []
    for r in load(session.root, "speedup"):
        for side in ("dense", "lowrank"):
            shares = r[side].get("breakdown")
            if not shares:
                continue
            step = r[side]["train_step_ms"]
            rows.append({"device": r["provenance"]["device_name"], "model": r["model"], "format": r["format"],
                         "macs_reduction": round(r["macs_ratio"], 2), "variant": r["variant"], "network": side,
                         "step_ms": round(step, 1), **{f"{p}_ms": round(step * shares[p], 1) for p in PARTS}})
    return pd.DataFrame(rows) if rows else None


def speedup_figure(table: pd.DataFrame) -> plt.Figure:
    """Measured training speedup against MAC reduction, one marker per format, ideal line dashed."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    sns.scatterplot(table, x="macs_reduction", y="train_speedup", hue="format", style="model", s=90, ax=ax)
    top = max(table["macs_reduction"].max(), table["train_speedup"].max()) * 1.1
    ax.plot([1, top], [1, top], "--", color="gray", label="ideal (speedup = MAC reduction)")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("MAC reduction (dense / low-rank)")
    ax.set_ylabel("measured training-step speedup")
    ax.legend(fontsize="x-small", title=None)
    fig.tight_layout()
    return fig


def regularizer_overhead(session) -> pd.DataFrame | None:
    """One row per regularizer of the newest overhead record on each device."""
    rows = []
    for r in load(session.root, "regularizer_overhead"):
        for row in r["rows"]:
            rows.append({"device": r["provenance"]["device_name"], "model": r["model"], **row})
    return pd.DataFrame(rows) if rows else None
