"""Run records: ``<run dir>/record.json``, the only source of the numbers in the book.

A record holds ``status`` (``finished`` or ``diverged``), ``config`` (every setting),
``config_hash``, ``metrics`` (final test and validation accuracy and the per-epoch history),
``cost`` (dense and low-rank MACs and params, reduction ratios, per-layer ranks) and ``provenance``
(git commit and dirty flag, package versions, device, CPU count, seed, profile, start/end time, wall
seconds). Records are written atomically (a temporary file renamed over the target), so a
half-written record never exists, and strict JSON (no NaN: a value that is not finite is ``null``).

Schema 2 (this version) added ``status: diverged`` with ``metrics.divergence``, and the validation
metrics (``val_loss``/``val_top1`` per epoch, ``final_val_top1``, ``best_val_top1``); schema-1
records read as records without a validation split. :func:`validate` names the first missing,
mistyped or out-of-range key of a record (an accuracy outside [0, 100]); :func:`parse` also checks that
the history is as long as the run went.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import re
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import atomic
from .config import ConfigError, TrainConfig
from .paths import RESULTS_FOLDER, results_root
from .plain_data import Kind, is_a, key_problem

__all__ = [
    "Record",
    "write_json",
    "read",
    "parse",
    "scan",
    "find",
    "lookup",
    "build",
    "validate",
    "provenance",
    "device_name",
    "device_slug",
    "cpu_name",
    "git_state",
    "results_root",
    "SCHEMA_VERSION",
    "READABLE_SCHEMAS",
    "STATUSES",
    "RECORD_FILE",
    "InvalidRecord",
    "DuplicateRecords",
]

SCHEMA_VERSION = 2
READABLE_SCHEMAS = (1, 2)
STATUSES = ("finished", "diverged")
RECORD_FILE = "record.json"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def write_json(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as strict JSON to ``path`` atomically (:func:`elrt_core.atomic.replacing`),
    mode 0644; a non-finite float is an error (see :func:`build`)."""
    return atomic.write_text(path, json.dumps(data, indent=1, sort_keys=False, allow_nan=False) + "\n")


def git_state(root: Path = PACKAGE_ROOT) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the git checkout holding the code that runs
    (tracked files outside :data:`~elrt_core.paths.RESULTS_FOLDER`: a record just written there changes no code); ``None`` for both outside a checkout (an installed package), unless
    ``$ELRT_SOURCE_COMMIT`` (and ``$ELRT_SOURCE_DIRTY``, ``0`` or ``1``) say which commit a copy of
    the tree without ``.git`` is (written to ``.device/source.env`` by ``elrt gpu unpack`` on a lent GPU, see :mod:`elrt_core.gpu.source`)."""

    def run(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = run("rev-parse", "HEAD")
    status = run("status", "--porcelain", "--untracked-files=no", "--", ".", f":(exclude){RESULTS_FOLDER}")
    if commit is None and os.environ.get("ELRT_SOURCE_COMMIT"):  # a copy without .git, checked by elrt_core.gpu.source
        return {"commit": os.environ["ELRT_SOURCE_COMMIT"], "dirty": os.environ.get("ELRT_SOURCE_DIRTY") != "0"}
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


_VECTOR_UNITS = ("avx512f", "avx2", "avx", "sse4_2", "asimd")
"""CPU flags naming the widest vector unit, widest first (x86 and Arm)."""


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name from ``cpuinfo`` (Linux) with its widest vector unit, e.g. ``"AMD EPYC
    (avx2)"`` (virtual machines often hide the model number, and speed depends on the vector width);
    else what ``platform`` knows (often just the architecture)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = next(
        (line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name") and ":" in line),
        platform.processor() or platform.machine(),
    )
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith(("flags", "Features"))), []))
    unit = next((u for u in _VECTOR_UNITS if u in flags), None)
    return f"{name} ({unit})" if unit else name


def device_name(device: torch.device) -> str:
    """The name of ``device``: the GPU's model on CUDA, :func:`cpu_name` on the CPU."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()


def device_slug(name: str) -> str:
    """A folder name for a device name (:func:`device_name`): ``"NVIDIA H100 80GB HBM3"`` ->
    ``"nvidia-h100-80gb-hbm3"``, ``"AMD EPYC (avx512f)"`` -> ``"amd-epyc-avx512f"``. Bench records are
    stored per device under it, so a measurement on one machine never replaces another machine's."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown"


def provenance(
    device: torch.device, *, seed: int, profile: str, started: float, ended: float, extra: dict | None = None
) -> dict[str, Any]:
    """Provenance block of a record; ``started``/``ended`` are Unix times in seconds."""

    def iso(t: float) -> str:
        return _dt.datetime.fromtimestamp(t, _dt.UTC).isoformat(timespec="seconds")

    return {
        **git_state(),
        "versions": {p: _version(p) for p in ("elrt_core", "torch", "torchvision", "tensorly", "numpy")},
        "python": platform.python_version(),
        "device": str(device),
        "device_name": device_name(device),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "hostname": platform.node(),
        "seed": seed,
        "profile": profile,
        "started": iso(started),
        "ended": iso(ended),
        "wall_seconds": round(ended - started, 3),
        **(extra or {}),
    }


def _finite_or_none(value: Any) -> Any:
    """``value`` with every non-finite float in it (nested dicts included) replaced by ``None``."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    return value if not isinstance(value, float) or math.isfinite(value) else None


