"""Which runs of a profile ``elrt batch``, ``status`` and ``plan`` act on: its plan up to
``--max-priority``, of the ``--methods`` only if given."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .common import POSITIVE_INT, RESULTS_HELP, UsageError, add_profile_arg

if TYPE_CHECKING:  # for annotations only, never imported at run time
    from ..profiles import Profile
    from ..study.plan import PlannedRun

__all__ = ["METHODS_HELP", "add_selection_args", "planned"]

METHODS_HELP = "only these methods of the plan, comma-separated (e.g. tucker2-hw,tucker2), in plan order"


def add_selection_args(p: argparse.ArgumentParser) -> None:
    """``--profile``, ``--max-priority``, ``--methods`` and ``--results``, as ``status`` and ``plan`` take them."""
    add_profile_arg(p)
    p.add_argument("--max-priority", type=POSITIVE_INT)
    p.add_argument("--methods", help=METHODS_HELP)
    p.add_argument("--results", help=RESULTS_HELP)


def planned(prof: Profile, args: argparse.Namespace) -> list[PlannedRun]:
    """The plan of ``prof`` up to ``--max-priority``, of the ``--methods`` only if given."""
    from ..study import plan as plan_lib

    only = None if args.methods is None else [m.strip() for m in args.methods.split(",") if m.strip()]
    try:
        runs = plan_lib.plan(prof, args.max_priority, only)
    except ValueError as e:
        raise UsageError(f"--methods: {e}") from None
    if only and not runs:
        raise UsageError(f"--methods {args.methods}: no run of profile {prof.name!r} up to --max-priority {args.max_priority}")
    return runs
