"""``elrt gpu collect`` (device): archive the new records, bench records and checkpoints into ``--out``."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from ..common import POSITIVE, UsageError, check_output, in_project
from .folders import RESULTS_HELP

__all__ = ["add_parser", "run"]

_NAME = re.compile(r"[A-Za-z0-9._-]+")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``elrt gpu collect``."""
    g = sub.add_parser("collect", help="(device) archive the new records, bench records and checkpoints into --out")
    g.add_argument("--out", required=True, help="folder whose files come back ($OUT on the device)")
    g.add_argument("--results", help=RESULTS_HELP)
    g.add_argument("--name", help="file name stem (default: elrt-gpu-<UTC time>)")
    g.add_argument("--limit-mib", type=POSITIVE, help="cap the archive below what --out has room for")
    g.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the archive's volumes and manifest, and name what had no room."""
    from ...gpu import collect, pack
    from ...paths import RESULTS_FOLDER, project_root

    results, out = in_project(args.results, pack.DEVICE_RESULTS), Path(args.out)
    if not results.is_dir():
        raise UsageError(f"--results {str(results)!r} is not a folder: nothing to collect")
    if args.name is not None and not _NAME.fullmatch(args.name):
        raise UsageError(f"--name {args.name!r} may hold only letters, digits, '.', '_' and '-'")
    check_output(out, "--out")
    limit = round(args.limit_mib * collect.MIB) if args.limit_mib else None
    manifest = collect.collect(results, out, name=args.name, tree_results=project_root() / RESULTS_FOLDER, limit_bytes=limit)
    size = sum(v["bytes"] for v in manifest["volumes"])
    print(
        f"collected {len(manifest['members'])} file(s) into {len(manifest['volumes'])} volume(s), {size / collect.MIB:.1f} MiB: "
        f"{out / (manifest['name'] + '.json')}"
    )
    for item in manifest["left_out"]:
        print(f"left out (no room): {item['path']} ({item['bytes'] / collect.MIB:.1f} MiB)")
    return 0
