"""Tables built from run records (and the published baselines file)."""

from __future__ import annotations

from pathlib import Path
from statistics import mean, stdev

import pandas as pd
import yaml

from ..records import Record
from .plan import PlannedRun

__all__ = ["history_frame", "summary", "finals_frame", "published", "PUBLISHED_FILE", "PUBLISHED_BASIS", "fmt_mean_std"]

PUBLISHED_FILE = Path(__file__).resolve().parents[1] / "published.yaml"

PUBLISHED_BASIS = "values published by other work (elrt_core/published.yaml), each row with its source; not runs of this project"
"""What a table of published values rests on, for its caption."""


def history_frame(runs: list[tuple[PlannedRun, Record]]) -> pd.DataFrame:
    """Per-epoch metrics of every run, long form, with ``method`` and ``seed`` columns."""
    rows = [
        {"method": run.method, "seed": run.config.seed, "model": run.config.model, **h}
        for run, rec in runs
        for h in rec.history
    ]
    return pd.DataFrame(rows)


def fmt_mean_std(values: list[float]) -> str:
    """``"m"`` for one value, ``"m ± s"`` (sample std) for several, 2 decimals."""
    return f"{mean(values):.2f}" if len(values) == 1 else f"{mean(values):.2f} ± {stdev(values):.2f}"


def summary(runs: list[tuple[PlannedRun, Record]]) -> pd.DataFrame:
    """One row per (model, method, FLOPs ratio) over seeds: accuracy, cost and training time.

    Columns: model, method, target (requested FLOPs reduction), params, MACs, measured reductions,
    final/best top-1 (mean, and mean ± std over seeds as text), seeds, train minutes, device.
    """
    groups: dict[tuple, list[tuple[PlannedRun, Record]]] = {}
    for run, rec in runs:
        groups.setdefault((run.config.model, run.method, run.config.flops_ratio or 1.0), []).append((run, rec))
    rows = []
    for (model, method, target), members in groups.items():
        recs = [r for _, r in members]
        finals = [r.metrics["final_test_top1"] for r in recs]
        cost = recs[0].cost
        rows.append({
            "model": model,
            "method": method,
            "target_reduction": target,
            "params": cost["params"],
            "macs": cost["macs"],
            "params_reduction": round(cost["params_ratio"], 2),
            "macs_reduction": round(cost["macs_ratio"], 2),
            "final_top1": mean(finals),
            "final_top1_text": fmt_mean_std(finals),
            "best_top1": mean(r.metrics["best_test_top1"] for r in recs),
            "seeds": len(recs),
            "train_minutes": round(mean(r.provenance["train_wall_seconds"] for r in recs) / 60, 1),
            "device": recs[0].provenance["device_name"],
        })
    return pd.DataFrame(rows)


def published(section: str = "baselines") -> pd.DataFrame:
    """A section of ``published.yaml`` (``baselines``, ``speedups`` or ``elrt_paper``) as a table."""
    data = yaml.safe_load(PUBLISHED_FILE.read_text())
    if section not in data:
        raise ValueError(f"unknown section {section!r}; allowed: {', '.join(data)}")
    return pd.DataFrame(data[section])


def finals_frame(runs: list[tuple[PlannedRun, Record]]) -> pd.DataFrame:
    """One row per run: method, seed, final test top-1."""
    return pd.DataFrame(
        [{"method": run.method, "seed": run.config.seed, "final_test_top1": rec.metrics["final_test_top1"]} for run, rec in runs]
    )
