"""``elrt data``: check or fetch the data set."""

from __future__ import annotations

import argparse

from ..config import DATASETS
from .common import UsageError

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``elrt data``."""
    p = sub.add_parser("data", help="check or fetch the data set")
    p.add_argument("action", choices=["check", "fetch"])
    p.add_argument("--data-dir")
    p.add_argument("--dataset", default="cifar10", choices=DATASETS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print where the verified copy is (fetching it first with ``fetch``)."""
    from .. import data

    try:
        print((data.check if args.action == "check" else data.fetch)(args.data_dir, dataset=args.dataset))
    except data.DataNotFoundError as e:
        raise UsageError(" ".join(str(e).split())) from None
    return 0
