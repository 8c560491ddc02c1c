"""``elrt train``: train one dense or low-rank model and write its run record."""

from __future__ import annotations

import argparse
import os
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

import yaml

from .. import models
from ..config import DATASETS, FACTOR_NAMES, REG_SCHEDULES, SCHEDULES, TrainConfig
from ..lowrank import FORMATS
from ..lowrank.recompute import LEVELS as RECOMPUTE_LEVELS
from ..regularizers import REGULARIZERS
from .common import (
    COUNT,
    DEVICES,
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_INT,
    RATIO,
    UsageError,
    add_profile_arg,
    check_data,
    check_output,
    flag,
    rank_rule,
)

__all__ = ["add_parser", "train_config", "run"]

_CHOICES = {
    "model": models.MODELS,
    "dataset": DATASETS,
    "format": ("dense", *FORMATS),
    "reg": ("none", *REGULARIZERS),
    "reg_schedule": REG_SCHEDULES,
    "schedule": SCHEDULES,
}
_TYPES = {
    "flops_ratio": RATIO,
    "params_ratio": RATIO,
    "reg_weight": NON_NEGATIVE,
    "epochs": POSITIVE_INT,
    "batch_size": POSITIVE_INT,
    "lr": POSITIVE,
    "momentum": NON_NEGATIVE,
    "weight_decay": NON_NEGATIVE,
    "warmup_epochs": NON_NEGATIVE,
    "label_smoothing": NON_NEGATIVE,
    "subset": POSITIVE_INT,
    "test_subset": POSITIVE_INT,
    "val_split": COUNT,
    "seed": COUNT,
}
_FACTOR_LISTS = ("reg_on", "orth_init", "no_decay_on")
_SWITCHES = ("reg_per_rank", "nesterov")


def _add_config_args(p: argparse.ArgumentParser) -> None:
    """One flag per :class:`TrainConfig` field, default ``None`` (the profile's or the config's value)."""
    defaults = TrainConfig()
    for f in dataclass_fields(TrainConfig):
        option, text = flag(f.name), f"(default: the profile's, else {getattr(defaults, f.name)!r})"
        if f.name in _SWITCHES:
            p.add_argument(option, dest=f.name, action="store_true", default=None, help=text)
        elif f.name in _FACTOR_LISTS:
            p.add_argument(option, dest=f.name, nargs="+", choices=FACTOR_NAMES, default=None, help=text)
        else:
            p.add_argument(option, dest=f.name, default=None, choices=_CHOICES.get(f.name), type=_TYPES.get(f.name), help=text)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``elrt train``: the config's fields, then the options of the run."""
    p = sub.add_parser("train", help="train one dense or low-rank model and write its run record")
    _add_config_args(p)
    p.add_argument("--config", help="YAML file of TrainConfig fields (flags override it)")
    add_profile_arg(p, None, help="start from this profile's training settings")
    p.add_argument("--device", default="auto", choices=DEVICES, help="auto: CUDA if available")
    p.add_argument("--data-dir", help="CIFAR folder (default: $ELRT_DATA_DIR, then ./data)")
    p.add_argument("--download", action="store_true", help="fetch the data set first if no verified local copy exists")
    p.add_argument("--out", help="run folder (default: results/<profile or custom>/<run name>)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    p.add_argument("--force", action="store_true", help="start over even if the run folder holds this or another run")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--no-amp", dest="amp", action="store_false", help="no bf16 autocast on CUDA")
    p.add_argument(
        "--recompute",
        choices=RECOMPUTE_LEVELS,
        help="what low-rank layers recompute in backward instead of keeping (off: nothing; default: each format's own, "
        "see README 'Recomputation'); bitwise the same results, not part of the config",
    )
    p.add_argument("--threads", type=POSITIVE_INT, help="CPU threads for PyTorch")
    p.set_defaults(func=run)


def _config_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The config's fields as given: the profile's, then the ``--config`` file's, then the flags'."""
    from .. import profiles

    fields: dict[str, Any] = dict(profiles.load(args.profile).train) if args.profile else {}
    if args.config:
        try:
            loaded = yaml.safe_load(Path(args.config).read_text())
        except (OSError, yaml.YAMLError) as e:
            raise UsageError(f"cannot read config file {args.config!r}: {e}") from None
        if not isinstance(loaded, dict):
            raise UsageError(f"config file {args.config!r} must hold a mapping of TrainConfig fields")
        fields.update(loaded)
    fields.update({f.name: getattr(args, f.name) for f in dataclass_fields(TrainConfig) if getattr(args, f.name) is not None})
    return fields


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The config ``elrt train`` runs: λ looked up by the calibration rule where a regularizer has none,
    and ``--rank-rule hw`` stored as the table it resolves to (its note in ``args.notes``)."""
    from .. import calibration

    fields = _config_fields(args)
    if fields.get("reg", "none") != "none" and fields.get("reg_weight") is None:  # the calibrated lambda of this network
        probe = {
            **fields,
            "reg_weight": 1.0,
            "rank_rule": "uniform" if fields.get("rank_rule") == "hw" else fields.get("rank_rule", "uniform"),
        }
        TrainConfig.from_dict(probe)  # the rest of the config is valid before lambda is looked up ("hw" resolves below)
        fields["reg_weight"] = calibration.reg_weight(calibration.RegSetting.of(fields))
    if fields.get("rank_rule") == "hw":  # stored as the table it resolves to on this device, or as the uniform fallback
        fields["rank_rule"], note = rank_rule(
            "hw", args.device, fields.get("format", "dense"), fields.get("model", "resnet20"), fields.get("batch_size")
        )
        args.notes = (note,) if note else ()
    return TrainConfig.from_dict(fields)


def run(args: argparse.Namespace) -> int:
    """Train the run (checked first: its folder, the data) and print its final accuracy and record."""
    from ..config import RunOptions
    from ..study.runs import run_dir
    from ..train import fit, resolve_device, run_folder

    config = train_config(args)
    resolve_device(args.device)
    profile = args.profile or "custom"
    out = Path(args.out) if args.out else run_dir(config, profile)
    check_output(out, "--out")
    run_folder.check(out, config, resume=args.resume, force=args.force)
    check_data(config.dataset, args.data_dir, args.download)
    record = fit(
        config,
        RunOptions(
            out=out,
            device=args.device,
            data_dir=Path(args.data_dir) if args.data_dir else None,
            resume=args.resume,
            force=args.force,
            quiet=args.quiet,
            amp=args.amp,
            compile=args.compile,
            recompute=args.recompute,
            profile=profile,
            threads=args.threads,
            notes=getattr(args, "notes", ()),
        ),
    )
    if int(os.environ.get("RANK", "0")) == 0:
        m = record["metrics"]
        val = f", validation {m['final_val_top1']:.2f}%" if m.get("final_val_top1") is not None else ""
        print(f"{config.name}: final test top-1 {m['final_test_top1']:.2f}%{val}; record {out / 'record.json'}")
    return 0
