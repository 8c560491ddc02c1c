"""The ``elrt`` command line: argument parsing and validation only; the work is in the library.

Every argument is validated before any work starts; a bad one ends the command with one line
``elrt: error: ...`` naming the bad value and the allowed ones, and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

import yaml

from .config import TrainConfig
from .regularizers import REGULARIZERS

__all__ = ["main"]

EXIT_USAGE = 2


class UsageError(Exception):
    """A bad command line; printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        raise UsageError(message)


def _positive_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out):
            pass
    except OSError as e:
        raise UsageError(f"output folder {str(out)!r} is not writable ({e.strerror or e})") from None


def _check_data(dataset: str, data_dir: str | None) -> None:
    from . import data

    try:
        data.check(data_dir, dataset=dataset)
    except data.DataNotFoundError:
        try:  # a machine with internet (or npm) may still fetch a verified copy
            data.fetch(data_dir, dataset=dataset)
        except data.DataNotFoundError as e:
            raise UsageError(" ".join(str(e).split())) from None


# ---- train -----------------------------------------------------------------------------------------
_TRAIN_FLAGS: dict[str, dict[str, Any]] = {
    "model": {}, "dataset": {}, "format": {}, "flops_ratio": {"type": _positive_float},
    "params_ratio": {"type": _positive_float}, "reg": {}, "reg_weight": {"type": float},
    "reg_on": {"nargs": "+"}, "reg_schedule": {}, "epochs": {"type": int}, "batch_size": {"type": int},
    "lr": {"type": float}, "momentum": {"type": float}, "weight_decay": {"type": float}, "schedule": {},
    "warmup_epochs": {"type": float}, "label_smoothing": {"type": float}, "subset": {"type": int},
    "test_subset": {"type": int}, "seed": {"type": int},
}


