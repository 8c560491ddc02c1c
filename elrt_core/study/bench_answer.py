"""The efficiency chapter's answer: for each Tucker-2 CIFAR network and rank rule, its training step
against the fastest dense step, its activation memory, parameters and optimizer state against dense,
each with its interval where it has one, and the targets set for them."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..bench import targets
from ..machine_load import busy
from . import stats
from .bench_claim import CLAIM_SETTING, claim_setting, paired_rounds
from .bench_load import cifar, device, load, started
from .session import Session

__all__ = ["answer_records", "efficiency_table", "memory_table", "targets_table", "gpu_text"]

RATIOS = (2, 3)
"""The MAC reductions the answer reports."""


def _key(record: dict) -> tuple[str, int, str]:
    rule = record.get("rank_rule", "uniform")
    return record["model"], round(record["macs_ratio"]), "uniform" if rule == "uniform" else "hardware-aware"


def answer_records(session: Session) -> tuple[dict[tuple[str, int, str], dict], str | None]:
    """``{(model, MAC reduction, ranks): record}`` and their device: the newest quiet speedup record of
    each Tucker-2 CIFAR network at 2x and 3x fewer MACs, uniform or hardware-aware ranks, in the claim
    setting (channels-last, batch 128, no penalty), all from one device, so every row is measured on one
    machine: the one whose records answer best (:func:`_coverage`: the most with paired rounds, then the
    most networks, then the newest)."""
    by_device: dict[str, dict[tuple[str, int, str], dict]] = {}
    for r in load(session.root, "speedup"):
        fits = any(claim_setting(r["format"], r.get("variant"), r.get("batch_size"), r["macs_ratio"], k) for k in RATIOS)
        if not fits or not cifar(r["model"]) or r.get("reg", "none") != "none" or busy(r["provenance"]):
            continue
        here = by_device.setdefault(device(r), {})
        if _key(r) not in here or started(r) > started(here[_key(r)]):
            here[_key(r)] = r
    if not by_device:
        return {}, None
    chosen = max(by_device, key=lambda d: _coverage(by_device[d].values()))
    return dict(sorted(by_device[chosen].items())), chosen


def _coverage(found) -> tuple[int, int, object]:
    """How well one device's records answer: how many have paired rounds (an interval), how many
    networks, and the newest start (the last tie-break)."""
    found = list(found)
    paired = sum(1 for r in found if len(r["lowrank"].get("train_rounds_ms") or []) >= 2)
    return paired, len(found), max(map(started, found))


def _network(model: str, ratio: int, ranks: str) -> str:
    """A table row's network in words: ``ResNet-20, 2x fewer MACs, uniform ranks``."""
    name = model.replace("resnet", "ResNet-") if model.startswith("resnet") else model
    return f"{name}, {ratio}x fewer MACs, {ranks} ranks"


def _interval(numerator: list[float] | None, denominator: list[float] | None) -> tuple[float, float, float]:
    """Geometric mean of paired ratios and its 95% interval (:func:`stats.ratio_interval`); NaNs without rounds."""
    if not numerator or not denominator or len(numerator) != len(denominator):
        return math.nan, math.nan, math.nan
    return stats.ratio_interval(numerator, denominator)


def _with_interval(ratio: float, lo: float, hi: float, fallback: float | None = None) -> str:
    """``1.23x (1.20-1.26)``; the median ``fallback`` with "no interval" where there are no paired rounds."""
    if not math.isnan(ratio):
        return f"{ratio:.2f}x ({lo:.2f}-{hi:.2f})" if not math.isnan(lo) else f"{ratio:.2f}x (one round)"
    return "not measured" if fallback is None else f"{fallback:.2f}x (median; no per-step times)"


def efficiency_table(session: Session) -> pd.DataFrame | None:
    """Training step of each network of :func:`answer_records`: speedup against the fastest dense variant
    the record timed ("not timed" for older records, which timed one) and against the same variant as the low-rank network
    (channels-last), each the geometric mean of the paired rounds with its 95% interval; the name of the
    fastest dense variant; the recompute level the low-rank step ran at."""
    found, _ = answer_records(session)
    rows = []
    for (model, ratio, ranks), r in found.items():
        dense, low, best = paired_rounds(r)
        timed = "best_dense" in r  # older records timed one dense variant only
        rows.append(
            {
                "network": _network(model, ratio, ranks),
                "model": model,
                "macs_reduction": ratio,
                "ranks": ranks,
                "vs_best": _with_interval(*_interval(dense, low), fallback=r.get("train_speedup_best")) if timed else "not timed",
                "best_dense": best.replace("_", "-") if timed else "not timed",
                "vs_same": _with_interval(
                    *_interval(r["dense"].get("train_rounds_ms"), r["lowrank"].get("train_rounds_ms")),
                    fallback=r["train_speedup"],
                ),
                "recompute": r["lowrank"].get("recompute", "off"),
            }
        )
    return pd.DataFrame(rows) if rows else None


