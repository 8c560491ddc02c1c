"""Which runs each part of the study needs under a profile (the single source of run configs).

Parts, in the order ``elrt reproduce`` trains them (later parts may depend on earlier results):

* ``approximation`` (Figure 3): the dense model whose trained kernels are analysed.
* ``orthogonality`` (Figure 4): Tucker-2 with and without the regularizer, same ranks, every seed.

A part's spec may name its own ``seeds`` (e.g. more seeds for the on/off comparison than the
profile's default); otherwise it uses the profile's.
* ``regularizers`` (Figure 5): Tucker-2 with none / each regularizer on each factor set.
* ``main`` (the results table): dense, ELRT, Tucker-2 without regularizer and the other formats,
  per model and FLOPs ratio. ELRT's regularizer is the best of the ``regularizers`` part when the
  profile says ``elrt_reg: best``, so ``main`` needs those records first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from statistics import mean

from .. import records
from ..config import TrainConfig
from ..profiles import Profile
from .runs import MissingRun, results_root

__all__ = ["PlannedRun", "PARTS", "approximation", "orthogonality", "regularizers", "best_regularizer", "main", "plan"]

PARTS = ("approximation", "orthogonality", "regularizers", "main")


@dataclass(frozen=True)
class PlannedRun:
    """A run with the labels the notebooks group it by."""

    part: str
    method: str
    config: TrainConfig


def _lowrank(p: Profile, spec: dict, seed: int, reg: str = "none", on: tuple[str, ...] = ("U2",), **kw) -> TrainConfig:
    fields = {"model": spec["model"], "format": spec.get("format", "tucker2"), "flops_ratio": spec["flops_ratio"], "seed": seed, **kw}
    if reg != "none":
        fields |= {"reg": reg, "reg_on": on, "reg_weight": p.reg_weight(reg, on)}
    return p.config(**fields)


def reg_label(reg: str, on: tuple[str, ...] | list[str]) -> str:
    return "none" if reg == "none" else f"{reg.upper()} on {'+'.join(on)}"


def approximation(p: Profile) -> list[PlannedRun]:
    return [PlannedRun("approximation", "dense", p.config(model=p.approximation["model"], seed=p.seeds_for("approximation")[0]))]


def orthogonality(p: Profile) -> list[PlannedRun]:
    s = p.orthogonality
    out = []
    for seed in p.seeds_for("orthogonality"):
        out.append(PlannedRun("orthogonality", "none", _lowrank(p, s, seed)))
        out.append(PlannedRun("orthogonality", reg_label(s["reg"], s["on"]), _lowrank(p, s, seed, s["reg"], tuple(s["on"]))))
    return out


def regularizers(p: Profile) -> list[PlannedRun]:
    s = p.regularizers
    out = []
    for seed in p.seeds_for("regularizers"):
        out.append(PlannedRun("regularizers", "none", _lowrank(p, s, seed)))
        for on in s["on"]:
            for reg in s["regs"]:
                out.append(PlannedRun("regularizers", reg_label(reg, on), _lowrank(p, s, seed, reg, tuple(on))))
    return out


def best_regularizer(p: Profile, root: str | os.PathLike | None = None) -> tuple[str, tuple[str, ...], float]:
    """``(reg, on, mean final top-1)`` of the regularized run group with the best mean final test top-1."""
    scores: dict[tuple[str, tuple[str, ...]], list[float]] = {}
    for run in regularizers(p):
        if run.config.reg == "none":
            continue
        rec = records.find(run.config, results_root(root) / p.name)
        if rec is None:
            raise MissingRun(f"the regularizer comparison of profile {p.name!r} is incomplete ({run.config.name}); train it first")
        scores.setdefault((run.config.reg, run.config.reg_on), []).append(rec.metrics["final_test_top1"])
    (reg, on), accs = max(scores.items(), key=lambda kv: (mean(kv[1]), kv[0]))
    return reg, on, mean(accs)


def main(p: Profile, root: str | os.PathLike | None = None) -> list[PlannedRun]:
    s = p.main
    if s["elrt_reg"] == "best":
        reg, on, _ = best_regularizer(p, root)
    else:
        reg, on = s["elrt_reg"]["reg"], tuple(s["elrt_reg"]["on"])
    out = []
    for group in s["groups"]:
        for model in group["models"]:
            for seed in p.seeds_for("main"):
                out.append(PlannedRun("main", "dense", p.config(model=model, seed=seed)))
                for ratio in group["ratios"]:
                    spec = {"model": model, "flops_ratio": ratio}
                    out.append(PlannedRun("main", f"ELRT (Tucker-2 + {reg_label(reg, on)})", _lowrank(p, spec, seed, reg, on)))
                    out.append(PlannedRun("main", "Tucker-2, no regularizer", _lowrank(p, spec, seed)))
                    for fmt in s["formats"]:
                        out.append(PlannedRun("main", f"{fmt}, no regularizer", _lowrank(p, {**spec, "format": fmt}, seed)))
    return out


def plan(p: Profile, parts: tuple[str, ...] = PARTS, root: str | os.PathLike | None = None) -> list[PlannedRun]:
    """The runs of ``parts`` in training order, each config once (first occurrence kept)."""
    builders = {"approximation": approximation, "orthogonality": orthogonality, "regularizers": regularizers,
                "main": lambda prof: main(prof, root)}
    seen, out = set(), []
    for part in parts:
        for run in builders[part](p):
            if run.config.hash not in seen:
                seen.add(run.config.hash)
                out.append(run)
    return out
