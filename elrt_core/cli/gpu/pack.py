"""``elrt gpu pack`` (here): write CIFAR-10 and the unfinished checkpoints as pieces that fit device
calls, and print the calls."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

from ..common import POSITIVE, UsageError, add_profile_arg, check_data, check_output, in_project
from .folders import PACK_FOLDER

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``elrt gpu pack``."""
    g = sub.add_parser("pack", help="(here) write CIFAR-10 and unfinished checkpoints as pieces that fit device calls")
    add_profile_arg(g, "paper", help="whose unfinished runs' checkpoints to add")
    g.add_argument("--data-dir", help="verified CIFAR-10 (default: $ELRT_DATA_DIR, then ./data)")
    g.add_argument("--results", help="results folder with the checkpoints (default: $ELRT_RESULTS, else <study>/results)")
    g.add_argument("--out", help=f"pack folder, git-ignored (default: {PACK_FOLDER})")
    g.add_argument("--group-mib", type=POSITIVE, help="MiB of pieces per device call (default: 64 MiB less the tree less 4 MiB)")
    g.add_argument("--minutes", type=POSITIVE, default=8.0, help="training minutes of the last device call, in the printed calls")
    g.set_defaults(func=run)


def _carry_path(path: Path, root: Path) -> str:
    """``path`` as a device call's ``carry`` entry: relative to the repository root."""
    return os.path.relpath(path, root) if path.resolve().is_relative_to(root.resolve()) else str(path)


def _checked_out(args: argparse.Namespace, root: Path) -> Path:
    """The pack folder: writable, and git-ignored where it lies in the tree (else it would travel in every call)."""
    from ...gpu import pack

    out = in_project(args.out, pack.PACK_DIR)
    check_output(out, "--out")
    if (
        out.resolve().is_relative_to(root.resolve())
        and subprocess.run(["git", "check-ignore", "-q", str(out / pack.MANIFEST)], cwd=root).returncode != 0
    ):
        raise UsageError(f"--out {str(out)!r} is not git-ignored: the pieces would travel in every device call; use .device/")
    return out


def _summary(out: Path, manifest: dict) -> str:
    """The pack's pieces and sizes in one line, and the source commit (with a warning if it is dirty)."""
    from ...gpu import pack

    mib = lambda n: f"{n / pack.MIB:.1f} MiB"  # noqa: E731
    kinds = {k: sum(1 for e in manifest["pieces"] if e["kind"] == k) for k in ("images", "labels", "resume")}
    src = manifest["source"]
    dirty = " with UNCOMMITTED changes: commit them and pack again, so the device's records name the code they ran"
    return (
        f"pack {out}: {kinds['images']} image pieces, {kinds['resume']} checkpoint pieces, "
        f"{mib(sum(e['bytes'] for e in manifest['pieces']))} in {len(manifest['groups'])} group(s) of at most "
        f"{mib(manifest['group_limit_bytes'])}; the tree that travels is {mib(manifest['tree_bytes'])}\n"
        f"source: commit {src['commit'][:12]}" + (dirty if src["dirty"] else "")
    )


def run(args: argparse.Namespace) -> int:
    """Write the pack and print it and the device calls that carry it."""
    from ... import profiles
    from ...gpu import calls, pack
    from ...paths import project_root
    from ...records import results_root

    root = project_root()
    prof = profiles.load(args.profile)
    if args.minutes * 60 + calls.FINISH_S > calls.CALL_LIMIT_S:
        raise UsageError(
            f"--minutes {args.minutes:g} leaves no room in a {calls.CALL_LIMIT_S} s device call; "
            f"at most {(calls.CALL_LIMIT_S - calls.FINISH_S) / 60:g}"
        )
    out = _checked_out(args, root)
    check_data("cifar10", args.data_dir, download=False)
    limit = round(args.group_mib * pack.MIB) if args.group_mib else None
    manifest = pack.pack(
        root, data_dir=args.data_dir, profile=prof, results=results_root(args.results), pack_dir=out, limit=limit
    )
    print(_summary(out, manifest))
    device_calls = calls.device_calls(manifest, Path(_carry_path(out, root)), profile=prof.name, minutes=args.minutes)
    for i, call in enumerate(device_calls, 1):
        print(f"device call {i}: {json.dumps(call.as_dict())}")
    return 0