def build(
    config: TrainConfig,
    *,
    status: str,
    history: list[dict[str, Any]],
    sizes: dict[str, int],
    cost: dict[str, Any],
    provenance: dict[str, Any],
    divergence: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The record of a run, ready for :func:`write_json`.

    ``history``: one dict per completed epoch (``val_*`` keys when the run has a validation split);
    ``sizes``: ``train_images``, ``val_images``, ``test_images``; ``divergence``: where and why a
    diverged run stopped (``epoch``, ``step``, ``reason``). Non-finite numbers become ``None``.
    """
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; allowed: {', '.join(STATUSES)}")
    history = [_finite_or_none(row) for row in history]
    metrics: dict[str, Any] = {**sizes}
    if history:
        last = history[-1]
        metrics |= {
            "final_test_top1": last["test_top1"],
            "final_train_loss": last["train_loss"],
        }
        if "val_top1" in last:
            best = max((h for h in history if h["val_top1"] is not None), key=lambda h: h["val_top1"], default=None)
            metrics |= {
                "final_val_top1": last["val_top1"],
                "best_val_top1": best and best["val_top1"],
                "best_val_epoch": best and best["epoch"],
            }
    if divergence is not None:
        metrics["divergence"] = divergence
    metrics["history"] = history
    return {
        "schema_version": SCHEMA_VERSION,
        "status": status,
        "name": config.name,
        "config_hash": config.hash,
        "config": config.to_dict(),
        "metrics": metrics,
        "cost": cost,
        "provenance": provenance,
    }


@dataclass(frozen=True)
class Record:
    """A parsed run record. ``data`` is the whole JSON; ``path`` the run folder."""

    path: Path
    config: TrainConfig
    data: dict[str, Any]

    @property
    def config_hash(self) -> str:
        return self.data["config_hash"]

    @property
    def status(self) -> str:
        return self.data["status"]

    @property
    def metrics(self) -> dict[str, Any]:
        return self.data["metrics"]

    @property
    def cost(self) -> dict[str, Any]:
        return self.data["cost"]

    @property
    def provenance(self) -> dict[str, Any]:
        return self.data["provenance"]

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.data["metrics"]["history"]

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    @property
    def train_minutes(self) -> float | None:
        """Wall minutes the run trained (provenance ``train_wall_seconds``; else ``wall_seconds``, the
        whole run; ``None`` where the record has neither)."""
        seconds = self.provenance.get("train_wall_seconds", self.provenance.get("wall_seconds"))
        return None if seconds is None else seconds / 60


class InvalidRecord(ValueError):
    """A record file that cannot be used: unreadable JSON, a missing or mistyped key, a stale config
    or wrong hash. The message starts with the file's path."""


class DuplicateRecords(LookupError):
    """Two records of the same config hold different results; the message names both folders."""


_SCHEMA: dict[str, Kind] = {
    "schema_version": int,
    "status": str,
    "config_hash": str,
    "config": dict,
    "metrics": dict,
    "cost": dict,
    "provenance": dict,
}
_NUMBER = (int, float)


_ACCURACIES = ("final_test_top1", "final_val_top1", "best_val_top1", "best_test_top1")
_ROW_ACCURACIES = ("train_top1", "val_top1", "test_top1")


def _percent(value: Any) -> bool:
    """``value`` is an accuracy a record may hold: ``None`` (not measured, or not finite) or a number in [0, 100]."""
    return value is None or (is_a(value, _NUMBER) and 0 <= value <= 100)


def validate(data: Any, path: Path | str = "record") -> None:
    """Raise :class:`InvalidRecord` naming ``path`` and the first key of ``data`` that is missing, of
    the wrong type or out of range (top level; ``metrics.history`` rows; ``final_test_top1`` of a
    finished run; every accuracy in [0, 100])."""

    def bad(what: str) -> InvalidRecord:
        return InvalidRecord(f"{path}: {what}")

    if not isinstance(data, dict):
        raise bad(f"a record must be a JSON object, got {type(data).__name__}")
    problem = key_problem(data, _SCHEMA, missing="missing key {key}", mistyped="{key} must be {kind}, got {got}")
    if problem:
        raise bad(problem)
    if data["schema_version"] not in READABLE_SCHEMAS:
        raise bad(f"schema_version {data['schema_version']!r}; this version reads {READABLE_SCHEMAS}")
    if data["status"] not in STATUSES:
        raise bad(f"status {data['status']!r} is not one of {STATUSES}")
    history = data["metrics"].get("history")
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise bad("'metrics.history' must be a list of objects (one per epoch)")
    for i, row in enumerate(history):
        for key in ("epoch", "train_loss", "test_top1"):
            if key not in row:
                raise bad(f"'metrics.history[{i}]' has no {key!r}")
        for key in _ROW_ACCURACIES:
            if not _percent(row.get(key)):
                raise bad(f"'metrics.history[{i}].{key}' must be a percentage in [0, 100], got {row[key]!r}")
    for key in _ACCURACIES:
        if not _percent(data["metrics"].get(key)):
            raise bad(f"'metrics.{key}' must be a percentage in [0, 100], got {data['metrics'][key]!r}")
    if data["status"] == "finished":
        final = data["metrics"].get("final_test_top1")
        if not is_a(final, _NUMBER) or not math.isfinite(final):
            raise bad(f"a finished record needs a finite number 'metrics.final_test_top1', got {final!r}")


def read(run_dir: Path, *, check_hash: bool = True) -> Record:
    """Parse ``run_dir/record.json`` (see :func:`parse`); raise :class:`InvalidRecord` saying why it
    cannot be used. ``check_hash=False`` accepts a record whose config hashes differently today."""
    path = Path(run_dir) / RECORD_FILE
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidRecord(f"{path}: unreadable ({e})") from None
    return parse(text, path, check_hash=check_hash)


def parse(text: str | bytes, path: Path, *, check_hash: bool = True) -> Record:
    """The record in ``text``, the content of the record file ``path``: checked by :func:`validate`, its
    config parsed and hashing to its ``config_hash`` (unless not ``check_hash``), and its history as
    long as the run went (every epoch of a finished run; fewer for a diverged one); else
    :class:`InvalidRecord` naming ``path``."""
    try:
        data = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidRecord(f"{path}: unreadable ({e})") from None
    validate(data, path)
    try:
        config = TrainConfig.from_dict(data["config"])
    except ConfigError as e:
        raise InvalidRecord(f"{path}: its config no longer parses ({e}); rerun it or delete it") from None
    if check_hash and config.hash != data["config_hash"]:
        raise InvalidRecord(
            f"{path}: stale: config_hash {data['config_hash']} but the config hashes to {config.hash} "
            "today (a default or the hashing changed); rerun it"
        )
    rows = len(data["metrics"]["history"])
    if rows > config.epochs or (data["status"] == "finished" and rows != config.epochs):
        raise InvalidRecord(f"{path}: a {data['status']} run of {config.epochs} epochs with {rows} history rows")
    return Record(Path(path).parent, config, data)


_PARSED: dict[Path, tuple[tuple[int, int], Record | InvalidRecord]] = {}
"""Parsed records by file, with the (mtime_ns, size) they were parsed at: a file is read again only
when it changes."""


def _read_cached(path: Path) -> Record | InvalidRecord:
    stat = path.stat()
    key = (stat.st_mtime_ns, stat.st_size)
    cached = _PARSED.get(path)
    if cached is None or cached[0] != key:
        try:
            cached = (key, read(path.parent))
        except InvalidRecord as e:
            cached = (key, e)
        _PARSED[path] = cached
    return cached[1]


def scan(root: Path | str | None = None) -> tuple[list[Record], list[InvalidRecord]]:
    """All records under ``root`` (default :func:`results_root`), recursively: the usable ones and
    the reasons for the others. Each file is parsed once and again only after it changes."""
    good, bad = [], []
    for path in sorted(results_root(root).rglob(RECORD_FILE)):
        parsed = _read_cached(path.resolve())
        (bad if isinstance(parsed, InvalidRecord) else good).append(parsed)
    return good, bad


def decomposed_run(config: TrainConfig, root: Path | str | None = None) -> Record | None:
    """The finished dense run whose trained weights the compression run ``config`` decomposes
    (``config.init == "decompose:<config hash>"``), found under ``root`` (its profile's runs); ``None``
    when ``root`` holds none, or for a run of any other ``init``."""
    if config.decomposes is None:
        return None
    found = [r for r in scan(root)[0] if r.config_hash == config.decomposes and r.finished and r.config.format == "dense"]
    return found[0] if found else None


def lookup(config: TrainConfig, root: Path | str | None = None) -> Record | None:
    """The record under ``root`` with ``config``'s hash, finished or diverged, or ``None``.

    Records that cannot be parsed are reported with a warning, never used. Copies of one record
    with identical results count once; copies with different results raise
    :class:`DuplicateRecords` naming both folders, so no published number depends on which is read.
    """
    good, bad = scan(root)
    for problem in bad:
        warnings.warn(str(problem), stacklevel=2)
    matches = [r for r in good if r.config_hash == config.hash]
    for other in matches[1:]:
        if (other.status, other.metrics) != (matches[0].status, matches[0].metrics):
            raise DuplicateRecords(
                f"two records of {config.name} (config {config.hash}) hold different results: {matches[0].path} "
                f"and {other.path}; keep the one that belongs and move the other out of {results_root(root)}"
            )
    return matches[0] if matches else None


def find(config: TrainConfig, root: Path | str | None = None) -> Record | None:
    """The finished record of ``config`` under ``root`` (see :func:`lookup`), or ``None``."""
    rec = lookup(config, root)
    return rec if rec is not None and rec.finished else None
