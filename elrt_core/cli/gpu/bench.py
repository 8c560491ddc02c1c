"""``elrt gpu bench`` (device): dense against Tucker-2 2x/3x speed records of ResNet-20/56/50."""

from __future__ import annotations

import argparse

from ... import models
from ..common import COUNT, NON_NEGATIVE, POSITIVE_INT, RATIO, check_output, in_project
from .folders import RESULTS_HELP

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``elrt gpu bench``."""
    from ... import bench
    from ...gpu import jobs

    g = sub.add_parser("bench", help="(device) dense vs Tucker-2 2x/3x speed records of ResNet-20/56/50")
    g.add_argument("--models", nargs="+", default=list(jobs.BENCH_MODELS), choices=models.MODELS)
    g.add_argument("--ratios", nargs="+", type=RATIO, default=list(jobs.BENCH_RATIOS))
    g.add_argument("--variants", nargs="+", default=["channels_last"], choices=bench.VARIANTS)
    g.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    g.add_argument("--steps", type=POSITIVE_INT, default=10)
    g.add_argument("--warmup", type=COUNT, default=3)
    g.add_argument("--batch-size", type=POSITIVE_INT, help="one batch size for all models (default: 128; ResNet-50: 64)")
    g.add_argument("--lock-wait", type=NON_NEGATIVE, default=0.0, help="seconds to wait for a training batch holding the GPU")
    g.add_argument("--results", help=RESULTS_HELP)
    g.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write one speed record per setting; 1 where one failed."""
    from ...gpu import jobs, pack

    settings = jobs.bench_settings(args.models, args.ratios, args.variants, args.device, args.steps, args.warmup, args.batch_size)
    for s in settings:
        s.validate()
    results = in_project(args.results, pack.DEVICE_RESULTS)
    check_output(results, "--results")
    report = jobs.bench(settings, results, lock_wait_s=args.lock_wait)
    print(f"bench: {len(report['written'])} record(s), {len(report['failed'])} failed, {report['seconds']:.0f} s")
    return 0 if not report["failed"] else 1
