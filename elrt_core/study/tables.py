"""Tables built from run records (and the published baselines file)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from statistics import mean, stdev

import pandas as pd
import yaml

from ..config import TrainConfig
from ..records import Record
from .plan import PlannedRun
from .stats import mean_sd_n

__all__ = [
    "history_frame",
    "summary",
    "epochs_text",
    "without_runs",
    "published",
    "orthogonality",
    "columns",
    "HEADERS",
    "NUMBER_FORMATS",
    "PUBLISHED_FILE",
    "PUBLISHED_BASIS",
]

PUBLISHED_FILE = Path(__file__).resolve().parents[1] / "published.yaml"

PUBLISHED_BASIS = "values published by other work (elrt_core/published.yaml), each row with its source; not runs of this project"
"""What a table of published values rests on, for its caption."""

Runs = Sequence[tuple[PlannedRun, Record]]


def history_frame(runs: Runs) -> pd.DataFrame:
    """Per-epoch metrics of every run, long form, with ``method`` (key), ``label`` and ``seed`` columns."""
    rows = [
        {"method": run.method, "label": run.label, "seed": run.config.seed, "model": run.config.model, **h}
        for run, rec in runs
        for h in rec.history
    ]
    return pd.DataFrame(rows)


def without_runs(planned: Sequence[PlannedRun], runs: Runs) -> str:
    """``" Planned, without finished runs so far: A · B."`` for the methods of ``planned`` that have no
    run in ``runs`` (labels in plan order, each once); ``""`` when every one has. Appended to a table's
    caption, so a table with only some of its planned rows says which are still to come."""
    done = {run.method for run, _ in runs}
    missing = list(dict.fromkeys(run.label for run in planned if run.method not in done))
    return f" Planned, without finished runs so far: {' · '.join(missing)}." if missing else ""


def summary(runs: Runs) -> pd.DataFrame:
    """One row per (model, FLOPs reduction, method) over seeds; a run listed twice (the dense runs of
    two budgets' lists, say) counts once.

    Columns: ``model``, ``flops_ratio`` (requested; ``None`` for dense), ``method`` (key), ``label``,
    ``test_top1`` (mean), ``test_sd`` (sample sd; None for one seed), ``test_text`` (``"mean ± sd (n)"``), ``val_text``, ``n``, ``macs`` and
    ``params`` per image, measured ``macs_reduction`` and ``params_reduction`` (dense / low-rank),
    ``train_minutes`` (mean wall minutes per run), ``epochs_text`` (the training epochs behind one
    network, :func:`epochs_text`) and ``device``.
    """
    epochs = {run.config.hash: run.config.epochs for run, _ in runs}
    groups: dict[tuple, list[tuple[PlannedRun, Record]]] = {}
    for run, rec in {run.config.name: (run, rec) for run, rec in runs}.values():
        groups.setdefault((run.config.model, run.config.flops_ratio, run.method), []).append((run, rec))
    rows = []
    for (model, ratio, method), members in groups.items():
        recs = [r for _, r in members]
        tests = [r.metrics["final_test_top1"] for r in recs]
        vals = [r.metrics["final_val_top1"] for r in recs if r.metrics.get("final_val_top1") is not None]
        cost = recs[0].cost
        rows.append(
            {
                "model": model,
                "flops_ratio": ratio,
                "method": method,
                "label": members[0][0].label,
                "test_top1": mean(tests),
                "test_sd": stdev(tests) if len(tests) > 1 else None,
                "test_text": mean_sd_n(tests),
                "val_text": mean_sd_n(vals),
                "n": len(recs),
                "macs": cost["macs"],
                "params": cost["params"],
                "macs_reduction": cost["macs_ratio"],
                "params_reduction": cost["params_ratio"],
                "train_minutes": mean(minutes) if (minutes := [m for r in recs if (m := r.train_minutes) is not None]) else None,
                "epochs_text": epochs_text(members[0][0].config, epochs),
                "device": recs[0].provenance["device_name"],
            }
        )
    return pd.DataFrame(rows)


def epochs_text(config: TrainConfig, epochs: Mapping[str, int]) -> str:
    """The training epochs behind one network of ``config``: ``"15"`` from scratch; ``"15 + 5"`` for a
    compression run (:attr:`TrainConfig.decomposes`): the epochs of the dense run it decomposes, looked up
    in ``epochs`` (config hash -> epochs), then its own fine-tuning; ``"? + 5"`` where that run is not in
    ``epochs``."""
    if config.decomposes is None:
        return str(config.epochs)
    return f"{epochs.get(config.decomposes, '?')} + {config.epochs}"


def published(section: str = "baselines") -> pd.DataFrame:
    """A section of ``published.yaml`` (``baselines``, ``speedups`` or ``elrt_paper``) as a table."""
    data = yaml.safe_load(PUBLISHED_FILE.read_text())
    if section not in data:
        raise ValueError(f"unknown section {section!r}; allowed: {', '.join(data)}")
    return pd.DataFrame(data[section])


HEADERS: dict[str, str] = {
    "label": "method",
    "test_text": "test top-1 (%): mean ± sd (n)",
    "val_text": "validation top-1 (%): mean ± sd (n)",
    "macs": "MACs per image",
    "params": "parameters",
    "macs_reduction": "MAC reduction (dense / low-rank)",
    "params_reduction": "parameter reduction (dense / low-rank)",
    "train_minutes": "wall minutes per run (machines and load vary; not a speed measure)",
    "epochs_text": "training epochs",
    "train_speedup": "training-step speedup vs dense (bench)",
    "top1": "top-1 (%)",
    "model": "model",
    "dataset": "data set",
    "method": "method",
    "flops_reduction": "FLOPs reduction (×)",
    "source": "source",
    "claim": "published result",
    "final_top1": "test top-1 (%)",
    "folder": "folder",
    "in_plan": "in its profile's plan",
    "run": "run",
    "reg_weight": "λ",
    "status": "status",
    "commit": "code (git commit)",
    "device": "device",
    "regularizer": "regularizer",
    "penalty_pct": "penalty time (% of a training step)",
}
"""Readable header (with unit) of every column the chapters show, by key."""

NUMBER_FORMATS: dict[str, str] = {
    **dict.fromkeys(("macs", "params"), ",d"),
    **dict.fromkeys(
        ("macs_reduction", "params_reduction", "train_speedup", "top1", "flops_reduction", "final_top1", "penalty_pct"), ".2f"
    ),
    "train_minutes": ".0f",
    "reg_weight": "g",
}
"""How each number column of :data:`HEADERS` is printed (a spec for :func:`format`); a column not
listed is shown as it is."""


def columns(*keys: str) -> dict[str, tuple[str, str | None]]:
    """``{key: (header, number format or None)}`` of ``keys``, in that order (for :meth:`Session.table`):
    :data:`HEADERS` and :data:`NUMBER_FORMATS`."""
    return {k: (HEADERS[k], NUMBER_FORMATS.get(k)) for k in keys}


def orthogonality(runs: Runs) -> pd.DataFrame:
    """How orthogonal each method's factors end up, from the ``orthogonality`` each low-rank run logs
    per epoch (:func:`elrt_core.regularizers.orthogonality`; records made before it was logged have
    none and are left out): one row per method with ``n`` (runs that logged it) and, per factor set
    ``U1``/``U2``, means over those runs of the last epoch's SO per layer divided by the rank (0 when
    orthonormal; ``so_rank_U1``) and mean squared thin-side norm (1 when orthonormal; ``sq_norm_U1``). A run
    listed twice (two comparisons' runs joined) counts once."""
    rows, seen = [], set()
    for run, rec in runs:
        logged = rec.history[-1].get("orthogonality") if rec.history else None
        if not logged or run.config.hash in seen:  # a run listed twice counts once
            continue
        seen.add(run.config.hash)
        row = {"method": run.method, "label": run.label}
        for name, m in logged.items():
            row[f"so_rank_{name}"] = m["so_per_rank"] / m["layers"]
            row[f"sq_norm_{name}"] = m["sq_norm"]
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["method", "label", "n"])
    frame = pd.DataFrame(rows)
    measures = [c for c in frame.columns if c not in ("method", "label")]
    out = frame.groupby(["method", "label"], sort=False)[measures].mean()
    return out.assign(n=frame.groupby(["method", "label"], sort=False).size()).reset_index()