def _bytes_ratio(low: float | None, dense: float | None) -> float | None:
    return round(low / dense, 2) if low and dense else None


def _recompute_all(r: dict) -> dict[str, Any]:
    """Activation memory with every cheap tensor recomputed, and what that costs in step time
    (geometric mean of the paired rounds against no recomputation, %, with its interval)."""
    levels = r.get("lowrank_levels") or {}
    everything, off = levels.get("all"), levels.get("off")
    if not everything or not off:
        return {"activation_all": None, "cost_all": "not measured"}
    ratio, lo, hi = _interval(everything.get("train_rounds_ms"), off.get("train_rounds_ms"))
    cost = "not measured" if math.isnan(ratio) else f"{100 * (ratio - 1):+.1f}% ({100 * (lo - 1):+.1f} to {100 * (hi - 1):+.1f})"
    return {
        "activation_all": _bytes_ratio(everything.get("activation_bytes"), r["dense"].get("activation_bytes")),
        "cost_all": cost,
    }


def memory_table(session: Session) -> pd.DataFrame | None:
    """Memory of each network of :func:`answer_records` against dense's, low-rank / dense: the activation
    bytes kept for backward at the record's recompute level and with every cheap tensor recomputed
    (``all``, with the step time that costs), the peak memory of a step (resident on the CPU), the
    parameters and the optimizer state (SGD momentum). Counts, not samples: no interval; empty where a
    record did not measure it (older records)."""
    found, _ = answer_records(session)
    rows = []
    for (model, ratio, ranks), r in found.items():
        d, lr = r["dense"], r["lowrank"]
        rows.append(
            {
                "network": _network(model, ratio, ranks),
                "model": model,
                "macs_reduction": ratio,
                "ranks": ranks,
                "activation": round(1 / r["memory_ratio"], 2) if r.get("memory_ratio") else None,
                **_recompute_all(r),
                "peak_step": _bytes_ratio(lr.get("peak_step_bytes"), d.get("peak_step_bytes")),
                "params": round(1 / r["params_ratio"], 2) if r.get("params_ratio") else None,
                "optimizer": _bytes_ratio(lr.get("optimizer_bytes"), d.get("optimizer_bytes")),
            }
        )
    return pd.DataFrame(rows) if rows else None


def targets_table(session: Session) -> pd.DataFrame | None:
    """The targets set for these networks (:mod:`elrt_core.bench.targets`) against each record of
    :func:`answer_records`, at every recompute level it timed: measured ratio, target, goal, met."""
    found, _ = answer_records(session)
    rows = []
    for (model, ratio, ranks), r in found.items():
        for level in targets.levels(r):
            for c in targets.checks(r, level):
                rows.append(
                    {
                        "network": _network(model, ratio, ranks),
                        "model": model,
                        "macs_reduction": ratio,
                        "ranks": ranks,
                        "recompute": level or "off",
                        "what": c.what,
                        "measured": round(c.measured, 2),
                        "target": ("<= " if c.what.startswith("activation") else ">= ") + f"{c.limit:.2f}x",
                        "met": "yes" if c.met else "no",
                        "goal": "" if c.goal is None else f"{c.goal:.2f}x: {'met' if c.goal_met else 'not met'}",
                    }
                )
    return pd.DataFrame(rows) if rows else None


def gpu_text(session: Session) -> str:
    """Whether a GPU number exists: the GPUs with speedup records in the claim setting, or a sentence saying
    that none exists yet and what every number of the chapter was measured on."""
    found = [r for r in load(session.root, "speedup") if r.get("device") == "cuda"]
    if found:
        names = sorted({device(r) for r in found})
        return f"GPU records exist for {', '.join(names)}; their rows are in the appendix's table of every record."
    cpus = sorted({device(r) for r in load(session.root, "speedup")})
    where = f" ({', '.join(cpus)})" if cpus else ""
    return (
        f"No GPU number exists yet: every bench record was measured on a CPU{where}. The CUDA bench measures memory "
        f"from the CUDA allocator and needs no change; a lent GPU will add its records (batch {CLAIM_SETTING['batch_size']})."
    )
