"""Run records: ``<run dir>/record.json``, the only source of the numbers in the book.

A record holds ``config`` (every setting), ``config_hash``, ``metrics`` (final and best test
accuracy and the per-epoch history), ``cost`` (dense and low-rank MACs and params, reduction
ratios, per-layer ranks) and ``provenance`` (git commit and dirty flag, package versions, device,
CPU count, seed, profile, start/end time, wall seconds). Records are written atomically (a
temporary file renamed over the target), so a half-written record never exists.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .config import ConfigError, TrainConfig

__all__ = [
    "Record", "write_json", "read", "scan", "find", "provenance", "git_state", "SCHEMA_VERSION", "RECORD_FILE", "InvalidRecord",
]

SCHEMA_VERSION = 1
RECORD_FILE = "record.json"
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def write_json(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as JSON to ``path`` atomically (temporary file in the same folder + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def git_state(root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the project's git checkout (tracked files)."""
    def run(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = run("rev-parse", "HEAD")
    status = run("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name from ``cpuinfo`` (Linux), else what ``platform`` knows (often just the architecture)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(device: torch.device, *, seed: int, profile: str, started: float, ended: float, extra: dict | None = None) -> dict[str, Any]:
    """Provenance block of a record; ``started``/``ended`` are Unix times in seconds."""
    def iso(t: float) -> str:
        return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).isoformat(timespec="seconds")

    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return {
        **git_state(),
        "versions": {p: _version(p) for p in ("elrt_core", "torch", "torchvision", "tensorly", "numpy")},
        "python": platform.python_version(),
        "device": str(device),
        "device_name": device_name,
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
        return self.data.get("status") == "finished"


class InvalidRecord(ValueError):
    """A record file that cannot be used: unreadable JSON, stale config or wrong hash."""


def read(run_dir: Path) -> Record:
    """Parse ``run_dir/record.json``; raise :class:`InvalidRecord` saying why it cannot be used."""
    path = Path(run_dir) / RECORD_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InvalidRecord(f"{path}: unreadable ({e})") from None
    if data.get("schema_version") != SCHEMA_VERSION:
        raise InvalidRecord(f"{path}: schema_version {data.get('schema_version')!r}, expected {SCHEMA_VERSION}")
    try:
        config = TrainConfig.from_dict(data["config"])
    except (ConfigError, KeyError) as e:
        raise InvalidRecord(f"{path}: its config no longer parses ({e}); rerun it or delete it") from None
    if config.hash != data.get("config_hash"):
        raise InvalidRecord(
            f"{path}: stale: config_hash {data.get('config_hash')} but the config hashes to {config.hash} "
            "today (a default or the hashing changed); rerun it"
        )
    return Record(Path(run_dir), config, data)


def scan(root: Path) -> tuple[list[Record], list[InvalidRecord]]:
    """All records under ``root`` (recursively): the usable ones and the reasons for the others."""
    good, bad = [], []
    for path in sorted(Path(root).rglob(RECORD_FILE)):
        try:
            good.append(read(path.parent))
        except InvalidRecord as e:
            bad.append(e)
    return good, bad


def find(config: TrainConfig, root: Path | str = "results") -> Record | None:
    """The finished run under ``root`` whose config hash equals ``config``'s, or ``None``.

    Records that cannot be parsed are reported with a warning, never used.
    """
    good, bad = scan(Path(root))
    for problem in bad:
        warnings.warn(str(problem), stacklevel=2)
    matches = [r for r in good if r.finished and r.config_hash == config.hash]
    return matches[0] if matches else None
