"""``elrt reproduce``: train the missing runs of a profile and execute the notebooks with papermill."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import DEVICES, POSITIVE_INT, add_profile_arg, check_data, check_output, options

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``elrt reproduce``: which notebooks, whether to train or only reuse, where they go."""
    p = sub.add_parser("reproduce", help="train missing runs of a profile and execute the notebooks with papermill")
    add_profile_arg(p)
    p.add_argument("--only", nargs="+", help="notebook names (e.g. 02_orthogonality_on_off) or their number")
    p.add_argument("--jobs", type=POSITIVE_INT, default=1, help="notebooks executed in parallel")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--reuse-only", action="store_true", help="never train: chapters show the runs that exist")
    scope.add_argument("--train-only", action="store_true", help="train missing runs, skip the notebooks")
    p.add_argument("--out", help="folder for the executed notebooks (default: book/generated, the book's chapters)")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--data-dir")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Reproduce the profile's chapters; 1 where a notebook failed."""
    from .. import profiles
    from ..study import reproduce

    prof = profiles.load(args.profile)
    reproduce.selected(args.only)
    if args.out:
        check_output(Path(args.out), "--out")
    if not args.reuse_only:
        check_data("cifar10", args.data_dir, download=False)
    given = options(args, "only", "jobs", "reuse_only", "train_only", "device", "data_dir")
    return reproduce.run(prof, **given, out=Path(args.out) if args.out else None)
