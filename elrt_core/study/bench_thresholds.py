"""The speedups and penalty times the project set as thresholds, against the bench records (the
efficiency chapter's appendix: they were set after the first measurements)."""

from __future__ import annotations

import math

import pandas as pd

from ..bench.targets import thresholds_file
from ..machine_load import busy
from .bench_load import load
from .display import decimals, decisive
from .session import Session

__all__ = ["thresholds", "thresholds_history", "targets_text"]


def _thresholds() -> dict:
    """The parsed thresholds file (one place to read it, so tests can give other limits)."""
    return thresholds_file()


def _near_limit(speedup: float, model: str, ratio: int) -> float:
    """``speedup`` rounded once (:func:`display.decisive`) against each speedup threshold of ``model`` at
    ``ratio`` fewer MACs, so a best value printed beside a threshold never reads as reaching it when
    it does not."""
    limits = [t["min_speedup"] for t in _thresholds()["speedup"] if (t["model"], t["macs_reduction"]) == (model, ratio)]
    rounded = [decisive(speedup, limit) for limit in limits] or [decisive(speedup, math.inf)]
    return min(rounded, key=lambda r: abs(r - speedup))  # the most decimals any of the limits needs


def thresholds_history() -> str:
    """When and how the thresholds of :func:`thresholds` were set (``history`` of ``speed_thresholds.yaml``)."""
    return _thresholds()["history"]


def thresholds(session: Session) -> pd.DataFrame | None:
    """Each threshold of ``speed_thresholds.yaml`` (``speedup`` and ``penalty_pct``; the targets of
    issue 28 are :func:`elrt_core.study.bench_answer.targets_table`) against the records: the best
    measured training speedup against the same dense variant, over the variants and rank rules of each
    device for that model, MAC reduction and batch
    size, and each regularizer's
    penalty time as a share of the step; ``met`` says whether the measurement reaches it. ``measured``
    is rounded once, by :func:`display.decisive`: to 2 decimals, or more where 2 would carry it across
    its threshold; print it with :func:`display.decimals`."""
    limits = _thresholds()
    rows = []
    for r in load(session.root, "speedup"):
        if busy(r["provenance"]):  # measured beside busy processes: the sharing, not the network
            continue
        for t in limits["speedup"]:
            if (r["model"], r["format"], round(r["macs_ratio"]), r["batch_size"]) == (
                t["model"],
                t["format"],
                t["macs_reduction"],
                t["batch"],
            ):
                rows.append(
                    {
                        "device": r["provenance"]["device_name"],
                        "threshold": f"{t['model']} {t['format']} at {t['macs_reduction']}x fewer MACs, batch {t['batch']}: "
                        f"training speedup >= {t['min_speedup']:g}x",
                        "measured": decisive(r["train_speedup"], t["min_speedup"]),
                        "raw": r["train_speedup"],
                        "variant": r["variant"],
                        "rank_rule": r.get("rank_rule", "uniform"),
                        "met": r["train_speedup"] >= t["min_speedup"],
                    }
                )
    speed = pd.DataFrame(rows)
    if not speed.empty:  # keep the best variant per threshold and device
        speed = speed.sort_values("raw", ascending=False, kind="stable").drop_duplicates(["device", "threshold"])
        speed = speed.drop(columns="raw")
    rows = []
    for r in load(session.root, "regularizer_overhead"):
        for row in r["rows"] if not busy(r["provenance"]) else []:
            if row["regularizer"] in limits["penalty_pct"] and "penalty_pct" in row:
                limit = limits["penalty_pct"][row["regularizer"]]
                rows.append(
                    {
                        "device": r["provenance"]["device_name"],
                        "threshold": f"{r['model']} {row['regularizer'].upper()} penalty <= {limit:g}% of the step",
                        "measured": decisive(row["penalty_pct"], limit),
                        "variant": r["variant"],
                        "rank_rule": r.get("rank_rule", "uniform"),
                        "met": row["penalty_pct"] <= limit,
                    }
                )
    frames = [f for f in (speed, pd.DataFrame(rows)) if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else None


def targets_text(session: Session) -> str:
    """One item of a Markdown list per device: the best measured Tucker-2 training speedup of each model at each
    MAC reduction (over variants, rank rules and batch sizes), then each threshold of
    :func:`thresholds`, reached or not; records measured beside busy processes are left out."""
    best: dict[str, dict[str, dict[int, float]]] = {}
    for r in load(session.root, "speedup"):
        if r["format"] == "tucker2" and not busy(r["provenance"]):
            per = best.setdefault(r["provenance"]["device_name"], {}).setdefault(r["model"], {})
            k = round(r["macs_ratio"])
            per[k] = max(per.get(k, 0.0), r["train_speedup"])
    goals = thresholds(session)
    sentences = []
    for device in sorted(set(best) | (set(goals["device"]) if goals is not None else set())):
        models = best.get(device, {})
        text = f"On {device}:"
        if models:
            text += (
                " best measured training-step speedup of Tucker-2 over dense, over every variant, rank rule and batch "
                "size: "
                + "; ".join(
                    f"{m}: " + ", ".join(f"{decimals(_near_limit(v, m, k))}x at {k}x fewer MACs" for k, v in sorted(ks.items()))
                    for m, ks in sorted(models.items())
                )
                + "."
            )
        rows = goals[goals["device"] == device].sort_values("threshold") if goals is not None else pd.DataFrame()
        speed = [
            f"{t.threshold} {'reached' if t.met else 'not reached'} ({decimals(t.measured)}x)"
            for t in rows.itertuples()
            if "speedup" in t.threshold
        ]
        regs = [t for t in rows.itertuples() if "penalty" in t.threshold]
        if speed:
            text += " Thresholds: " + "; ".join(speed) + "."
        if regs:
            worst = max(regs, key=lambda t: t.measured)
            limit = max(_thresholds()["penalty_pct"].values())
            text += (
                f" The penalties with a threshold ({', '.join(k.upper() for k in _thresholds()['penalty_pct'])}) take at most "
                f"{decimals(worst.measured)}% of a step (threshold {limit:g}%: {'reached' if all(t.met for t in regs) else 'not reached'}); "
                "the others' times are in the overhead table, without a threshold."
            )
        sentences.append(text)
    if not sentences:
        return "No bench records yet: run `elrt bench` (see the README)."
    return "One item per device.\n\n" + "\n".join(f"- {text}" for text in sentences)  # a Markdown list
