"""``elrt info``: per-layer ranks and cost of a converted model (no training)."""

from __future__ import annotations

import argparse

from .. import models
from ..lowrank import FORMATS
from .common import RATIO, UsageError, rank_rule

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``elrt info``."""
    p = sub.add_parser("info", help="per-layer ranks and cost of a converted model (no training)")
    p.add_argument("model", choices=models.MODELS)
    p.add_argument("--format", default="tucker2", choices=("dense", *FORMATS))
    p.add_argument("--flops-ratio", type=RATIO)
    p.add_argument("--params-ratio", type=RATIO)
    p.add_argument("--rank-rule", default="uniform", help="uniform, hw (this CPU's newest timing table) or hw:<table id>")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the model's input shape and its per-layer cost table (FLOPs as MACs per image)."""
    from .. import lowrank
    from ..train.rank_rule import load_rank_table

    model = models.get(args.model)
    shape = models.input_shape(args.model)
    rule, _ = rank_rule(args.rank_rule, "cpu", args.format, args.model, None)
    if args.format != "dense":
        timing = None if rule == "uniform" else load_rank_table(rule)
        model = lowrank.convert(
            model,
            args.format,
            flops_ratio=args.flops_ratio,
            params_ratio=args.params_ratio,
            input_shape=shape,
            init="scratch",
            timing=timing,
        )
    elif args.flops_ratio or args.params_ratio or args.rank_rule != "uniform":
        raise UsageError("a dense model takes no --flops-ratio/--params-ratio/--rank-rule")
    print(f"{args.model} ({args.format}), input {shape}; FLOPs are MACs of conv and linear layers per image")
    print(lowrank.report(model, shape))
    return 0
