"""The ``elrt`` command line: argument parsing and validation only; the work is in the library.

Every argument is validated before any work starts (no data is read, no folder created): a bad one
ends the command with one line ``elrt: error: ...`` naming the bad value and the allowed ones, and
exit status 2. A run that diverges ends with one line ``elrt: diverged: ...`` and exit status 3; a run
whose folder another process is training in ends with ``elrt: busy: ...`` and exit status 4. The file
system refusing (disk full, permission denied, a file where a folder belongs) ends with one line
naming the path and the fix, exit status 5; Ctrl-C, from the first moment on, with exit status 130;
a reader of the output that goes away (``elrt plan | head``) quietly with exit status 141. Warnings
are one line ``elrt: warning: ...`` each.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import warnings
from collections import Counter
from dataclasses import fields as dataclass_fields
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

try:  # importing PyTorch takes seconds: Ctrl-C meanwhile ends as it does later, in one line with exit status 130
    import yaml

    from . import models
    from .config import DATASETS, FACTOR_NAMES, REG_SCHEDULES, SCHEDULES, ConfigError, TrainConfig
    from .data import DataNotFoundError
    from .lowrank import FORMATS
    from .lowrank.recompute import LEVELS as RECOMPUTE_LEVELS
    from .regularizers import REGULARIZERS
    from .train import TrainingDiverged
    from .train.run_folder import BUSY_EXIT_STATUS, FolderBusy
except KeyboardInterrupt:
    print("elrt: interrupted", file=sys.stderr)
    raise SystemExit(128 + signal.SIGINT) from None

if TYPE_CHECKING:
    from .profiles import Profile
    from .study.executors import SlurmOptions
    from .study.plan import PlannedRun

__all__ = ["main", "build_parser"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 128 + signal.SIGINT
"""Exit status after Ctrl-C (130, as a shell reports it)."""
EXIT_DIVERGED = 3
EXIT_OS_ERROR = 5
"""Exit status when the file system refuses: disk full, permission denied, a file where a folder belongs."""
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE
"""Exit status when the reader of the output went away (141, as a shell reports ``elrt plan | head``)."""
DEVICES = ("auto", "cpu", "cuda")
_OS_FIXES = {
    errno.ENOSPC: "free some space and run it again (a run resumes from its last epoch's checkpoint)",
    errno.EDQUOT: "free some space and run it again (a run resumes from its last epoch's checkpoint)",
    errno.EACCES: "give this user access to it, or choose another folder",
    errno.EPERM: "give this user access to it, or choose another folder",
    errno.EROFS: "the file system is read-only: choose another folder",
    errno.EISDIR: "a folder stands where a file belongs: move it away",
    errno.ENOTDIR: "a file stands where a folder belongs: move it away",
    errno.EEXIST: "a file stands where a folder belongs: move it away",
}
"""The fix to name for an OS error, by errno."""


class UsageError(Exception):
    """A bad command line; printed as one line, exit status 2."""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: ...)`` where an option has a default other than None."""

    def _get_help_string(self, action: argparse.Action) -> str:
        return action.help if action.default is None else super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
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


_RATIO = _number(float, 1.0, strict=True)
_POSITIVE_INT = _number(int, 0, strict=True)
_COUNT = _number(int, 0)
_POSITIVE = _number(float, 0.0, strict=True)
_NON_NEGATIVE = _number(float, 0.0)


