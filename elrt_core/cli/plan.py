"""``elrt plan``: the runs a profile needs, in training order, their status and the time left."""

from __future__ import annotations

import argparse
import statistics
from collections import Counter

from .selection import add_selection_args, planned

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``elrt plan``."""
    p = sub.add_parser("plan", help="list the runs a profile needs, in training order, and their status")
    add_selection_args(p)
    p.set_defaults(func=run)


def _pace(planned_runs: int, done: dict[int, list[float | None]], diverged: int, devices: set[str]) -> str | None:
    """The line on the median minutes of a finished run and the run-hours the rest need (None: none finished)."""
    minutes = [m for ms in done.values() for m in ms if m is not None]
    if not minutes:
        return None
    pace = statistics.median(minutes)
    left = planned_runs - sum(map(len, done.values())) - diverged  # a diverged run is never retrained
    rest = (
        f"the {left} not finished need about {left * pace / 60:.1f} run-hours at that pace (wall time divides by the runs side by side)"
        if left
        else "no planned run is left to train"
    )
    return f"finished runs trained for a median of {pace:.0f} min each ({', '.join(sorted(devices))}); {rest}"


def run(args: argparse.Namespace) -> int:
    """Print one line per planned run with its status, the counts, the progress of each priority and the pace."""
    from .. import profiles, records
    from ..study import plan as plan_lib
    from ..study.runs import run_dir

    prof = profiles.load(args.profile)
    runs = planned(prof, args)
    print(f"{prof.name}: {prof.description}")
    counts: dict[str, int] = {}
    done: dict[int, list[float | None]] = {one.priority: [] for one in runs}  # priority -> minutes of each finished run
    devices: set[str] = set()
    for one in runs:
        rec = records.lookup(one.config, records.results_root(args.results) / prof.name)
        status = plan_lib.status(rec, run_dir(one.config, prof.name, args.results))
        if status == "done":
            done[one.priority].append(rec.train_minutes)
            devices.add(rec.provenance.get("device_name") or "unknown device")
        counts[status.split(" (")[0]] = counts.get(status.split(" (")[0], 0) + 1
        shown = f"done: test {rec.metrics['final_test_top1']:.2f}%" if status == "done" else status
        print(f"{one.priority}  {one.method:<18} {one.config.name:<58} {shown}")
    print(f"{len(runs)} runs: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    by_priority = Counter(one.priority for one in runs)
    print("by priority: " + ", ".join(f"{p}: {len(done[p])}/{n} done" for p, n in sorted(by_priority.items())))
    pace = _pace(len(runs), done, counts.get("diverged", 0), devices)
    if pace:
        print(pace)
    return 0
