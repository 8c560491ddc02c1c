"""``elrt plan``: the runs a profile needs, in training order, their status and the time left."""

from __future__ import annotations

import argparse
import statistics
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from .selection import add_selection_args, planned

if TYPE_CHECKING:
    from ..records import Record

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``elrt plan``."""
    p = sub.add_parser("plan", help="list the runs a profile needs, in training order, and their status")
    add_selection_args(p)
    p.set_defaults(func=run)


def _pace(
    per_epoch: list[float], left_epochs: dict[int, int], devices: set[str], borrowed: list[str] | None = None
) -> tuple[str | None, dict[int, float]]:
    """The line on the pace of the finished runs (median minutes an epoch, ``per_epoch``) and the
    run-hours each priority still needs at that pace (``left_epochs``: priority -> epochs of its runs
    not finished and not diverged; a diverged run is never retrained). ``borrowed``: the profiles of the
    same data whose runs give the pace, where no run of this profile has a recorded time. ``(None, {})``
    without any pace."""
    if not per_epoch:
        return None, {}
    pace = statistics.median(per_epoch)
    whose = (
        f"no run of this profile has a recorded time; the runs of {' and '.join(borrowed)} (the same data and settings, "
        f"other lengths) trained"
        if borrowed
        else "finished runs trained"
    )
    hours = {priority: epochs * pace / 60 for priority, epochs in left_epochs.items()}
    total = sum(hours.values())
    rest = (
        f"the runs not finished need about {total:.1f} run-hours at that pace (wall time divides by the runs side by side)"
        if total
        else "no planned run is left to train"
    )
    return f"{whose} at a median of {pace:.1f} min an epoch ({', '.join(sorted(devices))}); {rest}", hours


def _timed(folder: Path, per_epoch: list[float], devices: set[str]) -> bool:
    """Add the minutes an epoch (and the device) of every finished, timed record under ``folder`` to
    ``per_epoch`` (and ``devices``); whether it held any."""
    from .. import records

    good = [r for r in (records.scan(folder)[0] if folder.is_dir() else []) if r.finished and r.train_minutes is not None]
    per_epoch.extend(r.train_minutes / r.config.epochs for r in good)
    devices.update(r.provenance.get("device_name") or "unknown device" for r in good)
    return bool(good)


def _retrain_command(dense: Record, profile: str) -> str:
    """The ``elrt train`` command that trains ``dense`` again, in its folder, and keeps its weights."""
    return f"elrt train --profile {profile} --model {dense.config.model} --seed {dense.config.seed} --out {dense.path} --force"


def run(args: argparse.Namespace) -> int:
    """Print one line per planned run with its status, the counts, the progress of each priority and the pace."""
    from .. import profiles, records
    from ..study import plan as plan_lib
    from ..study.runs import run_dir

    prof = profiles.load(args.profile)
    runs = planned(prof, args)
    print(f"{prof.name}: {prof.description}")
    counts: dict[str, int] = {}
    done: Counter[int] = Counter()  # priority -> finished runs
    left_epochs: Counter[int] = Counter()  # priority -> epochs of the runs still to train
    per_epoch: list[float] = []  # minutes an epoch of each finished run
    devices: set[str] = set()
    base = records.results_root(args.results) / prof.name
    found = {r.config_hash: r for r in records.scan(base)[0]} if base.is_dir() else {}  # config hash -> record
    for one in runs:
        rec = records.lookup(one.config, base)
        if rec is not None:
            found[one.config.hash] = rec
        status = plan_lib.status(rec, run_dir(one.config, prof.name, args.results))
        if status == "done":
            done[one.priority] += 1
            if rec.train_minutes is not None:
                per_epoch.append(rec.train_minutes / one.config.epochs)
            devices.add(rec.provenance.get("device_name") or "unknown device")
        counts[status.split(" (")[0]] = counts.get(status.split(" (")[0], 0) + 1
        shown = f"done: test {rec.metrics['final_test_top1']:.2f}%" if status == "done" else status
        if status == "missing" and (dense := plan_lib.dense_to_retrain(one.config, found)):
            shown = f"missing; it decomposes {dense.path.name}, whose weights were not kept: {_retrain_command(dense, prof.name)}"
        print(f"{one.priority}  {one.method:<18} {one.config.name:<58} {shown}")
    print(f"{len(runs)} runs: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    by_priority = Counter(one.priority for one in runs)
    retrained: set[str] = set()  # the dense runs to train again for their weights, each counted once
    for p in sorted(by_priority):
        left_epochs[p] = plan_lib.epochs_left([r for r in runs if r.priority == p], found, retrained)
    borrowed = None
    if not per_epoch and not _timed(base, per_epoch, devices):  # none selected is timed: the profile's other runs,
        # else the profiles of the same data, whose epochs cost the same
        borrowed = [
            o for o in profiles.same_data(prof.name) if _timed(records.results_root(args.results) / o, per_epoch, devices)
        ]
    pace, hours = _pace(per_epoch, left_epochs, devices, borrowed)
    print(
        "by priority: "
        + ", ".join(
            f"{p}: {done[p]}/{n} done" + (f" (about {hours[p]:.1f} run-hours left)" if hours.get(p) else "")
            for p, n in sorted(by_priority.items())
        )
    )
    if pace:
        print(pace)
    return 0
