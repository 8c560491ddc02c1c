"""Bring back what a lent GPU machine made, and put it into ``results/`` here.

:func:`collect` (on the device) puts the new files of the device's results folder into one
gzip'ed tar under ``$OUT``, cut into volumes of at most 15 MiB, with a manifest beside them
(each volume's size and sha256, the members, what was left out): the batch reports
(``gpu/*.json``), the run records, the CUDA bench records (``bench/...``), the runs' logs, the
final weights of dense runs (the book's Figure 3 reads them) and the checkpoints of unfinished
runs, so that a later session resumes them. A device call returns at most 8 files of at most
16 MiB each, 64 MiB together; if everything does not fit, checkpoints are left out last-planned
first, and the manifest names them. A file identical to the tree's copy (a record the tree
already holds) is not new and stays behind.

:func:`receive` (here) checks the volumes against the manifest and writes the members into the
results folder: records, bench records, reports and weights only where no different file is
there already (a different one is a conflict, reported and left alone); checkpoints unless the
run has finished here; logs always.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .. import records

__all__ = ["collect", "receive", "gather", "CollectError", "VOLUME_BYTES", "FILES_LIMIT", "FILE_BYTES_LIMIT", "TOTAL_BYTES_LIMIT"]

MIB = 1 << 20
FILES_LIMIT = 8
FILE_BYTES_LIMIT = 16 * MIB
TOTAL_BYTES_LIMIT = 64 * MIB
"""What one device call brings back from ``$OUT``."""
VOLUME_BYTES = 15 * MIB
MANIFEST_ROOM = 1 * MIB
FORMAT = "elrt-gpu-collect"
_SEGMENT = r"[A-Za-z0-9_.+=-]+"
_ALLOWED = re.compile(
    rf"gpu/{_SEGMENT}\.json|bench/(?:{_SEGMENT}/)*{_SEGMENT}\.json"
    rf"|{_SEGMENT}/{_SEGMENT}/(?:record\.json|checkpoint\.pt|weights\.pt|train\.log)"
)
_RANKS = {"report": 0, "record": 1, "bench": 2, "log": 3, "weights": 4, "checkpoint": 5}


class CollectError(ValueError):
    """An archive that cannot be received (missing or corrupted volume, unexpected member) or an
    output folder without room."""


@dataclass(frozen=True)
class _Item:
    """A file to bring back: its path relative to the results folder, where it is, its kind, its order."""

    rel: str
    path: Path
    kind: str
    order: tuple[int, int, str]


def _kind(rel: str, path: Path) -> str | None:
    """What a file of the results folder is, or ``None`` if it does not travel back."""
    parts = rel.split("/")
    if parts[0] == "gpu" and len(parts) == 2 and rel.endswith(".json"):
        return "report"
    if parts[0] == "bench":
        return "bench" if rel.endswith(".json") else None
    if len(parts) != 3:
        return None
    record = path.parent / records.RECORD_FILE
    if parts[2] == records.RECORD_FILE:
        return "record"
    if parts[2] == "train.log":
        return "log"
    if parts[2] == "checkpoint.pt":
        return None if record.exists() else "checkpoint"
    if parts[2] == "weights.pt" and record.exists():
        try:
            return "weights" if json.loads(record.read_text())["config"]["format"] == "dense" else None
        except (OSError, ValueError, KeyError):
            return None
    return None


@cache
def _plan_names(profile: str) -> tuple[str, ...]:
    """Run names of the plan of ``profile`` in training order; empty for a folder that is no profile here."""
    from .. import profiles
    from ..study.plan import plan

    try:
        return tuple(r.config.name for r in plan(profiles.load(profile)))
    except Exception:  # not a profile of this checkout: its files still travel, ordered last
        return ()


def _plan_index(profile: str, run: str) -> int:
    """Position of ``run`` in the plan of ``profile`` (runs of unknown profiles or runs come last)."""
    names = _plan_names(profile)
    return names.index(run) if run in names else 1 << 30


def gather(results: Path, tree_results: Path | None = None) -> list[_Item]:
    """The files of ``results`` to bring back, most important first (see the module docstring);
    a file with the same bytes at the same place under ``tree_results`` is left out."""
    items = []
    for path in sorted(Path(results).rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        rel = path.relative_to(results).as_posix()
        kind = _kind(rel, path)
        if kind is None or not _ALLOWED.fullmatch(rel):
            continue
        twin = Path(tree_results) / rel if tree_results else None
        if kind not in ("checkpoint", "log") and twin is not None and twin.is_file() and twin.read_bytes() == path.read_bytes():
            continue
        index = _plan_index(*rel.split("/")[:2]) if kind == "checkpoint" else 0
        items.append(_Item(rel, path, kind, (_RANKS[kind], index, rel)))
    return sorted(items, key=lambda i: i.order)


def _tgz(items: list[_Item]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT, compresslevel=6) as tar:
        for item in items:
            info = tar.gettarinfo(str(item.path), arcname=item.rel)
            info.mode, info.uid, info.gid, info.uname, info.gname = 0o644, 0, 0, "", ""
            with open(item.path, "rb") as f:
                tar.addfile(info, f)
    return buf.getvalue()


def _room(out: Path) -> tuple[int, int]:
    """(files, bytes) still free in ``out`` for the volumes, the manifest's file and room kept aside."""
    present = [p for p in out.rglob("*") if p.is_file()]
    files = FILES_LIMIT - len(present) - 1
    size = TOTAL_BYTES_LIMIT - sum(p.stat().st_size for p in present) - MANIFEST_ROOM
    return files, size


