"""``elrt batch``: train the missing runs of a profile, as local processes side by side or Slurm job arrays."""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from .common import (
    COUNT,
    DEVICES,
    POSITIVE,
    POSITIVE_INT,
    RESULTS_HELP,
    UsageError,
    add_profile_arg,
    check_data,
    check_output,
    flag,
    options,
)
from .selection import METHODS_HELP, planned

if TYPE_CHECKING:  # for annotations only, never imported at run time
    from ..study.executors import SlurmOptions

__all__ = ["add_parser", "slurm_options", "run"]

_SLURM_RESOURCES = ("partition", "account", "gpus", "cpus", "time_min", "max_running", "signal_delay_s")
_SLURM_FLAGS = (*_SLURM_RESOURCES, "mem", "setup", "sbatch", "dry_run", "wait")
_SBATCH_OPTION = re.compile(r"([a-z][a-z0-9-]*)=(.*)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``elrt batch`` with its local options and, in their own group, the Slurm ones."""
    from ..study.executors import EXECUTORS

    p = sub.add_parser("batch", help="train the missing runs of a profile: local processes side by side, or Slurm job arrays")
    add_profile_arg(p)
    p.add_argument(
        "--executor", default="local", choices=EXECUTORS, help="local processes, Slurm job arrays, or this process (pdb)"
    )
    p.add_argument("--jobs", type=POSITIVE_INT, help="local runs side by side (default: 1)")
    p.add_argument("--threads", type=POSITIVE_INT, help="PyTorch threads per run (default: PyTorch's; Slurm: --cpus)")
    p.add_argument("--minutes", type=POSITIVE, help="start no local run after this many minutes; stop the rest (they resume)")
    p.add_argument("--max-priority", type=POSITIVE_INT, help="train only run groups up to this priority")
    p.add_argument("--methods", help=METHODS_HELP)
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--data-dir")
    p.add_argument("--results", help=RESULTS_HELP)
    p.add_argument("--compile", action="store_true", help="torch.compile each model (pays compile time at every start)")
    _add_slurm_args(p.add_argument_group("--executor slurm (one job array per network)"))
    p.set_defaults(func=run)


def _add_slurm_args(g: argparse._ArgumentGroup) -> None:
    """The options of ``elrt batch --executor slurm`` (each job is one run)."""
    from ..study.executors import SlurmOptions

    d = SlurmOptions()
    g.add_argument("--partition", help="Slurm partition (default: the cluster's)")
    g.add_argument("--account", help="Slurm account (default: yours)")
    g.add_argument("--gpus", type=COUNT, help=f"GPUs per job (default: {d.gpus})")
    g.add_argument("--cpus", type=POSITIVE_INT, help=f"CPUs per job (default: {d.cpus})")
    g.add_argument("--mem", type=POSITIVE, help="GB of memory per job (default: the partition's)")
    g.add_argument("--time-min", type=POSITIVE_INT, help=f"minutes per job; a job past them is requeued (default: {d.time_min})")
    g.add_argument("--max-running", type=POSITIVE_INT, help=f"jobs of an array running at once (default: {d.max_running})")
    g.add_argument(
        "--signal-delay-s",
        type=POSITIVE_INT,
        help=f"seconds before the limit a job is told to stop (default: {d.signal_delay_s})",
    )
    g.add_argument(
        "--setup", action="append", help="a shell line run before each job, e.g. 'source venv/bin/activate' (repeatable)"
    )
    g.add_argument("--sbatch", action="append", metavar="KEY=VAL", help="any other sbatch option, e.g. qos=high (repeatable)")
    g.add_argument("--dry-run", action="store_true", help="print the job scripts; submit nothing")
    g.add_argument("--wait", action="store_true", help="follow the jobs until every one has ended")


def slurm_options(args: argparse.Namespace) -> SlurmOptions | None:
    """The Slurm options of ``elrt batch`` (``None`` for another executor, which takes none of them)."""
    from ..study.executors import SlurmOptions

    local_only = {"jobs": "Slurm runs up to --max-running jobs at once", "minutes": "give --time-min per job on Slurm"}
    for name, why in local_only.items():
        if args.executor != "local" and getattr(args, name) is not None:
            raise UsageError(f"{flag(name)} applies to --executor local only; {why}")
    given = [n for n in _SLURM_FLAGS if getattr(args, n) not in (None, False, [])]
    if args.executor != "slurm":
        if given:
            raise UsageError(f"{flag(given[0])} applies to --executor slurm only")
        return None
    sbatch = {}
    for item in args.sbatch or []:
        match = _SBATCH_OPTION.fullmatch(item)
        if match is None:
            raise UsageError(f"--sbatch {item!r}: expected KEY=VALUE with the long option name, e.g. --sbatch qos=high")
        sbatch[match[1]] = match[2]
    fields = {"mem_gb": args.mem, "setup": tuple(args.setup or ()), "sbatch": sbatch}
    fields |= {n: getattr(args, n) for n in _SLURM_RESOURCES if getattr(args, n) is not None}
    return SlurmOptions(**fields)


def run(args: argparse.Namespace) -> int:
    """Train the selected runs that have no record; 1 where one of them failed."""
    from .. import profiles
    from ..study import batch

    prof = profiles.load(args.profile)
    if args.results:
        check_output(Path(args.results), "--results")
    runs = planned(prof, args) if args.methods is not None else None
    slurm = slurm_options(args)
    if slurm is not None and not args.dry_run and shutil.which("sbatch") is None:
        raise UsageError("--executor slurm: no `sbatch` here; run on a Slurm login node, or add --dry-run to see the job scripts")
    if not args.dry_run:
        check_data("cifar10", args.data_dir, download=False)
    threads = args.threads or (slurm.cpus if slurm else None)
    given = options(args, "executor", "minutes", "device", "data_dir", "max_priority", "compile", "dry_run", "wait")
    report = batch.run(prof, **given, jobs=args.jobs or 1, threads=threads, slurm=slurm, root=args.results, runs=runs)
    return 0 if report.ok else 1
