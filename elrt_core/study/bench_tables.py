"""The tables of every bench record (the efficiency chapter's appendix): speedups, where the step's time
goes, converted layers timed alone, penalties, the TensorLy-Torch reference, and the glossary."""

from __future__ import annotations

import pandas as pd

from ..bench import PARTS, VARIANT_TEXT
from ..machine_load import busy
from .bench_claim import judged_records
from .bench_load import load
from .session import Session

__all__ = [
    "speedup_table",
    "recompute_table",
    "breakdown_table",
    "conv_speedups",
    "layer_table",
    "variants_text",
    "regularizer_overhead",
    "reference_table",
]


def speedup_table(session: Session) -> pd.DataFrame | None:
    """One row per speedup record: device, model, format, rank rule, MAC reduction, measured speedups
    (against the record's own dense variant and against the fastest dense variant it timed: empty for
    records made before the bench timed several), the recompute level of the low-rank step (empty:
    before levels existed, i.e. ``off``), activation memory low-rank / dense, timed steps, the commit it
    was measured at, the cores other processes kept busy meanwhile (empty where not measured;
    :mod:`elrt_core.machine_load`), ``busy`` (more than that is quiet), and ``judged``: whether claim 5
    judges the record (:func:`elrt_core.study.bench_claim.judged_records`, uniform ranks)."""
    found = load(session.root, "speedup")
    judged = {r["path"] for by_key in judged_records(found).values() for (_, hw), rs in by_key.items() if not hw for r in rs}
    rows = [
        {
            "device": r["provenance"]["device_name"],
            "model": r["model"],
            "format": r["format"],
            "rank_rule": r.get("rank_rule", "uniform"),
            "variant": r["variant"],
            "batch": r["batch_size"],
            "macs_reduction": round(r["macs_ratio"], 2),
            "train_speedup": r["train_speedup"],  # unrounded: each table formats it once
            "train_speedup_best": r.get("train_speedup_best"),
            "best_dense": r.get("best_dense"),
            "recompute": r["lowrank"].get("recompute"),
            "infer_speedup": r["infer_speedup"],
            "activation_ratio": round(1 / r["memory_ratio"], 2) if r.get("memory_ratio") else None,
            "dense_step_ms": round(r["dense"]["train_step_ms"], 1),
            "lowrank_step_ms": round(r["lowrank"]["train_step_ms"], 1),
            "steps": r.get("steps"),
            "commit": str(r["provenance"].get("commit", ""))[:7] + ("+" if r["provenance"].get("dirty") else ""),
            "background_load_cores": r["provenance"].get("background_load_cores"),
            "busy": busy(r["provenance"]),
            "judged": r["path"] in judged,
        }
        for r in found
    ]
    return pd.DataFrame(rows) if rows else None


def recompute_table(session: Session) -> pd.DataFrame | None:
    """One row per recompute level of every speedup record that timed the levels (records made after
    issue 28): the low-rank step, its cost against no recomputation (%), and the activation and peak
    step memory against dense's."""
    rows = []
    for r in load(session.root, "speedup"):
        levels, d = r.get("lowrank_levels"), r["dense"]
        if not levels:
            continue
        off = levels.get("off", {}).get("train_step_ms")
        for level, x in levels.items():
            rows.append(
                {
                    "device": r["provenance"]["device_name"],
                    "model": r["model"],
                    "format": r["format"],
                    "rank_rule": r.get("rank_rule", "uniform"),
                    "macs_reduction": round(r["macs_ratio"], 2),
                    "recompute": level,
                    "default": level == r["lowrank"].get("recompute"),
                    "step_ms": round(x["train_step_ms"], 1),
                    "cost_pct": round(100 * (x["train_step_ms"] / off - 1), 1) if off else None,
                    "activation_ratio": _ratio(x.get("activation_bytes"), d.get("activation_bytes")),
                    "peak_ratio": _ratio(x.get("peak_step_bytes"), d.get("peak_step_bytes")),
                }
            )
    return pd.DataFrame(rows) if rows else None