def _options(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """``{name: args.<name>}`` of the parsed arguments a library call takes under the same names."""
    return {n: getattr(args, n) for n in names}


def _check_output(path: Path, what: str, folder: bool = True) -> None:
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


def _check_data(dataset: str, data_dir: str | None, download: bool) -> None:
    """A verified local copy exists (or, with ``download``, can be fetched): else one line with the fix."""
    from . import data

    try:
        (data.fetch if download else data.check)(data_dir, dataset=dataset)
    except data.DataNotFoundError as e:
        raise UsageError(" ".join(str(e).split())) from None


# ---- train -----------------------------------------------------------------------------------------
_CHOICES = {
    "model": models.MODELS,
    "dataset": DATASETS,
    "format": ("dense", *FORMATS),
    "reg": ("none", *REGULARIZERS),
    "reg_schedule": REG_SCHEDULES,
    "schedule": SCHEDULES,
}
_TYPES = {
    "flops_ratio": _RATIO,
    "params_ratio": _RATIO,
    "reg_weight": _NON_NEGATIVE,
    "epochs": _POSITIVE_INT,
    "batch_size": _POSITIVE_INT,
    "lr": _POSITIVE,
    "momentum": _NON_NEGATIVE,
    "weight_decay": _NON_NEGATIVE,
    "warmup_epochs": _NON_NEGATIVE,
    "label_smoothing": _NON_NEGATIVE,
    "subset": _POSITIVE_INT,
    "test_subset": _POSITIVE_INT,
    "val_split": _COUNT,
    "seed": _COUNT,
}
_FACTOR_LISTS = ("reg_on", "orth_init", "no_decay_on")
_SWITCHES = ("reg_per_rank", "nesterov")


def _add_train_args(p: argparse.ArgumentParser) -> None:
    from . import profiles

    defaults = TrainConfig()
    for f in dataclass_fields(TrainConfig):
        flag, default = "--" + f.name.replace("_", "-"), getattr(defaults, f.name)
        text = f"(default: the profile's, else {default!r})"
        if f.name in _SWITCHES:
            p.add_argument(flag, dest=f.name, action="store_true", default=None, help=text)
        elif f.name in _FACTOR_LISTS:
            p.add_argument(flag, dest=f.name, nargs="+", choices=FACTOR_NAMES, default=None, help=text)
        else:
            p.add_argument(flag, dest=f.name, default=None, choices=_CHOICES.get(f.name), type=_TYPES.get(f.name), help=text)
    p.add_argument("--config", help="YAML file of TrainConfig fields (flags override it)")
    p.add_argument("--profile", choices=profiles.names(), help="start from this profile's training settings")
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
    p.add_argument("--threads", type=_POSITIVE_INT, help="CPU threads for PyTorch")


def _train_config(args: argparse.Namespace) -> TrainConfig:
    from . import calibration, profiles

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
    if fields.get("reg", "none") != "none" and fields.get("reg_weight") is None:  # the calibrated lambda of this network
        probe = {
            **fields,
            "reg_weight": 1.0,
            "rank_rule": "uniform" if fields.get("rank_rule") == "hw" else fields.get("rank_rule", "uniform"),
        }
        TrainConfig.from_dict(probe)  # the rest of the config is valid before lambda is looked up ("hw" resolves below)
        fields["reg_weight"] = calibration.reg_weight(calibration.RegSetting.of(fields))
    if fields.get("rank_rule") == "hw":  # stored as the table it resolves to on this device, or as the uniform fallback
        fields["rank_rule"], note = _rank_rule(
            "hw", args.device, fields.get("format", "dense"), fields.get("model", "resnet20"), fields.get("batch_size")
        )
        args.notes = (note,) if note else ()
    return TrainConfig.from_dict(fields)


def cmd_train(args: argparse.Namespace) -> int:
    from .config import RunOptions
    from .study.runs import run_dir
    from .train import fit, resolve_device, run_folder

    config = _train_config(args)
    resolve_device(args.device)
    profile = args.profile or "custom"
    out = Path(args.out) if args.out else run_dir(config, profile)
    _check_output(out, "--out")
    run_folder.check(out, config, resume=args.resume, force=args.force)
    _check_data(config.dataset, args.data_dir, args.download)
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


# ---- batch / plan / reproduce / calibrate -----------------------------------------------------------
_SLURM_RESOURCES = ("partition", "account", "gpus", "cpus", "time_min", "max_running", "signal_delay_s")
_SLURM_FLAGS = (*_SLURM_RESOURCES, "mem", "setup", "sbatch", "dry_run", "wait")
_SBATCH_OPTION = re.compile(r"([a-z][a-z0-9-]*)=(.*)")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _slurm_options(args: argparse.Namespace) -> SlurmOptions | None:
    """The Slurm options of ``elrt batch`` (``None`` for another executor, which takes none of them)."""
    from .study.executors import SlurmOptions

    local_only = {"jobs": "Slurm runs up to --max-running jobs at once", "minutes": "give --time-min per job on Slurm"}
    for name, why in local_only.items():
        if args.executor != "local" and getattr(args, name) is not None:
            raise UsageError(f"{_flag(name)} applies to --executor local only; {why}")
    given = [n for n in _SLURM_FLAGS if getattr(args, n) not in (None, False, [])]
    if args.executor != "slurm":
        if given:
            raise UsageError(f"{_flag(given[0])} applies to --executor slurm only")
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


def cmd_batch(args: argparse.Namespace) -> int:
    import shutil

    from . import profiles
    from .study import batch

    prof = profiles.load(args.profile)
    if args.results:
        _check_output(Path(args.results), "--results")
    runs = _planned(prof, args) if args.methods is not None else None
    slurm = _slurm_options(args)
    if slurm is not None and not args.dry_run and shutil.which("sbatch") is None:
        raise UsageError("--executor slurm: no `sbatch` here; run on a Slurm login node, or add --dry-run to see the job scripts")
    if not args.dry_run:
        _check_data("cifar10", args.data_dir, download=False)
    threads = args.threads or (slurm.cpus if slurm else None)
    options = _options(args, "executor", "minutes", "device", "data_dir", "max_priority", "compile", "dry_run", "wait")
    report = batch.run(prof, **options, jobs=args.jobs or 1, threads=threads, slurm=slurm, root=args.results, runs=runs)
    return 0 if report.ok else 1


def cmd_status(args: argparse.Namespace) -> int:
    from . import profiles
    from .study import status

    prof = profiles.load(args.profile)
    if args.json:
        _check_output(Path(args.json), "--json", folder=False)
    found = status.profile_status(prof, _planned(prof, args), args.results)
    for s in found:
        epochs = f"epoch {s.epoch}/{s.epochs}" if s.epoch is not None and s.state not in ("done", "diverged") else ""
        print(f"{s.priority}  {s.method:<18} {s.name:<58} {s.state:<8} {epochs}  {s.detail}".rstrip())
        for line in s.log:
            print(f"      | {line}")
    counts = Counter(s.state for s in found)
    print(f"{len(found)} runs: " + ", ".join(f"{counts[k]} {k}" for k in status.STATES if counts[k]))
    if args.json:
        from .records import write_json

        write_json(Path(args.json), {"profile": prof.name, "runs": [s.as_dict() for s in found]})
    return 0


def _planned(prof: Profile, args: argparse.Namespace) -> list[PlannedRun]:
    """The plan of ``prof`` up to ``--max-priority``, of the ``--methods`` only if given."""
    from .study import plan as plan_lib

    only = None if args.methods is None else [m.strip() for m in args.methods.split(",") if m.strip()]
    try:
        runs = plan_lib.plan(prof, args.max_priority, only)
    except ValueError as e:
        raise UsageError(f"--methods: {e}") from None
    if only and not runs:
        raise UsageError(f"--methods {args.methods}: no run of profile {prof.name!r} up to --max-priority {args.max_priority}")
    return runs


def cmd_plan(args: argparse.Namespace) -> int:
    from . import profiles, records
    from .study import plan as plan_lib
    from .study.runs import run_dir

    prof = profiles.load(args.profile)
    runs = _planned(prof, args)
    print(f"{prof.name}: {prof.description}")
    counts: dict[str, int] = {}
    done: dict[int, list[float | None]] = {run.priority: [] for run in runs}  # priority -> minutes of each finished run
    devices: set[str] = set()
    for run in runs:
        rec = records.lookup(run.config, records.results_root(args.results) / prof.name)
        status = plan_lib.status(rec, run_dir(run.config, prof.name, args.results))
        if status == "done":
            done[run.priority].append(rec.train_minutes)
            devices.add(rec.provenance.get("device_name") or "unknown device")
        counts[status.split(" (")[0]] = counts.get(status.split(" (")[0], 0) + 1
        shown = f"done: test {rec.metrics['final_test_top1']:.2f}%" if status == "done" else status
        print(f"{run.priority}  {run.method:<18} {run.config.name:<58} {shown}")
    print(f"{len(runs)} runs: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    planned = Counter(run.priority for run in runs)
    print("by priority: " + ", ".join(f"{p}: {len(done[p])}/{n} done" for p, n in sorted(planned.items())))
    minutes = [m for ms in done.values() for m in ms if m is not None]
    if minutes:
        pace = statistics.median(minutes)
        left = len(runs) - sum(map(len, done.values())) - counts.get("diverged", 0)  # a diverged run is never retrained
        rest = (
            f"the {left} not finished need about {left * pace / 60:.1f} run-hours at that pace (wall time divides by the runs side by side)"
            if left
            else "no planned run is left to train"
        )
        print(f"finished runs trained for a median of {pace:.0f} min each ({', '.join(sorted(devices))}); {rest}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from . import profiles
    from .study import reproduce

    prof = profiles.load(args.profile)
    reproduce.selected(args.only)
    if args.out:
        _check_output(Path(args.out), "--out")
    if not args.reuse_only:
        _check_data("cifar10", args.data_dir, download=False)
    options = _options(args, "only", "jobs", "reuse_only", "train_only", "device", "data_dir")
    return reproduce.run(prof, **options, out=Path(args.out) if args.out else None)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from . import calibration, profiles

    settings = profiles.load(args.profile, check_lambdas=False).reg_settings()
    stored, new = calibration.table(), {}
    for setting in sorted(settings, key=lambda x: x.keys):
        lam, p = calibration.calibrate(setting)
        net, key = setting.keys
        have = stored.get(net, {}).get(key)
        print(f"{net} {key}: penalty at init {p:.4g}, rule lambda {lam:g}, stored {have if have is not None else '-'}")
        if have != lam:
            new.setdefault(net, {})[key] = lam
    if new and args.write:
        calibration.write(new)
        print(f"wrote {sum(map(len, new.values()))} value(s) to {calibration.WEIGHTS_FILE}")
    elif new:
        print("some stored values are missing or differ from the rule: rerun with --write to store the rule's values")
        return 1
    return 0


# ---- info / data / bench ----------------------------------------------------------------------------
def cmd_info(args: argparse.Namespace) -> int:
    from . import lowrank
    from .train.rank_rule import load_rank_table

    model = models.get(args.model)
    shape = models.input_shape(args.model)
    rule, _ = _rank_rule(args.rank_rule, "cpu", args.format, args.model, None)
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


def cmd_data(args: argparse.Namespace) -> int:
    from . import data

    try:
        print((data.check if args.action == "check" else data.fetch)(args.data_dir, dataset=args.dataset))
    except data.DataNotFoundError as e:
        raise UsageError(" ".join(str(e).split())) from None
    return 0


def _rank_rule(requested: str, device: str, fmt: str, model: str, batch_size: int | None) -> tuple[str, str | None]:
    """The stored form of ``--rank-rule`` (``hw`` resolved to this device's timing table, else the
    uniform rule); the note says which table, or why the rule fell back (printed to stderr)."""
    from .config import RANK_RULE_PATTERN
    from .train import resolve_device
    from .train.rank_rule import resolve_rank_rule

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


def cmd_bench(args: argparse.Namespace) -> int:
    from . import bench
    from .records import results_root, write_json

    rule, note = _rank_rule(args.rank_rule, args.device, args.format, args.model, args.batch_size)
    fields = _options(args, "model", "format", "flops_ratio", "device", "batch_size", "steps", "warmup", "variant", "reg")
    settings = bench.BenchSettings(**fields, rank_rule=rule, recompute=args.recompute, dense_compiled=args.dense_compiled)
    settings.validate()
    measures = {  # measure: (its flag, whether given, the function)
        "regularizers": ("--reg-overhead", args.reg_overhead, bench.regularizer_overhead),
        "layers": ("--layers", args.layers, bench.layer_times),
        "rank_table": ("--rank-table", args.rank_table, bench.rank_table),
        "reference": ("--reference", args.reference, bench.reference_speedup),
    }
    chosen = [m for m, (_, given, _) in measures.items() if given]
    if len(chosen) > 1:
        raise UsageError(f"{' and '.join(measures[m][0] for m in chosen)} measure different things; give one of them")
    measure = chosen[0] if chosen else "speedup"
    if measure in ("layers", "rank_table") and args.variant not in ("factored", "channels_last"):
        raise UsageError(f"{measures[measure][0]} supports --variant factored or channels_last, got {args.variant!r}")
    if args.json:
        out = Path(args.json)
    else:  # one folder per machine: a measurement never replaces another machine's record
        import torch

        from .records import device_name, device_slug

        machine = device_slug(device_name(torch.device(args.device)))
        out = results_root() / "bench" / args.device / machine / bench.record_name(settings, measure)
    _check_output(out, "--json", folder=False)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    progress = lambda line: print(f"elrt bench: {line}", file=sys.stderr, flush=True)  # noqa: E731
    result = measures[measure][2](settings) if measure in measures else bench.speedup(settings, log=progress)
    if measure != "rank_table":
        result["rank_rule_requested"], result["rank_rule_note"] = args.rank_rule, note
    out = _busy_aside(out, result)
    write_json(out, result)
    print(bench.summary(result))
    print(f"record: {out}")
    return 0


def _busy_aside(out: Path, result: dict) -> Path:
    """Where to write a bench ``result``: ``out``, unless the result was measured beside busy processes
    and ``out`` holds a record that was not (or did not measure it): then ``<name>-busy.json`` beside it,
    so a timing of the sharing never replaces a usable measurement (:mod:`elrt_core.machine_load`)."""
    from .machine_load import busy

    if not busy(result["provenance"]) or not out.is_file():
        return out
    try:
        kept = not busy(json.loads(out.read_text()).get("provenance", {}))
    except (OSError, ValueError):
        return out
    return out.with_name(f"{out.stem}-busy{out.suffix}") if kept else out


# ---- gpu: pack / unpack / bench / collect / receive -----------------------------------------------
_NAME = re.compile(r"[A-Za-z0-9._-]+")


def _in_project(value: str | None, default: Path) -> Path:
    """``value`` as a path, else ``default`` under the study's root folder."""
    from .paths import project_root

    return Path(value) if value else project_root() / default


def _carry_path(path: Path, root: Path) -> str:
    """``path`` as a device call's ``carry`` entry: relative to the repository root."""
    return os.path.relpath(path, root) if path.resolve().is_relative_to(root.resolve()) else str(path)


def cmd_gpu_pack(args: argparse.Namespace) -> int:
    import subprocess

    from . import profiles
    from .gpu import calls, pack
    from .paths import project_root
    from .records import results_root

    root = project_root()
    prof = profiles.load(args.profile)
    if args.minutes * 60 + calls.FINISH_S > calls.CALL_LIMIT_S:
        raise UsageError(
            f"--minutes {args.minutes:g} leaves no room in a {calls.CALL_LIMIT_S} s device call; "
            f"at most {(calls.CALL_LIMIT_S - calls.FINISH_S) / 60:g}"
        )
    out = _in_project(args.out, pack.PACK_DIR)
    _check_output(out, "--out")
    if (
        out.resolve().is_relative_to(root.resolve())
        and subprocess.run(["git", "check-ignore", "-q", str(out / pack.MANIFEST)], cwd=root).returncode != 0
    ):
        raise UsageError(f"--out {str(out)!r} is not git-ignored: the pieces would travel in every device call; use .device/")
    _check_data("cifar10", args.data_dir, download=False)
    limit = round(args.group_mib * pack.MIB) if args.group_mib else None
    manifest = pack.pack(
        root, data_dir=args.data_dir, profile=prof, results=results_root(args.results), pack_dir=out, limit=limit
    )
    mib = lambda n: f"{n / pack.MIB:.1f} MiB"  # noqa: E731
    kinds = {k: sum(1 for e in manifest["pieces"] if e["kind"] == k) for k in ("images", "labels", "resume")}
    print(
        f"pack {out}: {kinds['images']} image pieces, {kinds['resume']} checkpoint pieces, "
        f"{mib(sum(e['bytes'] for e in manifest['pieces']))} in {len(manifest['groups'])} group(s) of at most "
        f"{mib(manifest['group_limit_bytes'])}; the tree that travels is {mib(manifest['tree_bytes'])}"
    )
    src = manifest["source"]
    print(
        f"source: commit {src['commit'][:12]}"
        + (
            " with UNCOMMITTED changes: commit them and pack again, so the device's records name the code they ran"
            if src["dirty"]
            else ""
        )
    )
    for i, call in enumerate(
        calls.device_calls(manifest, Path(_carry_path(out, root)), profile=prof.name, minutes=args.minutes), 1
    ):
        print(f"device call {i}: {json.dumps(call.as_dict())}")
    return 0


def cmd_gpu_unpack(args: argparse.Namespace) -> int:
    from . import profiles
    from .gpu import jobs, pack
    from .paths import project_root

    prof = profiles.load(args.profile)
    pack_dir = _in_project(args.pack, pack.PACK_DIR)
    data_out, results = _in_project(args.data_out, pack.DEVICE_DATA), _in_project(args.results, pack.DEVICE_RESULTS)
    _check_output(data_out, "--data-out")
    _check_output(results, "--results")
    pack.read_manifest(pack_dir)  # a missing manifest: one line naming what to carry
    report = pack.unpack(pack_dir, data_out, results)
    print(f"data: {report['data']}" + (" (already there)" if report["data_reused"] else ""))
    print(f"checkpoints: {len(report['checkpoints_written'])} written, {len(report['checkpoints_kept'])} kept as they were")
    jobs.arrive(project_root(), report["source"], prof, results)
    return 0


def cmd_gpu_bench(args: argparse.Namespace) -> int:
    from .gpu import jobs, pack

    settings = jobs.bench_settings(args.models, args.ratios, args.variants, args.device, args.steps, args.warmup, args.batch_size)
    for s in settings:
        s.validate()
    results = _in_project(args.results, pack.DEVICE_RESULTS)
    _check_output(results, "--results")
    report = jobs.bench(settings, results, lock_wait_s=args.lock_wait)
    print(f"bench: {len(report['written'])} record(s), {len(report['failed'])} failed, {report['seconds']:.0f} s")
    return 0 if not report["failed"] else 1


def cmd_gpu_collect(args: argparse.Namespace) -> int:
    from .gpu import collect, pack
    from .paths import RESULTS_FOLDER, project_root

    results, out = _in_project(args.results, pack.DEVICE_RESULTS), Path(args.out)
    if not results.is_dir():
        raise UsageError(f"--results {str(results)!r} is not a folder: nothing to collect")
    if args.name is not None and not _NAME.fullmatch(args.name):
        raise UsageError(f"--name {args.name!r} may hold only letters, digits, '.', '_' and '-'")
    _check_output(out, "--out")
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


def cmd_gpu_receive(args: argparse.Namespace) -> int:
    from .gpu import collect
    from .records import results_root

    manifest = Path(args.manifest)
    if not manifest.is_file():
        raise UsageError(f"no collect manifest at {str(manifest)!r} (the <name>.json that `elrt gpu collect` wrote)")
    results = results_root(args.results)
    _check_output(results, "--results")
    outcome = collect.receive(manifest, results)
    print(", ".join(f"{len(v)} {k}" for k, v in outcome.items()) + f" (into {results})")
    for path in outcome["conflicts"]:
        print(f"conflict: {path} differs from the file already in {results}; left as it was")
    for path in outcome["busy"]:
        print(f"busy: {path} not written: a process is training in its run folder; receive again when it ends")
    return 0 if not outcome["conflicts"] and not outcome["busy"] else 1


def _add_gpu_parser(sub: argparse._SubParsersAction) -> None:
    from . import bench, profiles
    from .gpu import jobs

    p = sub.add_parser("gpu", help="carry data to a lent GPU and the records back (training there: elrt batch)")
    gsub = p.add_subparsers(dest="action", required=True, parser_class=_Parser)

    g = gsub.add_parser("pack", help="(here) write CIFAR-10 and unfinished checkpoints as pieces that fit device calls")
    g.add_argument("--profile", default="paper", choices=profiles.names(), help="whose unfinished runs' checkpoints to add")
    g.add_argument("--data-dir", help="verified CIFAR-10 (default: $ELRT_DATA_DIR, then ./data)")
    g.add_argument("--results", help="results folder with the checkpoints (default: $ELRT_RESULTS, else <study>/results)")
    g.add_argument("--out", help="pack folder, git-ignored (default: <study>/.device/pack)")
    g.add_argument("--group-mib", type=_POSITIVE, help="MiB of pieces per device call (default: 64 MiB less the tree less 4 MiB)")
    g.add_argument(
        "--minutes", type=_POSITIVE, default=8.0, help="training minutes of the last device call, in the printed calls"
    )
    g.set_defaults(func=cmd_gpu_pack)

    g = gsub.add_parser("unpack", help="(device) check the pack, write the data and checkpoints, ready the tree for elrt batch")
    g.add_argument("--profile", default="paper", choices=profiles.names(), help="whose records to copy from the tree")
    g.add_argument("--pack", help="pack folder (default: <study>/.device/pack)")
    g.add_argument("--data-out", help="data folder to write (default: <study>/.device/data)")
    g.add_argument("--results", help="results folder for the checkpoints (default: <study>/.device/results)")
    g.set_defaults(func=cmd_gpu_unpack)

    g = gsub.add_parser("bench", help="(device) dense vs Tucker-2 2x/3x speed records of ResNet-20/56/50")
    g.add_argument("--models", nargs="+", default=list(jobs.BENCH_MODELS), choices=models.MODELS)
    g.add_argument("--ratios", nargs="+", type=_RATIO, default=list(jobs.BENCH_RATIOS))
    g.add_argument("--variants", nargs="+", default=["channels_last"], choices=bench.VARIANTS)
    g.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    g.add_argument("--steps", type=_POSITIVE_INT, default=10)
    g.add_argument("--warmup", type=_COUNT, default=3)
    g.add_argument("--batch-size", type=_POSITIVE_INT, help="one batch size for all models (default: 128; ResNet-50: 64)")
    g.add_argument("--lock-wait", type=_NON_NEGATIVE, default=0.0, help="seconds to wait for a training batch holding the GPU")
    g.add_argument("--results", help="results folder (default: <study>/.device/results)")
    g.set_defaults(func=cmd_gpu_bench)

    g = gsub.add_parser("collect", help="(device) archive the new records, bench records and checkpoints into --out")
    g.add_argument("--out", required=True, help="folder whose files come back ($OUT on the device)")
    g.add_argument("--results", help="results folder (default: <study>/.device/results)")
    g.add_argument("--name", help="file name stem (default: elrt-gpu-<UTC time>)")
    g.add_argument("--limit-mib", type=_POSITIVE, help="cap the archive below what --out has room for")
    g.set_defaults(func=cmd_gpu_collect)

    g = gsub.add_parser("receive", help="(here) check a collected archive and put it into the results folder")
    g.add_argument("manifest", help="the <name>.json written by `elrt gpu collect`, its volumes beside it")
    g.add_argument("--results", help="results folder (default: $ELRT_RESULTS, else <study>/results)")
    g.set_defaults(func=cmd_gpu_receive)


def _version() -> str:
    try:
        return version("elrt_core")
    except PackageNotFoundError:
        return "unknown (not installed)"


_METHODS_HELP = "only these methods of the plan, comma-separated (e.g. tucker2-hw,tucker2), in plan order"


def _add_slurm_args(g: argparse._ArgumentGroup) -> None:
    """The options of ``elrt batch --executor slurm`` (each job is one run)."""
    from .study.executors import SlurmOptions

    d = SlurmOptions()
    g.add_argument("--partition", help="Slurm partition (default: the cluster's)")
    g.add_argument("--account", help="Slurm account (default: yours)")
    g.add_argument("--gpus", type=_COUNT, help=f"GPUs per job (default: {d.gpus})")
    g.add_argument("--cpus", type=_POSITIVE_INT, help=f"CPUs per job (default: {d.cpus})")
    g.add_argument("--mem", type=_POSITIVE, help="GB of memory per job (default: the partition's)")
    g.add_argument("--time-min", type=_POSITIVE_INT, help=f"minutes per job; a job past them is requeued (default: {d.time_min})")
    g.add_argument("--max-running", type=_POSITIVE_INT, help=f"jobs of an array running at once (default: {d.max_running})")
    g.add_argument(
        "--signal-delay-s",
        type=_POSITIVE_INT,
        help=f"seconds before the limit a job is told to stop (default: {d.signal_delay_s})",
    )
    g.add_argument(
        "--setup", action="append", help="a shell line run before each job, e.g. 'source venv/bin/activate' (repeatable)"
    )
    g.add_argument("--sbatch", action="append", metavar="KEY=VAL", help="any other sbatch option, e.g. qos=high (repeatable)")
    g.add_argument("--dry-run", action="store_true", help="print the job scripts; submit nothing")
    g.add_argument("--wait", action="store_true", help="follow the jobs until every one has ended")


def _add_study_parsers(sub) -> None:
    """``batch``, ``status``, ``plan``, ``reproduce`` and ``calibrate``: commands that act on a profile."""
    from . import profiles
    from .study.executors import EXECUTORS

    p = sub.add_parser("batch", help="train the missing runs of a profile: local processes side by side, or Slurm job arrays")
    p.add_argument("--profile", default="cpu-full", choices=profiles.names())
    p.add_argument(
        "--executor", default="local", choices=EXECUTORS, help="local processes, Slurm job arrays, or this process (pdb)"
    )
    p.add_argument("--jobs", type=_POSITIVE_INT, help="local runs side by side (default: 1)")
    p.add_argument("--threads", type=_POSITIVE_INT, help="PyTorch threads per run (default: PyTorch's; Slurm: --cpus)")
    p.add_argument("--minutes", type=_POSITIVE, help="start no local run after this many minutes; stop the rest (they resume)")
    p.add_argument("--max-priority", type=_POSITIVE_INT, help="train only run groups up to this priority")
    p.add_argument("--methods", help=_METHODS_HELP)
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--data-dir")
    p.add_argument("--results", help="results folder (default: $ELRT_RESULTS, else <study>/results)")
    p.add_argument("--compile", action="store_true", help="torch.compile each model (pays compile time at every start)")
    _add_slurm_args(p.add_argument_group("--executor slurm (one job array per network)"))
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("status", help="where each run of a profile stands: done, running, queued, failed, diverged")
    p.add_argument("--profile", default="cpu-full", choices=profiles.names())
    p.add_argument("--max-priority", type=_POSITIVE_INT)
    p.add_argument("--methods", help=_METHODS_HELP)
    p.add_argument("--results", help="results folder (default: $ELRT_RESULTS, else <study>/results)")
    p.add_argument("--json", help="also write the table to this JSON file")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("plan", help="list the runs a profile needs, in training order, and their status")
    p.add_argument("--profile", default="cpu-full", choices=profiles.names())
    p.add_argument("--max-priority", type=_POSITIVE_INT)
    p.add_argument("--methods", help=_METHODS_HELP)
    p.add_argument("--results", help="results folder (default: $ELRT_RESULTS, else <study>/results)")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("reproduce", help="train missing runs of a profile and execute the notebooks with papermill")
    p.add_argument("--profile", default="cpu-full", choices=profiles.names())
    p.add_argument("--only", nargs="+", help="notebook names (e.g. 02_orthogonality_on_off) or their number")
    p.add_argument("--jobs", type=_POSITIVE_INT, default=1, help="notebooks executed in parallel")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--reuse-only", action="store_true", help="never train: chapters show the runs that exist")
    scope.add_argument("--train-only", action="store_true", help="train missing runs, skip the notebooks")
    p.add_argument("--out", help="folder for the executed notebooks (default: book/generated, the book's chapters)")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--data-dir")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("calibrate", help="lambda of each regularized run of a profile by the calibration rule")
    p.add_argument("--profile", default="cpu-full", choices=profiles.names())
    p.add_argument("--write", action="store_true", help="store missing or differing values in reg_weights.yaml")
    p.set_defaults(func=cmd_calibrate)


def _add_tool_parsers(sub) -> None:
    """``info`` and ``data``: a model's cost and the data set."""
    p = sub.add_parser("info", help="per-layer ranks and cost of a converted model (no training)")
    p.add_argument("model", choices=models.MODELS)
    p.add_argument("--format", default="tucker2", choices=("dense", *FORMATS))
    p.add_argument("--flops-ratio", type=_RATIO)
    p.add_argument("--params-ratio", type=_RATIO)
    p.add_argument("--rank-rule", default="uniform", help="uniform, hw (this CPU's newest timing table) or hw:<table id>")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("data", help="check or fetch the data set")
    p.add_argument("action", choices=["check", "fetch"])
    p.add_argument("--data-dir")
    p.add_argument("--dataset", default="cifar10", choices=DATASETS)
    p.set_defaults(func=cmd_data)


def _add_bench_parser(sub) -> None:
    from . import bench
    from .lowrank.recompute import LEVELS

    p = sub.add_parser("bench", help="measure dense vs low-rank training/inference speed and memory")
    p.add_argument("--model", default="resnet20", choices=models.MODELS)
    p.add_argument("--format", default="tucker2", choices=FORMATS)
    p.add_argument("--flops-ratio", type=_RATIO, default=2.0)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--batch-size", type=_POSITIVE_INT, default=128)
    p.add_argument("--steps", type=_POSITIVE_INT, default=10, help="timed steps per model (medians are reported)")
    p.add_argument("--warmup", type=_COUNT, default=3)
    p.add_argument(
        "--variant",
        default="channels_last",
        choices=bench.VARIANTS,
        help="; ".join(f"{name}: {text}" for name, text in bench.VARIANT_TEXT.items()),
    )
    p.add_argument("--reg", default="none", choices=("none", *REGULARIZERS), help="add this regularizer to the low-rank step")
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
        choices=LEVELS,
        help="recompute level of the low-rank layers for the run's low-rank step (default: each format's own); "
        "every level is timed beside it",
    )
    p.add_argument(
        "--dense-compiled",
        action="store_true",
        help="also time dense under torch.compile among the dense variants (compiling takes minutes on a CPU)",
    )
    p.add_argument("--threads", type=_POSITIVE_INT)
    p.add_argument("--json", help="record file to write (default: results/bench/<device>/<machine>/..., one folder per machine)")
    p.set_defaults(func=cmd_bench)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="elrt", description="ELRT study: low-rank training of compact CNNs")
    parser.add_argument("--version", action="version", version=f"elrt {_version()}")
    parser.add_argument("--root", help="the study's folder (default: found from the working directory; $ELRT_ROOT)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("train", help="train one dense or low-rank model and write its run record")
    _add_train_args(p)
    p.set_defaults(func=cmd_train)
    _add_study_parsers(sub)
    _add_tool_parsers(sub)
    _add_bench_parser(sub)
    _add_gpu_parser(sub)
    return parser


def _os_error(e: OSError) -> str:
    """One line for an OS error: what the system said, the path(s), and the fix (:data:`_OS_FIXES`)."""
    paths = " -> ".join(str(p) for p in (e.filename, e.filename2) if p is not None)
    fix = _OS_FIXES.get(e.errno)
    return f"{e.strerror or e}" + (f": {paths}" if paths else "") + (f"; {fix}" if fix else "")


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Show a warning as ``elrt: warning: ...`` on one line, without the library's file and source line."""
    print(f"elrt: warning: {' '.join(str(message).split())}", file=sys.stderr)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null after its reader went away, so that flushing it at exit fails no more."""
    with contextlib.suppress(OSError, ValueError, AttributeError):  # a stdout without a file descriptor (a test's capture)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def main(argv: list[str] | None = None) -> int:
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            args = build_parser().parse_args(argv)
            if args.root:
                os.environ["ELRT_ROOT"] = args.root
            status = args.func(args)
            sys.stdout.flush()  # a reader that went away is noticed here, not in the interpreter's exit
            return status
    except TrainingDiverged as e:
        print(f"elrt: diverged: {e}", file=sys.stderr)
        return EXIT_DIVERGED
    except FolderBusy as e:
        print(f"elrt: busy: {e}", file=sys.stderr)
        return BUSY_EXIT_STATUS
    except KeyboardInterrupt:  # a training run keeps its last epoch's checkpoint; `--resume` / the next batch continues
        print("elrt: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UsageError, ConfigError, ValueError, FileNotFoundError, LookupError) as e:
        # ConfigError and the library's input checks are ValueErrors; DataNotFoundError and a missing
        # study folder are FileNotFoundErrors; MissingRun and DuplicateRecords are LookupErrors
        if os.environ.get("ELRT_DEBUG"):
            raise
        message = " ".join(str(e).split()) if isinstance(e, DataNotFoundError) else str(e)
        print(f"elrt: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `elrt plan | head`: stop quietly, as other command-line tools do
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as e:  # disk full, permission denied, a file where a folder belongs: one line, never a traceback
        if os.environ.get("ELRT_DEBUG"):
            raise
        print(f"elrt: error: {_os_error(e)}", file=sys.stderr)
        return EXIT_OS_ERROR


if __name__ == "__main__":
    sys.exit(main())
