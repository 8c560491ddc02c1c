"""The targets of issue 28 (``targets`` in ``speed_thresholds.yaml``) checked against one speedup
record: ratios measured in one run, against the same and the fastest dense variant."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

__all__ = ["THRESHOLDS_FILE", "Check", "checks", "levels", "thresholds_file"]

THRESHOLDS_FILE = Path(__file__).resolve().parents[1] / "speed_thresholds.yaml"
"""The speedups, memory ratios and penalty times the project's issues set, and when (one data file)."""


@cache
def thresholds_file() -> dict[str, Any]:
    """The parsed :data:`THRESHOLDS_FILE`."""
    return yaml.safe_load(THRESHOLDS_FILE.read_text())


@dataclass(frozen=True)
class Check:
    """One target against one record: ``what`` in words, the ``measured`` ratio, the ``limit`` (at most
    for memory, at least for speed), the ``goal`` (None without one) and whether each is ``met``."""

    what: str
    measured: float
    limit: float
    goal: float | None
    met: bool
    goal_met: bool | None

    def text(self) -> str:
        sign = "<=" if self.what.startswith("activation") else ">="
        goal = "" if self.goal is None else f", goal {self.goal:.2f}x {'met' if self.goal_met else 'not met'}"
        return f"{self.what} {self.measured:.2f}x (target {sign} {self.limit:.2f}x: {'met' if self.met else 'NOT met'}{goal})"


def _applies(target: dict[str, Any], record: dict[str, Any]) -> bool:
    key = (record["model"], record["format"], round(record["macs_ratio"]), record["batch_size"])
    return key == (target["model"], target["format"], target["macs_reduction"], target["batch"])


def _at_most(what: str, measured: float, spec: dict[str, float]) -> Check:
    goal = spec.get("goal")
    return Check(what, measured, spec["max"], goal, measured <= spec["max"], None if goal is None else measured <= goal)


def _at_least(what: str, measured: float, spec: dict[str, float]) -> Check:
    goal = spec.get("goal")
    return Check(what, measured, spec["min"], goal, measured >= spec["min"], None if goal is None else measured >= goal)


def levels(record: dict[str, Any]) -> list[str | None]:
    """The recompute levels a speedup record timed, the run's own first; ``[None]`` for an older record."""
    timed = record.get("lowrank_levels")
    if not timed:
        return [None]
    own = record["lowrank"]["recompute"]
    return [own, *(k for k in timed if k != own)]


def _measured(record: dict[str, Any], level: str | None) -> dict[str, float | None]:
    """Low-rank / dense activation bytes and the speedups against the same and the best dense variant,
    of the low-rank step at recompute ``level`` (None: the record's own ``lowrank`` and ratios)."""
    d = record["dense"]
    low = record["lowrank"] if level is None else record["lowrank_levels"][level]
    step = low.get("train_step_ms")
    best = record.get("best_dense")
    if level is None:
        activation = 1 / record["memory_ratio"] if record.get("memory_ratio") else None
        same = record["train_speedup"]
    else:
        kept, dense_kept = low.get("activation_bytes"), d.get("activation_bytes")
        activation = kept / dense_kept if kept and dense_kept else None
        same = d["train_step_ms"] / step
    return {
        "activation": activation,
        "same": same,
        "best": record["dense_variants"][best]["train_step_ms"] / step if best and step else None,
    }


def checks(record: dict[str, Any], level: str | None = None) -> list[Check]:
    """Every target that applies to the speedup ``record`` (model, format, MAC reduction, batch), checked
    for its low-rank step at recompute ``level`` (None: the run's own): activation memory (low-rank /
    dense bytes kept for backward), the training speedup against the same dense variant, and against
    the fastest dense variant where the record timed several (records made after issue 28)."""
    m = _measured(record, level)
    out: list[Check] = []
    for target in thresholds_file().get("targets", []):
        if not _applies(target, record):
            continue
        if "activation" in target and m["activation"] is not None:
            out.append(_at_most("activation memory low-rank/dense", m["activation"], target["activation"]))
        if "speedup" in target:
            out.append(_at_least("train step vs the same dense variant", m["same"], target["speedup"]))
            if m["best"] is not None:
                best = f"train step vs the best dense ({record['best_dense']})"
                out.append(_at_least(best, m["best"], target["speedup"]))
    return out
