"""``elrt status``: where each run of a profile stands (done, running, queued, failed, diverged)."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from .common import check_output
from .selection import add_selection_args, planned

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``elrt status``: the runs it shows, and ``--json``."""
    p = sub.add_parser("status", help="where each run of a profile stands: done, running, queued, failed, diverged")
    add_selection_args(p)
    p.add_argument("--json", help="also write the table to this JSON file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print one line per run (and the log lines of a failed one), then the counts of each state."""
    from .. import profiles
    from ..study import status

    prof = profiles.load(args.profile)
    if args.json:
        check_output(Path(args.json), "--json", folder=False)
    found = status.profile_status(prof, planned(prof, args), args.results)
    for s in found:
        epochs = f"epoch {s.epoch}/{s.epochs}" if s.epoch is not None and s.state not in ("done", "diverged") else ""
        print(f"{s.priority}  {s.method:<18} {s.name:<58} {s.state:<8} {epochs}  {s.detail}".rstrip())
        for line in s.log:
            print(f"      | {line}")
    counts = Counter(s.state for s in found)
    print(f"{len(found)} runs: " + ", ".join(f"{counts[k]} {k}" for k in status.STATES if counts[k]))
    if args.json:
        from ..records import write_json

        write_json(Path(args.json), {"profile": prof.name, "runs": [s.as_dict() for s in found]})
    return 0