def _add_train_args(p: argparse.ArgumentParser) -> None:
    for name, kw in _TRAIN_FLAGS.items():
        p.add_argument("--" + name.replace("_", "-"), dest=name, default=None, **kw)
    p.add_argument("--reg-per-rank", dest="reg_per_rank", action="store_true", default=None,
                   help="divide each factor's penalty by its rank (ELRT's 1/rank scaling)")
    p.add_argument("--nesterov", action="store_true", default=None)
    p.add_argument("--config", help="YAML file of TrainConfig fields (flags override it)")
    p.add_argument("--profile", help="start from this profile's training settings (smoke, cpu, paper)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    p.add_argument("--data-dir", help="folder with CIFAR (default: $ELRT_DATA_DIR, then ./data)")
    p.add_argument("--out", help="run folder (default: results/<profile or custom>/<run name>)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--no-amp", dest="amp", action="store_false", help="no bf16 autocast on CUDA")
    p.add_argument("--threads", type=int, help="CPU threads for PyTorch")


def _train_config(args: argparse.Namespace) -> TrainConfig:
    from . import profiles

    fields: dict[str, Any] = {}
    profile = profiles.load(args.profile) if args.profile else None
    if profile:
        fields.update(profile.train)
    if args.config:
        try:
            loaded = yaml.safe_load(Path(args.config).read_text())
        except (OSError, yaml.YAMLError) as e:
            raise UsageError(f"cannot read config file {args.config!r}: {e}") from None
        if not isinstance(loaded, dict):
            raise UsageError(f"config file {args.config!r} must hold a mapping of TrainConfig fields")
        fields.update(loaded)
    fields.update({k: getattr(args, k) for k in (*_TRAIN_FLAGS, "reg_per_rank", "nesterov") if getattr(args, k) is not None})
    reg = fields.get("reg", "none")
    if reg in REGULARIZERS and fields.get("reg_weight") is None:  # lambda from the profile's table
        table = profile or profiles.load("paper")
        on = fields.get("reg_on", ["U2"])
        fields["reg_weight"] = table.reg_weight(reg, [on] if isinstance(on, str) else on)
    return TrainConfig.from_dict(fields)


def cmd_train(args: argparse.Namespace) -> int:
    from .config import RunOptions
    from .study.runs import run_dir

    config = _train_config(args)
    if args.threads is not None and args.threads <= 0:
        raise UsageError(f"--threads must be > 0, got {args.threads}")
    from .train import resolve_device

    resolve_device(args.device)
    profile = args.profile or "custom"
    out = Path(args.out) if args.out else run_dir(config, profile)
    _check_writable(out)
    _check_data(config.dataset, args.data_dir)
    from .train import fit

    record = fit(config, RunOptions(
        out=out, device=args.device, data_dir=Path(args.data_dir) if args.data_dir else None, resume=args.resume,
        quiet=args.quiet, amp=args.amp, compile=args.compile, profile=profile, threads=args.threads,
    ))
    if int(os.environ.get("RANK", "0")) == 0:
        m = record["metrics"]
        print(f"{config.name}: final test top-1 {m['final_test_top1']:.2f}% (best {m['best_test_top1']:.2f}%); record {out / 'record.json'}")
    return 0


# ---- info -----------------------------------------------------------------------------------------
def cmd_info(args: argparse.Namespace) -> int:
    from . import lowrank, models

    if args.model not in models.MODELS:
        raise UsageError(f"unknown model {args.model!r}; allowed: {', '.join(models.MODELS)}")
    model = models.get(args.model)
    shape = models.input_shape(args.model)
    if args.format != "dense":
        model = lowrank.convert(model, args.format, flops_ratio=args.flops_ratio, params_ratio=args.params_ratio,
                                input_shape=shape, init="scratch")
    elif args.flops_ratio or args.params_ratio:
        raise UsageError("a dense model takes no --flops-ratio/--params-ratio")
    print(f"{args.model} ({args.format}), input {shape}; FLOPs are MACs of conv and linear layers per image")
    print(lowrank.report(model, shape))
    return 0


# ---- data -----------------------------------------------------------------------------------------
def cmd_data(args: argparse.Namespace) -> int:
    from . import data

    try:
        fn = data.check if args.action == "check" else data.fetch
        print(fn(args.data_dir, dataset=args.dataset))
    except data.DataNotFoundError as e:
        raise UsageError(" ".join(str(e).split())) from None
    return 0


# ---- plan / reproduce ---------------------------------------------------------------------------
def cmd_plan(args: argparse.Namespace) -> int:
    from . import profiles, records
    from .study import plan as plan_lib
    from .study.runs import MissingRun, results_root

    prof = profiles.load(args.profile)
    parts = tuple(args.only) if args.only else plan_lib.PARTS
    bad = [p for p in parts if p not in plan_lib.PARTS]
    if bad:
        raise UsageError(f"unknown part(s) {bad}; allowed: {', '.join(plan_lib.PARTS)}")
    try:
        runs = plan_lib.plan(prof, parts)
    except MissingRun as e:
        runs = plan_lib.plan(prof, tuple(p for p in parts if p != "main"))
        print(f"(main table not planned yet: {e})")
    for run in runs:
        rec = records.find(run.config, results_root() / prof.name)
        status = f"done {rec.metrics['final_test_top1']:.2f}%" if rec else "missing"
        print(f"{run.part:<14} {run.method:<34} {run.config.name:<58} {status}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from . import profiles
    from .study import reproduce

    prof = profiles.load(args.profile)
    if args.jobs <= 0:
        raise UsageError(f"--jobs must be > 0, got {args.jobs}")
    if not args.reuse_only:
        _check_data("cifar10", args.data_dir)
    if args.out:
        _check_writable(Path(args.out))
    return reproduce.run(prof, only=args.only, jobs=args.jobs, reuse_only=args.reuse_only, train_only=args.train_only,
                         device=args.device, data_dir=args.data_dir, out=Path(args.out) if args.out else None)


# ---- bench ----------------------------------------------------------------------------------------
def cmd_bench(args: argparse.Namespace) -> int:

    from . import bench
    from .records import write_json
    from .study.runs import results_root

    settings = bench.BenchSettings(
        model=args.model, format=args.format, flops_ratio=args.flops_ratio, device=args.device,
        batch_size=args.batch_size, steps=args.steps, warmup=args.warmup, variant=args.variant, reg=args.reg,
    )
    settings.validate()
    if args.threads is not None:
        if args.threads <= 0:
            raise UsageError(f"--threads must be > 0, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    if args.reg_overhead and args.layers:
        raise UsageError("--reg-overhead and --layers measure different things; give one of them")
    if args.layers and args.variant not in ("factored", "channels_last"):
        raise UsageError(f"--layers supports --variant factored or channels_last, got {args.variant!r}")
    kind = "regularizers" if args.reg_overhead else f"{args.format}-{args.flops_ratio:g}x" + ("-layers" if args.layers else "")
    name = f"{args.model}-{kind}-b{args.batch_size}-{args.variant}.json"
    out = Path(args.json) if args.json else results_root() / "bench" / args.device / name
    _check_writable(out.parent)
    measure = bench.regularizer_overhead if args.reg_overhead else bench.layer_times if args.layers else bench.speedup
    result = measure(settings)
    write_json(out, result)
    if args.layers:
        for r in result["rows"]:
            print(f"{r['in_channels']}->{r['out_channels']} {r['kernel'][0]}x{r['kernel'][1]} stride {r['stride'][0]} "
                  f"on {r['in_hw'][0]}x{r['in_hw'][1]} (x{r['layers']}): ranks {r['ranks']} {r['macs_ratio']:.2f}x fewer MACs, "
                  f"{r['dense_ms']:.2f} -> {r['lowrank_ms']:.2f} ms ({r['speedup']:.2f}x); aligned ranks {r['aligned_ranks']} "
                  f"{r['aligned_macs_ratio']:.2f}x fewer MACs, {r['aligned_ms']:.2f} ms ({r['aligned_speedup']:.2f}x)")
        t = result["totals"]
        print(f"all converted layers: {t['macs_ratio']:.2f}x fewer MACs, {t['speedup']:.2f}x faster; "
              f"aligned ranks: {t['aligned_macs_ratio']:.2f}x fewer MACs, {t['aligned_speedup']:.2f}x faster")
    elif args.reg_overhead:
        for row in result["rows"]:
            print(f"{row['regularizer']:>5} on {row['on']}: {row['step_ms']:.1f} ms/step ({row['overhead_pct']:+.1f}%); "
                  f"penalty alone {row['penalty_ms']:.2f} ms ({row['penalty_pct']:.2f}% of the unregularized step)")
    else:
        d, lr = result["dense"], result["lowrank"]
        print(
            f"{args.model} {args.format} {result['macs_ratio']:.2f}x fewer MACs, {args.variant}, on {result['provenance']['device_name']}: "
            f"train step {d['train_step_ms']:.1f} -> {lr['train_step_ms']:.1f} ms (speedup {result['train_speedup']:.2f}x), "
            f"inference {result['infer_speedup']:.2f}x, activation memory dense/low-rank {result['memory_ratio']:.2f}x, "
            f"Amdahl ceiling {result['amdahl_ceiling']:.2f}x"
        )
    print(f"record: {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="elrt", description="ELRT study: low-rank training of compact CNNs")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="train one dense or low-rank model and write its run record")
    _add_train_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("info", help="per-layer ranks and cost of a converted model (no training)")
    p.add_argument("model")
    p.add_argument("--format", default="tucker2")
    p.add_argument("--flops-ratio", type=_positive_float)
    p.add_argument("--params-ratio", type=_positive_float)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("data", help="check or fetch the data set")
    p.add_argument("action", choices=["check", "fetch"])
    p.add_argument("--data-dir")
    p.add_argument("--dataset", default="cifar10")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("bench", help="measure dense vs low-rank training/inference speed and memory")
    p.add_argument("--model", default="resnet20")
    p.add_argument("--format", default="tucker2")
    p.add_argument("--flops-ratio", type=_positive_float, default=2.0)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=10, help="timed steps per model (medians are reported)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--variant", default="channels_last",
                   help="factored, channels_last (default), autotuned (per-layer fastest computation), "
                        "bf16 (bfloat16 autocast) or compiled (torch.compile)")
    p.add_argument("--reg", default="none", help="add this regularizer to the low-rank step")
    p.add_argument("--reg-overhead", action="store_true", help="time every regularizer against none instead")
    p.add_argument("--layers", action="store_true",
                   help="time each converted conv shape alone instead: dense vs low-rank vs the nearest ranks in 8, 16, 32, ...")
    p.add_argument("--threads", type=int)
    p.add_argument("--json", help="where to write the record (default: results/bench/<device>/...)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("plan", help="list the runs a profile needs and which are done")
    p.add_argument("--profile", default="cpu")
    p.add_argument("--only", nargs="+", help="parts: approximation orthogonality regularizers main")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("reproduce", help="train missing runs of a profile and execute the notebooks with papermill")
    p.add_argument("--profile", default="cpu")
    p.add_argument("--only", nargs="+", help="notebook names (e.g. 02_orthogonality_on_off) or parts")
    p.add_argument("--jobs", type=int, default=1, help="notebooks executed in parallel")
    p.add_argument("--reuse-only", action="store_true", help="never train: fail if a record is missing")
    p.add_argument("--train-only", action="store_true", help="train missing runs, skip the notebooks")
    p.add_argument("--out", help="folder for the executed notebooks (default: book/generated, the book's chapters)")
    p.add_argument("--device", default="auto")
    p.add_argument("--data-dir")
    p.set_defaults(func=cmd_reproduce)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return args.func(args)
    except (UsageError, ValueError) as e:  # ConfigError and the library's input checks are ValueErrors
        if os.environ.get("ELRT_DEBUG"):
            raise
        print(f"elrt: error: {e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
