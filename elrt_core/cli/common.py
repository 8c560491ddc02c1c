"""What every ``elrt`` command shares: the one-line parser, argument types, and the checks made before
any work starts (an output path that can be written, a verified data copy, a rank rule)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

__all__ = [
    "DEVICES",
    "RESULTS_HELP",
    "add_profile_arg",
    "UsageError",
    "Parser",
    "RATIO",
    "POSITIVE_INT",
    "COUNT",
    "POSITIVE",
    "NON_NEGATIVE",
    "options",
    "flag",
    "check_output",
    "check_data",
    "in_project",
    "rank_rule",
]

DEVICES = ("auto", "cpu", "cuda")
RESULTS_HELP = "results folder (default: $ELRT_RESULTS, else <study>/results)"


class UsageError(Exception):
    """A bad command line; printed as one line, exit status 2."""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: ...)`` where an option has a default other than None."""

    def _get_help_string(self, action: argparse.Action) -> str:
        return action.help if action.default is None else super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (:class:`UsageError`), no usage dump."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        raise UsageError(message)


def _number(kind: type, minimum: float | None = None, strict: bool = False):
    """An argparse type: ``kind`` (int or float), checked against ``minimum`` (``strict``: must exceed it)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        if minimum is not None and (value <= minimum if strict else value < minimum):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {minimum:g}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


RATIO = _number(float, 1.0, strict=True)
POSITIVE_INT = _number(int, 0, strict=True)
COUNT = _number(int, 0)
POSITIVE = _number(float, 0.0, strict=True)
NON_NEGATIVE = _number(float, 0.0)


def add_profile_arg(p: argparse.ArgumentParser, default: str | None = "cpu-full", help: str | None = None) -> None:
    """``--profile``: one of the profiles of profiles.yaml (``default``: the one taken when it is not given)."""
    from .. import profiles

    p.add_argument("--profile", default=default, choices=profiles.names(), help=help)


def options(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """``{name: args.<name>}`` of the parsed arguments a library call takes under the same names."""
    return {n: getattr(args, n) for n in names}


def flag(name: str) -> str:
    """The command-line flag of the argument ``name`` (``time_min`` -> ``--time-min``)."""
    return "--" + name.replace("_", "-")


def check_output(path: Path, what: str, folder: bool = True) -> None:
    """``path`` can be created or written (its nearest existing ancestor is a writable folder), without creating it."""
    if path.exists() and (path.is_dir() != folder):
        raise UsageError(f"{what} {str(path)!r} is {'a file' if folder else 'a folder'}; give a {'folder' if folder else 'file'}")
    existing = path if path.exists() else next((p for p in path.parents if p.exists()), Path("."))
    target = existing if existing.is_dir() else existing.parent
    try:  # a real probe: permission bits do not tell for root or special file systems
        with tempfile.TemporaryFile(dir=target):
            pass
    except OSError as e:
        raise UsageError(f"{what} {str(path)!r} is not writable ({target}: {e.strerror or e})") from None


def check_data(dataset: str, data_dir: str | None, download: bool) -> None:
    """A verified local copy exists (or, with ``download``, can be fetched): else one line with the fix."""
    from .. import data

    try:
        (data.fetch if download else data.check)(data_dir, dataset=dataset)
    except data.DataNotFoundError as e:
        raise UsageError(" ".join(str(e).split())) from None


def in_project(value: str | None, default: Path) -> Path:
    """``value`` as a path, else ``default`` under the study's root folder."""
    from ..paths import project_root

    return Path(value) if value else project_root() / default


def rank_rule(requested: str, device: str, fmt: str, model: str, batch_size: int | None) -> tuple[str, str | None]:
    """The stored form of ``--rank-rule`` (``hw`` resolved to this device's timing table, else the
    uniform rule); the note says which table, or why the rule fell back (printed to stderr)."""
    from ..config import RANK_RULE_PATTERN
    from ..train import resolve_device
    from ..train.rank_rule import resolve_rank_rule

    if requested != "hw" and RANK_RULE_PATTERN.fullmatch(requested) is None:
        raise UsageError(f"--rank-rule must be uniform, hw or hw:<table id>, got {requested!r}")
    if requested == "uniform" or fmt == "dense":
        return requested, None
    try:
        rule, note = resolve_rank_rule(requested, resolve_device(device), fmt, model, batch_size)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if note:
        print(f"elrt: {'warning: ' if rule == 'uniform' else ''}{note}", file=sys.stderr)
    return rule, note
