"""``elrt gpu receive`` (here): check a collected archive and put it into the results folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..common import RESULTS_HELP, UsageError, check_output

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``elrt gpu receive``."""
    g = sub.add_parser("receive", help="(here) check a collected archive and put it into the results folder")
    g.add_argument("manifest", help="the <name>.json written by `elrt gpu collect`, its volumes beside it")
    g.add_argument("--results", help=RESULTS_HELP)
    g.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Receive the archive; 1 where a file conflicts with the tree's or its run folder is busy."""
    from ...gpu import collect
    from ...records import results_root

    manifest = Path(args.manifest)
    if not manifest.is_file():
        raise UsageError(f"no collect manifest at {str(manifest)!r} (the <name>.json that `elrt gpu collect` wrote)")
    results = results_root(args.results)
    check_output(results, "--results")
    outcome = collect.receive(manifest, results)
    print(", ".join(f"{len(v)} {k}" for k, v in outcome.items()) + f" (into {results})")
    for path in outcome["conflicts"]:
        print(f"conflict: {path} differs from the file already in {results}; left as it was")
    for path in outcome["busy"]:
        print(f"busy: {path} not written: a process is training in its run folder; receive again when it ends")
    return 0 if not outcome["conflicts"] and not outcome["busy"] else 1