def collect(
    results: Path,
    out: Path,
    *,
    name: str | None = None,
    tree_results: Path | None = None,
    limit_bytes: int | None = None,
    volume_bytes: int = VOLUME_BYTES,
) -> dict[str, Any]:
    """Write the archive of :func:`gather` into ``out`` as ``<name>.tgz.NNN`` volumes and ``<name>.json``;
    return the manifest. ``limit_bytes`` caps the archive below what ``out`` still has room for."""
    out.mkdir(parents=True, exist_ok=True)
    name = name or "elrt-gpu-" + _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    free_files, free_bytes = _room(out)
    budget = min(free_bytes, limit_bytes) if limit_bytes else free_bytes
    budget = min(budget, free_files * volume_bytes)
    if free_files < 1 or budget <= 0:
        raise CollectError(f"{out} has no room left: at most {FILES_LIMIT} files and {TOTAL_BYTES_LIMIT // MIB} MiB come back")
    items = gather(results, tree_results)
    chosen, left_out, size = [], [], 0
    for item in items:
        cost = item.path.stat().st_size + 1024  # its tar header, rounded up
        if size + cost > budget:
            left_out.append(item)
        else:
            chosen.append(item)
            size += cost
    blob = _tgz(chosen)
    while len(blob) > budget:  # compression made it larger than estimated: drop the last-ranked file
        left_out.insert(0, chosen.pop())
        blob = _tgz(chosen)
    volumes = []
    for i, start in enumerate(range(0, max(len(blob), 1), volume_bytes)):
        part = blob[start : start + volume_bytes]
        path = out / f"{name}.tgz.{i:03d}"
        path.write_bytes(part)
        volumes.append({"file": path.name, "bytes": len(part), "sha256": hashlib.sha256(part).hexdigest()})
    manifest = {
        "format": FORMAT,
        "version": 1,
        "name": name,
        "volumes": volumes,
        "members": [{"path": i.rel, "kind": i.kind, "bytes": i.path.stat().st_size} for i in chosen],
        "left_out": [{"path": i.rel, "kind": i.kind, "bytes": i.path.stat().st_size} for i in left_out],
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    (out / f"{name}.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def _read_archive(manifest_path: Path) -> tuple[dict[str, Any], bytes]:
    try:
        manifest = json.loads(Path(manifest_path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CollectError(f"cannot read the collect manifest {manifest_path}: {e}") from None
    if manifest.get("format") != FORMAT:
        raise CollectError(f"{manifest_path} is not a manifest written by `elrt gpu collect`")
    parts, problems = [], []
    for v in manifest["volumes"]:
        path = Path(manifest_path).parent / v["file"]
        data = path.read_bytes() if path.is_file() else None
        if data is None:
            problems.append(f"{v['file']} is missing")
        elif len(data) != v["bytes"] or hashlib.sha256(data).hexdigest() != v["sha256"]:
            problems.append(f"{v['file']} is corrupted")
        else:
            parts.append(data)
    if problems:
        raise CollectError(f"cannot receive {manifest_path}: " + "; ".join(problems))
    return manifest, b"".join(parts)


def _safe(rel: str) -> bool:
    return _ALLOWED.fullmatch(rel) is not None and all(s not in ("", ".", "..") for s in rel.split("/"))


def receive(manifest_path: Path, results: Path) -> dict[str, list[str]]:
    """Write the archive of ``manifest_path`` into ``results`` (rules in the module docstring);
    returns the member paths by outcome: ``written``, ``same``, ``kept`` (checkpoint of a run finished here), ``conflicts``."""
    manifest, blob = _read_archive(manifest_path)
    outcome: dict[str, list[str]] = {"written": [], "same": [], "kept": [], "conflicts": []}
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        members = tar.getmembers()
        bad = [m.name for m in members if not (m.isfile() and _safe(m.name))]
        if bad:
            raise CollectError(f"{manifest_path}: unexpected archive members {bad[:5]}; nothing written")
        for m in members:
            data = tar.extractfile(m).read()
            target = Path(results) / m.name
            name = target.name
            if name == "checkpoint.pt" and (target.parent / records.RECORD_FILE).exists():
                outcome["kept"].append(m.name)
            elif name in ("checkpoint.pt", "train.log") or not target.exists():
                _write(target, data)
                outcome["written"].append(m.name)
            elif target.read_bytes() == data:
                outcome["same"].append(m.name)
            else:
                outcome["conflicts"].append(m.name)
    return outcome


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
