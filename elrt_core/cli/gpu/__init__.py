"""``elrt gpu``: carry the data to a lent GPU and the records back (training there is ``elrt batch``),
one module per action: :mod:`.pack` and :mod:`.receive` run here, :mod:`.unpack`, :mod:`.bench` and
:mod:`.collect` on the device."""

from __future__ import annotations

import argparse

from ..common import Parser
from . import bench, collect, pack, receive, unpack

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``elrt gpu`` and its actions, in the order a device session uses them."""
    p = sub.add_parser("gpu", help="carry data to a lent GPU and the records back (training there: elrt batch)")
    actions = p.add_subparsers(dest="action", required=True, parser_class=Parser)
    for action in (pack, unpack, bench, collect, receive):
        action.add_parser(actions)
