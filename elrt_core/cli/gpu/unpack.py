"""``elrt gpu unpack`` (device): check the pack, write the data and checkpoints, and ready the tree for
``elrt batch``."""

from __future__ import annotations

import argparse

from ..common import add_profile_arg, check_output, in_project
from .folders import DATA_FOLDER, PACK_FOLDER, RESULTS_FOLDER

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``elrt gpu unpack``."""
    g = sub.add_parser("unpack", help="(device) check the pack, write the data and checkpoints, ready the tree for elrt batch")
    add_profile_arg(g, "paper", help="whose records to copy from the tree")
    g.add_argument("--pack", help=f"pack folder (default: {PACK_FOLDER})")
    g.add_argument("--data-out", help=f"data folder to write (default: {DATA_FOLDER})")
    g.add_argument("--results", help=f"results folder for the checkpoints (default: {RESULTS_FOLDER})")
    g.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Unpack, print what was written, and write the tree's source file and records for the device's runs."""
    from ... import profiles
    from ...gpu import jobs, pack
    from ...paths import project_root

    prof = profiles.load(args.profile)
    pack_dir = in_project(args.pack, pack.PACK_DIR)
    data_out, results = in_project(args.data_out, pack.DEVICE_DATA), in_project(args.results, pack.DEVICE_RESULTS)
    check_output(data_out, "--data-out")
    check_output(results, "--results")
    pack.read_manifest(pack_dir)  # a missing manifest: one line naming what to carry
    report = pack.unpack(pack_dir, data_out, results)
    print(f"data: {report['data']}" + (" (already there)" if report["data_reused"] else ""))
    print(f"checkpoints: {len(report['checkpoints_written'])} written, {len(report['checkpoints_kept'])} kept as they were")
    jobs.arrive(project_root(), report["source"], prof, results)
    return 0