def _ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` to 2 decimals, None where either was not measured."""
    return round(a / b, 2) if a and b else None


def breakdown_table(session: Session) -> pd.DataFrame | None:
    """Where a training step's time goes (ms per part: the profiler's shares of :func:`elrt_core.bench.breakdown`
    times the record's median step time, so the parts add up to the step), dense and low-rank, for every
    speedup record with a breakdown; a part that an older record did not measure is left empty (its time
    is in ``other``)."""
    rows = []
    for r in load(session.root, "speedup"):
        for side in ("dense", "lowrank"):
            shares = r[side].get("breakdown")
            if not shares:
                continue
            step = r[side]["train_step_ms"]
            rows.append(
                {
                    "device": r["provenance"]["device_name"],
                    "model": r["model"],
                    "format": r["format"],
                    "macs_reduction": round(r["macs_ratio"], 2),
                    "variant": r["variant"],
                    "network": side,
                    "step_ms": round(step, 1),
                    **{f"{p}_ms": round(step * shares[p], 1) if p in shares else None for p in PARTS},
                }
            )
    return pd.DataFrame(rows) if rows else None


def conv_speedups(session: Session) -> pd.DataFrame | None:
    """What limits the speedup, per speedup record with breakdowns: how much faster the convolutions
    of the low-rank network run than the dense network's (``conv_speedup``, to compare with
    ``macs_reduction``) and how the rest of the step compares (``rest_ratio`` = low-rank / dense
    time of everything but convolutions; 1 when the rest costs the same)."""
    rows = []
    for r in load(session.root, "speedup"):
        d, lr = r["dense"].get("breakdown"), r["lowrank"].get("breakdown")
        if not d or not lr:
            continue
        td, tl = r["dense"]["train_step_ms"], r["lowrank"]["train_step_ms"]
        rows.append(
            {
                "device": r["provenance"]["device_name"],
                "model": r["model"],
                "format": r["format"],
                "variant": r["variant"],
                "batch": r["batch_size"],
                "macs_reduction": round(r["macs_ratio"], 2),
                "dense_conv_ms": round(td * d["conv"], 1),
                "lowrank_conv_ms": round(tl * lr["conv"], 1),
                "conv_speedup": round(td * d["conv"] / (tl * lr["conv"]), 2),
                "rest_ratio": round(tl * (1 - lr["conv"]) / (td * (1 - d["conv"])), 2),
                "train_speedup": round(r["train_speedup"], 2),
            }
        )
    return pd.DataFrame(rows) if rows else None


def layer_table(session: Session) -> pd.DataFrame | None:
    """One row per converted conv shape of every layer-times record (``elrt bench --layers``), and
    one ``all`` row per record with the layer-count-weighted totals."""
    rows = []
    for r in load(session.root, "layer_times"):
        head = {"device": r["provenance"]["device_name"], "model": r["model"], "format": r["format"], "batch": r["batch_size"]}
        for x in r["rows"]:
            rows.append(
                {
                    **head,
                    "layer": f"{x['in_channels']}->{x['out_channels']} {x['kernel'][0]}x{x['kernel'][1]} "
                    f"s{x['stride'][0]} on {x['in_hw'][0]}x{x['in_hw'][1]}",
                    "layers": x["layers"],
                    "ranks": tuple(x["ranks"]),
                    "macs_reduction": round(x["macs_ratio"], 2),
                    "dense_ms": round(x["dense_ms"], 2),
                    "lowrank_ms": round(x["lowrank_ms"], 2),
                    "speedup": round(x["speedup"], 2),
                    "aligned_ranks": tuple(x["aligned_ranks"]),
                    "aligned_macs_reduction": round(x["aligned_macs_ratio"], 2),
                    "aligned_ms": round(x["aligned_ms"], 2),
                    "aligned_speedup": round(x["aligned_speedup"], 2),
                }
            )
        t = r["totals"]
        rows.append(
            {
                **head,
                "layer": "all converted layers",
                "layers": sum(x["layers"] for x in r["rows"]),
                "macs_reduction": round(t["macs_ratio"], 2),
                "speedup": round(t["speedup"], 2),
                "aligned_macs_reduction": round(t["aligned_macs_ratio"], 2),
                "aligned_speedup": round(t["aligned_speedup"], 2),
            }
        )
    return pd.DataFrame(rows) if rows else None


def variants_text() -> str:
    """The bench variants and device names in words (Markdown list), from :data:`elrt_core.bench.VARIANT_TEXT`."""
    items = [f"- *{name}*: {text}" for name, text in VARIANT_TEXT.items()]
    items.append(
        "- *devices*: a CPU is named by its model and widest vector unit (*AMD EPYC (avx512f)*, *AMD EPYC (avx2)*); "
        "*AMD EPYC* alone and *x86_64* (no model name available) are records made before the name carried the vector "
        "unit, so they may be either machine; a GPU by its CUDA device name."
    )
    return "\n".join(items)


def regularizer_overhead(session: Session) -> pd.DataFrame | None:
    """One row per regularizer of every overhead record, with its device (older records of a device included)."""
    rows = []
    for r in load(session.root, "regularizer_overhead"):
        for row in r["rows"]:
            rows.append({"device": r["provenance"]["device_name"], "model": r["model"], **row})
    return pd.DataFrame(rows) if rows else None


def reference_table(session: Session) -> pd.DataFrame | None:
    """One row per reference record (``elrt bench --reference``): training-step times of dense, this
    project's Tucker-2 network and the TensorLy-Torch one, measured in turns in one run, and the ratios."""
    rows = [
        {
            "device": r["provenance"]["device_name"],
            "model": r["model"],
            "macs_reduction": r["macs_ratio"],
            "variant": r["variant"],
            "batch": r["batch_size"],
            "dense_ms": r["train_step_ms"]["dense"],
            "ours_ms": r["train_step_ms"]["ours"],
            "reference_ms": r["train_step_ms"]["reference"],
            "ours_vs_dense": r["ours_vs_dense"],
            "reference_vs_dense": r["reference_vs_dense"],
            "ours_vs_reference": r["ours_vs_reference"],
            "reference": r["reference"],
        }
        for r in load(session.root, "reference")
    ]
    return pd.DataFrame(rows) if rows else None
