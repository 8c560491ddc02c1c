"""``elrt bench``: measure dense against low-rank training and inference speed and memory, and write
the record (one folder per machine)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import models
from ..lowrank import FORMATS
from ..lowrank.recompute import LEVELS as RECOMPUTE_LEVELS
from ..regularizers import REGULARIZERS
from .common import COUNT, POSITIVE_INT, RATIO, UsageError, check_output, flag, options, rank_rule

__all__ = ["add_parser", "busy_aside", "run"]

MEASURES = {
    "regularizers": ("reg_overhead", "regularizer_overhead"),
    "layers": ("layers", "layer_times"),
    "rank_table": ("rank_table", "rank_table"),
    "reference": ("reference", "reference_speedup"),
}
"""The measures other than the default speedup: ``{measure: (the argument of its flag, its function in
elrt_core.bench)}``."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``elrt bench``: the setting it times, then which measure (the speedup unless a flag names another)."""
    from .. import bench

    p = sub.add_parser("bench", help="measure dense vs low-rank training/inference speed and memory")
    p.add_argument("--model", default="resnet20", choices=models.MODELS)
    p.add_argument("--format", default="tucker2", choices=FORMATS)
    p.add_argument("--flops-ratio", type=RATIO, default=2.0)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--batch-size", type=POSITIVE_INT, default=128)
    p.add_argument("--steps", type=POSITIVE_INT, default=10, help="timed steps per model (medians are reported)")
    p.add_argument("--warmup", type=COUNT, default=3)
    p.add_argument(
        "--variant",
        default="channels_last",
        choices=bench.VARIANTS,
        help="; ".join(f"{name}: {text}" for name, text in bench.VARIANT_TEXT.items()),
    )
    p.add_argument("--reg", default="none", choices=("none", *REGULARIZERS), help="add this regularizer to the low-rank step")
    _add_measure_args(p)
    p.add_argument("--threads", type=POSITIVE_INT)
    p.add_argument("--json", help="record file to write (default: results/bench/<device>/<machine>/..., one folder per machine)")
    p.set_defaults(func=run)


def _add_measure_args(p: argparse.ArgumentParser) -> None:
    """The flags of the other measures, the rank rule, the recompute level and compiled dense."""
    p.add_argument("--reg-overhead", action="store_true", help="time every regularizer against none instead")
    p.add_argument(
        "--layers",
        action="store_true",
        help="time each converted conv shape alone: dense vs low-rank vs the nearest ranks in 8, 16, 32, ...",
    )
    p.add_argument(
        "--rank-table",
        action="store_true",
        help="time each converted conv shape dense and at every register-friendly rank candidate: the timing "
        "table of the hardware-aware rank rule (--flops-ratio, --reg, --rank-rule play no part)",
    )
    p.add_argument(
        "--reference",
        action="store_true",
        help="time dense, this project's Tucker-2 network and the same network in TensorLy-Torch layers, in "
        "turns (needs the bench extra: tensorly-torch)",
    )
    p.add_argument(
        "--rank-rule",
        default="uniform",
        help="how the low-rank ranks are chosen: uniform, hw (this device's newest timing table, else uniform) or hw:<table id>",
    )
    p.add_argument(
        "--recompute",
        choices=RECOMPUTE_LEVELS,
        help="recompute level of the low-rank layers for the run's low-rank step (default: each format's own); "
        "every level is timed beside it",
    )
    p.add_argument(
        "--dense-compiled",
        action="store_true",
        help="also time dense under torch.compile among the dense variants (compiling takes minutes on a CPU)",
    )


def _measure(args: argparse.Namespace) -> str:
    """The one measure the flags ask for (``"speedup"`` when none does), checked against ``--variant``."""
    chosen = [m for m, (dest, _) in MEASURES.items() if getattr(args, dest)]
    if len(chosen) > 1:
        raise UsageError(f"{' and '.join(flag(MEASURES[m][0]) for m in chosen)} measure different things; give one of them")
    measure = chosen[0] if chosen else "speedup"
    if measure in ("layers", "rank_table") and args.variant not in ("factored", "channels_last"):
        raise UsageError(f"{flag(MEASURES[measure][0])} supports --variant factored or channels_last, got {args.variant!r}")
    return measure


def _record_path(args: argparse.Namespace, settings, measure: str) -> Path:
    """``--json``, else ``results/bench/<device>/<machine>/<record name>``: a measurement never replaces
    another machine's record."""
    if args.json:
        return Path(args.json)
    import torch

    from .. import bench
    from ..records import device_name, device_slug, results_root

    machine = device_slug(device_name(torch.device(args.device)))
    return results_root() / "bench" / args.device / machine / bench.record_name(settings, measure)


def run(args: argparse.Namespace) -> int:
    """Measure, write the record (:func:`busy_aside` decides where) and print its summary."""
    from .. import bench
    from ..records import write_json

    rule, note = rank_rule(args.rank_rule, args.device, args.format, args.model, args.batch_size)
    fields = options(args, "model", "format", "flops_ratio", "device", "batch_size", "steps", "warmup", "variant", "reg")
    settings = bench.BenchSettings(**fields, rank_rule=rule, recompute=args.recompute, dense_compiled=args.dense_compiled)
    settings.validate()
    measure = _measure(args)
    out = _record_path(args, settings, measure)
    check_output(out, "--json", folder=False)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    if measure in MEASURES:
        result = getattr(bench, MEASURES[measure][1])(settings)
    else:
        result = bench.speedup(settings, log=lambda line: print(f"elrt bench: {line}", file=sys.stderr, flush=True))
    if measure != "rank_table":
        result["rank_rule_requested"], result["rank_rule_note"] = args.rank_rule, note
    out = busy_aside(out, result)
    write_json(out, result)
    print(bench.summary(result))
    print(f"record: {out}")
    return 0


def busy_aside(out: Path, result: dict) -> Path:
    """Where to write a bench ``result``: ``out``, unless the result was measured beside busy processes
    and ``out`` holds a record that was not (or did not measure it): then ``<name>-busy.json`` beside it,
    so a timing of the sharing never replaces a usable measurement (:mod:`elrt_core.machine_load`)."""
    from ..machine_load import busy

    if not busy(result["provenance"]) or not out.is_file():
        return out
    try:
        kept = not busy(json.loads(out.read_text()).get("provenance", {}))
    except (OSError, ValueError):
        return out
    return out.with_name(f"{out.stem}-busy{out.suffix}") if kept else out
